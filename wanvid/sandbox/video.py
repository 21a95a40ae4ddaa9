"""The sandbox's video as served: the bundled sample MP4, its padded and changed variants, their ETags,
and the helpers that serve it in pieces: Range parsing, If-Range, pacing and a transfer deadline.

A video of any size is never built in memory: only its head (the sample, maybe a padding box header) is
held, and the padding goes out as slices of one reused buffer of zeros.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import re
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from io import BufferedIOBase

PIECE = 1 << 20  # large bodies go out in writes of this size: big writes keep loopback transfers fast
PAD_HEADER = 16  # the largest header of the padding box (the 64-bit "largesize" form)
MULTIPART_SIZE = 64 * 1024 * 1024  # objects above this get a multipart ETag (see video_for)
# What a proxy answers in place of the video (the video_html and content_html faults, malformed="html").
PROXY_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Access Denied</title></head>\n"
    b"<body><h1>Access Denied</h1><p>The requested URL could not be retrieved.</p>\n"
    b"<hr><address>proxy (injected by the wanvid sandbox)</address></body></html>\n"
)


@functools.cache
def sample_mp4() -> bytes:
    """The bundled 5 s 640x360 H.264 clip every finished task 'produces' (read once)."""
    return (importlib.resources.files("wanvid") / "assets" / "sample.mp4").read_bytes()


def min_video_size() -> int:
    """The smallest ``video_size``: the sample plus room for the padding box's header."""
    return len(sample_mp4()) + PAD_HEADER


@functools.cache
def filled(byte: bytes) -> memoryview:
    """One buffer of ``byte``, reused for every padding byte served: padding is never built in memory."""
    return memoryview(byte * PIECE)


@dataclass(frozen=True)
class Video:
    """An MP4 as served: ``head`` (the sample, maybe a ``free`` box header and the variant number after
    it), then zero bytes up to ``size``. Only the head is held in memory, however big the file."""

    head: bytes
    size: int
    etag: str  # strong, quoted: the MD5 of every byte (a multipart-style ETag past MULTIPART_SIZE), as OSS gives

    def pieces(self, first: int, last: int) -> Iterator[memoryview]:
        """Bytes ``first``..``last`` (inclusive) as slices of the head and of the zero buffer, not copies."""
        head, end, pos = memoryview(self.head), last + 1, first
        if pos < len(head):
            yield head[pos : min(end, len(head))]
            pos = len(head)
        zeros = filled(b"\0")
        while pos < end:
            n = min(PIECE, end - pos)
            yield zeros[:n]
            pos += n


@functools.lru_cache(maxsize=32)
def video_for(size: int | None, variant: int) -> Video:
    """The MP4 for the video_size / video_variant faults: without either it is the bundled sample itself.

    Otherwise the sample is followed by one top-level ``free`` box (players and ``mp4_info`` skip it)
    padding the file to ``size`` (default: the smallest box); its payload opens with the variant number
    as 8 bytes, so every variant is different bytes, and is zeros after that.
    """
    sample = sample_mp4()
    if size is None and variant == 0:
        head = sample
    else:
        size = min_video_size() if size is None else size
        padding = size - len(sample)
        # Past 32 bits, size 1 says a 64-bit "largesize" follows the type.
        box = struct.pack(">I4s", padding, b"free") if padding < 2**32 else struct.pack(">I4sQ", 1, b"free", padding)
        head = sample + box + struct.pack(">Q", variant)
    total = len(head) if size is None else size
    if total > MULTIPART_SIZE:
        # A big object is uploaded in parts, and OSS and S3 then give "<md5 of the parts' md5s>-<parts>", not
        # the MD5 of the bytes (hashing gigabytes of padding here would only slow the sandbox down).
        parts = -(-total // MULTIPART_SIZE)
        return Video(head, total, f'"{hashlib.md5(head + total.to_bytes(8, "big")).hexdigest()}-{parts}"')
    # The MD5 of every byte served, as OSS and S3 give a single-part object: wanvid checks it.
    digest, left, zeros = hashlib.md5(head), total - len(head), filled(b"\0")
    while left > 0:
        digest.update(zeros[: min(left, len(zeros))])
        left -= min(left, len(zeros))
    return Video(head, total, f'"{digest.hexdigest()}"')


class Until:
    """Video pieces in slices of at most 16 KiB until a monotonic deadline, then nothing more: the cap a
    proxy puts on a whole transfer. ``stopped`` tells whether the deadline cut the body short."""

    def __init__(self, pieces: Iterable[memoryview], deadline: float) -> None:
        self.pieces, self.deadline, self.stopped = pieces, deadline, False

    def __iter__(self) -> Iterator[memoryview]:
        for piece in self.pieces:
            for offset in range(0, len(piece), 16384):
                if time.monotonic() >= self.deadline:
                    self.stopped = True
                    return
                yield piece[offset : offset + 16384]


def parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """(first, last) for one satisfiable range; None = ignore the header (serve all); False = 416."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None or (not m[1] and not m[2]):
        return None  # malformed or multi-range: RFC 9110 lets us answer 200 with everything
    if m[1]:
        first = int(m[1])
        if first >= size:
            return False
        last = int(m[2]) if m[2] else size - 1
        if last < first:
            return None  # syntactically invalid: ignored, like a malformed header
        return first, min(last, size - 1)
    suffix = int(m[2])
    if suffix == 0:
        return False
    return max(0, size - suffix), size - 1


def if_range_holds(if_range: str | None, etag: str) -> bool:
    """RFC 9110 13.1.5: a Range counts only if If-Range, when sent, is the current strong ETag.

    A date never holds: the video can change within a second (video_variant), so Last-Modified is
    only a weak validator here, and a weak one must not let parts of two versions be spliced.
    """
    return if_range is None or if_range.strip() == etag


def write_pieces(out: BufferedIOBase, pieces: Iterable[memoryview], bps: int | None) -> None:
    """Write ``pieces`` to ``out``, paced to about ``bps`` bytes a second when given (slow_download_bps)."""
    if not bps:
        for piece in pieces:
            out.write(piece)
        return
    step = max(1, min(65536, bps // 20))  # ~20 writes a second keeps the rate smooth
    start, sent = time.monotonic(), 0
    for piece in pieces:
        for offset in range(0, len(piece), step):
            part = piece[offset : offset + step]
            out.write(part)
            sent += len(part)
            delay = start + sent / bps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
