"""One invocation's settings, journal and client (``Ctx``), and the steps commands share.

A command body in ``wanvid.cli.app`` (and each row of ``wanvid.jobs.batch``) is a short sequence of these steps:
``validated`` (flags to a checked request), ``submit_or_reuse`` (pay, or reuse a live task for the
identical request, journaled before anything else), ``wait_task`` (poll until it ends), ``save_video``
(download, verify, journal, sidecar). After a task is paid for, every error they raise names it and the
command that picks it up again (``safe``). Nothing here knows about Typer; heavy modules (requests,
rich, the journal) load inside the steps that need them.

Signals (``stop_signals``, ``_signals_deferred``): SIGTERM and SIGHUP end a command the way Ctrl-C does,
and all three are held while a create request is in flight and being journaled, so a paid task is never
lost to ``timeout``, CI cancellation or ``docker stop``.
"""

import contextlib
import functools
import math
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from wanvid import config
from wanvid.cli.output import Output
from wanvid.errors import (
    FieldError,
    HookFailed,
    Interrupted,
    NotFound,
    Stopped,
    Unavailable,
    UsageError,
    WaitTimeout,
    WanvidError,
    signal_number,
    stop_for,
)

if TYPE_CHECKING:
    from wanvid.gateway.client import Client, Gate
    from wanvid.gateway.download import Downloaded
    from wanvid.rules.request import Validated
    from wanvid.rules.task import Task
    from wanvid.store.journal import Entry, Journal


@dataclass
class Ctx:
    """The common options of one invocation, and what is derived from them."""

    api_key: str | None
    base_url: str | None
    profile: str | None
    protocol: str | None  # a flag's value (cli.ProtocolName is a str enum)
    json_out: bool
    quiet: bool
    debug: bool
    allow_insecure: bool
    task_protocol: str | None = None  # the protocol the journal says a task was created with
    # Set for a batch row's worker: its own display, a rate-limit budget shared with the other rows,
    # and a sleep that ends (raising KeyboardInterrupt) when the batch is stopped.
    view: Output | None = None
    gate: "Gate | None" = None
    sleep: Callable[[float], None] = time.sleep
    paid: str | None = None  # the task this invocation created or reuses, once there is one

    @cached_property
    def out(self) -> Output:
        out = self.view or Output(json_mode=self.json_out, quiet=self.quiet)
        # Every key this run could hold, masked out of any message even if it is malformed.
        for candidate in (self.api_key, *(os.environ.get(n) for n in config.KEY_ENV_VARS)):
            out.add_secret(candidate)
        return out

    @cached_property
    def settings(self) -> config.Settings:
        settings = config.resolve(
            api_key=self.api_key,
            base_url=self.base_url,
            profile=self.profile,
            protocol=str(self.protocol) if self.protocol else None,
        )
        self.out.add_secret(settings.api_key.value)
        return settings

    @property
    def protocol_name(self) -> str:
        if self.task_protocol and self.settings.protocol.source != "flag":
            return self.task_protocol  # a fact about the task beats env and config; only a flag overrides it
        return self.settings.protocol.value or config.DEFAULT_PROTOCOL

    @property
    def base(self) -> str:
        return (self.settings.base_url.value or config.DEFAULT_BASE_URL).rstrip("/")

    @property
    def profile_name(self) -> str:
        return self.settings.profile.value or config.DEFAULT_PROFILE

    @cached_property
    def journal(self) -> "Journal":
        from wanvid.store.journal import Journal

        return Journal()

    def client(self) -> "Client":
        from wanvid.gateway.client import Client, is_loopback

        key = self.settings.require_key()
        host = urlsplit(self.base).hostname or ""
        if urlsplit(self.base).scheme == "http" and not is_loopback(host):
            if not self.allow_insecure:
                raise UsageError(
                    f"refusing to send the API key over plain http to {host}",
                    hint="use an https:// base URL, or pass --allow-insecure if you trust every network in between",
                )
            self.out.warn(f"sending the API key over plain http to {host} (--allow-insecure)")
        client = Client(
            self.base,
            key,
            sleep=self.sleep,
            on_retry=self.out.warn if self.out.progress else None,
            log=self.out.debug if self.debug else None,
        )
        client.gate = self.gate
        return client

    def again(self, *words: str, pin_protocol: bool = True) -> str:
        """The exact command that picks up where this one stopped (never with the key in it)."""
        cmd = ["wanvid", *words]
        pin = self.protocol_name != "native" or self.settings.protocol.source != "default"
        if pin_protocol and pin:
            cmd += ["--protocol", self.protocol_name]  # so a different env or config cannot change it
        if self.profile:
            cmd += ["--profile", self.profile]
        if self.base_url:
            cmd += ["--base-url", self.base_url]
        if self.allow_insecure:
            cmd += ["--allow-insecure"]
        return shlex.join(cmd)


