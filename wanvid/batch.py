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

import json
import os
import string
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_any
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import READ_TIMEOUT
from .errors import AuthError, FieldError, Interrupted, TaskFailed, UsageError, WanvidError
from .manifest import Row
from .output import FINAL, GOOD, BatchBoard, RowOutput
from .request import Validated, VideoRequest, validate
from .session import Ctx, already_saved, fetch_cmd, run_hook, save_video, stem, submit_or_reuse, wait_task

if TYPE_CHECKING:
    from .client import Gate
    from .upload import Hosting

DEFAULT_NAME = "{stem}.mp4"
NAME_FIELDS = ("row", "stem", "model", "seed", "duration", "resolution", "task_id")
# Worst first: what a script should look at first when several rows failed differently.
SEVERITY = (130, 1, 4, 8, 6, 124, 7, 9, 5, 3, 2)
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
    ``hosting``: the upload settings (``wanvid.upload``) for local files that go by URL."""
    used = check_template(template)
    items = [_plan_row(ctx, row, defaults, out_dir, template, used, force, hosting) for row in rows]
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
    hosting: Hosting | None = None,
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
    what = "output" if "output" in row.values else "--name"
    try:
        if what == "output":
            used = check_template(item.template, "output")
        unset = [n for n in used if n in ("seed", "duration", "resolution") and getattr(item.v.request, n) is None]
        if unset:
            raise UsageError(f"{what} uses {{{unset[0]}}}, which this row does not set")
        item.name(out_dir, "0" * 36)  # a template with {task_id} must work once the id is known: try it now
        item.dest = item.name(out_dir)
    except UsageError as exc:
        item.problems.append(exc.message)
        return item
    item.done = _saved_before(ctx, item, out_dir)
    if item.dest is not None and item.done is None:
        from .download import check_target

        try:
            check_target(item.dest, force)
        except WanvidError as exc:
            item.problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        inputs = [m.local.path.resolve() for m in item.v.media.values() if m.local]
        if item.dest.resolve() in inputs:
            item.problems.append(f"output {item.dest} is one of the row's inputs")
    if item.done is None and not item.problems:
        _host(ctx, item, hosting)
    return item


def _host(ctx: Ctx, item: Item, hosting: Hosting | None) -> None:
    """The row's local files that go by URL (uploaded when its task is created), or why they cannot."""
    from .upload import Hosting, prepare

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
    if item.dest is not None:
        return already_saved(ctx, item.v, item.dest)
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
    except KeyboardInterrupt:
        import signal

        stop.set()
        signal.signal(signal.SIGINT, worker.second_interrupt)
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
            error = _error(Interrupted("the batch was interrupted before this row started")) if stop.is_set() else None
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

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with self.paying:
            if self.unjournaled:
                sys.stderr.write(f"waiting for {self.unjournaled} new task(s) to be journaled\n")
            self.paying.wait_for(lambda: self.unjournaled == 0, timeout=READ_TIMEOUT + 5)
        os._exit(130)

    def nap(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise KeyboardInterrupt  # the row's steps turn this into Interrupted, naming the task

    def check(self) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt

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
            return self._ended(ctx, item, "interrupted", Interrupted("the batch was interrupted"), known)
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
    order when the batch is over."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.file = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the results file {path}: {exc.strerror}", hint="pass --results") from None

    def add(self, result: RowResult) -> None:
        self.file.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self, results: list[RowResult]) -> None:
        self.file.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in results), encoding="utf-8")
        os.replace(tmp, self.path)
