"""Everything wanvid shows: results on stdout, messages and progress on stderr.

Three modes: human (results plus progress), ``--json`` (exactly one JSON document on stdout, no
progress) and ``--quiet`` (only the id or path on stdout, no progress). Live rich displays appear only
when stderr is a terminal and ``CI`` is not set. Otherwise progress is a heartbeat for logs: one plain
``key=value`` line per status change, and at most one every ``WANVID_HEARTBEAT`` seconds (30) while
nothing changes, without ANSI. rich's live machinery is imported only when a display starts, keeping
``--help`` fast.

Every byte written here, to either stream, first passes ``wanvid.redact``: whatever a server echoed
back or an exception carries, the key never shows.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from wanvid import redact
from wanvid.errors import Interrupted, WaitTimeout, WanvidError
from wanvid.report import FINAL, GOOD
from wanvid.rules.task import Status, Task, describe, status_word  # noqa: F401  (re-exported for the views)


class PollView(Protocol):
    def update(self, task: Task, elapsed: float) -> None: ...


class DownloadView(Protocol):
    def start(self, total: int | None) -> None: ...
    def advance(self, n: int) -> None: ...


class Output:
    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.mode = "json" if json_mode else "quiet" if quiet else "human"
        self.emitted = False  # a result is on stdout: --json promises exactly one document
        self.task_id: str | None = None  # the task the job is about, once a stage named it (for an interrupt)

    @property
    def progress(self) -> bool:
        return self.mode == "human"

    @property
    def chatty(self) -> bool:  # wanvid.report.Reporter: retries are worth a warning line
        return self.progress

    def stage(
        self, stage: str, *, task_id: str | None = None, status: str | None = None, dest: Path | None = None
    ) -> None:
        """wanvid.report.Reporter: a new task's id is kept in every mode's log; the other stages show in the poll
        and download views."""
        self.task_id = task_id or self.task_id
        if stage == "CREATED":
            self.note(f"created task {task_id}")

    @property
    def live(self) -> bool:
        return self.progress and sys.stderr.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")

    # -- stdout: results only -------------------------------------------------------------------
    def result(self, text: str, data: Any, quiet_text: str | None = None) -> None:
        self.emitted = True
        if self.mode == "json":
            sys.stdout.write(_json(redact.scrub_json(data)) + "\n")
        elif self.mode == "quiet":
            sys.stdout.write(printable(quiet_text if quiet_text is not None else text) + "\n")
        else:
            sys.stdout.write(printable(text) + "\n")
        sys.stdout.flush()

    def table(self, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], data: Any) -> None:
        """A table of results: rich on a terminal, plain aligned columns otherwise (never cut), ids with -q."""
        self.emitted = True
        if self.mode == "json":
            self.result("", data)
            return
        if self.mode == "quiet":
            if rows:
                self.result("\n".join(r[0] for r in rows), data)
            return
        headers = tuple(printable(h) for h in headers)
        rows = [tuple(printable(x) for x in row) for row in rows]
        if sys.stdout.isatty():
            from rich.console import Console
            from rich.table import Table

            t = Table(box=None, header_style="bold")
            for h in headers:  # a narrow terminal folds a cell onto more lines, never cuts an id with "…"
                t.add_column(h, overflow="fold")
            for row in rows:
                t.add_row(*(_markup(x) for x in row))  # a prompt's "[/x]" is text, not rich markup
            Console().print(t)
        else:
            widths = [max(len(x) for x in col) for col in zip(headers, *rows, strict=False)]
            for row in (headers, *rows):
                sys.stdout.write("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip() + "\n")
            sys.stdout.flush()

    # -- stderr: everything else ----------------------------------------------------------------
    def info(self, text: str) -> None:
        if self.progress:
            _err(self.redact(text))

    def warn(self, text: str) -> None:
        _err(self.redact(f"warning: {text}"))

    def note(self, text: str) -> None:
        """A line every mode shows on stderr: something a script's log should keep (e.g. a reused task)."""
        _err(self.redact(text))

    def debug(self, text: str) -> None:
        """--debug's HTTP log: every line passes the key filter, whatever a server echoed back."""
        _err(self.redact(f"debug: {text}"))

    def error(self, exc: WanvidError) -> None:
        """One line on stderr; with --json, also the error document on stdout unless a result is there."""
        exc.message, exc.hint = self.redact(exc.message), exc.hint and self.redact(exc.hint)
        if self.mode == "json" and not self.emitted:
            self.result("", exc.to_dict())
        if isinstance(exc, Interrupted | WaitTimeout):
            _err(stop_line(exc))
            return
        line = f"error: {exc.message}"
        if getattr(exc, "request_id", None):
            line += f" (request id {exc.request_id})"  # type: ignore[attr-defined]
        if exc.hint:
            line += f" — {exc.hint}"
        _err(line)

    def redact(self, text: str) -> str:
        return redact.scrub(text)

    # -- progress -------------------------------------------------------------------------------
    @contextmanager
    def polling(self, task_id: str, eta: float | None = None, age: float = 0.0) -> Iterator[PollView]:
        """``eta``: seconds after creation the task should end; ``age``: how old it was when waiting began."""
        if self.live:
            with _LivePoll(task_id, eta, age) as view:
                yield view
        else:
            yield _PlainPoll(task_id, eta, age, enabled=self.progress)

    def batch(self, rows: Sequence[tuple[int, str]]) -> BatchBoard:
        """The board of a batch: (row number, file name) for every row."""
        return _LiveBoard(rows) if self.live else _PlainBoard(rows, events=self.progress)

    @contextmanager
    def downloading(self, name: str, task_id: str) -> Iterator[DownloadView]:
        if self.live:
            with _LiveDownload(name) as view:
                yield view
        else:
            plain = _PlainDownload(name, task_id, enabled=self.progress)
            yield plain
            plain.finish()


