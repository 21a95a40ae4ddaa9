"""The sandbox's HTTP request handler: routing, auth, the error envelope, both protocols' create, query
and content routes, ``/v1/models`` (its answer is ``models``'), the signed ``/_oss`` object store, video
bodies and the ``/_sandbox/`` control endpoints.

It owns the HTTP side of every answer and asks its ``Sandbox`` (``server``) for state: tasks, faults,
counters. Validation (``validation``), the flavors' answers (``flavors``), the faults' rules (``faults``)
and the video's bytes (``video``) live in their own modules.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from wanvid.sandbox import flavors
from wanvid.sandbox import models as sandbox_models
from wanvid.sandbox.faults import HUGE_ANSWER, huge_answer, malformed_body
from wanvid.sandbox.tasks import FAILED, PENDING, SUCCEEDED, UNKNOWN, Task
from wanvid.sandbox.validation import FORM_TYPES, Reject, bad, form_body, validate_native, validate_unified
from wanvid.sandbox.video import PROXY_PAGE, Until, if_range_holds, parse_range, write_pieces

if TYPE_CHECKING:
    from wanvid.sandbox.server import Sandbox, Server


@dataclass
class RecordedRequest:
    """One API or ``/_oss`` request as it arrived, for tests to assert on."""

    method: str
    path: str  # with query string
    headers: dict[str, str]  # lower-cased names
    json: Any | None
    body_size: int


def public_record(record: RecordedRequest) -> dict[str, Any]:
    """A recorded request as served over HTTP: the key itself is never sent back, only its presence."""
    data = dataclasses.asdict(record)
    auth = data["headers"].get("authorization")
    if auth is not None:
        scheme = auth.strip().partition(" ")[0]
        data["headers"]["authorization"] = f"{scheme} [redacted]" if " " in auth.strip() else "[redacted]"
    return data


def _wall(ts: float) -> str:
    """DashScope's time format: ``2026-11-20 10:00:00.123``, milliseconds, no zone: China Standard Time (UTC+8)
    whatever this machine's zone, as DashScope's own clock (its signed URLs' Expires = end_time + 24 h there)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + 8 * 3600)) + f".{int(ts * 1000) % 1000:03d}"


# new-api's web console (its index page), answered for any path outside its API; a stand-in of the same shape.
CONSOLE_PAGE = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>New API</title></head>'
    b'<body><div id="root"></div></body></html>\n'
)


