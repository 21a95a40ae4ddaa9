"""Streaming a finished video to disk without ever leaving a half-written file at the target.

Bytes go to a hidden temporary file beside the target (same filesystem, so the final step is an atomic
rename), the byte count is checked against Content-Length, and the file is moved into place only
when complete. Without ``force`` an existing file is never replaced, even one that appeared meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from .client import Client
from .errors import Unavailable, UsageError, WanvidError

CHUNK = 256 * 1024  # 8 KiB chunks reach a quarter of loopback speed; 64 KiB-1 MiB reach ~wire speed


@dataclass
class Downloaded:
    path: Path
    size: int


def default_name(task_id: str) -> str:
    """A file name from a server-given id, safe to join to a directory (no separators, no '..')."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id).strip("._") or "video"
    return f"{safe}.mp4"


def check_target(dest: Path, force: bool) -> None:
    """Fail before anything is fetched (or paid for) when the target cannot be written."""
    if dest.is_dir():
        raise UsageError(f"output {dest} is a directory", hint="give a file name with -o")
    if dest.exists() and not force:
        raise UsageError(f"output {dest} already exists", hint="pass --force to replace it, or -o another path")
    if not dest.parent.is_dir():
        raise UsageError(f"output directory {dest.parent} does not exist", hint="create it or pick another -o")


def download(
    client: Client,
    source: str,
    dest: Path,
    *,
    force: bool,
    on_start: Callable[[int | None], None] = lambda total: None,
    on_chunk: Callable[[int], None] = lambda n: None,
) -> Downloaded:
    check_target(dest, force)
    resp = client.stream(source)
    try:
        total = int(resp.headers["Content-Length"]) if "Content-Length" in resp.headers else None
        on_start(total)
        try:
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        except OSError as exc:
            raise UsageError(f"cannot write in {dest.parent}: {exc.strerror}", hint="pick another -o") from None
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved video follows the user's umask
        try:
            size = _copy(resp, fd, on_chunk)
            if total is not None and size != total:
                raise Unavailable(
                    f"download cut off after {size} of {total} bytes", hint="run the same download command again"
                )
            _place(tmp, dest, force)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # already renamed on success; on any failure nothing half-written stays
    finally:
        resp.close()
    return Downloaded(dest, size)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _copy(resp: requests.Response, fd: int, on_chunk: Callable[[int], None]) -> int:
    size = 0
    with os.fdopen(fd, "wb") as out:
        try:
            for chunk in resp.iter_content(CHUNK):
                if size == 0 and chunk[4:8] != b"ftyp":
                    raise WanvidError(
                        "the download is not an MP4 video (no ISO-BMFF 'ftyp' header)",
                        hint="the gateway sent something else; try `wanvid status` and retry",
                    )
                out.write(chunk)
                size += len(chunk)
                on_chunk(len(chunk))
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout):
            raise Unavailable(
                f"the connection dropped after {size} bytes", hint="run the same download command again"
            ) from None
        except OSError as exc:
            raise UsageError(
                f"cannot write the video: {exc.strerror}", hint="free some space or pick another -o"
            ) from None
    return size


def _place(tmp: Path, dest: Path, force: bool) -> None:
    if force:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # atomic, and fails instead of replacing a file that appeared meanwhile
    except FileExistsError:
        raise UsageError(f"output {dest} already exists", hint="pass --force to replace it") from None
    except OSError:  # filesystems without hard links
        if dest.exists():
            raise UsageError(f"output {dest} already exists", hint="pass --force to replace it") from None
        os.replace(tmp, dest)
