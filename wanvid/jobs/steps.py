"""The steps of a job, each a function of a ``Session`` and explicit arguments.

``submit_or_reuse`` (pay, or reuse a live task for the identical request, journaled before anything
else), ``wait_task`` (poll until it ends), ``save_video`` (download, verify, journal, sidecar) and
``run_hook`` are put together once, in ``wanvid.jobs.pipeline``; ``find_task`` and ``query_task`` serve
the commands that ask about a task without making one. After a task is paid for, every error a step
raises names it and the command that picks it up again (``safe``). Nothing here prints: what a person
should see goes to ``s.report`` (``wanvid.report.Reporter``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wanvid import config
from wanvid.errors import (
    HookFailed,
    Interrupted,
    NotFound,
    Unavailable,
    UsageError,
    WaitTimeout,
    WanvidError,
    signal_number,
)
from wanvid.jobs.session import Session
from wanvid.jobs.signals import exit_on_second_interrupt, signals_held

if TYPE_CHECKING:
    from wanvid.gateway.client import Client
    from wanvid.gateway.download import Downloaded
    from wanvid.rules.mp4 import Mp4Info
    from wanvid.rules.request import Validated
    from wanvid.rules.task import Task
    from wanvid.store.journal import Entry


def find_task(s: Session, task_id: str | None) -> tuple[Entry | None, str]:
    """The journal's row for a task (the most recent one when no id is given) and its id. One the journal
    believes expired is still asked about (``query_task``): this machine's clock may be what is wrong."""
    from wanvid.store.records import age

    if task_id is None:
        entry = s.journal.latest(s.profile_name, s.base)
        if entry is None:
            raise UsageError(
                f"the journal has no task of profile {s.profile_name!r} on {s.base}",
                hint="give a TASK_ID; `wanvid list --all` shows every task this machine created",
            )
        s.report.stage("FOUND", task_id=entry.id)  # from here on an interrupt names it
        s.report.info(f"task {entry.id} (the most recent, created {age(time.time() - entry.created_at)} ago)")
    else:
        from wanvid.rules.task import id_problem, shown_id

        # It goes into URLs, file names and messages, where a newline forges a line, ``..`` or a ``/`` names
        # another route or directory, and a control character reaches the terminal or a hook's environment.
        problem = id_problem(task_id)
        if problem:
            raise UsageError(f"TASK_ID {shown_id(task_id)}: {problem}", hint="give a task id as `create` printed it")
        s.report.stage("FOUND", task_id=task_id)  # before the journal is opened: an interrupt there names it
        entry = s.journal.get(s.base, task_id)
    return entry, entry.id if entry else str(task_id)


def check_wait(timeout: float, poll_interval: float | None) -> None:
    """Checked before anything is created: a bad wait option must not cost a task."""
    if not math.isfinite(timeout) or timeout < 0:
        raise UsageError("--timeout must be a number of seconds, 0 or more")
    # A floor: faster polling learns nothing sooner (the gateway checks upstream every 15 s) and only
    # spends the rate limit (1e-9 sent 1,891 requests in 2 s).
    if poll_interval is not None and (not math.isfinite(poll_interval) or poll_interval < 0.1):
        raise UsageError("--poll-interval must be a number of seconds, 0.1 or more")


