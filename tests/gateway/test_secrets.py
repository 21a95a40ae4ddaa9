"""The key never leaks, whatever the gateway echoes back: a hostile gateway on 127.0.0.1 (a proxy in front of
the sandbox) copies the key it receives into every answer, and the key shows in no output and no file."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from wanvid.sandbox import Sandbox, sample_mp4

from ..helpers import FAST, TEST_KEY, run, wv


class Echoing:
    """Forwards every request to a sandbox and echoes the key of its Authorization header into the answer: in
    ``video_url``/``url``, every ``message``, ``actual_prompt``, ``request_id``, a field where it is spelled
    with a JSON ``\\u`` escape, and the ``X-Echo``/``X-Request-Id`` headers."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.auths: list[str] = []  # the Authorization header of every API request received
        self.paths: list[str] = []
        self.echoed = 0  # answers the key was planted in
        self.sandbox = sandbox
        echoing = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                auth = self.headers.get("Authorization", "")
                echoing.auths.append(auth)
                echoing.paths.append(self.path)
                key = auth.removeprefix("Bearer ")
                conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                conn.close()
                if key and "json" in (resp.getheader("Content-Type") or ""):
                    raw = echoing.plant(raw, key)
                self.send_response(resp.status)
                for name, value in resp.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "x-request-id"):
                        self.send_header(name, value)
                if key:
                    self.send_header("X-Echo", key)
                    self.send_header("X-Request-Id", f"req-{key}")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def plant(self, raw: bytes, key: str) -> bytes:
        doc = json.loads(raw)

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for name in ("video_url", "url"):
                    if isinstance(node.get(name), str) and node[name]:
                        node[name] += ("&" if "?" in node[name] else "?") + f"leak={key}"
                if isinstance(node.get("message"), str):
                    node["message"] += f" (your key: {key})"
                if "actual_prompt" in node:
                    node["actual_prompt"] = f"{node['actual_prompt']} {key}"
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(doc)
        if isinstance(doc, dict):
            doc["request_id"] = f"req-{key}"
            doc["escaped"] = "ESCAPED"
        self.echoed += 1
        escaped = f"\\u{ord(key[0]):04x}{key[1:]}"  # the key as JSON may spell it: the text filter cannot see it
        return json.dumps(doc).replace("ESCAPED", escaped).encode()


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[Echoing]:
    with Sandbox(api_key=TEST_KEY, queue_seconds=0.05, run_seconds=0.15) as sb:  # a mangled key gets 401
        g = Echoing(sb)
        g.thread.start()
        monkeypatch.setenv("WANVID_BASE_URL", g.url)
        monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
        monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
        yield g
        g.server.shutdown()
        g.server.server_close()


