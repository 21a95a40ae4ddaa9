"""Inspection of local input files (images, audio, video) before they are sent to the gateway.

Owns everything wanvid knows about a local media file: does it exist and can it be read, what type
it really is (sniffed from its content, never from its extension), its pixel size or duration, and
whether those break the model's rules in ``wanvid.rules.models`` (the limits live there, not here). Every
problem is raised as a one-line ``FieldError`` naming the file, the problem and the fix, so the user
hears about it before any money is spent.

Cheap to import: Pillow is imported inside ``inspect_image``, never at module level, so importing
this module stays cheap on the path of ``--help``. MP3 and WAV headers are parsed by the small
hand-written readers below, which read headers only and never decode media; MP4/MOV by
``wanvid.rules.mp4``, the container check the downloader uses too.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shlex
import stat
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from wanvid.errors import FieldError
from wanvid.rules.models import IMAGE_FORMATS, MB, AudioRule, ImageRule, VideoRule
from wanvid.rules.mp4 import mp4_info

AUDIO_FORMATS = ("wav", "mp3")
VIDEO_FORMATS = ("mp4", "mov")

_IMAGE_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg"}
_VIDEO_MIME = {"mp4": "video/mp4", "mov": "video/quicktime"}


def is_remote(ref: str) -> bool:
    """True if ``ref`` is a URL the gateway fetches itself (http, https) or an inline data: URI."""
    return ref[:8].lower().startswith(("http://", "https://", "data:"))


@dataclass(frozen=True)
class LocalMedia:
    """A local file that passed inspection: what it is, and how to send it."""

    path: Path
    kind: str  # "image" | "audio" | "video"
    mime: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    seconds: float | None = None

    mtime_ns: int = -1  # when it was inspected: a later change is caught before it is sent

    def __post_init__(self) -> None:
        if self.mtime_ns == -1:
            object.__setattr__(self, "mtime_ns", self.path.stat().st_mtime_ns)

    @cached_property
    def sha256(self) -> str:
        """The SHA-256 of the file's bytes, read in chunks once and remembered."""
        digest = hashlib.sha256()
        with self.path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def changed(self) -> bool:
        """True if the file on disk is no longer the one inspected (size or modification time)."""
        try:
            st = self.path.stat()
        except OSError:
            return True
        return (st.st_size, st.st_mtime_ns) != (self.size_bytes, self.mtime_ns)


# --------------------------------------------------------------------------------------------------
# Message helpers: every message is one line, "<what> <path> <problem>; <rule> — <fix>".


def _label(field: str) -> str:
    return field.replace("_", " ")


def _who(model: str) -> str:
    return model or "this model"


