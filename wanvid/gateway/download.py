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

Nothing planted is followed: the ``.part`` is opened with ``O_NOFOLLOW`` (created with ``O_EXCL`` when
new) and must be a regular file, so a link, FIFO, device or directory in its place is refused (exit 2,
naming it) before anything is paid for; the target is only ever replaced by a hard link or a rename,
which replace a link instead of writing through it. A ``.part`` still empty when a download fails is
removed; one holding bytes is kept for the next run.

Bodies: requests say ``Accept-Encoding: identity``. A body longer than declared (Content-Length on a 200,
the Content-Range total on a 206) is refused (exit 7) before the byte past the declared size is written.
A gzip/deflate body that arrives anyway is inflated here, a bounded piece at a time: one that expands
past ``EXPAND_RATIO`` times what was sent (plus ``EXPAND_SLACK``) is a bomb, refused the same way. Range
would count compressed bytes, so a compressed body is never resumed: it starts over, with a notice.

Integrity: whenever wanvid stops writing a ``.part`` short of the end (a drop, an error, an interrupt) its
size and mtime go to the record; a complete one is synced to the disk and checked, and the record is then
dropped with the saved video, in one transaction (the caller's ``placed``), not brought up to date first. A
``.part`` found at the recorded size with another mtime, or shorter, was changed by something else: it
starts over, with a notice (one longer, with a newer mtime, is what a kill mid-copy or before the check
leaves, and is resumed: a complete one is checked and placed without fetching anything). A record whose
``.part`` is gone beside an output of its size is a video placed and not yet journaled (a kill right after
the rename): ``wanvid.jobs.steps.adopt_placed`` records it. When the strong ETag is a plain MD5 (what OSS and S3 give a
single-part object) a file put together from more than one answer (a resume, in this run or an earlier
one) must have that MD5, hashed while copying (the resumed prefix once); a file that does not match is
fetched again once from the start, then it is a ``CorruptDownload``. A file from one answer is not
hashed: TCP and TLS deliver a single body intact, and hashing costs a third of the copy rate.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeGuard

import requests
import urllib3

from wanvid.errors import ApiError, CorruptDownload, StorageError, Unavailable, UsageError, WanvidError
from wanvid.gateway.client import Client
from wanvid.rules.mp4 import Mp4Info, verify_mp4
from wanvid.store.journal import Part

if TYPE_CHECKING:
    from hashlib import _Hash

# Reads of up to 1 MiB: 1 GiB from the sandbox into /dev/shm took a median 0.76 s against 1.29 s with
# 64 KiB reads (curl: 1.03 s), nearly all of it in the kernel; 4 MiB reads fell back to 1.61 s (each
# buffer a fresh mmap). read1 returns what each receive brought, so a slow link is not waited on and
# nothing that arrived is lost when the connection drops.
CHUNK = 1024 * 1024
REPORT_EVERY = 0.1  # seconds between progress reports: a bar updated per read costs more than the copy
PART_SUFFIX = ".part"
_FULL = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))
# An MP4 is compressed media: gzip shrinks the sandbox's sample by 1.4 % (101,468 -> 100,037 bytes), so a
# real video never inflates to much more than what was sent. Past 4x that plus 1 MiB (room for a small
# file's headers) the body is a bomb (1 MiB of gzip'd zeros inflates to 1 GiB): refused before it is
# written, however much the server declared.
EXPAND_RATIO = 4
EXPAND_SLACK = 1024 * 1024
_ENCODINGS = ("gzip", "x-gzip", "deflate")  # inflated by zlib; any other encoding is refused
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS  # zlib reads either header
_MD5 = re.compile(r'"[0-9A-Fa-f]{32}"')  # a strong ETag that is the MD5 of the bytes (OSS, S3 single-part)
# Opening the .part: never through a link, and never blocking on a FIFO (0 where the OS has no such flag).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


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
    if os.path.lexists(dest) and not force:  # a link, even a dangling one, is there: it is never written through
        raise _taken(dest)
    if not dest.parent.is_dir():
        raise UsageError(f"output directory {dest.parent} does not exist", hint="create it or pick another -o")
    if not os.access(dest.parent, os.W_OK):
        raise StorageError(f"output directory {dest.parent} is not writable", hint="pick another -o")
    part = part_path(dest)
    with contextlib.suppress(OSError):
        _refuse_unless_file(part, os.lstat(part).st_mode)