def submit_or_reuse(
    s: Session,
    client: Client,
    v: Validated,
    new: bool,
    output: Path | None = None,
    resume: Callable[[str], str] | None = None,
    *,
    new_hint: str | None = "--new",
) -> tuple[Task, Entry, bool]:
    """Create the task, or reuse a live one for the identical request; journal it before anything else.

    Unless ``new``, the request is claimed in the journal first (``Journal.claim``): an identical request
    being created by another process (or batch row) right now is waited for and reused, not paid again.
    ``resume(task_id)``: the command that picks the task up, should the process be stopped right after;
    ``new_hint``: what a reuse note says pays for another (``--new``; None for a batch, which has no such option)."""
    from wanvid.gateway.service import submit
    from wanvid.gateway.upload import publish
    from wanvid.store.records import new_entry

    journal = s.journal
    fingerprint = v.fingerprint(s.base)
    token = None if new else uuid.uuid4().hex
    resume = resume or (lambda task_id: s.again("wait", task_id, protocol=s.protocol))
    try:
        if token is not None:
            reused = _claim(s, fingerprint, token)
            if reused is not None:
                token = None
                return _reuse(s, reused, output, new_hint, resume)
        publish(v, s.report)  # local files sent by URL: uploaded unless already there, presigned (gateway.upload)
        # A stop between the gateway's answer and the journal would lose the task: signals wait until it is kept.
        with signals_held(client, s.report.note) as held:
            caught = held.caught
            try:
                task = submit(held.client, v)
            except WanvidError as exc:
                if token is not None and not _nothing_created(exc):
                    # The gateway may have made the task: the claim stays, so an identical request waiting on it
                    # is not paid at once; once this process is gone it is taken over, with a warning.
                    journal.disown(token)
                    token = None
                raise
            entry = new_entry(task, v, base_url=s.base, profile=s.profile_name, request_hash=fingerprint)
            entry.output_path = str(output) if output else None
            try:
                journal.record(entry, claim=token)
                token = None
            except WanvidError as exc:
                raise safe(exc, task.id, resume(task.id)) from None
    finally:
        if token is not None:  # nothing was made under the claim: the next identical request may pay
            with contextlib.suppress(WanvidError):  # never in place of the error being raised
                journal.release(token)
    if caught:
        s.report.note(f"created task {task.id}")
        stopped = Interrupted(f"stopped right after creating task {task.id}", signum=caught[0])
        raise safe(stopped, task.id, resume(task.id))
    return task, entry, False


def _nothing_created(exc: WanvidError) -> bool:
    """A failed create that certainly made no task: refused by the gateway (4xx) or never delivered."""
    from wanvid.errors import ApiError

    if not isinstance(exc, ApiError):
        return isinstance(exc, UsageError)  # refused here (e.g. a file that changed), before sending
    return exc.unsent or (exc.status is not None and 400 <= exc.status < 500 and exc.status != 408)


def _claim(s: Session, fingerprint: str, token: str) -> Entry | None:
    """Take the journal's claim on creating this request, waiting while another process holds it; the live
    task that answers the request instead, if there is (or comes to be) one."""
    from wanvid.store.journal import Claim
    from wanvid.store.records import iso

    waited = False
    while True:
        got = s.journal.claim(fingerprint, s.base, s.profile_name, token)
        if got is None:
            return None
        if not isinstance(got, Claim):
            return got
        if got.stale:
            s.report.warn(
                f"a wanvid (pid {got.pid}) began creating this same request at {iso(got.started_at)} and stopped "
                "before it journaled an answer; if the gateway made that task it is not in the journal "
                "(check the ope.ai console). Creating a new one"
            )
            return None
        if not waited:
            s.report.note(
                f"another wanvid (pid {got.pid}) is creating this same request right now; waiting to reuse it"
            )
            waited = True
        s.sleep(CLAIM_POLL)


CLAIM_POLL = 0.1  # seconds between looks at another process's claim: a create answers in about a second


def _reuse(
    s: Session, reused: Entry, output: Path | None, new_hint: str | None, resume: Callable[[str], str]
) -> tuple[Task, Entry, bool]:
    from wanvid.store.records import age, task_from

    s.report.note(
        f"reusing task {reused.id} ({reused.status.lower()}, created {age(time.time() - reused.created_at)} ago) "
        "for the same request" + (f"; pass {new_hint} to pay for another" if new_hint else "")
    )
    if output is not None:
        try:  # the journal's lock may be held by another process for a while: a stop here still names the task
            s.journal.update(s.base, reused.id, output_path=str(output))
        except KeyboardInterrupt as stop:
            raise safe(Interrupted("interrupted", signum=signal_number(stop)), reused.id, resume(reused.id)) from None
    return task_from(reused), reused, True


