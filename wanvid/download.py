"""Streaming a finished video to disk so that no byte already paid for is fetched twice, and nothing
half-written or unverified ever sits at the target.

Bytes go to ``<target>.part`` beside the target (same filesystem, so the last step is an atomic
rename). Where they came from (URL, ETag, total size) is recorded in a ``PartStore`` (the journal)
as soon as the answer's headers arrive, so a later process resumes the file with an HTTP ``Range``
request guarded by ``If-Range``; it starts over when the server ignores ranges, the content changed,
or the ``.part`` does not belong to this task. Sources are tried in order: the gateway's content
route first, then the task's signed ``video_url`` when the route fails. Before the rename the file
is verified: the byte count against Content-Length / Content-Range, and its ISO-BMFF box structure.
Without ``force`` an existing file is never replaced, even one that appeared meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import requests
import urllib3

from .client import Client
from .errors import ApiError, CorruptDownload, StorageError, Unavailable, UsageError
from .journal import Part
from .media import Mp4Info, verify_mp4

# Reads of up to 1 MiB: 1 GiB from the sandbox into /dev/shm took a median 0.76 s against 1.29 s with
# 64 KiB reads (curl: 1.03 s), nearly all of it in the kernel; 4 MiB reads fell back to 1.61 s (each
# buffer a fresh mmap). read1 returns what each receive brought, so a slow link is not waited on and
# nothing that arrived is lost when the connection drops.
CHUNK = 1024 * 1024
REPORT_EVERY = 0.1  # seconds between progress reports: a bar updated per read costs more than the copy
PART_SUFFIX = ".part"
_FULL = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))


class PartStore(Protocol):
    def part(self, path: Path) -> Part | None: ...
    def save_part(self, path: Path, part: Part) -> None: ...
    def drop_part(self, path: Path) -> None: ...


class NoStore:
    """Remembers nothing: a ``.part`` left behind is started over (for library use without a journal)."""

    def part(self, path: Path) -> Part | None:
        return None

    def save_part(self, path: Path, part: Part) -> None:
        pass

    def drop_part(self, path: Path) -> None:
        pass


@dataclass
class Downloaded:
    path: Path
    size: int
    info: Mp4Info
    source: str


@dataclass
class Progress:
    """Callbacks for a view: the total once known, bytes as they arrive, and notices (one line each)."""

    start: Callable[[int | None], None] = lambda total: None
    advance: Callable[[int], None] = lambda n: None
    notice: Callable[[str], None] = lambda text: None


def default_name(task_id: str) -> str:
    """A file name from a server-given id, safe to join to a directory (no separators, no '..')."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id).strip("._") or "video"
    return f"{safe}.mp4"


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + PART_SUFFIX)


def check_target(dest: Path, force: bool) -> None:
    """Fail before anything is fetched (or paid for) when the target cannot be written."""
    if dest.is_dir():
        raise UsageError(f"output {dest} is a directory", hint="give a file name with -o")
    if dest.exists() and not force:
        raise UsageError(f"output {dest} already exists", hint="pass --force to replace it, or -o another path")
    if not dest.parent.is_dir():
        raise UsageError(f"output directory {dest.parent} does not exist", hint="create it or pick another -o")
    if not os.access(dest.parent, os.W_OK):
        raise StorageError(f"output directory {dest.parent} is not writable", hint="pick another -o")


def download(
    client: Client,
    task_id: str,
    sources: list[str],
    dest: Path,
    *,
    force: bool,
    store: PartStore | None = None,
    progress: Progress | None = None,
) -> Downloaded:
    """Fetch the video into ``dest`` from the first of ``sources`` that works, resuming any ``.part``."""
    check_target(dest, force)
    store = store or NoStore()
    view = progress or Progress()
    part = part_path(dest)
    try:
        with _open_part(part) as f:
            kept = _kept(f, part, task_id, store, view)
            size, total, source = _from_sources(client, task_id, sources, f, part, store, view)
            try:
                info = _verify(f, part, size, total)
            except CorruptDownload:
                if kept == 0:
                    raise
                view.notice(f"{part.name} does not check out after resuming; downloading it again from the start")
                _truncate(f)
                size, total, source = _from_sources(client, task_id, sources, f, part, store, view)
                info = _verify(f, part, size, total)
            _place(part, dest, force)  # still under the lock: no other process can take the .part meanwhile
    except CorruptDownload:
        store.drop_part(part)  # what arrived is not the video: keeping it would only poison the next try
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    store.drop_part(part)
    return Downloaded(dest, size, info, source)