# ---------------------------------------------------------------------------------------------
# Shared steps.

# Fields whose flag is not simply "--" + field with dashes.
FLAGS = {"image": "IMAGE", "media": "IMAGE/--last-frame/--audio/--first-clip"}


def validated(ctx: Ctx, opts: dict[str, Any]) -> "Validated":
    from wanvid.rules.request import VideoRequest, validate

    values = {k: (v.value if isinstance(v, Enum) else v) for k, v in opts.items()}
    try:
        v = validate(VideoRequest(**values), ctx.protocol_name)
    except FieldError as exc:
        flag = FLAGS.get(exc.field, "--" + exc.field.replace("_", "-"))
        exc.message = f"{flag}: {exc.message}"
        raise
    for warning in v.warnings:
        ctx.out.warn(warning)
    for note in v.notes:  # e.g. the size and seconds chosen for a unified create
        ctx.out.info(note)
    return v


def check_wait(timeout: float, poll_interval: float | None) -> None:
    """Checked before anything is created: a bad wait option must not cost a task."""
    if not math.isfinite(timeout) or timeout < 0:
        raise UsageError("--timeout must be a number of seconds, 0 or more")
    # A floor: faster polling learns nothing sooner (the gateway checks upstream every 15 s) and only
    # spends the rate limit (1e-9 sent 1,891 requests in 2 s).
    if poll_interval is not None and (not math.isfinite(poll_interval) or poll_interval < 0.1):
        raise UsageError("--poll-interval must be a number of seconds, 0.1 or more")


def known(ctx: Ctx, task_id: str | None) -> tuple["Entry | None", str]:
    """The journal's row for a task (the most recent one when no id is given). One the journal believes
    expired is still asked about (``query_task``): this machine's clock may be what is wrong."""
    from wanvid.store.records import age

    if task_id is None:
        entry = ctx.journal.latest(ctx.profile_name, ctx.base)
        if entry is None:
            raise UsageError(
                f"the journal has no task of profile {ctx.profile_name!r} on {ctx.base}",
                hint="give a TASK_ID; `wanvid list --all` shows every task this machine created",
            )
        ctx.out.info(f"task {entry.id} (the most recent, created {age(time.time() - entry.created_at)} ago)")
    else:
        from wanvid.rules.task import id_problem, shown_id

        # It goes into URLs, file names and messages, where a newline forges a line, ``..`` or a ``/`` names
        # another route or directory, and a control character reaches the terminal or a hook's environment.
        problem = id_problem(task_id)
        if problem:
            raise UsageError(f"TASK_ID {shown_id(task_id)}: {problem}", hint="give a task id as `create` printed it")
        entry = ctx.journal.get(ctx.base, task_id)
    if entry is not None:
        ctx.task_protocol = entry.protocol
    return entry, entry.id if entry else str(task_id)


