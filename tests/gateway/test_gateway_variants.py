"""wanvid against the answers the real gateway gives beyond API.md (../shared/GATEWAY-VARIANTS.md).

Each answer below is written out literally as new-api's Go code (file references beside it) or ope.ai's pages
show it, and served by a scripted HTTP server on 127.0.0.1; the expectations are the exit codes and messages
wanvid documents. Nothing here reads wanvid's own rules to build an expected value.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ..helpers import FAST, TEST_KEY, wv

TASK = "task_0123456789abcdefghijklmnopqrstuv"  # new-api's public id form: task_ + 32 characters


@dataclass
class Answer:
    status: int
    body: Any = None  # a dict/list is sent as JSON, bytes as they are, None as an empty body
    headers: dict[str, str] = field(default_factory=dict)


class Scripted:
    """A gateway that answers each (method, path) with the next of its scripted answers (the last one repeats)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                scripted.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                queue = scripted.routes.get((self.command, self.path)) or [Answer(404, {"error": {"message": "no"}})]
                a = queue.pop(0) if len(queue) > 1 else queue[0]
                raw = a.body if isinstance(a.body, bytes) else b"" if a.body is None else json.dumps(a.body).encode()
                self.send_response(a.status)
                if a.body is not None and not isinstance(a.body, bytes):
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in a.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    g = Scripted()
    g.thread.start()
    monkeypatch.setenv("WANVID_BASE_URL", g.url)
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
    monkeypatch.setenv("WANVID_MAX_RETRIES", "1")
    yield g
    g.server.shutdown()
    g.server.server_close()


def video(status: str, **extra: Any) -> dict[str, Any]:
    """new-api's OpenAIVideo (dto/openai_video.go): progress always, task_id alias, metadata.url."""
    return {
        "id": TASK,
        "task_id": TASK,
        "object": "video",
        "model": "wan2.7-i2v",
        "status": status,
        "progress": 100 if status in ("completed", "failed") else 30,
        "created_at": 1764489600,
        "completed_at": 1764489700,
        "metadata": {"url": ""},
        **extra,
    }


def unified(*args: str) -> list[str]:
    fast = FAST if args[0] == "wait" else []
    return [*args, "--protocol", "unified", *fast]


# -- ended tasks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["failed", "FAILURE"])
def test_a_failed_unified_task_is_exit_3_with_the_servers_reason_and_no_resume_hint(gateway, word):
    # relay/channel/task/ali/adaptor.go ~506-517: HTTP 200, the reason inside the video object
    reason = {"code": "DataInspectionFailed", "message": "Input data may contain inappropriate content."}
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(200, video(word, error=reason)))
    for command in ("wait", "status"):
        r = wv(*unified(command, TASK))
        assert r.exit_code == 3, r.stderr
        assert "DataInspectionFailed" in r.stderr and "inappropriate content" in r.stderr
        assert "resume with" not in r.stderr and "wanvid wait" not in r.stderr


def test_a_failed_task_reason_in_chinese_is_shown_as_it_is(gateway):
    reason = {"code": "InternalError", "message": "视频生成失败，请稍后重试"}
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(200, video("failed", error=reason)))
    r = wv(*unified("wait", TASK))
    assert r.exit_code == 3 and "视频生成失败，请稍后重试" in r.stderr
    r = wv(*unified("wait", TASK, "--json"))
    assert json.loads(r.stdout)["error"]["message"].endswith("视频生成失败，请稍后重试")


def test_unknown_words_extra_and_missing_fields_never_crash(gateway):
    answer = video("rendering_frames", brand_new_field={"x": [1, 2]})
    for key in ("progress", "created_at", "completed_at", "metadata", "model", "task_id"):
        answer.pop(key)
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(200, answer))
    r = wv(*unified("status", TASK))
    assert r.exit_code == 0 and "rendering_frames" in r.stdout


def test_odd_numbers_in_an_answer_are_dropped_not_fatal(gateway):
    raw = json.dumps(video("in_progress")).replace('"progress": 30', '"progress": 1e400')
    raw = raw.replace('"created_at": 1764489600', '"created_at": 1e20')
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(200, raw.encode(), {"Content-Type": "application/json"}))
    r = wv(*unified("status", TASK, "--json"))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "RUNNING" and doc["progress"] is None and doc["submitted_at"] is None


# -- error answers ------------------------------------------------------------------------------------


def test_new_apis_flat_task_not_exist_is_exit_5(gateway):
    # relay/relay_task.go ~374: 400, flat, no envelope
    gateway.on(
        "GET", f"/v1/videos/{TASK}", Answer(400, {"code": "task_not_exist", "message": "task_not_exist", "data": None})
    )
    r = wv(*unified("status", TASK))
    assert r.exit_code == 5 and "task_not_exist" in r.stderr


