"""The HTTP client against a real sandbox on 127.0.0.1: retries, error mapping, where the key goes."""

from __future__ import annotations

import socket

import pytest

from wanvid.errors import ApiError, AuthError, InvalidRequest, NotFound, Unavailable
from wanvid.gateway.client import Client
from wanvid.gateway.service import query
from wanvid.sandbox import Sandbox

from ..helpers import TEST_KEY, wait_until

BODY = {"model": "wan2.7-i2v", "input": {"media": [{"type": "first_frame", "url": "https://e.com/a.png"}]}}


def make(sb: Sandbox, **kw) -> tuple[Client, list[float]]:
    waits: list[float] = []
    return Client(sb.url, TEST_KEY, sleep=waits.append, jitter=lambda: 1.0, **kw), waits


def create(client: Client) -> str:
    return client.post_json("/aliyun/v1/videos/generations", BODY)["output"]["task_id"]


def test_429_is_retried_after_retry_after(sandbox: Sandbox):
    client, waits = make(sandbox)
    task_id = create(client)
    sandbox.faults.throttle, sandbox.faults.retry_after = 2, 0.25
    assert query(client, "native", task_id).id == task_id
    assert waits == [0.25, 0.25]
    assert len(sandbox.requests("/aliyun/v1/tasks/")) == 3


def test_5xx_burst_is_survived_with_exponential_backoff(sandbox: Sandbox):
    client, waits = make(sandbox)
    task_id = create(client)
    sandbox.faults.server_errors = 3
    query(client, "native", task_id)
    assert waits == [0.5, 1.0, 2.0]


def test_retry_budget_spent_gives_unavailable(sandbox: Sandbox):
    client, waits = make(sandbox, max_retries=2)
    task_id = create(client)
    sandbox.faults.server_errors, sandbox.faults.server_error_status = 10, 503
    with pytest.raises(Unavailable) as exc:
        query(client, "native", task_id)
    assert exc.value.exit_code == 6 and exc.value.status == 503 and len(waits) == 2


def test_create_is_not_resent_after_a_5xx_but_is_after_429(sandbox: Sandbox):
    client, _ = make(sandbox)
    sandbox.faults.server_errors = 1
    with pytest.raises(Unavailable):
        create(client)
    assert len(sandbox.requests("/aliyun/v1/videos/generations")) == 1  # the server may have acted
    sandbox.faults.throttle, sandbox.faults.retry_after = 1, 0
    create(client)
    assert len(sandbox.requests("/aliyun/v1/videos/generations")) == 3


def test_refused_connection_is_retried_then_reported():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    client = Client(f"http://127.0.0.1:{port}", TEST_KEY, sleep=waits.append, max_retries=2)
    with pytest.raises(Unavailable, match="could not connect"):
        client.post_json("/aliyun/v1/videos/generations", BODY)
    assert len(waits) == 2


def test_wrong_key_is_an_auth_error():
    with Sandbox(api_key="the-right-key") as sb:
        client = Client(sb.url, TEST_KEY, sleep=lambda s: None)
        with pytest.raises(AuthError) as exc:
            create(client)
    assert exc.value.code == "InvalidApiKey" and exc.value.exit_code == 4
    assert TEST_KEY not in exc.value.message


def test_error_mapping(sandbox: Sandbox):
    client, _ = make(sandbox)
    with pytest.raises(InvalidRequest) as bad:
        client.post_json("/aliyun/v1/videos/generations", {**BODY, "model": "nope"})
    assert bad.value.code == "ModelNotFound" and bad.value.exit_code == 2
    with pytest.raises(InvalidRequest) as bad:
        client.post_json("/aliyun/v1/videos/generations", {**BODY, "parameters": {"duration": 99}})
    assert "duration" in bad.value.message and bad.value.request_id
    with pytest.raises(NotFound):
        query(client, "unified", "no-such-task")
    # the sandbox's native UNKNOWN names its reason (code ResourceNotFound): the task is gone, not in a passing state
    assert query(client, "native", "no-such-task").status.value == "NOT_FOUND"


def test_key_goes_only_to_the_gateway_host(sandbox: Sandbox):
    client, _ = make(sandbox)
    task_id = create(client)
    wait_until(lambda: [t["status"] for t in sandbox.tasks()] == ["SUCCEEDED"], "the task to succeed")
    task = query(client, "native", task_id)
    assert task.video_url and task.video_url.startswith("http://localhost:")
    client.stream(task.video_url).close()  # a signed URL on another host
    oss = sandbox.requests("/_oss/")
    assert oss and all("authorization" not in r.headers for r in oss)
    api = sandbox.requests("/aliyun/")
    assert all(r.headers.get("authorization") == f"Bearer {TEST_KEY}" for r in api)


def test_redirect_to_another_host_drops_the_key():
    with Sandbox(queue_seconds=0, run_seconds=0, content_redirect=True) as sb:
        client = Client(sb.url, TEST_KEY, sleep=lambda s: None)
        task_id = create(client)
        resp = client.stream(f"/aliyun/v1/videos/{task_id}/content")
        assert resp.content[4:8] == b"ftyp"
        (oss,) = sb.requests("/_oss/")
        assert "authorization" not in oss.headers


def test_error_body_on_http_200_and_non_json_are_errors():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers = iter(
        [
            (b'{"error": {"code": "InvalidParameter", "message": "bad seed"}}', "application/json"),
            (b"<html>proxy error</html>", "text/html"),
        ]
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, ctype = next(answers)
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client(f"http://127.0.0.1:{server.server_address[1]}", TEST_KEY, max_retries=0)
        with pytest.raises(InvalidRequest, match="bad seed"):
            client.get_json("/x", lambda body, resp: body)
        with pytest.raises(ApiError, match="not JSON"):
            client.get_json("/x", lambda body, resp: body)
    finally:
        server.shutdown()
