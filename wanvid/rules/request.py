"""What the user asked for, checked against the model and protocol before any money is spent.

``VideoRequest`` is protocol-agnostic: the CLI fills it from flags, ``validate`` checks it and resolves
local files (read, typed by content, size-checked) into ``Media``; ``wanvid.gateway.protocols`` turns the result
into a request body. Every problem is a ``FieldError`` naming the canonical field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanvid import config
from wanvid.errors import FieldError, UsageError
from wanvid.rules.models import (
    SIZES,
    ModelSpec,
    canonical_model,
    check_media_types,
    check_params,
    nearest_size,
    spec_for,
)

if TYPE_CHECKING:
    from wanvid.rules.media import LocalMedia

PROTOCOLS = ("native", "unified")

# Fields only one protocol can carry. A flag the chosen protocol cannot carry is an error: silently
# dropping it would bill the user for a video they did not ask for. (``resolution`` is on both: on the
# unified protocol it picks the size sent, see ``_unified_defaults``.)
NATIVE_ONLY = (
    "negative_prompt",
    "prompt_extend",
    "watermark",
    "shot_type",
    "last_frame",
    "audio",
    "first_clip",
)
UNIFIED_ONLY = ("size", "generate_audio")


@dataclass
class VideoRequest:
    model: str
    image: str | None = None  # local path or http(s)/data URL, as typed
    prompt: str | None = None
    negative_prompt: str | None = None
    resolution: str | None = None
    duration: int | None = None
    seed: int | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None
    shot_type: str | None = None
    last_frame: str | None = None
    audio: str | None = None
    first_clip: str | None = None
    size: str | None = None
    generate_audio: bool | None = None


@dataclass
class Media:
    """One media input: a URL passed through, or a checked local file sent inline."""

    field: str
    ref: str
    local: LocalMedia | None = None
    shape: tuple[int, int] | None = None  # an image's width and height when known (a file or a data: URI)

    def record(self) -> dict[str, Any] | str:
        """How the journal keeps it: a local file as path, hash and size (never its bytes), a URL as is."""
        if self.local:
            return {"path": str(self.local.path.resolve()), "sha256": self.local.sha256, "bytes": self.local.size_bytes}
        if self.ref[:5].lower() == "data:":
            return {"data_uri_sha256": _sha256(self.ref.encode()), "chars": len(self.ref)}
        return self.ref


@dataclass
class Validated:
    request: VideoRequest
    protocol: str
    spec: ModelSpec | None  # None: a model this version does not know; the server checks it
    media: dict[str, Media] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what wanvid chose for the user: shown as info, not warned

    def record(self) -> dict[str, Any]:
        """The request as the journal and the metadata sidecar keep it (inline data replaced by hashes)."""
        doc: dict[str, Any] = {k: v for k, v in asdict(self.request).items() if v is not None}
        doc.update({name: m.record() for name, m in self.media.items()})
        doc["protocol"] = self.protocol
        return doc

    def fingerprint(self, base_url: str) -> str:
        """Identical for the same gateway, model, parameters, prompt and input bytes (not paths)."""
        # The same document as record() gives, with each local file as its hash, built without record()'s
        # deep copy and path resolution (a batch fingerprints every row).
        doc: dict[str, Any] = {k: v for k, v in vars(self.request).items() if v is not None}
        doc.update({name: m.local.sha256 if m.local else m.record() for name, m in self.media.items()})
        doc["protocol"] = self.protocol
        doc["base_url"] = base_url.rstrip("/")
        return _sha256(json.dumps(doc, sort_keys=True).encode())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate(req: VideoRequest, protocol: str, *, allow_empty_prompt: bool = False) -> Validated:
    """Check everything that can be checked locally; raise FieldError/UsageError on the first problem.

    A prompt or negative prompt given but empty (or only whitespace) is refused unless
    ``allow_empty_prompt``: it is almost always an unset shell variable or an empty file, and the task is
    paid for all the same. A prompt not given at all (None) is the user's choice, said in a note."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol {protocol!r} is not 'native' or 'unified'")
    model, renamed = canonical_model(req.model)  # a typo of a known model is refused here
    if model != req.model:
        req = replace(req, model=model)
    spec = spec_for(req.model)
    out = Validated(req, protocol, spec)
    if renamed:
        out.notes.append(renamed)
    if req.prompt is None and protocol == "native":
        out.notes.append("no prompt given: the model animates the image as it sees fit (-p says what should happen)")
    if spec is None:
        out.warnings.append(
            f"model {req.model!r} is not one wanvid knows (wan2.7-i2v, wan2.6-i2v); "
            "sending it unchecked, the gateway will judge it"
        )
    _check_protocol_fields(req, protocol)
    if spec is not None:
        check_params(
            spec,
            prompt=req.prompt,
            negative_prompt=req.negative_prompt,
            resolution=req.resolution,
            duration=req.duration,
            seed=req.seed,
            shot_type=req.shot_type,
        )
    _check_media_shape(req, protocol, spec)  # on unified, a blank prompt is refused here, whatever the flag
    if not allow_empty_prompt:
        _check_not_empty(req)
    if req.size is not None:
        req = out.request = replace(req, size=_normal_size(req.size, spec))
    for name, kind in (("image", "image"), ("last_frame", "image"), ("audio", "audio"), ("first_clip", "video")):
        ref = getattr(req, name)
        if ref is not None:
            out.media[name] = _resolve(name, kind, ref, spec, req.model)
    if protocol == "unified":
        out.request, note = _unified_defaults(req, spec, out.media["image"].shape)
        if note:
            out.notes.append(note)
    return out