def _or_list(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _sh(path: Path) -> str:
    """``path`` as a shell word, for the ffmpeg commands suggested as fixes."""
    return shlex.quote(str(path))


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < MB:
        return f"{n / 1024:.1f} KB"
    return f"{n / MB:.1f} MB"


def _limit(n: int) -> str:
    return _human(n).replace(".0 ", " ")


def _too_big(field: str, path: Path, size: int, limit: int, who: str, fix: str) -> FieldError:
    got, lim = _human(size), _limit(limit)
    if got == _human(limit):
        # Just over the limit, "20.0 MB; the limit is 20 MB" would read as a contradiction.
        got, lim = f"{size:,} bytes", f"{lim} ({limit:,} bytes)"
    return FieldError(field, f"{_label(field)} {path} is {got}; the limit for {who} is {lim} — {fix}")


def _secs(x: float, lo: float, hi: float) -> str:
    # One decimal normally; more when rounding would put an out-of-range value inside the range
    # ("1.999 s" rather than a confusing "2.0 s; needs 2 to 30 s").
    for digits in (1, 3, 6):
        text = f"{x:.{digits}f}"
        if not lo <= float(text) <= hi:
            break
    return f"{text} s"


def _ratio(x: float, limit: float) -> str:
    # As in _secs: 8.04 must not read as "8.0:1; allows at most 8:1".
    for digits in (1, 3, 6):
        text = f"{x:.{digits}f}"
        if float(text) > limit:
            break
    return text


def _check_seconds(field: str, path: Path, seconds: float, lo: float, hi: float, who: str) -> None:
    if seconds < lo:
        fix = "use a longer clip"
    elif seconds > hi:
        fix = "trim it"
    else:
        return
    raise FieldError(
        field,
        f"{_label(field)} {path} is {_secs(seconds, lo, hi)} long; {who} needs {lo:g} to {hi:g} s — {fix}",
    )


def _check_sides(field: str, path: Path, w: int, h: int, lo: int, hi: int, who: str, fix: str) -> None:
    if min(w, h) < lo or max(w, h) > hi:
        raise FieldError(
            field,
            f"{_label(field)} {path} is {w}x{h} px; {who} needs each side between {lo} and {hi} px — {fix}",
        )


# --------------------------------------------------------------------------------------------------
# Opening: the checks every kind shares.


def _open(path: Path, field: str, noun: str) -> tuple[BinaryIO, int]:
    """Open ``path`` for reading after checking it is a non-empty regular file; return (file, size)."""
    label = _label(field)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise FieldError(field, f"{label} {path} does not exist — check the path") from None
    except PermissionError:
        raise FieldError(
            field, f"{label} {path} can't be reached (permission denied) — check the folder's permissions"
        ) from None
    except (OSError, ValueError) as e:
        raise FieldError(field, f"{label} {path} can't be read ({_reason(e)}) — check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise FieldError(field, f"{label} {path} is a directory — give the path of {noun}")
    # Checked before open(): opening a FIFO or device would block or read forever.
    if not stat.S_ISREG(st.st_mode):
        raise FieldError(field, f"{label} {path} is not a regular file — give the path of {noun}")
    try:
        f = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except PermissionError:
        raise FieldError(
            field, f"{label} {path} can't be read (permission denied) — make it readable (chmod +r)"
        ) from None
    except OSError as e:
        raise FieldError(field, f"{label} {path} can't be read ({_reason(e)}) — check the file") from None
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        f.close()
        raise FieldError(field, f"{label} {path} is empty (0 bytes) — pick another file or export it again")
    return f, size


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).splitlines()[0] or type(e).__name__


# --------------------------------------------------------------------------------------------------
# Images (Pillow, header only).


def inspect_image(path: Path, rule: ImageRule | None, field: str, model: str = "") -> LocalMedia:
    """Check an image file against ``rule`` (None: type checks only); raise FieldError or describe it."""
    path = Path(path)
    label, who = _label(field), _who(model)
    allowed = rule.formats if rule else IMAGE_FORMATS
    f, size = _open(path, field, "an image file")
    with f:
        from PIL import Image, UnidentifiedImageError  # here, not at the top: keeps --help fast

        try:
            with warnings.catch_warnings():
                # Pillow warns above ~89 Mpx; the side limits below give the useful message instead.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(f) as im:  # reads the header only
                    fmt, (w, h) = im.format or "", im.size
        except Image.DecompressionBombError:
            raise FieldError(
                field, f"{label} {path} has too many pixels to open safely — downscale it (e.g. to 2000 px)"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise FieldError(
                field,
                f"{label} {path} is not an image Pillow can read ({_or_list(allowed)}) — "
                "check the file or convert it to PNG",
            ) from None
    # Multi-picture JPEGs from cameras are reported as MPO: they are JPEG files to everyone else.
    if fmt == "MPO":
        fmt = "JPEG"
    if fmt not in allowed:
        raise FieldError(field, f"{label} {path} is a {fmt} image; {who} takes {_or_list(allowed)} — convert it to PNG")
    if rule:
        _check_sides(field, path, w, h, rule.min_side, rule.max_side, who, "resize it or pick another image")
        aspect = max(w, h) / min(w, h)
        if rule.max_aspect is not None and aspect > rule.max_aspect:
            raise FieldError(
                field,
                f"{label} {path} is {w}x{h} px, an aspect ratio of {_ratio(aspect, rule.max_aspect)}:1; "
                f"{who} allows at most {rule.max_aspect:g}:1 — crop it",
            )
        if size > rule.max_bytes:
            raise _too_big(field, path, size, rule.max_bytes, who, "save it as JPEG or downscale it")
    mime = _IMAGE_MIME.get(fmt, f"image/{fmt.lower()}")
    return LocalMedia(path, "image", mime, size, width=w, height=h)


# --------------------------------------------------------------------------------------------------
# Audio: WAV and MP3, sniffed and measured from their headers.


class _NotAudio(Exception):
    """The bytes are not the format they started to look like; the message says why."""


def inspect_audio(path: Path, rule: AudioRule | None, field: str, model: str = "") -> LocalMedia:
    """Check a WAV/MP3 file against ``rule`` (None: type checks only); raise FieldError or describe it."""
    path = Path(path)
    label, who = _label(field), _who(model)
    allowed = rule.formats if rule else AUDIO_FORMATS
    names = _or_list([a.upper() for a in allowed])
    f, size = _open(path, field, "an audio file")
    with f:
        head = f.read(12)
        kind = _sniff_audio(head)
        if kind is None:
            raise FieldError(
                field,
                f"{label} {path} is not a {names} file — convert it: ffmpeg -i {_sh(path)} converted.mp3",
            )
        if kind not in allowed:
            raise FieldError(field, f"{label} {path} is {kind.upper()}; {who} takes {names} — convert it")
        if rule and size > rule.max_bytes:
            raise _too_big(field, path, size, rule.max_bytes, who, "use a shorter clip or encode it as MP3")
        try:
            seconds = _wav_seconds(f, size) if kind == "wav" else _mp3_seconds(f)
        except _NotAudio as e:
            raise FieldError(field, f"{label} {path} {e} — export it again or pick another file") from None
    if rule:
        _check_seconds(field, path, seconds, rule.min_seconds, rule.max_seconds, who)
    return LocalMedia(path, "audio", _AUDIO_MIME[kind], size, seconds=seconds)


def _sniff_audio(head: bytes) -> str | None:
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or _mp3_frame(head, 0) is not None:
        return "mp3"
    return None


def _wav_seconds(f: BinaryIO, size: int) -> float:
    """Duration from the header alone: data bytes / average byte rate (right for PCM and non-PCM)."""
    f.seek(0)
    rf64 = f.read(4) == b"RF64"
    pos = 12
    byte_rate: int | None = None
    data_bytes: int | None = None
    ds64_data: int | None = None
    while pos + 8 <= size:
        f.seek(pos)
        cid, csize = struct.unpack("<4sI", f.read(8))
        body = pos + 8
        if cid == b"ds64":  # RF64 (> 4 GB WAV) keeps the real data size here
            raw = f.read(24)
            if len(raw) == 24:
                ds64_data = struct.unpack("<QQQ", raw)[1]
        elif cid == b"fmt ":
            raw = f.read(16)
            if len(raw) < 16:
                break
            byte_rate = struct.unpack("<HHIIHH", raw)[3]
        elif cid == b"data":
            n = csize
            if rf64 and csize == 0xFFFFFFFF and ds64_data is not None:
                n = ds64_data
            elif csize in (0, 0xFFFFFFFF):
                n = size - body  # written by a streaming tool that never filled the size in
            data_bytes = min(n, size - body)  # a truncated file plays what it has
            if byte_rate is not None:
                break
        pos = body + csize + (csize & 1)  # chunks are padded to an even length
    if byte_rate is None or data_bytes is None:
        raise _NotAudio("is not a valid WAV file (no fmt or data chunk)")
    if byte_rate == 0:
        raise _NotAudio("is not a valid WAV file (its header says 0 bytes per second)")
    return data_bytes / byte_rate


# MPEG audio Layer III tables. Version bits: 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5 (1 is reserved).
_MP3_KBPS = {
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_ID3_SCAN = 64 * 1024  # how far past the ID3 tag we look for the first frame (padding, junk)


def _mp3_frame(buf: bytes | mmap.mmap, i: int) -> tuple[int, int, int, int] | None:
    """(frame length, samples per frame, sample rate, version) of a Layer III header at ``i``, or None."""
    if i + 4 > len(buf) or buf[i] != 0xFF:
        return None
    b1, b2, b3 = buf[i + 1], buf[i + 2], buf[i + 3]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    if b1 & 0xE0 != 0xE0 or version == 1 or layer != 1 or b3 & 3 == 2:
        return None
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if bitrate_index in (0, 15) or rate_index == 3:  # 0 = "free format": no way to know its length
        return None
    rate = _MP3_RATES[version][rate_index]
    kbps = _MP3_KBPS[3 if version == 3 else 2][bitrate_index]
    if version == 3:
        return 144_000 * kbps // rate + padding, 1152, rate, version
    return 72_000 * kbps // rate + padding, 576, rate, version


def _mp3_confirmed(buf: bytes | mmap.mmap, i: int) -> tuple[int, int, int, int] | None:
    """A frame at ``i`` that is followed by a matching frame (or ends the file): a real sync, not noise."""
    frame = _mp3_frame(buf, i)
    if frame is None or i + frame[0] > len(buf):
        return None
    if i + frame[0] == len(buf):
        return frame
    nxt = _mp3_frame(buf, i + frame[0])
    if nxt is None or nxt[2:] != frame[2:]:
        return None
    return frame


def _mp3_seconds(f: BinaryIO) -> float:
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _mp3_buffer_seconds(buf)


def _mp3_buffer_seconds(buf: bytes | mmap.mmap) -> float:
    pos, tagged = 0, False
    while buf[pos : pos + 3] == b"ID3" and pos + 10 <= len(buf):  # ID3v2 tags, maybe more than one
        flags, raw = buf[pos + 5], buf[pos + 6 : pos + 10]
        tag_size = (raw[0] & 0x7F) << 21 | (raw[1] & 0x7F) << 14 | (raw[2] & 0x7F) << 7 | (raw[3] & 0x7F)
        pos += 10 + tag_size + (10 if flags & 0x10 else 0)  # + footer
        tagged = True
    # After a tag, encoders leave padding; without one, the file must start with a frame, which keeps
    # arbitrary binary files from passing as MP3 on a chance 0xFF byte.
    first, frame = -1, None
    stop = min(len(buf), pos + _ID3_SCAN) if tagged else pos + 1
    i = pos
    while i < stop:
        i = buf.find(b"\xff", i, stop)
        if i < 0:
            break
        frame = _mp3_confirmed(buf, i)
        if frame is not None:
            first = i
            break
        i += 1
    if frame is None:
        raise _NotAudio("is not a valid MP3 file (no MPEG audio frames found)")
    _length, spf, rate, _version = frame
    # A VBR file announces its frame count in a Xing/Info (LAME) or VBRI header inside the first frame,
    # which is then not itself audio. Trust it: it is what players and ffprobe report.
    mono = buf[first + 3] >> 6 == 3
    side_info = (17 if mono else 32) if spf == 1152 else (9 if mono else 17)
    xing = first + 4 + side_info
    if xing + 12 <= len(buf) and buf[xing : xing + 4] in (b"Xing", b"Info") and buf[xing + 7] & 1:
        frames = struct.unpack(">I", buf[xing + 8 : xing + 12])[0]
        if frames:
            return frames * spf / rate
    if first + 54 <= len(buf) and buf[first + 36 : first + 40] == b"VBRI":
        frames = struct.unpack(">I", buf[first + 50 : first + 54])[0]
        if frames:
            return frames * spf / rate
    # No usable header (typical CBR): walk every frame. Between frames there may be tags (ID3v1, APE)
    # or junk; resynchronise on the next confirmed frame of the same stream.
    samples, i, n = 0, first, len(buf)
    while i < n:
        frame = _mp3_frame(buf, i)
        if frame is not None and frame[2] == rate and i + frame[0] <= n:
            samples += frame[1]
            i += frame[0]
            continue
        j = buf.find(b"\xff", i + 1)
        while j >= 0:
            again = _mp3_confirmed(buf, j)
            if again is not None and again[2] == rate:
                break
            j = buf.find(b"\xff", j + 1)
        if j < 0:
            break
        i = j
    return samples / rate


def inspect_video(path: Path, rule: VideoRule | None, field: str, model: str = "") -> LocalMedia:
    """Check an MP4/MOV file against ``rule`` (None: type checks only); raise FieldError or describe it."""
    path = Path(path)
    label, who = _label(field), _who(model)
    allowed = rule.formats if rule else VIDEO_FORMATS
    names = _or_list([a.upper() for a in allowed])
    f, size = _open(path, field, "a video file")
    with f:
        try:
            info = mp4_info(f)
        except ValueError as e:
            if str(e) == "not an ISO-BMFF/MP4 file":
                raise FieldError(
                    field,
                    f"{label} {path} is not an {names} video — convert it: ffmpeg -i {_sh(path)} converted.mp4",
                ) from None
            raise FieldError(field, f"{label} {path} can't be read ({e}) — export it again") from None
    kind = "mov" if info.major_brand == "qt  " else "mp4"
    if kind not in allowed:
        raise FieldError(field, f"{label} {path} is {kind.upper()}; {who} takes {names} — convert it")
    if info.width is None or info.height is None:
        raise FieldError(
            field,
            f"{label} {path} has no video track (or its moov header is missing, as in an unfinished "
            "download) — pick a complete video file",
        )
    if rule:
        if size > rule.max_bytes:
            raise _too_big(field, path, size, rule.max_bytes, who, "trim it or re-encode it at a lower bitrate")
        if info.duration is None:
            raise FieldError(
                field,
                f"{label} {path} has no duration in its header (a fragmented MP4?) — "
                f"remux it: ffmpeg -i {_sh(path)} -c copy remuxed.mp4",
            )
        _check_seconds(field, path, info.duration, rule.min_seconds, rule.max_seconds, who)
        _check_sides(field, path, info.width, info.height, rule.min_side, rule.max_side, who, "rescale it")
    return LocalMedia(
        path, "video", _VIDEO_MIME[kind], size, width=info.width, height=info.height, seconds=info.duration
    )
