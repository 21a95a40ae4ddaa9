"""The command line: options in, one call into wanvid's library, results out.

Every command is declared with ``@command``, which appends the common options (``--api-key``,
``--base-url``, ``--profile``, ``--protocol``, ``--json``, ``-q``) and any shared option groups to its
signature, packs them into a ``Ctx`` (``wanvid.jobs.session``, with the steps command bodies share), and runs
the body inside the one error boundary that turns a ``WanvidError`` into a one-line message and its exit
code. Only typer and light modules are imported
at the top: requests, rich's live displays and Pillow load inside the commands that need them.
"""

import copy
import functools
import inspect
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from wanvid import __version__, config
from wanvid.cli.output import Output, describe
from wanvid.errors import (
    FieldError,
    Interrupted,
    NotFound,
    StorageError,
    TaskFailed,
    UsageError,
    WanvidError,
    signal_number,
)
from wanvid.jobs.session import (
    Ctx,
    already_saved,
    check_wait,
    fetch_cmd,
    known,
    query_task,
    run_hook,
    safe,
    save_video,
    saved_fields,
    stem,
    submit_or_reuse,
    target,
    validated,
    wait_task,
)
from wanvid.rules.models import DEFAULT_MODEL, MODELS

if TYPE_CHECKING:
    from wanvid.gateway.client import Client
    from wanvid.rules.task import Task


