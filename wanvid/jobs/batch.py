"""``wanvid batch``: every row of a manifest run to a video by the same steps as ``wanvid run``.

The flow is one way: ``plan`` (every row read, merged with the command line's defaults, validated and
given its output file; rows already saved found in the journal) → ``run`` (a pool of workers, one row
each at a time, sharing one rate-limit ``Gate``) → a ``RowResult`` per row, appended to the results
JSONL as it ends → the summary and the exit code of the worst failure.

``dry_run`` stops after the plan: it tells, from the manifest and the journal alone, what each row would
do (create, reuse, skip as saved) and the seconds of video that would be billed.

Never paying twice rests on the journal, as for ``run``: a row whose video is already saved where its
name says is not run at all, and a row whose identical request has a live task reuses it. Ctrl-C stops
starting rows, lets each running one journal what it has, and leaves every submitted task resumable;
rerunning the same command picks them all up.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import stat
import string
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_any
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wanvid import config, redact
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
from wanvid.gateway.client import CONNECT_TIMEOUT, READ_TIMEOUT, Gate
from wanvid.jobs.pipeline import Job, make_video
from wanvid.jobs.session import Session
from wanvid.jobs.signals import STOP_SIGNALS, armed
from wanvid.jobs.steps import already_saved, check_name, check_wait, stem
from wanvid.redact import scrub_json
from wanvid.report import FINAL, GOOD, DownloadView, PollView, Reporter
from wanvid.rules.manifest import Row
from wanvid.rules.request import Validated, VideoRequest, validate

if TYPE_CHECKING:
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
    s: Session,
    rows: list[Row],
    defaults: dict[str, Any],
    *,
    out_dir: Path,
    template: str,
    force: bool,
    hosting: Hosting | None = None,
    allow_empty_prompt: bool = False,
) -> list[Item]:
    """Every row checked before anything is sent: its request, its file, and whether it is already done.
    ``hosting``: the upload settings (``wanvid.gateway.upload``) for local files that go by URL;
    ``allow_empty_prompt``: send a blank prompt instead of refusing the row (``validate``)."""
    used = check_template(template)
    files: dict[LocalMedia, LocalMedia] = {}  # one inspected file, one object: its SHA-256 is read once
    items = [
        _plan_row(s, row, defaults, out_dir, template, used, force, hosting, files, allow_empty_prompt) for row in rows
    ]
    _cross_check(s, items)
    return items


def _plan_row(
    s: Session,
    row: Row,
    defaults: dict[str, Any],
    out_dir: Path,
    template: str,
    used: list[str],
    force: bool,
    hosting: Hosting | None,
    files: dict[LocalMedia, LocalMedia],
    allow_empty_prompt: bool = False,
) -> Item:
    item = Item(row.number, template=row.values.get("output", template), problems=list(row.problems))
    if item.problems:
        return item
    values = {**{k: v for k, v in defaults.items() if v is not None}, **row.values}
    values.pop("output", None)
    try:
        item.v = validate(VideoRequest(**values), s.protocol, allow_empty_prompt=allow_empty_prompt)
    except FieldError as exc:
        name = row.files.get(exc.field, exc.field)  # a prompt read from the row's prompt_file: named by that column
        item.problems.append(exc.message if exc.message.startswith(name) else f"{name}: {exc.message}")
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
    item.done = _saved_before(s, item, out_dir)
    if item.dest is not None and item.done is None and item.dest.parent.is_dir():  # not there: a dry run's
        from wanvid.gateway.download import check_target

        try:
            check_target(item.dest, force)
        except WanvidError as exc:
            item.problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        inputs = [m.local.path for m in item.v.media.values() if m.local]
        if item.dest.exists() and any(_same_file(item.dest, path) for path in inputs):  # a stat only if it exists
            item.problems.append(f"output {item.dest} is one of the row's inputs")
    if item.done is None and not item.problems:
        _host(s, item, hosting)
    return item


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # gone since it was checked: not the same file
        return False


def _host(s: Session, item: Item, hosting: Hosting | None) -> None:
    """The row's local files that go by URL (uploaded when its task is created), or why they cannot."""
    from wanvid.gateway.upload import Hosting, prepare

    assert item.v is not None
    try:
        prepare(item.v, hosting or Hosting(None, False), out=s.report)
    except FieldError as exc:
        item.problems.append(f"{exc.field}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    except UsageError as exc:
        item.problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))


