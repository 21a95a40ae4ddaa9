"""The commands of one task: create, status, wait, download, run, and list (alias history).

Each body is a short sequence of the steps in ``wanvid.jobs.session``; the helpers here are the ones
only these commands use (sending local files by URL, the status text). Every command but ``list`` offers
all the common options; ``list`` reads only the journal, scoped by --profile and --base-url.
"""

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wanvid.cli.boundary import command
from wanvid.cli.options import (
    CREATE_PARAMS,
    NEW_PARAM,
    OUT_PARAMS,
    OUTPUT,
    TASK_ID,
    UPLOAD_PARAMS,
    WAIT_PARAMS,
    _upload_flags,
)
from wanvid.cli.output import describe
from wanvid.errors import FieldError, NotFound, TaskFailed, UsageError, WanvidError
from wanvid.jobs.session import (
    Ctx,
    already_saved,
    check_wait,
    fetch_cmd,
    known,
    query_task,
    run_hook,
    save_video,
    saved_fields,
    stem,
    submit_or_reuse,
    target,
    validated,
    wait_task,
)

if TYPE_CHECKING:
    from wanvid.gateway.client import Client
    from wanvid.rules.task import Task


@command("create", CREATE_PARAMS, [NEW_PARAM], UPLOAD_PARAMS)
def create(
    ctx: Ctx,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the exact request (data URIs shortened, key hidden) and send nothing."),
    ] = False,
    new: bool = False,
    **opts: Any,
) -> None:
    """Submit a task (or reuse a live one for the identical request) and print its id."""
    uploads = _upload_flags(opts)
    v = validated(ctx, opts)
    _hosted(ctx, v, uploads, connect=not dry_run)
    if dry_run:
        import json

        from wanvid.gateway.service import dry_run as describe_request
        from wanvid.gateway.upload import planned

        req = describe_request(v, ctx.base)
        headers = "\n".join(f"{k}: {val}" for k, val in req["headers"].items())
        text = f"{req['method']} {req['url']}\n{headers}\n\n{json.dumps(req['body'], indent=2, ensure_ascii=False)}"
        if planned(v):  # shown, not done: a dry run uploads nothing
            req["uploads"] = planned(v)
            text += "\n\nwould upload (nothing is uploaded on --dry-run):\n" + "\n".join(
                f"  {u['path']} ({u['bytes']:,} bytes) -> {u['object']}" for u in req["uploads"]
            )
        ctx.out.result(text, req, quiet_text=f"{req['method']} {req['url']}")
        return
    task, _, reused = submit_or_reuse(ctx, ctx.client(), v, new)
    ctx.out.info(f"{'task' if reused else 'created task'} {task.id}; follow it with: {ctx.again('wait', task.id)}")
    ctx.out.result(task.id, {**task.to_dict(), "reused": reused})


@command("status")
def status(ctx: Ctx, task_id: TASK_ID = None) -> None:
    """Query a task once and print its state (exit 3 if it failed, 5 if not found or expired)."""
    from wanvid.gateway.service import check_outcome
    from wanvid.rules.task import Status

    client = ctx.client()
    entry, task_id = known(ctx, task_id)
    task = query_task(ctx, client, task_id, entry)
    ctx.out.result(_format_task(task), task.to_dict(), quiet_text=task.status.value)
    if task.status is Status.UNKNOWN and entry is not None:
        ctx.out.note(f"UNKNOWN is often passing for a task this young; `{ctx.again('wait', task_id)}` polls through it")
    check_outcome(task, alive=entry is not None)


@command("wait", WAIT_PARAMS)
def wait(
    ctx: Ctx,
    task_id: TASK_ID = None,
    *,
    all_: Annotated[
        bool, typer.Option("--all", help="Wait for every unfinished task of this profile and gateway.")
    ] = False,
    timeout: float = 1800.0,
    poll_interval: float | None = None,
) -> None:
    """Poll a task until it ends; print its video URL (exit 3 if it failed, 124 on timeout)."""
    check_wait(timeout, poll_interval)
    client = ctx.client()
    if all_:
        if task_id is not None:
            raise UsageError("give a TASK_ID or --all, not both")
        _wait_all(ctx, client, timeout, poll_interval)
        return
    entry, task_id = known(ctx, task_id)
    task = wait_task(ctx, client, task_id, timeout, poll_interval, entry)
    ctx.out.result(task.video_url or task.id, task.to_dict(), quiet_text=task.id)