class _Group(TyperGroup):
    """The root command: a usage error Click finds itself (an unknown option, a value not among the
    choices, a missing argument) is reported like every other error: one line, exit 2, and the error
    document on stdout with --json."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **kw: Any) -> Any:  # fmt: skip
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **kw)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, False, windows_expand_args, **kw)
        except typer.TyperException as exc:  # click's usage errors (typer vendors click)
            if type(exc).__name__ == "NoArgsIsHelpError":  # `wanvid` or `wanvid config` alone: the help
                sys.stderr.write(exc.format_message() + "\n")
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            error = UsageError(exc.format_message(), hint=f"see: {ctx.command_path if ctx else 'wanvid'} --help")
            error.exit_code = exc.exit_code
            before_dashes = argv[: argv.index("--")] if "--" in argv else argv
            Output(json_mode="--json" in before_dashes).error(error)
            sys.exit(exc.exit_code)
        except typer.Abort:
            sys.stderr.write("\nerror: aborted\n")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Group,
    name="wanvid",
    help="Turn a still image into a video with Alibaba's Wan models (wan2.7-i2v, wan2.6-i2v) "
    "through the ope.ai gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Store the API key and show where each setting comes from.", no_args_is_help=True)
app.add_typer(config_app, name="config")


class ProtocolName(StrEnum):
    native = "native"
    unified = "unified"


class Resolution(StrEnum):
    p720 = "720P"
    p1080 = "1080P"


class ShotType(StrEnum):
    single = "single"
    multi = "multi"


def _complete_model(incomplete: str) -> list[tuple[str, str]]:
    return [(m, f"{s.prompt_max}-char prompt") for m, s in MODELS.items() if m.startswith(incomplete)]


# ---------------------------------------------------------------------------------------------
# Option groups. Each is a list of keyword parameters appended to a command's signature.


def _param(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


COMMON = "Common options"
COMMON_PARAMS = [
    _param(
        "api_key",
        Annotated[
            str | None,
            typer.Option(
                "--api-key",
                metavar="KEY",
                help="API key [default: WANVID_API_KEY, OPEAI_API_KEY, then the config file].",
                show_default=False,
                rich_help_panel=COMMON,
            ),
        ],
    ),
    _param(
        "base_url",
        Annotated[
            str | None,
            typer.Option(
                "--base-url",
                metavar="URL",
                help="Gateway URL [default: WANVID_BASE_URL, config file, https://api-platform.ope.ai].",
                show_default=False,
                rich_help_panel=COMMON,
            ),
        ],
    ),
    _param(
        "profile",
        Annotated[
            str | None,
            typer.Option(
                "--profile",
                metavar="NAME",
                help="Config profile [default: WANVID_PROFILE or 'default'].",
                show_default=False,
                autocompletion=lambda incomplete: [p for p in config.profiles() if p.startswith(incomplete)],
                rich_help_panel=COMMON,
            ),
        ],
    ),
    _param(
        "protocol",
        Annotated[
            ProtocolName | None,
            typer.Option(
                "--protocol",
                case_sensitive=False,
                show_default=False,
                rich_help_panel=COMMON,
                help="Gateway protocol: native (Aliyun format, all features) or unified (/v1/videos) "
                "[default: WANVID_PROTOCOL, config file, native].",
            ),
        ],
    ),
    _param(
        "json_out",
        Annotated[
            bool,
            typer.Option(
                "--json", help="Print exactly one JSON document on stdout; no progress.", rich_help_panel=COMMON
            ),
        ],
        False,
    ),
    _param(
        "quiet",
        Annotated[
            bool,
            typer.Option(
                "--quiet",
                "-q",
                help="Print only the task id or file path on stdout; no progress.",
                rich_help_panel=COMMON,
            ),
        ],
        False,
    ),
    _param(
        "debug",
        Annotated[
            bool,
            typer.Option(
                "--debug", help="Log every HTTP request and answer on stderr (key redacted).", rich_help_panel=COMMON
            ),
        ],
        False,
    ),
    _param(
        "allow_insecure",
        Annotated[
            bool,
            typer.Option(
                "--allow-insecure",
                help="Allow sending the key over plain http to a host that is not this machine.",
                rich_help_panel=COMMON,
            ),
        ],
        False,
    ),
]

CREATE = "Video options"
CREATE_PARAMS = [
    _param(
        "image",
        Annotated[
            str | None,
            typer.Argument(
                metavar="IMAGE",
                help="First frame: a local image file or an http(s)/data URL (may be omitted with --first-clip).",
                show_default=False,
            ),
        ],
    ),
    _param(
        "prompt",
        Annotated[
            str | None,
            typer.Option(
                "--prompt",
                "-p",
                metavar="TEXT",
                help="What should happen in the video.",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "negative_prompt",
        Annotated[
            str | None,
            typer.Option(
                "--negative-prompt",
                metavar="TEXT",
                help="What to avoid (native).",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "model",
        Annotated[
            str,
            typer.Option(
                "--model",
                "-m",
                metavar="MODEL",
                help="Model id; unknown ids are sent unchecked with a warning.",
                autocompletion=_complete_model,
                rich_help_panel=CREATE,
            ),
        ],
        DEFAULT_MODEL,
    ),
    _param(
        "resolution",
        Annotated[
            Resolution | None,
            typer.Option(
                "--resolution",
                metavar="[720P|1080P]",
                case_sensitive=False,
                help="Output resolution; on unified it picks the size sent [default: the model's, 1080P].",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "duration",
        Annotated[
            int | None,
            typer.Option(
                "--duration",
                metavar="SECONDS",
                help="Seconds: 2-15 on wan2.7-i2v, 5/10/15 on wan2.6-i2v [server default: 5].",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "seed",
        Annotated[
            int | None,
            typer.Option(
                "--seed", metavar="N", help="Random seed, 0-2147483647.", show_default=False, rich_help_panel=CREATE
            ),
        ],
    ),
    _param(
        "prompt_extend",
        Annotated[
            bool | None,
            typer.Option(
                "--prompt-extend/--no-prompt-extend",
                help="Let the server rewrite the prompt (native) [server default: on].",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "watermark",
        Annotated[
            bool | None,
            typer.Option(
                "--watermark/--no-watermark",
                help="Add the provider's watermark (native) [server default: off].",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "shot_type",
        Annotated[
            ShotType | None,
            typer.Option(
                "--shot-type",
                metavar="[single|multi]",
                case_sensitive=False,
                help="single or multi shot (wan2.6-i2v, native).",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "last_frame",
        Annotated[
            str | None,
            typer.Option(
                "--last-frame",
                metavar="FILE|URL",
                help="Last frame image, file or URL (wan2.7-i2v, native).",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "audio",
        Annotated[
            str | None,
            typer.Option(
                "--audio",
                metavar="FILE|URL",
                help="Driving audio, wav/mp3 file or URL (native).",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "first_clip",
        Annotated[
            str | None,
            typer.Option(
                "--first-clip",
                metavar="FILE|URL",
                help="A video to continue, mp4/mov file or URL (wan2.7-i2v, native).",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "size",
        Annotated[
            str | None,
            typer.Option(
                "--size",
                metavar="WxH|W*H|720P",
                help="1280x720, 1280*720 or 720P/1080P (unified) [default: wan's size nearest the image's shape].",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "generate_audio",
        Annotated[
            bool | None,
            typer.Option(
                "--generate-audio/--no-generate-audio",
                help="Generate a soundtrack (unified).",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
]

WAIT = "Wait options"
WAIT_PARAMS = [
    _param(
        "timeout",
        Annotated[
            float,
            typer.Option(
                "--timeout",
                metavar="SECONDS",
                help="Give up waiting after this many seconds (exit 124; the task keeps running).",
                rich_help_panel=WAIT,
            ),
        ],
        1800.0,
    ),
    _param(
        "poll_interval",
        Annotated[
            float | None,
            typer.Option(
                "--poll-interval",
                metavar="SECONDS",
                help="Poll at this fixed interval in seconds, 0.1 or more [default: 2 s growing to 15 s].",
                show_default=False,
                rich_help_panel=WAIT,
            ),
        ],
    ),
]

OUT = "Output file"
OUT_PARAMS = [
    _param(
        "output",
        Annotated[
            str | None,  # a str, not Path: a trailing "/" (meaning "a directory") must survive
            typer.Option(
                "--output",
                "-o",
                metavar="PATH",
                help="Where to save the MP4 (a file, or a directory to put it in).",
                show_default=False,
                rich_help_panel=OUT,
            ),
        ],
    ),
    _param(
        "force", Annotated[bool, typer.Option("--force", help="Replace an existing file.", rich_help_panel=OUT)], False
    ),
    _param(
        "metadata",
        Annotated[
            bool,
            typer.Option(
                "--metadata/--no-metadata",
                help="Write <output>.json beside the video: prompt, parameters, seed, task id, timings, input hashes.",
                rich_help_panel=OUT,
            ),
        ],
        True,
    ),
    _param(
        "on_complete",
        Annotated[
            str | None,
            typer.Option(
                "--on-complete",
                metavar="CMD",
                help="Run CMD through the shell after each video is saved, with WANVID_OUTPUT, WANVID_TASK_ID, "
                "WANVID_MODEL, WANVID_BYTES, WANVID_METADATA (and WANVID_ROW in a batch) set; exit 9 if it fails.",
                show_default=False,
                rich_help_panel=OUT,
            ),
        ],
    ),
]

NEW_PARAM = _param(
    "new",
    Annotated[
        bool,
        typer.Option(
            "--new",
            help="Pay for a fresh task even when the journal has a live one for the same request.",
            rich_help_panel=CREATE,
        ),
    ],
    False,
)
UPLOAD = "Upload options (local files sent by URL; needs pip install 'wanvid[s3]')"
UPLOAD_PARAMS = [
    _param(
        "bucket",
        Annotated[
            str | None,
            typer.Option(
                "--bucket",
                metavar="S3URL",
                help="s3://BUCKET/PREFIX to upload local audio/video to, sent as presigned URLs (wan2.7 takes them "
                "only as URLs) [default: WANVID_BUCKET, config file]. Credentials: boto3's usual chain.",
                show_default=False,
                rich_help_panel=UPLOAD,
            ),
        ],
    ),
    _param(
        "bucket_endpoint",
        Annotated[
            str | None,
            typer.Option(
                "--bucket-endpoint",
                metavar="URL",
                help="S3 API endpoint for a bucket not on AWS (OSS, R2, MinIO) "
                "[default: WANVID_BUCKET_ENDPOINT, config file, AWS].",
                show_default=False,
                rich_help_panel=UPLOAD,
            ),
        ],
    ),
    _param(
        "bucket_region",
        Annotated[
            str | None,
            typer.Option(
                "--bucket-region",
                metavar="REGION",
                help="The bucket's region [default: WANVID_BUCKET_REGION, config file, boto3's].",
                show_default=False,
                rich_help_panel=UPLOAD,
            ),
        ],
    ),
    _param(
        "upload_images",
        Annotated[
            bool | None,
            typer.Option(
                "--upload-images/--no-upload-images",
                help="Upload local images too instead of sending them inline "
                "[default: WANVID_UPLOAD_IMAGES, config file, off].",
                show_default=False,
                rich_help_panel=UPLOAD,
            ),
        ],
    ),
]


def _upload_flags(opts: dict[str, Any]) -> dict[str, Any]:
    """Take the upload options out of a command's options (they are settings, not request fields)."""
    return {p.name: opts.pop(p.name) for p in UPLOAD_PARAMS}


