"""wanvid.rules.media: local input files checked against both models' rules before any money is spent.

Images and WAVs are made on the fly (Pillow, ``wave``); MP4 box structures are built by hand; only the
MP3/MOV/MP4 files that need ffmpeg to make are committed under tests/data.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import wave
import zlib
from pathlib import Path

import pytest
from PIL import Image, features

from wanvid.errors import FieldError
from wanvid.rules import media
from wanvid.rules.media import LocalMedia, inspect_audio, inspect_image, inspect_video, is_remote
from wanvid.rules.models import MB, MODELS, ModelSpec
from wanvid.rules.mp4 import Mp4Info, mp4_info

DATA = Path(__file__).parents[1] / "data"
ROOT = Path(__file__).parents[2]
SPECS = list(MODELS.values())
W27, W26 = MODELS["wan2.7-i2v"], MODELS["wan2.6-i2v"]


def by_name(spec: ModelSpec) -> str:
    return spec.name


def rejects(fn, *args, field: str, match: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """Call ``fn``, expect a FieldError for ``field``, check it is one line; return the message."""
    with pytest.raises(FieldError) as e:
        fn(*args)
    msg = str(e.value)
    assert e.value.field == field
    assert "\n" not in msg and "Traceback" not in msg and "—" in msg, msg
    if match is not None:
        assert match in msg, msg
    return msg


def make_image(path: Path, size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB") -> Path:
    Image.new(mode, size, (200, 120, 60) if mode == "RGB" else 128).save(path, format=fmt)
    return path


def make_wav(path: Path, seconds: float, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\0" * (round(seconds * rate) * channels * width))
    return path


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` but holds no pixels: enough for a header-only reader."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def pad_to(path: Path, size: int) -> Path:
    """Grow a file to ``size`` bytes (sparse: instant, no disk used); image/audio headers stay valid."""
    with path.open("r+b") as f:
        f.truncate(size)
    return path


# --------------------------------------------------------------------------------------------------
# is_remote


@pytest.mark.parametrize(
    "ref", ["http://x/a.png", "https://x/a.png", "HTTPS://X/A.PNG", "Http://x", "data:image/png;base64,AA"]
)
def test_is_remote_urls(ref: str) -> None:
    assert is_remote(ref)


@pytest.mark.parametrize("ref", ["cat.png", "/tmp/cat.png", "./https/cat.png", "httpx.png", "ftp://x/a", ""])
def test_is_remote_local_paths(ref: str) -> None:
    assert not is_remote(ref)


# --------------------------------------------------------------------------------------------------
# File checks shared by every kind

INSPECTORS = [
    pytest.param(inspect_image, W27.image, "image", id="image"),
    pytest.param(inspect_image, W26.image, "last_frame", id="last_frame"),
    pytest.param(inspect_audio, W27.audio, "audio", id="audio"),
    pytest.param(inspect_video, W27.video, "first_clip", id="video"),
    pytest.param(inspect_image, None, "image", id="image-unknown-model"),
    pytest.param(inspect_audio, None, "audio", id="audio-unknown-model"),
    pytest.param(inspect_video, None, "first_clip", id="video-unknown-model"),
]


@pytest.mark.parametrize(("fn", "rule", "field"), INSPECTORS)
def test_missing_file(fn, rule, field, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    msg = rejects(fn, tmp_path / "nope.bin", rule, field, "m", field=field, match="does not exist")
    assert str(tmp_path / "nope.bin") in msg and "check the path" in msg


@pytest.mark.parametrize(("fn", "rule", "field"), INSPECTORS)
def test_missing_parent_is_missing_too(fn, rule, field, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "file").write_bytes(b"x")
    rejects(fn, tmp_path / "file" / "child.png", rule, field, field=field, match="does not exist")


@pytest.mark.parametrize(("fn", "rule", "field"), INSPECTORS)
def test_directory(fn, rule, field, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pics.png").mkdir()
    rejects(fn, tmp_path / "pics.png", rule, field, field=field, match="is a directory — give the path of")


@pytest.mark.parametrize(("fn", "rule", "field"), INSPECTORS)
def test_empty_file(fn, rule, field, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty").write_bytes(b"")
    rejects(fn, tmp_path / "empty", rule, field, field=field, match="is empty (0 bytes)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize(("fn", "rule", "field"), INSPECTORS)
def test_fifo_is_refused_without_blocking(fn, rule, field, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    os.mkfifo(tmp_path / "pipe")
    rejects(fn, tmp_path / "pipe", rule, field, field=field, match="is not a regular file")


@pytest.mark.parametrize(("fn", "rule", "field"), INSPECTORS)
def test_unreadable_file(fn, rule, field, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # Root can read anything, so simulate what open() does for a chmod 000 file.
    path = make_image(tmp_path / "locked.png", (400, 400))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(media, "open", denied, raising=False)
    msg = rejects(fn, path, rule, field, field=field, match="can't be read (permission denied)")
    assert str(path) in msg and "chmod" in msg


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads chmod 000 files")
def test_unreadable_file_for_real(tmp_path: Path) -> None:
    path = make_image(tmp_path / "locked.png", (400, 400))
    path.chmod(0)
    try:
        rejects(inspect_image, path, W27.image, "image", field="image", match="permission denied")
    finally:
        path.chmod(0o644)


# --------------------------------------------------------------------------------------------------
# Images


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_image_at_the_limits_passes(spec: ModelSpec, tmp_path: Path) -> None:
    r = spec.image
    lo = make_image(tmp_path / "lo.png", (r.min_side, r.min_side), mode="L")
    hi = tmp_path / "hi.png"  # header only: Pillow reads no further, and 8000x8000 is slow to encode
    hi.write_bytes(_png_header(r.max_side, r.min_side if r.max_aspect is None else r.max_side))
    for path in (lo, hi):
        m = inspect_image(path, r, "image", spec.name)
        assert (m.kind, m.mime, m.path) == ("image", "image/png", path)
        assert m.size_bytes == path.stat().st_size and m.seconds is None
    assert (inspect_image(lo, r, "image").width, inspect_image(lo, r, "image").height) == (r.min_side,) * 2


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
@pytest.mark.parametrize("which", ["width", "height"])
def test_image_side_too_small(spec: ModelSpec, which: str, tmp_path: Path) -> None:
    r = spec.image
    size = (r.min_side - 1, r.min_side) if which == "width" else (r.min_side, r.min_side - 1)
    path = make_image(tmp_path / "small.png", size, mode="L")
    msg = rejects(inspect_image, path, r, "image", spec.name, field="image")
    assert msg == (
        f"image {path} is {size[0]}x{size[1]} px; {spec.name} needs each side between "
        f"{r.min_side} and {r.max_side} px — resize it or pick another image"
    )


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_image_side_too_large(spec: ModelSpec, tmp_path: Path) -> None:
    r = spec.image
    path = tmp_path / "big.png"
    path.write_bytes(_png_header(r.max_side + 1, max(r.min_side, (r.max_side + 1) // 8 + 1)))
    rejects(inspect_image, path, r, "last_frame", spec.name, field="last_frame", match=f"last frame {path} is")


def test_image_aspect_limit_wan27(tmp_path: Path) -> None:
    r = W27.image
    assert r.max_aspect == 8.0
    ok = make_image(tmp_path / "ok.png", (1920, 240), mode="L")  # exactly 8:1
    assert inspect_image(ok, r, "image", W27.name).width == 1920
    tall = make_image(tmp_path / "tall.png", (240, 2000), mode="L")  # 8.3:1, sides in range
    msg = rejects(inspect_image, tall, r, "image", W27.name, field="image")
    assert "aspect ratio of 8.3:1; wan2.7-i2v allows at most 8:1 — crop it" in msg


def test_image_no_aspect_limit_wan26(tmp_path: Path) -> None:
    assert W26.image.max_aspect is None
    wide = make_image(tmp_path / "wide.png", (2000, 360), mode="L")
    assert inspect_image(wide, W26.image, "image", W26.name).height == 360


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_image_bytes_limit(spec: ModelSpec, tmp_path: Path) -> None:
    r = spec.image
    exact = pad_to(make_image(tmp_path / "exact.png", (400, 400)), r.max_bytes)
    assert inspect_image(exact, r, "image", spec.name).size_bytes == r.max_bytes
    over = pad_to(make_image(tmp_path / "over.png", (400, 400)), r.max_bytes + MB * 3 // 2)
    msg = rejects(inspect_image, over, r, "image", spec.name, field="image")
    limit = r.max_bytes // MB
    assert f"is {limit + 1.5:.1f} MB; the limit for {spec.name} is {limit} MB — " in msg


def test_image_just_over_the_byte_limit_shows_bytes(tmp_path: Path) -> None:
    r = W26.image
    over = pad_to(make_image(tmp_path / "over.png", (400, 400)), r.max_bytes + 1)
    msg = rejects(inspect_image, over, r, "image", W26.name, field="image")
    assert "is 10,485,761 bytes; the limit for wan2.6-i2v is 10 MB (10,485,760 bytes)" in msg


FORMATS = [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("BMP", "image/bmp"), ("WEBP", "image/webp")]


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
@pytest.mark.parametrize(("fmt", "mime"), FORMATS)
def test_image_formats_by_content(spec: ModelSpec, fmt: str, mime: str, tmp_path: Path) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WEBP")
    # The extension is deliberately wrong: only the content counts.
    path = make_image(tmp_path / "picture.gif", (640, 480), fmt=fmt)
    m = inspect_image(path, spec.image, "image", spec.name)
    assert (m.mime, m.width, m.height) == (mime, 640, 480)


def test_camera_mpo_is_jpeg(tmp_path: Path) -> None:
    # Pillow calls multi-picture JPEGs (some cameras and phones) MPO; they are JPEG files to the API.
    im = Image.new("RGB", (400, 300))
    path = tmp_path / "photo.jpg"
    im.save(path, format="MPO", save_all=True, append_images=[im])
    assert inspect_image(path, W27.image, "image", W27.name).mime == "image/jpeg"


def test_png_named_jpg_is_png(tmp_path: Path) -> None:
    path = make_image(tmp_path / "x.jpg", (400, 400))
    assert inspect_image(path, W27.image, "image", W27.name).mime == "image/png"


@pytest.mark.parametrize("rule", [W27.image, W26.image, None], ids=["wan2.7", "wan2.6", "unknown"])
@pytest.mark.parametrize("content", [b"hello, I am text\n", b'{"json": true}', b"<!doctype html><p>x</p>"])
def test_text_named_png_is_refused(rule, content: bytes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.png"
    path.write_bytes(content)
    msg = rejects(inspect_image, path, rule, "image", "wan2.7-i2v", field="image")
    assert f"image {path} is not an image Pillow can read (JPEG, PNG, BMP or WEBP) — " in msg


@pytest.mark.parametrize("rule", [W27.image, None], ids=["wan2.7", "unknown"])
@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_unsupported_image_format(rule, fmt: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = make_image(tmp_path / "x.png", (400, 400), fmt=fmt)
    msg = rejects(inspect_image, path, rule, "image", "wan2.7-i2v", field="image")
    assert f"is a {fmt} image; wan2.7-i2v takes JPEG, PNG, BMP or WEBP — convert it to PNG" in msg


def test_unknown_model_image_has_no_limits(tmp_path: Path) -> None:
    tiny = make_image(tmp_path / "tiny.png", (10, 10))
    huge = pad_to(make_image(tmp_path / "huge.png", (9000, 20), mode="L"), 30 * MB)
    assert inspect_image(tiny, None, "image").width == 10
    m = inspect_image(huge, None, "image")
    assert (m.width, m.height, m.size_bytes) == (9000, 20, 30 * MB)


def test_message_without_model_name(tmp_path: Path) -> None:
    path = make_image(tmp_path / "small.png", (100, 100))
    rejects(inspect_image, path, W27.image, "image", field="image", match="this model needs each side")


def test_decompression_bomb_is_a_field_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(60000, 60000))
    rejects(inspect_image, path, None, "image", field="image", match="too many pixels")


def test_header_only_png_is_measured_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "header.png"
    path.write_bytes(_png_header(1280, 720))
    m = inspect_image(path, W27.image, "image", W27.name)
    assert (m.width, m.height) == (1280, 720)


def test_demo_image_passes_both_models() -> None:
    path = ROOT / "examples" / "cat.png"
    assert path.stat().st_size < 100 * 1024
    for spec in SPECS:
        m = inspect_image(path, spec.image, "image", spec.name)
        assert (m.mime, m.width, m.height) == ("image/png", 832, 480)


# --------------------------------------------------------------------------------------------------
# Audio: WAV


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_wav_duration_limits(spec: ModelSpec, tmp_path: Path) -> None:
    r = spec.audio
    for seconds in (r.min_seconds, r.max_seconds):
        m = inspect_audio(make_wav(tmp_path / f"{seconds}.wav", seconds), r, "audio", spec.name)
        assert (m.kind, m.mime) == ("audio", "audio/wav")
        assert m.seconds == pytest.approx(seconds)
    short = make_wav(tmp_path / "short.wav", r.min_seconds - 0.5)
    msg = rejects(inspect_audio, short, r, "audio", spec.name, field="audio")
    assert msg == (
        f"audio {short} is {r.min_seconds - 0.5:.1f} s long; {spec.name} needs "
        f"{r.min_seconds} to {r.max_seconds} s — use a longer clip"
    )
    long = make_wav(tmp_path / "long.wav", r.max_seconds + 1)
    rejects(inspect_audio, long, r, "audio", spec.name, field="audio", match="31.0 s long")
    rejects(inspect_audio, long, r, "audio", spec.name, field="audio", match="— trim it")


def test_duration_rounding_never_looks_in_range(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "a.wav", 1.99)
    msg = rejects(inspect_audio, path, W27.audio, "audio", W27.name, field="audio")
    assert "is 1.990 s long; wan2.7-i2v needs 2 to 30 s" in msg


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_audio_bytes_limit(spec: ModelSpec, tmp_path: Path) -> None:
    r = spec.audio
    path = make_wav(tmp_path / "big.wav", 5)
    pad_to(path, r.max_bytes + 2 * MB)  # size is checked before the duration
    msg = rejects(inspect_audio, path, r, "audio", spec.name, field="audio")
    assert f"is 17.0 MB; the limit for {spec.name} is 15 MB — " in msg


@pytest.mark.parametrize(("rate", "channels", "width"), [(8000, 1, 1), (44100, 2, 2), (48000, 2, 3)])
def test_wav_formats(rate: int, channels: int, width: int, tmp_path: Path) -> None:
    path = make_wav(tmp_path / "a.wav", 2.5, rate, channels, width)
    assert inspect_audio(path, W27.audio, "audio", W27.name).seconds == pytest.approx(2.5)


def _riff(*chunks: tuple[bytes, bytes], form: bytes = b"RIFF", size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(
        cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1) for cid, data in chunks
    )
    return form + struct.pack("<I", len(body) if size is None else size) + body


def _fmt(tag: int, channels: int, rate: int, byte_rate: int, align: int, bits: int) -> tuple[bytes, bytes]:
    return b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits)


def test_wav_non_pcm_uses_the_byte_rate(tmp_path: Path) -> None:
    # 8 kHz A-law (tag 6), 8000 bytes per second; a fact chunk and an odd-sized LIST chunk before data.
    path = tmp_path / "alaw.wav"
    path.write_bytes(
        _riff(
            _fmt(6, 1, 8000, 8000, 1, 8),
            (b"fact", struct.pack("<I", 24000)),
            (b"LIST", b"odd"),
            (b"data", b"\xd5" * 24000),
        )
    )
    assert inspect_audio(path, W26.audio, "audio", W26.name).seconds == pytest.approx(3.0)


def test_wav_streamed_with_unset_sizes(tmp_path: Path) -> None:
    # Tools writing to a pipe leave 0xFFFFFFFF in the size fields: use what is in the file.
    fmt = _fmt(1, 1, 8000, 16000, 2, 16)
    raw = b"RIFF" + b"\xff" * 4 + b"WAVE" + fmt[0] + struct.pack("<I", 16) + fmt[1] + b"data" + b"\xff" * 4
    path = tmp_path / "stream.wav"
    path.write_bytes(raw + b"\0" * 16000 * 4)
    assert inspect_audio(path, W27.audio, "audio", W27.name).seconds == pytest.approx(4.0)


def test_wav_rf64(tmp_path: Path) -> None:
    ds64 = (b"ds64", struct.pack("<QQQI", 0, 16000 * 3, 8000 * 3, 0))
    # The data chunk is followed by another chunk, so "the rest of the file" would be wrong.
    data = b"data" + b"\xff" * 4 + b"\0" * 16000 * 3 + b"LIST" + struct.pack("<I", 16000) + b"\0" * 16000
    head = _riff(ds64, _fmt(1, 1, 8000, 16000, 2, 16), form=b"RF64", size=0xFFFFFFFF)
    path = tmp_path / "big.wav"
    path.write_bytes(head + data)
    m = inspect_audio(path, W27.audio, "audio", W27.name)
    assert (m.mime, m.seconds) == ("audio/wav", pytest.approx(3.0))


@pytest.mark.parametrize(
    "raw",
    [
        _riff((b"data", b"\0" * 100)),  # no fmt
        _riff(_fmt(1, 1, 8000, 16000, 2, 16)),  # no data
        _riff(_fmt(1, 1, 8000, 0, 2, 16), (b"data", b"\0" * 100)),  # 0 bytes per second
    ],
    ids=["no-fmt", "no-data", "zero-rate"],
)
def test_broken_wav(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(raw)
    for rule in (W27.audio, None):
        rejects(inspect_audio, path, rule, "audio", field="audio", match="is not a valid WAV file")


# --------------------------------------------------------------------------------------------------
# Audio: MP3


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
@pytest.mark.parametrize("name", ["tone-3s.mp3", "tone-3s-raw.mp3"])
def test_mp3_fixture_passes(spec: ModelSpec, name: str) -> None:
    # tone-3s.mp3: ID3v2 tag + Info header (frame count); tone-3s-raw.mp3: bare CBR frames (walked).
    m = inspect_audio(DATA / name, spec.audio, "audio", spec.name)
    assert (m.kind, m.mime) == ("audio", "audio/mpeg")
    assert m.seconds == pytest.approx(117 * 576 / 22050)  # what ffprobe reports: 3.056 s


@pytest.mark.parametrize("spec", SPECS, ids=by_name)
def test_mp3_too_short(spec: ModelSpec) -> None:
    path = DATA / "tone-1s.mp3"
    msg = rejects(inspect_audio, path, spec.audio, "audio", spec.name, field="audio")
    assert f"audio {path} is 1.1 s long; {spec.name} needs {spec.audio.min_seconds} to 30 s — use a longer clip" in msg


def test_mp3_is_sniffed_not_named(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    path.write_bytes((DATA / "tone-3s.mp3").read_bytes())
    assert inspect_audio(path, W27.audio, "audio", W27.name).mime == "audio/mpeg"
    wav = make_wav(tmp_path / "voice.mp3", 3)
    assert inspect_audio(wav, W27.audio, "audio", W27.name).mime == "audio/wav"


_LAYER3 = {  # version bits -> (kbps table row for index 9, sample rate for index 0, samples per frame)
    "mpeg1": (0b11, 128, 44100, 1152),
    "mpeg2": (0b10, 80, 22050, 576),
    "mpeg25": (0b00, 80, 11025, 576),
}


def _mp3_frames(version: str, count: int, mono: bool = False, xing_frames: int | None = None) -> bytes:
    """``count`` silent-looking Layer III frames (bitrate index 9, no padding), optionally with a Xing
    header frame in front, as a LAME VBR file has."""
    bits, kbps, rate, spf = _LAYER3[version]
    header = bytes([0xFF, 0xE0 | bits << 3 | 0b010 | 1, 9 << 4, (3 if mono else 0) << 6])
    length = (144_000 if spf == 1152 else 72_000) * kbps // rate
    frame = header + b"\0" * (length - 4)
    out = b""
    if xing_frames is not None:
        side = (17 if mono else 32) if spf == 1152 else (9 if mono else 17)
        info = b"Xing" + struct.pack(">II", 1, xing_frames)
        out = header + b"\0" * side + info + b"\0" * (length - 4 - side - len(info))
    return out + frame * count


def _id3v2(payload_size: int, footer: bool = False) -> bytes:
    size = bytes((payload_size >> s) & 0x7F for s in (21, 14, 7, 0))
    return (
        b"ID3\x04\x00"
        + bytes([0x10 if footer else 0])
        + size
        + b"\0" * payload_size
        + (b"3DI" + b"\0" * 7 if footer else b"")
    )


@pytest.mark.parametrize("version", list(_LAYER3))
@pytest.mark.parametrize("mono", [False, True])
def test_mp3_frame_walk(version: str, mono: bool, tmp_path: Path) -> None:
    _, _, rate, spf = _LAYER3[version]
    count = round(5 * rate / spf)
    path = tmp_path / "walk.mp3"
    path.write_bytes(_mp3_frames(version, count, mono))
    assert inspect_audio(path, W27.audio, "audio", W27.name).seconds == pytest.approx(count * spf / rate)


@pytest.mark.parametrize("version", list(_LAYER3))
def test_mp3_xing_frame_count_is_trusted(version: str, tmp_path: Path) -> None:
    _, _, rate, spf = _LAYER3[version]
    path = tmp_path / "vbr.mp3"
    # The Xing header claims 10 s while only a few frames follow: proof the header is used, not a walk.
    frames = round(10 * rate / spf)
    path.write_bytes(_mp3_frames(version, 3, xing_frames=frames))
    assert inspect_audio(path, W27.audio, "audio", W27.name).seconds == pytest.approx(frames * spf / rate)


def test_mp3_tags_padding_and_trailer(tmp_path: Path) -> None:
    count = round(4 * 44100 / 1152)
    raw = _id3v2(300, footer=True) + _id3v2(50) + b"\0" * 700 + _mp3_frames("mpeg1", count) + b"TAG" + b"x" * 125
    path = tmp_path / "tagged.mp3"
    path.write_bytes(raw)
    assert inspect_audio(path, W26.audio, "audio", W26.name).seconds == pytest.approx(count * 1152 / 44100)


def test_mp3_walk_resyncs_after_junk(tmp_path: Path) -> None:
    frames = _mp3_frames("mpeg2", 100)
    path = tmp_path / "junk.mp3"
    path.write_bytes(frames + b"APETAGEX junk \xff\x00 more junk" + frames)
    assert inspect_audio(path, W27.audio, "audio", W27.name).seconds == pytest.approx(200 * 576 / 22050)


@pytest.mark.parametrize(
    "raw",
    [
        _id3v2(100) + b"this is not audio at all " * 10,
        _id3v2(100) + b"fLaC" + b"\0" * 500,  # FLAC with an ID3 tag
        b"\xff\xfb\x90\x00" + b"\x01" * 30,  # one plausible header, then nothing that follows it
    ],
    ids=["id3-then-text", "id3-then-flac", "lone-sync"],
)
def test_mp3_without_frames(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "x.mp3"
    path.write_bytes(raw)
    rejects(inspect_audio, path, None, "audio", field="audio", match="is not a valid MP3 file")


@pytest.mark.parametrize("rule", [W27.audio, W26.audio, None], ids=["wan2.7", "wan2.6", "unknown"])
@pytest.mark.parametrize(
    "content", [b"just text\n", b'{"error": "nope"}', b"<html><body>x</body></html>", b"fLaC\0\0\0\x22"]
)
def test_not_audio(rule, content: bytes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "voice.mp3"
    path.write_bytes(content)
    msg = rejects(inspect_audio, path, rule, "audio", "m", field="audio")
    assert f"audio {path} is not a WAV or MP3 file — convert it: ffmpeg -i {path} converted.mp3" in msg


def test_unknown_model_audio_has_no_limits(tmp_path: Path) -> None:
    m = inspect_audio(DATA / "tone-1s.mp3", None, "audio")
    assert m.seconds == pytest.approx(1.07, abs=0.01)
    assert inspect_audio(make_wav(tmp_path / "long.wav", 60), None, "audio").seconds == pytest.approx(60)


# --------------------------------------------------------------------------------------------------
# Video


def box(kind: bytes, payload: bytes = b"", large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mvhd(timescale: int, units: int, version: int = 0) -> bytes:
    if version == 1:
        body = struct.pack(">B3xQQIQ", 1, 0, 0, timescale, units)
    else:
        body = struct.pack(">B3xIIII", 0, 0, 0, timescale, units)
    return box(b"mvhd", body + b"\0" * 80)


def trak(width: float, height: float, handler: bytes = b"vide", version: int = 0) -> bytes:
    ids = struct.pack(">QQII Q", 0, 0, 1, 0, 0) if version == 1 else struct.pack(">IIIII", 0, 0, 1, 0, 0)
    tkhd = bytes([version, 0, 0, 3]) + ids + b"\0" * 8 + b"\0" * 8 + b"\0" * 36
    tkhd += struct.pack(">II", round(width * 65536), round(height * 65536))
    hdlr = box(b"hdlr", b"\0" * 8 + handler + b"\0" * 12 + b"name\0")
    return box(b"trak", box(b"tkhd", tkhd) + box(b"mdia", box(b"mdhd", b"\0" * 24) + hdlr))


def mp4(
    *,
    brand: bytes = b"isom",
    seconds: float = 3,
    size: tuple[float, float] = (640, 360),
    version: int = 0,
    moov_first: bool = False,
    large_mdat: bool = False,
    mdat: bytes = b"\0" * 1000,
    tracks: bytes | None = None,
) -> bytes:
    ftyp = box(b"ftyp", brand + b"\0\0\0\0" + brand + b"mp41")
    if tracks is None:
        tracks = trak(0, 0, b"soun", version) + trak(*size, version=version)
    moov = box(b"moov", mvhd(600, round(seconds * 600), version) + tracks)
    media_data = box(b"free") + box(b"mdat", mdat, large=large_mdat)
    return ftyp + (moov + media_data if moov_first else media_data + moov)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_mov_fixture() -> None:
    path = DATA / "clip-3s.mov"
    with path.open("rb") as f:
        assert mp4_info(f) == Mp4Info("qt  ", 3.0, 320, 240)
    m = inspect_video(path, W27.video, "first_clip", W27.name)
    assert (m.kind, m.mime, m.width, m.height, m.seconds) == ("video", "video/quicktime", 320, 240, 3.0)
    assert m.size_bytes == path.stat().st_size


def test_mp4_fixture_with_audio_track_first() -> None:
    # Faststart (moov before mdat); the audio track comes first and has no picture size. Named .m4v
    # because .gitignore ignores *.mp4 (downloaded results) outside wanvid/assets.
    path = DATA / "clip-2s.m4v"
    with path.open("rb") as f:
        assert mp4_info(f) == Mp4Info("isom", 2.0, 256, 240)
    m = inspect_video(path, W27.video, "first_clip", W27.name)
    assert (m.mime, m.seconds) == ("video/mp4", 2.0)


def test_fragmented_mp4_without_duration() -> None:
    path = DATA / "clip-2s-fragmented.m4v"
    with path.open("rb") as f:
        info = mp4_info(f)
    assert (info.duration, info.width, info.height) == (None, 256, 240)
    rejects(inspect_video, path, W27.video, "first_clip", W27.name, field="first_clip", match="no duration")
    assert inspect_video(path, None, "first_clip").seconds is None  # unknown model: checked server-side


def test_sample_asset() -> None:
    path = ROOT / "wanvid" / "assets" / "sample.mp4"
    if not path.exists():
        pytest.skip("wanvid/assets/sample.mp4 not created yet")
    with path.open("rb") as f:
        info = mp4_info(f)
    assert info.duration and info.duration > 0
    assert info.width and info.height
    assert inspect_video(path, None, "first_clip").mime in ("video/mp4", "video/quicktime")


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("moov_first", [False, True])
@pytest.mark.parametrize("large_mdat", [False, True])
def test_mp4_box_variants(version: int, moov_first: bool, large_mdat: bool) -> None:
    data = mp4(seconds=4.5, size=(1280, 720), version=version, moov_first=moov_first, large_mdat=large_mdat)
    assert mp4_info(io.BytesIO(data)) == Mp4Info("isom", 4.5, 1280, 720)


@pytest.mark.parametrize("version", [0, 1])
def test_fragmented_mp4_duration_from_mehd(version: int) -> None:
    mehd = box(b"mehd", bytes([version, 0, 0, 0]) + struct.pack(">Q" if version else ">I", 600 * 6))
    moov = box(b"moov", mvhd(600, 0) + trak(640, 360) + box(b"mvex", mehd))
    data = box(b"ftyp", b"iso6\0\0\0\0") + moov + box(b"moof") + box(b"mdat", b"\0" * 10)
    assert mp4_info(io.BytesIO(data)) == Mp4Info("iso6", 6.0, 640, 360)


def test_aspect_just_over_the_limit_shows_more_digits(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    path.write_bytes(_png_header(1930, 240))  # 8.04:1
    rejects(inspect_image, path, W27.image, "image", W27.name, field="image", match="aspect ratio of 8.042:1")


def test_mp4_size_zero_box_runs_to_the_end() -> None:
    data = mp4(moov_first=True) + struct.pack(">I4s", 0, b"mdat") + b"\0" * 5000
    assert mp4_info(io.BytesIO(data)).duration == 3


def test_mp4_fixed_point_sizes_and_text_tracks() -> None:
    # A sized text track before the video track is skipped; 853.33 px rounds to 853.
    tracks = trak(0, 0, b"soun") + trak(400, 60, b"text") + trak(853.33, 480.0)
    assert mp4_info(io.BytesIO(mp4(tracks=tracks))).width == 853
    only_text = trak(400, 60, b"text")  # no video handler anywhere: the first sized track
    assert mp4_info(io.BytesIO(mp4(tracks=only_text))).width == 400


def test_mp4_mdat_is_seeked_over_not_read(tmp_path: Path) -> None:
    # A 200 MB sparse mdat: reading it would be slow and show up in the read count.
    path = tmp_path / "big.mp4"
    head = box(b"ftyp", b"isom\0\0\0\0isom")
    mdat_size = 200 * MB
    path.write_bytes(head + struct.pack(">I4sQ", 1, b"mdat", mdat_size))
    with path.open("r+b") as f:
        f.seek(len(head) + mdat_size)
        f.write(box(b"moov", mvhd(1000, 7000) + trak(640, 480)))
    reads: list[int] = []

    class Counting(io.FileIO):
        def read(self, n: int = -1) -> bytes:  # type: ignore[override]
            data = super().read(n)
            reads.append(len(data))
            return data

    with Counting(str(path)) as f:
        assert mp4_info(f) == Mp4Info("isom", 7.0, 640, 480)  # type: ignore[arg-type]
    assert sum(reads) < 10_000


@pytest.mark.parametrize(
    "content",
    [
        b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head></html>",
        b'{"error": {"message": "Task is not completed yet", "code": "InvalidParameter"}}',
        b"",
        b"\0\0\0\x08free",
        b"\0\0\0\x08ftyp",  # an ftyp too small to hold a brand
        b"\0\0\0\x18ftypisom",  # an ftyp box longer than the file
        b"\x1aE\xdf\xa3" + b"\0" * 60,  # Matroska / WebM
    ],
    ids=["html", "json", "empty", "free-first", "tiny-ftyp", "cut-ftyp", "webm"],
)
def test_mp4_info_rejects_other_bytes(content: bytes, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an ISO-BMFF/MP4 file"):
        mp4_info(io.BytesIO(content))
    if content:
        path = write(tmp_path, "video.mp4", content)
        for rule in (W27.video, None):
            msg = rejects(inspect_video, path, rule, "first_clip", W27.name, field="first_clip")
            assert f"first clip {path} is not an MP4 or MOV video — convert it" in msg


def test_mp4_corrupt_boxes(tmp_path: Path) -> None:
    ftyp = box(b"ftyp", b"isom\0\0\0\0")
    bad_top = ftyp + struct.pack(">I4s", 4, b"mdat")  # smaller than its own header
    with pytest.raises(ValueError, match="bad box header at byte 16"):
        mp4_info(io.BytesIO(bad_top))
    cut_moov = ftyp + box(b"moov", mvhd(600, 1800) + trak(640, 360))[:-20]
    with pytest.raises(ValueError, match="truncated MP4"):
        mp4_info(io.BytesIO(cut_moov))
    bad_child = ftyp + box(b"moov", struct.pack(">I4s", 9999, b"trak") + b"\0" * 50)
    with pytest.raises(ValueError, match="corrupt MP4: bad trak box inside moov"):
        mp4_info(io.BytesIO(bad_child))
    path = write(tmp_path, "clip.mp4", bad_child)
    rejects(inspect_video, path, W27.video, "first_clip", field="first_clip", match="can't be read (corrupt MP4")


@pytest.mark.parametrize("brand", [b"isom", b"mp42", b"M4V ", b"avc1"])
def test_non_quicktime_brands_are_mp4(brand: bytes, tmp_path: Path) -> None:
    path = write(tmp_path, "clip.mov", mp4(brand=brand))
    assert inspect_video(path, W27.video, "first_clip", W27.name).mime == "video/mp4"


def test_quicktime_named_mp4(tmp_path: Path) -> None:
    path = write(tmp_path, "clip.mp4", mp4(brand=b"qt  "))
    assert inspect_video(path, W27.video, "first_clip", W27.name).mime == "video/quicktime"


def test_video_rules_wan27(tmp_path: Path) -> None:
    r = W27.video
    assert r is not None
    for seconds, size in [(2, (240, 240)), (10, (4096, 2160)), (5, (240, 4096))]:
        path = write(tmp_path, "ok.mp4", mp4(seconds=seconds, size=size))
        m = inspect_video(path, r, "first_clip", W27.name)
        assert (m.seconds, (m.width, m.height)) == (seconds, size)
    cases = [
        (dict(seconds=1.5), "is 1.5 s long; wan2.7-i2v needs 2 to 10 s — use a longer clip"),
        (dict(seconds=12), "is 12.0 s long; wan2.7-i2v needs 2 to 10 s — trim it"),
        (
            dict(size=(320, 200)),
            "is 320x200 px; wan2.7-i2v needs each side between 240 and 4096 px — rescale it",
        ),
        (dict(size=(4097, 2160)), "is 4097x2160 px; wan2.7-i2v needs each side between 240 and 4096 px"),
    ]
    for kwargs, expected in cases:
        path = write(tmp_path, "bad.mp4", mp4(**kwargs))  # type: ignore[arg-type]
        msg = rejects(inspect_video, path, r, "first_clip", W27.name, field="first_clip")
        assert msg.startswith(f"first clip {path} ") and expected in msg, msg


def test_video_bytes_limit(tmp_path: Path) -> None:
    r = W27.video
    assert r is not None
    path = write(tmp_path, "big.mp4", mp4(moov_first=True) + struct.pack(">I4s", 0, b"mdat"))
    pad_to(path, r.max_bytes)
    assert inspect_video(path, r, "first_clip", W27.name).size_bytes == r.max_bytes
    pad_to(path, r.max_bytes + 5 * MB)
    msg = rejects(inspect_video, path, r, "first_clip", W27.name, field="first_clip")
    assert "is 105.0 MB; the limit for wan2.7-i2v is 100 MB — trim it or re-encode it" in msg


@pytest.mark.parametrize(
    "data",
    [
        box(b"ftyp", b"isom\0\0\0\0") + box(b"mdat", b"\0" * 100),  # moov never written (cut download)
        mp4(tracks=trak(0, 0, b"soun")),  # audio only (an .m4a)
    ],
    ids=["no-moov", "audio-only"],
)
def test_video_without_picture(data: bytes, tmp_path: Path) -> None:
    path = write(tmp_path, "clip.mp4", data)
    for rule in (W27.video, None):
        rejects(inspect_video, path, rule, "first_clip", field="first_clip", match="has no video track")


def test_unknown_model_video_has_no_limits(tmp_path: Path) -> None:
    path = write(tmp_path, "long.mp4", mp4(seconds=120, size=(8000, 100)))
    m = inspect_video(path, None, "first_clip")
    assert (m.seconds, m.width, m.height) == (120, 8000, 100)


# --------------------------------------------------------------------------------------------------
# LocalMedia


def test_sha256_is_of_the_bytes_and_a_change_is_noticed(tmp_path: Path) -> None:
    for m in (
        inspect_image(make_image(tmp_path / "a.webp", (400, 300), fmt="JPEG"), W27.image, "image"),
        inspect_audio(DATA / "tone-3s.mp3", W27.audio, "audio"),
        inspect_video(DATA / "clip-3s.mov", W27.video, "first_clip"),
    ):
        assert m.sha256 == hashlib.sha256(m.path.read_bytes()).hexdigest()
        assert not m.changed()
    path = make_image(tmp_path / "b.png", (400, 400))
    m = inspect_image(path, None, "image")
    path.write_bytes(b"changed")
    assert m.changed()


def test_local_media_is_frozen(tmp_path: Path) -> None:
    m = LocalMedia(tmp_path, "image", "image/png", 1)
    with pytest.raises(AttributeError):
        m.size_bytes = 2  # type: ignore[misc]


def test_accepts_a_str_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the autouse ``isolated`` fixture does it too
    make_image(tmp_path / "a.png", (400, 400))
    assert inspect_image("a.png", W27.image, "image").path == Path("a.png")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Import cost


def test_import_does_not_load_pillow() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import wanvid.rules.media, sys; assert 'PIL' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


def test_committed_fixtures_are_small() -> None:
    for path in DATA.iterdir():
        assert path.stat().st_size < 60 * 1024, path
