"""A profile's defaults for new videos: model, resolution, duration and output_dir.

Precedence: the flag > the config file's profile (``wanvid config set model wan2.6-i2v``) > the built-in
default. No environment variable sets them. ``effective`` gives each with its source (``config show``,
``config get``), ``fill`` puts the file's values into a command's options where no flag was given (create,
run, batch: model, resolution, duration), ``directory`` is where run, download and batch put a video when
no -o / --output-dir says so, and ``check`` is what ``config set`` stores for a value, or a UsageError.
"""

from __future__ import annotations

from typing import Any

from wanvid import config
from wanvid.errors import FieldError, UsageError
from wanvid.rules.models import DEFAULT_MODEL, MODELS

# The built-in defaults. None: nothing is sent, and the gateway uses the model's own (1080P, 5 s); the
# current directory for output_dir.
BUILT_IN: dict[str, str | None] = {"model": DEFAULT_MODEL, "resolution": None, "duration": None, "output_dir": None}
SHOWN_BUILT_IN = {"resolution": "(the model's)", "duration": "(the model's)", "output_dir": "(the current directory)"}
REQUEST_KEYS = ("model", "resolution", "duration")  # the defaults that are request fields
DURATIONS = range(1, 16)  # what a duration may be at all, for a model wanvid does not know


def effective(profile: str) -> dict[str, config.Setting]:
    """Each default of ``profile`` (a name) as the config file or the built-in default gives it."""
    found = config.video_defaults(profile)
    return {name: s if s.value is not None else config.Setting(BUILT_IN[name], "default") for name, s in found.items()}


def fill(opts: dict[str, Any], profile: str) -> set[str]:
    """Put the profile's file defaults into ``opts`` (a command's video options) where no flag set them;
    return the names filled from the file (an error about one of them names the config file, not a flag)."""
    filled = set()
    for name, s in config.video_defaults(profile).items():
        if name in REQUEST_KEYS and opts.get(name) is None and s.value is not None:
            opts[name] = _seconds(s.value, profile) if name == "duration" else s.value
            filled.add(name)
    if opts.get("model") is None:
        opts["model"] = DEFAULT_MODEL
    return filled


def _seconds(value: str, profile: str) -> int:
    try:
        return int(value)
    except ValueError:
        error = FieldError("duration", f"{value!r} is not a whole number of seconds")
        raise from_file(error, profile) from None


def from_file(exc: FieldError, profile: str) -> FieldError:
    """An error about a value the config file gave: named as that setting, with the command that changes it."""
    exc.message = f"{exc.field} from the config file (profile {profile!r}): {exc.message}"
    exc.hint = f"pass --{exc.field} to override it, or change it: wanvid config set {exc.field} VALUE" + (
        f" --profile {profile}" if profile != config.DEFAULT_PROFILE else ""
    )
    return exc


def directory(profile: str) -> str | None:
    """The profile's output_dir (created if missing, as batch's --output-dir is), or None: the current directory."""
    value = config.video_defaults(profile)["output_dir"].value
    if value is None:
        return None
    path = config.expand(value, "output_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"output_dir {value} (from the config file) cannot be created: {exc.strerror}",
            hint="pass -o, or change it: wanvid config set output_dir DIR",
        ) from None
    return str(path)


def check(name: str, value: str, profile: str) -> str | int:
    """The value ``config set NAME VALUE`` stores, checked as a flag would be; a UsageError if it cannot be used."""
    value = value.strip()
    if name == "model":
        if not value or any(c.isspace() or not c.isprintable() for c in value):
            raise UsageError(f"model {value!r} is not a model id", hint="e.g. " + ", ".join(MODELS))
        from wanvid.errors import FieldError
        from wanvid.rules.models import canonical_model

        try:  # as --model: any case, stored by its own name; a typo of a known model refused, not stored
            return canonical_model(value)[0]
        except FieldError as exc:
            raise UsageError(exc.message, hint=exc.hint) from None
    if name == "resolution":
        if value.upper() not in ("720P", "1080P"):
            raise UsageError(f"resolution {value!r} is not 720P or 1080P", hint="use 720P or 1080P")
        return value.upper()
    if name == "duration":
        return _duration(value, profile)
    # output_dir: a directory, or a path one can be made at
    path = config.expand(value, "output_dir").absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(f"output_dir {path} exists and is not a directory", hint="give a directory")
    return str(path)


def _duration(value: str, profile: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise UsageError(f"duration {value!r} is not a whole number of seconds", hint="e.g. 5") from None
    model = effective(profile)["model"].value or DEFAULT_MODEL
    spec = MODELS.get(model)
    allowed = spec.durations if spec else DURATIONS
    if seconds not in allowed:
        shown = (
            f"{allowed[0]}-{allowed[-1]}"
            if list(allowed) == list(range(allowed[0], allowed[-1] + 1))
            else (", ".join(map(str, allowed)))
        )
        raise UsageError(
            f"duration {seconds} s is not allowed for {model} (the profile's model): use {shown}",
            hint="or set another model first: wanvid config set model MODEL",
        )
    return seconds


def mismatch(profile: str) -> str | None:
    """A warning when the profile's duration is not one its model allows (after ``config set model``)."""
    values = effective(profile)
    duration, model = values["duration"].value, values["model"].value or DEFAULT_MODEL
    spec = MODELS.get(model)
    if duration is None or spec is None or int(duration) in spec.durations:
        return None
    return f"the profile's duration {duration} s is not allowed for {model}; change it: wanvid config set duration N"