def _hosted(ctx: Ctx, v: Any, flags: dict[str, Any], *, connect: bool = True) -> list[Any]:
    """Local files that go by URL (``wanvid.gateway.upload``), decided after validation and before anything is sent."""
    from wanvid.gateway.upload import prepare, resolve
    from wanvid.jobs.session import FLAGS

    try:
        return prepare(v, resolve(ctx.profile_name, **flags), connect=connect, out=ctx.out)
    except FieldError as exc:
        exc.message = f"{FLAGS.get(exc.field, '--' + exc.field.replace('_', '-'))}: {exc.message}"
        raise


TASK_ID = Annotated[
    str | None,
    typer.Argument(
        metavar="[TASK_ID]",
        help="The task id [default: the most recent task of this profile and gateway].",
        show_default=False,
        autocompletion=lambda incomplete: _complete_task(incomplete),
    ),
]


def command(
    target: typer.Typer, name: str, *groups: list[inspect.Parameter], aliases: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Any]:
    """Register ``func(ctx, **own, **groups)`` as a command with the common options appended."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        grouped = {p.name: p for group in groups for p in group}
        # A body may name a group's option in its own signature (for readability); the group's
        # declaration wins and takes that place.
        own = [
            grouped.pop(p.name, p).replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in sig.parameters.values()
            if p.name != "ctx" and p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        params = own + list(grouped.values()) + COMMON_PARAMS
        common_names = [p.name for p in COMMON_PARAMS]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            ctx = Ctx(**{n: kwargs.pop(n) for n in common_names})
            with error_boundary(ctx):
                if ctx.json_out and ctx.quiet:
                    raise UsageError("--json and --quiet exclude each other", hint="pick one")
                return func(ctx, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params, return_annotation=None)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        target.command(name)(wrapper)
        for alias in aliases:  # the same command under another name, kept out of the help listing
            target.command(alias, hidden=True)(wrapper)
        return wrapper

    return decorate


@contextmanager
def error_boundary(ctx: Ctx) -> Iterator[None]:
    """Every way a command ends: its exit code and one line on stderr. SIGTERM and SIGHUP end it the way
    Ctrl-C does (``stop_signals``), and whatever stops it, a task it paid for or reuses is named."""
    from wanvid import redact
    from wanvid.jobs.session import stop_signals

    secrets = redact.secrets()
    try:
        with stop_signals():
            yield
    except typer.Exit:
        raise
    except WanvidError as exc:  # the steps that follow a payment name the task in their errors (session.safe)
        ctx.out.error(exc)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as stop:
        error: WanvidError = Interrupted("interrupted", signum=signal_number(stop))
        if ctx.paid:
            error = safe(error, ctx.paid, ctx.again("status", ctx.paid))
        ctx.out.error(error)
        raise typer.Exit(error.exit_code) from None
    except BrokenPipeError:  # `wanvid ... | head`: the reader left; nothing to report to anyone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except Exception as exc:
        if os.environ.get("WANVID_DEBUG"):
            raise
        ctx.out.error(
            WanvidError(
                f"unexpected {type(exc).__name__}: {exc}",
                hint="rerun with WANVID_DEBUG=1 for a traceback and report it",
            )
        )
        raise typer.Exit(1) from None
    finally:
        redact.restore(secrets)  # everything this command prints is out; its keys are no longer needed


# ---------------------------------------------------------------------------------------------
# Task-id completion (Typer's path; wanvid.cli.complete answers first when it can).
def _complete_task(incomplete: str) -> list[tuple[str, str]]:
    """Task ids from the journal, most recent first, with their status (no HTTP, no rich: it must be quick)."""
    try:
        from wanvid.cli.complete import TASKS_SQL  # one query for both completion paths
        from wanvid.store.journal import Journal

        journal = Journal()
        if not journal.path.exists():
            return []
        rows = journal.db_read(
            TASKS_SQL, (incomplete.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",)
        )
    except WanvidError:
        return []
    return [(task_id, f"{status} {model or ''}".strip()) for task_id, status, model, _ in rows]


# ---------------------------------------------------------------------------------------------
# Commands.


@command(app, "create", CREATE_PARAMS, [NEW_PARAM], UPLOAD_PARAMS)
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


@command(app, "status")
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


@command(app, "wait", WAIT_PARAMS)
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


@command(app, "download", OUT_PARAMS)
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


@command(app, "run", CREATE_PARAMS, [NEW_PARAM], WAIT_PARAMS, OUT_PARAMS, UPLOAD_PARAMS)
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


@command(
    app,
    "batch",
    [p for p in CREATE_PARAMS if p.name != "image"],
    WAIT_PARAMS,
    [p for p in OUT_PARAMS if p.name != "output"],
    UPLOAD_PARAMS,
)
def batch_(
    ctx: Ctx,
    manifest: Annotated[
        Path,
        typer.Argument(
            metavar="MANIFEST",
            help="A .csv (with a header row) or .jsonl file: one row per video, columns named like the video "
            "options (image, prompt, seed...) plus output.",
            show_default=False,
        ),
    ],
    *,
    output_dir: Annotated[
        str, typer.Option("--output-dir", "-d", metavar="DIR", help="Where the videos go (created if missing).")
    ] = ".",
    name: Annotated[
        str,
        typer.Option(
            "--name",
            metavar="TEMPLATE",
            help="File name of each video; fields: {row} {stem} {model} {seed} {duration} {resolution} {task_id}.",
        ),
    ] = "{stem}.mp4",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", metavar="N", help="Rows in progress at once (1-32).")
    ] = 4,
    stagger: Annotated[
        float, typer.Option("--stagger", metavar="SECONDS", help="Least time between two task submissions.")
    ] = 0.5,
    results: Annotated[
        str | None,
        typer.Option(
            "--results",
            metavar="PATH",
            help="The results JSONL, one line per row [default: <output-dir>/<manifest name>.results.jsonl].",
            show_default=False,
        ),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Run the valid rows even if others are invalid (exit 2 at the end).")
    ] = False,
    timeout: float = 1800.0,
    poll_interval: float | None = None,
    force: bool = False,
    metadata: bool = True,
    on_complete: str | None = None,
    **opts: Any,
) -> None:
    """Make a video for every row of a manifest, N at a time; rerunning it never pays for a row twice.

    The video options given here are defaults for the rows that do not set them. Every row is checked
    before anything is sent. Rows already saved are skipped, live tasks for the same request are reused,
    and Ctrl-C leaves every submitted task resumable: run the same command again. Exit 0 when every row
    succeeded, else the exit code of the worst failure.
    """
    from wanvid.gateway.client import Gate
    from wanvid.jobs import batch
    from wanvid.rules import manifest as manifest_file

    check_wait(timeout, poll_interval)
    if not 1 <= concurrency <= 32:
        raise UsageError("--concurrency must be from 1 to 32")
    if not math.isfinite(stagger) or not 0 <= stagger <= 3600:
        raise UsageError("--stagger must be a number of seconds from 0 to 3600")
    out_dir = config.expand(output_dir, "--output-dir").resolve()  # resolved: the journal knows saved videos by path
    rows = manifest_file.read(manifest)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the output directory {out_dir}: {exc.strerror}") from None
    from wanvid.gateway.upload import resolve as upload_settings

    hosting = upload_settings(ctx.profile_name, **_upload_flags(opts))
    defaults = {k: (v.value if isinstance(v, Enum) else v) for k, v in opts.items()}
    items = batch.plan(ctx, rows, defaults, out_dir=out_dir, template=name, force=force, hosting=hosting)
    for warning in dict.fromkeys(w for item in items if item.v for w in item.v.warnings):
        ctx.out.warn(warning)
    invalid = [item for item in items if item.problems]
    for item in invalid:
        ctx.out.note(f"row {item.row}: " + "; ".join(item.problems))
    if invalid and not skip_invalid:
        raise batch.InvalidRows(
            f"{len(invalid)} of {len(items)} row(s) of {manifest} are invalid (listed above); nothing was sent",
            "fix them, or pass --skip-invalid to run the valid rows",
            invalid,
        )
    ctx.client()  # a missing key or an insecure URL stops the batch here, not once per row
    results_path = out_dir / f"{manifest.stem}.results.jsonl"
    if results:  # its directory resolved, not the file: a link there is refused (ResultsFile), never followed
        given = config.expand(results, "--results").absolute()
        results_path = given.parent.resolve() / given.name
    if results_path == manifest.resolve() or results_path in {item.dest for item in items}:
        raise UsageError(f"--results {results_path} is the manifest or a row's video", hint="pass another --results")
    results_file = batch.ResultsFile(results_path)
    labels = [(item.row, item.dest.name if item.dest else item.template) for item in items]
    with ctx.out.batch(labels) as board:
        done = batch.run(
            ctx,
            items,
            board,
            out_dir=out_dir,
            concurrency=concurrency,
            gate=Gate(spacing=stagger),
            wait_opts={"timeout": timeout, "poll_interval": poll_interval},
            force=force,
            metadata=metadata,
            hook=on_complete,
            record=results_file.add,
        )
    results_file.close(done)
    doc = batch.document(manifest, results_path, done)
    shown = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in doc["summary"].items() if n and k != "rows")
    ctx.out.info(f"{len(done)} row(s): {shown}; results in {results_path}")
    paths = "\n".join(r.output for r in done if r.output and r.status in ("saved", "already_saved"))
    if ctx.out.mode == "human":
        table = [(str(r.row), r.status, r.task_id or "", r.output or (r.error or {}).get("message", "")) for r in done]
        ctx.out.table(("ROW", "STATUS", "TASK", "OUTPUT / ERROR"), table, doc)
    else:
        ctx.out.result(paths, doc, quiet_text=paths)
    if doc["exit_code"]:
        raise typer.Exit(doc["exit_code"])


@command(app, "list", aliases=("history",))
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


@command(app, "sandbox")
def sandbox(
    ctx: Ctx,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port; 0 picks a free one.")] = 8765,
    queue_seconds: Annotated[float, typer.Option("--queue-seconds", help="How long tasks stay PENDING.")] = 2.0,
    run_seconds: Annotated[float, typer.Option("--run-seconds", help="How long tasks stay RUNNING.")] = 6.0,
    fail: Annotated[
        str | None,
        typer.Option("--fail", metavar="CODE:MESSAGE", help="Fault: new tasks end FAILED with this code and message."),
    ] = None,
    throttle: Annotated[int, typer.Option("--throttle", help="Fault: answer the next N API calls 429.")] = 0,
    server_errors: Annotated[int, typer.Option("--server-errors", help="Fault: answer the next N API calls 500.")] = 0,
    cut_download_after: Annotated[
        int | None,
        typer.Option(
            "--cut-download-after", metavar="BYTES", help="Fault: drop the first download after this many bytes."
        ),
    ] = None,
    slow_download: Annotated[
        int | None, typer.Option("--slow-download", metavar="BYTES_PER_S", help="Fault: serve downloads at this rate.")
    ] = None,
    expire: Annotated[bool, typer.Option("--expire", help="Fault: every task reports as expired.")] = False,
    ttl_seconds: Annotated[
        float, typer.Option("--ttl-seconds", help="How long tasks and their signed URLs live.")
    ] = 86400.0,
    flavor: Annotated[
        str,
        typer.Option(
            "--flavor",
            metavar="docs|newapi|house",
            help="Answer style: docs (default, ope.ai's pages), newapi (new-api's code: lowercase statuses, flat "
            "errors, empty 429s, a content route without Range) or house (the sandbox's first style).",
        ),
    ] = "docs",
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            metavar="NAME=VALUE",
            help="Any fault of POST /_sandbox/faults, VALUE as JSON (repeatable), e.g. --fault content_errors=3.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the built-in gateway emulator in the foreground and print its base URL.

    It speaks both protocols with the real gateway's shapes and rules, accepts any key (or only
    --api-key when given), and serves a real MP4. Faults can also be switched at runtime:
    POST /_sandbox/faults with a JSON object, e.g. {"throttle": 3, "retry_after": 1}; the flavor
    with POST /_sandbox/flavor {"flavor": "newapi"}. DashScope SDK users point base_http_api_url
    at <url>/api/v1.
    """
    from wanvid.sandbox import FLAVORS, Sandbox

    if flavor not in FLAVORS:
        raise UsageError(f"--flavor must be one of {', '.join(FLAVORS)}, not {flavor!r}")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, not {port}", hint="0 picks a free port")
    for flag, seconds in (("--queue-seconds", queue_seconds), ("--run-seconds", run_seconds)):
        if not math.isfinite(seconds) or seconds < 0:
            raise UsageError(f"{flag} must be a number of seconds, 0 or more")
    if not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
        raise UsageError("--ttl-seconds must be a number of seconds, more than 0")
    counts = {"--throttle": throttle, "--server-errors": server_errors, "--cut-download-after": cut_download_after}
    for flag, count in counts.items():
        if count is not None and count < 0:
            raise UsageError(f"{flag} must be 0 or more")
    if slow_download is not None and slow_download <= 0:
        raise UsageError("--slow-download must be a number of bytes a second, more than 0")

    code, _, message = (fail or "").partition(":")
    try:
        sb = Sandbox(
            host,
            port,
            api_key=ctx.api_key,
            queue_seconds=queue_seconds,
            run_seconds=run_seconds,
            ttl_seconds=ttl_seconds,
            flavor=flavor,
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}", hint="pick another --port (0 = any free port)"
        ) from None
    f = sb.faults
    f.fail_code, f.fail_message = code or None, message or None
    f.throttle, f.server_errors = throttle, server_errors
    f.cut_download_after, f.slow_download_bps, f.expire = cut_download_after, slow_download, expire
    problem = sb._merge_faults(dict(_fault_setting(item) for item in fault or []))
    if problem:
        sb.stop()
        raise UsageError(f"--fault {problem[0]}: {problem[1]}", hint="see GET /_sandbox/faults for the names")
    ctx.out.result(sb.url, {"base_url": sb.url})
    key = "<the key you gave it>" if ctx.api_key else "anything"
    ctx.out.info(f"sandbox gateway listening; use it with: --base-url {sb.url} --api-key {key}   (Ctrl-C stops it)")
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        ctx.out.info("sandbox stopped")