def _wait_all(ctx: Ctx, client: "Client", timeout: float, poll_interval: float | None) -> None:
    from wanvid.store.records import task_from

    entries = ctx.journal.unfinished(ctx.profile_name, ctx.base)
    ctx.out.info(f"{len(entries)} unfinished task(s) of profile {ctx.profile_name!r} on {ctx.base}")
    deadline = time.monotonic() + timeout
    resume = ctx.again("wait", "--all", pin_protocol=False)  # each task's protocol comes from the journal
    done: list[Task] = []
    worst: WanvidError | None = None
    for entry in entries:  # they run on the gateway side by side: waiting for each in turn costs nothing extra
        ctx.task_protocol = entry.protocol
        left = max(0.0, deadline - time.monotonic())
        try:
            done.append(wait_task(ctx, client, entry.id, left, poll_interval, entry, resume))
        except (TaskFailed, NotFound) as exc:
            ctx.out.warn(exc.message)
            done.append(task_from(entry))
            worst = exc if worst is None or exc.exit_code > worst.exit_code else worst
    lines = "\n".join(f"{t.id} {t.status.value} {t.video_url or ''}".rstrip() for t in done)
    ctx.out.result(lines, {"tasks": [t.to_dict() for t in done]}, quiet_text="\n".join(t.id for t in done))
    if worst is not None:
        raise typer.Exit(worst.exit_code)


@command("download", OUT_PARAMS)
def download(
    ctx: Ctx, task_id: TASK_ID = None, *, output: str | None, force: bool, metadata: bool, on_complete: str | None
) -> None:
    """Download a finished task's MP4 (default: where `run` meant it to go, else <task_id>.mp4); print its path."""
    from wanvid.gateway.download import check_target, default_name
    from wanvid.gateway.service import check_outcome

    client = ctx.client()
    entry, task_id = known(ctx, task_id)
    planned = entry.output_path if entry and entry.output_path and not entry.downloaded_at else None
    dest = target(output, planned or default_name(task_id))
    check_target(dest, force)
    task = check_outcome(query_task(ctx, client, task_id, entry), alive=entry is not None)
    if not task.status.ended:
        raise UsageError(
            f"task {task_id} is {describe(task)}, not finished yet",
            hint=f"wait for it with: {ctx.again('wait', task_id)}",
        )
    resume = fetch_cmd(ctx, task_id, dest, force)
    got = save_video(ctx, client, task, dest, force=force, metadata=metadata, entry=entry, resume=resume)
    hook_error = run_hook(ctx, on_complete, task, got, entry)
    ctx.out.result(str(got.path), {"task_id": task.id, **saved_fields(got, metadata)})
    if hook_error is not None:
        raise hook_error


