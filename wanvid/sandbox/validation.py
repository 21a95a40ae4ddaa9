"""Request validation of the sandbox's create routes, both protocols: the body as JSON or as a form, every
field checked as the gateway checks it, then a protocol-neutral ``NewTask``.

The model rules come from ``wanvid.rules.models``, so client and emulator share one rule set. Every
refusal is a ``Reject``, raised from wherever the check sits and turned into the route's error answer
once, by the handler.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.parser
import email.policy
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from wanvid.errors import FieldError
from wanvid.rules.models import MODELS, ModelSpec, check_media_types, check_params, spec_for
from wanvid.sandbox.tasks import NewTask

_RESOLUTION_SIZE = {"720P": "1280x720", "1080P": "1920x1080"}
# wan2.7 input.media type -> the MIME family a data: URI for it must declare.
_MEDIA_FAMILY = {
    "first_frame": "image",
    "last_frame": "image",
    "driving_audio": "audio",
    "first_clip": "video",
}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_IMAGE_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


class Reject(Exception):
    """An error answer raised from deep inside validation and turned into the envelope once."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
        self.headers = headers
        self.body = body  # sent as it is instead of the route's error shape (a flavor's exact answer)


def bad(param: str | None, message: str) -> Reject:
    return Reject(400, "InvalidParameter", message, param)


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad(None, "The request body must be a JSON object")
    return body


def _model_spec(obj: dict[str, Any]) -> ModelSpec:
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model", "model is required and must be a string")
    spec = spec_for(model)
    if spec is None:
        known = ", ".join(MODELS)
        raise Reject(404, "ModelNotFound", f"Model {model!r} does not exist; available: {known}", "model")
    return spec


def _opt(obj: dict[str, Any], key: str, param: str, kind: str) -> Any:
    """``obj[key]`` if present and not null, type-checked; bools are never accepted as ints."""
    value = obj.get(key)
    if value is None:
        return None
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        article = "an" if kind == "int" else "a"
        name = {"int": "integer", "bool": "boolean", "str": "string"}[kind]
        raise bad(param, f"{param} must be {article} {name}, got {json.dumps(value)[:40]}")
    return value


def _check_url(value: Any, param: str, family: str | None) -> None:
    """An http(s) URL, or a ``data:<mime>;base64,`` URI whose payload decodes and whose MIME fits."""
    if not isinstance(value, str) or not value.strip():
        raise bad(param, f"{param} must be a non-empty string")
    if value[:5].lower() == "data:":
        # partition, not a regex: the payload can be tens of megabytes.
        header, sep, payload = value[5:].partition(",")
        parts = header.split(";")
        mime = parts[0].strip().lower()
        if not sep or parts[-1].strip().lower() != "base64" or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime):
            raise bad(param, f"{param} is not a valid data URI: expected data:<mime>;base64,<data>")
        if family is not None and mime.split("/")[0] != family:
            raise bad(param, f"{param} has MIME type {mime}; expected {family}/*")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise bad(param, f"{param} has invalid base64 data") from None
        if not raw:
            raise bad(param, f"{param} has an empty payload")
        return
    parts_ = urlsplit(value)
    if parts_.scheme.lower() not in ("http", "https") or not parts_.netloc:
        raise bad(param, f"{param} must be an http(s) URL or a data: URI")


def _native_param(field: str, spec: ModelSpec) -> str:
    """Body path for a canonical FieldError field on the native protocol."""
    if field in ("prompt", "negative_prompt"):
        return f"input.{field}"
    if field in ("media", "last_frame", "first_clip"):
        return "input.media"
    if field == "image":
        return "input.media" if spec.native_media else "input.img_url"
    if field == "audio":
        return "input.media" if spec.native_media else "input.audio_url"
    return f"parameters.{field}"


def _unified_param(field: str) -> str:
    return {"duration": "seconds", "resolution": "size", "image": "input_reference.content"}.get(field, field)