def _saved_before(s: Session, item: Item, out_dir: Path) -> str | None:
    """The task whose video for this row's very request is on disk where the row's name puts it."""
    assert item.v is not None
    if item.dest is not None:  # a stat first: in a new batch no file is there, and no query is needed
        return already_saved(s, item.v, item.dest) if item.dest.is_file() else None
    for path, task_id in s.journal.outputs_for(item.v.fingerprint(s.base)):
        if item.name(out_dir, task_id) == Path(path):
            return already_saved(s, item.v, Path(path))
    return None


def _cross_check(s: Session, items: list[Item]) -> None:
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
        fingerprint = item.v.fingerprint(s.base)
        first = requests.setdefault(fingerprint, item.row)
        if first != item.row:
            item.problems.append(
                f"asks for exactly what row {first} asks (same inputs, prompt and options); "
                "give it another seed or remove it"
            )


def run_batch(
    s: Session,
    manifest: Path,
    defaults: Mapping[str, Any],
    *,
    job: Job = Job(),
    output_dir: str | Path = ".",
    name: str = DEFAULT_NAME,
    concurrency: int = 4,
    stagger: float = 0.0,
    results: str | Path | None = None,
    skip_invalid: bool = False,
    uploads: Mapping[str, Any] | None = None,
    board: Callable[[list[tuple[int, str]]], AbstractContextManager[Board]] | None = None,
    allow_empty_prompt: bool = False,
) -> dict[str, Any]:
    """Make a video for every row of ``manifest`` (``defaults``: values for the rows that do not set them), at
    most ``concurrency`` at a time; every row goes through ``make_video`` with ``job``'s options. Return the
    batch document (docs/schema/batch.json); its ``exit_code`` is the worst row's. ``uploads``: the upload
    options (``wanvid.gateway.upload.resolve``); ``board``: what shows the rows (default: ``LogBoard``);
    ``allow_empty_prompt``: send a blank prompt instead of refusing the row."""
    check_options(job, concurrency, stagger)
    out_dir, items = _prepare(
        s, manifest, defaults, job, output_dir, name, skip_invalid, uploads, allow_empty_prompt, create=True
    )
    s.client()  # a missing key or an insecure URL stops the batch here, not once per row
    results_path = _results_path(manifest, out_dir, results, items)
    results_file = ResultsFile(results_path)
    labels = [(item.row, item.dest.name if item.dest else item.template) for item in items]
    with (board or (lambda rows: LogBoard(rows, s.report)))(labels) as shown:
        done = run(
            s,
            items,
            shown,
            out_dir=out_dir,
            concurrency=concurrency,
            gate=Gate(spacing=stagger),
            job=job,
            record=results_file.add,
        )
    results_file.close(done)
    doc = document(manifest, results_path, done)
    counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in doc["summary"].items() if n and k != "rows")
    s.report.info(f"{len(done)} row(s): {counts}; results in {results_path}")
    return doc


def _prepare(
    s: Session,
    manifest: Path,
    defaults: Mapping[str, Any],
    job: Job,
    output_dir: str | Path,
    name: str,
    skip_invalid: bool,
    uploads: Mapping[str, Any] | None,
    allow_empty_prompt: bool,
    *,
    create: bool,
) -> tuple[Path, list[Item]]:
    """The manifest read and every row planned (``plan``); invalid rows listed, and refused unless
    ``skip_invalid``. ``create``: make the output directory (a dry run does not)."""
    from wanvid.gateway.upload import resolve as upload_settings
    from wanvid.rules import manifest as manifest_file

    out_dir = config.expand(str(output_dir), "--output-dir").resolve()  # resolved: the journal knows videos by path
    rows = manifest_file.read(manifest)
    try:
        if create:
            out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the output directory {out_dir}: {exc.strerror}") from None
    hosting = upload_settings(s.profile_name, **(uploads or {}))
    items = plan(
        s,
        rows,
        dict(defaults),
        out_dir=out_dir,
        template=name,
        force=job.force,
        hosting=hosting,
        allow_empty_prompt=allow_empty_prompt,
    )
    for warning in dict.fromkeys(w for item in items if item.v for w in item.v.warnings):
        s.report.warn(warning)
    invalid = [item for item in items if item.problems]
    for item in invalid:
        s.report.note(f"row {item.row}: " + "; ".join(item.problems))
    if invalid and not skip_invalid:
        raise InvalidRows(
            f"{len(invalid)} of {len(items)} row(s) of {manifest} are invalid (listed above); nothing was sent",
            "fix them, or pass --skip-invalid to run the valid rows",
            invalid,
        )
    return out_dir, items


