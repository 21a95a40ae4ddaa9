"""wanvid against a hostile network and hostile settings: proxies, trickling and looping servers, odd ids
and numbers in answers, malformed base URLs and config files.

Every server here is real, on 127.0.0.1, started by the test; the expectations are the documented exit
codes: 2 for bad settings (before anything is sent), 6 for an answer or network wanvid cannot use,
124 for --timeout, never 1 and never a hang.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wanvid.errors import ApiError, BadAnswer, UsageError
from wanvid.gateway.client import Client
from wanvid.gateway.protocols import Native, Unified
from wanvid.gateway.service import query
from wanvid.rules.task import Task

from ..helpers import FAST, TEST_KEY, run, wv

TASK = "task_0123456789abcdef"
NATIVE = f"/aliyun/v1/tasks/{TASK}"
CREATE = "/aliyun/v1/videos/generations"
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")


def native(task_id: Any = TASK, status: str = "RUNNING", **out: Any) -> dict[str, Any]:
    return {"request_id": "req-1", "output": {"task_id": task_id, "task_status": status, **out}}


Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[BaseHTTPRequestHandler], "Reply | None"]


class Server:
    """A hostile HTTP server on 127.0.0.1: each (method, path) answers with a JSON document, raw bytes, or
    a function that writes whatever it likes to the handler's socket. Every request is recorded."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Any] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.stop = threading.Event()  # ends trickles when the test is over
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                what = server.routes.get((self.command, self.path), (404, {}, b'{"code": "task_not_exist"}'))
                reply = what(self) if callable(what) else what
                if reply is None:  # the function wrote its own answer
                    self.close_connection = True
                    return
                status, headers, body = reply if isinstance(reply, tuple) else (200, {}, json.dumps(reply).encode())
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.httpd.stop = self.stop  # type: ignore[attr-defined]  # read by trickle()
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The hostile server as the gateway of every in-process command, with no proxy in the environment."""
    for name in PROXY_VARS + NO_PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    with Server() as s:
        monkeypatch.setenv("WANVID_BASE_URL", s.url)
        monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
        monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
        yield s


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("error: ")
    return lines[0]


# -- 1. proxies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("var", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_loopback_gateway_bypasses_every_proxy(server, monkeypatch, var, host):
    server.routes[("GET", NATIVE)] = native()
    with Server() as proxy:  # a "proxy" that would see the key in clear: it must see nothing
        monkeypatch.setenv(var, proxy.url)
        monkeypatch.setenv("WANVID_BASE_URL", f"http://{host}:{server.port}")
        r = wv("status", TASK)
    assert r.exit_code == 0, r.stderr
    assert proxy.seen == []
    assert [(m, p) for m, p, _ in server.seen] == [("GET", NATIVE)]
    assert server.seen[0][2]["authorization"] == f"Bearer {TEST_KEY}"


def test_a_refusing_proxy_is_named_as_the_proxy_not_the_gateway(server, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:secret@127.0.0.1:{port}")
    r = wv("status", TASK, "--base-url", "https://gateway.invalid")
    assert r.exit_code == 6, r.stderr
    line = one_line(r.stderr)
    assert f"proxy 127.0.0.1:{port}" in line and "HTTPS_PROXY" in line and "NO_PROXY" in line
    assert "could not connect to gateway.invalid" not in line
    assert "secret" not in line  # the proxy's credentials are not shown


# -- 2. a total deadline -----------------------------------------------------------------------------


def trickle(body: bytes, every: float) -> Handler:
    """Headers at once, then the body one byte per ``every`` seconds (until the test ends)."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.flush()
        stop = h.server.stop  # type: ignore[attr-defined]
        for i in range(len(body)):
            if stop.wait(every):
                return
            try:
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
            except OSError:  # the client hung up: that is the point
                return

    return handler