def _refuse_unless_file(part: Path, mode: int) -> None:
    """A ``.part`` that is a link, FIFO, device or directory was not left by wanvid: never write into it."""
    if stat.S_ISREG(mode):
        return
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"))
    kind = next((name for test, name in kinds if test(mode)), "a device or socket")
    raise UsageError(
        f"{part} is {kind}, not a partial download; wanvid does not write through it",
        hint="remove it, then run the download again",
    )


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
    placed: Callable[[Downloaded], None] | None = None,
) -> Downloaded:
    """Fetch the video into ``dest``, resuming any ``.part``: from the gateway's content ``route``, else
    from the task's signed ``video_url``; ``refresh`` asks the gateway for a current one (or None).
    ``placed`` is called once the video is at ``dest``, still holding the ``.part``'s lock, so a process
    waiting for that lock finds it recorded (raising ``Superseded``) when it gets its turn; it takes over
    dropping the ``.part``'s record from ``store`` (the journal does both in one transaction)."""
    check_target(dest, force)
    store = store or NoStore()
    view = progress or Progress()
    part = part_path(dest)
    try:
        with _open_part(part, view) as f:
            job = _Job(client, task_id, f, part, store, view)
            try:
                if os.path.lexists(dest) and not force:  # placed by another process since check_target
                    raise _taken(dest)
                size, source, info = _complete(job, _kept(job), route, _Signed(video_url, refresh))
            except CorruptDownload:
                raise  # the .part goes below
            except BaseException:
                with contextlib.suppress(WanvidError, OSError):  # the error that stopped us is the one to tell
                    job.stopped()
                raise
            _place(f, part, dest, force)  # still under the lock: no other process can take the .part meanwhile
            got = Downloaded(dest, size, info, source)
            if placed is None:
                store.drop_part(part)
            else:
                placed(got)  # it forgets the .part's record too: one journal write, not two
    except CorruptDownload:
        store.drop_part(part)  # what arrived is not the video: keeping it would only poison the next try
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return got


def _complete(job: _Job, kept: int, route: str, signed: _Signed) -> tuple[int, str, Mp4Info]:
    """Fill the ``.part`` and check it: the MD5 its ETag names, then the MP4 structure. A file that fails
    is fetched again once from the start (one that failed the structure check only if it was resumed)."""
    again = False
    while True:
        size, total, source = _from_sources(job, route, signed)
        # On the disk before it is checked and placed. Its record is not brought up to date: the verdict below
        # comes in milliseconds, and a .part left by a kill in between is only longer than recorded, which
        # resumes (as after a kill mid-copy). A Ctrl-C here still records it (``stopped``, in ``download``).
        _sync(job.f)
        problem = job.md5_problem(size)
        if problem is None:
            try:
                return size, source, _verify(job.f, job.part, size, total)
            except CorruptDownload:
                if again or not kept:
                    raise
            problem = "does not check out after resuming"
        elif again:
            raise CorruptDownload(
                f"the downloaded file {problem}, twice; nothing was saved",
                hint="the server sends damaged bytes; download it again later, or create a new task",
            )
        job.view.notice(f"{job.part.name} {problem}; downloading it again from the start")
        job.restart()
        again, kept = True, 0


# -- the .part file ------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_part(part: Path, view: Progress) -> Iterator[BinaryIO]:
    fd = _open_fd(part)
    try:
        mode = os.fstat(fd).st_mode
        _refuse_unless_file(part, mode)  # a FIFO or device opened without blocking: refused before use
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    # Unbuffered: BufferedRandom re-checks its position on every write and runs 5x slower than the raw file.
    with os.fdopen(fd, "r+b", buffering=0) as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one writer per .part, across processes
        except ImportError:  # Windows: no advisory locks; one download at a time is the user's job
            pass
        except BlockingIOError:
            # The same command run twice at once (the same task to the same file): wait for the other one
            # rather than fail. Ctrl-C and SIGTERM still end the wait (their handlers raise).
            view.notice(f"another wanvid is downloading to {part.name}; waiting for it to finish")
            fcntl.flock(f, fcntl.LOCK_EX)
            if not _is_open_as(f, part):
                raise Superseded(
                    f"another wanvid finished with {part} while this one waited",
                    hint="run the command again to see where it left the video",
                ) from None
        yield f


