"""Settings: where each value comes from (flag > env > config file > default), the config file itself, and
the one place that knows wanvid's directories (``config_dir``, ``data_dir``: the journal's), for every
command, the job layer and the Typer-free tab completion alike.

The file is TOML, one table per profile (``[profiles.NAME]``), in the platform's config dir
(platformdirs; moved by ``WANVID_CONFIG_DIR``). It is written atomically with mode 0600 in a 0700 dir
because it holds the API key (a new file renamed over the old one, so a planted symlink is replaced, never
written through). It is read only if it is a regular file of at most ``MAX_FILE`` bytes, and its shape is
checked on load (tables where tables belong, strings where settings are): anything else is a ``UsageError``
naming the file, never a crash or a hang. The base URL is checked here too, whatever its source, before
anything is sent. Nothing here prints; the key leaves this module only inside ``Settings``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import Any, NamedTuple

from wanvid.errors import AuthError, UsageError

DEFAULT_BASE_URL = "https://api-platform.ope.ai"
DEFAULT_PROFILE = "default"
DEFAULT_PROTOCOL = "native"
UPLOAD_KEYS = ("bucket", "bucket_endpoint", "bucket_region", "upload_images")  # read by wanvid.gateway.upload
DEFAULT_KEYS = ("model", "resolution", "duration", "output_dir")  # a profile's defaults for new videos (jobs.defaults)
FILE_KEYS = ("api_key", "base_url", "protocol", *UPLOAD_KEYS, *DEFAULT_KEYS)
KEY_ENV_VARS = ("WANVID_API_KEY", "OPEAI_API_KEY")
TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}  # how a yes/no setting may be written
MAX_FILE = 1024 * 1024  # a config file is a few hundred bytes; a bigger one is not a wanvid config
URL_SHAPE = "scheme://host[:port][/path], e.g. https://api-platform.ope.ai"


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
            profile = self.profile.value
            store = "wanvid config set-key" + (f" --profile {profile}" if profile != DEFAULT_PROFILE else "")
            raise AuthError(
                "no API key" + (f" for profile {profile!r}" if profile != DEFAULT_PROFILE else ""),
                hint=f"pass --api-key, set WANVID_API_KEY (or OPEAI_API_KEY), or store one with: {store}",
            )
        return self.api_key.value


def expand(path: str, what: str) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; a user this machine does not have (pathlib's
    RuntimeError) is a one-line UsageError naming ``what`` (the flag, variable or field it came from)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        user = path.split("/")[0]
        raise UsageError(f"{what} {path!r}: {user} names no user on this machine", hint="write the path out") from None


def moved_dir(variable: str) -> Path | None:
    """The directory an environment variable moves a wanvid dir to (``~`` expanded), or None when unset."""
    moved = os.environ.get(variable)
    return expand(moved, variable) if moved else None


def config_dir() -> Path:
    """Where config.toml lives: ``WANVID_CONFIG_DIR``, else the platform's user config directory."""
    return moved_dir("WANVID_CONFIG_DIR") or _user_dir("config")


def config_path() -> Path:
    return config_dir() / "config.toml"


def data_dir() -> Path:
    """Where the journal lives: ``WANVID_DATA_DIR``, else the platform's user data directory."""
    return moved_dir("WANVID_DATA_DIR") or _user_dir("data")


def journal_path() -> Path:
    return data_dir() / "journal.sqlite3"


# platformdirs' Unix user directories: the XDG variable, and the default under the home directory
_XDG = {"data": ("XDG_DATA_HOME", "~/.local/share"), "config": ("XDG_CONFIG_HOME", "~/.config")}


def _user_dir(kind: str) -> Path:
    """platformdirs.user_data_dir or user_config_dir("wanvid", appauthor=False), without importing platformdirs
    (~10 ms, on every start and tab press) where every platformdirs 4.x agrees: Linux (not Android) with the
    XDG variable absolute, or unset or empty and HOME absolute. Anything else asks platformdirs."""
    env = os.environ
    variable, default = _XDG[kind]
    if sys.platform == "linux" and not hasattr(sys, "getandroidapilevel") and "ANDROID_DATA" not in env:
        xdg = env.get(variable, "")
        if os.path.isabs(xdg):
            return Path(xdg, "wanvid")
        if not xdg and os.path.isabs(env.get("HOME", "")):
            return Path(os.path.expanduser(default), "wanvid")
    import platformdirs

    if kind == "data":
        return Path(platformdirs.user_data_dir("wanvid", appauthor=False))
    return Path(platformdirs.user_config_dir("wanvid", appauthor=False))