def validate_native(body: Any) -> NewTask:
    """A native create body (``/aliyun/v1/videos/generations``, DashScope's route) checked, or a Reject."""
    obj = _require_object(body)
    spec = _model_spec(obj)
    for key in ("prompt", "content"):
        if key in obj:
            raise bad(key, f"Top-level {key!r} is not supported by this format; put the prompt in input.prompt")
    inp = obj.get("input")
    if not isinstance(inp, dict):
        raise bad("input", "input is required and must be an object")
    params = obj.get("parameters")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise bad("parameters", "parameters must be an object")
    prompt = _opt(inp, "prompt", "input.prompt", "str")
    negative = _opt(inp, "negative_prompt", "input.negative_prompt", "str")

    if spec.native_media:
        for key in ("img_url", "audio_url"):
            if key in inp:
                raise bad(f"input.{key}", f"input.{key} is not used by {spec.name}; pass files in input.media")
        media = inp.get("media")
        if not isinstance(media, list) or not media:
            raise bad("input.media", "input.media is required and must be a non-empty list of {type, url}")
        types: list[str] = []
        for i, item in enumerate(media):
            path = f"input.media[{i}]"
            if not isinstance(item, dict):
                raise bad(path, f"{path} must be an object with type and url")
            kind = item.get("type")
            if not isinstance(kind, str) or kind not in _MEDIA_FAMILY:
                raise bad(f"{path}.type", f"{path}.type must be one of {', '.join(_MEDIA_FAMILY)}")
            if (kind == "first_clip" and spec.video is None) or (kind == "last_frame" and not spec.last_frame):
                raise bad(f"{path}.type", f"{path}.type {kind} is not supported by {spec.name}")
            _check_url(item.get("url"), f"{path}.url", _MEDIA_FAMILY[kind])
            types.append(kind)
        try:
            check_media_types(types)
        except FieldError as exc:
            raise bad("input.media", f"input.media: {exc.message}") from None
    else:
        if "media" in inp:
            raise bad("input.media", f"input.media is not used by {spec.name}; use input.img_url")
        if inp.get("img_url") is None:
            raise bad("input.img_url", f"input.img_url is required for {spec.name}")
        _check_url(inp["img_url"], "input.img_url", "image")
        if inp.get("audio_url") is not None:
            _check_url(inp["audio_url"], "input.audio_url", "audio")

    resolution = _opt(params, "resolution", "parameters.resolution", "str")
    duration = _opt(params, "duration", "parameters.duration", "int")
    seed = _opt(params, "seed", "parameters.seed", "int")
    prompt_extend = _opt(params, "prompt_extend", "parameters.prompt_extend", "bool")
    _opt(params, "watermark", "parameters.watermark", "bool")
    shot_type = _opt(params, "shot_type", "parameters.shot_type", "str")
    try:
        check_params(
            spec,
            prompt=prompt,
            negative_prompt=negative,
            resolution=resolution,
            duration=duration,
            seed=seed,
            shot_type=shot_type,
        )
    except FieldError as exc:
        param = _native_param(exc.field, spec)
        raise bad(param, f"{param}: {exc.message}") from None
    resolution = resolution or spec.default_resolution
    duration = duration if duration is not None else spec.default_duration
    return NewTask(
        model=spec.name,
        prompt=prompt or "",
        size=_RESOLUTION_SIZE.get(resolution, "1920x1080"),
        seconds=str(duration),
        duration=duration,
        resolution=resolution,
        prompt_extend=True if prompt_extend is None else prompt_extend,
    )


