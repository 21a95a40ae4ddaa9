"""Messages that name the real cause: a wrong base URL is not a missing task, and a request that never left this
machine (DNS, refused, a proxy's CONNECT, a TLS handshake) is never one "the gateway may have acted on".

What the gateway answers comes from new-api's code: a path no route takes is 404 ``Invalid URL (METHOD /path)``
under /api, /v1, /v1beta and /assets (controller/relay.go RelayNotFound), and its web console's HTML page, HTTP
200, anywhere else (router/web-router.go NoRoute); the sandbox answers the same (tests/sandbox/test_unknown_routes.py).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wanvid.errors import NotFound
from wanvid.gateway.client import Client
from wanvid.sandbox import Sandbox

from ..helpers import FAST, TEST_KEY, creates, gateway_env, on_a_terminal, wv

DEFAULT = "https://api-platform.ope.ai"
PROXY_VARS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)
ACTED = "may have acted"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)


def one_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and text.strip().endswith(lines[0]), text
    assert "Traceback" not in text
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a wrong base URL -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "route"), [("native", "POST /v1/aliyun/v1/videos/generations"), ("unified", "POST /v1/v1/videos")]
)
def test_a_base_url_ending_in_v1_is_a_wrong_base_url_not_a_missing_task(
    sandbox: Sandbox, cat: Path, protocol: str, route: str
) -> None:
    base = sandbox.url + "/v1"
    r = wv("create", str(cat), "-p", "x", "--protocol", protocol, "--base-url", base)
    assert r.exit_code == 2, r.stderr
    line = one_error(r.stderr)
    assert f"the gateway has no route {route}" in line
    assert f"check --base-url (now {base}; the default is {DEFAULT})" in line
    assert "task" not in line.replace("/tasks", "")  # neither "task not found" nor "check the task id"
    assert ACTED not in line
    assert [r.method for r in sandbox.requests("/v1/")] == ["POST"]  # asked once: no route does not come back


def test_status_and_wait_with_a_wrong_base_url_say_so_at_once(sandbox: Sandbox) -> None:
    base = sandbox.url + "/v1"
    for args in (["status", "task_x"], ["wait", "task_x", "--timeout", "30"]):
        r = wv(*args, "--base-url", base)
        assert r.exit_code == 2, r.stderr
        line = one_error(r.stderr)
        assert "the gateway has no route GET /v1/aliyun/v1/tasks/task_x" in line and "--base-url" in line
    assert len(sandbox.requests("/v1/aliyun/")) == 2  # one each: not retried, not polled


def test_a_web_page_where_json_was_expected_is_a_wrong_base_url(
    sandbox: Sandbox, cat: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside new-api's API prefixes its console answers every path with its HTML page, HTTP 200. A status
    query asks again (a proxy's page may pass), a create does not."""
    monkeypatch.setenv("WANVID_MAX_RETRIES", "1")
    base = sandbox.url + "/console"
    r = wv("create", str(cat), "-p", "x", "--base-url", base)
    assert r.exit_code == 2, r.stderr
    line = one_error(r.stderr)
    assert "the gateway answered POST /console/aliyun/v1/videos/generations with a web page, not JSON" in line
    assert f"check --base-url (now {base}; the default is {DEFAULT})" in line
    assert ACTED not in line and "created the task anyway" not in line
    r = wv("status", "task_x", "--base-url", base)
    assert r.exit_code == 2 and "answered GET /console/aliyun/v1/tasks/task_x with a web page" in one_error(r.stderr)
    assert [r.method for r in sandbox.requests("/console/")] == ["POST", "GET", "GET"]


@pytest.mark.parametrize("flavor", ["docs", "newapi", "house"])
@pytest.mark.parametrize("protocol", ["native", "unified"])
def test_a_task_the_gateway_does_not_have_is_still_exit_5(flavor: str, protocol: str) -> None:
    """400 task_not_exist, 404 "video not found", an UNKNOWN ResourceNotFound: the route is right, the task is not."""
    with Sandbox(flavor=flavor) as sb:
        r = wv("status", "task_0123456789abcdef0123456789abcdef", "--protocol", protocol, "--base-url", sb.url)
    assert r.exit_code == 5, r.stderr
    assert "--base-url" not in r.stderr


def test_the_content_routes_task_not_found_is_still_a_missing_task(sandbox: Sandbox) -> None:
    client = Client(sandbox.url, TEST_KEY, max_retries=0)
    with pytest.raises(NotFound) as caught:
        client.stream("/v1/videos/task_nosuch/content")
    assert "route" not in caught.value.message and "base-url" not in (caught.value.hint or "")


# -- nothing was sent -------------------------------------------------------------------------------------


def test_https_to_a_plain_http_server_names_the_tls_handshake(sandbox: Sandbox, cat: Path) -> None:
    base = sandbox.url.replace("http://", "https://")
    r = wv("create", str(cat), "-p", "x", "--base-url", base)
    assert r.exit_code == 6, r.stderr
    line = one_error(r.stderr)
    assert f"the TLS handshake with {base.split('//')[1]} failed" in line
    assert "nothing was sent" in line and "http://" in line and "--base-url" in line
    assert ACTED not in line and "created the task anyway" not in line
    assert creates(sandbox) == 0
    r = wv("status", "task_x", "--base-url", base)
    assert r.exit_code == 6 and "TLS handshake" in one_error(r.stderr)
    assert "retrying" not in r.stderr  # a handshake that failed fails again: not asked four more times