def test_a_trickling_answer_does_not_outrun_wait_timeout(server):
    body = json.dumps(native()).encode() + b" " * 2000  # ~2 KB at 20 bytes a second: 100 s without a deadline
    server.routes[("GET", NATIVE)] = trickle(body, 0.05)
    started = time.monotonic()
    r = wv("wait", TASK, "--timeout", "2", *FAST)
    took = time.monotonic() - started
    assert r.exit_code == 124, r.stderr
    assert took < 30, took  # a bound on a hang, not a speed target: 2 s plus slack for a busy machine
    assert TASK in r.stderr and f"wanvid wait {TASK}" in r.stderr


def test_headers_trickled_a_byte_at_a_time_do_not_outrun_wait_timeout(server):
    """Socket timeouts bound each read, not the status line and headers as a whole (client._Watchdog)."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (n, b"y" * 50) for n in range(40))
        stop = h.server.stop  # type: ignore[attr-defined]
        for i in range(len(head)):  # ~2.2 KB at 20 bytes a second: nearly 2 minutes without a deadline
            if stop.wait(0.05):
                return
            try:
                h.wfile.write(head[i : i + 1])
                h.wfile.flush()
            except OSError:
                return

    server.routes[("GET", NATIVE)] = handler
    started = time.monotonic()
    r = wv("wait", TASK, "--timeout", "2", *FAST)
    assert r.exit_code == 124, r.stderr
    assert time.monotonic() - started < 30
    assert f"wanvid wait {TASK}" in r.stderr


# -- 3. retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["99999999999999999999", "21", "-1", "abc", "1.5"])
def test_max_retries_out_of_range_is_exit_2_naming_the_variable(server, monkeypatch, value):
    monkeypatch.setenv("WANVID_MAX_RETRIES", value)
    r = wv("status", TASK)
    assert r.exit_code == 2, r.stderr
    line = one_line(r.stderr)
    assert "WANVID_MAX_RETRIES" in line and "0 to 20" in line
    assert server.seen == []


@pytest.mark.parametrize("value", ["0", "20", " 3 "])
def test_max_retries_in_range_is_taken(server, monkeypatch, value):
    monkeypatch.setenv("WANVID_MAX_RETRIES", value)
    server.routes[("GET", NATIVE)] = native()
    assert wv("status", TASK).exit_code == 0


# -- 4. redirects and unusable URLs in answers ---------------------------------------------------------


def test_a_redirect_loop_is_exit_6(server):
    server.routes[("GET", NATIVE)] = (302, {"Location": NATIVE}, b"")
    r = wv("status", TASK)
    assert r.exit_code == 6, r.stderr
    assert "redirect" in one_line(r.stderr)


def test_nan_and_infinity_in_an_answer_never_reach_json_output(server):
    text = json.dumps(native()).replace('"RUNNING"', '"RUNNING", "progress": NaN, "odd": [Infinity, -Infinity]')
    server.routes[("GET", NATIVE)] = (200, {"Content-Type": "application/json"}, text.encode())
    r = wv("status", TASK, "--json")
    assert r.exit_code == 0, r.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"--json printed {constant}, which is not JSON")

    doc = json.loads(r.stdout, parse_constant=refuse)
    assert doc["raw"]["output"]["odd"] == [None, None]


def test_an_endless_redirect_body_is_never_read(server):
    """requests reads a redirect's whole body before following it; a server that never ends it would
    fill memory and hold the request. wanvid drops that connection and follows the Location at once."""
    moved = f"/moved{NATIVE}"

    def endless(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", moved)
        h.end_headers()  # no length: the body runs until the connection closes
        stop, chunk = h.server.stop, b"x" * 65536  # type: ignore[attr-defined]
        while not stop.is_set():
            try:
                h.wfile.write(chunk)
            except OSError:  # the client hung up: that is the point
                return

    server.routes[("GET", NATIVE)] = endless
    server.routes[("GET", moved)] = native(status="SUCCEEDED", video_url="https://oss.example/v.mp4")
    started = time.monotonic()
    r = wv("status", TASK)
    assert r.exit_code == 0, r.stderr
    assert "SUCCEEDED" in r.stdout and time.monotonic() - started < 30


@pytest.mark.parametrize("location", ["http://[::1", "nope://example.com/x", "http://127.0.0.1:99999/x"])
def test_a_garbage_location_is_exit_6(server, location):
    server.routes[("GET", NATIVE)] = (302, {"Location": location}, b"")
    r = wv("status", TASK)
    assert r.exit_code == 6, r.stderr
    one_line(r.stderr)


# -- 5. base URLs --------------------------------------------------------------------------------------

BAD_URLS = [
    "https://exa mple.com",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:0",
    "http://[::1",
    "http://",
    "https://:443/x",
    "https://user:pw@example.com",
    "https://example.com/?a=b",
    "https://example.com/#frag",
    "https://exa\tmple.com",
    "https://example.com/a\x00b",
    "https://exa<mple>.com",
    "ftp://example.com",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_base_url_flag_is_exit_2_before_anything_is_sent(server, url):
    r = wv("status", "x", "--base-url", url)
    assert r.exit_code == 2, r.stderr
    line = one_line(r.stderr)
    assert "base URL" in line and "--base-url" in line
    assert "pw@" not in line  # credentials in a URL are not repeated
    assert server.seen == []


def test_a_malformed_base_url_names_its_source(server, monkeypatch, isolated):
    monkeypatch.setenv("WANVID_BASE_URL", "https://exa mple.com")
    r = wv("status", "x")
    assert r.exit_code == 2 and "WANVID_BASE_URL" in one_line(r.stderr)
    monkeypatch.delenv("WANVID_BASE_URL")
    (isolated / "config").mkdir()
    (isolated / "config" / "config.toml").write_text('[profiles.default]\nbase_url = "http://[::1"\n')
    r = wv("status", "x")
    assert r.exit_code == 2 and "config file" in one_line(r.stderr) and "base_url" in r.stderr


def test_a_trailing_newline_in_the_base_url_is_noise(server, monkeypatch):
    server.routes[("GET", NATIVE)] = native()
    monkeypatch.setenv("WANVID_BASE_URL", server.url + "/\n")
    r = wv("status", TASK)
    assert r.exit_code == 0, r.stderr
    assert [p for _, p, _ in server.seen] == [NATIVE]


# -- 6. the config file --------------------------------------------------------------------------------

GARBAGE_CONFIGS: dict[str, bytes] = {
    "profiles-not-a-table": b"profiles = 1\n",
    "profile-not-a-table": b"[profiles]\ndefault = 3\n",
    "key-not-a-string": b"[profiles.default]\napi_key = 5\n",
    "url-not-a-string": b"[profiles.other]\nbase_url = [1]\n",
    "deep-array": b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "deep-inline-table": b"x = " + b"{a = " * 5000 + b"1" + b"}" * 5000 + b"\n",
    "not-utf8": b'[profiles.default]\napi_key = "\xff\xfe"\n',
    "not-toml": b"[profiles.default\n",
    "too-big": b"# padding\n" * 200_000,
}


@pytest.mark.parametrize("name", list(GARBAGE_CONFIGS))
def test_a_garbage_config_file_is_exit_2_naming_it_and_config_path_still_works(isolated, monkeypatch, name):
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
    path = isolated / "config" / "config.toml"
    path.parent.mkdir()
    path.write_bytes(GARBAGE_CONFIGS[name])
    for args in (("config", "show"), ("status", "x"), ("config", "set", "protocol", "unified")):
        r = wv(*args)
        assert r.exit_code == 2, (args, r.stderr)
        assert str(path) in one_line(r.stderr)
    assert path.read_bytes() == GARBAGE_CONFIGS[name]  # nothing was written over it
    r = wv("config", "path")
    assert r.exit_code == 0 and r.stdout.strip() == str(path)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_config_that_is_not_a_regular_file_is_refused_without_blocking(isolated, kind):
    path = isolated / "config" / "config.toml"
    path.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    r = run("config", "show", env=dict.fromkeys(PROXY_VARS), timeout=20)  # None: unset
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert str(path) in line and "not a regular file" in line


def test_saving_through_a_planted_config_link_leaves_its_target_alone(isolated):
    victim = isolated / "victim.toml"
    victim.write_text('[profiles.work]\nbase_url = "https://gw.example"\n')
    path = isolated / "config" / "config.toml"
    path.parent.mkdir()
    path.symlink_to(victim)
    r = wv("config", "set-key", "--stdin", input=TEST_KEY + "\n")
    assert r.exit_code == 0, r.stderr
    assert victim.read_text() == '[profiles.work]\nbase_url = "https://gw.example"\n'
    assert not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600
    assert TEST_KEY in path.read_text() and "gw.example" in path.read_text()


# -- 7. task ids ---------------------------------------------------------------------------------------


def test_a_created_id_with_surrounding_whitespace_is_kept_and_printed_on_one_line(server, cat):
    server.routes[("POST", CREATE)] = native(f"  {TASK}\n", "PENDING")
    r = wv("create", str(cat), "-p", "x")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == TASK + "\n"


@pytest.mark.parametrize("bad", ["a\nb", "..", ".", "a/b", "a\\b", "a\x00b", "a b", "x" * 201, "a\u2028b", 7])
def test_a_created_id_that_is_unusable_is_exit_6_saying_the_task_may_exist(server, cat, bad):
    server.routes[("POST", CREATE)] = native(bad, "PENDING")
    r = wv("create", str(cat), "-p", "x")
    assert r.exit_code == 6, r.stderr
    assert r.stdout == ""
    line = one_line(r.stderr)
    assert "task id" in line and "console" in line
    assert [m for m, _, _ in server.seen] == ["POST"]  # nothing asked with the bad id


def test_a_create_answer_without_an_id_is_exit_6_saying_the_task_may_exist(server, cat):
    server.routes[("POST", CREATE)] = {"request_id": "req-1", "output": {"task_status": "PENDING"}}
    r = wv("create", str(cat), "-p", "x")
    assert r.exit_code == 6, r.stderr
    assert "console" in one_line(r.stderr)


def test_a_status_answer_with_a_forged_id_is_exit_6_on_one_line(server):
    server.routes[("GET", NATIVE)] = native("ok\nerror: forged line")
    r = wv("status", TASK)
    assert r.exit_code == 6, r.stderr
    assert "forged" in one_line(r.stderr)  # shown escaped, inside the one line
    assert r.stdout == ""


@pytest.mark.parametrize("task_id", ["..", "."])
def test_a_dot_segment_id_on_the_command_line_asks_no_other_route(server, task_id):
    r = wv("status", task_id)
    assert r.exit_code in (2, 6), r.stderr
    assert repr(task_id) in one_line(r.stderr)
    assert server.seen == []


def test_an_odd_but_valid_id_is_sent_percent_encoded_as_one_segment(server):
    odd = "a?b#c%d;e"
    path = "/aliyun/v1/tasks/a%3Fb%23c%25d%3Be"
    server.routes[("GET", path)] = native(odd)
    r = wv("status", odd, "-q")
    assert r.exit_code == 0, r.stderr
    assert [p for _, p, _ in server.seen] == [path]


# -- 8. numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "1e400", "-1", "1e20", '"abc"', "1" + "0" * 400, "[1]", "true"])
def test_odd_numbers_in_every_numeric_field_are_dropped_not_fatal(server, raw):
    fields = ("progress", "created_at", "completed_at", "expires_at")
    numbers = ", ".join(f'"{f}": {raw}' for f in fields)
    text = f'{{"id": "{TASK}", "status": "in_progress", {numbers}}}'
    server.routes[("GET", f"/v1/videos/{TASK}")] = (200, {}, text.encode())
    for extra in ((), ("--json",)):
        r = wv("status", TASK, "--protocol", "unified", *extra)
        assert r.exit_code == 0, r.stderr
    shown = json.loads(r.stdout.replace("NaN", "null").replace("Infinity", "null"))
    task = shown.get("task", shown)
    assert task["progress"] is None and task["expires_at"] is None
    assert task["submitted_at"] is None and task["finished_at"] is None


# The hypothesis property: any JSON-ish document parses into a sane Task or raises BadAnswer/ApiError.

WORDS = ["running", "SUCCEEDED", "failed", "unknown", "queued", "completed", "", " ", "..", TASK, "a\nb", " x "]
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -(10**30), 1e20, -1, 0, 50, 100, 101, 2**63]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=30), st.sampled_from(WORDS))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
WORDY = st.sampled_from(WORDS) | VALUES  # a field that is usually a word, sometimes anything
NUMERIC = NUMBERS | VALUES


def doc(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with any subset of ``fields``, or (rarely) anything at all."""
    return st.fixed_dictionaries({}, optional=fields)


