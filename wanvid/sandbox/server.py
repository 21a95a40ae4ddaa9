"""The built-in gateway emulator: both protocols of API.md on a local port, with switchable faults.

Owns everything a client can observe from the gateway without reaching it: routes, auth, the error
envelope, request validation (through ``wanvid.rules.models``, so client and emulator share one rule set),
answers in one of three flavors (``Sandbox(flavor=...)``, ``POST /_sandbox/flavor``):

- ``docs`` (the default): ope.ai's own pages: the task-table words (``NOT_START`` until the gateway's
  first poll, ``QUEUED``, ``IN_PROGRESS``, ``SUCCESS``, ``FAILURE``, ``UNKNOWN``), 404 ``video not found``
  for an unknown unified id, and a unified create without ``prompt``, ``size`` or ``seconds`` refused.
- ``newapi``: what new-api's Go code (QuantumNous/new-api at 4ca47ee23, the base of ope.ai's fork)
  answers; comments cite its files. Lowercase unified statuses with ``progress`` always, ``task_<32>``
  ids with a ``task_id`` alias, ``metadata.url``, flat ``{code, message, data}`` task errors, its 401,
  an empty 429 from its own limiter, and a content route that proxies without ``Range``.
- ``house``: the sandbox's own first style: uppercase unified statuses (``status_style`` picks other
  words), ``{"error": {...}}`` envelopes everywhere, 400 ``task_not_exist`` for an unknown unified id,
  ``size``/``seconds`` optional. Kept for suites written against it.

``docs`` is the default because it is what ope.ai tells its users, strictest rules included; ``newapi``
is the other half of the truth (the code), and a client must pass against both.
``/v1/videos`` takes JSON, urlencoded and multipart bodies (the OpenAI SDK's upload is the first
frame), and DashScope's own routes (``/api/v1/services/aigc/video-generation/video-synthesis``,
``/api/v1/tasks/{id}``) serve the native protocol with DashScope's flat errors, for its SDK.

Also owned here: the time-driven task lifecycle (timings captured per task), signed result URLs on a
*different host name* (``localhost``), the binary download with Range, ETag and If-Range, and faults:
failed tasks, 429/5xx, a requests-per-second limit and a limit on unfinished tasks (429
Throttling.RateQuota / Throttling.AllocationQuota), dropped connections, malformed answers, cut, slow,
changed, huge or HTML "videos", expiry, transient UNKNOWN answers, a status that goes back to running
once, and new-api's ``fail_to_fetch_task``. Control endpoints under ``/_sandbox/`` (health, faults,
flavor, timing, tasks, requests, stats, reset) let tests and benchmarks steer and observe it; ``GET
/_sandbox/stats`` tells how hard a client pushed: API requests in flight now and at most, the most tasks
unfinished at once, 429s sent, tasks created, API requests seen, video bytes served and the seconds
spent serving them. It backs the test suite, ``wanvid sandbox`` and users' own CI.
Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import email.parser
import email.policy
import email.utils
import functools
import hashlib
import hmac
import importlib.resources
import json
import math
import re
import secrets
import socket
import string
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from wanvid.errors import FieldError
from wanvid.rules.models import MODELS, ModelSpec, check_media_types, check_params, spec_for

STATUS_STYLES = ("upper", "openai", "newapi")
# How the gateway answers (see the module docstring): "docs" (the default) follows ope.ai's pages,
# "newapi" what new-api's Go code (commit 4ca47ee23) answers, "house" is the sandbox's first style.
FLAVORS = ("house", "docs", "newapi")
# Broken answers the ``malformed`` fault can put in place of a create or query answer (all HTTP 200).
MALFORMED_KINDS = ("html", "truncated", "empty", "not_object", "wrong_types", "missing", "huge")

# Native vocabulary is the internal one; the unified route maps it per ``status_style``.
_PENDING, _RUNNING, _SUCCEEDED, _FAILED, _UNKNOWN = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "UNKNOWN"
_UNIFIED_STATUS: dict[str, dict[str, str]] = {
    "upper": {_PENDING: "QUEUED", _RUNNING: "IN_PROGRESS", _SUCCEEDED: "SUCCESS", _FAILED: "FAILURE"},
    "openai": {_PENDING: "queued", _RUNNING: "in_progress", _SUCCEEDED: "completed", _FAILED: "failed"},
    "newapi": {_PENDING: "SUBMITTED", _RUNNING: "IN_PROGRESS", _SUCCEEDED: "SUCCESS", _FAILED: "FAILURE"},
}
# The flavors' words. new-api's task table (model/task.go:34-41) has the "upper" ones: ope.ai's pages show
# them, and so does new-api's content route (controller/video_proxy.go:52-55). new-api's own unified route
# answers OpenAI's (dto/openai_video.go:9-13, ali/adaptor.go:522 convertAliStatus).
_TASK_TABLE, _NEWAPI_WORDS = _UNIFIED_STATUS["upper"], _UNIFIED_STATUS["openai"]
for _words in _UNIFIED_STATUS.values():  # the unknown_queries fault's transient word, in each vocabulary
    _words[_UNKNOWN] = "unknown" if _words[_PENDING].islower() else "UNKNOWN"
# new-api's progress per task-table state after a poll (relay/channel/task/taskcommon/helpers.go:71-74);
# a task not polled yet has "0%" (model/task.go:202).
_NEWAPI_PROGRESS = {_PENDING: 20, _RUNNING: 30, _SUCCEEDED: 100, _FAILED: 100}
_MODERATION_MESSAGE = "Input data may contain inappropriate content. (injected by the sandbox)"
_ERROR_CODE_5XX = {500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
_RESOLUTION_SIZE = {"720P": "1280x720", "1080P": "1920x1080"}
# wan2.7 input.media type -> the MIME family a data: URI for it must declare.
_MEDIA_FAMILY = {
    "first_frame": "image",
    "last_frame": "image",
    "driving_audio": "audio",
    "first_clip": "video",
}


@functools.cache
def sample_mp4() -> bytes:
    """The bundled 5 s 640x360 H.264 clip every finished task 'produces' (read once)."""
    return (importlib.resources.files("wanvid") / "assets" / "sample.mp4").read_bytes()


_PIECE = 1 << 20  # large bodies go out in writes of this size: big writes keep loopback transfers fast
_HUGE_ANSWER = 64 * 2**20  # bytes of the malformed="huge" answer
_PAD_HEADER = 16  # the largest header of the padding box (the 64-bit "largesize" form)
_PROXY_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Access Denied</title></head>\n"
    b"<body><h1>Access Denied</h1><p>The requested URL could not be retrieved.</p>\n"
    b"<hr><address>proxy (injected by the wanvid sandbox)</address></body></html>\n"
)


def min_video_size() -> int:
    """The smallest ``video_size``: the sample plus room for the padding box's header."""
    return len(sample_mp4()) + _PAD_HEADER


@functools.cache
def _filled(byte: bytes) -> memoryview:
    """One buffer of ``byte``, reused for every padding byte served: padding is never built in memory."""
    return memoryview(byte * _PIECE)


@dataclass(frozen=True)
class _Video:
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
        zeros = _filled(b"\0")
        while pos < end:
            n = min(_PIECE, end - pos)
            yield zeros[:n]
            pos += n


@functools.lru_cache(maxsize=32)
def _video(size: int | None, variant: int) -> _Video:
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
        return _Video(head, total, f'"{hashlib.md5(head + total.to_bytes(8, "big")).hexdigest()}-{parts}"')
    # The MD5 of every byte served, as OSS and S3 give a single-part object: wanvid checks it.
    digest, left, zeros = hashlib.md5(head), total - len(head), _filled(b"\0")
    while left > 0:
        digest.update(zeros[: min(left, len(zeros))])
        left -= min(left, len(zeros))
    return _Video(head, total, f'"{digest.hexdigest()}"')


MULTIPART_SIZE = 64 * 1024 * 1024  # objects above this get a multipart ETag (see _video)


class _Until:
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


@dataclass
class RecordedRequest:
    """One API or ``/_oss`` request as it arrived, for tests to assert on."""

    method: str
    path: str  # with query string
    headers: dict[str, str]  # lower-cased names
    json: Any | None
    body_size: int