def test_ope_ais_not_found_envelope_is_exit_5(gateway):
    body = {"error": {"message": "video not found", "type": "NotFound", "param": "", "code": "ResourceNotFound"}}
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(404, body))
    r = wv(*unified("wait", TASK))
    assert r.exit_code == 5 and "video not found" in r.stderr


def test_the_content_routes_unknown_id_without_a_code_is_exit_5(gateway):
    # controller/video_proxy.go ~47; the status query says the task is done, the content route does not know it
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(200, video("completed")))
    gateway.on(
        "GET",
        f"/v1/videos/{TASK}/content",
        Answer(404, {"error": {"message": "Task not found", "type": "invalid_request_error"}}),
    )
    r = wv(*unified("download", TASK, "-o", "v.mp4"))
    assert r.exit_code == 5 and "Task not found" in r.stderr


@pytest.mark.parametrize(
    ("status", "inner", "exit_code"),
    [
        (400, {"code": "InvalidParameter", "message": "The size is not supported."}, 2),
        (400, {"code": "DataInspectionFailed", "message": "Input data may contain inappropriate content."}, 2),
        (401, {"code": "InvalidApiKey", "message": "Invalid API-key provided."}, 4),
        (403, {"code": "Arrearage", "message": "Access denied, please make sure your account is in good standing."}, 4),
    ],
)
def test_fail_to_fetch_task_shows_the_providers_code_and_message(gateway, cat, status, inner, exit_code):
    # relay/relay_task.go ~226: the provider's JSON body becomes the message of a flat fail_to_fetch_task error
    provider = json.dumps({"request_id": "b2c9-provider-rid", **inner})
    body = {"code": "fail_to_fetch_task", "message": provider, "data": None}
    gateway.on("POST", "/aliyun/v1/videos/generations", Answer(status, body))
    r = wv("create", str(cat), "-p", "a cat")
    assert r.exit_code == exit_code, r.stderr
    line = r.stderr.splitlines()[0]
    assert f"{inner['code']}: {inner['message']}" in line and "{" not in line
    assert "b2c9-provider-rid" in wv("create", str(cat), "-p", "a cat", "--json").stdout


def test_new_apis_401_with_an_empty_code_is_exit_4(gateway):
    # middleware/utils.go ~18
    body = {"error": {"message": "Invalid token (request id: 20261130-abc)", "type": "new_api_error", "code": ""}}
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(401, body))
    r = wv(*unified("status", TASK))
    assert r.exit_code == 4 and "Invalid token (request id: 20261130-abc)" in r.stderr
    assert "gateway error 401:" in r.stderr  # no empty code shown


def test_an_empty_429_without_retry_after_is_retried_then_exit_6(gateway):
    # middleware/rate-limit.go ~56, ~70: status only, no body, no Retry-After
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(429), Answer(429), Answer(200, video("in_progress")))
    gateway.routes[("GET", f"/v1/videos/{TASK}")].insert(0, Answer(429))
    r = wv(*unified("status", TASK), env={"WANVID_MAX_RETRIES": "4"})
    assert r.exit_code == 0, r.stderr
    assert sum(1 for m, p, _ in gateway.seen if p == f"/v1/videos/{TASK}") == 4
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(429))
    r = wv(*unified("status", TASK))
    assert r.exit_code == 6 and "429" in r.stderr


def test_the_rewritten_upstream_429_in_chinese_is_exit_6_and_shown_as_it_is(gateway):
    # controller/relay.go respondTaskError: an upstream 429 gets this message
    body = {"code": "fail_to_fetch_task", "message": "当前分组上游负载已饱和，请稍后再试", "data": None}
    gateway.on("GET", f"/v1/videos/{TASK}", Answer(429, body))
    r = wv(*unified("status", TASK))
    assert r.exit_code == 6 and "当前分组上游负载已饱和，请稍后再试" in r.stderr


def test_dashscopes_flat_error_is_read(gateway, cat):
    body = {"request_id": "7a1c-dash", "code": "InvalidParameter", "message": "Field required: input.media"}
    gateway.on("POST", "/aliyun/v1/videos/generations", Answer(400, body))
    r = wv("create", str(cat), "-p", "a cat", "--json")
    assert r.exit_code == 2
    err = json.loads(r.stdout)["error"]
    assert (err["code"], err["request_id"]) == ("InvalidParameter", "7a1c-dash")
    assert "Field required: input.media" in err["message"]