def stop_line(exc: WanvidError) -> str:
    """An interrupt or a timeout is not a failure of the task: a note naming it once, and the command that goes
    on (``jobs.steps.safe`` put it in the hint as "task ID is safe; resume with: CMD")."""
    text, hint = exc.message, exc.hint
    safe = f"task {exc.task_id} is safe; resume with: "
    if exc.task_id and hint and hint.startswith(safe):
        if exc.task_id not in text:
            text += f"; task {exc.task_id} is safe"
        hint = "resume with: " + hint[len(safe) :]
    return f"note: {text}" + (f"; {hint}" if hint else "")


def _json(data: Any) -> str:
    """A JSON document as readable as can be written: non-ASCII text as is, unless it holds a lone surrogate (an
    argument that was not valid UTF-8 in the first place), which only an escape can carry into valid UTF-8."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, indent=2)
    return text


def _err(text: str) -> None:
    try:
        sys.stderr.write(printable(text) + "\n")  # printable scrubs the key too
        sys.stderr.flush()
    except OSError:  # the terminal hung up (EIO) or the reader left: the exit code still tells the story
        pass


_CONTROL = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)], "?")


def printable(text: str) -> str:
    """Text for a terminal or a log: the key masked, control characters (escape sequences) made harmless."""
    return redact.scrub(text).translate(_CONTROL)


def _left(eta: float | None, age: float, task: Task) -> float | None:
    """Seconds until the expected finish while it lies ahead, else None."""
    if eta is None or task.status.ended or eta - age < 1:
        return None
    return eta - age


HEARTBEAT = 30.0


class _Pulse:
    """When a log last had a progress line from us; another is due ``WANVID_HEARTBEAT`` s (30) later even
    if nothing changed, so a quiet log still shows life."""

    def __init__(self) -> None:
        try:
            every = float(os.environ.get("WANVID_HEARTBEAT", ""))
        except ValueError:
            every = HEARTBEAT
        self.every = every if every > 0 else HEARTBEAT
        self.at = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.at >= self.every

    def beat(self) -> None:
        self.at = time.monotonic()


def fields(**values: Any) -> str:
    """``key=value`` pairs for a log line; a value with spaces or quotes is JSON-quoted, None is left out."""
    out = []
    for key, value in values.items():
        if value is None:
            continue
        text = str(value)
        if not text or any(c in text for c in ' "=\\'):
            text = json.dumps(text, ensure_ascii=False)
        out.append(f"{key}={text}")
    return " ".join(out)


class _PlainPoll:
    """``task=… status=RUNNING progress=40% elapsed=95s left=30s``: on each change, else every heartbeat."""

    def __init__(self, task_id: str, eta: float | None, age: float, *, enabled: bool) -> None:
        self.task_id, self.eta, self.age, self.enabled = task_id, eta, age, enabled
        self.last, self.pulse = "", _Pulse()

    def update(self, task: Task, elapsed: float) -> None:
        state = task.raw_status  # progress moving is not a change worth a line; the heartbeat shows it
        if not self.enabled or (state == self.last and not self.pulse.due()):
            return
        self.last = state
        self.pulse.beat()
        age = self.age + elapsed
        left = _left(self.eta, age, task)
        _err(
            fields(
                task=self.task_id,
                status=status_word(task),
                progress=f"{task.progress}%" if task.progress is not None and not task.status.ended else None,
                elapsed=f"{age:.0f}s",
                left=f"{left:.0f}s" if left is not None else None,
            )
        )


SHORT_ID = 8  # the live line shows ids as git shows commits: a whole one does not fit in 80 columns


def countdown(eta: float | None, age: float) -> str:
    """'~40s left', '~1m30s left', 'overdue' once the expected finish has passed, '' with no estimate."""
    if eta is None:
        return ""
    left = int(eta - age)
    if left < 1:
        return "overdue"
    return f"~{left // 60}m{left % 60:02d}s left" if left >= 60 else f"~{left}s left"


class _LivePoll:
    """One line, redrawn by rich about ten times a second: spinner, short id, state with the estimate counted
    down each second (not only when an answer arrives, which may be 30 s apart), bar, time elapsed."""

    def __init__(self, task_id: str, eta: float | None, age: float) -> None:
        from wanvid.jobs.poller import PRIOR_ETA

        # With no history the prior is counted down ("expecting about 90s" was said above); the schedule does
        # not rely on it (wanvid.jobs.poller).
        self.eta: float | None = PRIOR_ETA if eta is None else eta
        self.age, self.t0 = age, time.monotonic()
        self.state, self.ended = "submitted", False
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("task {task.fields[task_id]}"),
            _state_column(self),
            BarColumn(bar_width=20),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        # The fields go into markup templates: a server's "[/x]" in a status or id would be a MarkupError.
        self.bar = self.progress.add_task("poll", total=None, task_id=_markup(task_id[:SHORT_ID]))

    def __enter__(self) -> _LivePoll:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def text(self) -> str:
        """The state as shown now: the last answer, and the time left to the expected finish as of this moment."""
        if self.ended:
            return self.state
        left = countdown(self.eta, self.age + time.monotonic() - self.t0)
        return f"{self.state} {left}" if left else self.state

    def update(self, task: Task, elapsed: float) -> None:
        from wanvid.jobs.poller import eta_from_progress

        self.eta = eta_from_progress(task, self.age + elapsed, self.eta)  # as the schedule moves it
        self.state, self.ended = printable(describe(task)), task.status.ended
        total = 100 if (task.progress is not None or self.ended) else None
        completed = 100 if self.ended else (task.progress or 0)
        self.progress.update(self.bar, total=total, completed=completed)


def _state_column(view: _LivePoll) -> Any:
    """A rich column that asks ``view`` for its text at every redraw."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class State(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(view.text(), style="bold")

    return State()


