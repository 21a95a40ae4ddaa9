"""MP4/MOV (ISO base media file format) container checks: brand, duration and picture size from the
headers and ``moov`` only, never decoding media.

Used on both sides of the gateway: ``wanvid.rules.media`` inspects a local ``--first-clip`` with it, and
``wanvid.gateway.download`` verifies every downloaded video with ``verify_mp4`` before it is put in place.
The box reader takes any bytes (a download from a hostile server, a crafted file): every malformed value
(a truncated or empty box, a size past its parent, a zero timescale, an implausible duration, too many
boxes) is a ``ValueError`` saying what is wrong, which callers turn into their own error; nothing else
escapes it, and nothing it reads is recursed into or held beyond a bounded ``moov``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from wanvid.rules.models import MB

# A moov box holds only sample tables: a few MB even for long videos. Anything bigger is corrupt or
# hostile, and we would rather refuse than read it into memory.
_MOOV_MAX = 64 * MB
# Real files have a few top-level boxes (a fragmented one, two per fragment: ~70,000 for 10 h in 1 s
# fragments). Far more is a file of tiny hostile boxes that would only keep us seeking.
_TOP_BOXES_MAX = 1_000_000
# Seconds: longer than any video a gateway makes or takes. A bigger mvhd/mehd duration is corrupt, and
# refusing it keeps absurd numbers out of messages, sidecars and arithmetic downstream.
_SECONDS_MAX = 10_000_000.0


@dataclass(frozen=True)
class Mp4Info:
    major_brand: str  # e.g. "isom", "mp42", "qt  " (QuickTime)
    duration: float | None  # seconds, from moov/mvhd (or mvex/mehd for fragmented files)
    width: int | None  # of the first video track, from its tkhd
    height: int | None


def mp4_info(f: BinaryIO) -> Mp4Info:
    """Read brand, duration and video size from an open MP4/MOV file, seeking over the media data.

    Raises ValueError("not an ISO-BMFF/MP4 file") unless the file starts with an ``ftyp`` box, and
    another ValueError for a corrupt box structure. A file without a ``moov`` box (e.g. a download cut
    short before it) gives duration, width and height of None.
    """
    end = f.seek(0, os.SEEK_END)
    first = _top_box(f, 0, end)
    if first is None or first[0] != b"ftyp" or not 16 <= first[2] <= 4096 or first[2] > end:
        raise ValueError("not an ISO-BMFF/MP4 file")
    f.seek(first[1])
    brand = f.read(4).decode("latin-1")
    pos, count = first[2], 1
    while pos + 8 <= end:
        count = _count_box(count)
        box = _top_box(f, pos, end)
        if box is None:
            raise ValueError(f"corrupt MP4: bad box header at byte {pos}")
        kind, body, box_end = box
        if kind == b"moov":
            if box_end > end:
                raise ValueError("truncated MP4: the moov box runs past the end of the file")
            if box_end - body > _MOOV_MAX:
                raise ValueError(f"corrupt MP4: a moov box of {(box_end - body) / MB:.1f} MB is implausible")
            f.seek(body)
            return _parse_moov(brand, f.read(box_end - body))
        pos = box_end  # mdat and friends: skipped by seeking, never read
    return Mp4Info(brand, None, None, None)


def verify_mp4(f: BinaryIO) -> Mp4Info:
    """``mp4_info`` of a file that must be complete: a moov box, and top-level boxes that end exactly at
    the end of the file (a truncated or padded-with-garbage download fails). Raises ValueError saying why."""
    info = mp4_info(f)
    end = f.seek(0, os.SEEK_END)
    pos = count = 0
    while pos < end:
        count = _count_box(count)
        box = _top_box(f, pos, end)
        if box is None or box[2] > end:
            raise ValueError(f"its box structure breaks off at byte {pos:,} of {end:,}")
        pos = box[2]
    if info.duration is None:
        raise ValueError("it has no moov box (the index of its frames)")
    return info


def _count_box(count: int) -> int:
    if count >= _TOP_BOXES_MAX:
        raise ValueError(f"corrupt MP4: more than {_TOP_BOXES_MAX:,} top-level boxes")
    return count + 1


def _top_box(f: BinaryIO, pos: int, end: int) -> tuple[bytes, int, int] | None:
    """(type, body start, box end) of the top-level box at ``pos``, or None if the header is not one."""
    f.seek(pos)
    head = f.read(8)
    if len(head) < 8:
        return None
    size, kind = struct.unpack(">I4s", head)
    if not all(0x20 <= c <= 0x7E for c in kind):  # top-level box types are printable ASCII
        return None
    header = 8
    if size == 1:  # 64-bit "largesize" follows the type (mdat of files over 4 GB)
        big = f.read(8)
        if len(big) < 8:
            return None
        size, header = struct.unpack(">Q", big)[0], 16
    elif size == 0:  # the box runs to the end of the file
        size = end - pos
    if size < header:
        return None
    return kind, pos + header, pos + size


def _children(buf: bytes, start: int, stop: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, box end) of each box in ``buf[start:stop]``."""
    pos = start
    while pos + 8 <= stop:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if pos + 16 > stop:
                raise ValueError("corrupt MP4: truncated box header inside moov")
            size, header = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        elif size == 0:
            size = stop - pos
        if size < header or pos + size > stop:
            raise ValueError(f"corrupt MP4: bad {_name(kind)} box inside moov")
        yield kind, pos + header, pos + size
        pos += size


