"""HTTP to the gateway: auth, timeouts, bounded retries, and error answers turned into typed errors.

Retry policy (one place): GETs retry on connection errors, 408, 429 and 5xx; the create POST is re-sent
only when the server certainly did not act on it (a connection never made: refused, unresolved, timed out,
a proxy's tunnel refused; or a 429), never after a read timeout or a 5xx. Whether a request's bytes may have
left is known from its connection (``_marked``), so a failure before that never says the gateway may have
acted on it; a failed TLS handshake is named as one and not asked again. A route the gateway does not have
(new-api's 404 ``Invalid URL``, or its console's web page) is a wrong base URL (``_no_route``), not a task
that is missing. Waits are jittered exponential backoff, or the server's Retry-After,
capped at ``MAX_WAIT``; ``WANVID_MAX_RETRIES`` may set the budget from 0 to ``MAX_RETRIES``. The key is
attached only to requests for the gateway's own scheme/host/port, so a redirect or a signed ``video_url``
on another host never sees it, and a gateway on this machine (loopback) is asked directly, never through
a proxy from the environment (with an http:// base the key would cross it in clear).

Every JSON answer (and error answer) is read within a total time: the caller's ``deadline`` (``--timeout``)
or ``ANSWER_SECONDS``, whichever comes first, so a server that trickles its body cannot hold wanvid past it.
Failures of the network, a proxy, a redirect loop or a URL that cannot be requested are typed errors
(exit 6), never a bare requests or urllib3 exception.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import math
import os
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
from requests.auth import AuthBase

from wanvid import __version__
from wanvid.errors import ApiError, AuthError, BadAnswer, InvalidRequest, NotFound, Unavailable, UsageError
from wanvid.redact import scrub, scrub_json

T = TypeVar("T")

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
DEFAULT_RETRIES = 4
MAX_RETRIES = 20  # WANVID_MAX_RETRIES past this is a typo, not a plan: 20 capped backoffs already take ~17 min
# The longest an answer's body may take to arrive once its headers are in, when the caller set no deadline.
# Per-read timeouts alone never fire on a body that trickles in a byte at a time.
ANSWER_SECONDS = READ_TIMEOUT
BACKOFF_BASE = 0.5
MAX_WAIT = 60.0
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
# The Gate's pace (AIMD) after a 429: the rate is cut to DECREASE x the answers seen over the last WINDOW
# seconds (START_RATE if none were seen), never below MIN_RATE, then rises by INCREASE of the cut rate a
# second while the clients keep up with it.
WINDOW = 1.0
DECREASE = 0.85
INCREASE = 0.05
START_RATE = 10.0
MIN_RATE = 0.2
SHARED_429_FACTOR = 5  # 429s under a Gate may be retried this many times the usual budget
MAX_ANSWER = 1024 * 1024  # task answers are tiny; a bigger one is a misrouted request, not worth reading

AUTH_HINT = "check the key with: wanvid config check (a quota or arrears is settled in the ope.ai console)"
AUTH_CODES = {"invalidapikey", "accessdenied", "insufficient_user_quota", "arrearage", "unauthorized"}
NOT_FOUND_CODES = {"task_not_exist", "resourcenotfound", "tasknotfound"}
# A 404 about the model is the request's fault, not a missing task; the rest may come with HTTP 200.
INVALID_CODES = {"modelnotfound", "invalidparameter", "datainspectionfailed", "invalidurl", "invalid_request_error"}
ACTED_HINT = "the gateway may have acted on it; look at your tasks in the ope.ai console before creating again"
# Passed as ``proxies`` for a request to this machine. A None drops the environment's (and the session's) proxy
# for that scheme; ``no_proxy`` keeps a redirect to another loopback URL direct too, as requests re-reads the
# environment's proxies for each redirect (Session.rebuild_proxies) and honours this key there.
DIRECT = {"http": None, "https": None, "all": None, "no_proxy": "127.0.0.0/8,::1,localhost,.localhost"}


class _GatewayAuth(AuthBase):
    def __init__(self, base_url: str, key: str) -> None:
        self.origin = _origin(base_url)
        self.key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if _origin(r.url or "") == self.origin:
            r.headers["Authorization"] = f"Bearer {self.key}"
        return r

    def __repr__(self) -> str:  # never let a debug print show the key
        return "<GatewayAuth>"


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return (u.scheme, (u.hostname or "").lower(), port)


def max_retries_from_env() -> int:
    """``WANVID_MAX_RETRIES`` (0 to ``MAX_RETRIES``), or the default when it is unset or empty."""
    raw = os.environ.get("WANVID_MAX_RETRIES", "").strip()
    if not raw:
        return DEFAULT_RETRIES
    if raw.isascii() and raw.isdigit() and len(raw) <= 9 and int(raw) <= MAX_RETRIES:
        return int(raw)
    raise UsageError(
        f"WANVID_MAX_RETRIES={raw[:40]!r} is not a whole number from 0 to {MAX_RETRIES}",
        hint=f"set it to 0 to {MAX_RETRIES} (the default is {DEFAULT_RETRIES}), or unset it",
    )


def is_loopback(host: str | None) -> bool:
    """``host`` is this machine: localhost (and *.localhost) or a loopback address."""
    name = (host or "").lower().rstrip(".").strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


# -- a total deadline for the status line and headers ---------------------------------------------
# Socket timeouts bound each recv, not the whole answer: a server that sends its headers a byte at a time
# would hold a request for hours. So while a request waits for its headers, a timer stands ready to shut
# its socket down at the deadline; the connection class tells the timer which socket that is.
_inflight = threading.local()


class _Watchdog:
    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds
        self.timer: threading.Timer | None = None

    def arm(self, sock: socket.socket) -> None:
        self.disarm()  # a redirect: the next answer gets the time that is left, on its own socket
        self.timer = threading.Timer(max(0.0, self.until - time.monotonic()), _shut, (sock,))
        self.timer.daemon = True
        self.timer.start()

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@contextlib.contextmanager
def _disarmed(watch: _Watchdog) -> Iterator[None]:
    """The watchdog stands down however the request ends (an exception included)."""
    try:
        yield
    except BaseException:
        watch.disarm()
        raise
    finally:
        _inflight.watch = None


def _no_number(constant: str) -> None:
    return None


def _skip_redirect_body(resp: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """A redirect's body is never read: requests would read all of it (``resp.content``) before following,
    without a limit, so a hostile server could stream gigabytes into memory. The connection is dropped."""
    if resp.is_redirect:
        resp._content, resp._content_consumed = b"", True  # type: ignore[attr-defined]  # what .content returns
        resp.raw.close()
    return resp


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # the blocked recv returns at once; urllib3 reports a broken answer


def _marked(base: type[Any]) -> type[Any]:
    """``base`` telling the request in flight (``_inflight.sent``) whether any of its bytes may have left: False
    while a new connection is made (DNS, TCP, a proxy's CONNECT, the TLS handshake), True once it is made or a
    kept-alive one is used. A failure while it is False reached no server with the request: nothing was done."""

    class Marked(base):
        def connect(self) -> None:
            _inflight.sent = False
            super().connect()
            _inflight.sent = True

        def request(self, *args: Any, **kwargs: Any) -> Any:
            _inflight.sent = True  # connect() sets it back while a lazily opened connection is being made
            return super().request(*args, **kwargs)

    return Marked


def _watched(base: type[Any]) -> type[Any]:
    class Watched(_marked(base)):  # type: ignore[misc]
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            watch = getattr(_inflight, "watch", None)
            if watch is not None and getattr(self, "sock", None) is not None:
                watch.arm(self.sock)
            return super().getresponse(*args, **kwargs)

    return Watched


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose direct connections report their socket to the request's ``_Watchdog``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

        pools = {}
        for scheme, pool in (("http", HTTPConnectionPool), ("https", HTTPSConnectionPool)):
            pools[scheme] = type(pool.__name__, (pool,), {"ConnectionCls": _watched(pool.ConnectionCls)})
        self.poolmanager.pool_classes_by_scheme = pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Connections through a proxy say when their bytes may have left too (``_marked``); not watched, as a
        TLS proxy's socket is not one the watchdog can shut."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager) and not getattr(manager, "_wanvid_marked", False):
            from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

            pools = {}
            for scheme, pool in (("http", HTTPConnectionPool), ("https", HTTPSConnectionPool)):
                pools[scheme] = type(pool.__name__, (pool,), {"ConnectionCls": _marked(pool.ConnectionCls)})
            manager.pool_classes_by_scheme = pools
            manager._wanvid_marked = True  # type: ignore[attr-defined]
        return manager


class Gate:
    """One rate-limit budget shared by clients working side by side (the workers of a batch).

    Every request of those clients (creates, polls, downloads: all count against the gateway's limit)
    takes a turn here. Until the gateway answers a 429 the turns are free: nothing is known about its
    limit, so nothing is held back. A 429 then sets the pace by AIMD, as TCP finds a link's rate:

    - decrease: the rate becomes ``DECREASE`` times what the gateway was seen to answer over the last
      ``WINDOW`` seconds (or the rate kept so far, if lower); the 429s of requests sent before that cut,
      or answered within ``WINDOW`` of it, count as one, so a burst of them does not cut again and again;
    - increase: each answer that is not a 429 raises the rate by ``INCREASE`` of the cut rate divided by
      the current rate, about ``INCREASE`` of it a second while the clients keep the pace, so the batch
      climbs back to the limit within seconds of a hold instead of creeping below it;
    - a 429's wait (its Retry-After, or the backoff when none is given: new-api's own limiter sends an
      empty 429) holds every client, not just the one that got it; then the turns resume, one every
      1 / rate seconds, in the order asked, so polls and downloads do not starve the creates.

    Creates also pass at least ``spacing`` seconds apart (``--stagger``; 0: only the pace above).
    """

    def __init__(self, spacing: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.spacing = spacing
        self.clock = clock
        self._lock = threading.Lock()
        self._open_at = 0.0  # no request starts before this
        self._next_create = 0.0  # nor a create before this
        self._next_turn = 0.0  # once paced, the next request's turn
        self.rate: float | None = None  # requests a second the turns keep to; None: no 429 yet, no pace
        self._step = 0.0  # the additive increase, requests a second per second at full pace
        self._cut_at = -math.inf  # when the rate was last cut
        self._epoch = 0  # bumped by every cut: turns given before it are asked again at the new pace
        self._answered: deque[float] = deque()  # send times of the answers that were not a 429, last WINDOW s
        self.cuts = 0  # how many times a 429 cut the rate (for --debug and the benchmark)

    @property
    def gap(self) -> float:
        """Seconds between two turns (0 while there is no pace)."""
        return 0.0 if self.rate is None else 1.0 / self.rate

    def hold(self, seconds: float, sent: float | None = None) -> None:
        """A 429 for a request sent at ``sent`` (clock time; default now): cut the rate, hold everyone."""
        with self._lock:
            now = self.clock()
            # Sent at the present pace, which is too fast; not again within WINDOW of a cut, while the answers
            # seen still reflect the old pace (or a hold's silence).
            if (now if sent is None else sent) >= self._cut_at and now >= self._cut_at + WINDOW:
                self._trim(now)
                seen = len(self._answered) / WINDOW
                if self.rate is None:
                    base = seen if seen > 0 else START_RATE
                else:
                    base = min(self.rate, seen) if seen > 0 else self.rate
                self.rate = max(MIN_RATE, DECREASE * base)
                self._step = INCREASE * self.rate
                self._cut_at = now
                self._epoch += 1
                self.cuts += 1
                self._next_turn = 0.0  # the turns given at the old pace are taken again (``wait``)
            self._open_at = max(self._open_at, now + seconds)

    def passed(self, sent: float | None = None) -> None:
        """An answer that was not a 429, for a request sent at ``sent``: the gateway had room."""
        with self._lock:
            now = self.clock()
            sent = now if sent is None else sent
            self._answered.append(sent)
            self._trim(now)
            if self.rate is not None and sent >= self._cut_at:
                self.rate += self._step / self.rate

    def _trim(self, now: float) -> None:
        while self._answered and self._answered[0] < now - WINDOW:
            self._answered.popleft()

    def wait(self, sleep: Callable[[float], None], *, create: bool = False) -> None:
        """Sleep until a request may start; a create also takes the next slot of the spacing."""
        spaced = False
        while True:
            with self._lock:
                now = self.clock()
                slot = max(now, self._open_at)
                if create and not spaced:
                    slot = max(slot, self._next_create)
                    self._next_create = slot + self.spacing
                    spaced = True
                if self.rate is not None:
                    slot = max(slot, self._next_turn)
                    self._next_turn = slot + 1.0 / self.rate
                epoch = self._epoch
            while (left := slot - self.clock()) > 0:
                sleep(left)
            with self._lock:
                if epoch == self._epoch and self.clock() >= self._open_at:
                    return  # neither cut nor held again meanwhile


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: requests.Session | None = None,
        max_retries: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        on_retry: Callable[[str], None] | None = None,
        on_throttle: Callable[[str | None], None] | None = None,
        log: Callable[[str], None] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if session is None:
            session = requests.Session()
            for prefix in ("http://", "https://"):
                session.mount(prefix, _WatchedAdapter())
            session.hooks["response"].append(_skip_redirect_body)
        self.session = session
        self.session.headers["User-Agent"] = f"wanvid/{__version__}"
        self.auth = _GatewayAuth(self.base_url, api_key)
        self.max_retries = max_retries_from_env() if max_retries is None else max_retries
        self.sleep = sleep
        self.jitter = jitter
        self.on_retry = on_retry
        # Told why a request waits while the gateway throttles it (a 429), and None once it is answered: a
        # batch row's display says so instead of sitting at SUBMITTING with no reason.
        self.on_throttle = on_throttle
        self.log = log  # --debug: one line per request and answer, key redacted
        self.deadline: float | None = None  # monotonic time after which no retry is started (``bounded``)
        self.hit_deadline = False  # this request gave up because a retry would pass the deadline
        self.gate = gate  # a rate budget shared with the other clients of a batch

    def sleeping(self, sleep: Callable[[float], None]) -> Client:
        """This client (same connections, key, gate and deadline) waiting between retries with ``sleep``."""
        other = copy.copy(self)
        other.sleep = sleep
        return other

    def bounded(self, deadline: float | None) -> Client:
        """This client (same connections, key and gate) for requests that must end by ``deadline`` (monotonic):
        no retry starts that would pass it, and an error raised because of it has ``at_deadline`` set."""
        other = copy.copy(self)
        other.deadline, other.hit_deadline = deadline, False
        return other

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.base_url + path_or_url

    def get_json(self, path: str, parse: Callable[[dict[str, Any], requests.Response], T]) -> T:
        """GET a JSON answer and ``parse`` it. An unreadable one (a proxy's HTML page, a cut body, a shape
        ``parse`` rejects with ``BadAnswer``) is asked again within the retry budget."""
        with self._marking_deadline():
            return self._get_json(path, parse)

    @contextlib.contextmanager
    def _marking_deadline(self) -> Iterator[None]:
        """An ApiError raised because the caller's deadline came first says so (``at_deadline``)."""
        self.hit_deadline = False
        try:
            yield
        except ApiError as exc:
            exc.at_deadline = self.hit_deadline
            raise

    def _get_json(self, path: str, parse: Callable[[dict[str, Any], requests.Response], T]) -> T:
        attempt = 0
        while True:
            resp = self.send("GET", path, stream=True)
            try:
                self._read_answer(resp, acted=False)
                return parse(_json_body(resp, self.log, self.base_url), resp)
            except BadAnswer as exc:
                exc.request_id = exc.request_id or request_id_of(resp)
                wait = self.backoff(attempt)
                if self._give_up(attempt, wait):
                    # a web page every time: the console's, answered for a route the gateway does not have
                    raise exc.instead if isinstance(exc, _WebPage) else exc from None
                attempt += 1
                self.pause(wait, f"unreadable answer ({exc.message}); asking again", attempt)

    def post_json(self, path: str, body: dict[str, Any] | Iterable[bytes]) -> dict[str, Any]:
        """POST a JSON body: a dict, or an already-encoded iterable of bytes with a length (streamed)."""
        if isinstance(body, dict):
            resp = self.send("POST", path, json=body, idempotent=False, stream=True)
        else:
            headers = {"Content-Type": "application/json"}
            resp = self.send("POST", path, data=body, headers=headers, idempotent=False, stream=True)
        self._read_answer(resp, acted=True)
        try:
            return _json_body(resp, self.log, self.base_url)
        except _WebPage as exc:  # a create is not asked twice: one web page answers it
            raise exc.instead from None

    def stream(self, path_or_url: str, headers: dict[str, str] | None = None) -> requests.Response:
        """GET with the body left unread; errors are raised before the first byte is returned."""
        with self._marking_deadline():
            return self.send("GET", path_or_url, stream=True, headers=headers)

    def send(
        self,
        method: str,
        path_or_url: str,
        *,
        json: Any = None,
        data: Any = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
        retries: int | None = None,
    ) -> requests.Response:
        url = self.url(path_or_url)
        budget = self.max_retries if retries is None else retries
        where = urlsplit(url)
        proxies = dict(DIRECT) if is_loopback(where.hostname) else None
        attempt = throttled = 0
        waited = False  # a 429 made this request wait (``on_throttle``)
        while True:
            what = f"retrying {method} {where.path}"  # what a retry's warning says it does
            if self.gate is not None:
                self.gate.wait(self.sleep, create=method == "POST" and attempt == 0)
            started = time.monotonic()
            sent = self.gate.clock() if self.gate is not None else started
            _inflight.watch = watch = _Watchdog(self._left(ANSWER_SECONDS))
            _inflight.sent = None  # not known yet (``_marked``)
            try:
                with _disarmed(watch):
                    resp = self.session.request(
                        method,
                        url,
                        json=json,
                        data=data,
                        headers=headers,
                        auth=self.auth,
                        stream=stream,
                        timeout=self._timeouts(),
                        proxies=proxies,  # type: ignore[arg-type]  # None values are how requests drops a proxy
                    )
            except requests.exceptions.ProxyError as exc:
                # Refused by the proxy: it never passed the request on, so even a POST may be sent again.
                unsent = _unsent(exc)
                wait = self.backoff(attempt, None)
                if not (idempotent or unsent) or self._give_up(attempt, wait, budget):
                    raise self._proxy_error(exc, url, acted=not idempotent and not unsent) from None
            except requests.exceptions.SSLError as exc:
                if _unsent(exc):  # the handshake failed: a wrong scheme or certificate, which asking again won't mend
                    raise _tls_error(exc, url) from None
                wait = self.backoff(attempt, None)
                if not idempotent or self._give_up(attempt, wait, budget):
                    raise _network_error(exc, url, sent=True, acted=not idempotent) from None
            except requests.ConnectionError as exc:
                # A connection that was never made (refused, unresolved, timed out) took nothing to the server:
                # safe to re-send even a POST.
                unsent = _unsent(exc)
                wait = self.backoff(attempt, None)
                if not (idempotent or unsent) or self._give_up(attempt, wait, budget):
                    raise _network_error(exc, url, sent=not unsent, acted=not idempotent) from None
            except requests.Timeout as exc:
                wait = self.backoff(attempt, None)
                if not idempotent or self._give_up(attempt, wait, budget):
                    raise _network_error(exc, url, sent=not _unsent(exc), acted=not idempotent) from None
            except requests.TooManyRedirects:
                what = f"{where.hostname} redirected {method} {where.path} in a loop"
                raise _unusable(what, acted=not idempotent) from None
            except ValueError as exc:
                # InvalidURL, InvalidSchema, MissingSchema, urllib3's LocationParseError (all ValueErrors): a Location
                # header, or a URL taken from an answer, that cannot be requested. Asking again would not help.
                what = f"a request to {where.hostname} met a URL that cannot be requested ({_one_line(exc)})"
                raise _unusable(what, acted=not idempotent) from None
            except requests.RequestException as exc:  # whatever else requests may raise: still exit 6, not 1
                unsent = _unsent(exc)
                hint = (
                    ACTED_HINT if not idempotent and not unsent else "check --base-url and your network, then try again"
                )
                error = Unavailable(f"the request to {where.hostname} failed ({_one_line(exc)})", hint=hint)
                error.unsent = unsent
                raise error from None
            else:
                watch.disarm()  # the headers are in; a body is read under its own deadline (_read_answer)
                if self.log:
                    _log_exchange(self.log, resp, time.monotonic() - started)
                if resp.status_code < 400:
                    if self.gate is not None:
                        self.gate.passed(sent)
                    if waited and self.on_throttle:
                        self.on_throttle(None)
                    return resp
                retryable = resp.status_code in RETRY_STATUSES and (idempotent or resp.status_code == 429)
                # A 429 under a shared Gate is the pace being found, not a fault: it is counted apart, with a
                # larger budget, so that rows already paid for are not lost to their neighbours' traffic.
                shared = self.gate is not None and resp.status_code == 429
                tries, limit = (throttled, budget * SHARED_429_FACTOR) if shared else (attempt, budget)
                wait = self.backoff(tries, retry_after(resp))
                if self.gate is not None and shared:
                    self.gate.hold(wait, sent)  # everyone sharing the budget slows down, not just this request
                elif self.gate is not None:
                    self.gate.passed(sent)
                if not retryable or self._give_up(tries, wait, limit):
                    with contextlib.suppress(BadAnswer):  # a body that broke off: the status still says enough
                        self._read_answer(resp, acted=not idempotent)
                    raise _no_route(resp, self.base_url) or error_from_response(resp)
                resp.close()
                if resp.status_code == 429:
                    reason = throttle_reason(resp, wait)
                    what, waited = f"{reason}: {what}", True
                    if self.on_throttle:
                        self.on_throttle(reason)
                if shared:
                    throttled += 1
                    self.sleep(wait)
                    continue
            attempt += 1
            self.pause(wait, what, attempt)

    def _read_answer(self, resp: requests.Response, *, acted: bool) -> None:
        """Read a JSON or error answer's body now, by the caller's deadline and within ``ANSWER_SECONDS``, and
        keep it on ``resp`` as requests keeps ``resp.content`` (``_json_body`` and ``error_from_response`` then
        read it from memory). At most a little over ``MAX_ANSWER`` bytes are read.

        How the time is bounded: each step is one ``read1`` (at most one recv) with the socket's timeout shrunk
        to the time left, so the whole read ends by the limit, without a watchdog thread. Past it: the same
        ``Unavailable`` as an answer that never came (``hit_deadline`` set when it was the caller's deadline).
        A body that breaks off is a ``BadAnswer``, which ``get_json`` asks again for."""
        raw = resp.raw
        if not isinstance(raw, urllib3.HTTPResponse):  # a test double or a custom adapter: nothing to bound
            return
        until = time.monotonic() + ANSWER_SECONDS
        if self.deadline is not None:  # compared with the deadline below, so not through _left's arithmetic
            until = min(until, self.deadline)
        # urllib3 1.x has no read1; its read(n) may wait for all n bytes, each recv still bounded by the time left
        read = getattr(raw, "read1", None) or raw.read
        buf = bytearray()
        late = broke = False
        try:
            while len(buf) <= MAX_ANSWER:
                left = until - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                conn = getattr(raw, "_connection", None)  # None once the body is complete and the connection pooled
                sock = getattr(conn, "sock", None)
                if isinstance(sock, socket.socket):
                    sock.settimeout(left)
                chunk = read(16 * 1024, decode_content=True)
                if not chunk:
                    break
                buf += chunk
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
            late = True
        except (urllib3.exceptions.HTTPError, OSError, requests.RequestException):
            broke = True
        finally:
            resp._content = bytes(buf)
            resp._content_consumed = True  # type: ignore[attr-defined]  # as requests marks what it has read
        if late or broke or len(buf) > MAX_ANSWER:
            resp.close()  # not drained: the rest is not worth waiting for
        if late:
            self.hit_deadline = self.deadline is not None and until >= self.deadline
            raise _network_error(requests.Timeout(), resp.url, sent=True, acted=acted)
        if broke:
            status, rid = resp.status_code, request_id_of(resp)
            raise BadAnswer(
                f"the gateway answered HTTP {status} with a body that broke off", status=status, request_id=rid
            )

    def _proxy_error(self, exc: Exception, url: str, *, acted: bool) -> Unavailable:
        """A proxy failure named as one: which proxy, and the variables that chose it."""
        parts = urlsplit(url)
        proxy = self._proxy_of(url)
        name = f"the proxy {proxy}" if proxy else "the proxy"
        text = repr(exc)
        if "ConnectionRefusedError" in text or "Errno 111" in text:
            what = f"{name} refused the connection (on the way to {parts.hostname})"
        elif _refused(exc):
            what = f"{name} could not be reached (on the way to {parts.hostname})"
        else:
            tunnel = re.search(r"Tunnel connection failed: [^'\")\\]*", text)
            what = f"{name} failed to pass the request on to {parts.hostname}" + (f" ({tunnel[0]})" if tunnel else "")
        hint = f"check {parts.scheme.upper()}_PROXY (or ALL_PROXY), or add {parts.hostname} to NO_PROXY to go direct"
        error = Unavailable(what, hint=f"{ACTED_HINT}; {hint}" if acted else hint)
        error.unsent = not acted
        return error

    def _proxy_of(self, url: str) -> str | None:
        """host:port of the proxy requests picks for ``url`` (never its user or password)."""
        try:
            env = self.session.merge_environment_settings(url, {}, None, None, None)
            proxy = requests.utils.select_proxy(url, env["proxies"])
            if not proxy:
                return None
            parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
            host, port = parts.hostname or "?", parts.port
        except (ValueError, KeyError):
            return None
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{port}" if port else host

    def _left(self, most: float) -> float:
        """Seconds a request may take: ``most``, or less when the caller's deadline comes first."""
        return most if self.deadline is None else max(0.1, min(most, self.deadline - time.monotonic()))

    def _timeouts(self) -> tuple[float, float]:
        """Connect and read timeouts, cut short so that no single request outlasts the caller's deadline."""
        return self._left(CONNECT_TIMEOUT), self._left(READ_TIMEOUT)

    def _give_up(self, attempt: int, wait: float, budget: int | None = None) -> bool:
        """The retry budget is spent, or waiting would pass the caller's deadline (``--timeout``)."""
        if attempt >= (self.max_retries if budget is None else budget):
            return True
        self.hit_deadline = self.deadline is not None and time.monotonic() + wait > self.deadline
        return self.hit_deadline

    def pause(self, wait: float, what: str, attempt: int) -> None:
        """Sleep before retry number ``attempt`` (1-based), saying so."""
        if self.on_retry:
            self.on_retry(f"{what} in {wait:.1f}s (attempt {attempt + 1} of {self.max_retries + 1})")
        self.sleep(wait)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_WAIT)
        return min(BACKOFF_BASE * 2**attempt, MAX_WAIT) * (0.5 + self.jitter() / 2)