def _fault_setting(item: str) -> tuple[str, Any]:
    import json

    name, eq, value = item.partition("=")
    if not eq:
        raise UsageError(f"--fault {item!r} is not NAME=VALUE", hint="e.g. --fault content_errors=3")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value  # a bare word: a string fault such as malformed=html


# ---------------------------------------------------------------------------------------------
# config


@command(config_app, "set-key")
def config_set_key(
    ctx: Ctx,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the key from standard input instead of prompting.")
    ] = False,
) -> None:
    """Store the API key for the profile (prompted without echo, or read with --stdin)."""
    if stdin:
        key = sys.stdin.readline().strip()
    elif sys.stdin.isatty():
        key = typer.prompt("API key", hide_input=True, err=True).strip()
    else:
        raise UsageError("no terminal to prompt for the key on", hint="pipe it in: wanvid config set-key --stdin")
    if not key:
        raise UsageError("the key is empty", hint="paste the key from the ope.ai console")
    path = config.save(_profile(ctx), api_key=key)
    ctx.out.info(f"saved the API key for profile {_profile(ctx)!r}")
    ctx.out.result(str(path), {"profile": _profile(ctx), "path": str(path)})


@command(config_app, "set")
def config_set(
    ctx: Ctx,
    name: Annotated[
        str,
        typer.Argument(
            help="base_url, protocol, bucket, bucket_endpoint, bucket_region or upload_images "
            "(the key goes through set-key)."
        ),
    ],
    value: Annotated[str, typer.Argument(help="The value to store.")],
) -> None:
    """Store a setting for the profile."""
    if name == "api_key":
        raise UsageError(
            "the key is not set on the command line (shell history keeps it)", hint="use: wanvid config set-key"
        )
    if name not in config.FILE_KEYS:
        raise UsageError(f"unknown setting {name!r}", hint="settings are: " + ", ".join(config.FILE_KEYS[1:]))
    try:
        if name in config.UPLOAD_KEYS:
            from wanvid.gateway.upload import check_setting

            value = check_setting(name, value)
        else:
            config.resolve(**{name: value})  # the same checks a flag would get
    except UsageError as exc:
        exc.message = exc.message.replace("(from flag) ", "")
        raise
    path = config.save(_profile(ctx), **{name: value})
    ctx.out.result(str(path), {"profile": _profile(ctx), "path": str(path), name: value})


