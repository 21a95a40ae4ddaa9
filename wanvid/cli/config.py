"""``wanvid config``: store the key and settings of a profile, and show where each setting comes from.

These commands offer --profile (the profile they read or write) and the output options; ``show`` also
the gateway settings' flags (--api-key, --base-url, --protocol), since what a flag overrides is part of
what it shows; ``path`` only the output options. None offers --debug or --allow-insecure: no request
is sent.
"""

import os
import sys
from typing import Annotated

import typer

from wanvid import config
from wanvid.cli.boundary import command
from wanvid.cli.context import Ctx
from wanvid.cli.options import OUTPUT
from wanvid.errors import UsageError

# The options of a command that reads or writes one profile.
PROFILE = ("profile", *OUTPUT)


@command("set-key", common=PROFILE)
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


@command("set", common=PROFILE)
def config_set(
    ctx: Ctx,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="base_url, protocol, bucket, bucket_endpoint, bucket_region or upload_images "
            "(the key goes through set-key).",
        ),
    ],
    value: Annotated[str, typer.Argument(metavar="VALUE", help="The value to store.")],
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
        else:  # the same checks a flag would get, and nothing else (the file may be broken: this fixes it)
            check = config.check_base_url if name == "base_url" else config.check_protocol
            check(config.Setting(value, "flag"))
    except UsageError as exc:
        exc.message = exc.message.replace("(from flag) ", "")
        raise
    path = config.save(_profile(ctx), **{name: value})
    ctx.out.result(str(path), {"profile": _profile(ctx), "path": str(path), name: value})


@command("unset", common=PROFILE)
def config_unset(
    ctx: Ctx, name: Annotated[str, typer.Argument(metavar="NAME", help="api_key, base_url or protocol.")]
) -> None:
    """Remove a setting from the profile."""
    path = config.save(_profile(ctx), **{name: None})
    ctx.out.result(str(path), {"profile": _profile(ctx), "path": str(path)})


@command("show", common=("api_key", "base_url", "profile", "protocol", *OUTPUT))
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


@command("path", common=OUTPUT)
def config_path(ctx: Ctx) -> None:
    """Print the config file's path."""
    path = str(config.config_path())
    ctx.out.result(path, {"path": path})


def _profile(ctx: Ctx) -> str:
    """Only the profile's name: the file's other settings may be what this command is fixing."""
    return config.profile_name(ctx.profile)
