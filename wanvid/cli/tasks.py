"""The commands of one task: create, status, wait, download, run, and list (alias history).

Each body parses its options, makes one call into the job layer (``wanvid.jobs.pipeline``: ``make_video``
for run and download, ``download_all`` for download --all, ``task_status``, ``wait_for_task``,
``wait_tasks``, ``wait_unfinished``, ``refresh`` for list --refresh; ``submit_or_reuse`` for create) and
prints the outcome. create and run --dry-run print the request instead (``_show_request``). Every command
offers all the common options; ``list`` reads only the journal, scoped by --profile and --base-url, and
uses the key and the gateway only with --refresh.
"""

import os
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wanvid.cli.boundary import command
from wanvid.cli.context import Ctx, flag_error, validated
from wanvid.cli.options import (
    CREATE_PARAMS,
    NEW_PARAM,
    OUT_PARAMS,
    TASK_ID,
    TASK_IDS,
    UPLOAD_PARAMS,
    WAIT_PARAMS,
    _upload_flags,
)
from wanvid.cli.output import describe
from wanvid.errors import FieldError, UsageError
from wanvid.jobs import defaults

if TYPE_CHECKING:
    from pathlib import Path

    from wanvid.jobs.pipeline import Job, Video
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
        _show_request(ctx, v)
        return
    from wanvid.jobs.steps import submit_or_reuse

    task, _, reused = submit_or_reuse(ctx.session, ctx.client(), v, new)
    ctx.paid = task.id
    follow = ctx.again("wait", task.id, protocol=ctx.session.protocol)
    ctx.out.info(f"{'task' if reused else 'created task'} {task.id}; follow it with: {follow}")
    ctx.out.result(task.id, {**task.to_dict(), "reused": reused})


@command("status")
def status(ctx: Ctx, task_id: TASK_ID = None) -> None:
    """Query a task once and print its state (exit 3 if it failed, 5 if not found or expired)."""
    from wanvid.gateway.service import check_outcome
    from wanvid.jobs.pipeline import task_status
    from wanvid.rules.task import Status

    task, entry = task_status(ctx.session, task_id)
    ctx.out.result(_format_task(task), task.to_dict(), quiet_text=task.status.value)
    if task.status is Status.UNKNOWN and entry is not None:
        again = ctx.again("wait", task.id, protocol=ctx.session.protocol_for(entry))
        ctx.out.note(f"UNKNOWN is often passing for a task this young; `{again}` polls through it")
    check_outcome(task, alive=entry is not None)


@command("wait", WAIT_PARAMS)
def wait(
    ctx: Ctx,
    task_ids: TASK_IDS = None,
    *,
    all_: Annotated[
        bool, typer.Option("--all", help="Wait for every unfinished task of this profile and gateway.")
    ] = False,
    timeout: float = 1800.0,
    poll_interval: float | None = None,
) -> None:
    """Poll tasks until they end; print the video URL (exit 3 if one failed, 5 if gone, 124 on timeout).

    Several TASK_IDs (or --all): one line per task, `ID STATUS URL`, and the exit code of the worst one.
    """
    from wanvid.jobs.pipeline import wait_for_task, wait_tasks, wait_unfinished
    from wanvid.jobs.steps import check_wait

    check_wait(timeout, poll_interval)  # the options first, then the settings and the key, then the arguments
    client = ctx.client()
    task_ids = list(dict.fromkeys(task_ids or []))  # the same id twice is waited for once
    if all_ and task_ids:
        raise UsageError("give TASK_IDs or --all, not both")
    if not all_ and len(task_ids) <= 1:
        task = wait_for_task(ctx.session, task_ids[0] if task_ids else None, timeout, poll_interval, client)
        ctx.out.result(task.video_url or task.id, task.to_dict(), quiet_text=task.id)
        return
    stop = None
    if all_:
        ended, worst = wait_unfinished(ctx.session, timeout, poll_interval, client)
        states, code = [t.to_dict() for t in ended], worst.exit_code if worst is not None else 0
    else:
        states, code, stop = wait_tasks(ctx.session, task_ids, timeout, poll_interval, client)
    lines = "\n".join(f"{t['id']} {t['status']} {t['video_url'] or ''}".rstrip() for t in states)
    ctx.out.result(lines, {"tasks": states}, quiet_text="\n".join(t["id"] for t in states))
    if stop is not None:  # after the lines: a note naming the tasks still running and how to wait on
        ctx.out.error(stop)
    if code:
        raise typer.Exit(code)