def _check_not_empty(req: VideoRequest) -> None:
    for name in ("prompt", "negative_prompt"):
        text = getattr(req, name)
        if text is not None and not text.strip():
            what = "empty" if not text else "only whitespace"
            raise FieldError(
                name,
                f"the {name.replace('_', ' ')} is {what}",
                hint=f"give the text, leave the {name.replace('_', ' ')} out, or pass --allow-empty-prompt "
                "to send it as it is",
            )


PROMPT_FILE_MAX = 1024 * 1024  # bytes: a prompt is a few thousand characters; more is the wrong file


def read_prompt_file(ref: str, field: str, base: Path | None = None) -> str:
    """The prompt a file holds, as it is sent: UTF-8 text with one trailing newline removed (inner newlines
    kept). ``-`` reads standard input. A relative path is taken from ``base`` when given (a manifest's
    directory). Every problem is a FieldError on ``field`` (``prompt_file`` or ``negative_prompt_file``)."""
    if ref == "-":
        import sys

        try:
            data = sys.stdin.buffer.read(PROMPT_FILE_MAX + 1)
        except (OSError, ValueError, AttributeError) as exc:  # stdin closed, or not a byte stream
            raise FieldError(field, f"cannot read standard input: {exc}") from None
        where = "standard input"
    else:
        try:
            path = config.expand(ref, "file")
        except UsageError as exc:
            raise FieldError(field, exc.message, exc.hint) from None
        if base is not None and not path.is_absolute():
            path = base / path
        where = str(path)
        data = _read_small(path, field)
    if len(data) > PROMPT_FILE_MAX:
        raise FieldError(field, f"{where} is over {PROMPT_FILE_MAX:,} bytes; a prompt is a few thousand characters")
    data = data.removeprefix(b"\xef\xbb\xbf")  # the byte-order mark Notepad starts UTF-8 files with
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FieldError(
            field,
            f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="save it as UTF-8",
        ) from None
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _read_small(path: Path, field: str) -> bytes:
    """At most PROMPT_FILE_MAX + 1 bytes of ``path``: a file, or a pipe (``--prompt-file <(cmd)``)."""
    try:
        with open(path, "rb") as f:
            return f.read(PROMPT_FILE_MAX + 1)
    except FileNotFoundError:
        raise FieldError(field, f"{path} does not exist") from None
    except IsADirectoryError:
        raise FieldError(field, f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise FieldError(field, f"cannot read {path}: {exc.strerror}") from None


def _check_protocol_fields(req: VideoRequest, protocol: str) -> None:
    other, fields = ("unified", UNIFIED_ONLY) if protocol == "native" else ("native", NATIVE_ONLY)
    for name in fields:
        if getattr(req, name) is not None:
            raise FieldError(
                name, f"the {protocol} protocol cannot carry this; use --protocol {other} or leave the flag out"
            )


def _check_media_shape(req: VideoRequest, protocol: str, spec: ModelSpec | None) -> None:
    if req.image is None and req.first_clip is None:
        raise FieldError(
            "image",
            "no input: give IMAGE (a file or an http(s)/data URL)"
            + (" or --first-clip" if protocol == "native" else ""),
        )
    if spec is not None and not spec.native_media:
        # wan2.6-i2v: input.img_url (+ audio_url) only.
        for name in ("last_frame", "first_clip"):
            if getattr(req, name) is not None:
                raise FieldError(
                    name, f"{spec.name} takes no {name.replace('_', ' ')}; use --model wan2.7-i2v or leave the flag out"
                )
        if req.image is None:
            raise FieldError("image", f"{spec.name} needs IMAGE (its first frame)")
        return
    if protocol == "native":
        check_media_types(media_types(req))
    elif req.image is None:
        raise FieldError("image", "the unified protocol needs IMAGE as the first frame")
    if protocol == "unified" and not (req.prompt or "").strip():
        # ope.ai's Create Video page marks prompt required and new-api answers 400 "prompt is required"
        # (GATEWAY-VARIANTS.md): refused here, before anything is sent, rather than by the gateway.
        raise FieldError(
            "prompt",
            "the unified protocol requires a prompt (the gateway refuses a create without one)",
            hint="pass -p/--prompt, or use --protocol native, where the prompt is optional",
        )


def media_types(req: VideoRequest) -> list[str]:
    """The wan2.7 ``input.media`` types this request sends, in the order they are sent."""
    pairs = (
        ("image", "first_frame"),
        ("first_clip", "first_clip"),
        ("last_frame", "last_frame"),
        ("audio", "driving_audio"),
    )
    return [t for name, t in pairs if getattr(req, name) is not None]


# --size, in the forms the gateway takes (new-api relay/channel/task/ali/adaptor.go, ope.ai's pages), and
# what wanvid sends for each:
# - WIDTHxHEIGHT (1280x720, any case): sent as 1280x720, the form API.md and ope.ai's Create Video page
#   show; ope.ai rewrites it to W*H for the provider.
# - WIDTH*HEIGHT (1280*720): sent as given. It is the provider's own form, which ope.ai's wan2.6 pages and
#   new-api pass upstream untouched (new-api reads a size without "*" as a resolution), so rewriting it to
#   x could only make it less likely to arrive as typed.
# - a resolution (720P, 1080p): sent upper-case; the gateway sends it as the resolution and the provider
#   keeps the image's aspect ratio. Checked against the model's resolutions when wanvid knows the model.
SIZE_FORMS = "WIDTHxHEIGHT (1280x720), WIDTH*HEIGHT (1280*720) or a resolution (720P, 1080P)"


def _normal_size(size: str, spec: ModelSpec | None) -> str:
    """``size`` as sent (see above), or a FieldError naming the accepted forms."""
    text = size.strip()
    if m := re.fullmatch(r"([1-9][0-9]*)([xX*])([1-9][0-9]*)", text):
        return f"{m[1]}{'*' if m[2] == '*' else 'x'}{m[3]}"
    if re.fullmatch(r"[1-9][0-9]*[pP]", text):
        resolution = text.upper()
        if spec is not None and resolution not in spec.resolutions:
            raise FieldError(
                "size", f"size {size!r} is not a resolution {spec.name} makes: use {' or '.join(spec.resolutions)}"
            )
        return resolution
    raise FieldError("size", f"size {size!r} is not {SIZE_FORMS}")


def _unified_defaults(
    req: VideoRequest, spec: ModelSpec | None, shape: tuple[int, int] | None
) -> tuple[VideoRequest, str | None]:
    """The request with what a unified create must carry filled in, and a line saying what was chosen.

    ope.ai's Create Video page marks ``size`` and ``seconds`` required, so both are always sent (and so are in
    the journal's fingerprint, which is of what is sent: the same command gives the same request again).
    - seconds: the model's default duration (5 for wan2.6/2.7-i2v, and for models wanvid does not know).
    - size: the documented size (``models.SIZES``) at the resolution (``--resolution``, else the model's
      default, 1080P; 1080P for unknown models) whose aspect ratio is nearest the image's: a landscape
      image gives 1920x1080, a portrait one 1080x1920, a square-ish one 1440x1440, a 4:3 one 1632x1248
      (at 720P: 1280x720, 720x1280, 960x960, 1088x832, 832x1088). For an http(s) image, whose shape is
      not known here, landscape 16:9, and the line says so.
    ``--resolution`` only picks the size and is not sent itself, so it is cleared from the request.
    """
    if req.size is not None and req.resolution is not None:
        raise FieldError(
            "resolution", "give --size or --resolution, not both: on the unified protocol the resolution picks the size"
        )
    said = []
    duration, size = req.duration, req.size
    defaults = spec._asdict() if spec else ModelSpec._field_defaults  # an unknown model: wan's usual defaults
    whose = "the model's" if spec else "wan's usual"
    if duration is None:
        duration = defaults["default_duration"]
        said.append(f"seconds {duration} ({whose} default)")
    if size is None:
        resolution = req.resolution or defaults["default_resolution"]
        if resolution not in SIZES:
            raise FieldError("resolution", f"wanvid knows no sizes for resolution {resolution!r}; give --size")
        at = f"at {resolution}" + ("" if req.resolution else f", {whose} default resolution")
        if shape is not None:
            w, h, named = nearest_size(resolution, *shape)
            why = f"{named}, the documented shape nearest the image's {shape[0]}x{shape[1]}, {at}"
        else:
            w, h = SIZES[resolution][0]
            why = f"16:9 landscape {at}; the image is a URL, so its shape is not known here"
        size = f"{w}x{h}"
        said.insert(0, f"size {size} ({why})")
    req = replace(req, size=size, duration=duration, resolution=None)
    if not said:
        return req, None
    return req, "unified create: sending " + " and ".join(said) + "; choose with --size/--duration"


def _resolve(name: str, kind: str, ref: str, spec: ModelSpec | None, model: str) -> Media:
    if ref[:5].lower() == "data:":
        shown = _inspect_data_uri(name, kind, ref, spec, model)  # inline data is checked like a file...
        return Media(name, ref, shape=_shape(shown))  # ...and sent exactly as the user wrote it
    if ref[:8].lower().startswith(("http://", "https://")):
        return Media(name, ref)  # the gateway fetches it; nothing to check here
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", ref):
        raise FieldError(
            name, f"{ref.split(':')[0]}: URLs are not supported; give a local file, or an http(s) or data: URL"
        )
    try:
        path = config.expand(ref, "file")
    except UsageError as exc:  # named by its flag, as every field error is
        raise FieldError(name, exc.message, exc.hint) from None
    local = _inspect(name, kind, path, spec, model)
    return Media(name, ref, local, shape=_shape(local))


def _shape(local: LocalMedia) -> tuple[int, int] | None:
    return (local.width, local.height) if local.kind == "image" and local.width and local.height else None


_INSPECTED: dict[tuple[Any, ...], LocalMedia] = {}  # a file unchanged since it was inspected is not opened again


def _inspect(name: str, kind: str, path: Path, spec: ModelSpec | None, model: str) -> LocalMedia:
    import os

    try:
        st = os.stat(path)
        key: tuple[Any, ...] | None = (name, kind, path, spec, model, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    except (OSError, ValueError):
        key = None
    if key in _INSPECTED:
        return _INSPECTED[key]
    got = _inspect_file(name, kind, path, spec, model)
    if key is not None and len(_INSPECTED) < 1024:
        _INSPECTED[key] = got
    return got


def _inspect_file(name: str, kind: str, path: Path, spec: ModelSpec | None, model: str) -> LocalMedia:
    from . import media  # Pillow and file probing only on this path, never for --help

    if kind == "image":
        return media.inspect_image(path, spec.image if spec else None, name, model)
    if kind == "audio":
        return media.inspect_audio(path, spec.audio if spec else None, name, model)
    if spec is not None and spec.video is None:
        raise FieldError(name, f"{model} takes no video input")
    return media.inspect_video(path, spec.video if spec else None, name, model)


def _inspect_data_uri(name: str, kind: str, ref: str, spec: ModelSpec | None, model: str) -> LocalMedia:
    header, comma, payload = ref.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise FieldError(name, "the data: URI is not base64 (data:<type>;base64,<data>); encode it with base64")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise FieldError(name, "the data: URI's base64 payload does not decode; re-encode the file") from None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="wanvid-") as tmp:
        path = Path(tmp) / "data-uri"
        path.write_bytes(data)
        try:
            return _inspect(name, kind, path, spec, model)
        except FieldError as exc:
            exc.message = exc.message.replace(str(path), "(data: URI)")
            raise