def _markup(text: str) -> str:
    from rich.markup import escape

    return escape(printable(text))


class _PlainDownload:
    """A line when the download starts and ends, and a heartbeat with the bytes so far in between."""

    def __init__(self, name: str, task_id: str, *, enabled: bool) -> None:
        self.name, self.task_id, self.enabled, self.size = name, task_id, enabled, 0
        self.total: int | None = None
        self.t0, self.pulse = time.monotonic(), _Pulse()

    def start(self, total: int | None) -> None:
        self.total = total
        if self.enabled:
            self._say("DOWNLOADING", total=_mb(total) if total else None)

    def advance(self, n: int) -> None:
        self.size += n
        if self.enabled and self.pulse.due():
            self._say("DOWNLOADING", received=_mb(self.size) + (f"/{_mb(self.total)}" if self.total else ""))

    def finish(self) -> None:
        if self.enabled and self.size:
            self._say("DOWNLOADED", received=_mb(self.size))

    def _say(self, status: str, **more: Any) -> None:
        self.pulse.beat()
        now = time.monotonic()
        _err(fields(task=self.task_id, status=status, file=self.name, **more, elapsed=f"{now - self.t0:.1f}s"))


class _LiveDownload:
    def __init__(self, name: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            # No refresh thread: it would take the GIL from the copy loop. The download reports about ten
            # times a second, and each report redraws.
            auto_refresh=False,
        )
        self.bar = self.progress.add_task(_markup(name), total=None)

    def __enter__(self) -> _LiveDownload:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, total: int | None) -> None:
        self.progress.update(self.bar, total=total, refresh=True)

    def advance(self, n: int) -> None:
        self.progress.update(self.bar, advance=n, refresh=True)


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f}MB"


