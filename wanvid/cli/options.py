"""The options commands share: their declarations, grouped, and the value types behind them.

Each group is a list of keyword ``inspect.Parameter`` s that ``wanvid.cli.boundary.command`` appends
to a command's signature: ``COMMON_PARAMS`` (the options that make a ``Ctx``; a command picks the ones
that mean something to it, see ``wanvid.cli``), ``CREATE_PARAMS`` (the video request), ``NEW_PARAM``,
``WAIT_PARAMS``, ``OUT_PARAMS`` and ``UPLOAD_PARAMS``. Also here: the ``TASK_ID`` argument, and the
autocompletions Typer calls (model names, profile names, task ids from the journal). Only typer and
light modules are imported.
"""

import inspect
from enum import StrEnum
from typing import Annotated, Any

import typer

from wanvid import config
from wanvid.errors import WanvidError
from wanvid.rules.models import DEFAULT_MODEL, MODELS


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
                metavar="[native|unified]",
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


# Which common options a command offers (``command(..., common=...)``): the names of COMMON_PARAMS.
OUTPUT = ("json_out", "quiet")  # how the result is printed: every command prints one
GATEWAY = ("api_key", "base_url", "profile", "protocol", "json_out", "quiet", "debug", "allow_insecure")

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
        "prompt_file",
        Annotated[
            str | None,  # a str, not Path: "-" is standard input
            typer.Option(
                "--prompt-file",
                metavar="PATH",
                help="Read the prompt from a UTF-8 file (- for stdin); one trailing newline is dropped.",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "negative_prompt_file",
        Annotated[
            str | None,
            typer.Option(
                "--negative-prompt-file",
                metavar="PATH",
                help="Read the negative prompt from a UTF-8 file (- for stdin) (native).",
                show_default=False,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "allow_empty_prompt",
        Annotated[
            bool,
            typer.Option(
                "--allow-empty-prompt",
                help="Send an empty or blank prompt as given instead of refusing it (exit 2).",
                rich_help_panel=CREATE,
            ),
        ],
        False,
    ),
    _param(
        "model",
        Annotated[
            str | None,
            typer.Option(
                "--model",
                "-m",
                metavar="MODEL",
                help="Model id, any case; a typo of a known id is refused, other unknown ids are sent unchecked "
                f"[default: config file, {DEFAULT_MODEL}].",
                show_default=False,
                autocompletion=_complete_model,
                rich_help_panel=CREATE,
            ),
        ],
    ),
    _param(
        "resolution",
        Annotated[
            Resolution | None,
            typer.Option(
                "--resolution",
                metavar="[720P|1080P]",
                case_sensitive=False,
                help="Output resolution; on unified it picks the size sent [default: config file, the model's: 1080P].",
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
                help="Seconds: 2-15 on wan2.7-i2v, 5/10/15 on wan2.6-i2v [default: config file, the model's: 5].",
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
                help="Where to save the MP4 (a file, or a directory to put it in) [default: the config file's "
                "output_dir, else the current directory].",
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
                help="Write the video's name plus .json (cat.mp4.json) beside it: prompt, parameters, seed, task id, "
                "timings, input hashes.",
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


TASK_ID = Annotated[
    str | None,
    typer.Argument(
        metavar="[TASK_ID]",
        help="The task id [default: the most recent task of this profile and gateway].",
        show_default=False,
        autocompletion=lambda incomplete: _complete_task(incomplete),
    ),
]

TASK_IDS = Annotated[  # wait A B C
    list[str] | None,
    typer.Argument(
        metavar="[TASK_ID]...",
        help="The task ids [default: the most recent task of this profile and gateway].",
        show_default=False,
        autocompletion=lambda incomplete: _complete_task(incomplete),
    ),
]


# Task-id completion (Typer's path; wanvid.cli.complete answers first when it can).
def _complete_task(incomplete: str) -> list[tuple[str, str]]:
    """Task ids from the journal, most recent first, with their status (no HTTP, no rich: it must be quick)."""
    try:
        from wanvid.cli.complete import task_rows  # the same queries for both completion paths
        from wanvid.store.journal import Journal

        journal = Journal()
        if not journal.path.exists():
            return []
        rows = task_rows(journal.db_read, incomplete)
    except WanvidError:
        return []
    return [(task_id, f"{status} {model or ''}".strip()) for task_id, status, model, _ in rows]
