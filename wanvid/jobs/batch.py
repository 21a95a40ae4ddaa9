"""``wanvid batch``: every row of a manifest run to a video by the same steps as ``wanvid run``.

The flow is one way: ``plan`` (every row read, merged with the command line's defaults, validated and
given its output file; rows already saved found in the journal) → ``run`` (a pool of workers, one row
each at a time, sharing one rate-limit ``Gate``) → a ``RowResult`` per row, appended to the results
JSONL as it ends → the summary and the exit code of the worst failure.

Never paying twice rests on the journal, as for ``run``: a row whose video is already saved where its
name says is not run at all, and a row whose identical request has a live task reuses it. Ctrl-C stops
starting rows, lets each running one journal what it has, and leaves every submitted task resumable;
rerunning the same command picks them all up.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import string
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_any
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanvid.cli.output import FINAL, GOOD, BatchBoard, RowOutput
from wanvid.errors import (
    AuthError,
    FieldError,
    Interrupted,
    StorageError,
    TaskFailed,
    UsageError,
    WanvidError,
    signal_number,
    stop_for,
)
from wanvid.gateway.client import CONNECT_TIMEOUT, READ_TIMEOUT
from wanvid.jobs.session import (
    STOP_SIGNALS,
    Ctx,
    already_saved,
    check_name,
    fetch_cmd,
    run_hook,
    save_video,
    stem,
    submit_or_reuse,
    wait_task,
)
from wanvid.redact import scrub_json
from wanvid.rules.manifest import Row
from wanvid.rules.request import Validated, VideoRequest, validate

if TYPE_CHECKING:
    from wanvid.gateway.client import Gate
    from wanvid.gateway.upload import Hosting
    from wanvid.rules.media import LocalMedia

DEFAULT_NAME = "{stem}.mp4"
NAME_FIELDS = ("row", "stem", "model", "seed", "duration", "resolution", "task_id")
# Worst first: what a script should look at first when several rows failed differently.
SEVERITY = (143, 129, 130, 1, 4, 8, 6, 124, 7, 9, 5, 3, 2)  # 143/129/130: stopped by SIGTERM/SIGHUP/SIGINT
STATUSES = tuple(status.lower() for status in FINAL)  # how a row ends; the board shows them in capitals


@dataclass
class Item:
    """One manifest row, planned: its checked request and output file, or why it cannot run."""

    row: int
    v: Validated | None = None
    template: str = DEFAULT_NAME
    dest: Path | None = None  # None while the name waits for the task id
    done: str | None = None  # the task whose video is already saved at dest
    problems: list[str] = field(default_factory=list)

    def name(self, out_dir: Path, task_id: str | None = None) -> Path | None:
        """The output path, or None when the template needs a task id not known yet; a UsageError when the
        template cannot be filled in or its result is not a plain file name."""
        if "task_id" in fields_of(self.template) and task_id is None:
            return None
        assert self.v is not None
        r = self.v.request
        values = {
            "row": self.row,
            "stem": stem(r.image or r.first_clip or "video"),
            "model": r.model,
            "seed": r.seed,
            "duration": r.duration,
            "resolution": r.resolution,
            "task_id": task_id,
        }
        try:
            name = self.template.format_map(values)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise UsageError(f"cannot fill in the name {self.template!r}: {exc}") from None
        if not name or name in (".", "..") or "/" in name or os.sep in name:
            raise UsageError(f"the name {self.template!r} gives {name!r}, which is not a file name")
        return out_dir / name


@dataclass
class RowResult:
    """One line of the results file and of ``--json``'s ``rows`` (docs/schema/batch-row.json)."""

    row: int
    status: str
    task_id: str | None = None
    output: str | None = None
    error: dict[str, Any] | None = None
    reused: bool = False

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else int(self.error["exit_code"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "task_id": self.task_id,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "reused": self.reused,
        }


class InvalidRows(UsageError):
    """Some rows cannot run; ``--json`` lists them with their problems."""

    def __init__(self, message: str, hint: str, items: list[Item]) -> None:
        super().__init__(message, hint)
        self.items = items

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        doc["rows"] = [{"row": item.row, "problems": item.problems} for item in self.items]
        return doc


def fields_of(template: str) -> list[str]:
    """The field names a template uses (``{seed:04d}`` uses ``seed``); [] if it is not a template."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return []


def check_template(template: str, what: str = "--name") -> list[str]:
    """The fields a name template uses; a UsageError if it uses others or could leave the directory."""
    try:
        list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"{what} {template!r} is not a template: {exc}", hint='e.g. "{stem}-{row}.mp4"') from None
    used = fields_of(template)
    unknown = [n for n in used if n not in NAME_FIELDS]
    if unknown:
        raise UsageError(
            f"{what} uses unknown field {{{unknown[0]}}}", hint="fields: " + ", ".join(f"{{{n}}}" for n in NAME_FIELDS)
        )
    if "/" in template or os.sep in template:
        raise UsageError(f"{what} must be a file name, not a path", hint="use --output-dir for the directory")
    return used


def plan(
    ctx: Ctx,
    rows: list[Row],
    defaults: dict[str, Any],
    *,
    out_dir: Path,
    template: str,
    force: bool,
    hosting: Hosting | None = None,
) -> list[Item]:
    """Every row checked before anything is sent: its request, its file, and whether it is already done.
    ``hosting``: the upload settings (``wanvid.gateway.upload``) for local files that go by URL."""
    used = check_template(template)
    files: dict[LocalMedia, LocalMedia] = {}  # one inspected file, one object: its SHA-256 is read once
    items = [_plan_row(ctx, row, defaults, out_dir, template, used, force, hosting, files) for row in rows]
    _cross_check(ctx, items)
    return items


def _plan_row(
    ctx: Ctx,
    row: Row,
    defaults: dict[str, Any],
    out_dir: Path,
    template: str,
    used: list[str],
    force: bool,
    hosting: Hosting | None,
    files: dict[LocalMedia, LocalMedia],
) -> Item:
    item = Item(row.number, template=row.values.get("output", template), problems=list(row.problems))
    if item.problems:
        return item
    values = {**{k: v for k, v in defaults.items() if v is not None}, **row.values}
    values.pop("output", None)
    try:
        item.v = validate(VideoRequest(**values), ctx.protocol_name)
    except FieldError as exc:
        item.problems.append(exc.message if exc.message.startswith(exc.field) else f"{exc.field}: {exc.message}")
        return item
    except UsageError as exc:
        item.problems.append(exc.message)
        return item
    for m in item.v.media.values():  # the rows of a batch often share an image: hash it for the first only
        if m.local:
            m.local = files.setdefault(m.local, m.local)
    what = "output" if "output" in row.values else "--name"
    try:
        if what == "output":
            used = check_template(item.template, "output")
        unset = [n for n in used if n in ("seed", "duration", "resolution") and getattr(item.v.request, n) is None]
        if unset:
            raise UsageError(f"{what} uses {{{unset[0]}}}, which this row does not set")
        item.dest = item.name(out_dir)
        # A template with {task_id} must work once the id is known: try it now, with an id of a usual length.
        trial = item.dest or item.name(out_dir, "0" * 36)
        assert trial is not None
        check_name(trial)
    except UsageError as exc:
        item.problems.append(exc.message)
        return item
    item.done = _saved_before(ctx, item, out_dir)
    if item.dest is not None and item.done is None:
        from wanvid.gateway.download import check_target

        try:
            check_target(item.dest, force)
        except WanvidError as exc:
            item.problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        inputs = [m.local.path for m in item.v.media.values() if m.local]
        if item.dest.exists() and any(_same_file(item.dest, path) for path in inputs):  # a stat only if it exists
            item.problems.append(f"output {item.dest} is one of the row's inputs")
    if item.done is None and not item.problems:
        _host(ctx, item, hosting)
    return item


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # gone since it was checked: not the same file
        return False


def _host(ctx: Ctx, item: Item, hosting: Hosting | None) -> None:
    """The row's local files that go by URL (uploaded when its task is created), or why they cannot."""
    from wanvid.gateway.upload import Hosting, prepare

    assert item.v is not None
    try:
        prepare(item.v, hosting or Hosting(None, False), out=ctx.out)
    except FieldError as exc:
        item.problems.append(f"{exc.field}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    except UsageError as exc:
        item.problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))