@command(config_app, "unset")
def config_unset(ctx: Ctx, name: Annotated[str, typer.Argument(help="api_key, base_url or protocol.")]) -> None:
    """Remove a setting from the profile."""
    path = config.save(_profile(ctx), **{name: None})
    ctx.out.result(str(path), {"profile": _profile(ctx), "path": str(path)})


@command(config_app, "show")
def config_show(ctx: Ctx) -> None:
    """Show the effective settings (key masked) and where each comes from: flag, env, file or default."""
    s = ctx.settings
    rows = {"profile": s.profile, "api_key": s.api_key, "base_url": s.base_url, "protocol": s.protocol}
    from wanvid.gateway.upload import sources

    rows.update(sources(s.profile.value or config.DEFAULT_PROFILE))  # upload settings, when env or the file sets any
    shown = {k: (config.mask(v.value) if k == "api_key" else v.value or "") for k, v in rows.items()}
    text = "\n".join(f"{k:<9} {shown[k]:<40} ({v.source})" for k, v in rows.items())
    text += f"\n{'file':<9} {config.config_path()}"
    data = {k: {"value": shown[k], "source": v.source} for k, v in rows.items()}
    data["config_file"] = {
        "value": str(config.config_path()),
        "source": "env WANVID_CONFIG_DIR" if os.environ.get("WANVID_CONFIG_DIR") else "default",
    }
    ctx.out.result(text, data)