def submit_or_reuse(
    ctx: Ctx,
    client: "Client",
    v: "Validated",
    new: bool,
    output: Path | None = None,
    resume: Callable[[str], str] | None = None,
) -> tuple["Task", "Entry", bool]:
    """Create the task, or reuse a live one for the identical request; journal it before anything else.

    Unless ``new``, the request is claimed in the journal first (``Journal.claim``): an identical request
    being created by another process (or batch row) right now is waited for and reused, not paid again.
    ``resume(task_id)``: the command that picks the task up, should the process be stopped right after."""
    from wanvid.gateway.service import submit
    from wanvid.gateway.upload import publish
    from wanvid.store.records import new_entry

    journal = ctx.journal
    fingerprint = v.fingerprint(ctx.base)
    token = None if new else uuid.uuid4().hex
    resume = resume or (lambda task_id: ctx.again("wait", task_id))
    try:
        if token is not None:
            reused = _claim(ctx, fingerprint, token)
            if reused is not None:
                token = None
                return _reuse(ctx, reused, output)
        publish(v, ctx.out)  # local files sent by URL: uploaded unless already there, presigned (wanvid.gateway.upload)
        with _signals_deferred(client) as caught:  # a stop between the gateway's answer and the journal would lose it
            try:
                task = submit(client, v)
            except WanvidError as exc:
                if token is not None and not _nothing_created(exc):
                    # The gateway may have made the task: the claim stays, so an identical request waiting on it
                    # is not paid at once; once this process is gone it is taken over, with a warning.
                    journal.disown(token)
                    token = None
                raise
            ctx.paid = task.id
            entry = new_entry(task, v, base_url=ctx.base, profile=ctx.profile_name, request_hash=fingerprint)
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
        ctx.out.note(f"created task {task.id}")
        stopped = Interrupted(f"stopped right after creating task {task.id}", signum=caught[0])
        raise safe(stopped, task.id, resume(task.id))
    return task, entry, False


def _nothing_created(exc: WanvidError) -> bool:
    """A failed create that certainly made no task: refused by the gateway (4xx) or never delivered."""
    from wanvid.errors import ApiError

    if not isinstance(exc, ApiError):
        return isinstance(exc, UsageError)  # refused here (e.g. a file that changed), before sending
    return exc.unsent or (exc.status is not None and 400 <= exc.status < 500 and exc.status != 408)


def _claim(ctx: Ctx, fingerprint: str, token: str) -> "Entry | None":
    """Take the journal's claim on creating this request, waiting while another process holds it; the live
    task that answers the request instead, if there is (or comes to be) one."""
    from wanvid.store.journal import Claim
    from wanvid.store.records import iso

    waited = False
    while True:
        got = ctx.journal.claim(fingerprint, ctx.base, ctx.profile_name, token)
        if got is None:
            return None
        if not isinstance(got, Claim):
            return got
        if got.stale:
            ctx.out.warn(
                f"a wanvid (pid {got.pid}) began creating this same request at {iso(got.started_at)} and stopped "
                "before it journaled an answer; if the gateway made that task it is not in the journal "
                "(check the ope.ai console). Creating a new one"
            )
            return None
        if not waited:
            ctx.out.note(f"another wanvid (pid {got.pid}) is creating this same request right now; waiting to reuse it")
            waited = True
        ctx.sleep(CLAIM_POLL)


CLAIM_POLL = 0.1  # seconds between looks at another process's claim: a create answers in about a second