def _open_fd(part: Path) -> int:
    """The ``.part``'s descriptor: an existing one opened without following a link, else a new one created
    exclusively (so whatever appears there meanwhile is not taken over)."""
    flags = os.O_RDWR | _NOFOLLOW | _NONBLOCK
    for _ in range(3):  # another process may create or remove it between the two tries
        try:
            try:
                return os.open(part, flags)
            except FileNotFoundError:
                pass
            try:
                return os.open(part, flags | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any file
            except FileExistsError:
                continue
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):  # a link, a directory, a socket
                _refuse_unless_file(part, os.lstat(part).st_mode)
            raise _storage_error(exc, part, 0) from None
    raise StorageError(f"{part} keeps appearing and disappearing", hint="pick another -o")


def _kept(job: _Job) -> int:
    """How many bytes of an existing ``.part`` can be trusted as the start of this task's video."""
    f, part = job.f, job.part
    st = os.fstat(f.fileno())
    size = st.st_size
    if size == 0:
        return 0
    record = job.store.part(part)
    f.seek(0)
    head = f.read(8)
    if record is None:
        problem = "has no record of where it came from"
    elif record.task_id != job.task_id:
        problem = f"belongs to task {record.task_id}"
    elif (record.total is not None and size > record.total) or (len(head) == 8 and head[4:8] != b"ftyp"):
        problem = "is not the start of an MP4 video"
    elif record.size is not None and (
        size < record.size or (size == record.size and st.st_mtime_ns != record.mtime_ns)
    ):
        problem = "was changed since wanvid last wrote it"  # a kill mid-copy leaves it longer, not shorter
    else:
        job.view.notice(f"resuming {part.name} from byte {size:,}")
        job.record, job.etag, job.total = record, record.etag, record.total
        return size
    job.view.notice(f"{part.name} {problem}; starting over")
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
    record: Part | None = None  # what the store holds for the .part
    shown: int = 0  # bytes the view has counted
    digest: _Hash | None = None  # the MD5 of the .part's first ``hashed`` bytes, while the ETag is one
    hashed: int = 0
    spliced: bool = False  # bytes from an earlier answer (or run) are in the .part: the MD5 is checked

    def advance(self, n: int) -> None:
        self.shown += n
        self.view.advance(n)

    def show(self, size: int) -> None:
        self.advance(size - self.shown)

    def restart(self) -> int:
        self.etag = self.total = self.digest = None
        self.hashed, self.spliced = 0, False
        self.show(0)
        return _truncate(self.f)

    def save(self, source: str) -> None:
        """Record where the bytes come from, and the file as it is now (it grows from here)."""
        st = os.fstat(self.f.fileno())
        self.record = Part(self.task_id, source, self.etag, self.total, st.st_size, st.st_mtime_ns)
        self.store.save_part(self.part, self.record)

    def stopped(self) -> None:
        """wanvid stops writing the ``.part``: one still empty is removed (it holds nothing worth resuming),
        else its size and mtime are recorded, so that a change by anything else is noticed."""
        _sync(self.f)  # a network filesystem sets the mtime when the writes reach it
        st = os.fstat(self.f.fileno())
        if st.st_size == 0:
            self.store.drop_part(self.part)
            if _is_open_as(self.f, self.part):
                self.part.unlink()
        elif self.record is not None:
            self.record = replace(self.record, size=st.st_size, mtime_ns=st.st_mtime_ns)
            self.store.save_part(self.part, self.record)

    def hashing(self, size: int) -> None:
        """Before bytes are appended at ``size``: the MD5 of the ones before, when the ETag is an MD5 (the
        prefix of a resumed file is read once, in chunks)."""
        # Only a file put together from more than one answer is hashed: a single answer's bytes are what
        # TCP (and TLS) delivered intact, and hashing every download would cost a third of the copy rate.
        self.spliced = self.spliced or size > 0
        if not (self.spliced and self.etag and _MD5.fullmatch(self.etag)):
            self.digest = None
        elif self.digest is None or self.hashed != size:
            self.digest, self.hashed = hashlib.md5(usedforsecurity=False), 0
            fd = self.f.fileno()
            while self.hashed < size:
                os.lseek(fd, self.hashed, os.SEEK_SET)
                chunk = os.read(fd, min(CHUNK, size - self.hashed))
                if not chunk:
                    break
                self.wrote(chunk)
            self.f.seek(0, os.SEEK_END)

    def wrote(self, data: bytes | memoryview) -> None:
        if self.digest is not None:
            self.digest.update(data)
            self.hashed += len(data)

    def md5_problem(self, size: int) -> str | None:
        """Why the finished file is not the one its MD5 ETag names, or None (it is, there is no MD5, or it
        came in one answer)."""
        if not self.spliced:
            return None
        self.hashing(size)
        if self.digest is None or self.etag is None or self.digest.hexdigest() == self.etag.strip('"').lower():
            return None
        return f"does not match the MD5 the server gave as its ETag ({self.etag})"


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
        headers = {"Accept-Encoding": "identity"}  # byte counts, Range and the MD5 are all of the video itself
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
            start, etag, encoding = _range_start(resp), resp.headers.get("ETag"), _encoding(resp)
            # A compressed body's lengths and ETag describe the compressed bytes, not the video.
            total, etag = (None, None) if encoding else (_total_length(resp), etag)
            if size and encoding:
                view.notice(
                    f"the server sent the video compressed ({encoding}), which cannot continue {part.name}; "
                    "starting over"
                )
                size = job.restart()
                if start != 0:  # a compressed piece from the middle: ask again for the whole
                    continue
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
            job.etag = etag or (job.etag if size and not encoding else None)
            job.total = total if total is not None or encoding else job.total
            job.save(source)
            job.hashing(size)
            if not started:
                view.start(job.total)
                job.show(size)
                started = True
            try:
                size = _copy(job, resp, size, encoding)
                return size, job.total
            except _Dropped as dropped:
                got, drops = dropped.size, drops + 1  # what is on disk: the next request asks for the rest
                size = got
                if encoding:
                    view.notice(f"a compressed download cannot be resumed; {part.name} starts over")
                    size = job.restart()
                how = "slowed to a trickle" if dropped.stalled else "dropped the connection"
                if switch and drops >= SWITCH_AFTER_DROPS:
                    raise _Switch(f"{how} {drops} times, the last after {got:,} bytes") from None
                if attempt >= client.max_retries:
                    total_text = f"{job.total:,}" if job.total else "?"
                    kept = f"; {part.name} keeps them" if size else ""
                    raise DownloadDropped(
                        f"the server {how} after {got:,} of {total_text} bytes, {attempt + 1} times{kept}",
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


class OutputExists(UsageError):
    """The target is there and ``force`` was not given: nothing is written (or only the ``.part`` keeps it)."""


def _taken(dest: Path, more: str = "") -> OutputExists:
    return OutputExists(f"output {dest} already exists{more}", hint="pass --force to replace it, or -o another path")


class Superseded(UsageError):
    """Another process had the ``.part`` locked and, by the time this one got the lock, had placed (or
    removed) it: what it did is in the journal, not in this file."""


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


class _Oversized(CorruptDownload):
    """The body runs past what its headers declared, or inflates like a bomb: not the video."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the download is not the video: {what}; nothing was saved",
            hint="the gateway or a proxy sent something else; check `wanvid status` and try again later",
        )


class _Dropped(Exception):
    def __init__(self, size: int, stalled: bool = False) -> None:
        super().__init__(size)
        self.size = size
        self.stalled = stalled  # the server kept the connection but all but stopped sending


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


def _encoding(resp: requests.Response) -> str | None:
    """The body's Content-Encoding when it is one wanvid inflates, None for the plain bytes; refuses others."""
    encoding = resp.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in _ENCODINGS:
        return encoding
    shown = "".join(c if c.isprintable() else "?" for c in encoding[:40])
    raise CorruptDownload(
        f"the server sent the video compressed as {shown!r}, which wanvid cannot read; nothing was saved",
        hint="the gateway or a proxy ignores Accept-Encoding: identity; try again later",
    )


# Per-read timeouts (READ_TIMEOUT) end a download that stops; a server that sends a byte now and then
# would never end. Under STALL_BYTES in STALL_SECONDS (1 KiB/s on average over a minute) is taken as a
# drop: the request ends and the download resumes with Range, within the retry budget, keeping the bytes.
STALL_SECONDS = 60.0
STALL_BYTES = 64 * 1024


def _copy(job: _Job, resp: requests.Response, size: int, encoding: str | None) -> int:
    """Append the answer's body to the ``.part`` from ``size``; return the new size."""
    out, limit = job.f, None if encoding else job.total
    head = b"" if size == 0 else None  # the first bytes, until they show whether this is an MP4 at all
    pending, reported = 0, time.monotonic()  # bytes not yet reported, and when we last did
    window, window_bytes = reported, 0  # the stall guard's current window and the bytes that came in it
    try:
        for chunk in _inflated(resp) if encoding else _received(resp):
            window_bytes += len(chunk)
            if (now := time.monotonic()) - window >= STALL_SECONDS:
                if window_bytes < STALL_BYTES:
                    raise _Dropped(size, stalled=True)
                window, window_bytes = now, 0
            if head is not None:
                head += chunk[:8]
                if len(head) >= 8 and head[4:8] != b"ftyp":
                    raise _NotVideo(resp.headers.get("Content-Type", "no content type"))
                head = None if len(head) >= 8 else head
            if limit is not None and size + len(chunk) > limit:
                raise _Oversized(f"the server sent more than the {limit:,} bytes it declared")
            rest = memoryview(chunk)
            while rest:  # a raw file may take part of a write (a quota or size limit reached mid-chunk)
                n = out.write(rest)
                if not n:  # never for a regular file, but a loop that cannot end must not start
                    raise OSError(errno.EIO, "the file accepted no bytes")
                job.wrote(rest[:n])
                size += n
                pending += n
                rest = rest[n:]
            if time.monotonic() - reported >= REPORT_EVERY:
                job.advance(pending)
                pending, reported = 0, time.monotonic()
    except (requests.RequestException, urllib3.exceptions.HTTPError):
        raise _Dropped(size) from None
    except OSError as exc:
        raise _storage_error(exc, job.part, size) from None
    finally:
        if pending:
            job.advance(pending)
    return size


def _received(resp: requests.Response) -> Iterator[bytes]:
    # read1 hands over what each receive brought (up to CHUNK), so the bytes that arrived before a
    # dropped connection are written too; iter_content would discard a partly filled chunk.
    while chunk := resp.raw.read1(CHUNK, decode_content=False):
        yield chunk


def _inflated(resp: requests.Response) -> Iterator[bytes]:
    """A gzip/deflate body inflated here, never by urllib3, which would inflate a whole read at once: each
    piece is at most CHUNK, and the total is held to the bomb bound (see EXPAND_RATIO) before it is written."""
    inflate = zlib.decompressobj(_GZIP_OR_ZLIB)
    sent = made = 0
    for data in _received(resp):
        sent += len(data)
        while True:
            try:
                piece = inflate.decompress(data, CHUNK)
            except zlib.error as exc:
                raise _Oversized(f"its compressed body is broken ({exc})") from None
            data = inflate.unconsumed_tail
            if inflate.eof and inflate.unused_data:  # gzip members may follow one another
                data, inflate = inflate.unused_data, zlib.decompressobj(_GZIP_OR_ZLIB)
            made += len(piece)
            if made > EXPAND_RATIO * sent + EXPAND_SLACK:
                raise _Oversized(f"{sent:,} compressed bytes inflate to more than {made:,} (a compression bomb)")
            if piece:
                yield piece
            if not data and len(piece) < CHUNK:  # all in; a full piece may have more waiting inside zlib
                break
    if not inflate.eof:  # the compressed stream stops short: the connection ended early
        raise urllib3.exceptions.ProtocolError("the compressed body ends before its end")


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


def _is_open_as(f: BinaryIO, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``f`` (not something put in its place meanwhile)."""
    try:
        here, ours = os.lstat(path), os.fstat(f.fileno())
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)


def _sync(f: BinaryIO) -> None:
    with contextlib.suppress(OSError):
        os.fsync(f.fileno())


def _place(f: BinaryIO, part: Path, dest: Path, force: bool) -> None:
    if not _is_open_as(f, part):
        raise StorageError(f"{part} was replaced while downloading; nothing was saved", hint="run the download again")
    if force:
        os.replace(part, dest)
        return
    taken = _taken(dest, f"; the video stays in {part}")
    try:
        os.link(part, dest)  # atomic, and fails instead of replacing a file that appeared meanwhile
    except FileExistsError:
        raise taken from None
    except OSError:  # filesystems without hard links
        if dest.exists():
            raise taken from None
        os.replace(part, dest)
        return
    part.unlink()
