"""The sandbox's faults: the ``Faults`` switches, the check of a value set over HTTP, and the rules that
use them up (count faults, the rate limit's sliding window, a task's failure, broken answers).

The functions that read and change a ``Faults`` are called with the sandbox's lock held: they only
decide, the HTTP handler acts on what they return.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wanvid.sandbox.video import PAD_HEADER, PROXY_PAGE, filled, min_video_size

# Broken answers the ``malformed`` fault can put in place of a create or query answer (all HTTP 200).
MALFORMED_KINDS = ("html", "truncated", "empty", "not_object", "wrong_types", "missing", "huge")
MODERATION_MESSAGE = "Input data may contain inappropriate content. (injected by the sandbox)"
ERROR_CODE_5XX = {500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
HUGE_ANSWER = 64 * 2**20  # bytes of the malformed="huge" answer


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


FAULT_NAMES = tuple(f.name for f in dataclasses.fields(Faults))

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


def fault_value_error(name: str, value: Any) -> str | None:
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
        ok, need = value is None or is_seconds(value), "a finite number >= 0 or null"
    elif name == "slow_download_bps":
        ok, need = value is None or (is_int and value > 0), "an integer > 0 or null"
    elif name == "video_variant":
        ok, need = is_int and 0 <= value < 2**64, "an integer from 0 to 2**64 - 1"
    elif name == "video_size":
        low = min_video_size()
        ok = value is None or (is_int and low <= value < 2**63)
        need = f"null or an integer from {low} (the sample plus a {PAD_HEADER}-byte box header) to 2**63 - 1"
    elif name == "fail_after":
        ok, need = value is None or is_seconds(value), "a finite number >= 0 or null"
    elif name == "rate_limit":
        ok = value is None or (is_seconds(value) and value > 0)
        need = "a finite number > 0 (API requests per second) or null (no limit)"
    elif name == "task_limit":
        ok, need = value is None or (is_int and value >= 1), "an integer >= 1 (unfinished tasks) or null (no limit)"
    else:  # expire, ignore_range, video_html, content_html
        ok, need = isinstance(value, bool), "true or false"
    return None if ok else f"{name} must be {need}"


def is_seconds(value: Any) -> bool:
    """A finite JSON number >= 0 (bools are not numbers here; Infinity would overflow timestamps)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0


def retry_after_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def rate_window(rate: float) -> tuple[int, float]:
    """(requests, seconds) of the sliding window that allows ``rate`` requests a second: (n, 1.0) for a
    whole n; else ceil(rate) requests per ceil(rate) / rate seconds, so slow rates still admit one."""
    slots = max(1, math.ceil(rate))
    return slots, 1.0 if slots == rate else slots / rate


def admit(admitted: deque[float], rate: float, now: float) -> float | None:
    """Admit one API request at ``now`` under ``rate`` (None, and ``now`` joins ``admitted``, the monotonic
    times of the requests let through), or return the seconds until a slot frees. Lock held."""
    slots, window = rate_window(rate)
    while admitted and admitted[0] <= now - window:
        admitted.popleft()
    if len(admitted) < slots:
        admitted.append(now)
        return None
    # Full: a slot frees when the oldest of the last ``slots`` admissions leaves the window (the
    # ones before it too, which only matters when rate_limit was lowered meanwhile).
    frees_at = admitted[len(admitted) - slots] + window
    return max(0.1, math.ceil((frees_at - now) * 10) / 10)


def take(faults: Faults, count: str) -> bool:
    """Use up one of the count fault ``count`` (drop_connections, fetch_task_errors): whether one was left.
    Lock held."""
    left = getattr(faults, count)
    if left > 0:
        setattr(faults, count, left - 1)
        return True
    return False


def take_malformed(faults: Faults) -> str | None:
    """The broken kind the next create/query answer becomes, if the malformed fault is armed. Lock held."""
    f = faults
    if f.malformed is None or f.malformed_count <= 0:
        return None
    kind = f.malformed
    f.malformed_count -= 1
    if f.malformed_count == 0:
        # Spent: back to the defaults, so a later {"malformed": ...} alone arms one answer again.
        f.malformed, f.malformed_count = None, 1
    return kind


def take_api_fault(faults: Faults, *, content: bool = False) -> tuple[int, str, str, dict[str, str]] | None:
    """The error an API request answers instead, as (status, code, message, headers): throttle, then
    server_errors, then (on a content route) content_errors. Lock held."""
    f = faults
    if f.throttle > 0:
        f.throttle -= 1
        headers = {"Retry-After": retry_after_text(f.retry_after)}
        return 429, "Throttling", "Requests rate limit exceeded, please try again later", headers
    if f.server_errors > 0:
        f.server_errors -= 1
        status = f.server_error_status
        return (
            status,
            ERROR_CODE_5XX.get(status, "InternalError"),
            "The server had an error (injected)",
            {},
        )
    if content and f.content_errors > 0:
        f.content_errors -= 1
        status = f.content_error_status
        message = "The video could not be fetched (injected); try the task's video_url"
        return status, ERROR_CODE_5XX.get(status, "InternalError"), message, {}
    return None


def take_cut(faults: Faults, length: int) -> int | None:
    """The body bytes after which a download of ``length`` bytes is cut (cut_download_after), if any.
    Lock held."""
    f = faults
    if f.cut_download_after is None or f.cut_downloads <= 0 or f.cut_download_after >= length:
        return None
    f.cut_downloads -= 1
    return f.cut_download_after


def failure(faults: Faults) -> tuple[str, str] | None:
    """The (code, message) a task created now ends FAILED with, or None when it is to succeed."""
    f = faults
    if f.fail_after is not None:
        return f.fail_code or "DataInspectionFailed", f.fail_message or MODERATION_MESSAGE
    if f.fail_code or f.fail_message:
        return f.fail_code or "InternalError", f.fail_message or "The task failed (injected by the sandbox)"
    return None


def malformed_body(kind: str, answer: bytes, *, native: bool, request_id: str) -> tuple[bytes, str]:
    """(body, Content-Type) of a broken answer of ``kind`` (not "huge") in place of ``answer``, the real
    JSON one; ``native``: of a DashScope-shaped route."""
    content_type = "application/json"
    if kind == "html":
        body, content_type = PROXY_PAGE, "text/html; charset=utf-8"
    elif kind == "truncated":
        body = answer[: len(answer) // 2]
    elif kind == "empty":
        body = b""
    elif kind == "not_object":
        body = b"[" + answer + b"]"
    elif kind == "wrong_types" and native:
        output = {"task_id": 12345, "task_status": ["RUNNING"], "video_url": 7}
        body = json.dumps({"request_id": request_id, "output": output}).encode()
    elif kind == "wrong_types":
        body = json.dumps({"id": None, "status": {"x": 1}, "progress": "ninety"}).encode()
    else:  # missing: no output, no status, no id
        body = json.dumps({"request_id": request_id}).encode()
    return body, content_type


def huge_answer(answer: bytes) -> Iterator[bytes | memoryview]:
    """HUGE_ANSWER bytes of valid JSON (the real answer plus one giant string member), in pieces from a
    reused buffer instead of being built."""
    text = answer.strip()
    if text.startswith(b"{") and text.endswith(b"}") and text[1:-1].strip():
        head = text[:-1] + b', "padding": "'
    else:
        head = b'{"padding": "'
    tail = b'"}'
    yield head
    spaces, left = filled(b" "), HUGE_ANSWER - len(head) - len(tail)
    while left > 0:
        n = min(len(spaces), left)
        yield spaces[:n]
        left -= n
    yield tail