# -- batch ----------------------------------------------------------------------------------------
# A batch runs many rows at once. Workers report to one board; the main thread ticks it about twice a
# second. On a terminal (and without CI) the board is a live rich table; otherwise each row's status
# change is one key=value line and a summary heartbeat keeps a quiet log alive.

# How a row ends (batch.RowResult.status, in capitals); the first two are successes.
STOPPED = ("INTERRUPTED", "NOT_STARTED")  # ended by Ctrl-C: counted apart from the failures


class _RowState:
    def __init__(self, name: str) -> None:
        self.name, self.status, self.task_id = name, "WAITING", ""
        self.started: float | None = None
        self.ended: float | None = None
        self.progress: int | None = None
        self.received = 0
        self.total: int | None = None
        self.reason: str | None = None  # why it waits (the gateway's rate limit), while it does


class BatchBoard:
    """What every row of a batch is doing; thread-safe. Subclasses draw it."""

    def __init__(self, rows: Sequence[tuple[int, str]]) -> None:
        import threading

        self.lock = threading.Lock()
        self.rows = {number: _RowState(name) for number, name in rows}
        self.t0 = time.monotonic()

    def event(self, row: int, status: str, *, task_id: str | None = None, detail: str | None = None) -> None:
        """A row's status (a task status, DOWNLOADING, or one of FINAL); ``detail``: its output or error."""
        with self.lock:
            state = self.rows[row]
            changed = status != state.status
            state.status, state.task_id = status, task_id or state.task_id
            state.reason = None if changed else state.reason  # a row that moved on no longer waits
            now = time.monotonic()
            state.started = state.started or now
            if status in FINAL:
                state.ended = now
        if changed:
            self.changed(row, state, detail)

    def waiting(self, row: int, reason: str | None) -> None:
        """Why a row waits (the gateway's rate limit), shown next to its status until it goes on (None)."""
        with self.lock:
            state = self.rows[row]
            changed = reason != state.reason
            state.reason = reason
        if changed and reason:
            self.throttled(row, state, reason)

    def polled(self, row: int, task: Task) -> None:
        with self.lock:
            self.rows[row].progress = task.progress
        self.event(row, status_word(task))

    def download(self, row: int, received: int, total: int | None) -> None:
        with self.lock:
            state = self.rows[row]
            state.received, state.total = received, total

    def counts(self) -> dict[str, int]:
        with self.lock:
            return self.counts_locked()

    def counts_locked(self) -> dict[str, int]:
        statuses = [s.status for s in self.rows.values()]
        done = sum(s in GOOD for s in statuses)
        stopped = sum(s in STOPPED for s in statuses)  # by Ctrl-C: resumable, not failed
        bad = sum(s in FINAL for s in statuses) - done - stopped
        waiting = statuses.count("WAITING")
        active = len(statuses) - done - bad - stopped - waiting
        counts = {"rows": len(statuses), "done": done, "failed": bad, "active": active, "waiting": waiting}
        return {**counts, "stopped": stopped} if stopped else counts

    def elapsed(self, state: _RowState) -> float:
        if state.started is None:
            return 0.0
        return (state.ended or time.monotonic()) - state.started

    def reporter(self, row: int, check: Callable[[], None]) -> RowOutput:
        """The reporter of one row's job (``wanvid.jobs.batch.Board``): it draws on this board."""
        return RowOutput(self, row, check)

    # Drawing: overridden.
    def changed(self, row: int, state: _RowState, detail: str | None) -> None: ...
    def throttled(self, row: int, state: _RowState, reason: str) -> None: ...
    def note(self, row: int, text: str) -> None: ...
    def tick(self) -> None: ...
    def __enter__(self) -> BatchBoard:
        return self

    def __exit__(self, *exc: object) -> None: ...


