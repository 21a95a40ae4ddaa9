"""Streaming a finished video to disk without ever leaving a half-written file at the target.

Bytes go to a hidden temporary file beside the target (same filesystem, so the final step is an atomic
rename). A dropped connection is picked up in-process with an HTTP Range request from the bytes already
written. The byte count is checked against Content-Length / Content-Range, and the file is moved into
place only when complete. Without ``force`` an existing file is never replaced, even one that appeared
meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import requests

from .client import Client
from .errors import Unavailable, UsageError, WanvidError

# 8 KiB chunks reach a quarter of loopback speed, 64 KiB-1 MiB ~wire speed; the smaller end keeps more of
# what arrived before a dropped connection (a partly read chunk is lost, and fetched again by Range).
CHUNK = 64 * 1024


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
    """Fetch ``source`` into ``dest``. A dropped connection is picked up with a Range request from the
    bytes already written (or restarted when the server ignores ranges), within the client's retry budget."""
    check_target(dest, force)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write in {dest.parent}: {exc.strerror}", hint="pick another -o") from None
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved video follows the user's umask
        with os.fdopen(fd, "wb") as out:
            size, total = _fetch(client, source, out, on_start, on_chunk)
        if total is not None and size != total:
            raise Unavailable(f"download ended after {size} of {total} bytes", hint="run the download again")
        _place(tmp, dest, force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # already renamed on success; on any failure nothing half-written stays
    return Downloaded(dest, size)


def _fetch(
    client: Client,
    source: str,
    out: BinaryIO,
    on_start: Callable[[int | None], None],
    on_chunk: Callable[[int], None],
) -> tuple[int, int | None]:
    size, total, attempt = 0, None, 0
    while True:
        resp = client.stream(source, headers={"Range": f"bytes={size}-"} if size else None)
        with resp:
            start = _range_start(resp) if size else 0
            if start != size:  # the server ignored the range (or answered another one): start over
                out.seek(0)
                out.truncate()
                on_chunk(-size)
                size = 0
            if total is None:
                total = _total_length(resp, size)
                on_start(total)
            try:
                size = _copy(resp, out, size, on_chunk)
                return size, total
            except _Dropped as dropped:
                size = dropped.size  # what is on disk: the next request asks for the rest
                if attempt >= client.max_retries:
                    raise Unavailable(
                        f"the connection dropped after {size} of {total or '?'} bytes, {attempt + 1} times",
                        hint="run the download again",
                    ) from None
        attempt += 1
        client.pause(client.backoff(attempt - 1), f"download dropped at {size} bytes; resuming", attempt)


class _Dropped(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _range_start(resp: requests.Response) -> int:
    match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
    return int(match.group(1)) if resp.status_code == 206 and match else 0


def _total_length(resp: requests.Response, offset: int) -> int | None:
    if resp.status_code == 206:
        match = re.match(r"bytes \d+-\d+/(\d+)", resp.headers.get("Content-Range", ""))
        return int(match.group(1)) if match else None
    length = resp.headers.get("Content-Length")
    return int(length) + offset if length and length.isdigit() else None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _copy(resp: requests.Response, out: BinaryIO, size: int, on_chunk: Callable[[int], None]) -> int:
    try:
        for chunk in resp.iter_content(CHUNK):
            if size == 0 and chunk[4:8] != b"ftyp":
                raise WanvidError(
                    "the download is not an MP4 video (no ISO-BMFF 'ftyp' header)",
                    hint="the gateway sent something else; check `wanvid status` and try again",
                )
            out.write(chunk)
            size += len(chunk)
            on_chunk(len(chunk))
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout):
        raise _Dropped(size) from None
    except OSError as exc:
        raise UsageError(f"cannot write the video: {exc.strerror}", hint="free some space or pick another -o") from None
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