@command("run", CREATE_PARAMS, [NEW_PARAM], WAIT_PARAMS, OUT_PARAMS, UPLOAD_PARAMS)
def run_(ctx: Ctx, **opts: Any) -> None:
    """Create a task (or reuse one for the identical request), wait, and download the MP4; print the path."""
    from wanvid.gateway.download import check_target

    timeout, poll_interval = opts.pop("timeout"), opts.pop("poll_interval")
    output, force, metadata, new = opts.pop("output"), opts.pop("force"), opts.pop("metadata"), opts.pop("new")
    hook = opts.pop("on_complete")
    uploads = _upload_flags(opts)
    check_wait(timeout, poll_interval)
    v = validated(ctx, opts)
    dest = target(output, stem(v.request.image or v.request.first_clip or "video") + ".mp4")
    done = None if (new or force) else already_saved(ctx, v, dest)
    if done is not None:
        ctx.out.note(f"{dest} is already saved from task {done} for the same request; pass --new to make another")
        ctx.out.result(str(dest), {"task": None, "task_id": done, "path": str(dest), "reused": True})
        return
    check_target(dest, force)  # before paying for a video that could not be saved
    inputs = [m.local.path.resolve() for m in v.media.values() if m.local]
    if dest.resolve() in inputs:
        raise UsageError(f"output {dest} is one of the inputs", hint="pass -o another path")
    _hosted(ctx, v, uploads)  # after the checks above: they look at local files as such
    client = ctx.client()
    then = lambda tid: f"{ctx.again('wait', tid)} && {fetch_cmd(ctx, tid, dest, force)}"  # noqa: E731
    task, entry, reused = submit_or_reuse(ctx, client, v, new, output=dest, resume=then)
    if not reused:
        ctx.out.note(f"created task {task.id}")  # in every mode: a script's log keeps the id whatever happens
    # From here on the task is paid for: every way out names it and the command that finishes the job.
    fetch = fetch_cmd(ctx, task.id, dest, force)
    task = wait_task(
        ctx, client, task.id, timeout, poll_interval, entry, resume=f"{ctx.again('wait', task.id)} && {fetch}"
    )
    got = save_video(ctx, client, task, dest, force=force, metadata=metadata, entry=entry, resume=fetch)
    hook_error = run_hook(ctx, hook, task, got, entry)
    ctx.out.result(str(got.path), {"task": task.to_dict(), **saved_fields(got, metadata), "reused": reused})
    if hook_error is not None:
        raise hook_error  # after the result: the video is saved and scripts get its path


@command("list", common=("base_url", "profile", *OUTPUT), aliases=("history",))
def list_(
    ctx: Ctx,
    status_filter: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only tasks in this state: pending, running, succeeded, failed, canceled, expired, unfinished.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="Show at most N tasks.")] = 20,
    every: Annotated[bool, typer.Option("--all", help="Every profile and gateway, not only the current ones.")] = False,
) -> None:
    """Show the tasks this machine created, newest first, from the journal (alias: history)."""
    from wanvid.store.journal import STATES
    from wanvid.store.records import age

    wanted = status_filter.upper() if status_filter else None
    if wanted is not None and wanted not in STATES:
        raise UsageError(f"--status {status_filter!r} is not a state", hint="use one of: " + ", ".join(STATES).lower())
    scope = {} if every else {"profile": ctx.profile_name, "base_url": ctx.base}
    entries = ctx.journal.listed(wanted, **scope, limit=limit)
    now = time.time()
    rows = [
        (e.id, e.shown_status, e.model or "", f"{age(now - e.created_at)} ago", e.output_path or "") for e in entries
    ]
    ctx.out.table(("TASK", "STATUS", "MODEL", "CREATED", "OUTPUT"), rows, [e.to_dict() for e in entries])


def _hosted(ctx: Ctx, v: Any, flags: dict[str, Any], *, connect: bool = True) -> list[Any]:
    """Local files that go by URL (``wanvid.gateway.upload``), decided after validation and before anything is sent."""
    from wanvid.gateway.upload import prepare, resolve
    from wanvid.jobs.session import FLAGS

    try:
        return prepare(v, resolve(ctx.profile_name, **flags), connect=connect, out=ctx.out)
    except FieldError as exc:
        exc.message = f"{FLAGS.get(exc.field, '--' + exc.field.replace('_', '-'))}: {exc.message}"
        raise


def _format_task(task: "Task") -> str:
    rows = [
        ("task", task.id),
        ("status", describe(task)),
        ("model", task.model),
        ("submitted", task.submitted_at),
        ("started", task.started_at),
        ("finished", task.finished_at),
        ("video", task.video_url),
        ("error", ": ".join(x for x in (task.error_code, task.error_message) if x) or None),
    ]
    return "\n".join(f"{k:<10} {v}" for k, v in rows if v)