def wait_task(
    s: Session,
    client: Client,
    task_id: str,
    protocol: str,
    timeout: float,
    poll_interval: float | None,
    entry: Entry | None,
    resume: str = "",
) -> Task:
    """Poll until the task ends (``wanvid.jobs.poller``) and return it; exit 3 if it failed, 124 at ``timeout``.
    Every error names the task and ``resume``, the command that picks the wait up again."""
    from wanvid.gateway.service import check_outcome
    from wanvid.jobs.poller import UNKNOWN_GRACE, wait_for
    from wanvid.rules.task import Status
    from wanvid.store.records import age as span

    resume = resume or s.again("wait", task_id, protocol=protocol)
    noted = False

    last: list[Task] = []  # the latest answer: what a timeout that cut the last look short reports

    def poll() -> Task:
        nonlocal noted
        task = query_task(s, bounded, task_id, protocol, entry)
        last[:] = [task]
        if task.status is Status.UNKNOWN and entry is not None and not noted:
            said = ": ".join(x for x in (task.error_code, task.error_message) if x)
            s.report.note(
                f"the gateway reports task {task_id} as UNKNOWN"
                + (f" ({said})" if said else "")
                + f"; it was created {span(time.time() - entry.created_at)} ago, so this is most likely"
                f" its upstream check failing for now. Polling on for up to {span(UNKNOWN_GRACE)}"
            )
            noted = True
        return task

    eta, age = _expected(s, entry)
    bounded = client.bounded(time.monotonic() + timeout)  # the client's retries must not outlast --timeout
    try:
        with s.report.polling(task_id, eta=eta, age=age) as view:
            task = wait_for(
                poll,
                timeout=timeout,
                interval=poll_interval,
                eta=eta,
                age=age,
                # only a task the journal knows to be young is believed alive while the gateway says UNKNOWN
                unknown_grace=UNKNOWN_GRACE if entry is not None else 0.0,
                on_update=view.update,
                sleep=s.sleep,
            )
    except KeyboardInterrupt as stop:
        exit_on_second_interrupt()
        if entry is not None:  # the journal keeps it as unfinished, stamped with when we last looked
            s.journal.update(s.base, task_id, status=entry.status)
        stopped = Interrupted(f"stopped waiting; task {task_id} keeps running", signum=signal_number(stop))
        raise safe(stopped, task_id, resume) from None
    except Unavailable as exc:
        if exc.at_deadline:  # the deadline cut a query short: the task, as the gateway last described it
            said = (
                f"task {task_id} is still {last[0].status.value} after {timeout:g}s (--timeout)"
                if last
                else f"no answer about task {task_id} within --timeout ({timeout:g}s): {exc.message}"
            )
            gave_up = WaitTimeout(said)
            raise safe(gave_up, task_id, resume) from None
        raise safe(exc, task_id, resume) from None
    except WanvidError as exc:
        raise safe(exc, task_id, resume) from None
    if task.status is Status.UNKNOWN and entry is not None:
        s.journal.update(s.base, task_id, status="NOT_FOUND")  # so that a rerun does not reuse it
        error = NotFound(
            f"the gateway kept answering UNKNOWN for task {task_id} for {span(UNKNOWN_GRACE)};"
            " it has lost the task or the task expired",
            hint="to make the video again, run the same command with --new",
        )
        error.task_id, error.task = task_id, task.to_dict()
        raise error
    return check_outcome(task)