def load_file() -> dict[str, Any]:
    """The config file's settings, {} without a file; a UsageError naming the file when it cannot be used."""
    path = config_path()
    data = _parse(path)
    _check_shape(data, path)
    return data


def _parse(path: Path) -> dict[str, Any]:
    raw = _read(path)
    if raw is None:
        return {}
    # Imported only once there is a file to parse: `--help` reads no config, and with the key in the
    # environment (CI) there is often no file (~4 ms of a 200 ms `wanvid status`).
    import tomllib

    try:
        return tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _bad_file(path, f"is not valid TOML ({exc})") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise _bad_file(path, "is nested too deeply to be a wanvid config") from None


def _read(path: Path) -> bytes | None:
    """The file's bytes, None if there is none; refused unless it is a regular file of at most MAX_FILE bytes.

    A symlink to a regular file is followed (a config kept with one's dotfiles); a FIFO or a device is not
    read at all: the first would block until a writer comes, the second may never end."""
    try:
        info = os.stat(path)
    except FileNotFoundError:  # also a link to nothing: ``save`` replaces the link
        return None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}", hint="check its permissions") from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path)
    try:
        # O_NONBLOCK: should a FIFO be swapped in after the stat, opening it still returns at once
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}", hint="check its permissions") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise _not_regular(path)
        raw = f.read(MAX_FILE + 1)
    if len(raw) > MAX_FILE:
        raise _bad_file(path, f"is larger than {MAX_FILE // 1024} KiB; a wanvid config is a few lines")
    return raw


def _not_regular(path: Path) -> UsageError:
    return UsageError(
        f"config file {path} is not a regular file",
        hint=f"remove {path} (or set WANVID_CONFIG_DIR elsewhere), then run `wanvid config set-key`",
    )


def _bad_file(path: Path, problem: str) -> UsageError:
    return UsageError(f"config file {path} {problem}", hint=f"fix or delete {path}, then run `wanvid config set-key`")


_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", list: "array", dict: "table"}


def _check_shape(data: dict[str, Any], path: Path) -> None:
    """``profiles`` is a table of tables, and each setting wanvid reads is a string (``upload_images`` may
    also be a TOML boolean, ``duration`` an integer). Keys wanvid does not know are left alone: a newer wanvid
    may have written them."""

    def bad(where: str, value: object, expected: str) -> UsageError:
        kind = _TOML_TYPES.get(type(value), type(value).__name__)
        return _bad_file(path, f"has {where} as a TOML {kind}, not {expected}")

    table = data.get("profiles", {})
    if not isinstance(table, dict):
        raise bad("profiles", table, "a table of [profiles.NAME] tables")
    for name, settings in table.items():
        where = f"profiles.{_toml_key(name)}"
        if not isinstance(settings, dict):
            raise bad(where, settings, "a table")
        for key in FILE_KEYS:
            value = settings.get(key)
            if value is None or isinstance(value, str) or (key == "upload_images" and isinstance(value, bool)):
                continue
            if key == "duration" and isinstance(value, int) and not isinstance(value, bool):
                continue
            raise bad(f"{where}.{key}", value, "a string")


def _toml_key(name: str) -> str:
    """A profile name as TOML writes it: bare when it can be, else quoted with escapes (one line)."""
    import json

    bare = name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    return name if bare else json.dumps(name)


def profiles() -> list[str]:
    """The profiles the config file names (for tab completion: every table under ``profiles``, whatever
    the rest of the file holds, as wanvid.cli.complete reads it; an unreadable file names none)."""
    try:
        table = _parse(config_path()).get("profiles", {})
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
    data = load_file()
    table = profile_table(data, prof.value or DEFAULT_PROFILE)
    key = pick(api_key, KEY_ENV_VARS, table.get("api_key"), None)
    if key.source in ("file", "unset"):  # with a key from a flag or env, the profile only scopes the journal
        check_profile(prof, data)
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
    check_protocol(settings.protocol)
    return settings._replace(base_url=check_base_url(settings.base_url))


def check_profile(prof: Setting, data: dict[str, Any] | None = None) -> None:
    """A UsageError when a profile named by --profile or WANVID_PROFILE is not in the config file (a typo would
    otherwise read as "no API key"). The default profile needs no table: it is what a fresh install uses."""
    name = prof.value or DEFAULT_PROFILE
    if prof.source in ("default", "unset") or name == DEFAULT_PROFILE:
        return
    table = (load_file() if data is None else data).get("profiles", {})
    if name in table:
        return
    known = sorted(p for p, v in table.items() if isinstance(v, dict))
    import shlex

    where = "--profile" if prof.source == "flag" else prof.source.removeprefix("env ")
    there = f"; the profiles there: {', '.join(known)}" if known else "; it has no profiles yet"
    raise UsageError(
        f"profile {name!r} (from {where}) does not exist in {config_path()}{there}",
        hint=f"pick one of them, or create it: wanvid config set-key --profile {shlex.quote(name)}",
    )