def _saved_before(ctx: Ctx, item: Item, out_dir: Path) -> str | None:
    """The task whose video for this row's very request is on disk where the row's name puts it."""
    assert item.v is not None
    if item.dest is not None:  # a stat first: in a new batch no file is there, and no query is needed
        return already_saved(ctx, item.v, item.dest) if item.dest.is_file() else None
    for path, task_id in ctx.journal.outputs_for(item.v.fingerprint(ctx.base)):
        if item.name(out_dir, task_id) == Path(path):
            return already_saved(ctx, item.v, Path(path))
    return None


def _cross_check(ctx: Ctx, items: list[Item]) -> None:
    """Two rows must not write the same file, nor ask for the same video (the second would reuse the first's task)."""
    files: dict[Path, int] = {}
    requests: dict[str, int] = {}
    for item in items:
        if item.v is None:
            continue
        if item.dest is not None:
            first = files.setdefault(item.dest, item.row)
            if first != item.row:
                item.problems.append(f"writes the same file as row {first} ({item.dest.name}); put {{row}} in --name")
        fingerprint = item.v.fingerprint(ctx.base)
        first = requests.setdefault(fingerprint, item.row)
        if first != item.row:
            item.problems.append(
                f"asks for exactly what row {first} asks (same inputs, prompt and options); "
                "give it another seed or remove it"
            )