# -- the .part file ------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_part(part: Path) -> Iterator[BinaryIO]:
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies, as for any saved file
    except OSError as exc:
        raise _storage_error(exc, part, 0) from None
    # Unbuffered: BufferedRandom re-checks its position on every write and runs 5x slower than the raw file.
    with os.fdopen(fd, "r+b", buffering=0) as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one writer per .part, across processes
        except ImportError:  # Windows: no advisory locks; one download at a time is the user's job
            pass
        except BlockingIOError:
            raise UsageError(
                f"another wanvid is downloading to {part} right now", hint="let it finish, or pick another -o"
            ) from None
        yield f


def _kept(f: BinaryIO, part: Path, task_id: str, store: PartStore, view: Progress) -> int:
    """How many bytes of an existing ``.part`` can be trusted as the start of this task's video."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    record = store.part(part)
    f.seek(0)
    head = f.read(8)
    if record is None:
        problem = "has no record of where it came from"
    elif record.task_id != task_id:
        problem = f"belongs to task {record.task_id}"
    elif (record.total is not None and size > record.total) or (len(head) == 8 and head[4:8] != b"ftyp"):
        problem = "is not the start of an MP4 video"
    else:
        view.notice(f"resuming {part.name} from byte {size:,}")
        return size
    view.notice(f"{part.name} {problem}; starting over")
    return _truncate(f)


def _truncate(f: BinaryIO) -> int:
    f.seek(0)
    f.truncate()
    return 0


# -- fetching ------------------------------------------------------------------------------------


def _from_sources(
    client: Client, task_id: str, sources: list[str], f: BinaryIO, part: Path, store: PartStore, view: Progress
) -> tuple[int, int | None, str]:
    for i, source in enumerate(sources):
        last = i == len(sources) - 1
        try:
            # With a fallback left, a failing route is left at once rather than after the whole retry budget.
            size, total = _fetch(client, task_id, source, f, part, store, view, first_retries=None if last else 0)
            return size, total, source
        except DownloadDropped:
            raise  # bytes did arrive from this source: the .part resumes from it, no switching mid-file
        except Unavailable as exc:
            if last:
                raise
            view.notice(f"the gateway's content route failed ({exc.message}); fetching the signed video URL instead")
    raise Unavailable("no source to download the video from", hint="check `wanvid status`")


def _fetch(
    client: Client,
    task_id: str,
    source: str,
    out: BinaryIO,
    part: Path,
    store: PartStore,
    view: Progress,
    first_retries: int | None,
) -> tuple[int, int | None]:
    size = out.seek(0, os.SEEK_END)
    record = store.part(part) if size else None
    etag = record.etag if record else None
    total: int | None = record.total if record else None
    attempt, started = 0, False
    if size and size == total:  # a previous run got every byte but stopped before the rename
        view.start(total)
        view.advance(size)
        return size, total
    while True:
        headers = {}
        if size:
            headers["Range"] = f"bytes={size}-"
            if etag and not etag.startswith("W/"):  # If-Range takes strong validators only
                headers["If-Range"] = etag
        try:
            resp = client.send(
                "GET", source, stream=True, headers=headers, retries=first_retries if attempt == 0 else None
            )
        except ApiError as exc:
            if exc.status != 416 or not size:
                raise
            # The server has no bytes from there: the .part is not a prefix of what it serves now.
            view.notice(f"the server has nothing past byte {size:,} of {part.name}; starting over")
            size, etag, total = _truncate(out), None, None
            continue
        with resp:
            start, new_total = _range_start(resp), _total_length(resp)
            if size and (start != size or (total is not None and new_total not in (None, total))):
                # The server ignored the range, or the content changed (If-Range failed): start over.
                view.notice(f"the server sent the whole video again; restarting {part.name}")
                view.advance(-size if started else 0)
                size = _truncate(out)
                if start != 0:  # a 206 from another offset: ask again without a range
                    continue
            etag = resp.headers.get("ETag") or (etag if size else None)
            total = new_total if new_total is not None else total
            store.save_part(part, Part(task_id, source, etag, total))
            if not started:
                view.start(total)
                view.advance(size)
                started = True
            try:
                size = _copy(resp, out, size, part, view.advance)
                return size, total
            except _Dropped as dropped:
                size = dropped.size  # what is on disk: the next request asks for the rest
                if attempt >= client.max_retries:
                    raise DownloadDropped(
                        f"the connection dropped after {size:,} of {f'{total:,}' if total else '?'} bytes, "
                        f"{attempt + 1} times; {part.name} keeps them",
                        hint="run the download again to resume it",
                    ) from None
        attempt += 1
        client.pause(client.backoff(attempt - 1), f"download dropped at {size:,} bytes; resuming", attempt)


class DownloadDropped(Unavailable):
    """The connection kept dropping mid-body until the retry budget was spent; the ``.part`` keeps the bytes."""


class _Dropped(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _range_start(resp: requests.Response) -> int:
    match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
    return int(match.group(1)) if resp.status_code == 206 and match else 0


def _total_length(resp: requests.Response) -> int | None:
    """The whole video's size: from Content-Range on a 206, Content-Length on a 200."""
    if resp.status_code == 206:
        match = re.match(r"bytes \d+-\d+/(\d+)", resp.headers.get("Content-Range", ""))
        return int(match.group(1)) if match else None
    length = resp.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def _copy(resp: requests.Response, out: BinaryIO, size: int, part: Path, advance: Callable[[int], None]) -> int:
    # read1 hands over what each receive brought (up to CHUNK), so the bytes that arrived before a
    # dropped connection are written too; iter_content would discard a partly filled chunk.
    raw = resp.raw
    pending, reported = 0, time.monotonic()  # bytes not yet reported, and when we last did
    try:
        while chunk := raw.read1(CHUNK, decode_content=True):
            if size == 0 and chunk[4:8] != b"ftyp":
                kind = resp.headers.get("Content-Type", "no content type")
                raise CorruptDownload(
                    f"the download is not an MP4 video ({kind}, no ISO-BMFF 'ftyp' header); nothing was saved",
                    hint="the gateway or a proxy sent something else; check `wanvid status` and try again later",
                )
            rest = memoryview(chunk)
            while rest:  # a raw file may take part of a write (a quota or size limit reached mid-chunk)
                n = out.write(rest)
                if not n:  # never for a regular file, but a loop that cannot end must not start
                    raise OSError(errno.EIO, "the file accepted no bytes")
                size += n
                pending += n
                rest = rest[n:]
            if time.monotonic() - reported >= REPORT_EVERY:
                advance(pending)
                pending, reported = 0, time.monotonic()
    except (requests.RequestException, urllib3.exceptions.HTTPError):
        raise _Dropped(size) from None
    except OSError as exc:
        raise _storage_error(exc, part, size) from None
    finally:
        if pending:
            advance(pending)
    return size