def _expected(s: Session, entry: Entry | None) -> tuple[float | None, float]:
    """When the task should end (seconds after creation, from similar tasks in the journal) and its age."""
    from wanvid.jobs.poller import PRIOR_ETA

    if entry is None:
        return None, 0.0
    age = max(0.0, time.time() - entry.created_at)
    typical = s.journal.typical_seconds(s.base, entry)
    if typical is None:
        s.report.info(f"no finished task like this one in the journal yet; expecting about {PRIOR_ETA:.0f}s")
        return None, age
    seconds, count = typical
    s.report.info(f"expected to take about {seconds:.0f}s (the median of {count} similar task(s))")
    return seconds, age


def query_task(s: Session, client: Client, task_id: str, protocol: str, entry: Entry | None) -> Task:
    """One status query whose answer, including "no such task", is written to the journal.

    A task the journal saw succeed stays succeeded: an ended task does not start again upstream, so a
    gateway that answers "running" afterwards is glitching, and the journal's task (with its video URL) is
    what every command goes on with."""
    from wanvid.gateway.service import query
    from wanvid.rules.task import Status, describe
    from wanvid.store.records import expired, iso, remember, task_from

    try:
        task = query(client, protocol, task_id)
    except NotFound as exc:
        if entry is not None and entry.expired():
            raise expired(entry) from None  # the gateway agrees with the journal: its 24 h are over
        if entry is not None and exc.code is not None:  # the gateway says the task is gone, not the route
            s.journal.update(s.base, task_id, status="NOT_FOUND")
            exc.hint = "tasks and results live 24 h; to make the video again, run the same command with --new"
        raise
    if entry is not None and entry.expired() and task.status is Status.UNKNOWN:
        raise expired(entry)  # an answer that says nothing does not outweigh the journal's clock
    if entry is not None and entry.expired():
        s.report.note(
            f"this machine's clock says task {task_id} expired at {iso(entry.life_ends)}, but the gateway still "
            "has it; going on (is the clock right?)"
        )
    remember(s.journal, s.base, task, entry)
    if not task.status.ended and entry is not None and entry.status == "SUCCEEDED" and entry.video_url:
        s.report.note(f"the gateway says task {task_id} is {describe(task)}, but it reported SUCCEEDED before")
        return task_from(entry)
    return task


def safe(exc: WanvidError, task_id: str, resume: str) -> WanvidError:
    """Name the paid-for task and the exact command that picks it up again."""
    exc.task_id = task_id
    safe = f"task {task_id} is safe; resume with: {resume}"
    exc.hint = f"{exc.hint}; {safe}" if exc.hint and exc.exit_code in (7, 8) else safe
    return exc


def save_video(
    s: Session,
    client: Client,
    task: Task,
    dest: Path,
    *,
    force: bool,
    metadata: bool,
    entry: Entry | None,
    resume: str,
) -> Downloaded:
    from wanvid.gateway.download import OutputExists, Progress, Superseded, part_path
    from wanvid.gateway.service import fetch_video
    from wanvid.store.records import write_sidecar

    got = None if force else _saved_meanwhile(s, task, dest)
    if got is not None:
        return got

    def placed(got: Downloaded) -> None:  # journaled before the .part's lock is let go (download.download)
        if entry is not None:
            s.journal.saved(entry, got.path, got.size, part=part_path(got.path))
        else:
            s.journal.drop_part(part_path(got.path))

    try:
        with s.report.downloading(dest.name, task.id) as view:
            got = fetch_video(
                client,
                task,
                dest,
                force=force,
                store=s.journal,
                progress=Progress(view.start, view.advance, s.report.note),
                placed=placed,
            )
    except KeyboardInterrupt as stop:
        exit_on_second_interrupt()
        stopped = Interrupted(f"download of task {task.id} stopped", signum=signal_number(stop))
        raise safe(stopped, task.id, resume) from None
    except (Superseded, OutputExists) as exc:  # the same command, run at the same time, got there first
        got = None if force else _saved_meanwhile(s, task, dest, patience=SAVE_PATIENCE)
        if got is None:
            raise safe(exc, task.id, resume) from None
        return got
    except WanvidError as exc:
        raise safe(exc, task.id, resume) from None
    if metadata:
        write_sidecar(got.path, task, entry, size=got.size, info=got.info, source=got.source)
    shown = f"{got.info.duration:.1f} s, {got.info.width}x{got.info.height}" if got.info.duration else "no duration"
    s.report.info(f"saved {got.path} ({got.size:,} bytes; {shown})")
    return got