def _name(kind: bytes) -> str:
    """A box type for a message: its unprintable bytes (a crafted file's escape codes) as '?'."""
    return "".join(chr(c) if 0x20 <= c < 0x7F else "?" for c in kind)


def _version(buf: bytes, body: int, box_end: int, kind: bytes) -> int:
    """The version byte that opens a full box's body; an empty body is corrupt."""
    if body >= box_end:
        raise ValueError(f"corrupt MP4: empty {_name(kind)} box")
    return buf[body]


def _seconds(units: int, timescale: int, kind: bytes) -> float:
    if timescale == 0:
        raise ValueError(f"corrupt MP4: {_name(kind)} gives a duration with a timescale of 0")
    seconds = units / timescale
    if seconds > _SECONDS_MAX:
        raise ValueError(f"corrupt MP4: {_name(kind)} gives an implausible duration of {seconds:.3g} s")
    return seconds


def _child(buf: bytes, start: int, stop: int, kind: bytes) -> tuple[int, int] | None:
    for k, body, box_end in _children(buf, start, stop):
        if k == kind:
            return body, box_end
    return None


def _parse_moov(brand: str, moov: bytes) -> Mp4Info:
    duration: float | None = None
    mvhd = _child(moov, 0, len(moov), b"mvhd")
    if mvhd is not None:
        body, box_end = mvhd
        # Version 1 has 64-bit times: timescale at +20, duration at +24; version 0 at +12 and +16. A
        # duration of all ones means "unknown".
        v1 = _version(moov, body, box_end, b"mvhd") == 1
        at, fmt, unknown = (20, ">IQ", 2**64 - 1) if v1 else (12, ">II", 2**32 - 1)
        if box_end - body < at + struct.calcsize(fmt):
            raise ValueError("corrupt MP4: mvhd box too short")
        timescale, units = struct.unpack_from(fmt, moov, body + at)
        if units and units != unknown:
            duration = _seconds(units, timescale, b"mvhd")
        elif timescale:
            # Fragmented MP4: mvhd says 0, the total is in mvex/mehd (same timescale).
            mvex = _child(moov, 0, len(moov), b"mvex")
            mehd = _child(moov, mvex[0], mvex[1], b"mehd") if mvex else None
            if mehd:
                fmt = ">Q" if _version(moov, mehd[0], mehd[1], b"mehd") == 1 else ">I"
                if mehd[1] - mehd[0] >= 4 + struct.calcsize(fmt):
                    units = struct.unpack_from(fmt, moov, mehd[0] + 4)[0]
                    duration = _seconds(units, timescale, b"mehd") if units else None
    # The first track with a picture size, preferring one whose handler says video: some muxers give
    # timed-text tracks a size too.
    sized: list[tuple[tuple[int, int], bool]] = []
    for kind, body, box_end in _children(moov, 0, len(moov)):
        if kind == b"trak" and (size := _tkhd_size(moov, body, box_end)):
            sized.append((size, _handler(moov, body, box_end) == b"vide"))
    picked = next((s for s, video in sized if video), sized[0][0] if sized else None)
    width, height = picked if picked else (None, None)
    return Mp4Info(brand, duration, width, height)


def _tkhd_size(moov: bytes, start: int, stop: int) -> tuple[int, int] | None:
    tkhd = _child(moov, start, stop, b"tkhd")
    if tkhd is None:
        return None
    body, box_end = tkhd
    # Past times, ids, layer, volume and the 3x3 matrix.
    at = body + (88 if _version(moov, body, box_end, b"tkhd") == 1 else 76)
    if at + 8 > box_end:
        return None
    w, h = struct.unpack_from(">II", moov, at)
    w, h = round(w / 65536), round(h / 65536)  # 16.16 fixed point
    return (w, h) if w and h else None


def _handler(moov: bytes, start: int, stop: int) -> bytes | None:
    mdia = _child(moov, start, stop, b"mdia")
    hdlr = _child(moov, mdia[0], mdia[1], b"hdlr") if mdia else None
    if not hdlr or hdlr[1] - hdlr[0] < 12:
        return None
    return moov[hdlr[0] + 8 : hdlr[0] + 12]  # after version/flags and pre_defined