class _PlainBoard(BatchBoard):
    def __init__(self, rows: Sequence[tuple[int, str]], *, events: bool) -> None:
        super().__init__(rows)
        self.events, self.pulse = events, _Pulse()
        self.named: set[int] = set()

    def say(self, text: str) -> None:
        self.pulse.beat()
        _err(text)

    def changed(self, row: int, state: _RowState, detail: str | None) -> None:
        if state.status in ("WAITING", "SUBMITTING"):
            return
        first = bool(state.task_id) and row not in self.named  # the row's task id: in every mode, once
        if first:
            self.named.add(row)
        if self.events or first:
            key = "output" if state.status in GOOD else "error"
            self.line(row, state, **{key: detail})

    def throttled(self, row: int, state: _RowState, reason: str) -> None:
        if self.events:
            self.line(row, state, reason=reason)

    def line(self, row: int, state: _RowState, **extra: str | None) -> None:
        """One row's event as a log line: row, task, status, elapsed, then what this event adds."""
        elapsed = f"{self.elapsed(state):.0f}s"
        self.say(fields(row=row, task=state.task_id or None, status=state.status, elapsed=elapsed, **extra))

    def note(self, row: int, text: str) -> None:
        self.say(f"row {row}: {text}")  # in every mode: task ids and reuse belong in a script's log

    def tick(self) -> None:
        if self.events and self.pulse.due():
            self.say(fields(batch="progress", **self.counts(), elapsed=f"{time.monotonic() - self.t0:.0f}s"))