@dataclass
class Faults:
    """Live switches. Set at construction, as attributes at runtime, or via ``POST /_sandbox/faults``.

    Failure faults are captured by each task at creation; counts are used up one request at a time.
    """

    fail_code: str | None = None  # new tasks end FAILED with this code ...
    fail_message: str | None = None  # ... and message (instead of SUCCEEDED)
    # New tasks end FAILED this many seconds after creation (an early failure such as moderation), with
    # fail_code / fail_message if set, else DataInspectionFailed and a moderation message.
    fail_after: float | None = None
    throttle: int = 0  # the next N API requests answer 429 Throttling ...
    retry_after: float = 1  # ... with this Retry-After (seconds, sent as given: "0.2")
    # At most this many API requests (create, query, content; not /_sandbox/ or signed /_oss URLs) a
    # second, from all clients together, over a sliding window: 1 s when it is a whole number, else
    # ceil(rate_limit) requests per ceil(rate_limit) / rate_limit seconds (0.5: one per 2 s). A request
    # over it answers 429 Throttling.RateQuota with Retry-After = the seconds until a slot frees (one
    # decimal, rounded up, >= 0.1) and is not acted on: no task, no other fault's turn, no window slot.
    rate_limit: float | None = None
    # A create while this many tasks are unfinished (created, not yet SUCCEEDED/FAILED, not expired)
    # answers 429 Throttling.AllocationQuota with Retry-After 1 and makes no task.
    task_limit: int | None = None
    server_errors: int = 0  # the next N API requests answer server_error_status
    server_error_status: int = 500
    # The next N requests to the content routes answer content_error_status; signed /_oss URLs still
    # work, so a client can fall back to the task's video_url.
    content_errors: int = 0
    content_error_status: int = 502
    # The next N API requests (create, query, content) are read and acted on (a create makes its task),
    # then the socket is closed with no answer at all, as when a gateway's answer is lost on the way.
    drop_connections: int = 0
    # The next malformed_count create/query answers are replaced by a broken one of MALFORMED_KINDS (HTTP
    # 200, X-Request-Id kept; the request is still acted on). Once spent, both return to null and 1.
    malformed: str | None = None
    malformed_count: int = 1
    cut_download_after: int | None = None  # downloads close the socket after this many body bytes ...
    cut_downloads: int = 1  # ... for this many downloads, then serve normally
    slow_download_bps: int | None = None  # pace download bodies to about this many bytes/s
    expire: bool = False  # every task reports as expired / unknown
    # The first N status queries of each task created from now on answer UNKNOWN (unified: the flavor's
    # unknown word) while the task lives on, as new-api stores an upstream poll's hiccup (GATEWAY-VARIANTS).
    unknown_queries: int = 0
    # A task created from now on answers once more as running on the status query right after its first
    # ended answer, then ended for good.
    regress_once: bool = False
    # The next N create/query API requests answer new-api's flat fail_to_fetch_task error with the
    # provider's JSON as a string in "message" (relay/relay_task.go:226), HTTP 500, in every flavor.
    fetch_task_errors: int = 0
    # Video responses are those of the content routes and of the signed /_oss URLs alike.
    ignore_range: bool = False  # video responses ignore Range (and If-Range): always 200, the whole body
    video_variant: int = 0  # != 0: other (still valid) MP4 bytes and ETag, as if the video had changed
    video_size: int | None = None  # serve exactly this many bytes: the sample padded by a top-level free box
    video_html: bool = False  # video responses are a 200 text/html page (a proxy's) instead of the MP4
    # The content routes only (signed /_oss URLs serve normally), as new-api's proxy (video_proxy.go at
    # 4ca47ee23) does: with either cut set they ignore Range (200, the whole body) and close the
    # connection after this many body bytes / seconds of body, on every transfer, without end.
    proxy_cut_bytes: int | None = None
    proxy_cut_seconds: float | None = None
    content_html: bool = False  # the content routes answer a 200 text/html page; signed URLs still work


_COUNT_FAULTS = (
    "throttle",
    "server_errors",
    "cut_downloads",
    "content_errors",
    "drop_connections",
    "malformed_count",
    "unknown_queries",
    "fetch_task_errors",
)


def _fault_value_error(name: str, value: Any) -> str | None:
    """Why ``value`` can't go into Faults.``name`` over HTTP, or None if it can."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if name in ("fail_code", "fail_message"):
        ok = value is None or isinstance(value, str)
        need = "a string or null"
    elif name in _COUNT_FAULTS:
        ok, need = is_int and value >= 0, "an integer >= 0"
    elif name == "malformed":
        ok, need = value is None or value in MALFORMED_KINDS, f"null or one of {', '.join(MALFORMED_KINDS)}"
    elif name == "retry_after":
        ok = (is_int or isinstance(value, float)) and value >= 0
        need = "a number >= 0"
    elif name in ("server_error_status", "content_error_status"):
        ok, need = is_int and 500 <= value <= 599, "an integer from 500 to 599"
    elif name in ("cut_download_after", "proxy_cut_bytes"):
        ok, need = value is None or (is_int and value >= 0), "an integer >= 0 or null"
    elif name == "proxy_cut_seconds":
        ok, need = value is None or _is_seconds(value), "a finite number >= 0 or null"
    elif name == "slow_download_bps":
        ok, need = value is None or (is_int and value > 0), "an integer > 0 or null"
    elif name == "video_variant":
        ok, need = is_int and 0 <= value < 2**64, "an integer from 0 to 2**64 - 1"
    elif name == "video_size":
        low = min_video_size()
        ok = value is None or (is_int and low <= value < 2**63)
        need = f"null or an integer from {low} (the sample plus a {_PAD_HEADER}-byte box header) to 2**63 - 1"
    elif name == "fail_after":
        ok, need = value is None or _is_seconds(value), "a finite number >= 0 or null"
    elif name == "rate_limit":
        ok = value is None or (_is_seconds(value) and value > 0)
        need = "a finite number > 0 (API requests per second) or null (no limit)"
    elif name == "task_limit":
        ok, need = value is None or (is_int and value >= 1), "an integer >= 1 (unfinished tasks) or null (no limit)"
    else:  # expire, ignore_range, video_html, content_html
        ok, need = isinstance(value, bool), "true or false"
    return None if ok else f"{name} must be {need}"


def _is_seconds(value: Any) -> bool:
    """A finite JSON number >= 0 (bools are not numbers here; Infinity would overflow timestamps)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0


_FAULT_NAMES = tuple(f.name for f in dataclasses.fields(Faults))
_ID_CHARS = string.ascii_letters + string.digits
_TIMING_NAMES = ("queue_seconds", "run_seconds", "ttl_seconds")


@dataclass
class _NewTask:
    """What a validated create request asks for, protocol-neutral."""

    model: str
    prompt: str
    size: str
    seconds: str
    duration: int
    resolution: str
    prompt_extend: bool


@dataclass
class _Task(_NewTask):
    """A created task: the request plus what the lifecycle is computed from, all fixed at creation."""

    id: str
    protocol: str  # the route that created it: "native" or "unified"
    created_mono: float  # ages come from the monotonic clock ...
    created_wall: float  # ... shown timestamps from the wall clock
    queue_seconds: float
    run_seconds: float
    ttl_seconds: float
    ends_after: float  # seconds from creation to SUCCEEDED or FAILED
    failure: tuple[str, str] | None  # (code, message) when the task ends FAILED
    polls: int = 0  # status queries received (guarded by the sandbox lock, like the counters below)
    downloads: int = 0  # video bodies started
    unknown_left: int = 0  # status queries still to answer UNKNOWN (the unknown_queries fault)
    regress: bool = False  # the regress_once fault, captured at creation
    ended_answers: int = 0  # status queries answered SUCCEEDED or FAILED so far


class _Reject(Exception):
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


def _bad(param: str | None, message: str) -> _Reject:
    return _Reject(400, "InvalidParameter", message, param)