@command("download", WAIT_PARAMS, OUT_PARAMS)
def download(
    ctx: Ctx,
    task_id: TASK_ID = None,
    *,
    all_: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Every task of this profile and gateway from the last 48 h whose video is not on disk: wait for "
            "the unfinished ones, save each where it was meant to go (-o: into that directory).",
        ),
    ] = False,
    timeout: float = 1800.0,
    poll_interval: float | None = None,
    output: str | None,
    force: bool,
    metadata: bool,
    on_complete: str | None,
) -> None:
    """Download a finished task's MP4 (default: where `run` meant it to go, else TASK_ID.mp4); print its path.

    A video already saved there by wanvid is not downloaded again: its path is printed (exit 0).
    """
    from wanvid.jobs.pipeline import Job
    from wanvid.jobs.steps import check_wait

    check_wait(timeout, poll_interval)
    directory = None if output else defaults.directory(ctx.profile_name)  # where run meant it to go still wins
    job = Job(
        task_id=task_id,
        output=output,
        directory=directory,
        force=force,
        metadata=metadata,
        wait=False,
        hook=on_complete,
    )
    if all_:
        _download_all(ctx, job, timeout, poll_interval)
        return
    video = _make(ctx, job)
    ctx.out.result(str(video.path), {"task_id": video.task_id, **video.fields(), "already_saved": video.found})
    if video.hook_error is not None:
        raise video.hook_error


def _download_all(ctx: Ctx, job: "Job", timeout: float, poll_interval: float | None) -> None:
    import os
    from dataclasses import replace

    from wanvid import config
    from wanvid.jobs.pipeline import download_all

    if job.task_id is not None:
        raise UsageError("give a TASK_ID or --all, not both")
    if job.output is not None and not os.path.isdir(config.expand(job.output, "output")):
        raise UsageError(f"with --all, -o must be an existing directory; {job.output} is not one")
    done, code = download_all(ctx.session, replace(job, timeout=timeout, poll_interval=poll_interval), ctx.client())
    lines = "\n".join(f"{d.task_id} {d.status} {d.path or (d.error.message if d.error else '')}".rstrip() for d in done)
    paths = "\n".join(d.path for d in done if d.path)
    ctx.out.result(lines, {"tasks": [d.to_dict() for d in done], "exit_code": code}, quiet_text=paths)
    if code:
        raise typer.Exit(code)


@command("run", CREATE_PARAMS, [NEW_PARAM], WAIT_PARAMS, OUT_PARAMS, UPLOAD_PARAMS)
def run_(
    ctx: Ctx,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the exact request (data URIs shortened, key hidden) and where the video would be saved; "
            "send nothing.",
        ),
    ] = False,
    **opts: Any,
) -> None:
    """Create a task (or reuse one for the identical request), wait, and download the MP4; print the path."""
    from wanvid.jobs.pipeline import Job, planned_output
    from wanvid.jobs.steps import check_wait

    timeout, poll_interval = opts.pop("timeout"), opts.pop("poll_interval")
    output, force, metadata, new = opts.pop("output"), opts.pop("force"), opts.pop("metadata"), opts.pop("new")
    hook, uploads = opts.pop("on_complete"), _upload_flags(opts)
    check_wait(timeout, poll_interval)  # a bad wait option must not cost a task
    v = validated(ctx, opts)
    job = Job(
        request=v,
        output=output,
        directory=None if output else defaults.directory(ctx.profile_name),
        uploads=uploads,
        new=new,
        force=force,
        metadata=metadata,
        timeout=timeout,
        poll_interval=poll_interval,
        hook=hook,
    )
    if dry_run:
        _hosted(ctx, v, uploads, connect=False)
        _show_request(ctx, v, *planned_output(ctx.session, job))
        return
    video = _make(ctx, job)
    if video.task is None:  # already saved for this very request: nothing was asked
        doc: dict[str, Any] = {"task": None, "task_id": video.task_id, "path": str(video.path), "reused": True}
    else:
        doc = {"task": video.task.to_dict(), **video.fields(), "reused": video.reused}
    ctx.out.result(str(video.path), doc)
    if video.hook_error is not None:
        raise video.hook_error  # after the result: the video is saved and scripts get its path


