"""What the user asked for, checked against the model and protocol before any money is spent.

``VideoRequest`` is protocol-agnostic: the CLI fills it from flags, ``validate`` checks it and resolves
local files (read, typed by content, size-checked) into ``Media``; ``wanvid.protocols`` turns the result
into a request body. Every problem is a ``FieldError`` naming the canonical field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FieldError, UsageError
from .models import ModelSpec, check_media_types, check_params, spec_for

if TYPE_CHECKING:
    from .media import LocalMedia

PROTOCOLS = ("native", "unified")

# Fields only one protocol can carry. A flag the chosen protocol cannot carry is an error: silently
# dropping it would bill the user for a video they did not ask for.
NATIVE_ONLY = (
    "negative_prompt",
    "prompt_extend",
    "watermark",
    "shot_type",
    "last_frame",
    "audio",
    "first_clip",
    "resolution",
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

    def record(self) -> dict[str, Any]:
        """The request as the journal and the metadata sidecar keep it (inline data replaced by hashes)."""
        doc: dict[str, Any] = {k: v for k, v in asdict(self.request).items() if v is not None}
        doc.update({name: m.record() for name, m in self.media.items()})
        doc["protocol"] = self.protocol
        return doc

    def fingerprint(self, base_url: str) -> str:
        """Identical for the same gateway, model, parameters, prompt and input bytes (not paths)."""
        doc = self.record()
        for name, value in doc.items():
            if isinstance(value, dict) and "path" in value:
                doc[name] = value["sha256"]
        doc["base_url"] = base_url.rstrip("/")
        return _sha256(json.dumps(doc, sort_keys=True).encode())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate(req: VideoRequest, protocol: str) -> Validated:
    """Check everything that can be checked locally; raise FieldError/UsageError on the first problem."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol {protocol!r} is not 'native' or 'unified'")
    spec = spec_for(req.model)
    out = Validated(req, protocol, spec)
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
    _check_media_shape(req, protocol, spec)
    if req.size is not None:
        _check_size(req.size)
    for name, kind in (("image", "image"), ("last_frame", "image"), ("audio", "audio"), ("first_clip", "video")):
        ref = getattr(req, name)
        if ref is not None:
            out.media[name] = _resolve(name, kind, ref, spec, req.model)
    return out


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


def media_types(req: VideoRequest) -> list[str]:
    """The wan2.7 ``input.media`` types this request sends, in the order they are sent."""
    pairs = (
        ("image", "first_frame"),
        ("first_clip", "first_clip"),
        ("last_frame", "last_frame"),
        ("audio", "driving_audio"),
    )
    return [t for name, t in pairs if getattr(req, name) is not None]


def _check_size(size: str) -> None:
    w, sep, h = size.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise FieldError("size", f"size {size!r} is not WIDTHxHEIGHT, e.g. 1280x720")


def _resolve(name: str, kind: str, ref: str, spec: ModelSpec | None, model: str) -> Media:
    if ref[:5].lower() == "data:":
        _inspect_data_uri(name, kind, ref, spec, model)  # inline data is checked like a file...
        return Media(name, ref)  # ...and sent exactly as the user wrote it
    if ref[:8].lower().startswith(("http://", "https://")):
        return Media(name, ref)  # the gateway fetches it; nothing to check here
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", ref):
        raise FieldError(
            name, f"{ref.split(':')[0]}: URLs are not supported; give a local file, or an http(s) or data: URL"
        )
    return Media(name, ref, _inspect(name, kind, Path(ref).expanduser(), spec, model))


def _inspect(name: str, kind: str, path: Path, spec: ModelSpec | None, model: str) -> LocalMedia:
    from . import media  # Pillow and file probing only on this path, never for --help

    if kind == "image":
        return media.inspect_image(path, spec.image if spec else None, name, model)
    if kind == "audio":
        return media.inspect_audio(path, spec.audio if spec else None, name, model)
    if spec is not None and spec.video is None:
        raise FieldError(name, f"{model} takes no video input")
    return media.inspect_video(path, spec.video if spec else None, name, model)


def _inspect_data_uri(name: str, kind: str, ref: str, spec: ModelSpec | None, model: str) -> None:
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
            _inspect(name, kind, path, spec, model)
        except FieldError as exc:
            exc.message = exc.message.replace(str(path), "(data: URI)")
            raise
