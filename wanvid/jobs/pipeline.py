"""The one job pipeline: a request (or a task) in, a verified MP4 on disk out.

``make_video`` is the only place where the steps are put together, for ``wanvid run``, ``wanvid
download``, every row of ``wanvid batch`` and ``wanvid.Wanvid.run``/``download``:

    checks before paying ─▶ submit_or_reuse ─▶ wait_task ─▶ save_video ─▶ run_hook
    (output writable,       (claim, create,    (poll until    (download, verify,   (--on-complete)
     not already saved)      journal first)     it ends)       journal, sidecar)

A ``Job`` says what to make and how; the session (``wanvid.jobs.session``) says with which settings,
journal and reporter. Each step gets what it needs as arguments (the task's protocol, the wait's
deadline, the resume command), so nothing is set on a shared object and read back. From the moment a
task is paid for, every way out, Ctrl-C included, names it and the command that finishes the job.

``task_status``, ``wait_for_task``, ``wait_tasks``, ``wait_unfinished`` and ``refresh`` are the use cases
that ask about tasks without saving anything (``status``, ``wait`` and ``list --refresh``). ``download_all``
saves every video of the last 48 h not yet on disk, one ``make_video`` of a task at a time. Every command
here is safe to repeat: a video the journal saved, still on disk as saved, is answered from the journal
without asking the gateway.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanvid.errors import (
    HookFailed,
    Interrupted,
    NotFound,
    TaskFailed,
    UsageError,
    WaitTimeout,
    WanvidError,
    signal_number,
)
from wanvid.jobs.session import Session
from wanvid.jobs.steps import (
    already_saved,
    check_wait,
    fetch_cmd,
    find_task,
    query_task,
    run_hook,
    safe,
    save_video,
    saved_copy,
    stem,
    submit_or_reuse,
    target,
    wait_task,
)

if TYPE_CHECKING:
    from wanvid.gateway.client import Client
    from wanvid.gateway.download import Downloaded
    from wanvid.rules.request import Validated
    from wanvid.rules.task import Task
    from wanvid.store.journal import Entry


@dataclass(frozen=True)
class Job:
    """One video to end up on disk: make it from ``request`` (run, a batch row), or save the video of task
    ``task_id`` (download; neither given: the journal's most recent task)."""

    request: Validated | None = None
    task_id: str | None = None
    output: str | None = None  # -o as given: a file or a directory; None: the default name in ``directory``
    directory: str | None = None  # where a video goes without -o (the profile's output_dir); None: the cwd
    dest: Path | Callable[[str], Path] | None = None  # an exact path, or one named after the task id (a batch row)
    # Upload options (``wanvid.gateway.upload.resolve``) for local files that go by URL, read only when the checks
    # before paying have passed; None: the request's files are placed already (a batch row, planned up front).
    uploads: Mapping[str, Any] | None = None
    new: bool = False  # pay for a new task even if a live one answers the identical request
    force: bool = False  # overwrite the output, and download again even if it is already saved
    metadata: bool = True  # write the <name>.json sidecar
    wait: bool = True  # a task not finished yet is waited for; False: it is an error (download)
    timeout: float = 1800.0
    poll_interval: float | None = None
    hook: str | None = None  # --on-complete
    hook_env: Mapping[str, str] = field(default_factory=dict)  # more WANVID_* variables for the hook
    new_hint: str | None = "--new"  # what pays for another task, as messages say it (None: nothing, in a batch)


@dataclass
class Video:
    """A job's outcome: the saved file and the task it came from."""

    task_id: str
    path: Path
    task: Task | None = None  # None when the video was already saved for this request and nothing was asked
    saved: Downloaded | None = None  # None when it was already saved
    entry: Entry | None = None
    reused: bool = False  # no new task was paid for
    metadata: bool = False  # a sidecar was written
    hook_error: HookFailed | None = None  # the video is saved all the same
    found: bool = False  # ``saved`` describes the file already on disk as the journal recorded it: nothing fetched

    @property
    def already_saved(self) -> bool:
        return self.saved is None or self.found

    def fields(self) -> dict[str, Any]:
        """The JSON fields every command that saves a video reports (docs/schema)."""
        from wanvid.store.records import sidecar_path

        if self.saved is None:
            return {"path": str(self.path)}
        info = self.saved.info
        return {
            "path": str(self.saved.path),
            "bytes": self.saved.size,
            "video": {"duration": info.duration, "width": info.width, "height": info.height},
            "metadata": str(sidecar_path(self.saved.path)) if self.metadata else None,
        }


def make_video(s: Session, job: Job, client: Client | None = None) -> Video:
    """Run ``job`` to a saved, verified video; raise the typed error of the step that failed (each carries its
    exit code, and names the task once one is paid for)."""
    check_wait(job.timeout, job.poll_interval)
    if job.request is None:
        return _save_task(s, job, client)
    v = job.request
    dest = _planned_dest(job, v)
    if dest is not None:
        done = None if (job.new or job.force) else already_saved(s, v, dest)
        if done is not None:
            hint = f"; pass {job.new_hint} to make another" if job.new_hint else ""
            s.report.note(f"{dest} is already saved from task {done} for the same request{hint}")
            return Video(done, dest, reused=True)
        _check_output(dest, v, job.force)
    if job.uploads is not None:
        _host(s, v, job.uploads)  # after the checks above: they look at local files as such
    client = client or s.client()
    protocol = s.protocol

    def then(task_id: str) -> str:  # the command that finishes the job, should it stop once the task exists
        wait = s.again("wait", task_id, protocol=protocol)
        return f"{wait} && {fetch_cmd(s, task_id, dest, job.force, protocol)}" if dest else wait

    s.report.stage("SUBMITTING")
    task, entry, reused = submit_or_reuse(s, client, v, job.new, output=dest, resume=then, new_hint=job.new_hint)
    try:  # from here on the task is paid for: every way out names it and the command that finishes the job
        s.report.stage("REUSED" if reused else "CREATED", task_id=task.id, status=task.status.value)
        if dest is None:
            assert callable(job.dest)
            dest = job.dest(task.id)
            s.journal.update(s.base, task.id, output_path=str(dest))
            done = already_saved(s, v, dest)
            if done is not None:
                return Video(done, dest, entry=entry, reused=True)
        s.report.stage("NAMED", task_id=task.id, dest=dest)
        fetch = fetch_cmd(s, task.id, dest, job.force, protocol)
        task = wait_task(s, client, task.id, protocol, job.timeout, job.poll_interval, entry, resume=then(task.id))
        return _finish(s, job, client, task, entry, dest, fetch, reused)
    except KeyboardInterrupt as stop:  # between the steps, which name the task themselves
        if dest is not None and _saved_here(s, task.id, dest):  # during the sidecar or the hook: the video is safe
            stopped = Interrupted("interrupted", signum=signal_number(stop))
            raise safe(stopped, task.id, s.again("status", task.id, protocol=protocol)) from None
        stopped = Interrupted(f"stopped; task {task.id} keeps running", signum=signal_number(stop))
        raise safe(stopped, task.id, then(task.id)) from None


def _save_task(s: Session, job: Job, client: Client | None, *, say_found: bool = True) -> Video:
    """download: the video of a task made earlier, where ``run`` meant it to go unless told otherwise.
    ``say_found``: a note when it is already saved there (download --all counts them in one line instead)."""
    from wanvid.gateway.download import check_target, default_name
    from wanvid.gateway.service import check_outcome
    from wanvid.rules.task import describe

    entry, task_id = find_task(s, job.task_id)
    protocol = s.protocol_for(entry)
    meant = entry.output_path if entry and entry.output_path else None  # where run meant it, or it was saved
    fallback = os.path.join(job.directory or "", default_name(task_id))  # the profile's output_dir, if any
    dest = job.dest if isinstance(job.dest, Path) else target(job.output, meant or fallback)
    found = None if job.force else saved_copy(s, task_id, dest)
    if found is not None:  # nothing to fetch, nor to ask the gateway: running the same download again is harmless
        if say_found:
            s.report.note(f"{dest} is already saved from task {task_id}; pass --force to download it again")
        return _found(task_id, found, entry)
    client = client or s.client()
    check_target(dest, job.force)
    task = check_outcome(query_task(s, client, task_id, protocol, entry), alive=entry is not None)
    fetch = fetch_cmd(s, task_id, dest, job.force, protocol)
    if not task.status.ended:
        if not job.wait:
            raise UsageError(
                f"task {task_id} is {describe(task)}, not finished yet",
                hint=f"wait for it with: {s.again('wait', task_id, protocol=protocol)}",
            )
        resume = f"{s.again('wait', task_id, protocol=protocol)} && {fetch}"
        task = wait_task(s, client, task_id, protocol, job.timeout, job.poll_interval, entry, resume=resume)
    try:
        return _finish(s, job, client, task, entry, dest, fetch, reused=True)
    except KeyboardInterrupt as stop:  # during the sidecar or the hook (the download names the task itself)
        stopped = Interrupted("interrupted", signum=signal_number(stop))
        raise safe(stopped, task_id, s.again("status", task_id, protocol=protocol)) from None


def _found(task_id: str, got: Downloaded, entry: Entry | None) -> Video:
    """The Video of a file already saved: its sidecar counts if it is there."""
    from wanvid.store.records import sidecar_path, task_from

    task = task_from(entry) if entry is not None else None
    sidecar = sidecar_path(got.path).is_file()
    return Video(task_id, got.path, task, got, entry, reused=True, metadata=sidecar, found=True)


def _finish(
    s: Session, job: Job, client: Client, task: Task, entry: Entry | None, dest: Path, fetch: str, reused: bool
) -> Video:
    got = save_video(s, client, task, dest, force=job.force, metadata=job.metadata, entry=entry, resume=fetch)
    s.report.stage("SAVED", task_id=task.id, dest=got.path)
    hook_error = run_hook(s, job.hook, task, got, entry, **job.hook_env)
    return Video(task.id, got.path, task, got, entry, reused, job.metadata, hook_error)


def planned_output(s: Session, job: Job) -> tuple[Path | None, str | None]:
    """Where ``job`` (a request) would save its video (run --dry-run; None: a name that needs the task id), and
    the task whose video is already saved there for the same request (nothing would be paid for). An output
    a run would refuse is refused the same way, by the same checks."""
    v = job.request
    assert v is not None
    dest = _planned_dest(job, v)
    if dest is None:
        return None, None
    done = None if (job.new or job.force) else already_saved(s, v, dest)
    if done is None:
        _check_output(dest, v, job.force)
    return dest, done


def _planned_dest(job: Job, v: Validated) -> Path | None:
    """The output path known before the task exists (None: a batch name that needs the task id)."""
    if isinstance(job.dest, Path):
        return job.dest
    if job.dest is not None:
        return None
    return target(
        job.output, os.path.join(job.directory or "", stem(v.request.image or v.request.first_clip or "video") + ".mp4")
    )


def _check_output(dest: Path, v: Validated, force: bool) -> None:
    """Before paying for a video that could not be saved: the output is writable and not an input."""
    from wanvid.gateway.download import check_target

    check_target(dest, force)
    inputs = [m.local.path.resolve() for m in v.media.values() if m.local]
    if dest.resolve() in inputs:
        raise UsageError(f"output {dest} is one of the inputs", hint="pass -o another path")


def _host(s: Session, v: Validated, uploads: Mapping[str, Any]) -> None:
    from wanvid.gateway.upload import place

    place(v, s.profile_name, dict(uploads), out=s.report)


def _saved_here(s: Session, task_id: str, dest: Path) -> bool:
    """The journal has this task's video saved at ``dest`` (and the file is there)."""
    saved = s.journal.output(dest)
    return saved is not None and saved[0] == task_id and dest.is_file()


# ---------------------------------------------------------------------------------------------
# Asking about tasks without saving anything.


def task_status(s: Session, task_id: str | None, client: Client | None = None) -> tuple[Task, Entry | None]:
    """One status query (the journal's latest task when ``task_id`` is None), journaled; not raised on."""
    client = client or s.client()
    entry, task_id = find_task(s, task_id)
    return query_task(s, client, task_id, s.protocol_for(entry), entry), entry


def wait_for_task(
    s: Session, task_id: str | None, timeout: float, poll_interval: float | None, client: Client | None = None
) -> Task:
    """Poll a task until it ends; exit 3 if it failed, 124 at ``timeout``."""
    check_wait(timeout, poll_interval)
    client = client or s.client()
    entry, task_id = find_task(s, task_id)
    return wait_task(s, client, task_id, s.protocol_for(entry), timeout, poll_interval, entry)


def wait_unfinished(
    s: Session, timeout: float, poll_interval: float | None, client: Client | None = None
) -> tuple[list[Task], WanvidError | None]:
    """Wait for every unfinished task of this profile and gateway, side by side on the gateway, one by one here;
    the tasks as they ended, and the worst failure among them (None when none failed)."""
    from wanvid.store.records import task_from

    check_wait(timeout, poll_interval)
    client = client or s.client()
    entries = s.journal.unfinished(s.profile_name, s.base)
    s.report.info(f"{len(entries)} unfinished task(s) of profile {s.profile_name!r} on {s.base}")
    deadline = time.monotonic() + timeout
    resume = s.again("wait", "--all")  # each task's protocol comes from the journal
    done: list[Task] = []
    worst: WanvidError | None = None
    for entry in entries:
        left = max(0.0, deadline - time.monotonic())
        try:
            protocol = s.protocol_for(entry)
            done.append(wait_task(s, client, entry.id, protocol, left, poll_interval, entry, resume))
        except (TaskFailed, NotFound) as exc:
            s.report.warn(exc.message)
            done.append(task_from(entry))
            worst = exc if worst is None or exc.exit_code > worst.exit_code else worst
    return done, worst


def refresh(s: Session, entries: list[Entry], client: Client | None = None) -> list[str]:
    """Ask the gateway once about each unfinished task among ``entries`` of this session's profile and gateway,
    one after the other, and journal the answers (``list --refresh``). A task that cannot be asked about is a
    note (returned, one line each), not a failure: the others are still refreshed. Another profile's tasks
    are left alone: asked with this profile's key, the gateway would call them not found."""
    notes: list[str] = []
    live = [e for e in entries if e.unfinished and e.base_url == s.base and e.profile == s.profile_name]
    others = sum(1 for e in entries if e.unfinished) - len(live)
    if others:
        notes.append(
            f"{others} unfinished task(s) of another profile or gateway not refreshed;"
            " give its --profile (and --base-url) to refresh them"
        )
    if not live:
        return notes
    client = client or s.client()
    for entry in live:
        try:
            query_task(s, client, entry.id, s.protocol_for(entry), entry)
        except WanvidError as exc:
            notes.append(f"task {entry.id} not refreshed: {exc.message}")
    return notes


def wait_tasks(
    s: Session, task_ids: list[str], timeout: float, poll_interval: float | None, client: Client | None = None
) -> tuple[list[dict[str, Any]], int, WaitTimeout | None]:
    """``wait A B C``: wait for each task in turn within one ``timeout``; every task's state (as ``Task.to_dict``:
    how it ended, or as the journal last saw it when waiting for it failed), the worst exit code (0: all
    succeeded) and, when the timeout came first, a WaitTimeout naming every task not ended and the command that
    waits for them again (124 is then among the codes). A failure is warned about and the others are still
    waited for; a stop (Ctrl-C) is raised, naming them all the same way."""
    from wanvid.store.records import task_from

    check_wait(timeout, poll_interval)
    client = client or s.client()
    deadline = time.monotonic() + timeout
    states: list[dict[str, Any]] = []
    codes: list[int] = []

    def as_known(task_id: str, protocol: str, exc: WanvidError | None = None) -> dict[str, Any]:
        known = s.journal.get(s.base, task_id)  # as the wait left it (a failure, NOT_FOUND, still RUNNING...)
        return (exc.task if exc else None) or (task_from(known).to_dict() if known else _unknown(task_id, protocol))

    for i, given in enumerate(task_ids):
        entry, task_id = find_task(s, given)
        left = max(0.0, deadline - time.monotonic())
        try:
            states.append(wait_task(s, client, task_id, s.protocol_for(entry), left, poll_interval, entry).to_dict())
            continue
        except Interrupted as stop:
            rest = [task_id, *task_ids[i + 1 :]]
            if len(rest) > 1:  # one task's interrupt would name it alone: the others keep running too
                stop.message = f"stopped waiting; tasks {', '.join(rest)} keep running"
                stop.task_id, stop.hint = None, "resume with: " + s.again("wait", *rest)
            raise
        except WaitTimeout:
            rest = [task_id, *task_ids[i + 1 :]]
            states.append(as_known(task_id, s.protocol_for(entry)))
            states += [as_known(t, s.protocol) for t in task_ids[i + 1 :]]
            codes.append(WaitTimeout.exit_code)
            which = f"task {rest[0]} keeps" if len(rest) == 1 else f"tasks {', '.join(rest)} keep"
            return (
                states,
                worst_code(codes),
                WaitTimeout(
                    f"gave up waiting at --timeout; {which} running", hint="resume with: " + s.again("wait", *rest)
                ),
            )
        except WanvidError as exc:
            s.report.warn(exc.message)
            codes.append(exc.exit_code)
            states.append(as_known(task_id, s.protocol_for(entry), exc))
    return states, worst_code(codes), None


def _unknown(task_id: str, protocol: str) -> dict[str, Any]:
    from wanvid.rules.task import Status, Task

    return Task(task_id, protocol, Status.UNKNOWN, "").to_dict()


def worst_code(codes: list[int]) -> int:
    """The exit code of the worst failure class among ``codes`` (a batch's order), 0 when there is none."""
    from wanvid.jobs.batch import SEVERITY

    failed = set(codes) - {0}
    if not failed:
        return 0
    return min(failed, key=lambda c: SEVERITY.index(c) if c in SEVERITY else len(SEVERITY))


# ---------------------------------------------------------------------------------------------
# Every video not yet on disk (download --all).

DOWNLOAD_WINDOW = 2 * 24 * 3600.0  # tasks this young: a result lives 24 h, and one lost since is still reported


@dataclass
class Delivery:
    """One task's outcome in ``download --all`` (docs/schema/download-all.json)."""

    task_id: str
    status: str  # saved, already_saved, failed (exit 3), gone (expired or not found, 5), error (any other)
    path: str | None = None
    error: WanvidError | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else self.error.exit_code

    def to_dict(self) -> dict[str, Any]:
        error = self.error.to_dict()["error"] if self.error is not None else None
        return {"task_id": self.task_id, "status": self.status, "path": self.path, "error": error}


def download_all(s: Session, job: Job, client: Client | None = None) -> tuple[list[Delivery], int]:
    """Every task of this profile and gateway from the last ``DOWNLOAD_WINDOW`` whose video is not on disk:
    the finished ones downloaded first, then the unfinished ones waited for (oldest first, within one
    ``job.timeout``) and downloaded, each to where it was meant to go (``job.output``: a directory instead).
    A video already saved is skipped with a note, asking nothing. Each task's outcome, and the worst exit code."""
    from dataclasses import replace

    check_wait(job.timeout, job.poll_interval)
    client = client or s.client()  # a missing key stops it here, once
    now = time.time()
    entries = s.journal.recent(profile=s.profile_name, base_url=s.base, limit=1_000_000, since=now - DOWNLOAD_WINDOW)
    entries.sort(key=lambda e: (e.unfinished, e.created_at))  # what can be saved now first
    s.report.info(f"{len(entries)} task(s) of profile {s.profile_name!r} on {s.base} in the last 48 h")
    deadline = time.monotonic() + job.timeout
    done: list[Delivery] = []
    for entry in entries:
        one = replace(job, task_id=entry.id, wait=True, timeout=max(0.0, deadline - time.monotonic()))
        try:
            video = _save_task(s, one, client, say_found=False)
        except Interrupted:
            raise
        except WanvidError as exc:
            s.report.warn(f"task {entry.id}: {exc.message}")
            exc.task_id = exc.task_id or entry.id  # its JSON error names the task it is about
            status = "failed" if isinstance(exc, TaskFailed) else "gone" if isinstance(exc, NotFound) else "error"
            done.append(Delivery(entry.id, status, None, exc))
            continue
        done.append(Delivery(entry.id, "already_saved" if video.found else "saved", str(video.path)))
    if found := sum(d.status == "already_saved" for d in done):
        s.report.note(f"{found} video(s) already on disk where they were saved: not downloaded again")
    return done, worst_code([d.exit_code for d in done])