def _refused(exc: Exception) -> bool:
    """The request never reached a server: refused, or the host name did not resolve."""
    text = repr(exc)
    return any(
        mark in text for mark in ("ConnectionRefusedError", "NewConnectionError", "NameResolutionError", "Errno 111")
    )


def _unsent(exc: Exception) -> bool:
    """None of the request's bytes can have reached a server: the failure came while its connection was being
    made (``_marked``), or it is one that only connecting raises (refused, unresolved)."""
    return getattr(_inflight, "sent", None) is False or _refused(exc)


def _tls_error(exc: Exception, url: str) -> Unavailable:
    """A TLS handshake that failed, named as one: nothing was sent, and an https:// URL of a server that speaks
    plain http is the usual cause."""
    parts = urlsplit(url)
    text = str(exc)
    reason = re.search(r"\[SSL: [A-Z0-9_]+\] (.+?)\.?\s*\(_ssl", text.replace("\\'", "'"))
    why = f" ({reason[1].strip()})" if reason else ""
    hint = (
        f"nothing was sent; if {parts.netloc} speaks plain HTTP, use http:// rather than https:// in --base-url"
        " (a certificate problem: check the host name and the system's CA certificates)"
    )
    error = Unavailable(f"the TLS handshake with {parts.netloc} failed{why}", hint=hint)
    error.unsent = True
    return error