def _results_path(manifest: Path, out_dir: Path, results: str | Path | None, items: list[Item]) -> Path:
    results_path = out_dir / f"{manifest.stem}.results.jsonl"
    if results:  # its directory resolved, not the file: a link there is refused (ResultsFile), never followed
        given = config.expand(str(results), "--results").absolute()
        results_path = given.parent.resolve() / given.name
    if results_path == manifest.resolve() or results_path in {item.dest for item in items}:
        raise UsageError(f"--results {results_path} is the manifest or a row's video", hint="pass another --results")
    return results_path


def dry_run(
    s: Session,
    manifest: Path,
    defaults: Mapping[str, Any],
    *,
    job: Job = Job(),
    output_dir: str | Path = ".",
    name: str = DEFAULT_NAME,
    results: str | Path | None = None,
    skip_invalid: bool = False,
    uploads: Mapping[str, Any] | None = None,
    allow_empty_prompt: bool = False,
) -> dict[str, Any]:
    """What ``run_batch`` would do, from the manifest and the journal alone: nothing is sent, uploaded or
    written. The plan document (docs/schema/batch-plan.json): each row's action (``create``: a new task is
    paid for; ``reuse``: the journal's live task for the identical request; ``already_saved``: its video is on
    disk; ``invalid``), its output file and its billed seconds, and the total of what would be paid for."""
    out_dir, items = _prepare(
        s, manifest, defaults, job, output_dir, name, skip_invalid, uploads, allow_empty_prompt, create=False
    )
    results_path = _results_path(manifest, out_dir, results, items)
    rows = [_planned_row(s, item, job) for item in items]
    billed = sum(r["seconds"] for r in rows if r["action"] == "create")
    actions = {a: sum(r["action"] == a for r in rows) for a in ("create", "reuse", "already_saved", "invalid")}
    return {
        "manifest": str(manifest.absolute()),
        "output_dir": str(out_dir),
        "results": str(results_path),
        "rows": rows,
        "summary": {"rows": len(rows), **actions, "billed_seconds": billed},
    }


def _planned_row(s: Session, item: Item, job: Job) -> dict[str, Any]:
    from wanvid.rules.models import spec_for

    output = str(item.dest) if item.dest is not None else item.template  # a {task_id} name: known once it exists
    row: dict[str, Any] = {"row": item.row, "action": "invalid", "task_id": None, "output": output, "seconds": 0}
    if item.v is None or item.problems:
        return {**row, "problems": item.problems}
    r = item.v.request
    spec = spec_for(r.model)
    seconds = r.duration or (spec.default_duration if spec else 5)
    if item.done is not None:
        return {**row, "action": "already_saved", "task_id": item.done, "seconds": seconds, "problems": []}
    live = None if job.new else s.journal.same_request(item.v.fingerprint(s.base), s.base, s.profile_name)
    if live is not None:
        return {**row, "action": "reuse", "task_id": live.id, "seconds": seconds, "problems": []}
    return {**row, "action": "create", "seconds": seconds, "problems": []}


def check_options(job: Job, concurrency: int, stagger: float) -> None:
    """The batch's own options, checked before anything else (settings, the manifest) is read."""
    check_wait(job.timeout, job.poll_interval)
    if not 1 <= concurrency <= 32:
        raise UsageError("--concurrency must be from 1 to 32")
    if not math.isfinite(stagger) or not 0 <= stagger <= 3600:
        raise UsageError("--stagger must be a number of seconds from 0 to 3600")


class LogBoard:
    """The board of a batch run from Python: each row's final status told to ``report`` (the session's reporter:
    the ``wanvid`` logger unless the program passed its own), and each row's job reporting to it too."""

    def __init__(self, rows: list[tuple[int, str]], report: Reporter) -> None:
        self.log = report

    def __enter__(self) -> LogBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def event(self, row: int, status: str, *, task_id: str | None = None, detail: str | None = None) -> None:
        if status in FINAL:
            self.log.info(f"row {row}: {status}" + (f" {detail}" if detail else ""))

    def tick(self) -> None:
        pass

    def reporter(self, row: int, check: Callable[[], None]) -> Reporter:
        return _Checked(self.log, check)


class _Checked:
    """A reporter whose download progress also checks whether the batch was stopped (``check`` raises)."""

    def __init__(self, report: Reporter, check: Callable[[], None]) -> None:
        self.report, self.check = report, check
        self.chatty = report.chatty
        self.info, self.note, self.warn, self.debug = report.info, report.note, report.warn, report.debug
        self.stage, self.polling = report.stage, report.polling

    @contextmanager
    def downloading(self, name: str, task_id: str) -> Iterator[DownloadView]:
        with self.report.downloading(name, task_id) as view:
            yield _CheckedDownload(view, self.check)