def _reuse(ctx: Ctx, reused: "Entry", output: Path | None) -> tuple["Task", "Entry", bool]:
    from wanvid.store.records import age, task_from

    ctx.out.note(
        f"reusing task {reused.id} ({reused.status.lower()}, created {age(time.time() - reused.created_at)} ago) "
        "for the same request" + ("" if ctx.view else "; pass --new to pay for another")
    )
    ctx.paid = reused.id
    if output is not None:
        ctx.journal.update(ctx.base, reused.id, output_path=str(output))
    return task_from(reused), reused, True


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _handled(sig: int) -> bool:
    """Whether wanvid should take this signal: not one the parent set to be ignored (``nohup``, a background
    job's SIGINT), which must stay ignored."""
    return signal.getsignal(sig) is not signal.SIG_IGN


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Stopped`` (a KeyboardInterrupt) for as long as a command runs, so they are
    handled like Ctrl-C everywhere: the task named, the journal tidied, exit 128 + the signal's number.
    Every handler (SIGINT's too, which the tidy-up may reset) is as it was when the command ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        if sig != signal.SIGINT and _handled(sig):
            signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _signals_deferred(client: "Client") -> Iterator[list[int]]:
    """Hold SIGINT, SIGTERM and SIGHUP while the create is sent and journaled; the caller sees which arrived.

    Only the request itself is held: a retry's wait (after a refused or throttled create, which made
    nothing) ends at once when a signal has come. A second signal says what is being waited for; a third
    ends the process at once, task or not."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught  # signals reach only the main thread; a batch worker is stopped between steps instead
        return

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)
        if len(caught) == 2:
            with contextlib.suppress(OSError):
                sys.stderr.write(
                    "waiting for the gateway's answer to the create, so the task it makes is not lost "
                    "(a third signal ends wanvid now, losing it)\n"
                )
        elif len(caught) >= 3:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    nap = client.sleep

    def sleep(seconds: float) -> None:  # a retry's wait: nothing made yet, so a signal ends it
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 or caught:
            if caught:
                raise stop_for(caught[0])
            nap(min(left, 0.1))

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS if _handled(sig)}
    for sig in previous:
        signal.signal(sig, hold)
    client.sleep = sleep
    try:
        yield caught
    finally:
        client.sleep = nap
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_task(
    ctx: Ctx,
    client: "Client",
    task_id: str,
    timeout: float,
    poll_interval: float | None,
    entry: "Entry | None",
    resume: str = "",
) -> "Task":
    from wanvid.gateway.service import check_outcome
    from wanvid.jobs.poller import UNKNOWN_GRACE, wait_for
    from wanvid.rules.task import Status
    from wanvid.store.records import age as span

    resume = resume or ctx.again("wait", task_id)
    noted = False

    def poll() -> "Task":
        nonlocal noted
        task = query_task(ctx, client, task_id, entry)
        if task.status is Status.UNKNOWN and entry is not None and not noted:
            said = ": ".join(x for x in (task.error_code, task.error_message) if x)
            ctx.out.note(
                f"the gateway reports task {task_id} as UNKNOWN"
                + (f" ({said})" if said else "")
                + f"; it was created {span(time.time() - entry.created_at)} ago, so this is most likely"
                f" its upstream check failing for now. Polling on for up to {span(UNKNOWN_GRACE)}"
            )
            noted = True
        return task

    eta, age = _expected(ctx, entry)
    client.deadline = time.monotonic() + timeout  # the client's retries must not outlast --timeout
    try:
        with ctx.out.polling(task_id, eta=eta, age=age) as view:
            task = wait_for(
                poll,
                timeout=timeout,
                interval=poll_interval,
                eta=eta,
                age=age,
                # only a task the journal knows to be young is believed alive while the gateway says UNKNOWN
                unknown_grace=UNKNOWN_GRACE if entry is not None else 0.0,
                on_update=view.update,
                sleep=ctx.sleep,
            )
    except KeyboardInterrupt as stop:
        _exit_on_second_interrupt()
        if entry is not None:  # the journal keeps it as unfinished, stamped with when we last looked
            ctx.journal.update(ctx.base, task_id, status=entry.status)
        stopped = Interrupted(f"stopped waiting; task {task_id} keeps running", signum=signal_number(stop))
        raise safe(stopped, task_id, resume) from None
    except Unavailable as exc:
        if client.hit_deadline:
            raise safe(WaitTimeout(f"gave up on task {task_id} at --timeout: {exc.message}"), task_id, resume) from None
        raise safe(exc, task_id, resume) from None
    except WanvidError as exc:
        raise safe(exc, task_id, resume) from None
    finally:
        client.deadline = None
    if task.status is Status.UNKNOWN and entry is not None:
        ctx.journal.update(ctx.base, task_id, status="NOT_FOUND")  # so that a rerun does not reuse it
        error = NotFound(
            f"the gateway kept answering UNKNOWN for task {task_id} for {span(UNKNOWN_GRACE)};"
            " it has lost the task or the task expired",
            hint="to make the video again, run the same command with --new",
        )
        error.task_id, error.task = task_id, task.to_dict()
        raise error
    return check_outcome(task)


def _expected(ctx: Ctx, entry: "Entry | None") -> tuple[float | None, float]:
    """When the task should end (seconds after creation, from similar tasks in the journal) and its age."""
    from wanvid.jobs.poller import PRIOR_ETA

    if entry is None:
        return None, 0.0
    age = max(0.0, time.time() - entry.created_at)
    typical = ctx.journal.typical_seconds(ctx.base, entry)
    if typical is None:
        ctx.out.info(f"no finished task like this one in the journal yet; expecting about {PRIOR_ETA:.0f}s")
        return None, age
    seconds, count = typical
    ctx.out.info(f"expected to take about {seconds:.0f}s (the median of {count} similar task(s))")
    return seconds, age


def query_task(ctx: Ctx, client: "Client", task_id: str, entry: "Entry | None") -> "Task":
    """One status query whose answer, including "no such task", is written to the journal.

    A task the journal saw succeed stays succeeded: an ended task does not start again upstream, so a
    gateway that answers "running" afterwards is glitching, and the journal's task (with its video URL) is
    what every command goes on with."""
    from wanvid.cli.output import describe
    from wanvid.gateway.service import query
    from wanvid.rules.task import Status
    from wanvid.store.records import expired, iso, remember, task_from

    try:
        task = query(client, ctx.protocol_name, task_id)
    except NotFound as exc:
        if entry is not None and entry.expired():
            raise expired(entry) from None  # the gateway agrees with the journal: its 24 h are over
        if entry is not None and exc.code is not None:  # the gateway says the task is gone, not the route
            ctx.journal.update(ctx.base, task_id, status="NOT_FOUND")
            exc.hint = "tasks and results live 24 h; to make the video again, run the same command with --new"
        raise
    if entry is not None and entry.expired() and task.status is Status.UNKNOWN:
        raise expired(entry)  # an answer that says nothing does not outweigh the journal's clock
    if entry is not None and entry.expired():
        ctx.out.note(
            f"this machine's clock says task {task_id} expired at {iso(entry.life_ends)}, but the gateway still "
            "has it; going on (is the clock right?)"
        )
    remember(ctx.journal, ctx.base, task, entry)
    if not task.status.ended and entry is not None and entry.status == "SUCCEEDED" and entry.video_url:
        ctx.out.note(f"the gateway says task {task_id} is {describe(task)}, but it reported SUCCEEDED before")
        return task_from(entry)
    return task


def safe(exc: WanvidError, task_id: str, resume: str) -> WanvidError:
    """Name the paid-for task and the exact command that picks it up again."""
    exc.task_id = task_id
    safe = f"task {task_id} is safe; resume with: {resume}"
    exc.hint = f"{exc.hint}; {safe}" if exc.hint and exc.exit_code in (7, 8) else safe
    return exc


def _exit_on_second_interrupt() -> None:
    """After the first Ctrl-C (or SIGTERM, SIGHUP) wanvid tidies up (journal, message); a second one ends the
    process at once, even inside a C call such as a wait for the journal's lock (the system's default
    action, not Python's)."""
    if threading.current_thread() is threading.main_thread():  # a batch's main thread handles its own
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)