SAVE_PATIENCE = 5.0  # seconds to let another process journal the video it just placed at our target


def _saved_meanwhile(s: Session, task: Task, dest: Path, patience: float = 0.0) -> Downloaded | None:
    """This task's video, already at ``dest`` as the journal recorded it: another wanvid running the same
    command saved it while this one waited (for the same task, then for the ``.part``). ``patience``: how
    long to wait for that record when the file is there before it (the other process places the file,
    then journals it, before it lets go of the ``.part``)."""
    until = time.monotonic() + patience
    while (saved := s.journal.output(dest)) is None or saved[0] != task.id:
        if time.monotonic() >= until or not os.path.lexists(dest):
            return None
        s.sleep(CLAIM_POLL)
    got = saved_copy(s, task.id, dest)
    if got is not None:
        s.report.note(f"{dest} was saved from task {task.id} meanwhile (by another wanvid)")
    return got


def saved_copy(s: Session, task_id: str, dest: Path) -> Downloaded | None:
    """This task's video at ``dest`` as the journal recorded saving it: a regular file (not a link, not a
    ``.part``) of the recorded size that is an MP4. None otherwise: a file there that wanvid did not save for
    this task is not taken for its video (the download refuses to overwrite it unless forced)."""
    from wanvid.gateway.download import Downloaded

    adopt_placed(s, dest)
    saved = s.journal.output(dest)
    if saved is None or saved[0] != task_id:
        return None
    info = _video_at(dest, saved[2])
    return None if info is None else Downloaded(dest, saved[2], info, source="")


def _video_at(dest: Path, size: int | None) -> Mp4Info | None:
    """What the regular file at ``dest`` (not a link, not a ``.part``) holds, if it is an MP4 of ``size`` bytes
    (None: any size). None otherwise, or when it changed or went meanwhile: the download decides what to do."""
    from wanvid.rules.mp4 import verify_mp4

    try:
        st = os.lstat(dest)
        if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
            return None
        with dest.open("rb") as f:
            return verify_mp4(f)
    except (OSError, ValueError):
        return None


def adopt_placed(s: Session, dest: Path) -> None:
    """Record a video a download placed at ``dest`` and was stopped (a kill -9, a power cut) before journaling.

    A download journals the saved video and drops its ``.part``'s record in one transaction, right after the
    ``.part`` becomes ``dest`` (``gateway.download``). So a record of ``dest.part`` whose file is gone, beside
    a ``dest`` that is a regular file of the recorded total and an MP4, is that video: placed, never recorded.
    It is recorded now, so the rerun finds it saved instead of refusing a file it does not know (or paying
    again). Anything else is left for the download to judge."""
    from wanvid.gateway.download import part_path

    part = part_path(dest)
    record = s.journal.part(part)
    if record is None or os.path.lexists(part):
        return
    entry = s.journal.get(s.base, record.task_id)
    if entry is None or _video_at(dest, record.total) is None:
        return
    s.journal.saved(entry, dest, dest.stat().st_size, part=part)
    s.report.note(f"{dest} is task {entry.id}'s video, placed by a wanvid that stopped before recording it")


def fetch_cmd(s: Session, task_id: str, dest: Path, force: bool, protocol: str) -> str:
    return s.again("download", task_id, "-o", str(dest), *(["--force"] if force else []), protocol=protocol)