def test_a_flat_error_on_http_200_is_an_error_not_a_task(gateway):
    gateway.on(
        "GET", f"/v1/videos/{TASK}", Answer(200, {"code": "task_not_exist", "message": "task_not_exist", "data": None})
    )
    r = wv(*unified("status", TASK))
    assert r.exit_code == 5 and "task_not_exist" in r.stderr


# -- against the sandbox in each of the real gateway's styles ------------------------------------------

FLAVORS = ["docs", "newapi"]


@pytest.fixture(params=FLAVORS)
def flavored(request: pytest.FixtureRequest, gw: Any) -> Any:
    gw.flavor = request.param
    return gw


@pytest.mark.parametrize("protocol", ["native", "unified"])
def test_a_failed_task_is_exit_3_in_every_flavor(flavored, cat, protocol):
    flavored.faults.fail_code, flavored.faults.fail_message = "InternalError.Algo", "生成失败 (the model gave up)"
    r = wv("run", str(cat), "-p", "a cat", "--protocol", protocol, *FAST)
    assert r.exit_code == 3, r.stderr
    assert "InternalError.Algo" in r.stderr and "生成失败 (the model gave up)" in r.stderr
    assert "resume with" not in r.stderr and not (cat.parent / "cat.mp4").exists()


@pytest.mark.parametrize("protocol", ["native", "unified"])
def test_a_transient_unknown_is_polled_through_in_every_flavor(flavored, cat, protocol):
    flavored.faults.unknown_queries = 3
    r = wv("run", str(cat), "-p", "a cat", "--protocol", protocol, *FAST)
    assert r.exit_code == 0, r.stderr
    assert "reports task" in r.stderr and "as UNKNOWN" in r.stderr and "Polling on for up to 10m" in r.stderr
    assert (cat.parent / "cat.mp4").is_file()


@pytest.mark.parametrize("protocol", ["native", "unified"])
def test_a_status_that_goes_back_to_running_loses_nothing(flavored, cat, protocol):
    flavored.faults.regress_once = True
    task_id = wv("create", str(cat), "-p", "a cat", "--protocol", protocol, "-q").stdout.strip()
    assert wv("wait", task_id, *FAST).exit_code == 0  # the gateway's first ended answer
    r = wv("download", task_id, "-o", "v.mp4")  # its next answer says running again, once
    assert r.exit_code == 0, r.stderr
    assert "reported SUCCEEDED before" in r.stderr and (cat.parent / "v.mp4").is_file()
    assert wv("status", task_id).exit_code == 0
    assert [row["status"] for row in json.loads(wv("list", "--json").stdout)] == ["SUCCEEDED"]


@pytest.mark.parametrize("protocol", ["native", "unified"])
def test_status_of_a_young_task_answering_unknown_is_exit_0_with_a_note(flavored, cat, protocol):
    flavored.faults.unknown_queries = 5
    task_id = wv("create", str(cat), "-p", "a cat", "--protocol", protocol, "-q").stdout.strip()
    r = wv("status", task_id)
    assert r.exit_code == 0 and "UNKNOWN" in r.stdout and "polls through it" in r.stderr


def test_fail_to_fetch_task_from_the_sandbox_shows_the_inner_error(flavored, cat):
    flavored.faults.fetch_task_errors = 10
    r = wv("create", str(cat), "-p", "a cat", "--json", env={"WANVID_MAX_RETRIES": "0"})
    err = json.loads(r.stdout)["error"]
    # HTTP 500 around the provider's {"code": "InternalError", "message": "An internal error."}
    assert r.exit_code == err["exit_code"] == 6
    assert err["code"] == "InternalError" and err["message"].endswith(
        "InternalError: An internal error. (fail_to_fetch_task)"
    )


def test_newapis_401_and_empty_429_in_the_sandbox(gw, cat, monkeypatch):
    gw.flavor, gw.api_key = "newapi", "the-right-key"
    r = wv("status", "task_x", "--protocol", "unified")
    assert r.exit_code == 4 and "Invalid token" in r.stderr
    gw.api_key = None
    gw.faults.rate_limit = 0.5  # one request per 2 s: the second is an empty 429 without Retry-After
    monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
    wv("status", "task_x", "--protocol", "unified")
    r = wv("status", "task_x", "--protocol", "unified")
    assert r.exit_code == 6 and "429" in r.stderr


@pytest.mark.parametrize("prompt", [[], ["-p", "  "]])
def test_a_unified_create_without_a_prompt_is_refused_before_anything_is_sent(gw, cat, prompt):
    # ope.ai's Create Video page marks prompt required; new-api answers 400 "prompt is required"
    r = wv("run", str(cat), *prompt, "--protocol", "unified")
    assert r.exit_code == 2 and "requires a prompt" in r.stderr and len(r.stderr.splitlines()) == 1
    assert gw.requests("/v1/videos") == []