class Handler(BaseHTTPRequestHandler):
    """The requests of one connection (keep-alive), each answered from the ``Sandbox`` its server serves."""

    protocol_version = "HTTP/1.1"  # keep-alive; every answer therefore carries Content-Length
    server_version = "wanvid-sandbox"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would add ~40 ms
    timeout = 120  # an idle keep-alive connection must not pin a thread forever
    server: Server
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
        # A JSON answer leaves the count before its first byte does: a client that reads it and sends its
        # next request at once must never find this one still in flight (stats a test can count on).
        self._uncount()
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    _counted = False  # this request is counted in the sandbox's in-flight gauge

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.sandbox._api_ended()

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
        ("GET", re.compile(r"/v1/models"), "_models"),  # what the key may use (wanvid config check)
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
        if raw and path == "/v1/videos" and content_type.lower().startswith(FORM_TYPES):
            body = form_body(raw, content_type)  # None when unreadable, answered like bad JSON
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
                self._no_route(path)
                return
            name, m = route
            sb = self.sandbox
            sb._api_started()
            self._counted = True
            try:
                self._api(name, m, method, raw, body)
            except Reject as exc:  # answered here, so the answer is written while still counted in flight
                self._error(exc.status, exc.code, exc.message, exc.param, exc.headers, exc.body)
            finally:
                self._uncount()
        except Reject as exc:
            self._error(exc.status, exc.code, exc.message, exc.param, exc.headers, exc.body)

    def _no_route(self, path: str) -> None:
        """What new-api answers a request no route takes, for every method (router/web-router.go NoRoute): under
        its API and asset prefixes, 404 with controller/relay.go RelayNotFound's envelope (no request_id, even
        on /api/); anywhere else, the web console's index page, 200 text/html."""
        if any(path == p or path.startswith(p + "/") for p in ("/api", "/v1", "/v1beta", "/assets")):
            error = {"message": f"Invalid URL ({self.command} {path})", "type": "invalid_request_error"}
            body = json.dumps({"error": {**error, "param": "", "code": ""}}).encode()
            self._send(404, body, "application/json; charset=utf-8")
            return
        self._send(200, CONSOLE_PAGE, "text/html; charset=utf-8", {"Cache-Control": "no-cache"})

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
            raise Reject(401, "", message, body={"error": {"message": message, "type": "new_api_error", "code": ""}})
        if problem:
            raise Reject(401, "InvalidApiKey", problem)
        if raw and body is None and method == "POST":
            raise bad(None, "The request body is not valid JSON")
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

    # -- the model list --

    def _models(self) -> None:
        self._send_json(200, sandbox_models.answer(getattr(self.sandbox, "models", sandbox_models.LISTED)))

    # -- native protocol --

    def _native_create(self, body: Any) -> None:
        task = self.sandbox._create(validate_native(body), "native")
        self._send_json(200, {"output": {"task_status": PENDING, "task_id": task.id}})

    def _dashscope_create(self, body: Any) -> None:
        # DashScope runs video synthesis only as an async task, asked for with this header.
        if self.headers.get("X-DashScope-Async", "").strip().lower() != "enable":
            raise Reject(403, "AccessDenied", "current user api does not support synchronous calls")
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
                        "task_status": UNKNOWN,
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
        if status != PENDING:  # an early failure can end a task before it was ever scheduled
            out["scheduled_time"] = _wall(task.created_wall + min(task.queue_seconds, task.ends_after))
        if status in (SUCCEEDED, FAILED):
            out["end_time"] = _wall(task.created_wall + task.ends_after)
        if status == SUCCEEDED:
            out["video_url"] = sb._signed_url(task)
        out["orig_prompt"] = task.prompt
        answer: dict[str, Any] = {"output": out}
        if status == SUCCEEDED:
            extended = (task.prompt + " Cinematic lighting, smooth camera motion.").strip()
            out["actual_prompt"] = extended if task.prompt_extend else task.prompt
            answer["usage"] = {"duration": task.duration, "video_count": 1, "SR": int(task.resolution[:-1])}
        elif status == FAILED and task.failure:
            out["code"], out["message"] = task.failure
        self._send_json(200, answer)

    def _native_content(self, task_id: str) -> None:
        self._content(task_id, native=True)

    # -- unified protocol --

    def _unified_create(self, body: Any) -> None:
        sb = self.sandbox
        flavors.check_unified_create(sb.flavor, body)
        task = sb._create(validate_unified(body), "unified")
        self._send_json(200, flavors.created_answer(sb.flavor, sb._unified_view(task, PENDING, 0.0)))

    def _unified_query(self, task_id: str) -> None:
        found = self.sandbox._lookup(task_id, poll=True)
        if found is None:
            raise flavors.unified_not_found(self.sandbox.flavor, task_id, content=False)
        self._send_json(200, self.sandbox._unified_view(*found))

    def _unified_content(self, task_id: str) -> None:
        self._content(task_id, native=False)

    # -- downloads --

    def _content(self, task_id: str, *, native: bool) -> None:
        sb = self.sandbox
        found = sb._lookup(task_id)
        if found is None:
            if native:
                raise Reject(404, "ResourceNotFound", f"Task {task_id} does not exist or has expired")
            raise flavors.unified_not_found(sb.flavor, task_id, content=True)
        task, status, elapsed = found
        if status != SUCCEEDED:
            raise flavors.not_ready(sb.flavor, sb.status_style, task, status, elapsed, native=native)
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
            raise Reject(400, "InvalidArgument", message)
        m = re.fullmatch(r"/_oss/([^/]+)\.mp4", path)
        qs = parse_qs(query)
        expires, signature = qs.get("Expires", [""])[0], qs.get("Signature", [""])[0]
        task_id = unquote(m[1]) if m else ""
        if not m or not expires.isdigit() or not hmac.compare_digest(signature, sb._signature(task_id, expires)):
            raise Reject(403, "SignatureDoesNotMatch", "The request signature does not match")
        if int(expires) < time.time():
            raise Reject(403, "AccessDenied", "Request has expired")
        found = sb._lookup(task_id)
        if found is None and sb._has_task(task_id):
            raise Reject(403, "AccessDenied", "Request has expired")  # the URL dies with its task's TTL
        if found is None or found[1] != SUCCEEDED:
            raise Reject(404, "NoSuchKey", "The specified key does not exist")
        self._serve_video(found[0])

    def _serve_video(self, task: Task, *, proxied: bool = False) -> None:
        """The video body; ``proxied``: for a content route, where the proxy_* and content_html faults act."""
        sb = self.sandbox
        if self._dropping:
            self.close_connection = True
            return
        f = sb.faults
        if f.video_html or (proxied and f.content_html):
            self._send(200, PROXY_PAGE, "text/html; charset=utf-8")
            return
        proxy = proxied and (f.proxy_cut_bytes is not None or f.proxy_cut_seconds is not None)
        video, modified = sb._current_video(task)
        size = video.size
        headers = {"Accept-Ranges": "bytes", "ETag": video.etag, "Last-Modified": modified, **self._proxy_headers}
        status, first, last = 200, 0, size - 1
        header = self.headers.get("Range")
        holds = if_range_holds(self.headers.get("If-Range"), video.etag)
        # ignore_range acts like a proxy that drops Range on the way: Accept-Ranges is still advertised.
        if header and not sb.faults.ignore_range and not proxy and holds:
            parsed = parse_range(header, size)
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
        timed = Until(pieces, began + f.proxy_cut_seconds) if proxy and f.proxy_cut_seconds is not None else None
        write_pieces(self.wfile, pieces if timed is None else timed, sb.faults.slow_download_bps)
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
        body, content_type = malformed_body(kind, answer, native=self._native, request_id=self._request_id)
        self._send(200, body, content_type)

    def _send_huge(self, answer: bytes) -> None:
        """HUGE_ANSWER bytes of valid JSON around ``answer``, written in pieces (``faults.huge_answer``)."""
        self.send_response(200)
        self.send_header("X-Request-Id", self._request_id)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(HUGE_ANSWER))
        self.end_headers()
        if self.command == "HEAD":
            return
        for piece in huge_answer(answer):
            self.wfile.write(piece)

    # -- control endpoints (no auth, not recorded) --

    def _control(self, path: str, query: str, body: Any, raw: bytes) -> None:
        sb = self.sandbox
        method = self.command
        if method == "GET" and path == "/_sandbox/health":
            self._send_json(200, {"ok": True})
        elif method == "GET" and path == "/_sandbox/requests":
            prefix = parse_qs(query).get("prefix", [""])[0]
            self._send_json(200, [public_record(r) for r in sb.requests(prefix)])
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