def save_video(
    ctx: Ctx,
    client: "Client",
    task: "Task",
    dest: Path,
    *,
    force: bool,
    metadata: bool,
    entry: "Entry | None",
    resume: str,
) -> "Downloaded":
    from wanvid.gateway.download import OutputExists, Progress, Superseded
    from wanvid.gateway.service import fetch_video
    from wanvid.store.records import write_sidecar

    got = None if force else _saved_meanwhile(ctx, task, dest)
    if got is not None:
        return got

    def placed(got: "Downloaded") -> None:  # journaled before the .part's lock is let go (download.download)
        if entry is not None:
            ctx.journal.saved(entry, got.path, got.size)

    try:
        with ctx.out.downloading(dest.name, task.id) as view:
            got = fetch_video(
                client,
                task,
                dest,
                force=force,
                store=ctx.journal,
                progress=Progress(view.start, view.advance, ctx.out.note),
                placed=placed,
            )
    except KeyboardInterrupt as stop:
        _exit_on_second_interrupt()
        stopped = Interrupted(f"download of task {task.id} stopped", signum=signal_number(stop))
        raise safe(stopped, task.id, resume) from None
    except (Superseded, OutputExists) as exc:  # the same command, run at the same time, got there first
        got = None if force else _saved_meanwhile(ctx, task, dest, patience=SAVE_PATIENCE)
        if got is None:
            raise safe(exc, task.id, resume) from None
        return got
    except WanvidError as exc:
        raise safe(exc, task.id, resume) from None
    if metadata:
        write_sidecar(got.path, task, entry, size=got.size, info=got.info, source=got.source)
    shown = f"{got.info.duration:.1f} s, {got.info.width}x{got.info.height}" if got.info.duration else "no duration"
    ctx.out.info(f"saved {got.path} ({got.size:,} bytes; {shown})")
    return got


