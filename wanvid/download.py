"""Streaming a finished video to disk so that no byte already paid for is fetched twice, and nothing
half-written or unverified ever sits at the target.

Bytes go to ``<target>.part`` beside the target (same filesystem, so the last step is an atomic
rename). Where they came from (URL, ETag, total size) is recorded in a ``PartStore`` (the journal)
as soon as the answer's headers arrive, so a later process resumes the file with an HTTP ``Range``
request guarded by ``If-Range``. An answer continues the ``.part`` only when it is a 206 from the right
offset of the same content: the same strong ETag when both sides have one, else the same total size.
Otherwise the ``.part`` starts over (truncated, with a notice); so does one that does not belong to
this task. Before the rename the file is verified: the byte count against Content-Length /
Content-Range, and its ISO-BMFF box structure. Without ``force`` an existing file is never replaced,
even one that appeared meanwhile.

Sources: the gateway's content route first, then the task's signed ``video_url`` (fetched without the
key; the client adds it for the gateway's own origin only). The real route is a proxy that may ignore
``Range`` and cut every transfer at a fixed time (new-api caps one at 60 s), so it is given up for the
signed URL, with a one-line notice naming why, when:

- it fails before sending anything (5xx, timeout, refused), at once rather than after the retry budget;
- its first bytes are not an MP4 (an HTML page), or it answers a resume with a ``text/`` page;
- it answers a resume with the same video from byte 0: it ignores ``Range``, so after a cut no resume
  can ever finish there (switching right away keeps the ``.part`` instead of restarting it);
- it drops the connection mid-body ``SWITCH_AFTER_DROPS`` (2) times in one run: one drop may be a
  hiccup, a second says the route itself cuts. A drop that spends the retry budget first
  (``WANVID_MAX_RETRIES=0``) ends the run with the bytes kept, as before.

A missing signed URL, or one refused (an expired signature's 403), is replaced once by a fresh one from
the ``refresh`` callable (the caller queries the task again). The bytes in the ``.part`` are kept when
the signed URL continues them by the rule above, else it starts over cleanly. A drop on the signed URL
after its retry budget is a ``DownloadDropped``: the ``.part`` keeps the bytes for the next run.
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
from typing import BinaryIO, Protocol, TypeGuard

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
    route: str,
    dest: Path,
    *,
    force: bool,
    video_url: str | None = None,
    refresh: Callable[[], str | None] | None = None,
    store: PartStore | None = None,
    progress: Progress | None = None,
) -> Downloaded:
    """Fetch the video into ``dest``, resuming any ``.part``: from the gateway's content ``route``, else
    from the task's signed ``video_url``; ``refresh`` asks the gateway for a current one (or None)."""
    check_target(dest, force)
    store = store or NoStore()
    view = progress or Progress()
    part = part_path(dest)
    try:
        with _open_part(part) as f:
            job = _Job(client, task_id, f, part, store, view)
            kept = _kept(f, part, task_id, store, view)
            record = store.part(part) if kept else None
            job.etag, job.total = (record.etag, record.total) if record else (None, None)
            signed = _Signed(video_url, refresh)
            size, total, source = _from_sources(job, route, signed)
            try:
                info = _verify(f, part, size, total)
            except CorruptDownload:
                if kept == 0:
                    raise
                view.notice(f"{part.name} does not check out after resuming; downloading it again from the start")
                job.restart()
                size, total, source = _from_sources(job, route, signed)
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


@dataclass
class _Job:
    """One download: the open ``.part``, what is known about the bytes in it, and what the view was told."""

    client: Client
    task_id: str
    f: BinaryIO
    part: Path
    store: PartStore
    view: Progress
    etag: str | None = None  # the validator and total size of the content the .part holds a prefix of
    total: int | None = None
    shown: int = 0  # bytes the view has counted

    def advance(self, n: int) -> None:
        self.shown += n
        self.view.advance(n)

    def show(self, size: int) -> None:
        self.advance(size - self.shown)

    def restart(self) -> int:
        self.etag = self.total = None
        self.show(0)
        return _truncate(self.f)


@dataclass
class _Signed:
    """The task's signed URL as last seen, and how to ask the gateway for a current one (once a download)."""

    url: str | None
    refresh: Callable[[], str | None] | None
    asked: bool = False  # the gateway was asked already: a second answer would be the same

    def __post_init__(self) -> None:
        self.url = _usable(self.url)

    def fresh(self) -> str | None:
        """A current URL from the gateway, or None (no way to ask, or asked already)."""
        if self.asked or self.refresh is None:
            return None
        self.asked = True
        return _usable(self.refresh())


def _usable(url: str | None) -> str | None:
    return url if url and url.startswith(("http://", "https://")) else None


# -- fetching ------------------------------------------------------------------------------------


def _from_sources(job: _Job, route: str, signed: _Signed) -> tuple[int, int | None, str]:
    fallback = signed.url is not None or signed.refresh is not None
    try:
        # With a fallback left, a route failing before any byte is left at once, not after the retry budget.
        size, total = _fetch(job, route, first_retries=0 if fallback else None, switch=fallback)
        return size, total, route
    except _Switch as exc:
        reason = exc.reason
    except DownloadDropped:
        raise  # the retry budget is spent; the .part keeps the bytes for the next run
    except (Unavailable, _NotVideo) as exc:
        if not fallback:
            raise
        reason = f"failed ({exc.message})" if isinstance(exc, Unavailable) else f"sent {exc.kind}, not the video"
        if isinstance(exc, Unavailable) and signed.url is None:
            signed.url = signed.fresh()
            if signed.url is None:  # nowhere else to go: the route gets its whole retry budget after all
                size, total = _fetch(job, route, first_retries=None, switch=False)
                return size, total, route
    return _from_signed(job, signed, f"the gateway's content route {reason}")