def _wall(ts: float) -> str:
    """DashScope's time format: ``2026-11-20 10:00:00.123`` (local time, milliseconds)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def _retry_after_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _rate_window(rate: float) -> tuple[int, float]:
    """(requests, seconds) of the sliding window that allows ``rate`` requests a second: (n, 1.0) for a
    whole n; else ceil(rate) requests per ceil(rate) / rate seconds, so slow rates still admit one."""
    slots = max(1, math.ceil(rate))
    return slots, 1.0 if slots == rate else slots / rate


def _active_span(task: _Task) -> float:
    """Seconds from creation during which the task is unfinished (PENDING or RUNNING): until it ends, or
    until its TTL runs out first."""
    return max(0.0, min(task.ends_after, task.ttl_seconds))


def _max_overlap(tasks: Iterable[_Task]) -> int:
    """The most tasks unfinished at one moment, from their own timings (polled or not)."""
    events: list[tuple[float, int]] = []
    for task in tasks:
        span = _active_span(task)
        if span > 0:  # a task finished at creation (zero timings) is never unfinished
            events += [(task.created_mono, 1), (task.created_mono + span, -1)]
    # At equal times -1 sorts first: a task ending as another is created does not overlap it.
    events.sort()
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# ---- request validation (pure functions over the decoded body) --------------------------------------


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad(None, "The request body must be a JSON object")
    return body


def _model_spec(obj: dict[str, Any]) -> ModelSpec:
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "model is required and must be a string")
    spec = spec_for(model)
    if spec is None:
        known = ", ".join(MODELS)
        raise _Reject(404, "ModelNotFound", f"Model {model!r} does not exist; available: {known}", "model")
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
        raise _bad(param, f"{param} must be {article} {name}, got {json.dumps(value)[:40]}")
    return value


def _check_url(value: Any, param: str, family: str | None) -> None:
    """An http(s) URL, or a ``data:<mime>;base64,`` URI whose payload decodes and whose MIME fits."""
    if not isinstance(value, str) or not value.strip():
        raise _bad(param, f"{param} must be a non-empty string")
    if value[:5].lower() == "data:":
        # partition, not a regex: the payload can be tens of megabytes.
        header, sep, payload = value[5:].partition(",")
        parts = header.split(";")
        mime = parts[0].strip().lower()
        if not sep or parts[-1].strip().lower() != "base64" or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime):
            raise _bad(param, f"{param} is not a valid data URI: expected data:<mime>;base64,<data>")
        if family is not None and mime.split("/")[0] != family:
            raise _bad(param, f"{param} has MIME type {mime}; expected {family}/*")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(param, f"{param} has invalid base64 data") from None
        if not raw:
            raise _bad(param, f"{param} has an empty payload")
        return
    parts_ = urlsplit(value)
    if parts_.scheme.lower() not in ("http", "https") or not parts_.netloc:
        raise _bad(param, f"{param} must be an http(s) URL or a data: URI")


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


def _validate_native(body: Any) -> _NewTask:
    obj = _require_object(body)
    spec = _model_spec(obj)
    for key in ("prompt", "content"):
        if key in obj:
            raise _bad(key, f"Top-level {key!r} is not supported by this format; put the prompt in input.prompt")
    inp = obj.get("input")
    if not isinstance(inp, dict):
        raise _bad("input", "input is required and must be an object")
    params = obj.get("parameters")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise _bad("parameters", "parameters must be an object")
    prompt = _opt(inp, "prompt", "input.prompt", "str")
    negative = _opt(inp, "negative_prompt", "input.negative_prompt", "str")

    if spec.native_media:
        for key in ("img_url", "audio_url"):
            if key in inp:
                raise _bad(f"input.{key}", f"input.{key} is not used by {spec.name}; pass files in input.media")
        media = inp.get("media")
        if not isinstance(media, list) or not media:
            raise _bad("input.media", "input.media is required and must be a non-empty list of {type, url}")
        types: list[str] = []
        for i, item in enumerate(media):
            path = f"input.media[{i}]"
            if not isinstance(item, dict):
                raise _bad(path, f"{path} must be an object with type and url")
            kind = item.get("type")
            if not isinstance(kind, str) or kind not in _MEDIA_FAMILY:
                raise _bad(f"{path}.type", f"{path}.type must be one of {', '.join(_MEDIA_FAMILY)}")
            if (kind == "first_clip" and spec.video is None) or (kind == "last_frame" and not spec.last_frame):
                raise _bad(f"{path}.type", f"{path}.type {kind} is not supported by {spec.name}")
            _check_url(item.get("url"), f"{path}.url", _MEDIA_FAMILY[kind])
            types.append(kind)
        try:
            check_media_types(types)
        except FieldError as exc:
            raise _bad("input.media", f"input.media: {exc.message}") from None
    else:
        if "media" in inp:
            raise _bad("input.media", f"input.media is not used by {spec.name}; use input.img_url")
        if inp.get("img_url") is None:
            raise _bad("input.img_url", f"input.img_url is required for {spec.name}")
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
        raise _bad(param, f"{param}: {exc.message}") from None
    resolution = resolution or spec.default_resolution
    duration = duration if duration is not None else spec.default_duration
    return _NewTask(
        model=spec.name,
        prompt=prompt or "",
        size=_RESOLUTION_SIZE.get(resolution, "1920x1080"),
        seconds=str(duration),
        duration=duration,
        resolution=resolution,
        prompt_extend=True if prompt_extend is None else prompt_extend,
    )


def _validate_unified(body: Any) -> _NewTask:
    obj = _require_object(body)
    if "content" in obj:
        raise _bad("content", "Top-level content is not supported; use input_reference.content")
    spec = _model_spec(obj)
    prompt = _opt(obj, "prompt", "prompt", "str")
    size = _opt(obj, "size", "size", "str")
    # WxH as ope.ai's pages show it; W*H and 720P/1080P as new-api passes them on (ali/adaptor.go:272-287).
    if size is not None and not re.fullmatch(r"[1-9]\d*[x*][1-9]\d*|(?i:720p|1080p)", size):
        raise _bad("size", f"size must look like 1280x720, 1280*720 or 720P, got {size!r}")
    seconds = obj.get("seconds")
    duration: int | None = None
    if seconds is not None:
        if not isinstance(seconds, str) or not re.fullmatch(r"[0-9]+", seconds):
            raise _bad("seconds", f'seconds must be a string of digits such as "5", got {json.dumps(seconds)[:40]}')
        duration = int(seconds)
    _opt(obj, "generate_audio", "generate_audio", "bool")
    seed = _opt(obj, "seed", "seed", "int")

    ref = obj.get("input_reference")
    if not isinstance(ref, dict):
        raise _bad("input_reference", "input_reference is required and must be an object with content")
    content = ref.get("content")
    if not isinstance(content, list) or not content:
        raise _bad("input_reference.content", "input_reference.content must be a non-empty list")
    # The gateway uses only the first image_url item, as the first frame; the rest are ignored.
    index = next((i for i, c in enumerate(content) if isinstance(c, dict) and c.get("type") == "image_url"), None)
    if index is None:
        raise _bad("input_reference.content", 'input_reference.content needs an item of type "image_url"')
    image_url = content[index].get("image_url")
    path = f"input_reference.content[{index}].image_url"
    if not isinstance(image_url, dict):
        raise _bad(path, f"{path} must be an object with url")
    _check_url(image_url.get("url"), f"{path}.url", "image")
    try:
        check_params(spec, prompt=prompt, duration=duration, seed=seed)
    except FieldError as exc:
        param = _unified_param(exc.field)
        raise _bad(param, f"{param}: {exc.message}") from None

    duration = duration if duration is not None else spec.default_duration
    if size is None:
        resolution, size = spec.default_resolution, _RESOLUTION_SIZE[spec.default_resolution]
    elif size.upper() in _RESOLUTION_SIZE:
        resolution = size.upper()
    else:
        width, height = map(int, re.split(r"[x*]", size))
        resolution = "1080P" if min(width, height) >= 1080 else "720P"
    return _NewTask(
        model=spec.name,
        prompt=prompt or "",
        size=size,
        seconds=str(duration) if seconds is None else seconds,
        duration=duration,
        resolution=resolution,
        prompt_extend=True,
    )


def _parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
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


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_IMAGE_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


def _image_type(data: bytes, declared: str) -> str:
    """The MIME type of an uploaded image: from its first bytes, else as declared (SDKs often send
    application/octet-stream)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _IMAGE_MAGIC if data.startswith(magic)), declared)


def _form_body(raw: bytes, content_type: str) -> dict[str, Any] | None:
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