class _CheckedDownload:
    def __init__(self, view: DownloadView, check: Callable[[], None]) -> None:
        self.view, self.check = view, check

    def start(self, total: int | None) -> None:
        self.view.start(total)

    def advance(self, n: int) -> None:
        self.view.advance(n)
        self.check()


class Board(Protocol):
    """What a batch shows while it runs (the CLI's live table or log lines; ``LogBoard`` for a library user)."""

    def event(self, row: int, status: str, *, task_id: str | None = None, detail: str | None = None) -> None:
        """A row's status: a task status, DOWNLOADING, or one of FINAL (``detail``: its output or error)."""
        ...

    def tick(self) -> None:
        """Called about twice a second while rows run."""
        ...

    def reporter(self, row: int, check: Callable[[], None]) -> Reporter:
        """The reporter of one row's job; ``check`` raises when the batch is stopped (call it on progress)."""
        ...


def run(
    s: Session,
    items: list[Item],
    board: Board,
    *,
    out_dir: Path,
    concurrency: int,
    gate: Gate,
    job: Job,
    record: Callable[[RowResult], None],
) -> list[RowResult]:
    """Run every item that can run, each through ``make_video`` with ``job``'s options; ``record(result)`` is
    called as each row ends (from this thread)."""
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
    previous: dict[int, Any] = {}  # the handlers a stop replaced
    worker = _Worker(s, board, stop, abort, gate, out_dir, job)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="row")
    futures: dict[Future[RowResult], Item] = {pool.submit(worker.run, item): item for item in todo}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait_any(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                finish(future.result())
            board.tick()
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM/SIGHUP (jobs.signals.stop_signals)
        worker.signum = signal_number(interrupt)
        stop.set()
        if armed():  # under the CLI (jobs.signals.stop_signals): a second signal ends the batch, see second_interrupt
            previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
            for sig in STOP_SIGNALS:
                signal.signal(sig, worker.second_interrupt)
        s.report.note("interrupted: no new row starts; running rows stop at their next step and stay resumable")
        for future in futures:
            future.cancel()
        for future, item in futures.items():  # rows that ended meanwhile, and those still stopping
            if item.row not in results and not future.cancelled():
                finish(future.result())
    finally:
        stop.set()  # whatever ended the loop, no worker must go on (shutdown would wait for it)
        pool.shutdown(wait=True, cancel_futures=True)
        for sig, handler in previous.items():  # as they were before the batch
            signal.signal(sig, handler)
    for item in todo:
        if item.row not in results:
            finish(_not_started(item.row, worker.signum if stop.is_set() else None))
    return [results[item.row] for item in items]


def _not_started(row: int, signum: int | None) -> RowResult:
    """A row no worker began: after a stop signal (``signum``), its error says so with that signal's exit code;
    after an abort (a refused key) it has none of its own."""
    if signum is None:
        return RowResult(row, "not_started")
    stopped = Interrupted("the batch was interrupted before this row started", signum=signum)
    return RowResult(row, "not_started", error=_error(stopped))


class _Worker:
    """Runs one row at a time in a pool thread, with its own session (display, sleep; the batch's journal)."""

    def __init__(
        self,
        s: Session,
        board: Board,
        stop: threading.Event,
        abort: threading.Event,
        gate: Gate,
        out_dir: Path,
        job: Job,
    ) -> None:
        self.s, self.board, self.stop, self.abort, self.gate = s, board, stop, abort, gate
        self.out_dir, self.job = out_dir, job
        self.signum = 2  # the signal that stopped the batch (SIGINT unless SIGTERM/SIGHUP): rows exit 128 + it
        self.paying = threading.Condition()  # rows between sending a create and journaling its answer
        self.unjournaled = 0

    def paid(self, delta: int) -> None:
        with self.paying:
            self.unjournaled += delta
            self.paying.notify_all()

    def second_interrupt(self, signum: int, frame: object) -> None:
        """A second Ctrl-C ends the batch now, but not between a gateway's create answer and the journal:
        that task is paid for, and only the journal lets a rerun find it. (A third one ends it at once.)"""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        with self.paying:
            if self.unjournaled:
                self.s.report.note(f"waiting for {self.unjournaled} new task(s) to be journaled")
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
        if self.stop.is_set() or self.abort.is_set():  # picked up as the batch stopped: the same as one never picked up
            return _not_started(item.row, self.signum if self.stop.is_set() else None)
        track = _RowTrack(self.board, item.row, self.board.reporter(item.row, self.check), self)
        s = self.s.for_row(track, self.gate, self.nap)
        try:
            return self._steps(s, item, track)
        except TaskFailed as exc:
            return track.ended("failed", exc)
        except Interrupted as exc:
            return track.ended("interrupted", exc)
        except WanvidError as exc:
            if isinstance(exc, AuthError):
                self.abort.set()
            return track.ended("error", exc)
        except KeyboardInterrupt:
            stopped = Interrupted("the batch was interrupted", signum=self.signum)
            return track.ended("interrupted", stopped)
        except Exception as exc:  # a bug in one row must not take the others down
            return track.ended("error", WanvidError(f"unexpected {type(exc).__name__}: {exc}"))
        finally:
            track.settle()
            s.close()

    def _steps(self, s: Session, item: Item, track: _RowTrack) -> RowResult:
        assert item.v is not None

        def named(task_id: str) -> Path:  # a --name with {task_id}
            dest = item.name(self.out_dir, task_id)
            assert dest is not None
            return dest

        job = replace(self.job, request=item.v, dest=item.dest or named, hook_env={"row": str(item.row)})
        video = make_video(s, job)
        if video.already_saved:
            return RowResult(item.row, "already_saved", video.task_id, str(video.path), reused=True)
        if video.hook_error is not None:  # the video is saved; the row is an error all the same (exit 9)
            return track.ended("error", video.hook_error, reused=video.reused)
        return RowResult(item.row, "saved", video.task_id, str(video.path), None, video.reused)


class _RowTrack:
    """One row's reporter: the job's stages go to the board and are remembered (task, output path), so
    a row that fails late still reports its task and a video already saved; everything, stages included,
    also goes to the row's own view."""

    def __init__(self, board: Board, row: int, view: Reporter, worker: _Worker) -> None:
        self.board, self.row, self.view, self.worker = board, row, view, worker
        self.task_id: str | None = None
        self.dest: Path | None = None
        self.saved: Path | None = None
        self.paying = False  # between sending the create and journaling its answer

    @property
    def chatty(self) -> bool:
        return self.view.chatty

    def info(self, text: str) -> None:
        self.view.info(text)

    def note(self, text: str) -> None:
        self.view.note(text)

    def warn(self, text: str) -> None:
        self.view.warn(text)

    def throttled(self, reason: str | None) -> None:
        """Why the row waits on the gateway's rate limit (None: it no longer does), for the board to show."""
        show = getattr(self.view, "throttled", None)
        if show is not None:
            show(reason)

    def debug(self, text: str) -> None:
        self.view.debug(text)

    def polling(self, task_id: str, eta: float | None = None, age: float = 0.0) -> AbstractContextManager[PollView]:
        return self.view.polling(task_id, eta, age)

    def downloading(self, name: str, task_id: str) -> AbstractContextManager[DownloadView]:
        return self.view.downloading(name, task_id)

    def stage(
        self, stage: str, *, task_id: str | None = None, status: str | None = None, dest: Path | None = None
    ) -> None:
        self.view.stage(stage, task_id=task_id, status=status, dest=dest)
        if stage == "SUBMITTING":
            self.paying = True
            self.worker.paid(+1)
            self.board.event(self.row, "SUBMITTING")
            return
        self.settle()
        self.task_id = task_id or self.task_id
        if stage in ("CREATED", "REUSED"):
            self.board.event(self.row, status or "PENDING", task_id=task_id)
        elif stage == "NAMED":
            self.dest = dest
        elif stage == "SAVED":
            self.saved = dest

    def settle(self) -> None:
        """The create's answer is journaled (or the create failed): a second Ctrl-C need not wait for this row."""
        if self.paying:
            self.paying = False
            self.worker.paid(-1)

    def ended(self, status: str, exc: WanvidError, *, reused: bool = False) -> RowResult:
        exc.task_id = exc.task_id or self.task_id
        exc.message, exc.hint = redact.scrub(exc.message), exc.hint and redact.scrub(exc.hint)
        # A step after the rename can fail (the sidecar, the journal): the video is there all the same.
        saved = self.saved or (self.dest if self.dest is not None and self.dest.is_file() else None)
        return RowResult(self.row, status, exc.task_id, str(saved) if saved else None, _error(exc), reused)


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
