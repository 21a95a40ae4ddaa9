"""The sandbox itself: ``Sandbox``, its HTTP server and lifecycle (start, serve_forever, stop), and the
state every request reads and changes under one lock: tasks, faults, timings, flavor, the request log
and the load counters that ``/_sandbox/`` shows.

``handler`` answers the requests and calls into the ``Sandbox`` it serves; the rules it applies live in
``tasks``, ``faults``, ``flavors``, ``validation`` and ``video``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import hashlib
import hmac
import secrets
import socket
import threading
import time
from collections import deque
from http.server import ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

from wanvid.sandbox import faults as fault_rules  # not `faults`: Sandbox.faults is the switches
from wanvid.sandbox.faults import FAULT_NAMES, Faults, fault_value_error, is_seconds
from wanvid.sandbox.flavors import FLAVORS, STATUS_STYLES, new_task_id, unified_view
from wanvid.sandbox.handler import Handler, RecordedRequest
from wanvid.sandbox.tasks import UNKNOWN, NewTask, Task, active_span, as_answered, max_overlap, status_at
from wanvid.sandbox.validation import Reject
from wanvid.sandbox.video import Video, video_for

_TIMING_NAMES = ("queue_seconds", "run_seconds", "ttl_seconds")


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Server(ThreadingHTTPServer):
    """One Sandbox's HTTP server: a thread per connection, each open connection tracked so that stop() can
    drop keep-alive ones."""

    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops bursts of concurrent clients

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall for seconds.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client hanging up is normal, not worth a traceback
        super().handle_error(request, client_address)


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
        self._tasks: dict[str, Task] = {}
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
        self._server = Server((host, port), self)
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
                "max_active_tasks": max_overlap(self._tasks.values()),
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
                    "status": status_at(t, now - t.created_mono, expire=self.faults.expire) or UNKNOWN,
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
            if not is_seconds(value):
                return name, f"{name} must be a finite number >= 0"
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)
        return None

    def _merge_faults(self, changes: dict[str, Any]) -> tuple[str | None, str] | None:
        """Apply ``changes`` all-or-nothing; on a bad key or value return (param, message)."""
        for name, value in changes.items():
            if name not in FAULT_NAMES:
                return name, f"Unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}"
            problem = fault_value_error(name, value)
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
        problem = fault_value_error("rate_limit", rate)  # set as an attribute, so not checked yet
        if problem:
            raise ValueError(problem)
        now = time.monotonic()
        with self._lock:
            return fault_rules.admit(self._admitted, rate, now)

    def _take(self, count: str) -> bool:
        """Use up one of the count fault ``count`` (drop_connections, fetch_task_errors): whether one was left."""
        with self._lock:
            return fault_rules.take(self.faults, count)

    def _take_malformed(self) -> str | None:
        with self._lock:
            return fault_rules.take_malformed(self.faults)

    def _take_api_fault(self, *, content: bool = False) -> tuple[int, str, str, dict[str, str]] | None:
        with self._lock:
            return fault_rules.take_api_fault(self.faults, content=content)

    def _current_video(self, task: Task) -> tuple[Video, str]:
        """The video to serve now and its Last-Modified: when the task ended, or when the bytes served
        last changed (video_size / video_variant), whichever is later."""
        f = self.faults
        key = (f.video_size, f.video_variant)
        for name, value in zip(("video_size", "video_variant"), key, strict=True):
            problem = fault_value_error(name, value)  # set as an attribute, so not checked yet
            if problem:
                raise ValueError(problem)
        with self._lock:
            if key != self._video_key:
                self._video_key, self._video_since = key, time.time()
            since = self._video_since
        modified = max(task.created_wall + task.ends_after, since)
        return video_for(*key), email.utils.formatdate(modified, usegmt=True)

    def _count_download(self, task: Task) -> None:
        with self._lock:
            task.downloads += 1

    def _served(self, size: int, seconds: float) -> None:
        with self._lock:
            self._video_bytes += size
            self._video_seconds += seconds

    def _take_cut(self, length: int) -> int | None:
        with self._lock:
            return fault_rules.take_cut(self.faults, length)

    def _create(self, new: NewTask, protocol: str) -> Task:
        with self._lock:
            # Timings and failure faults are captured at creation: changing them later doesn't rewrite
            # running tasks.
            f = self.faults
            limit = f.task_limit
            if limit is not None:
                # Checked under the same lock as the insert: concurrent creates can't both squeeze in.
                now = time.monotonic()
                unfinished = sum(1 for t in self._tasks.values() if now - t.created_mono < active_span(t))
                if unfinished >= limit:
                    message = (
                        "Allocated quota exceeded, please increase your quota limit. "
                        f"({unfinished} unfinished tasks; the sandbox's task_limit is {limit})"
                    )
                    raise Reject(429, "Throttling.AllocationQuota", message, None, {"Retry-After": "1"})
            ends_after = self.queue_seconds + self.run_seconds if f.fail_after is None else f.fail_after
            task = Task(
                **dataclasses.asdict(new),
                id=new_task_id(self.flavor),
                protocol=protocol,
                created_mono=time.monotonic(),
                created_wall=time.time(),
                queue_seconds=self.queue_seconds,
                run_seconds=self.run_seconds,
                ttl_seconds=self.ttl_seconds,
                ends_after=ends_after,
                failure=fault_rules.failure(f),
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

    def _lookup(self, task_id: str, *, poll: bool = False) -> tuple[Task, str, float] | None:
        """(task, native status, seconds since creation), or None when unknown or expired.

        ``poll`` counts the lookup as a status query of the task (expired or not) for ``tasks()``.
        """
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            elapsed = time.monotonic() - task.created_mono
            status = status_at(task, elapsed, expire=self.faults.expire)
            if poll:
                task.polls += 1
                if status is not None:
                    status = as_answered(task, status)
        return None if status is None else (task, status, elapsed)

    def _unified_view(self, task: Task, status: str, elapsed: float) -> dict[str, Any]:
        """A unified query's answer for the task, in the current flavor."""
        return unified_view(
            self.flavor,
            self.status_style,
            task,
            status,
            elapsed,
            url=self._signed_url(task),
            expire=self.faults.expire,
        )

    def _signature(self, task_id: str, expires: str) -> str:
        return hmac.new(self._secret, f"{task_id}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def _signed_url(self, task: Task) -> str:
        # Host "localhost", not the API's 127.0.0.1: clients must treat it as a foreign host, drop the key.
        expires = str(int(task.created_wall + task.ttl_seconds) + 1)
        signature = self._signature(task.id, expires)
        return f"http://localhost:{self.port}/_oss/{task.id}.mp4?Expires={expires}&Signature={signature}"