@command(config_app, "path")
def config_path(ctx: Ctx) -> None:
    """Print the config file's path."""
    path = str(config.config_path())
    ctx.out.result(path, {"path": path})


def _profile(ctx: Ctx) -> str:
    return ctx.settings.profile.value or config.DEFAULT_PROFILE


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


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"wanvid {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Turn a still image into a video with Alibaba's Wan models through the ope.ai gateway.

    Quick start:  wanvid config set-key  then  wanvid run cat.png -p "the cat walks toward the camera"
    """


def run() -> None:
    """The console entry point (``wanvid.__main__``)."""
    if os.environ.get("_WANVID_COMPLETE"):  # a completion request Typer answers: the words are not in argv
        app(prog_name="wanvid")
    else:
        _only_the_named_command(app, sys.argv[1:2])(prog_name="wanvid")


def _only_the_named_command(root: typer.Typer, first: list[str]) -> typer.Typer:
    """``root`` as this process needs it: only the command (or group) the first word names, when it
    names one; otherwise every command as a listing-only stand-in.

    Typer turns the signature of every registered command into Click parameters at each start, about
    10 ms for all of them, although a run uses one. When the first word is not a command (nothing, an
    option, a typo), no command can run: root's options all end the process (--help, --version, the
    completion installers) and Click stops at an unknown word. The root help listing and "No such
    command ... Did you mean" then need each command's name and help only, which the stand-ins keep
    (`_listed`). The one exception is ``--``, after which a command may follow: that keeps everything.
    Shallow copies, so ``app`` itself (which tests drive in-process) is never changed."""
    names = {c.name for c in root.registered_commands} | {g.name for g in root.registered_groups}
    if first == ["--"]:
        return root
    if first and first[0] in names:
        solo = copy.copy(root)
        solo.registered_commands = [c for c in root.registered_commands if c.name == first[0]]
        solo.registered_groups = [g for g in root.registered_groups if g.name == first[0]]
        return solo
    return _listed(root)


def _listed(root: typer.Typer) -> typer.Typer:
    """A copy of ``root`` whose commands (its groups' too) keep their name, help and flags but take no
    parameters: what a help listing shows of them, without building their Click parameters."""
    listed = copy.copy(root)
    listed.registered_commands = []
    for info in root.registered_commands:
        stand_in = copy.copy(info)
        stand_in.name = info.name or typer.main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]
        stand_in.help = inspect.getdoc(info.callback) if info.help is None else info.help
        stand_in.callback = _never_runs
        listed.registered_commands.append(stand_in)
    listed.registered_groups = []
    for group in root.registered_groups:
        stand_in_group = copy.copy(group)
        stand_in_group.typer_instance = _listed(group.typer_instance) if group.typer_instance else None
        listed.registered_groups.append(stand_in_group)
    return listed


def _never_runs() -> None:  # pragma: no cover - see _only_the_named_command: no command runs then
    raise AssertionError("a listing-only command ran")
