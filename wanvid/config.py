"""Settings: where each value comes from (flag > env > config file > default) and the config file itself.

The file is TOML, one table per profile (``[profiles.NAME]``), in the platform's config dir
(platformdirs; moved by ``WANVID_CONFIG_DIR``). It is written atomically with mode 0600 in a 0700 dir
because it holds the API key. Nothing here prints; the key leaves this module only inside ``Settings``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, NamedTuple

from .errors import AuthError, UsageError

DEFAULT_BASE_URL = "https://api-platform.ope.ai"
DEFAULT_PROFILE = "default"
DEFAULT_PROTOCOL = "native"
UPLOAD_KEYS = ("bucket", "bucket_endpoint", "bucket_region", "upload_images")  # read by wanvid.upload
FILE_KEYS = ("api_key", "base_url", "protocol", *UPLOAD_KEYS)
KEY_ENV_VARS = ("WANVID_API_KEY", "OPEAI_API_KEY")
TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}  # how a yes/no setting may be written


class Setting(NamedTuple):  # NamedTuples: built at every start, ten times faster than frozen dataclasses
    value: str | None
    source: str  # "flag", "env WANVID_API_KEY", "file", "default", "unset"


class Settings(NamedTuple):
    profile: Setting
    api_key: Setting
    base_url: Setting
    protocol: Setting

    def require_key(self) -> str:
        if not self.api_key.value:
            raise AuthError(
                "no API key",
                hint="pass --api-key, set WANVID_API_KEY (or OPEAI_API_KEY), or run `wanvid config set-key`",
            )
        return self.api_key.value


def config_dir() -> Path:
    moved = os.environ.get("WANVID_CONFIG_DIR")
    if moved:
        return Path(moved).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("wanvid", appauthor=False))


def config_path() -> Path:
    return config_dir() / "config.toml"


def load_file() -> dict[str, Any]:
    path = config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}", hint="check its permissions") from None
    # Imported only once there is a file to parse: `--help` reads no config, and with the key in the
    # environment (CI) there is often no file (~4 ms of a 200 ms `wanvid status`).
    import tomllib

    try:
        return tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"config file {path} is not valid TOML ({exc})",
            hint=f"fix or delete {path}, then run `wanvid config set-key`",
        ) from None


def profiles() -> list[str]:
    """The profiles the config file names (for tab completion; an unreadable file names none)."""
    try:
        table = load_file().get("profiles", {})
    except (UsageError, RuntimeError):  # RuntimeError: a WANVID_CONFIG_DIR with a ~user that does not exist
        return []
    return sorted(name for name, value in table.items() if isinstance(value, dict)) if isinstance(table, dict) else []


def profile_table(data: dict[str, Any], profile: str) -> dict[str, Any]:
    """The ``[profiles.NAME]`` table of a loaded config file, or {} (also for a malformed one)."""
    table = data.get("profiles", {}).get(profile, {})
    return table if isinstance(table, dict) else {}


def pick(flag: str | None, env_names: tuple[str, ...], file_value: Any, default: str | None) -> Setting:
    """One setting by the precedence every setting follows: flag > env > config file > default."""
    if flag:
        return Setting(flag, "flag")
    for name in env_names:
        if os.environ.get(name):
            return Setting(os.environ[name], f"env {name}")
    if isinstance(file_value, str) and file_value:
        return Setting(file_value, "file")
    return Setting(default, "default" if default else "unset")


def resolve(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    profile: str | None = None,
    protocol: str | None = None,
) -> Settings:
    prof = pick(profile, ("WANVID_PROFILE",), None, DEFAULT_PROFILE)
    table = profile_table(load_file(), prof.value or DEFAULT_PROFILE)
    key = pick(api_key, KEY_ENV_VARS, table.get("api_key"), None)
    if key.value is not None:
        # A trailing newline or CR (a pasted key, a CRLF .env file) is noise; anything else unprintable
        # would end up in an HTTP header error that quotes the key, so refuse it here, by source only.
        value = key.value.strip()
        key = Setting(value, key.source)
        if not value.isascii() or not value.isprintable() or " " in value:
            raise AuthError(
                f"the API key from {key.source} contains spaces or unprintable characters",
                hint="set it again without them: wanvid config set-key",
            )
    settings = Settings(
        profile=prof,
        api_key=key,
        base_url=pick(base_url, ("WANVID_BASE_URL",), table.get("base_url"), DEFAULT_BASE_URL),
        protocol=pick(protocol, ("WANVID_PROTOCOL",), table.get("protocol"), DEFAULT_PROTOCOL),
    )
    if settings.protocol.value not in ("native", "unified"):
        raise UsageError(
            f"protocol {settings.protocol.value!r} (from {settings.protocol.source}) is not 'native' or 'unified'",
            hint="use --protocol native or --protocol unified",
        )
    url = settings.base_url.value or ""
    if not url.startswith(("http://", "https://")):
        raise UsageError(
            f"base URL {url!r} (from {settings.base_url.source}) is not an http(s) URL",
            hint="use e.g. --base-url https://api-platform.ope.ai",
        )
    return settings


def mask(key: str | None) -> str:
    """Enough of a key to tell two apart, never enough to use: the last 4 characters of a long key."""
    if not key:
        return "(none)"
    return "****" + key[-4:] if len(key) >= 16 else "****"


def save(profile: str, **values: str | None) -> Path:
    """Set (or, with None, remove) values of one profile; atomic, 0600 file in a 0700 directory."""
    import tomli_w

    unknown = set(values) - set(FILE_KEYS)
    if unknown:
        raise UsageError(f"unknown setting {sorted(unknown)[0]!r}", hint=f"settings are: {', '.join(FILE_KEYS)}")
    data = load_file()
    table = data.setdefault("profiles", {}).setdefault(profile, {})
    for name, value in values.items():
        if value is None:
            table.pop(name, None)
        else:
            table[name] = value
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            tomli_w.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path