SAVE_PATIENCE = 5.0  # seconds to let another process journal the video it just placed at our target


def _saved_meanwhile(ctx: Ctx, task: "Task", dest: Path, patience: float = 0.0) -> "Downloaded | None":
    """This task's video, already at ``dest`` as the journal recorded it: another wanvid running the same
    command saved it while this one waited (for the same task, then for the ``.part``). ``patience``: how
    long to wait for that record when the file is there before it (the other process places the file,
    then journals it, before it lets go of the ``.part``)."""
    from wanvid.gateway.download import Downloaded
    from wanvid.rules.media import verify_mp4

    until = time.monotonic() + patience
    while (saved := ctx.journal.output(dest)) is None or saved[0] != task.id:
        if time.monotonic() >= until or not os.path.lexists(dest):
            return None
        ctx.sleep(CLAIM_POLL)
    try:
        if dest.stat().st_size != saved[2]:
            return None
        with dest.open("rb") as f:
            info = verify_mp4(f)
    except (OSError, ValueError):
        return None  # changed or gone since: the download decides what to do
    ctx.out.note(f"{dest} was saved from task {task.id} meanwhile (by another wanvid)")
    return Downloaded(dest, saved[2], info, source="")


def saved_fields(got: "Downloaded", metadata: bool) -> dict[str, Any]:
    """The JSON fields every command that saves a video reports."""
    from wanvid.store.records import sidecar_path

    return {
        "path": str(got.path),
        "bytes": got.size,
        "video": {"duration": got.info.duration, "width": got.info.width, "height": got.info.height},
        "metadata": str(sidecar_path(got.path)) if metadata else None,
    }


def fetch_cmd(ctx: Ctx, task_id: str, dest: Path, force: bool) -> str:
    return ctx.again("download", task_id, "-o", str(dest), *(["--force"] if force else []))


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


def already_saved(ctx: Ctx, v: "Validated", dest: Path) -> str | None:
    """The task whose video for this very request wanvid saved at ``dest``, if the file is still as saved."""
    saved = ctx.journal.output(dest)
    if saved is None or not dest.is_file():
        return None
    task_id, request_hash, size = saved
    return task_id if request_hash == v.fingerprint(ctx.base) and dest.stat().st_size == size else None


def run_hook(
    ctx: Ctx, command: str | None, task: "Task", got: "Downloaded", entry: "Entry | None", **extra: str
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
        ctx.out.note(f"on-complete: {line}")
    if done.returncode == 0:
        return None
    how = f"was killed by signal {-done.returncode}" if done.returncode < 0 else f"exited {done.returncode}"
    return HookFailed(
        f"--on-complete command {how} for task {task.id}",
        hint=f"the video is saved at {got.path}; rerunning the hook is up to you",
    )