# ---- server ---------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops bursts of concurrent clients

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall for seconds.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client hanging up is normal, not worth a traceback
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer therefore carries Content-Length
    server_version = "wanvid-sandbox"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would add ~40 ms
    timeout = 120  # an idle keep-alive connection must not pin a thread forever
    server: _Server
    _request_id: str = ""
    _dropping = False  # this request gets no answer (drop_connections)
    _proxy_headers: dict[str, str]  # extra video headers of this request (the newapi content route)
    _malformed: str | None = None  # this request's answer is replaced by this broken kind

    # -- plumbing --

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def handle_one_request(self) -> None:
        self._dropping, self._malformed = False, None  # per-request fault state; the handler serves many
        self._proxy_headers = {}
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the CLI and tests own stderr

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests and unknown methods: same JSON envelope as everything else, then close.
        self._request_id = self._request_id or str(uuid.uuid4())
        self.close_connection = True
        self._send_json(
            code,
            self._envelope(
                code, "BadRequest" if code < 500 else "NotImplemented", message or "Malformed request", None
            ),
            {"Connection": "close"},
        )

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
        if self._dropping:
            self.close_connection = True  # the answer is lost: the socket closes without a byte of it
            return
        if self._malformed:
            kind, self._malformed = self._malformed, None
            self._send_malformed(kind, body)
            return
        if status == 429:
            self.sandbox._count_throttled()
        self.send_response(status)
        self.send_header("X-Request-Id", self._request_id)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        if self._native and isinstance(obj, dict):
            obj = {"request_id": self._request_id, **obj}  # native bodies always name their request
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    @staticmethod
    def _envelope(status: int, code: str, message: str, param: str | None) -> dict[str, Any]:
        kind = "server_error" if status >= 500 else "rate_limit_error" if status == 429 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}

    def _change(
        self,
        what: str,
        body: Any,
        merge: Callable[[dict[str, Any]], tuple[str | None, str] | None],
        show: Callable[[], dict[str, Any]],
    ) -> None:
        """A control POST: a JSON object of ``what`` fields merged in, answered with the settings now."""
        if not isinstance(body, dict):
            self._error(400, "InvalidParameter", f"Send a JSON object of {what} fields")
            return
        problem = merge(body)
        if problem:
            self._error(400, "InvalidParameter", problem[1], problem[0])
            return
        self._send_json(200, show())

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        if body is None and self._dashscope:
            body = {"code": code, "message": message}  # DashScope's own flat form (request_id added below)
        elif body is None and self._flat:
            body = {"code": code, "message": message, "data": None}  # new-api's dto.TaskError (dto/task.go:7)
        self._send_json(status, body if body is not None else self._envelope(status, code, message, param), headers)

    @property
    def _flat(self) -> bool:
        """new-api's task layer answers its errors flat on the unified routes (controller/relay.go:606-610);
        its content proxy has an envelope of its own (controller/video_proxy.go:24-31)."""
        path = urlsplit(self.path).path
        return self.sandbox.flavor == "newapi" and path.startswith("/v1/") and not path.endswith("/content")

    # -- routing --

    _native = False  # a DashScope-shaped route: /aliyun/v1/... or the /api/v1/... aliases
    _dashscope = False  # the /api/v1/... aliases: DashScope's own flat errors
    _ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
        ("POST", re.compile(r"/aliyun/v1/videos/generations"), "_native_create"),
        ("GET", re.compile(r"/aliyun/v1/tasks/([^/]+)"), "_native_query"),
        ("GET", re.compile(r"/aliyun/v1/videos/([^/]+)/content"), "_native_content"),
        ("POST", re.compile(r"/v1/videos"), "_unified_create"),
        ("GET", re.compile(r"/v1/videos/([^/]+)"), "_unified_query"),
        ("GET", re.compile(r"/v1/videos/([^/]+)/content"), "_unified_content"),
        # DashScope's own routes, for its SDK (base_http_api_url = <sandbox>/api/v1).
        ("POST", re.compile(r"/api/v1/services/aigc/video-generation/video-synthesis"), "_dashscope_create"),
        ("GET", re.compile(r"/api/v1/tasks/([^/]+)"), "_native_query"),
    )

    def _dispatch(self) -> None:
        self._request_id = str(uuid.uuid4())
        path, _, query = self.path.partition("?")
        self._native = path.startswith(("/aliyun/", "/api/"))
        self._dashscope = path.startswith("/api/")
        try:
            # Always consume the whole body first, or the rest of it would poison the keep-alive stream.
            raw = self._read_body()
        except ValueError:
            self.close_connection = True
            self._error(400, "InvalidParameter", "Unreadable request body", None, {"Connection": "close"})
            return
        body: Any = None
        content_type = self.headers.get("Content-Type", "")
        if raw and path == "/v1/videos" and content_type.lower().startswith(_FORM_TYPES):
            body = _form_body(raw, content_type)  # None when unreadable, answered like bad JSON
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        if path.startswith("/_sandbox/"):
            self._control(path, query, body, raw)
            return
        self.sandbox._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                json=body,
                body_size=len(raw),
            )
        )
        try:
            if path.startswith("/_oss/"):
                self._oss(path, query)
                return
            method = "GET" if self.command == "HEAD" else self.command
            route = next(
                (
                    (name, m)
                    for verb, pattern, name in self._ROUTES
                    if verb == method and (m := pattern.fullmatch(path))
                ),
                None,
            )
            if route is None:
                raise _Reject(404, "NotFound", f"No route for {self.command} {path}")
            name, m = route
            sb = self.sandbox
            sb._api_started()
            try:
                self._api(name, m, method, raw, body)
            except _Reject as exc:  # answered here, so the answer is written while still counted in flight
                self._error(exc.status, exc.code, exc.message, exc.param, exc.headers, exc.body)
            finally:
                sb._api_ended()
        except _Reject as exc:
            self._error(exc.status, exc.code, exc.message, exc.param, exc.headers, exc.body)

    def _api(self, name: str, m: re.Match[str], method: str, raw: bytes, body: Any) -> None:
        """One request to a create, query or content route: limits, faults, auth, then the route."""
        sb = self.sandbox
        # The rate limiter stands in front of everything: a request over it is not acted on at all.
        wait = sb._take_rate_slot()
        if wait is not None and sb.flavor == "newapi":
            self._send(429, b"", None)  # new-api's limiter: c.Status(429), no body, no Retry-After (rate-limit.go:70)
            return
        if wait is not None:
            message = "Requests rate limit exceeded, please try again later."
            self._error(429, "Throttling.RateQuota", message, None, {"Retry-After": f"{wait:.1f}"})
            return
        content = name.endswith("_content")
        # A dropped request gets no answer, so it takes no other fault's turn.
        self._dropping = sb._take("drop_connections")
        fault = None if self._dropping else sb._take_api_fault(content=content)
        fetch_error = fault is None and not self._dropping and not content and sb._take("fetch_task_errors")
        if fault is None and not fetch_error and not self._dropping and not content:
            self._malformed = sb._take_malformed()
        if fault is not None:
            status, code, message, headers = fault
            if status == 429 and self._flat:
                # An upstream 429 relayed by new-api: retried, then rewritten (controller/relay.go:606-610).
                code, message, headers = "fail_to_fetch_task", "当前分组上游负载已饱和，请稍后再试", {}
            self._error(status, code, message, None, headers)
            return
        if fetch_error:
            # A provider's error answer relayed by new-api: its JSON as a string (relay/relay_task.go:225-227).
            provider = {"request_id": str(uuid.uuid4()), "code": "InternalError", "message": "An internal error."}
            body = {"code": "fail_to_fetch_task", "message": json.dumps(provider), "data": None}
            self._error(500, "fail_to_fetch_task", body["message"], None, None, body)
            return
        problem = self._auth_problem()
        if problem and sb.flavor == "newapi" and not self._dashscope:
            # new-api's auth middleware: every failure is "Invalid token" (middleware/auth.go:345,
            # middleware/utils.go:12-24, common/utils.go:278).
            message = f"Invalid token (request id: {self._request_id})"
            raise _Reject(401, "", message, body={"error": {"message": message, "type": "new_api_error", "code": ""}})
        if problem:
            raise _Reject(401, "InvalidApiKey", problem)
        if raw and body is None and method == "POST":
            raise _bad(None, "The request body is not valid JSON")
        args = [unquote(g) for g in m.groups()]
        if method == "POST":
            getattr(self, name)(body, *args)
        else:
            getattr(self, name)(*args)

    def _auth_problem(self) -> str | None:
        header = self.headers.get("Authorization")
        if not header:
            return "Missing API key: send the header Authorization: Bearer <key>"
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return "Malformed Authorization header: expected Bearer <key>"
        expected = self.sandbox.api_key
        if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
            return "Incorrect API key provided"  # never echo the key, not even part of it
        return None

    # -- native protocol --

    def _native_create(self, body: Any) -> None:
        task = self.sandbox._create(_validate_native(body), "native")
        self._send_json(200, {"output": {"task_status": _PENDING, "task_id": task.id}})

    def _dashscope_create(self, body: Any) -> None:
        # DashScope runs video synthesis only as an async task, asked for with this header.
        if self.headers.get("X-DashScope-Async", "").strip().lower() != "enable":
            raise _Reject(403, "AccessDenied", "current user api does not support synchronous calls")
        self._native_create(body)

    def _native_query(self, task_id: str) -> None:
        sb = self.sandbox
        found = sb._lookup(task_id, poll=True)
        if found is None:
            self._send_json(
                200,
                {
                    "output": {
                        "task_id": task_id,
                        "task_status": _UNKNOWN,
                        "code": "ResourceNotFound",
                        "message": f"Task {task_id} does not exist or has expired",
                    }
                },
            )
            return
        task, status, _ = found
        out: dict[str, Any] = {
            "task_id": task.id,
            "task_status": status,
            "submit_time": _wall(task.created_wall),
        }
        if status != _PENDING:  # an early failure can end a task before it was ever scheduled
            out["scheduled_time"] = _wall(task.created_wall + min(task.queue_seconds, task.ends_after))
        if status in (_SUCCEEDED, _FAILED):
            out["end_time"] = _wall(task.created_wall + task.ends_after)
        if status == _SUCCEEDED:
            out["video_url"] = sb._signed_url(task)
        out["orig_prompt"] = task.prompt
        answer: dict[str, Any] = {"output": out}
        if status == _SUCCEEDED:
            extended = (task.prompt + " Cinematic lighting, smooth camera motion.").strip()
            out["actual_prompt"] = extended if task.prompt_extend else task.prompt
            answer["usage"] = {"duration": task.duration, "video_count": 1, "SR": int(task.resolution[:-1])}
        elif status == _FAILED and task.failure:
            out["code"], out["message"] = task.failure
        self._send_json(200, answer)

    def _native_content(self, task_id: str) -> None:
        self._content(task_id, native=True)

    # -- unified protocol --

    def _unified_create(self, body: Any) -> None:
        sb = self.sandbox
        obj = body if isinstance(body, dict) else {}
        if sb.flavor == "docs":
            # ope.ai's Create Video page marks prompt, size and seconds required.
            for key in ("prompt", "size", "seconds"):
                if obj.get(key) in (None, ""):
                    raise _bad(key, f"{key} is required")
        elif sb.flavor == "newapi" and not str(obj.get("prompt") or "").strip():
            # relay/common/relay_utils.go:74-77 (validatePrompt), answered flat.
            raise _Reject(400, "invalid_request", "prompt is required")
        task = sb._create(_validate_unified(body), "unified")
        view = sb._unified_view(task, _PENDING, 0.0)
        if sb.flavor == "newapi":
            # ali/adaptor.go:405-416 (DoResponse): no prompt, size or seconds; progress 0 (an int, always
            # sent: dto/openai_video.go:21); task_id, the deprecated alias of id.
            keys: tuple[str, ...] = ("id", "task_id", "object", "model", "status", "progress", "created_at")
        else:
            keys = ("id", "object", "status", "created_at", "model", "prompt", "size", "seconds")
        self._send_json(200, {k: view[k] for k in keys})

    def _unified_query(self, task_id: str) -> None:
        found = self.sandbox._lookup(task_id, poll=True)
        if found is None:
            raise self._unified_not_found(task_id, content=False)
        self._send_json(200, self.sandbox._unified_view(*found))

    def _unified_not_found(self, task_id: str, *, content: bool) -> _Reject:
        """An unknown or expired id on a unified route, as the flavor answers it."""
        flavor = self.sandbox.flavor
        if flavor == "docs":  # ope.ai's Get Video Task page
            error = {"message": "video not found", "type": "NotFound", "param": "", "code": "ResourceNotFound"}
            return _Reject(404, "ResourceNotFound", error["message"], body={"error": error})
        if flavor == "newapi" and content:  # controller/video_proxy.go:24-31, 47-49: no code
            error = {"message": "Task not found", "type": "invalid_request_error"}
            return _Reject(404, "", error["message"], body={"error": error})
        if flavor == "newapi":  # relay/relay_task.go:374-377: the message is the code itself
            return _Reject(400, "task_not_exist", "task_not_exist")
        return _Reject(400, "task_not_exist", f"Task {task_id} does not exist or has expired")

    def _unified_content(self, task_id: str) -> None:
        self._content(task_id, native=False)

    # -- downloads --

    def _content(self, task_id: str, *, native: bool) -> None:
        sb = self.sandbox
        found = sb._lookup(task_id)
        if found is None:
            if native:
                raise _Reject(404, "ResourceNotFound", f"Task {task_id} does not exist or has expired")
            raise self._unified_not_found(task_id, content=True)
        task, status, elapsed = found
        if status != _SUCCEEDED and not native and sb.flavor == "newapi":
            # controller/video_proxy.go:52-55: the task-table word, no code.
            message = f"Task is not completed yet, current status: {sb._task_table_status(task, status, elapsed)}"
            raise _Reject(400, "", message, body={"error": {"message": message, "type": "invalid_request_error"}})
        if status != _SUCCEEDED:
            shown = status if native else sb._unified_status(task, status, elapsed)
            raise _bad(None, f"Task is not completed yet, current status: {shown}")
        if not native and sb.flavor == "newapi":
            # new-api's proxy fetches the stored URL with a fresh request: the client's Range never reaches
            # it, and it adds its own Cache-Control (controller/video_proxy.go:80, 161-167).
            del self.headers["Range"]
            self._proxy_headers = {"Cache-Control": "public, max-age=86400"}
        if sb.content_redirect:
            self._send(302, b"", None, {"Location": sb._signed_url(task)})
            return
        self._serve_video(task, proxied=True)

    def _oss(self, path: str, query: str) -> None:
        """The object store behind the signed video_url: no API auth, its own signature instead."""
        sb = self.sandbox
        if self.headers.get("Authorization"):
            # Real object stores refuse a second auth mechanism; a client sending it here leaks the key.
            message = "Only one auth mechanism allowed: fetch a signed URL without Authorization"
            raise _Reject(400, "InvalidArgument", message)
        m = re.fullmatch(r"/_oss/([^/]+)\.mp4", path)
        qs = parse_qs(query)
        expires, signature = qs.get("Expires", [""])[0], qs.get("Signature", [""])[0]
        task_id = unquote(m[1]) if m else ""
        if not m or not expires.isdigit() or not hmac.compare_digest(signature, sb._signature(task_id, expires)):
            raise _Reject(403, "SignatureDoesNotMatch", "The request signature does not match")
        if int(expires) < time.time():
            raise _Reject(403, "AccessDenied", "Request has expired")
        found = sb._lookup(task_id)
        if found is None and sb._has_task(task_id):
            raise _Reject(403, "AccessDenied", "Request has expired")  # the URL dies with its task's TTL
        if found is None or found[1] != _SUCCEEDED:
            raise _Reject(404, "NoSuchKey", "The specified key does not exist")
        self._serve_video(found[0])

    def _serve_video(self, task: _Task, *, proxied: bool = False) -> None:
        """The video body; ``proxied``: for a content route, where the proxy_* and content_html faults act."""
        sb = self.sandbox
        if self._dropping:
            self.close_connection = True
            return
        f = sb.faults
        if f.video_html or (proxied and f.content_html):
            self._send(200, _PROXY_PAGE, "text/html; charset=utf-8")
            return
        proxy = proxied and (f.proxy_cut_bytes is not None or f.proxy_cut_seconds is not None)
        video, modified = sb._current_video(task)
        size = video.size
        headers = {"Accept-Ranges": "bytes", "ETag": video.etag, "Last-Modified": modified, **self._proxy_headers}
        status, first, last = 200, 0, size - 1
        header = self.headers.get("Range")
        # ignore_range acts like a proxy that drops Range on the way: Accept-Ranges is still advertised.
        if header and not sb.faults.ignore_range and not proxy and self._if_range_holds(video.etag):
            parsed = _parse_range(header, size)
            if parsed is False:
                self._error(
                    416,
                    "InvalidRange",
                    f"Range {header!r} is not satisfiable for {size} bytes",
                    None,
                    {"Content-Range": f"bytes */{size}", **headers},
                )
                return
            if isinstance(parsed, tuple):
                status, (first, last) = 206, parsed
                headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        length = last - first + 1
        # Headers always announce the full length, so a cut download is detectable as a short read.
        self.send_response(status)
        self.send_header("X-Request-Id", self._request_id)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        sb._count_download(task)
        cut = sb._take_cut(length)
        if proxy and f.proxy_cut_bytes is not None and f.proxy_cut_bytes < length:
            cut = f.proxy_cut_bytes if cut is None else min(cut, f.proxy_cut_bytes)
        began = time.monotonic()
        pieces: Iterable[memoryview] = video.pieces(first, last if cut is None else first + cut - 1)
        timed = _Until(pieces, began + f.proxy_cut_seconds) if proxy and f.proxy_cut_seconds is not None else None
        self._write_pieces(pieces if timed is None else timed, sb.faults.slow_download_bps)
        if timed is not None and timed.stopped:
            cut = cut or 0  # cut short by the clock: the connection closes below, like a byte cut
        if cut is None:
            sb._served(length, time.monotonic() - began)
        else:
            self.wfile.flush()
            self.close_connection = True  # the server then shuts the socket down: the client sees EOF early

    def _send_malformed(self, kind: str, answer: bytes) -> None:
        """A broken HTTP 200 in place of ``answer`` (the real JSON one), still naming its request."""
        if kind == "huge":
            self._send_huge(answer)
            return
        content_type = "application/json"
        if kind == "html":
            body, content_type = _PROXY_PAGE, "text/html; charset=utf-8"
        elif kind == "truncated":
            body = answer[: len(answer) // 2]
        elif kind == "empty":
            body = b""
        elif kind == "not_object":
            body = b"[" + answer + b"]"
        elif kind == "wrong_types" and self._native:
            output = {"task_id": 12345, "task_status": ["RUNNING"], "video_url": 7}
            body = json.dumps({"request_id": self._request_id, "output": output}).encode()
        elif kind == "wrong_types":
            body = json.dumps({"id": None, "status": {"x": 1}, "progress": "ninety"}).encode()
        else:  # missing: no output, no status, no id
            body = json.dumps({"request_id": self._request_id}).encode()
        self._send(200, body, content_type)

    def _send_huge(self, answer: bytes) -> None:
        """_HUGE_ANSWER bytes of valid JSON (the real answer plus one giant string member), written in
        pieces from a reused buffer instead of being built."""
        text = answer.strip()
        if text.startswith(b"{") and text.endswith(b"}") and text[1:-1].strip():
            head = text[:-1] + b', "padding": "'
        else:
            head = b'{"padding": "'
        tail = b'"}'
        self.send_response(200)
        self.send_header("X-Request-Id", self._request_id)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(_HUGE_ANSWER))
        self.end_headers()
        if self.command == "HEAD":
            return
        self.wfile.write(head)
        spaces, left = _filled(b" "), _HUGE_ANSWER - len(head) - len(tail)
        while left > 0:
            n = min(len(spaces), left)
            self.wfile.write(spaces[:n])
            left -= n
        self.wfile.write(tail)

    def _if_range_holds(self, etag: str) -> bool:
        """RFC 9110 13.1.5: a Range counts only if If-Range, when sent, is the current strong ETag.

        A date never holds: the video can change within a second (video_variant), so Last-Modified is
        only a weak validator here, and a weak one must not let parts of two versions be spliced.
        """
        value = self.headers.get("If-Range")
        return value is None or value.strip() == etag

    def _write_pieces(self, pieces: Iterable[memoryview], bps: int | None) -> None:
        if not bps:
            for piece in pieces:
                self.wfile.write(piece)
            return
        step = max(1, min(65536, bps // 20))  # ~20 writes a second keeps the rate smooth
        start, sent = time.monotonic(), 0
        for piece in pieces:
            for offset in range(0, len(piece), step):
                part = piece[offset : offset + step]
                self.wfile.write(part)
                sent += len(part)
                delay = start + sent / bps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    # -- control endpoints (no auth, not recorded) --

    def _control(self, path: str, query: str, body: Any, raw: bytes) -> None:
        sb = self.sandbox
        method = self.command
        if method == "GET" and path == "/_sandbox/health":
            self._send_json(200, {"ok": True})
        elif method == "GET" and path == "/_sandbox/requests":
            prefix = parse_qs(query).get("prefix", [""])[0]
            self._send_json(200, [_public_record(r) for r in sb.requests(prefix)])
        elif method == "GET" and path == "/_sandbox/faults":
            self._send_json(200, sb._faults_dict())
        elif method == "POST" and path == "/_sandbox/faults":
            self._change("fault", body, sb._merge_faults, sb._faults_dict)
        elif method == "GET" and path == "/_sandbox/timing":
            self._send_json(200, sb._timing_dict())
        elif method == "POST" and path == "/_sandbox/timing":
            self._change("timing", body, sb._merge_timing, sb._timing_dict)
        elif method == "GET" and path == "/_sandbox/tasks":
            self._send_json(200, sb.tasks())
        elif method == "GET" and path == "/_sandbox/stats":
            self._send_json(200, sb.stats())
        elif method == "GET" and path == "/_sandbox/flavor":
            self._send_json(200, {"flavor": sb.flavor})
        elif method == "POST" and path == "/_sandbox/flavor":
            self._change("flavor", body, sb._merge_flavor, lambda: {"flavor": sb.flavor})
        elif method == "POST" and path == "/_sandbox/reset":
            sb.reset()
            self._send_json(200, {"ok": True})
        else:
            self._error(404, "NotFound", f"No control endpoint {method} {path}")


def _public_record(record: RecordedRequest) -> dict[str, Any]:
    """A recorded request as served over HTTP: the key itself is never sent back, only its presence."""
    data = dataclasses.asdict(record)
    auth = data["headers"].get("authorization")
    if auth is not None:
        scheme = auth.strip().partition(" ")[0]
        data["headers"]["authorization"] = f"{scheme} [redacted]" if " " in auth.strip() else "[redacted]"
    return data


class Sandbox:
    """A gateway emulator on ``host:port`` (port 0 = a free one). Use as a context manager or start/stop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        queue_seconds: float = 2.0,
        run_seconds: float = 6.0,
        ttl_seconds: float = 86400.0,
        status_style: str = "upper",
        content_redirect: bool = False,
        faults: Faults | None = None,
        flavor: str = "docs",
    ) -> None:
        if status_style not in STATUS_STYLES:
            raise ValueError(f"status_style must be one of {', '.join(STATUS_STYLES)}, not {status_style!r}")
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {', '.join(FLAVORS)}, not {flavor!r}")
        # The answers' style (FLAVORS); status_style picks the unified words of the "house" flavor only.
        # POST /_sandbox/flavor switches it at runtime, reset() restores this one.
        self.flavor = self._initial_flavor = flavor
        self.api_key = api_key  # None: any non-empty Bearer key is accepted
        # Timings for tasks created from now on (each task keeps its own); POST /_sandbox/timing changes them.
        self.queue_seconds = queue_seconds
        self.run_seconds = run_seconds
        self.ttl_seconds = ttl_seconds
        self._initial_timing = (queue_seconds, run_seconds, ttl_seconds)
        # The (video_size, video_variant) last served and since when (wall clock): Last-Modified.
        self._video_key: tuple[int | None, int] = (None, 0)
        self._video_since = 0.0
        self.status_style = status_style
        self.content_redirect = content_redirect
        self.faults = faults if faults is not None else Faults()
        self._lock = threading.Lock()  # guards tasks, the request log, fault counters and the stats below
        self._tasks: dict[str, _Task] = {}
        self._log: list[RecordedRequest] = []
        # GET /_sandbox/stats (max_active_tasks is computed from the tasks' own timings instead).
        self._in_flight = 0  # API requests being handled right now
        self._max_in_flight = 0
        self._throttled = 0  # 429 answers sent, any cause
        self._creates = 0
        self._api_requests = 0
        # Video bodies written in full (any route) and the time spent writing them: the rate a client
        # really read at, free of its process start and status query (the benchmark's live-bar cost).
        self._video_bytes = 0
        self._video_seconds = 0.0
        self._admitted: deque[float] = deque()  # monotonic times of the requests rate_limit let through
        self._secret = secrets.token_bytes(16)
        # Bound here, not in start(), so the URL is known before serving (``wanvid sandbox`` prints it first).
        self._server = _Server((host, port), self)
        self.port: int = int(self._server.server_address[1])
        self.url: str = f"http://{_url_host(host)}:{self.port}"
        self._thread: threading.Thread | None = None
        self._started = False
        self._closed = False

    # -- lifecycle --

    def start(self) -> Sandbox:
        """Serve in a daemon thread and return self."""
        if self._started:
            raise RuntimeError("this Sandbox was already started")
        self._started = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="wanvid-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until stop() is called from another one (KeyboardInterrupt propagates)."""
        if self._started:
            raise RuntimeError("this Sandbox was already started")
        self._started = True
        try:
            self._server.serve_forever(poll_interval=0.05)
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving, close the port and drop open connections. Idempotent."""
        if self._started and not self._closed:
            self._server.shutdown()  # waits for the accept loop to exit (~50 ms poll)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.server_close()
        # Keep-alive connections would otherwise keep their handler threads (and answers) alive.
        with self._server.connections_lock:
            connections = list(self._server.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection --

    def requests(self, path_prefix: str = "") -> list[RecordedRequest]:
        """A snapshot of recorded API and /_oss requests whose path starts with ``path_prefix``."""
        with self._lock:
            return [r for r in self._log if r.path.startswith(path_prefix)]

    def reset(self) -> None:
        """Forget all tasks and recorded requests, clear every fault (the Faults object is kept), zero the
        stats and restore the constructor's timings.

        ``in_flight`` is a live gauge, so it is kept (requests still being answered end later);
        ``max_in_flight`` restarts from it.
        """
        with self._lock:
            self._tasks.clear()
            self._log.clear()
            self._max_in_flight = self._in_flight
            self._throttled = self._creates = self._api_requests = self._video_bytes = 0
            self._video_seconds = 0.0
            self._admitted.clear()
            for name, value in dataclasses.asdict(Faults()).items():
                setattr(self.faults, name, value)
            self.queue_seconds, self.run_seconds, self.ttl_seconds = self._initial_timing
            self._video_key, self._video_since = (None, 0), 0.0
            self.flavor = self._initial_flavor

    def stats(self) -> dict[str, float]:
        """Load counters since start or reset, as ``GET /_sandbox/stats`` shows them.

        API requests are those of the create, query and content routes (not ``/_sandbox/``, not signed
        ``/_oss`` URLs), throttled ones included. ``max_active_tasks`` is the most tasks unfinished at one
        moment, each counted from its creation until its status turns SUCCEEDED or FAILED (or it expires
        first), from the tasks' timings: it does not depend on anyone polling. ``video_bytes`` and
        ``video_seconds`` add up the video bodies written in full and the wall time each took, from the
        first byte to the last one taken by the socket (concurrent downloads add up their own times).
        """
        with self._lock:
            return {
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "max_active_tasks": _max_overlap(self._tasks.values()),
                "throttled": self._throttled,
                "creates": self._creates,
                "requests": self._api_requests,
                "video_bytes": self._video_bytes,
                "video_seconds": round(self._video_seconds, 6),
            }

    def tasks(self) -> list[dict[str, Any]]:
        """Every task as ``GET /_sandbox/tasks`` shows it: status now, wall-clock times, polls, downloads."""
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "id": t.id,
                    "model": t.model,
                    "protocol": t.protocol,
                    "status": self._status(t, now - t.created_mono) or _UNKNOWN,
                    "created_at": t.created_wall,
                    "ends_at": t.created_wall + t.ends_after,
                    "expires_at": t.created_wall + t.ttl_seconds,
                    "polls": t.polls,
                    "downloads": t.downloads,
                }
                for t in self._tasks.values()
            ]

    # -- internals used by the handler --

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._log.append(record)

    def _faults_dict(self) -> dict[str, Any]:
        with self._lock:
            return dataclasses.asdict(self.faults)

    def _timing_dict(self) -> dict[str, float]:
        with self._lock:
            return {name: getattr(self, name) for name in _TIMING_NAMES}

    def _merge_timing(self, changes: dict[str, Any]) -> tuple[str | None, str] | None:
        """Apply ``changes`` to the timings of future tasks, all-or-nothing; else return (param, message)."""
        for name, value in changes.items():
            if name not in _TIMING_NAMES:
                return name, f"Unknown timing {name!r}; known: {', '.join(_TIMING_NAMES)}"
            if not _is_seconds(value):
                return name, f"{name} must be a finite number >= 0"
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)
        return None

    def _merge_faults(self, changes: dict[str, Any]) -> tuple[str | None, str] | None:
        """Apply ``changes`` all-or-nothing; on a bad key or value return (param, message)."""
        for name, value in changes.items():
            if name not in _FAULT_NAMES:
                return name, f"Unknown fault {name!r}; known: {', '.join(_FAULT_NAMES)}"
            problem = _fault_value_error(name, value)
            if problem:
                return name, problem
        with self._lock:
            for name, value in changes.items():
                setattr(self.faults, name, value)
        return None

    def _merge_flavor(self, changes: dict[str, Any]) -> tuple[str | None, str] | None:
        """Switch to ``changes["flavor"]`` (the only key); else return (param, message)."""
        if set(changes) != {"flavor"}:
            return None, 'Send {"flavor": NAME}'
        if changes["flavor"] not in FLAVORS:
            return "flavor", f"flavor must be one of {', '.join(FLAVORS)}"
        with self._lock:
            self.flavor = changes["flavor"]
        return None

    def _api_started(self) -> None:
        with self._lock:
            self._api_requests += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _api_ended(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _count_throttled(self) -> None:
        with self._lock:
            self._throttled += 1

    def _take_rate_slot(self) -> float | None:
        """Admit one API request under rate_limit (None), or return the seconds until a slot frees."""
        rate = self.faults.rate_limit
        if rate is None:
            return None
        problem = _fault_value_error("rate_limit", rate)  # set as an attribute, so not checked yet
        if problem:
            raise ValueError(problem)
        slots, window = _rate_window(rate)
        now = time.monotonic()
        with self._lock:
            admitted = self._admitted
            while admitted and admitted[0] <= now - window:
                admitted.popleft()
            if len(admitted) < slots:
                admitted.append(now)
                return None
            # Full: a slot frees when the oldest of the last ``slots`` admissions leaves the window (the
            # ones before it too, which only matters when rate_limit was lowered meanwhile).
            frees_at = admitted[len(admitted) - slots] + window
        return max(0.1, math.ceil((frees_at - now) * 10) / 10)

    def _take(self, count: str) -> bool:
        """Use up one of the count fault ``count`` (drop_connections, fetch_task_errors): whether one was left."""
        with self._lock:
            left = getattr(self.faults, count)
            if left > 0:
                setattr(self.faults, count, left - 1)
                return True
        return False

    def _take_malformed(self) -> str | None:
        with self._lock:
            f = self.faults
            if f.malformed is None or f.malformed_count <= 0:
                return None
            kind = f.malformed
            f.malformed_count -= 1
            if f.malformed_count == 0:
                # Spent: back to the defaults, so a later {"malformed": ...} alone arms one answer again.
                f.malformed, f.malformed_count = None, 1
            return kind

    def _take_api_fault(self, *, content: bool = False) -> tuple[int, str, str, dict[str, str]] | None:
        with self._lock:
            f = self.faults
            if f.throttle > 0:
                f.throttle -= 1
                headers = {"Retry-After": _retry_after_text(f.retry_after)}
                return 429, "Throttling", "Requests rate limit exceeded, please try again later", headers
            if f.server_errors > 0:
                f.server_errors -= 1
                status = f.server_error_status
                return (
                    status,
                    _ERROR_CODE_5XX.get(status, "InternalError"),
                    "The server had an error (injected)",
                    {},
                )
            if content and f.content_errors > 0:
                f.content_errors -= 1
                status = f.content_error_status
                message = "The video could not be fetched (injected); try the task's video_url"
                return status, _ERROR_CODE_5XX.get(status, "InternalError"), message, {}
        return None

    def _current_video(self, task: _Task) -> tuple[_Video, str]:
        """The video to serve now and its Last-Modified: when the task ended, or when the bytes served
        last changed (video_size / video_variant), whichever is later."""
        f = self.faults
        key = (f.video_size, f.video_variant)
        for name, value in zip(("video_size", "video_variant"), key, strict=True):
            problem = _fault_value_error(name, value)  # set as an attribute, so not checked yet
            if problem:
                raise ValueError(problem)
        with self._lock:
            if key != self._video_key:
                self._video_key, self._video_since = key, time.time()
            since = self._video_since
        modified = max(task.created_wall + task.ends_after, since)
        return _video(*key), email.utils.formatdate(modified, usegmt=True)

    def _count_download(self, task: _Task) -> None:
        with self._lock:
            task.downloads += 1

    def _served(self, size: int, seconds: float) -> None:
        with self._lock:
            self._video_bytes += size
            self._video_seconds += seconds

    def _take_cut(self, length: int) -> int | None:
        with self._lock:
            f = self.faults
            if f.cut_download_after is None or f.cut_downloads <= 0 or f.cut_download_after >= length:
                return None
            f.cut_downloads -= 1
            return f.cut_download_after

    def _create(self, new: _NewTask, protocol: str) -> _Task:
        with self._lock:
            # Timings and failure faults are captured at creation: changing them later doesn't rewrite
            # running tasks.
            f = self.faults
            limit = f.task_limit
            if limit is not None:
                # Checked under the same lock as the insert: concurrent creates can't both squeeze in.
                now = time.monotonic()
                unfinished = sum(1 for t in self._tasks.values() if now - t.created_mono < _active_span(t))
                if unfinished >= limit:
                    message = (
                        "Allocated quota exceeded, please increase your quota limit. "
                        f"({unfinished} unfinished tasks; the sandbox's task_limit is {limit})"
                    )
                    raise _Reject(429, "Throttling.AllocationQuota", message, None, {"Retry-After": "1"})
            failure: tuple[str, str] | None = None
            if f.fail_after is not None:
                failure = (f.fail_code or "DataInspectionFailed", f.fail_message or _MODERATION_MESSAGE)
            elif f.fail_code or f.fail_message:
                failure = (
                    f.fail_code or "InternalError",
                    f.fail_message or "The task failed (injected by the sandbox)",
                )
            ends_after = self.queue_seconds + self.run_seconds if f.fail_after is None else f.fail_after
            task = _Task(
                **dataclasses.asdict(new),
                # new-api's public ids: "task_" and 32 random letters and digits (model/task.go:139-141).
                id="task_" + "".join(secrets.choice(_ID_CHARS) for _ in range(32))
                if self.flavor == "newapi"
                else str(uuid.uuid4()),
                protocol=protocol,
                created_mono=time.monotonic(),
                created_wall=time.time(),
                queue_seconds=self.queue_seconds,
                run_seconds=self.run_seconds,
                ttl_seconds=self.ttl_seconds,
                ends_after=ends_after,
                failure=failure,
                unknown_left=f.unknown_queries,
                regress=f.regress_once,
            )
            self._tasks[task.id] = task
            self._creates += 1
        return task

    def _has_task(self, task_id: str) -> bool:
        """Whether the task was created (and not forgotten by reset), expired or not."""
        with self._lock:
            return task_id in self._tasks

    def _lookup(self, task_id: str, *, poll: bool = False) -> tuple[_Task, str, float] | None:
        """(task, native status, seconds since creation), or None when unknown or expired.

        ``poll`` counts the lookup as a status query of the task (expired or not) for ``tasks()``.
        """
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            elapsed = time.monotonic() - task.created_mono
            status = self._status(task, elapsed)
            if poll:
                task.polls += 1
                if status is not None:
                    status = self._as_answered(task, status)
        return None if status is None else (task, status, elapsed)

    @staticmethod
    def _as_answered(task: _Task, status: str) -> str:
        """The status a query answers under the unknown_queries and regress_once faults (lock held)."""
        if task.unknown_left > 0:
            task.unknown_left -= 1
            return _UNKNOWN
        if status in (_SUCCEEDED, _FAILED):
            task.ended_answers += 1
            if task.regress and task.ended_answers == 2:  # the query right after the first ended answer
                return _RUNNING
        return status

    def _status(self, task: _Task, elapsed: float) -> str | None:
        """The native status ``elapsed`` seconds after creation, or None once expired."""
        if self.faults.expire or elapsed > task.ttl_seconds:
            return None
        if elapsed >= task.ends_after:
            return _SUCCEEDED if task.failure is None else _FAILED
        return _PENDING if elapsed < task.queue_seconds else _RUNNING

    @staticmethod
    def _not_polled(task: _Task, status: str, elapsed: float) -> bool:
        """Whether the gateway's own first poll of the task is still to come: the first half of its queue
        time stands for that (the real gateway polls upstream about every 15 s)."""
        return status == _PENDING and elapsed < task.queue_seconds / 2

    def _unified_status(self, task: _Task, status: str, elapsed: float) -> str:
        flavor = self.flavor
        if flavor == "newapi":
            # Before its first poll the stored upstream answer is the create's PENDING: "queued"
            # (ali/adaptor.go:497, 522-526), never NOT_START on this route.
            return _NEWAPI_WORDS[status]
        if flavor == "docs":  # ope.ai's pages show the task table's own words
            return self._task_table_status(task, status, elapsed)
        if self.status_style == "newapi" and self._not_polled(task, status, elapsed):
            return "NOT_START"
        return _UNIFIED_STATUS[self.status_style][status]

    def _task_table_status(self, task: _Task, status: str, elapsed: float) -> str:
        """new-api's task-table word (model/task.go:34-41), as its content route and ope.ai's pages show it."""
        return "NOT_START" if self._not_polled(task, status, elapsed) else _TASK_TABLE[status]

    def _unified_view(self, task: _Task, status: str, elapsed: float) -> dict[str, Any]:
        if self.flavor == "newapi":
            return self._newapi_view(task, status, elapsed)
        view: dict[str, Any] = {
            "id": task.id,
            "object": "video",
            "status": self._unified_status(task, status, elapsed),
            "created_at": int(task.created_wall),
            "model": task.model,
            "prompt": task.prompt,
            "size": task.size,
            "seconds": task.seconds,
        }
        ended = status in (_SUCCEEDED, _FAILED)
        if status == _RUNNING:
            done = (elapsed - task.queue_seconds) / task.run_seconds if task.run_seconds > 0 else 1.0
            view["progress"] = max(0, min(99, int(100 * done)))
        elif ended:
            view["progress"] = 100
            view["completed_at"] = int(task.created_wall + task.ends_after)
        view["expires_at"] = int(task.created_wall + task.ttl_seconds)
        if status == _FAILED and task.failure:
            code, message = task.failure
            view["error"] = {"code": code, "message": message}
        elif status == _SUCCEEDED:
            view["metadata"] = {"url": self._signed_url(task)}
        return view

    def _newapi_view(self, task: _Task, status: str, elapsed: float) -> dict[str, Any]:
        """A unified answer as new-api's ali adaptor builds it (ConvertToOpenAIVideo, ali/adaptor.go:489-520,
        dto/openai_video.go:15-30): no prompt, size, seconds or expires_at; progress from the task table's
        steps; completed_at is the task row's last update, set while it still runs; metadata.url always
        there, empty until the video is ready; a failed task carries error {code, message} at HTTP 200."""
        # UNKNOWN (the unknown_queries fault) changes the word only: the row keeps its progress.
        shown = self._status(task, elapsed) or status if status == _UNKNOWN else status
        if self._not_polled(task, shown, elapsed):
            progress, updated = 0, 0.0
        else:
            progress = _NEWAPI_PROGRESS[shown]
            steps = (task.queue_seconds / 2, min(task.queue_seconds, task.ends_after), task.ends_after)
            updated = max((step for step in steps if step <= elapsed), default=0.0)
        view: dict[str, Any] = {
            "id": task.id,
            "task_id": task.id,  # the deprecated alias (dto/openai_video.go:17; doubao/adaptor.go:352)
            "object": "video",
            "model": task.model,
            "status": _NEWAPI_WORDS[status],
            "progress": progress,
            "created_at": int(task.created_wall),
            "completed_at": int(task.created_wall + updated),
            "metadata": {"url": self._signed_url(task) if status == _SUCCEEDED else ""},
        }
        if status == _FAILED and task.failure:
            code, message = task.failure
            view["error"] = {"code": code, "message": message}
        return view

    def _signature(self, task_id: str, expires: str) -> str:
        return hmac.new(self._secret, f"{task_id}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def _signed_url(self, task: _Task) -> str:
        # Host "localhost", not the API's 127.0.0.1: clients must treat it as a foreign host, drop the key.
        expires = str(int(task.created_wall + task.ttl_seconds) + 1)
        signature = self._signature(task.id, expires)
        return f"http://localhost:{self.port}/_oss/{task.id}.mp4?Expires={expires}&Signature={signature}"