def _show_request(ctx: Ctx, v: Any, output: "Path | None" = None, saved_from: str | None = None) -> None:
    """--dry-run: the exact request (data URIs shortened, key hidden), the uploads it would need and, for run,
    where the video would be saved. Nothing is sent or uploaded."""
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
    if output is not None:
        req["output"] = str(output)
        text += f"\n\nwould save the video to {output}"
        if saved_from is not None:  # run would print the path and pay for nothing
            req["already_saved"] = saved_from
            text = f"{output} is already saved from task {saved_from} for the same request: run would send nothing"
    ctx.out.result(text, req, quiet_text=f"{req['method']} {req['url']}")


def _make(ctx: Ctx, job: "Job") -> "Video":
    """The job pipeline (``wanvid.jobs.pipeline.make_video``), a request field's error named by its flag."""
    from wanvid.jobs.pipeline import make_video

    try:
        return make_video(ctx.session, job)
    except FieldError as exc:  # a local file that cannot go as planned (inline or by URL): nothing was sent
        raise flag_error(exc) from None


@command("list", aliases=("history",))
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
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="First ask the gateway about each unfinished task shown (of this profile and gateway) and"
            " journal the answers; without it, list reads only the journal and never touches the network.",
        ),
    ] = False,
) -> None:
    """Show the tasks this machine created, newest first, from the journal (alias: history)."""
    from wanvid.store.journal import STATES
    from wanvid.store.records import age

    wanted = status_filter.upper() if status_filter else None
    if wanted is not None and wanted not in STATES:
        raise UsageError(f"--status {status_filter!r} is not a state", hint="use one of: " + ", ".join(STATES).lower())
    from wanvid import config
    from wanvid.store.journal import Journal

    profile, base = config.scope(base_url=ctx.base_url, profile=ctx.profile)  # not the key or the protocol
    scope = {} if every else {"profile": profile, "base_url": base}
    journal = Journal()
    entries = journal.listed(wanted, **scope, limit=limit)
    # A profile named nowhere (not in the config file, no task in the journal) is a typo, as in every command;
    # with a key in the environment a profile may exist only to scope the journal.
    keyed = bool(ctx.api_key) or any(os.environ.get(n) for n in config.KEY_ENV_VARS)
    if not every and not entries and not keyed and not journal.has_profile(profile):
        config.check_profile(config.profile_setting(ctx.profile))
    if refresh:
        from wanvid.jobs.pipeline import refresh as ask_gateway

        for note in ask_gateway(ctx.session, entries):
            ctx.out.note(note)
        # the same tasks, as the gateway now says they are (a --status filter chose them before the refresh)
        entries = [journal.get(e.base_url, e.id) or e for e in entries]
    now = time.time()
    rows = [
        (
            e.id,
            e.shown_status,
            e.model or "",
            f"{age(now - e.created_at)} ago",
            f"{age(now - e.updated_at)} ago",
            e.output_path or "",
        )
        for e in entries
    ]
    headers = ("TASK", "STATUS", "MODEL", "CREATED", "LAST SEEN", "OUTPUT")
    ctx.out.table(headers, rows, [e.to_dict() for e in entries])


def _hosted(ctx: Ctx, v: Any, flags: dict[str, Any], *, connect: bool = True) -> list[Any]:
    """Local files that go by URL (``wanvid.gateway.upload``), decided after validation and before anything is sent."""
    from wanvid.gateway.upload import place

    try:
        return place(v, ctx.profile_name, flags, connect=connect, out=ctx.out)
    except FieldError as exc:
        raise flag_error(exc) from None


def _format_task(task: "Task") -> str:
    from wanvid.rules.task import gateway_time

    # Times as --json writes them (UTC): the native gateway's own are zoneless, at UTC+8.
    rows = [
        ("task", task.id),
        ("status", describe(task)),
        ("model", task.model),
        ("submitted", gateway_time(task.submitted_at)),
        ("started", gateway_time(task.started_at)),
        ("finished", gateway_time(task.finished_at)),
        ("video", task.video_url),
        ("error", ": ".join(x for x in (task.error_code, task.error_message) if x) or None),
    ]
    return "\n".join(f"{k:<10} {v}" for k, v in rows if v)