def target(output: str | None, default: str | Path) -> Path:
    """The absolute output path (printed as the result, so scripts need not know our cwd), checked to be
    one this machine can create: a UsageError for an unknown ~user or a name too long (``check_name``)."""
    if output is None:
        path = Path.cwd() / default
    else:
        path = config.expand(output, "output").absolute()
        if output.endswith(("/", os.sep)) and not os.path.isdir(path):
            raise UsageError(f"output directory {path} does not exist", hint="create it first, or give a file name")
        if os.path.isdir(path):  # os.path: an unusable name is "not a directory" here, and checked below
            path = path / Path(default).name
    check_name(path)
    return path


# Names made beside an output: its .part, its sidecar <name>.json, and the sidecar's temporary
# .<name>.json.XXXXXXXX.tmp, the longest (19 bytes more than the name).
NAME_ROOM = len(".") + len(".json.") + 8 + len(".tmp")


def check_name(path: Path) -> None:
    """A UsageError, before anything is paid for, when ``path``'s file name cannot be created: a NUL in
    it, or too long for its directory's file system once the names made beside it are counted."""
    name = path.name
    if "\x00" in str(path):
        raise UsageError(f"output {str(path)!r} has a NUL character", hint="give another file name")
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):  # no such directory (check_target says so), or no such limit
        limit = 255
    size = len(os.fsencode(name))
    if size + NAME_ROOM > limit:
        raise UsageError(
            f"output file name {name[:40]}... is {size} bytes; {path.parent} takes at most {limit - NAME_ROOM} "
            f"(its file system's {limit}, less room for the .part and .json files made beside it)",
            hint="give a shorter file name",
        )


@functools.lru_cache(maxsize=256)  # a batch names each of its rows after an image, often the same one
def stem(ref: str) -> str:
    from wanvid.rules.media import is_remote

    if ref.startswith("data:"):
        return "video"
    return Path(urlsplit(ref).path if is_remote(ref) else ref).stem or "video"


def already_saved(s: Session, v: Validated, dest: Path) -> str | None:
    """The task whose video for this very request wanvid saved at ``dest``, if the file is still as saved."""
    adopt_placed(s, dest)
    saved = s.journal.output(dest)
    if saved is None or not dest.is_file():
        return None
    task_id, request_hash, size = saved
    return task_id if request_hash == v.fingerprint(s.base) and dest.stat().st_size == size else None


def run_hook(
    s: Session, command: str | None, task: Task, got: Downloaded, entry: Entry | None, **extra: str
) -> HookFailed | None:
    """Run the user's ``--on-complete`` command for a saved video; return the error if it failed.

    It runs through the shell with the video's facts in WANVID_* variables. Its output is passed on as
    notes on stderr ("on-complete: ..."), after it ends: wanvid's stdout carries only the result (one
    JSON document with --json), and a batch's live table must not be scribbled over.
    """
    import subprocess

    if not command:
        return None
    from wanvid.store.records import sidecar_path

    env = {
        **os.environ,
        "WANVID_OUTPUT": str(got.path),
        "WANVID_TASK_ID": task.id,
        "WANVID_MODEL": task.model or (entry.model if entry else None) or "",  # native answers omit it
        "WANVID_BYTES": str(got.size),
        "WANVID_METADATA": str(sidecar_path(got.path)) if sidecar_path(got.path).exists() else "",
        **{f"WANVID_{k.upper()}": v for k, v in extra.items()},
    }
    try:
        done = subprocess.run(
            command,
            shell=True,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        return HookFailed(f"--on-complete could not start: {exc.strerror}", hint=f"the video is saved at {got.path}")
    for line in done.stdout.splitlines():
        s.report.note(f"on-complete: {line}")
    if done.returncode == 0:
        return None
    how = f"was killed by signal {-done.returncode}" if done.returncode < 0 else f"exited {done.returncode}"
    return HookFailed(
        f"--on-complete command {how} for task {task.id}",
        hint=f"the video is saved at {got.path}; rerunning the hook is up to you",
    )
