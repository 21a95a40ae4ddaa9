"""``wanvid config``: store the key and settings of a profile, and show where each setting comes from.

These commands offer --profile (the profile they read or write) and the output options; ``show`` and
``get`` also the gateway settings' flags (--api-key, --base-url, --protocol), since what a flag overrides
is part of what they show; ``path`` only the output options. None offers --debug or --allow-insecure: no
request is sent. The video defaults a profile may hold (model, resolution, duration, output_dir) are
checked and resolved by ``wanvid.jobs.defaults``.
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
from wanvid.jobs import defaults

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
            help="base_url, protocol, model, resolution, duration, output_dir, bucket, bucket_endpoint, "
            "bucket_region or upload_images (the key goes through set-key).",
        ),
    ],
    value: Annotated[str, typer.Argument(metavar="VALUE", help="The value to store.")],
) -> None:
    """Store a setting for the profile (a new profile is made by the first setting stored in it)."""
    if name == "api_key":
        raise UsageError(
            "the key is not set on the command line (shell history keeps it)", hint="use: wanvid config set-key"
        )
    if name not in config.FILE_KEYS:
        raise UsageError(f"unknown setting {name!r}", hint="settings are: " + ", ".join(config.FILE_KEYS[1:]))
    profile = _profile(ctx)
    stored: str | int = value
    try:
        if name in config.UPLOAD_KEYS:
            from wanvid.gateway.upload import check_setting

            stored = check_setting(name, value)
        elif name in config.DEFAULT_KEYS:
            stored = defaults.check(name, value, profile)
        else:  # the same checks a flag would get, and nothing else (the file may be broken: this fixes it)
            check = config.check_base_url if name == "base_url" else config.check_protocol
            check(config.Setting(value, "flag"))
    except UsageError as exc:
        exc.message = exc.message.replace("(from flag) ", "")
        raise
    path = config.save(profile, **{name: stored})
    if name == "model":
        from wanvid.rules.models import MODELS

        if stored not in MODELS:
            ctx.out.warn(
                f"model {stored!r} is not one wanvid knows ({', '.join(MODELS)}); "
                "it will be sent unchecked, the gateway will judge it"
            )
        if warning := defaults.mismatch(profile):
            ctx.out.warn(warning)
    ctx.out.result(str(path), {"profile": profile, "path": str(path), name: stored})


@command("unset", common=PROFILE)
def config_unset(
    ctx: Ctx,
    name: Annotated[
        str,
        typer.Argument(metavar="NAME", help="Any setting config set stores, or api_key (removes the profile's key)."),
    ],
) -> None:
    """Remove a setting from the profile; the next source in line (env, default) takes over."""
    config.check_profile(config.profile_setting(ctx.profile))  # a typo'd profile is not made by removing from it
    path = config.save(_profile(ctx), **{name: None})
    ctx.out.result(str(path), {"profile": _profile(ctx), "path": str(path)})


SHOW = ("api_key", "base_url", "profile", "protocol", *OUTPUT)  # what show and get offer: what they report on


@command("show", common=SHOW)
def config_show(ctx: Ctx) -> None:
    """Show the effective settings (key masked) and where each comes from: flag, env, file or default."""
    rows = _effective(ctx)
    shown = {k: value for k, (value, _) in rows.items()}
    for name, placeholder in defaults.SHOWN_BUILT_IN.items():
        if not shown[name]:
            shown[name] = placeholder
    text = "\n".join(f"{k:<10} {shown[k]:<40} ({source})" for k, (_, source) in rows.items())
    text += f"\n{'file':<10} {config.config_path()}"
    data = {k: {"value": value, "source": source} for k, (value, source) in rows.items()}
    data["config_file"] = {
        "value": str(config.config_path()),
        "source": "env WANVID_CONFIG_DIR" if os.environ.get("WANVID_CONFIG_DIR") else "default",
    }
    ctx.out.result(text, data)


@command("get", common=SHOW)
def config_get(
    ctx: Ctx,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="profile, api_key (masked), base_url, protocol, model, resolution, duration, output_dir or an "
            "upload setting.",
        ),
    ],
) -> None:
    """Print one setting's effective value alone, for scripts (empty: not set, the model's own is used)."""
    rows = _effective(ctx)
    if name not in rows and name not in config.UPLOAD_KEYS:
        raise UsageError(f"unknown setting {name!r}", hint="settings are: " + ", ".join([*rows, *config.UPLOAD_KEYS]))
    value, source = rows.get(name, ("", "unset"))
    ctx.out.result(value, {"name": name, "value": value, "source": source})


def _effective(ctx: Ctx) -> dict[str, tuple[str, str]]:
    """Every setting of the profile in effect: its value as shown (the key masked; "" for none) and its source."""
    s = ctx.settings
    found = {"profile": s.profile, "api_key": s.api_key, "base_url": s.base_url, "protocol": s.protocol}
    found.update(defaults.effective(ctx.profile_name))
    from wanvid.gateway.upload import sources

    found.update(sources(ctx.profile_name))  # upload settings, when env or the file sets any
    return {k: (config.mask(v.value) if k == "api_key" else v.value or "", v.source) for k, v in found.items()}


CHECK = ("api_key", "base_url", "profile", *OUTPUT, "debug", "allow_insecure")  # it sends one free request


@command("check", common=CHECK)
def config_check(ctx: Ctx) -> None:
    """Check the API key with the gateway (GET /v1/models, free) and list the video models it may use."""
    from wanvid.errors import AuthError, NotFound
    from wanvid.gateway.service import MODELS_PATH, is_video_model, list_models
    from wanvid.rules.models import MODELS

    s = ctx.settings
    source = _key_source(s.api_key.source, ctx.profile_name)
    try:
        listed = list_models(ctx.client())
    except AuthError as exc:
        if exc.status is None:  # no key at all: the usual message, which names every way to give one
            raise
        exc.message = f"the gateway at {ctx.base} refused the key from {source}: {exc.message}"
        exc.hint = _fix_key(s.api_key.source, ctx.profile_name)
        raise
    except NotFound as exc:  # the gateway's root has a /v1/models: the URL is not the gateway's root
        raise UsageError(
            f"{ctx.base} has no {MODELS_PATH} ({exc.message})",
            hint="is the base URL the gateway's root, e.g. https://api-platform.ope.ai? fix --base-url",
        ) from None
    ids = [m["id"] for m in listed]
    known = {model: model in ids for model in MODELS}
    others = [m["id"] for m in listed if m["id"] not in MODELS and is_video_model(m)]
    doc = {
        "ok": True,
        "profile": ctx.profile_name,
        "key_source": s.api_key.source,
        "key": config.mask(s.api_key.value),
        "base_url": ctx.base,
        "models": known,
        "other_video_models": others,
        "listed": len(ids),
    }
    lines = [
        f"{'profile':<9} {ctx.profile_name}",
        f"{'key':<9} {config.mask(s.api_key.value)} from {source}",
        f"{'gateway':<9} {ctx.base}",
        f"{'status':<9} accepted ({MODELS_PATH} lists {len(ids)} models for this key; nothing was charged)",
    ]
    lines += [f"{'model' if i == 0 else '':<9} {m:<12} {'yes' if ok else 'no: not listed for this key'}"
              for i, (m, ok) in enumerate(known.items())]  # fmt: skip
    if others:
        lines.append(f"{'other':<9} {', '.join(others)} (video models wanvid has no rules for; sent unchecked)")
    ctx.out.result("\n".join(lines), doc, quiet_text="ok")
    if not any(known.values()):
        ctx.out.warn("the key may use none of " + ", ".join(MODELS) + "; ask the account's owner to enable them")


def _key_source(source: str, profile: str) -> str:
    """Where the key came from, as a person would look for it; never any part of the key."""
    if source == "flag":
        return "--api-key"
    if source.startswith("env "):
        return source.removeprefix("env ")
    if source == "file":
        return f"the config file {config.config_path()} (profile {profile!r})"
    return source


def _fix_key(source: str, profile: str) -> str:
    store = "wanvid config set-key" + (f" --profile {profile}" if profile != config.DEFAULT_PROFILE else "")
    if source == "flag":
        return "pass a valid key with --api-key"
    if source.startswith("env "):
        return f"set {source.removeprefix('env ')} to a valid key (or unset it and store one: {store})"
    return f"store a valid key: {store}"


@command("path", common=OUTPUT)
def config_path(ctx: Ctx) -> None:
    """Print the config file's path."""
    path = str(config.config_path())
    ctx.out.result(path, {"path": path})


def _profile(ctx: Ctx) -> str:
    """Only the profile's name: the file's other settings may be what this command is fixing."""
    return config.profile_name(ctx.profile)