def video_defaults(profile: str) -> dict[str, Setting]:
    """The profile's defaults for new videos (``DEFAULT_KEYS``) as the config file sets them, source "file";
    value None and source "unset" where it sets none. No environment variable sets them; the command line
    puts its flags before them and the built-in defaults after them (``wanvid.jobs.defaults``)."""
    table = profile_table(load_file(), profile)
    found = {}
    for name in DEFAULT_KEYS:
        value = table.get(name)
        found[name] = pick(
            None, (), str(value) if isinstance(value, int) and not isinstance(value, bool) else value, None
        )
    return found


def check_protocol(setting: Setting) -> Setting:
    if setting.value not in ("native", "unified"):
        raise UsageError(
            f"protocol {setting.value!r} (from {setting.source}) is not 'native' or 'unified'",
            hint="use --protocol native or --protocol unified",
        )
    return setting


def profile_setting(profile: str | None = None) -> Setting:
    """The profile in use and where its name came from (flag, env WANVID_PROFILE, default)."""
    return pick(profile, ("WANVID_PROFILE",), None, DEFAULT_PROFILE)


def profile_name(profile: str | None = None) -> str:
    """The profile in use: ``profile`` (a flag) > ``WANVID_PROFILE`` > the default. Nothing else is read, so a
    command that only names the profile (``config set``) works even when the file's other settings are broken."""
    return pick(profile, ("WANVID_PROFILE",), None, DEFAULT_PROFILE).value or DEFAULT_PROFILE


def scope(*, base_url: str | None = None, profile: str | None = None) -> tuple[str, str]:
    """The profile name and the gateway's base URL (without a trailing /), resolved as ``resolve`` does, without
    the key or the protocol: what ``list`` needs to pick the journal's tasks of this profile and gateway."""
    name = profile_name(profile)
    table = profile_table(load_file(), name)
    url = check_base_url(pick(base_url, ("WANVID_BASE_URL",), table.get("base_url"), DEFAULT_BASE_URL))
    return name, (url.value or DEFAULT_BASE_URL).rstrip("/")


def check_base_url(setting: Setting) -> Setting:
    """The base URL without surrounding whitespace (a trailing newline is noise, as in the key), or a
    UsageError naming its source: it must be ``http(s)://host[:port][/path]`` and nothing else, so that
    nothing is sent to a URL requests would read differently, and no password sits in a URL that gets logged."""
    url = (setting.value or "").strip()
    problem = _url_problem(url)
    if problem:
        import re

        shown = re.sub(r"//[^/?#]*@", "//****@", url)  # never repeat a password
        source = "the config file" if setting.source == "file" else setting.source
        raise UsageError(f"base URL {shown!r} (from {source}) {problem}", hint=_url_fix(setting.source))
    return Setting(url, setting.source)


def _url_problem(url: str) -> str | None:
    from urllib.parse import urlsplit

    if not url:
        return "is empty"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # a ValueError when it is not a number in 0-65535
    except ValueError as exc:  # also a broken [IPv6] host
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not url.lower().startswith(f"{parts.scheme}://"):
        return "is not an http(s) URL"
    if "@" in parts.netloc:
        return "contains a user name or password (the key goes in a header; nothing else is needed)"
    if not parts.hostname:
        return "has no host"
    if not parts.netloc.startswith("[") and not all(c.isalnum() or c in "-._" for c in parts.hostname):
        return "has a host name with characters no host name has"
    if port == 0:
        return "has port 0"
    if "?" in url or "#" in url:
        return "has a query or a fragment"
    return None


def _url_fix(source: str) -> str:
    if source.startswith("env "):
        where = f"fix or unset {source[4:]}"
    elif source == "file":
        where = f"fix base_url in {config_path()} (`wanvid config set base_url URL`), or pass --base-url"
    else:
        where = "pass --base-url"
    return f"{where} as {URL_SHAPE}"


def mask(key: str | None) -> str:
    """Enough of a key to tell two apart, never enough to use: the last 4 characters of a long key."""
    if not key:
        return "(none)"
    return "****" + key[-4:] if len(key) >= 16 else "****"


def save(profile: str, **values: str | int | None) -> Path:
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