def _unusable(what: str, *, acted: bool) -> BadAnswer:
    hint = "the gateway or a proxy in between sent a redirect or a link that cannot be followed; check --base-url"
    return BadAnswer(what, hint=ACTED_HINT if acted else hint)


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text[:300]}"


def _network_error(exc: Exception, url: str, *, sent: bool, acted: bool) -> Unavailable:
    """``acted``: a request that may have changed something (the create POST) may have done so."""
    host = urlsplit(url).netloc
    if not sent:
        what = f"could not connect to {host}" + (" in time" if isinstance(exc, requests.Timeout) else "")
    elif isinstance(exc, requests.Timeout):
        what = f"no answer from {host} in time"
    else:
        what = f"the connection to {host} broke after the request was sent"
    hint = "check --base-url and your network, then try again"
    if sent and acted:
        hint = ACTED_HINT
    error = Unavailable(what, hint=hint)
    error.unsent = not sent  # the request never reached the server: a create made nothing (session keeps no claim)
    return error


def retry_after(resp: requests.Response) -> float | None:
    """The answer's Retry-After in seconds (a number or an HTTP date), or None."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def throttle_reason(resp: requests.Response, wait: float) -> str:
    """Why a request waits after a 429: the gateway's Retry-After, or none (new-api's own limiter sends none,
    middleware/rate-limit.go) and the backoff chosen instead."""
    after = retry_after(resp)
    if after is not None:
        return f"waiting for the gateway's rate limit (Retry-After {_seconds(after)} s)"
    return f"waiting for the gateway's rate limit (no Retry-After; retrying in {_seconds(wait)} s)"


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def request_id_of(resp: requests.Response, body: Any = None) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("request_id"), str):
        return scrub(str(body["request_id"]))
    rid = resp.headers.get("X-Request-Id") or resp.headers.get("X-Acs-Request-Id")
    return scrub(rid) if rid else None  # a header is as able to echo the key as a body


def _json_body(
    resp: requests.Response, log: Callable[[str], None] | None = None, base_url: str | None = None
) -> dict[str, Any]:
    """The answer's JSON object, read up to ``MAX_ANSWER``; an ``error`` key means failure even on HTTP 200.
    With ``base_url``, a web page from the gateway's host is the wrong base URL (``_no_route``)."""
    rid = request_id_of(resp)
    what = f"the gateway answered HTTP {resp.status_code} with"
    try:
        raw = _read_capped(resp)
    except requests.RequestException:
        raise BadAnswer(f"{what} a body that broke off", status=resp.status_code, request_id=rid) from None
    if raw is None:
        raise BadAnswer(
            f"{what} more than {MAX_ANSWER // 1024} KiB; a task answer is a few hundred bytes",
            status=resp.status_code,
            request_id=rid,
            hint="check --base-url points at the gateway",
        )
    if log:
        log(f"< {_shorten(scrub(raw.decode('utf-8', 'replace')))}")
    try:
        # The key out of the answer before anything reads it (wanvid.redact): a gateway that echoes it back (in
        # a video URL, a message, a prompt) must not plant it in the Task, the journal or a sidecar. The text is
        # scrubbed, then the parsed strings, for a key spelled with \u escapes.
        # NaN and Infinity (not JSON, but Python's json takes them) become null: --json output stays strict JSON.
        body = scrub_json(json.loads(scrub(raw.decode("utf-8-sig")), parse_constant=_no_number))
    except RecursionError:  # deeper than Python's stack; no task answer is
        raise BadAnswer(f"{what} JSON nested too deeply", status=resp.status_code, request_id=rid) from None
    except ValueError:
        kind = resp.headers.get("Content-Type", "no content type")
        if base_url is not None and (wrong := _no_route(resp, base_url)):
            raise _WebPage(wrong) from None
        raise BadAnswer(
            f"{what} something that is not JSON ({kind}, {len(raw)} bytes)",
            status=resp.status_code,
            request_id=rid,
            hint="check --base-url points at the gateway",
        ) from None
    if not isinstance(body, dict):
        raise BadAnswer(f"{what} JSON that is not an object", status=resp.status_code, request_id=rid)
    if is_error_answer(body):
        raise error_from_response(resp, body)
    return body