def run(
    ctx: Ctx,
    items: list[Item],
    board: BatchBoard,
    *,
    out_dir: Path,
    concurrency: int,
    gate: Gate,
    wait_opts: dict[str, Any],
    force: bool,
    metadata: bool,
    hook: str | None,
    record: Any,
) -> list[RowResult]:
    """Run every item that can run; ``record(result)`` is called as each row ends (from this thread)."""
    stop = threading.Event()  # Ctrl-C: start no row, and end the running ones at their next step
    abort = threading.Event()  # an auth failure: every other row would fail the same way
    results: dict[int, RowResult] = {}

    def finish(result: RowResult) -> None:
        """Every row ends here, once: on the board, in the results file and in what run returns."""
        results[result.row] = result
        detail = result.output if result.status.upper() in GOOD else (result.error or {}).get("message")
        board.event(result.row, result.status.upper(), task_id=result.task_id, detail=detail)
        record(result)

    for item in items:
        if item.problems:
            finish(RowResult(item.row, "invalid", error=_problem(item)))
        elif item.done is not None:
            finish(RowResult(item.row, "already_saved", item.done, str(item.dest), reused=True))
    todo = [item for item in items if item.row not in results]
    worker = _Worker(ctx, board, stop, abort, gate, out_dir, wait_opts, force, metadata, hook)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="row")
    futures: dict[Future[RowResult], Item] = {pool.submit(worker.run, item): item for item in todo}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait_any(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                finish(future.result())
            board.tick()
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM/SIGHUP (session.stop_signals)
        import signal

        worker.signum = signal_number(interrupt)
        stop.set()
        for sig in STOP_SIGNALS:
            signal.signal(sig, worker.second_interrupt)
        ctx.out.note("interrupted: no new row starts; running rows stop at their next step and stay resumable")
        for future in futures:
            future.cancel()
        for future, item in futures.items():  # rows that ended meanwhile, and those still stopping
            if item.row not in results and not future.cancelled():
                finish(future.result())
    finally:
        stop.set()  # whatever ended the loop, no worker must go on (shutdown would wait for it)
        pool.shutdown(wait=True, cancel_futures=True)
    for item in todo:
        if item.row not in results:
            stopped = Interrupted("the batch was interrupted before this row started", signum=worker.signum)
            error = _error(stopped) if stop.is_set() else None
            finish(RowResult(item.row, "not_started", error=error))
    return [results[item.row] for item in items]


class _Worker:
    """Runs one row at a time in a pool thread, with its own Ctx (journal connection, client, display)."""

    def __init__(
        self,
        ctx: Ctx,
        board: BatchBoard,
        stop: threading.Event,
        abort: threading.Event,
        gate: Gate,
        out_dir: Path,
        wait_opts: dict[str, Any],
        force: bool,
        metadata: bool,
        hook: str | None,
    ) -> None:
        self.ctx, self.board, self.stop, self.abort, self.gate = ctx, board, stop, abort, gate
        self.out_dir, self.wait_opts, self.force, self.metadata, self.hook = out_dir, wait_opts, force, metadata, hook
        self.signum = 2  # the signal that stopped the batch (SIGINT unless SIGTERM/SIGHUP): rows exit 128 + it
        self.paying = threading.Condition()  # rows between sending a create and journaling its answer
        self.unjournaled = 0

    @contextmanager
    def submitting(self) -> Iterator[None]:
        with self.paying:
            self.unjournaled += 1
        try:
            yield
        finally:
            with self.paying:
                self.unjournaled -= 1
                self.paying.notify_all()

    def second_interrupt(self, signum: int, frame: object) -> None:
        """A second Ctrl-C ends the batch now, but not between a gateway's create answer and the journal:
        that task is paid for, and only the journal lets a rerun find it. (A third one ends it at once.)"""
        import signal

        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        with self.paying:
            if self.unjournaled:
                sys.stderr.write(f"waiting for {self.unjournaled} new task(s) to be journaled\n")
            # One create attempt: its headers within READ_TIMEOUT (the client's watchdog), its answer's body
            # within another; past that it has failed and made nothing the journal could keep.
            self.paying.wait_for(lambda: self.unjournaled == 0, timeout=2 * READ_TIMEOUT + CONNECT_TIMEOUT + 5)
        os._exit(128 + signum)

    def nap(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise self._stopped()  # the row's steps turn this into Interrupted, naming the task

    def check(self) -> None:
        if self.stop.is_set():
            raise self._stopped()

    def _stopped(self) -> KeyboardInterrupt:
        """What a row sees when the batch is stopped: the signal that stopped it decides its exit code."""
        return stop_for(self.signum)

    def run(self, item: Item) -> RowResult:
        if self.stop.is_set() or self.abort.is_set():
            return RowResult(item.row, "not_started")
        view = RowOutput(self.board, item.row, self.ctx.out.secrets, self.check)
        ctx = replace(self.ctx, view=view, gate=self.gate, sleep=self.nap)
        known: dict[str, str] = {}  # the task id and output path, as soon as they exist
        try:
            return self._steps(ctx, item, known)
        except TaskFailed as exc:
            return self._ended(ctx, item, "failed", exc, known)
        except Interrupted as exc:
            return self._ended(ctx, item, "interrupted", exc, known)
        except WanvidError as exc:
            if isinstance(exc, AuthError):
                self.abort.set()
            return self._ended(ctx, item, "error", exc, known)
        except KeyboardInterrupt:
            stopped = Interrupted("the batch was interrupted", signum=self.signum)
            return self._ended(ctx, item, "interrupted", stopped, known)
        except Exception as exc:  # a bug in one row must not take the others down
            return self._ended(ctx, item, "error", WanvidError(f"unexpected {type(exc).__name__}: {exc}"), known)
        finally:
            if "journal" in ctx.__dict__:
                ctx.journal.close()

    def _steps(self, ctx: Ctx, item: Item, known: dict[str, str]) -> RowResult:
        assert item.v is not None
        self.board.event(item.row, "SUBMITTING")
        client = ctx.client()
        with self.submitting():
            task, entry, reused = submit_or_reuse(ctx, client, item.v, False, output=item.dest)
        known["task_id"] = task.id
        self.board.event(item.row, task.status.value, task_id=task.id)
        dest = item.dest or item.name(self.out_dir, task.id)
        assert dest is not None
        if item.dest is None:
            ctx.journal.update(ctx.base, task.id, output_path=str(dest))
            done = already_saved(ctx, item.v, dest)
            if done is not None:
                return RowResult(item.row, "already_saved", done, str(dest), reused=True)
        known["dest"] = str(dest)
        fetch = fetch_cmd(ctx, task.id, dest, self.force)
        resume = f"{ctx.again('wait', task.id)} && {fetch}"
        task = wait_task(
            ctx, client, task.id, self.wait_opts["timeout"], self.wait_opts["poll_interval"], entry, resume
        )
        got = save_video(ctx, client, task, dest, force=self.force, metadata=self.metadata, entry=entry, resume=fetch)
        known["output"] = str(got.path)
        hook_error = run_hook(ctx, self.hook, task, got, entry, row=str(item.row))
        if hook_error is not None:
            return self._ended(ctx, item, "error", hook_error, known, reused)
        return RowResult(item.row, "saved", task.id, str(got.path), None, reused)

    def _ended(
        self, ctx: Ctx, item: Item, status: str, exc: WanvidError, known: dict[str, str], reused: bool = False
    ) -> RowResult:
        exc.task_id = exc.task_id or known.get("task_id")
        exc.message, exc.hint = ctx.out.redact(exc.message), exc.hint and ctx.out.redact(exc.hint)
        # A step after the rename can fail (the sidecar, the journal): the video is there all the same.
        saved = known.get("output") or (known["dest"] if "dest" in known and Path(known["dest"]).is_file() else None)
        return RowResult(item.row, status, exc.task_id, saved, _error(exc), reused)


def _error(exc: WanvidError) -> dict[str, Any]:
    doc: dict[str, Any] = exc.to_dict()["error"]
    return doc


def _problem(item: Item) -> dict[str, Any]:
    return _error(UsageError("; ".join(item.problems), hint="fix the row, or pass --skip-invalid to run the others"))


def worst(results: list[RowResult]) -> int:
    """The exit code of the worst failure class among the rows, 0 when every row succeeded."""
    codes = {r.exit_code for r in results} - {0}
    if not codes:
        return 0
    return min(codes, key=lambda c: SEVERITY.index(c) if c in SEVERITY else len(SEVERITY))


def summary(results: list[RowResult]) -> dict[str, int]:
    counts = {"rows": len(results), **dict.fromkeys(STATUSES, 0)}
    for r in results:
        counts[r.status] += 1
    return counts


def document(manifest: Path, results_path: Path, results: list[RowResult]) -> dict[str, Any]:
    """The batch result of ``--json`` (docs/schema/batch.json)."""
    return {
        "manifest": str(manifest.absolute()),
        "results": str(results_path),
        "rows": [r.to_dict() for r in results],
        "summary": summary(results),
        "exit_code": worst(results),
    }


class ResultsFile:
    """The results JSONL: a line per row as it ends (so a crash keeps what was learnt), rewritten in row
    order when the batch is over.

    Nothing planted is followed or written through. The file is started empty, and rewritten at the end,
    by replacing it with a temporary that ``mkstemp`` creates (``O_EXCL``, a name nobody can guess) in its
    directory; a row's line is appended through ``O_APPEND | O_NOFOLLOW``, opened again for each row so
    that it lands in the file as it is now. So two batches sharing the file never truncate each other's
    writes nor meet on one temporary: each line is whole, and the file ends as the batch that finished
    last wrote it. A target that is a link, a directory or a device is refused before anything is sent;
    a full disk is exit 8 (every task is in the journal: rerunning the batch picks them up).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mode = 0o666 & ~_umask()  # what open() would give the file; mkstemp makes it 0600
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise self._failed(exc) from None
        if st is not None and not stat.S_ISREG(st.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode) else ""
            raise UsageError(
                f"the results file {path} is {kind or 'not a regular file (a device or a pipe)'}",
                hint="pass --results the path of a regular file, or remove it",
            )
        self._replace("")  # an earlier run's lines must not read as this one's

    def add(self, result: RowResult) -> None:
        data = (json.dumps(scrub_json(result.to_dict()), ensure_ascii=False) + "\n").encode()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, self.mode)
        except OSError as exc:
            raise self._failed(exc) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO put there since the batch started
                raise UsageError(f"the results file {self.path} is no longer a regular file", hint="pass --results")
            while data:  # one line in one write, as a rule: lines of another batch do not cut into it
                data = data[os.write(fd, data) :]
        except OSError as exc:
            raise self._failed(exc) from None
        finally:
            os.close(fd)

    def close(self, results: list[RowResult]) -> None:
        self._replace("".join(json.dumps(scrub_json(r.to_dict()), ensure_ascii=False) + "\n" for r in results))

    def _replace(self, text: str) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise self._failed(exc) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                os.fchmod(f.fileno(), self.mode)
            os.replace(tmp, self.path)
        except OSError as exc:
            with suppress(OSError):
                os.unlink(tmp)
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> WanvidError:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return UsageError(f"the directory of the results file {self.path} does not exist", hint="pass --results")
        if exc.errno in _FULL:
            return StorageError(
                f"no space left on the device for the results file {self.path}",
                hint="free some space and rerun the same command: saved rows are skipped, paid tasks picked up",
            )
        return StorageError(f"cannot write the results file {self.path}: {exc.strerror}", hint="pass --results")


# Opening the results file: never through a link, never blocking on a FIFO (0 where the OS has no such flag).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_FULL = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))  # EFBIG: a file-size limit


def _umask() -> int:
    current = os.umask(0)  # the only way to read it; done before the rows' threads start
    os.umask(current)
    return current