def _storage_error(exc: OSError, part: Path, size: int) -> StorageError:
    kept = f"; {part.name} keeps the {size:,} bytes already downloaded" if size else ""
    if exc.errno in _FULL:
        return StorageError(f"no space left on the device for {part}{kept}", hint="free some space")
    return StorageError(
        f"cannot write {part}: {exc.strerror or exc}{kept}", hint="pick another -o, or fix the permissions"
    )


# -- verifying and placing -----------------------------------------------------------------------


def _verify(f: BinaryIO, part: Path, size: int, total: int | None) -> Mp4Info:
    try:
        f.flush()
        os.fsync(f.fileno())  # what is renamed into place is on disk, not only in the page cache
    except OSError as exc:
        raise _storage_error(exc, part, size) from None
    if total is not None and size != total:
        raise Unavailable(f"download ended after {size:,} of {total:,} bytes", hint="run the download again")
    try:
        return verify_mp4(f)
    except ValueError as exc:
        raise CorruptDownload(
            f"the downloaded file is not a complete MP4 video: {exc}",
            hint="download it again; if it keeps failing the result itself is broken, so create a new task",
        ) from None


def _place(part: Path, dest: Path, force: bool) -> None:
    if force:
        os.replace(part, dest)
        return
    try:
        os.link(part, dest)  # atomic, and fails instead of replacing a file that appeared meanwhile
    except FileExistsError:
        raise UsageError(f"output {dest} already exists; the video stays in {part}", hint="pass --force") from None
    except OSError:  # filesystems without hard links
        if dest.exists():
            raise UsageError(f"output {dest} already exists; the video stays in {part}", hint="pass --force") from None
        os.replace(part, dest)
        return
    part.unlink()