def is_error_answer(body: dict[str, Any]) -> bool:
    """An error answer, even on HTTP 200: an ``error`` envelope, or new-api's flat ``{code, message, data}``.

    A task document is never one, whatever it carries: new-api answers a failed unified task HTTP 200 with
    ``status: failed`` and an ``error`` object inside it (``relay/channel/task/ali/adaptor.go``), and the
    task's own fields say how it ended."""
    output = body.get("output")
    if "status" in body or (isinstance(output, dict) and "task_status" in output):
        return False
    code = body.get("code")
    flat = isinstance(code, str) and code not in ("", "success") and "message" in body
    return bool(body.get("error")) or flat


def _read_capped(resp: requests.Response) -> bytes | None:
    """The whole body, or None past ``MAX_ANSWER`` (the connection is then closed, not drained)."""
    buf = bytearray()
    for chunk in resp.iter_content(64 * 1024):
        buf += chunk
        if len(buf) > MAX_ANSWER:
            resp.close()
            return None
    return bytes(buf)


def _log_exchange(log: Callable[[str], None], resp: requests.Response, seconds: float) -> None:
    req = resp.request
    size = len(req.body) if hasattr(req.body, "__len__") else 0  # type: ignore[arg-type]
    lines = [f"> {req.method} {req.url}" + (f" ({size:,} bytes)" if size else "")]
    for name, value in req.headers.items():
        lines.append(f"> {name}: {'Bearer ****' if name.lower() == 'authorization' else value}")
    lines.append(f"< HTTP {resp.status_code} {resp.reason} in {seconds * 1000:.0f} ms")
    lines += [f"< {name}: {value}" for name, value in resp.headers.items()]
    for line in lines:
        log(scrub(line))  # a header may echo the key; the log's own sink scrubs again