def test_a_create_to_a_closed_port_says_nothing_was_made(cat: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
    r = wv("create", str(cat), "-p", "x", "--base-url", f"http://127.0.0.1:{closed_port()}")
    assert r.exit_code == 6, r.stderr
    line = one_error(r.stderr)
    assert "could not connect to 127.0.0.1" in line and ACTED not in line


def test_a_create_to_a_name_that_does_not_resolve_says_nothing_was_made(
    cat: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
    r = wv("create", str(cat), "-p", "x", "--base-url", "https://gateway.invalid")
    assert r.exit_code == 6, r.stderr
    line = one_error(r.stderr)
    assert "gateway.invalid" in line and ACTED not in line


# -- proxies ----------------------------------------------------------------------------------------------


@pytest.fixture
def refusing_proxy() -> Iterator[int]:
    """A proxy that answers every CONNECT 403, as a corporate proxy does for a host it does not allow."""

    class Refuse(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Refuse)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_dead_proxy_on_a_create_is_named_and_nothing_was_sent(cat: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    r = wv("create", str(cat), "-p", "x", "--base-url", "https://gateway.invalid")
    assert r.exit_code == 6, r.stderr
    line = one_error(r.stderr)
    assert f"the proxy 127.0.0.1:{port} refused the connection" in line and "HTTPS_PROXY" in line
    assert ACTED not in line


def test_a_proxy_refusing_the_tunnel_on_a_create_is_named_and_nothing_was_sent(
    cat: Path, monkeypatch: pytest.MonkeyPatch, refusing_proxy: int
) -> None:
    monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{refusing_proxy}")
    r = wv("create", str(cat), "-p", "x", "--base-url", "https://gateway.invalid")
    assert r.exit_code == 6, r.stderr
    line = one_error(r.stderr)
    assert f"the proxy 127.0.0.1:{refusing_proxy}" in line and "403" in line and "HTTPS_PROXY" in line
    assert ACTED not in line


def test_a_loopback_gateway_is_asked_directly_despite_a_dead_proxy(
    sandbox: Sandbox, cat: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port()}")
    r = wv("create", str(cat), "-p", "x", "--base-url", sandbox.url)
    assert r.exit_code == 0, r.stderr
    assert creates(sandbox) == 1


# -- the gateway's rate limit -----------------------------------------------------------------------------

THROTTLED = "waiting for the gateway's rate limit"


def test_runs_terminal_says_it_waits_for_the_rate_limit(sandbox: Sandbox, cat: Path, isolated: Path) -> None:
    """A throttled create on a terminal: the reason, with the gateway's Retry-After, not a silent wait."""
    sandbox.faults.throttle, sandbox.faults.retry_after = 1, 0.5
    out, screen = on_a_terminal(
        ["run", str(cat), "-p", "x", "-o", str(isolated / "v.mp4"), *FAST], gateway_env(sandbox)
    )
    assert out.strip() == str(isolated / "v.mp4")
    assert f"{THROTTLED} (Retry-After 0.5 s)" in screen
    assert creates(sandbox) == 2


def test_new_apis_own_limiter_sends_no_retry_after_and_says_so(cat: Path, isolated: Path) -> None:
    """new-api's limiter answers an empty 429 without Retry-After (middleware/rate-limit.go): the wait is
    wanvid's own backoff, and the line says which."""
    with Sandbox(queue_seconds=0.2, run_seconds=0.4, flavor="newapi") as sb:
        sb.faults.rate_limit = 1.0
        r = wv("run", str(cat), "-p", "x", *FAST, env=gateway_env(sb))
    assert r.exit_code == 0, r.stderr
    assert f"{THROTTLED} (no Retry-After; retrying in " in r.stderr


def test_a_batch_row_says_why_it_sits_at_submitting(sandbox: Sandbox, cat: Path, isolated: Path) -> None:
    (isolated / "m.csv").write_text(f"image,prompt\n{cat},one\n{cat},two\n")
    name = ["--name", "{row}"]
    sandbox.faults.throttle, sandbox.faults.retry_after = 1, 0.5
    r = wv("batch", "m.csv", *name, *FAST, "--stagger", "0.02", env=gateway_env(sandbox))
    assert r.exit_code == 0, r.stderr
    waiting = [line for line in r.stderr.splitlines() if THROTTLED in line]
    assert waiting, r.stderr
    assert all(
        "status=SUBMITTING" in line and 'reason="' + THROTTLED + ' (Retry-After 0.5 s)"' in line for line in waiting
    )


def test_the_live_batch_board_shows_the_reason_in_the_rows_status(sandbox: Sandbox, cat: Path, isolated: Path) -> None:
    (isolated / "m.csv").write_text(f"image,prompt\n{cat},one\n{cat},two\n")
    sandbox.faults.throttle, sandbox.faults.retry_after = 1, 1.0
    _, screen = on_a_terminal(["batch", "m.csv", "--name", "{row}", *FAST, "--stagger", "0.02"], gateway_env(sandbox))
    assert f"SUBMITTING · {THROTTLED} (Retry-After 1 s)" in screen