NATIVE_OUT = doc(
    {k: WORDY for k in ("task_id", "task_status", "video_url", "code", "message")}
    | {k: WORDY | NUMERIC for k in ("submit_time", "scheduled_time", "end_time")}
)
NATIVE_DOCS = doc({"output": NATIVE_OUT | VALUES, "request_id": WORDY, "code": WORDY, "message": WORDY})
UNIFIED_DOCS = doc(
    {k: WORDY for k in ("id", "task_id", "status", "video_url", "model")}
    | {k: NUMERIC for k in ("progress", "created_at", "completed_at", "expires_at")}
    | {"error": doc({"code": WORDY, "message": WORDY}) | VALUES, "metadata": doc({"url": WORDY}) | VALUES}
)


def check_sane(task: Task) -> None:
    fields = {k: v for k, v in task.to_dict().items() if k != "raw"}
    json.dumps(fields, allow_nan=False)  # every field is plain, finite JSON
    assert task.progress is None or 0 <= task.progress <= 100
    assert task.expires_at is None or 0 <= task.expires_at < 253402300800
    for text in (task.id, task.error_code, task.error_message, task.video_url, task.model, task.raw_status):
        assert text is None or ("\n" not in text and "\x00" not in text)
    if task.id:
        assert task.id == task.id.strip() and task.id not in (".", "..") and "/" not in task.id


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(native_doc=NATIVE_DOCS, unified_doc=UNIFIED_DOCS)
def test_any_answer_parses_into_a_sane_task_or_a_bad_answer(native_doc, unified_doc):
    for proto, answer in ((Native, native_doc), (Unified, unified_doc)):
        with contextlib.suppress(BadAnswer, ApiError):
            check_sane(proto.parse_task(answer))
        try:
            task_id = proto.task_id_of(answer)
        except BadAnswer:
            continue
        assert task_id is None or (task_id == task_id.strip() and "\n" not in task_id)


@pytest.mark.parametrize("task_id", ["..", ".", "", "a/b", "a\nb"])
def test_the_library_refuses_to_build_a_url_from_an_unusable_id(server, task_id):
    client = Client(server.url, TEST_KEY, sleep=lambda s: None)
    with pytest.raises(UsageError, match="cannot be asked for"):
        query(client, "unified", task_id)
    assert server.seen == []


def test_a_config_dir_under_an_unknown_user_is_exit_2_naming_the_variable(isolated, monkeypatch):
    monkeypatch.setenv("WANVID_CONFIG_DIR", "~no-such-user-h2x/wanvid")
    for args in (("config", "show"), ("config", "path"), ("status", "x")):
        r = wv(*args)
        assert r.exit_code == 2, (args, r.stderr)
        assert "WANVID_CONFIG_DIR" in one_line(r.stderr)