def _shorten(text: str, limit: int = 2000) -> str:
    text = re.sub(r"data:[\w/.+-]+;base64,[A-Za-z0-9+/=]{40,}", lambda m: m[0][:40] + "…", text)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text)} chars]"


def _code_and_message(body: Any) -> tuple[Any, Any]:
    """The code and message of any error shape the gateway uses: the ``{"error": {...}}`` envelope, an
    ``error`` string, or flat ``code``/``message`` (new-api's task layer, DashScope's ``{request_id, code,
    message}``)."""
    if not isinstance(body, dict):
        return None, None
    err = body.get("error")
    if isinstance(err, dict):
        return err.get("code"), err.get("message")
    return body.get("code"), err if isinstance(err, str) and err else body.get("message")


def _json_object(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _WebPage(BadAnswer):
    """A web page where JSON was expected, from the gateway's host: asked again like any unreadable answer (a
    proxy's page may pass), and ``instead`` (a wrong base URL, ``_no_route``) once it is the last answer."""

    def __init__(self, instead: InvalidRequest) -> None:
        super().__init__(instead.message, status=instead.status, request_id=instead.request_id, hint=instead.hint)
        self.instead = instead


def _no_route(resp: requests.Response, base_url: str) -> InvalidRequest | None:
    """The gateway has no route for the request: the base URL is wrong, not the task id. new-api answers a path
    no route takes (router/web-router.go NoRoute) with 404 ``Invalid URL (METHOD /path)`` under /api, /v1,
    /v1beta and /assets (controller/relay.go RelayNotFound), and with its web console's HTML page anywhere
    else, whatever the method. Nothing was done with the request, so a create made nothing (``unsent``)."""
    req = resp.request
    if req is None or _origin(resp.url or req.url or "") != _origin(base_url):
        return None  # a signed URL on another host: not the gateway's routes
    # A web page where JSON was expected: the console's (200), or a 404 page; a 5xx page is a server in trouble.
    html = "html" in resp.headers.get("Content-Type", "").lower() and (
        resp.status_code < 300 or resp.status_code == 404
    )
    if not html:
        if resp.status_code != 404:
            return None
        try:
            body = json.loads(resp.content)
        except (ValueError, RecursionError, requests.RequestException):
            return None
        error = body.get("error") if isinstance(body, dict) else None
        if not (isinstance(error, dict) and str(error.get("message", "")).startswith("Invalid URL (")):
            return None
        if error.get("code") not in (None, ""):
            return None
    from wanvid.config import DEFAULT_BASE_URL

    path = urlsplit(req.url or "").path
    what = f"the gateway has no route {req.method} {path}"
    if html:  # new-api's console page, or a proxy's: the hint fits both
        what = f"the gateway answered {req.method} {path} with a web page, not JSON (HTTP {resp.status_code})"
    hint = f"check --base-url (now {base_url}; the default is {DEFAULT_BASE_URL})"
    error_ = InvalidRequest(what, status=resp.status_code, request_id=request_id_of(resp), hint=hint)
    error_.unsent = True
    return error_


def error_from_response(resp: requests.Response, body: Any = None) -> ApiError:
    """Map an error answer to the typed error whose exit code scripts rely on."""
    if body is None:
        try:
            body = scrub_json(resp.json())  # not through _json_body: scrubbed here, as every answer is
        except (ValueError, RecursionError):
            body = None
    code, message = _code_and_message(body)
    # new-api's task layer wraps a provider's refusal as code "fail_to_fetch_task" with the provider's own JSON
    # as the message (relay/relay_task.go ~226): the provider's code is the one that says what went wrong.
    inner = _json_object(message)
    wrapper = None
    if inner is not None:
        inner_code, inner_message = _code_and_message(inner)
        if inner_code or inner_message:
            wrapper, code, message = code, inner_code, inner_message
            body = {**inner, **({"request_id": body["request_id"]} if "request_id" in body else {})}
    code = str(code) if code not in (None, "") else None  # new-api's 401 says code ""
    message = str(message or resp.reason or "no message").strip().splitlines()[0][:500]
    status = resp.status_code
    rid = request_id_of(resp, body)
    text = f"gateway error {status}" + (f" {code}" if code else "") + f": {message}"
    if wrapper:
        text += f" ({wrapper})"
    kw: dict[str, Any] = {"status": status, "code": code, "request_id": rid}
    low = (code or "").lower()
    if low in INVALID_CODES:
        return InvalidRequest(text, hint="check --model", **kw)
    if low in AUTH_CODES or status in (401, 403):
        return AuthError(text, hint=AUTH_HINT, **kw)
    if low in NOT_FOUND_CODES or status == 404:
        return NotFound(text, hint="check the task id and --protocol; tasks and results live 24 h", **kw)
    if status in RETRY_STATUSES:
        return Unavailable(text, hint="the gateway is busy or down; try again later", **kw)
    if 400 <= status < 500:
        return InvalidRequest(text, hint="fix the request as the message says", **kw)
    return ApiError(text, **kw)