def _from_signed(job: _Job, signed: _Signed, why: str) -> tuple[int, int | None, str]:
    """The task's signed URL, fetched without the key (the client sends it to the gateway's origin only).
    One that is missing or refused (an expired signature) is replaced once by a fresh one from the gateway."""
    url = signed.url or signed.fresh()
    if url is None:
        raise Unavailable(f"{why}, and the task has no signed video URL to fetch instead", hint=_AGAIN)
    job.view.notice(f"{why}; fetching the signed video URL instead")
    while True:
        try:
            size, total = _fetch(job, url, first_retries=None, switch=False)
            return size, total, url
        except DownloadDropped:
            raise  # bytes flowed from it: a fresh signature would not help; the next run resumes
        except ApiError as exc:
            fresh = signed.fresh()
            if fresh is None or fresh == url:
                raise Unavailable(f"{why}, and the signed video URL failed too: {exc.message}", hint=_AGAIN) from None
            job.view.notice(f"the signed video URL failed ({exc.message}); trying a fresh one from the gateway")
            url = fresh


_AGAIN = "results live 24 h; check `wanvid status`, then run the download again"


def _fetch(job: _Job, source: str, first_retries: int | None, switch: bool) -> tuple[int, int | None]:
    """Fill the ``.part`` from ``source``, resuming with Range. ``switch``: give the source up (raise
    ``_Switch``) as soon as it is clear it cannot finish the file, as the module docstring says."""
    client, out, part, view = job.client, job.f, job.part, job.view
    size = out.seek(0, os.SEEK_END)
    attempt = drops = 0
    started = False
    if size and size == job.total:  # a previous run got every byte but stopped before the rename
        view.start(job.total)
        job.show(size)
        return size, job.total
    while True:
        headers = {}
        if size:
            headers["Range"] = f"bytes={size}-"
            if _strong(job.etag):  # If-Range takes strong validators only
                headers["If-Range"] = job.etag
        try:
            resp = client.send(
                "GET", source, stream=True, headers=headers, retries=first_retries if attempt == 0 else None
            )
        except ApiError as exc:
            if exc.status != 416 or not size:
                raise
            # The server has no bytes from there: the .part is not a prefix of what it serves now.
            view.notice(f"the server has nothing past byte {size:,} of {part.name}; starting over")
            size = job.restart()
            continue
        with resp:
            start, total, etag = _range_start(resp), _total_length(resp), resp.headers.get("ETag")
            if size and not (start == size and _same(job.etag, job.total, etag, total)):
                changed = _strong(job.etag) and _strong(etag) and etag != job.etag
                if switch and start == 0 and not changed:
                    # The same video from byte 0: the route ignores Range, so no resume can ever finish on it.
                    kind = resp.headers.get("Content-Type", "")
                    if kind.startswith("text/"):  # or a proxy's page instead of the video
                        raise _Switch(f"sent {kind}, not the video")
                    raise _Switch(f"ignores Range and would send {part.name}'s {size:,} bytes again")
                if start == 0:
                    view.notice(f"the server sent the whole video again; restarting {part.name}")
                else:
                    view.notice(f"the server's video is not the one {part.name} holds; restarting it")
                size = job.restart()
                if start != 0:  # a 206 of other content, or from another offset: ask again without a range
                    continue
            job.etag = etag or (job.etag if size else None)
            job.total = total if total is not None else job.total
            job.store.save_part(part, Part(job.task_id, source, job.etag, job.total))
            if not started:
                view.start(job.total)
                job.show(size)
                started = True
            try:
                size = _copy(resp, out, size, part, job.advance)
                return size, job.total
            except _Dropped as dropped:
                size, drops = dropped.size, drops + 1  # what is on disk: the next request asks for the rest
                if switch and drops >= SWITCH_AFTER_DROPS:
                    raise _Switch(f"dropped the connection {drops} times, the last after {size:,} bytes") from None
                if attempt >= client.max_retries:
                    total_text = f"{job.total:,}" if job.total else "?"
                    raise DownloadDropped(
                        f"the connection dropped after {size:,} of {total_text} bytes, "
                        f"{attempt + 1} times; {part.name} keeps them",
                        hint="run the download again to resume it",
                    ) from None
        attempt += 1
        client.pause(client.backoff(attempt - 1), f"download dropped at {size:,} bytes; resuming", attempt)


SWITCH_AFTER_DROPS = 2  # drops on the content route after which the signed URL is tried instead


def _strong(etag: str | None) -> TypeGuard[str]:
    return etag is not None and etag != "" and not etag.startswith("W/")


def _same(etag: str | None, total: int | None, new_etag: str | None, new_total: int | None) -> bool:
    """Whether an answer continues the content the ``.part`` holds: the same strong ETag when both sides
    have one, else the same total size (each side known)."""
    if _strong(etag) and _strong(new_etag):
        return etag == new_etag and (total is None or new_total in (None, total))
    return total is not None and new_total == total


class DownloadDropped(Unavailable):
    """The connection kept dropping mid-body until the retry budget was spent; the ``.part`` keeps the bytes."""


class _Switch(Exception):
    """The content route cannot finish the file: go to the signed URL, saying ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotVideo(CorruptDownload):
    """The first bytes of an answer are not an MP4 (a proxy's HTML page, a JSON error)."""

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"the download is not an MP4 video ({kind}, no ISO-BMFF 'ftyp' header); nothing was saved",
            hint="the gateway or a proxy sent something else; check `wanvid status` and try again later",
        )
        self.kind = kind


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
                raise _NotVideo(resp.headers.get("Content-Type", "no content type"))
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