class _LiveBoard(BatchBoard):
    """A rich table: the rows that are moving first, then failures, then the rest, cut to the screen."""

    def __init__(self, rows: Sequence[tuple[int, str]]) -> None:
        super().__init__(rows)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        # No refresh thread: rich's refreshes from its own thread raced the rows' notes (each note moves the
        # cursor up by the table's last height, which the other thread was changing), leaving stale copies of
        # the table and notes glued to the totals line. The main thread draws everything, in ``tick``.
        self.live = Live(get_renderable=self.render, console=self.console, auto_refresh=False, transient=False)
        self.notes: list[str] = []  # written by the rows' threads, printed above the table by ``tick``

    def __enter__(self) -> _LiveBoard:
        self.live.start(refresh=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.tick()
        self.live.stop()

    def note(self, row: int, text: str) -> None:
        with self.lock:
            self.notes.append(printable(f"row {row}: {text}"))

    def tick(self) -> None:
        """Print the notes that came in above the table, then draw the table again (main thread only)."""
        with self.lock:
            notes, self.notes = self.notes, []
        for text in notes:
            self.live.console.print(text, markup=False, highlight=False)
        self.live.refresh()

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        def place(status: str) -> int:  # moving rows first, then failures, then successes, then waiting ones
            return 3 if status == "WAITING" else 0 if status not in FINAL else 2 if status in GOOD else 1

        with self.lock:
            items = sorted(self.rows.items(), key=lambda kv: (place(kv[1].status), kv[0]))
            room = max(3, self.console.size.height - 6)
            c = self.counts_locked()
            table = Table("ROW", "FILE", "TASK", "STATUS", "ELAPSED", "DOWNLOAD", box=None, header_style="bold")
            for number, s in items[:room]:
                shown = s.status + (f" {s.progress}%" if s.progress is not None and s.status == "RUNNING" else "")
                shown += f" · {s.reason}" if s.reason else ""
                got = ""
                if s.status == "DOWNLOADING" or (s.received and s.status == "SAVED"):
                    got = _mb(s.received) + (f"/{_mb(s.total)}" if s.total else "")
                elapsed = f"{self.elapsed(s):.0f}s" if s.started else ""
                table.add_row(str(number), _markup(s.name), _markup(s.task_id[:8]), _markup(shown), elapsed, got)
        hidden = len(items) - room
        totals = (
            f"{c['done']}/{c['rows']} done · {c['active']} active · {c['waiting']} waiting · {c['failed']} failed"
            + (f" · {c['stopped']} interrupted or not started" if c.get("stopped") else "")
            + f" · {time.monotonic() - self.t0:.0f}s"
            + (f"   ({hidden} more rows not shown)" if hidden > 0 else "")
        )
        # One line whatever the width: a totals line wrapped under a narrow table changed the display's height.
        return Group(table, Text(totals, style="dim italic", no_wrap=True, overflow="ellipsis"))


class RowOutput(Output):
    """The Output a batch row's steps see: progress and notes go to the board, nothing to stdout.

    ``check`` runs on every progress report and raises to stop the row (the batch was interrupted).
    """

    def __init__(self, board: BatchBoard, row: int, check: Callable[[], None]) -> None:
        super().__init__(quiet=True)  # no per-row info lines or retry chatter; the board shows the state
        self.board, self.row, self.check = board, row, check

    def note(self, text: str) -> None:
        self.board.note(self.row, self.redact(text))

    def stage(
        self, stage: str, *, task_id: str | None = None, status: str | None = None, dest: Path | None = None
    ) -> None:
        """The board shows a row's stages (wanvid.jobs.batch tells it); no "created task" line per row."""

    def warn(self, text: str) -> None:
        self.board.note(self.row, self.redact(f"warning: {text}"))

    def throttled(self, reason: str | None) -> None:
        self.board.waiting(self.row, reason)

    @contextmanager
    def polling(self, task_id: str, eta: float | None = None, age: float = 0.0) -> Iterator[PollView]:
        yield _RowPoll(self)

    @contextmanager
    def downloading(self, name: str, task_id: str) -> Iterator[DownloadView]:
        self.board.event(self.row, "DOWNLOADING", task_id=task_id)
        yield _RowDownload(self)


class _RowPoll:
    def __init__(self, out: RowOutput) -> None:
        self.out = out

    def update(self, task: Task, elapsed: float) -> None:
        self.out.board.polled(self.out.row, task)


class _RowDownload:
    def __init__(self, out: RowOutput) -> None:
        self.out, self.received = out, 0
        self.total: int | None = None

    def start(self, total: int | None) -> None:
        self.total = total
        self.out.board.download(self.out.row, self.received, total)

    def advance(self, n: int) -> None:
        self.received += n
        self.out.board.download(self.out.row, self.received, self.total)
        self.out.check()