def validate_unified(body: Any) -> NewTask:
    """A unified create body (``/v1/videos``) checked, or a Reject (the flavors' own extra rules aside)."""
    obj = _require_object(body)
    if "content" in obj:
        raise bad("content", "Top-level content is not supported; use input_reference.content")
    spec = _model_spec(obj)
    prompt = _opt(obj, "prompt", "prompt", "str")
    size = _opt(obj, "size", "size", "str")
    # WxH as ope.ai's pages show it; W*H and 720P/1080P as new-api passes them on (ali/adaptor.go:272-287).
    if size is not None and not re.fullmatch(r"[1-9]\d*[x*][1-9]\d*|(?i:720p|1080p)", size):
        raise bad("size", f"size must look like 1280x720, 1280*720 or 720P, got {size!r}")
    seconds = obj.get("seconds")
    duration: int | None = None
    if seconds is not None:
        if not isinstance(seconds, str) or not re.fullmatch(r"[0-9]+", seconds):
            raise bad("seconds", f'seconds must be a string of digits such as "5", got {json.dumps(seconds)[:40]}')
        duration = int(seconds)
    _opt(obj, "generate_audio", "generate_audio", "bool")
    seed = _opt(obj, "seed", "seed", "int")

    ref = obj.get("input_reference")
    if not isinstance(ref, dict):
        raise bad("input_reference", "input_reference is required and must be an object with content")
    content = ref.get("content")
    if not isinstance(content, list) or not content:
        raise bad("input_reference.content", "input_reference.content must be a non-empty list")
    # The gateway uses only the first image_url item, as the first frame; the rest are ignored.
    index = next((i for i, c in enumerate(content) if isinstance(c, dict) and c.get("type") == "image_url"), None)
    if index is None:
        raise bad("input_reference.content", 'input_reference.content needs an item of type "image_url"')
    image_url = content[index].get("image_url")
    path = f"input_reference.content[{index}].image_url"
    if not isinstance(image_url, dict):
        raise bad(path, f"{path} must be an object with url")
    _check_url(image_url.get("url"), f"{path}.url", "image")
    try:
        check_params(spec, prompt=prompt, duration=duration, seed=seed)
    except FieldError as exc:
        param = _unified_param(exc.field)
        raise bad(param, f"{param}: {exc.message}") from None

    duration = duration if duration is not None else spec.default_duration
    if size is None:
        resolution, size = spec.default_resolution, _RESOLUTION_SIZE[spec.default_resolution]
    elif size.upper() in _RESOLUTION_SIZE:
        resolution = size.upper()
    else:
        width, height = map(int, re.split(r"[x*]", size))
        resolution = "1080P" if min(width, height) >= 1080 else "720P"
    return NewTask(
        model=spec.name,
        prompt=prompt or "",
        size=size,
        seconds=str(duration) if seconds is None else seconds,
        duration=duration,
        resolution=resolution,
        prompt_extend=True,
    )


def _image_type(data: bytes, declared: str) -> str:
    """The MIME type of an uploaded image: from its first bytes, else as declared (SDKs often send
    application/octet-stream)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _IMAGE_MAGIC if data.startswith(magic)), declared)


def form_body(raw: bytes, content_type: str) -> dict[str, Any] | None:
    """A urlencoded or multipart ``/v1/videos`` body as the JSON body it stands for, or None if unreadable.

    new-api reads all three encodings (common/gin.go:136-141). The OpenAI SDK's ``videos.create`` sends
    multipart with ``input_reference`` as a file part: that file becomes the first frame (a data: URI).
    A text ``input_reference`` is the JSON body's object, or else one URL (ope.ai's fork reads it as a
    string). Form values are strings; ``seed`` and ``generate_audio`` are converted when they read as an
    integer / true or false, as new-api converts form integers (relay/common/relay_utils.go:109-113).
    """
    fields: dict[str, str] = {}
    image: str | None = None
    try:
        if content_type.lower().startswith("application/x-www-form-urlencoded"):
            for name, value in parse_qsl(raw.decode(), keep_blank_values=True):
                fields.setdefault(name, value)
        else:
            head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
            if not message.is_multipart():
                return None
            for part in message.iter_parts():
                key = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True)
                if not isinstance(key, str) or not isinstance(data, bytes):
                    continue
                if part.get_filename() is None:
                    fields.setdefault(key, data.decode())
                elif key == "input_reference" and image is None:
                    mime = _image_type(data, part.get_content_type())
                    image = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    except (UnicodeError, ValueError):
        return None
    body: dict[str, Any] = {k: v for k, v in fields.items() if k not in ("seed", "generate_audio", "input_reference")}
    if "seed" in fields:
        body["seed"] = int(fields["seed"]) if fields["seed"].isdigit() else fields["seed"]
    if "generate_audio" in fields:
        body["generate_audio"] = {"true": True, "false": False}.get(fields["generate_audio"], fields["generate_audio"])
    reference = fields.get("input_reference")
    if image is None and reference:
        with contextlib.suppress(ValueError):
            parsed = json.loads(reference)
            if isinstance(parsed, dict):
                body["input_reference"] = parsed
                return body
        image = reference
    if image is not None:
        content = [{"type": "image_url", "role": "first_frame", "image_url": {"url": image}}]
        body["input_reference"] = {"content": content}
    return body