def assert_no_key_on_disk(root: Path) -> int:
    """No file under ``root`` holds the key (the journal, its -wal, sidecars, results files...); how many looked at."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    for path in files:
        with open(path, "rb") as f:
            assert TEST_KEY.encode() not in f.read(), f"the key was written to {path}"
    return len(files)


def assert_the_key_went_to_the_gateway(g: Echoing) -> None:
    assert g.auths and set(g.auths) == {f"Bearer {TEST_KEY}"}, "the Authorization header sent must keep the key"
    assert g.echoed, "the gateway planted the key in no answer: the test proves nothing"


def test_an_echoed_key_reaches_no_output_journal_or_sidecar(hostile, cat, tmp_path):
    r = wv("run", str(cat), "-p", "a cat", "-o", "out.mp4", *FAST)
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "out.mp4"
    # The video_url carried the key and was scrubbed; the download went through the content route all the same.
    assert out.read_bytes() == sample_mp4()
    assert any(p.endswith("/content") for p in hostile.paths)
    sidecar = json.loads((tmp_path / "out.mp4.json").read_text())
    assert sidecar["actual_prompt"].endswith("****")
    task_id = sidecar["task_id"]

    for args in (
        ("wait", task_id),  # prints the video URL
        ("status", task_id),
        ("status", task_id, "--json"),  # prints the server's raw answer
        ("wait", task_id, "--json"),
        ("list",),
        ("list", "--json"),
        ("status", task_id, "--debug"),  # the answer's text and headers on stderr
        ("download", task_id, "-o", "again.mp4", "--debug"),
    ):
        r = wv(*args)
        assert r.exit_code == 0, (args, r.stderr)
    doc = json.loads(wv("status", task_id, "--json").stdout)
    assert "****" in doc["video_url"] and "****" in doc["raw"]["output"]["actual_prompt"]
    assert doc["raw"]["escaped"] == "****"  # spelled with a \u escape, caught after parsing
    assert "< X-Echo: ****" in wv("status", task_id, "--debug").stderr
    assert_the_key_went_to_the_gateway(hostile)
    assert (tmp_path / "data" / "journal.sqlite3").exists()
    assert assert_no_key_on_disk(tmp_path) >= 6  # image, 2 videos, 2 sidecars, journal (+ -wal, -shm)


def test_an_echoed_key_in_error_messages_is_masked(hostile, tmp_path):
    # native: a not-found task document whose message carries the key
    r = wv("status", "no-such-task", "--json")
    assert r.exit_code == 5 and json.loads(r.stdout)["error"]["message"].endswith("(your key: ****)")
    # unified: an HTTP 404 error envelope (read outside the answer parser: only the sinks mask it)
    r = wv("status", "no-such-task", "--protocol", "unified")
    assert r.exit_code == 5 and "(your key: ****) (request id req-****)" in r.stderr, r.stderr
    r = wv("status", "no-such-task", "--protocol", "unified", "--json")
    assert r.exit_code == 5 and json.loads(r.stdout)["error"]["request_id"] == "req-****"
    assert_the_key_went_to_the_gateway(hostile)
    assert_no_key_on_disk(tmp_path)


def test_a_failed_tasks_echoed_message_is_masked_everywhere(monkeypatch, cat, tmp_path):
    with Sandbox(api_key=TEST_KEY, queue_seconds=0.05, run_seconds=0.15) as sb:
        sb.faults.fail_code, sb.faults.fail_message = "InternalError.Algo", "it broke"
        g = Echoing(sb)
        g.thread.start()
        monkeypatch.setenv("WANVID_BASE_URL", g.url)
        monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
        try:
            r = wv("run", str(cat), "-p", "a dog", "-o", "dog.mp4", *FAST)
            assert r.exit_code == 3 and "it broke (your key: ****)" in r.stderr, r.stderr
            r = wv("list", "--json")
            assert json.loads(r.stdout)[0]["error_message"] == "it broke (your key: ****)"
            assert_the_key_went_to_the_gateway(g)
        finally:
            g.server.shutdown()
            g.server.server_close()
    assert_no_key_on_disk(tmp_path)


def test_a_batch_results_file_never_holds_an_echoed_key(hostile, cat, tmp_path):
    (tmp_path / "m.csv").write_text(f"image,prompt\n{cat},one\n{cat},two\n")
    batch = ("batch", "m.csv", "-d", "out", "--name", "{row}.mp4", "--stagger", "0", *FAST)
    # The creates answer HTTP 500 (read outside the answer parser) with the key in the request id.
    hostile.sandbox.faults.server_errors = 2
    r = wv(*batch)
    assert r.exit_code == 6, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "m.results.jsonl").read_text().splitlines()]
    assert [row["error"]["request_id"] for row in rows] == ["req-****", "req-****"]
    r = wv(*batch, "--json")
    assert r.exit_code == 0, r.stderr
    assert [row["status"] for row in json.loads(r.stdout)["rows"]] == ["saved", "saved"]
    assert_the_key_went_to_the_gateway(hostile)
    assert_no_key_on_disk(tmp_path)


def test_a_real_process_with_debug_leaks_the_key_nowhere(hostile, cat, tmp_path):
    proc = run("run", str(cat), "-p", "a bird", "-o", "bird.mp4", "--debug", *FAST, sb=hostile.url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "X-Echo: ****" in proc.stderr and "leak=****" in proc.stderr  # and nowhere the key: run checks
    assert (tmp_path / "bird.mp4").read_bytes() == sample_mp4()
    assert_the_key_went_to_the_gateway(hostile)
    assert_no_key_on_disk(tmp_path)


def test_the_answer_is_scrubbed_before_it_is_parsed(hostile, cat):
    """Ingress: a Task parsed from an echoing answer holds no key, so nothing derived from it can."""
    from wanvid import redact
    from wanvid.gateway.client import Client
    from wanvid.gateway.service import query

    r = wv("create", str(cat), "-p", "a fish", "-q")
    assert r.exit_code == 0, r.stderr
    redact.add(TEST_KEY)  # as every command does (session.Ctx)
    task = query(Client(hostile.url, TEST_KEY), "native", r.stdout.strip())
    assert "****" in json.dumps(task.raw) and task.request_id == "req-****"
    assert TEST_KEY not in repr(task) and TEST_KEY not in json.dumps(task.raw)
    assert_the_key_went_to_the_gateway(hostile)
