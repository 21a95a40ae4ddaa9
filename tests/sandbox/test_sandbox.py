"""The gateway emulator over real HTTP: both protocols, validation, lifecycle, downloads, faults, control."""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from wanvid.rules.mp4 import mp4_info
from wanvid.sandbox import MALFORMED_KINDS, Faults, Sandbox, min_video_size, sample_mp4

from ..helpers import wv

KEY = "test-key-0123456789-never-print"
AUTH = {"Authorization": f"Bearer {KEY}"}
NATIVE_CREATE = "/aliyun/v1/videos/generations"
PNG_URI = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nnot-really-a-png").decode()
WAV_URI = "data:audio/wav;base64," + base64.b64encode(b"RIFF....WAVEfmt ").decode()
BAD_BASE64 = "data:image/png;base64,@@@"
MP4_URI = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42").decode()


def native_body(model: str = "wan2.7-i2v", **parameters: Any) -> dict[str, Any]:
    if model == "wan2.6-i2v":
        inp: dict[str, Any] = {"prompt": "a cat walks", "img_url": "https://example.com/cat.png"}
    else:
        inp = {
            "prompt": "a cat walks",
            "media": [{"type": "first_frame", "url": "https://example.com/cat.png"}],
        }
    return {"model": model, "input": inp, "parameters": parameters}


def unified_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "wan2.7-i2v",
        "prompt": "a cat walks",
        "size": "1280x720",
        "seconds": "5",
        "input_reference": {"content": [{"type": "image_url", "role": "first_frame", "image_url": {"url": PNG_URI}}]},
    }
    body.update(fields)
    return body


def create_native(sb: Sandbox, body: dict[str, Any] | None = None) -> str:
    r = requests.post(sb.url + NATIVE_CREATE, json=body or native_body(), headers=AUTH)
    assert r.status_code == 200, r.text
    return str(r.json()["output"]["task_id"])


def create_unified(sb: Sandbox, body: dict[str, Any] | None = None) -> str:
    r = requests.post(sb.url + "/v1/videos", json=body or unified_body(), headers=AUTH)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def native_task(sb: Sandbox, task_id: str) -> dict[str, Any]:
    r = requests.get(f"{sb.url}/aliyun/v1/tasks/{task_id}", headers=AUTH)
    assert r.status_code == 200
    return dict(r.json())


def unified_task(sb: Sandbox, task_id: str) -> requests.Response:
    return requests.get(f"{sb.url}/v1/videos/{task_id}", headers=AUTH)


def sandbox_tasks(sb: Sandbox) -> dict[str, dict[str, Any]]:
    r = requests.get(sb.url + "/_sandbox/tasks")
    assert r.status_code == 200
    return {row["id"]: row for row in r.json()}


def statuses_until(read: Callable[[], str], final: set[str], timeout: float = 5.0) -> list[str]:
    """Poll ``read`` until a final status; return the distinct statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read()
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in final:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"no final status within {timeout}s: {seen}")


@pytest.fixture
def instant() -> Iterator[Sandbox]:
    """Tasks are finished the moment they are created."""
    with Sandbox(queue_seconds=0, run_seconds=0) as sb:
        yield sb


# ---- round trips and lifecycle ----------------------------------------------------------------------


def test_native_round_trip(sandbox: Sandbox) -> None:
    r = requests.post(sandbox.url + NATIVE_CREATE, json=native_body(duration=10, seed=7), headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["output"]["task_status"] == "PENDING"
    assert body["request_id"] == r.headers["X-Request-Id"]
    task_id = body["output"]["task_id"]

    first = native_task(sandbox, task_id)["output"]
    assert first["task_status"] == "PENDING"
    assert "scheduled_time" not in first and "video_url" not in first
    seen = statuses_until(lambda: native_task(sandbox, task_id)["output"]["task_status"], {"SUCCEEDED"})
    assert seen == ["PENDING", "RUNNING", "SUCCEEDED"]

    done = native_task(sandbox, task_id)
    out = done["output"]
    for key in ("submit_time", "scheduled_time", "end_time"):
        assert len(out[key]) == 23 and out[key][10] == " " and out[key][19] == "."  # 2026-11-20 10:00:00.123
    assert out["orig_prompt"] == "a cat walks" and out["actual_prompt"].startswith("a cat walks")
    assert out["video_url"].startswith(f"http://localhost:{sandbox.port}/_oss/{task_id}.mp4?Expires=")
    assert done["usage"] == {"duration": 10, "video_count": 1, "SR": 1080}
    assert "code" not in out

    content = requests.get(f"{sandbox.url}/aliyun/v1/videos/{task_id}/content", headers=AUTH)
    assert content.status_code == 200
    assert content.headers["Content-Type"] == "video/mp4" and content.headers["Accept-Ranges"] == "bytes"
    assert content.content == sample_mp4()

    signed = requests.get(out["video_url"])  # no Authorization: the URL carries its own signature
    assert signed.status_code == 200 and signed.content == sample_mp4()
    oss = sandbox.requests("/_oss/")
    assert len(oss) == 1 and "authorization" not in oss[0].headers


def test_unified_round_trip(sandbox: Sandbox) -> None:
    sandbox.flavor = "house"  # the house flavor's own shapes; docs and newapi have tests of their own
    r = requests.post(sandbox.url + "/v1/videos", json=unified_body(), headers=AUTH)
    assert r.status_code == 200
    created = r.json()
    assert set(created) == {"id", "object", "status", "created_at", "model", "prompt", "size", "seconds"}
    assert created["object"] == "video" and created["status"] == "QUEUED" and created["seconds"] == "5"
    assert isinstance(created["created_at"], int) and "request_id" not in created
    task_id = created["id"]

    progress: list[int] = []

    def read() -> str:
        view = unified_task(sandbox, task_id).json()
        if view["status"] == "IN_PROGRESS":
            progress.append(view["progress"])
        return str(view["status"])

    assert statuses_until(read, {"SUCCESS"}) == ["QUEUED", "IN_PROGRESS", "SUCCESS"]
    assert progress and all(0 <= p < 100 for p in progress) and progress == sorted(progress)
    view = unified_task(sandbox, task_id).json()
    assert view["progress"] == 100 and view["completed_at"] >= view["created_at"]
    assert view["expires_at"] == view["created_at"] + 86400
    assert view["metadata"]["url"].startswith("http://localhost:")
    assert "error" not in view

    content = requests.get(f"{sandbox.url}/v1/videos/{task_id}/content", headers=AUTH)
    assert content.status_code == 200 and content.content == sample_mp4()


def test_tasks_are_shared_across_protocols(instant: Sandbox) -> None:
    task_id = create_unified(instant)
    assert native_task(instant, task_id)["output"]["task_status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("upper", ["QUEUED", "IN_PROGRESS", "SUCCESS"]),
        ("openai", ["queued", "in_progress", "completed"]),
        ("newapi", ["NOT_START", "SUBMITTED", "IN_PROGRESS", "SUCCESS"]),
    ],
)
def test_status_styles(style: str, expected: list[str]) -> None:
    with Sandbox(queue_seconds=0.3, run_seconds=0.15, status_style=style, flavor="house") as sb:
        task_id = create_unified(sb)
        seen = statuses_until(lambda: str(unified_task(sb, task_id).json()["status"]), {expected[-1]})
        assert seen == expected


FAILED_WORDS = [("upper", "FAILURE"), ("openai", "failed"), ("newapi", "FAILURE")]


@pytest.mark.parametrize(("style", "failed"), FAILED_WORDS)
def test_status_styles_failure(style: str, failed: str) -> None:
    with Sandbox(
        queue_seconds=0, run_seconds=0, status_style=style, faults=Faults(fail_code="X"), flavor="house"
    ) as sb:
        assert unified_task(sb, create_unified(sb)).json()["status"] == failed


def test_unknown_status_style_is_refused() -> None:
    with pytest.raises(ValueError, match="status_style"):
        Sandbox(status_style="lower")


# ---- auth -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer   "])
def test_missing_or_malformed_key_is_401(sandbox: Sandbox, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    for method, path in [("POST", NATIVE_CREATE), ("GET", "/aliyun/v1/tasks/x"), ("GET", "/v1/videos/x")]:
        r = requests.request(method, sandbox.url + path, json=native_body(), headers=headers)
        assert r.status_code == 401
        assert r.json()["error"] == {
            "message": r.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": None,
            "code": "InvalidApiKey",
        }


def test_fixed_api_key_rejects_others_and_never_echoes() -> None:
    with Sandbox(api_key=KEY, queue_seconds=0, run_seconds=0) as sb:
        bad_key = {"Authorization": "Bearer nope-123"}
        wrong = requests.post(sb.url + NATIVE_CREATE, json=native_body(), headers=bad_key)
        assert wrong.status_code == 401 and "nope-123" not in wrong.text
        assert create_native(sb)
        log = requests.get(sb.url + "/_sandbox/requests").text
        assert KEY not in log and "nope-123" not in log and "[redacted]" in log
        # In-process the real header stays available for assertions.
        assert sb.requests(NATIVE_CREATE)[-1].headers["authorization"] == f"Bearer {KEY}"


# ---- validation -------------------------------------------------------------------------------------


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = body
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is KeyError:
        node.pop(last, None)
    else:
        node[last] = value
    return body


NATIVE_CASES: list[tuple[str, str, Any, str]] = [
    # (model, body path to change, new value or KeyError to delete, expected param)
    ("wan2.7-i2v", "model", KeyError, "model"),
    ("wan2.7-i2v", "prompt", "top-level", "prompt"),
    ("wan2.7-i2v", "content", [], "content"),
    ("wan2.7-i2v", "input", KeyError, "input"),
    ("wan2.7-i2v", "parameters", [1], "parameters"),
    ("wan2.7-i2v", "input.prompt", 5, "input.prompt"),
    ("wan2.7-i2v", "input.media", [], "input.media"),
    ("wan2.7-i2v", "input.media", [{"type": "last_frame", "url": "https://e.com/a.png"}], "input.media"),
    ("wan2.7-i2v", "input.media", [{"type": "poster", "url": "https://e.com/a.png"}], "input.media[0].type"),
    ("wan2.7-i2v", "input.media", [{"type": "first_frame", "url": "ftp://e.com/a"}], "input.media[0].url"),
    ("wan2.7-i2v", "input.media", [{"type": "first_frame", "url": ""}], "input.media[0].url"),
    ("wan2.7-i2v", "input.media", [{"type": "first_frame", "url": BAD_BASE64}], "input.media[0].url"),
    ("wan2.7-i2v", "input.media", [{"type": "first_frame", "url": WAV_URI}], "input.media[0].url"),
    ("wan2.7-i2v", "input.img_url", "https://e.com/a.png", "input.img_url"),
    ("wan2.7-i2v", "parameters.duration", 16, "parameters.duration"),
    ("wan2.7-i2v", "parameters.duration", "5", "parameters.duration"),
    ("wan2.7-i2v", "parameters.duration", True, "parameters.duration"),
    ("wan2.7-i2v", "parameters.resolution", "4K", "parameters.resolution"),
    ("wan2.7-i2v", "parameters.seed", -1, "parameters.seed"),
    ("wan2.7-i2v", "parameters.seed", False, "parameters.seed"),
    ("wan2.7-i2v", "parameters.prompt_extend", "yes", "parameters.prompt_extend"),
    ("wan2.7-i2v", "parameters.watermark", 1, "parameters.watermark"),
    ("wan2.7-i2v", "parameters.shot_type", "multi", "parameters.shot_type"),
    ("wan2.7-i2v", "input.negative_prompt", "n" * 501, "input.negative_prompt"),
    ("wan2.6-i2v", "input.img_url", KeyError, "input.img_url"),
    ("wan2.6-i2v", "input.img_url", "data:video/mp4;base64,AAAA", "input.img_url"),
    ("wan2.6-i2v", "input.audio_url", PNG_URI, "input.audio_url"),
    ("wan2.6-i2v", "input.media", [{"type": "first_frame", "url": PNG_URI}], "input.media"),
    ("wan2.6-i2v", "input.prompt", "p" * 1501, "input.prompt"),
    ("wan2.6-i2v", "parameters.duration", 7, "parameters.duration"),
    ("wan2.6-i2v", "parameters.shot_type", "triple", "parameters.shot_type"),
]


@pytest.mark.parametrize(("model", "path", "value", "param"), NATIVE_CASES)
def test_native_validation(sandbox: Sandbox, model: str, path: str, value: Any, param: str) -> None:
    r = requests.post(sandbox.url + NATIVE_CREATE, json=_set(native_body(model), path, value), headers=AUTH)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidParameter" and error["param"] == param
    assert param.split(".")[-1].split("[")[0] in error["message"]
    assert r.json()["request_id"] == r.headers["X-Request-Id"]


@pytest.mark.parametrize(
    "body",
    [
        native_body("wan2.6-i2v", duration=15, shot_type="multi", resolution="720P"),
        {"model": "wan2.6-i2v", "input": {"img_url": PNG_URI, "audio_url": WAV_URI}},
        {
            "model": "wan2.7-i2v",
            "input": {
                "media": [
                    {"type": "first_clip", "url": MP4_URI},
                    {"type": "last_frame", "url": "http://example.com/end.jpg"},
                ]
            },
            "parameters": {"duration": 2, "seed": 2147483647, "prompt_extend": False, "watermark": True},
        },
    ],
)
def test_native_accepts_valid_bodies(sandbox: Sandbox, body: dict[str, Any]) -> None:
    assert create_native(sandbox, body)


def test_native_unknown_model_and_bad_json(sandbox: Sandbox) -> None:
    r = requests.post(sandbox.url + NATIVE_CREATE, json=native_body("wan9-i2v"), headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "ModelNotFound" and r.json()["error"]["param"] == "model"
    r = requests.post(sandbox.url + NATIVE_CREATE, data=b"{not json", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter"
    r = requests.post(sandbox.url + NATIVE_CREATE, json=[1, 2], headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["param"] is None


UNIFIED_CASES: list[tuple[str, Any, str]] = [
    ("content", [{"type": "text", "text": "hi"}], "content"),
    ("model", 5, "model"),
    ("prompt", ["x"], "prompt"),
    ("prompt", "p" * 5001, "prompt"),
    ("size", "big", "size"),
    ("size", "0x720", "size"),
    ("seconds", 5, "seconds"),
    ("seconds", "5s", "seconds"),
    ("seconds", "16", "seconds"),
    ("generate_audio", "no", "generate_audio"),
    ("seed", "1", "seed"),
    ("seed", 2147483648, "seed"),
    ("input_reference", KeyError, "input_reference"),
    ("input_reference.content", [], "input_reference.content"),
    ("input_reference.content", [{"type": "text", "text": "x"}], "input_reference.content"),
    (
        "input_reference.content",
        [{"type": "image_url", "image_url": "u"}],
        "input_reference.content[0].image_url",
    ),
    (
        "input_reference.content",
        [{"type": "text"}, {"type": "image_url", "image_url": {"url": "file:///a.png"}}],
        "input_reference.content[1].image_url.url",
    ),
    (
        "input_reference.content",
        [{"type": "image_url", "image_url": {"url": WAV_URI}}],
        "input_reference.content[0].image_url.url",
    ),
]


@pytest.mark.parametrize(("path", "value", "param"), UNIFIED_CASES)
def test_unified_validation(sandbox: Sandbox, path: str, value: Any, param: str) -> None:
    r = requests.post(sandbox.url + "/v1/videos", json=_set(unified_body(), path, value), headers=AUTH)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidParameter" and error["param"] == param
    assert param.split(".")[-1].split("[")[0] in error["message"]
    assert "request_id" not in r.json()


def test_unified_unknown_model_and_defaults(sandbox: Sandbox) -> None:
    sandbox.flavor = "house"  # the house flavor's own shapes; docs and newapi have tests of their own
    r = requests.post(sandbox.url + "/v1/videos", json=unified_body(model="sora-2"), headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ModelNotFound"
    minimal = {"model": "wan2.7-i2v", "input_reference": unified_body()["input_reference"]}
    created = requests.post(sandbox.url + "/v1/videos", json=minimal, headers=AUTH).json()
    assert created["seconds"] == "5" and created["size"] == "1920x1080" and created["prompt"] == ""


# ---- queries and downloads of unknown / unfinished tasks ------------------------------------------


def test_unknown_task_answers(sandbox: Sandbox) -> None:
    sandbox.flavor = "house"  # the house flavor's own shapes; docs and newapi have tests of their own
    out = native_task(sandbox, "no-such-task")["output"]
    assert out["task_status"] == "UNKNOWN" and out["code"] and out["message"]
    r = unified_task(sandbox, "no-such-task")
    assert r.status_code == 400 and r.json()["error"]["code"] == "task_not_exist"
    r = requests.get(sandbox.url + "/aliyun/v1/videos/no-such-task/content", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"
    r = requests.get(sandbox.url + "/v1/videos/no-such-task/content", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "task_not_exist"


def test_content_before_completion_is_400(sandbox: Sandbox) -> None:
    sandbox.flavor = "house"  # the house flavor's own shapes; docs and newapi have tests of their own
    task_id = create_native(sandbox)
    r = requests.get(f"{sandbox.url}/aliyun/v1/videos/{task_id}/content", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter"
    assert r.json()["error"]["message"] == "Task is not completed yet, current status: PENDING"
    r = requests.get(f"{sandbox.url}/v1/videos/{task_id}/content", headers=AUTH)
    assert r.json()["error"]["message"] == "Task is not completed yet, current status: QUEUED"


def test_unknown_route_is_404_envelope_with_request_id(sandbox: Sandbox) -> None:
    """As new-api: 404 under its API prefixes, its console's page elsewhere (tests/sandbox/test_unknown_routes.py)."""
    for method, path in [("DELETE", "/v1/videos/x"), ("GET", "/api/v2/videos")]:
        r = requests.request(method, sandbox.url + path, headers=AUTH)
        assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert len(r.headers["X-Request-Id"]) == 36
    for method, path in [("GET", "/v2/videos"), ("GET", NATIVE_CREATE)]:
        r = requests.request(method, sandbox.url + path, headers=AUTH)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")


# ---- Range ------------------------------------------------------------------------------------------


def test_range_requests(instant: Sandbox) -> None:
    url = f"{instant.url}/v1/videos/{create_unified(instant)}/content"
    data = sample_mp4()
    size = len(data)

    r = requests.get(url, headers={**AUTH, "Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == data[:100]
    assert r.headers["Content-Range"] == f"bytes 0-99/{size}" and r.headers["Content-Length"] == "100"
    r = requests.get(url, headers={**AUTH, "Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == data[1000:]
    r = requests.get(url, headers={**AUTH, "Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = requests.get(url, headers={**AUTH, "Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    r = requests.get(url, headers={**AUTH, "Range": "bytes=0-1,5-6"})  # multi-range: whole file is allowed
    assert r.status_code == 200 and r.content == data


def test_served_file_is_a_real_mp4(instant: Sandbox, tmp_path: Path) -> None:
    url = f"{instant.url}/aliyun/v1/videos/{create_native(instant)}/content"
    data = requests.get(url, headers=AUTH).content
    assert data[4:8] == b"ftyp"
    if shutil.which("ffprobe"):
        path = tmp_path / "out.mp4"
        path.write_bytes(data)
        fields = ["-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"]
        probe = subprocess.run(
            ["ffprobe", "-v", "error", *fields, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert probe.stdout.strip() == "h264,640,360"


def finished_urls(sb: Sandbox) -> tuple[str, str]:
    """(content route URL, signed URL) of a new native task; the sandbox must finish tasks at once."""
    task_id = create_native(sb)
    return f"{sb.url}/aliyun/v1/videos/{task_id}/content", native_task(sb, task_id)["output"]["video_url"]


def ffprobe_video(path: Path) -> str:
    fields = ["-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"]
    probe = subprocess.run(["ffprobe", "-v", "error", *fields, str(path)], capture_output=True, text=True, check=True)
    return probe.stdout.strip()


def test_video_validators_and_if_range(instant: Sandbox) -> None:
    content, signed = finished_urls(instant)
    data = sample_mp4()
    first = requests.get(content, headers=AUTH)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag) and first.headers["Accept-Ranges"] == "bytes"
    assert abs(email.utils.parsedate_to_datetime(modified).timestamp() - time.time()) < 5
    again = requests.get(signed, headers={"Range": "bytes=0-9"})
    assert again.status_code == 206 and (again.headers["ETag"], again.headers["Last-Modified"]) == (etag, modified)
    assert requests.head(content, headers=AUTH).headers["ETag"] == etag

    def ranged(if_range: str) -> requests.Response:
        return requests.get(signed, headers={"Range": "bytes=100-", "If-Range": if_range})

    same = ranged(etag)
    assert same.status_code == 206 and same.content == data[100:]
    for stale in ('"0123456789abcdef0123456789abcdef"', f"W/{etag}", modified, "garbage"):
        whole = ranged(stale)  # a date is only a weak validator here: never trusted
        assert whole.status_code == 200 and whole.content == data and "Content-Range" not in whole.headers, stale
    assert requests.get(signed, headers={"If-Range": '"x"'}).status_code == 200  # no Range: nothing to do
    unsatisfiable = requests.get(signed, headers={"Range": f"bytes={len(data)}-", "If-Range": etag})
    assert unsatisfiable.status_code == 416 and unsatisfiable.headers["ETag"] == etag


def test_ignore_range_fault(instant: Sandbox) -> None:
    content, signed = finished_urls(instant)
    instant.faults.ignore_range = True
    for url, headers in ((content, AUTH), (signed, {})):
        for value in ("bytes=0-99", "bytes=999999999-"):  # the second would be a 416
            r = requests.get(url, headers={**headers, "Range": value})
            assert r.status_code == 200 and r.content == sample_mp4() and "Content-Range" not in r.headers
            assert r.headers["Accept-Ranges"] == "bytes"  # as a proxy that strips Range still advertises it
    instant.faults.ignore_range = False
    assert requests.get(signed, headers={"Range": "bytes=0-99"}).status_code == 206


def test_video_variant_changes_bytes_and_etag(instant: Sandbox, tmp_path: Path) -> None:
    content, signed = finished_urls(instant)
    sample = sample_mp4()
    head = requests.get(signed, headers={"Range": "bytes=0-999"})
    etag0, modified0 = head.headers["ETag"], head.headers["Last-Modified"]

    bodies: dict[int, tuple[bytes, str]] = {}
    for variant in (1, 2, 2**64 - 1):
        instant.faults.video_variant = variant
        r = requests.get(content, headers=AUTH)
        assert r.status_code == 200
        bodies[variant] = r.content, r.headers["ETag"]
        assert r.content == sample + struct.pack(">I4sQ", 16, b"free", variant)
    assert len({etag for _, etag in bodies.values()} | {etag0}) == 4
    assert requests.head(signed).headers["ETag"] == bodies[2**64 - 1][1]  # both routes serve the same bytes

    # A resumed download that presents the old ETag gets the whole new file, never a splice.
    instant.faults.video_variant = 1
    resumed = requests.get(signed, headers={"Range": "bytes=1000-", "If-Range": etag0})
    assert resumed.status_code == 200 and resumed.content == bodies[1][0]
    modified1 = resumed.headers["Last-Modified"]
    assert email.utils.parsedate_to_datetime(modified1) >= email.utils.parsedate_to_datetime(modified0)
    # Without If-Range the client gets what it asked for: the tail of the new bytes.
    blind = requests.get(signed, headers={"Range": "bytes=1000-"})
    assert blind.status_code == 206 and blind.content == bodies[1][0][1000:]

    path = tmp_path / "variant.mp4"
    path.write_bytes(bodies[1][0])
    with path.open("rb") as f:
        info = mp4_info(f)
    assert info.duration == pytest.approx(5, abs=0.1) and (info.width, info.height) == (640, 360)
    if shutil.which("ffprobe"):
        assert ffprobe_video(path) == "h264,640,360"

    instant.faults.video_variant = 0
    back = requests.get(content, headers=AUTH)
    assert back.content == sample and back.headers["ETag"] == etag0


def test_video_size_pads_the_sample(instant: Sandbox, tmp_path: Path) -> None:
    content, signed = finished_urls(instant)
    sample = sample_mp4()
    size = 3 * 1024 * 1024 + 7
    instant.faults.video_size = size
    r = requests.get(content, headers=AUTH)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(r.content) == size
    data = r.content
    assert data[: len(sample)] == sample
    assert data[len(sample) : len(sample) + 16] == struct.pack(">I4sQ", size - len(sample), b"free", 0)
    assert data[len(sample) + 16 :] == bytes(size - len(sample) - 16)
    path = tmp_path / "padded.mp4"
    path.write_bytes(data)
    with path.open("rb") as f:
        info = mp4_info(f)
    assert info.duration == pytest.approx(5, abs=0.1) and (info.width, info.height) == (640, 360)
    if shutil.which("ffprobe"):
        assert ffprobe_video(path) == "h264,640,360"

    # Ranges anywhere, across the sample/padding seam; the ETag follows size and variant.
    seam = len(sample) - 5
    for first, last in ((0, 9), (seam, seam + 40), (size - 1000, size - 1), (5, size - 1)):
        part = requests.get(signed, headers={"Range": f"bytes={first}-{last}"})
        assert part.status_code == 206 and part.content == data[first : last + 1]
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
    etag = r.headers["ETag"]
    assert requests.get(signed, headers={"Range": "bytes=0-0", "If-Range": etag}).status_code == 206
    instant.faults.video_size = size + 1
    assert requests.head(signed).headers["ETag"] != etag
    instant.faults.video_size, instant.faults.video_variant = size, 3
    varied = requests.get(signed, headers={"Range": f"bytes={len(sample) + 8}-{len(sample) + 15}"})
    assert varied.headers["ETag"] != etag and varied.content == struct.pack(">Q", 3)

    # Cut and slow downloads work on the generated body too.
    instant.faults.cut_download_after, instant.faults.cut_downloads = 2_000_000, 1
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(content, headers=AUTH).content  # noqa: B018
    instant.faults.slow_download_bps = 400_000
    start = time.monotonic()
    tail = requests.get(signed, headers={"Range": "bytes=-200000"})
    assert tail.content == bytes(200_000) and time.monotonic() - start >= 0.4


def test_video_size_over_4_gib_uses_a_largesize_box(instant: Sandbox, tmp_path: Path) -> None:
    content, _ = finished_urls(instant)
    sample = sample_mp4()
    size = 5 * 2**30 + 3
    instant.faults.video_size = size
    assert int(requests.head(content, headers=AUTH).headers["Content-Length"]) == size
    head = requests.get(content, headers={**AUTH, "Range": f"bytes=0-{len(sample) + 15}"}).content
    assert head == sample + struct.pack(">I4sQ", 1, b"free", size - len(sample))
    tail = requests.get(content, headers={**AUTH, "Range": "bytes=-4096"})
    assert tail.headers["Content-Range"] == f"bytes {size - 4096}-{size - 1}/{size}" and tail.content == bytes(4096)
    # The rest is zeros, so a sparse file is byte-for-byte the served one.
    path = tmp_path / "big.mp4"
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    with path.open("rb") as f:
        info = mp4_info(f)
    assert info.duration == pytest.approx(5, abs=0.1) and (info.width, info.height) == (640, 360)
    if shutil.which("ffprobe"):
        assert ffprobe_video(path) == "h264,640,360"


def test_video_size_is_streamed_not_built(instant: Sandbox) -> None:
    content, _ = finished_urls(instant)
    size = 256 * 2**20
    instant.faults.video_size = size
    tracemalloc.start()
    try:
        received = 0
        with requests.get(content, headers=AUTH, stream=True) as r:
            for chunk in r.iter_content(1 << 20):
                received += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < 16 * 2**20  # server and client together; the body alone is 256 MiB


def test_video_size_limits_over_http(sandbox: Sandbox) -> None:
    base = sandbox.url + "/_sandbox/faults"
    low = min_video_size()
    assert low == len(sample_mp4()) + 16
    for bad in (low - 1, 0, -5, "1000000", True, 1.5e6, 2**63):
        r = requests.post(base, json={"video_size": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "video_size", bad
        assert str(low) in r.json()["error"]["message"]
    assert requests.post(base, json={"video_size": low}).json()["video_size"] == low
    assert requests.post(base, json={"video_size": None}).json()["video_size"] is None
    for bad_variant in (-1, 2**64, "1", False):
        assert requests.post(base, json={"video_variant": bad_variant}).status_code == 400
    for switch in ("ignore_range", "video_html"):
        assert requests.post(base, json={switch: 1}).status_code == 400
        assert requests.post(base, json={switch: True}).json()[switch] is True


def test_video_html_fault(instant: Sandbox) -> None:
    content, signed = finished_urls(instant)
    instant.faults.video_html = True
    for url, headers in ((content, AUTH), (signed, {"Range": "bytes=0-99"})):
        r = requests.get(url, headers=headers)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        assert r.text.lstrip().lower().startswith("<!doctype html") and b"ftyp" not in r.content
        assert r.headers["X-Request-Id"] and "ETag" not in r.headers
    assert next(iter(sandbox_tasks(instant).values()))["downloads"] == 0  # no video body was sent
    instant.faults.video_html = False
    assert requests.get(signed).content == sample_mp4()


# ---- signed URL, redirect ---------------------------------------------------------------------------


def test_signed_url_rules(instant: Sandbox) -> None:
    task_id = create_native(instant)
    url = native_task(instant, task_id)["output"]["video_url"]
    r = requests.get(url, headers=AUTH)  # a client leaking the API key to the object store
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidArgument"
    assert instant.requests("/_oss/")[-1].headers["authorization"] == f"Bearer {KEY}"
    assert requests.get(url.replace("Signature=", "Signature=0")).status_code == 403
    assert requests.get(url, headers={"Range": "bytes=0-3"}).content == sample_mp4()[:4]
    requests.post(instant.url + "/_sandbox/reset")
    assert requests.get(url).json()["error"]["code"] == "NoSuchKey"  # forgotten, not expired


def test_content_redirect() -> None:
    with Sandbox(queue_seconds=0, run_seconds=0, content_redirect=True) as sb:
        url = f"{sb.url}/v1/videos/{create_unified(sb)}/content"
        r = requests.get(url, headers=AUTH, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"].startswith(f"http://localhost:{sb.port}/_oss/")
        followed = requests.get(url, headers=AUTH)  # requests drops the key on the host change
        assert followed.status_code == 200 and followed.content == sample_mp4()
        assert "authorization" not in sb.requests("/_oss/")[-1].headers


# ---- faults -----------------------------------------------------------------------------------------


def test_fail_fault_applies_to_new_tasks_only(sandbox: Sandbox) -> None:
    before = create_native(sandbox)
    sandbox.faults.fail_code, sandbox.faults.fail_message = "DataInspectionFailed", "Input data may contain X"
    failing = create_unified(sandbox)
    sandbox.faults.fail_code = sandbox.faults.fail_message = None
    seen = statuses_until(lambda: native_task(sandbox, failing)["output"]["task_status"], {"FAILED"})
    assert seen[-1] == "FAILED"

    out = native_task(sandbox, failing)
    assert out["output"]["code"] == "DataInspectionFailed"
    assert out["output"]["message"] == "Input data may contain X"
    assert "usage" not in out and "video_url" not in out["output"] and "end_time" in out["output"]
    view = unified_task(sandbox, failing).json()
    assert view["status"] == "FAILURE" and view["progress"] == 100
    assert view["error"] == {"code": "DataInspectionFailed", "message": "Input data may contain X"}
    r = requests.get(f"{sandbox.url}/v1/videos/{failing}/content", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["message"].endswith("current status: FAILURE")
    assert native_task(sandbox, before)["output"]["task_status"] == "SUCCEEDED"


def test_throttle_fault(sandbox: Sandbox) -> None:
    sandbox.faults.throttle, sandbox.faults.retry_after = 2, 0.2
    for _ in range(2):
        r = requests.post(sandbox.url + "/v1/videos", json=unified_body(), headers=AUTH)
        assert r.status_code == 429 and r.headers["Retry-After"] == "0.2"
        assert r.json()["error"]["code"] == "Throttling"
    assert sandbox.faults.throttle == 0
    assert create_unified(sandbox)
    assert len(sandbox.requests("/v1/videos")) == 3  # throttled requests are still recorded


def test_throttle_comes_before_auth_and_integral_retry_after(sandbox: Sandbox) -> None:
    sandbox.faults.throttle, sandbox.faults.retry_after = 1, 3
    r = requests.get(sandbox.url + "/aliyun/v1/tasks/x")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3" and "request_id" in r.json()


@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "ServiceUnavailable")])
def test_server_error_fault(sandbox: Sandbox, status: int, code: str) -> None:
    sandbox.faults.server_errors, sandbox.faults.server_error_status = 1, status
    r = requests.post(sandbox.url + NATIVE_CREATE, json=native_body(), headers=AUTH)
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert create_native(sandbox)


def test_cut_download_fault(instant: Sandbox) -> None:
    instant.faults.cut_download_after, instant.faults.cut_downloads = 1000, 2
    url = f"{instant.url}/aliyun/v1/videos/{create_native(instant)}/content"
    conn = http.client.HTTPConnection("127.0.0.1", instant.port, timeout=5)
    try:
        conn.request("GET", url.removeprefix(instant.url), headers=AUTH)
        r = conn.getresponse()
        assert int(r.headers["Content-Length"]) == len(sample_mp4())
        with pytest.raises(http.client.IncompleteRead) as short:
            r.read()
        assert len(short.value.partial) == 1000
    finally:
        conn.close()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # what a requests-based client sees
        requests.get(url, headers=AUTH, stream=True).content  # noqa: B018
    assert instant.faults.cut_downloads == 0
    assert requests.get(url, headers=AUTH).content == sample_mp4()  # only two downloads were cut


def test_slow_download_fault(instant: Sandbox) -> None:
    url = f"{instant.url}/v1/videos/{create_unified(instant)}/content"
    headers = {**AUTH, "Range": "bytes=0-59999"}
    start = time.monotonic()
    assert len(requests.get(url, headers=headers).content) == 60000
    fast = time.monotonic() - start
    instant.faults.slow_download_bps = 200_000
    start = time.monotonic()
    assert len(requests.get(url, headers=headers).content) == 60000
    slow = time.monotonic() - start
    assert slow >= 0.25 and slow > fast * 2


def test_expire_fault_and_ttl(sandbox: Sandbox) -> None:
    task_id = create_native(sandbox)
    sandbox.faults.expire = True
    assert native_task(sandbox, task_id)["output"]["task_status"] == "UNKNOWN"
    assert unified_task(sandbox, task_id).json()["error"]["code"] == "ResourceNotFound"  # docs: ope.ai's 404
    sandbox.faults.expire = False
    assert native_task(sandbox, task_id)["output"]["task_status"] != "UNKNOWN"

    with Sandbox(queue_seconds=0, run_seconds=0, ttl_seconds=0.1) as sb:
        task_id = create_native(sb)
        video_url = native_task(sb, task_id)["output"]["video_url"]
        time.sleep(0.15)
        assert native_task(sb, task_id)["output"]["task_status"] == "UNKNOWN"
        assert requests.get(video_url).status_code in (403, 404)


def test_content_error_fault_spares_signed_urls(instant: Sandbox) -> None:
    task_id = create_native(instant)
    signed = native_task(instant, task_id)["output"]["video_url"]
    instant.faults.content_errors = 3
    for path in (f"/aliyun/v1/videos/{task_id}/content", f"/v1/videos/{task_id}/content"):
        r = requests.get(instant.url + path, headers=AUTH)
        assert r.status_code == 502 and r.headers["X-Request-Id"]
        assert r.json()["error"]["code"] == "BadGateway" and r.json()["error"]["type"] == "server_error"
        assert requests.get(signed).content == sample_mp4()  # the fallback still works meanwhile
    assert native_task(instant, task_id)["output"]["task_status"] == "SUCCEEDED"  # queries are spared too
    assert instant.faults.content_errors == 1

    r = requests.post(instant.url + "/_sandbox/faults", json={"content_error_status": 503})
    assert r.status_code == 200 and r.json()["content_errors"] == 1
    r = requests.get(f"{instant.url}/aliyun/v1/videos/{task_id}/content", headers=AUTH)
    assert r.status_code == 503 and r.json()["error"]["code"] == "ServiceUnavailable" and "request_id" in r.json()
    assert requests.get(f"{instant.url}/v1/videos/{task_id}/content", headers=AUTH).content == sample_mp4()
    for bad in ({"content_error_status": 404}, {"content_errors": -1}, {"content_errors": "1"}):
        assert requests.post(instant.url + "/_sandbox/faults", json=bad).status_code == 400


def test_drop_connections_fault(instant: Sandbox) -> None:
    done = create_native(instant)
    signed = native_task(instant, done)["output"]["video_url"]
    instant.faults.drop_connections, instant.faults.throttle = 3, 1

    # Control and signed URLs are never dropped (and don't use up the count).
    assert requests.get(instant.url + "/_sandbox/health").ok and requests.get(signed).ok
    conn = http.client.HTTPConnection("127.0.0.1", instant.port, timeout=5)
    try:
        conn.request("POST", NATIVE_CREATE, body=json.dumps(native_body()), headers=AUTH)
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    finally:
        conn.close()
    with pytest.raises(requests.ConnectionError):
        unified_task(instant, done)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{instant.url}/v1/videos/{done}/content", headers=AUTH)
    assert instant.faults.drop_connections == 0 and instant.faults.throttle == 1  # throttle kept its turn

    rows = sandbox_tasks(instant)
    assert len(rows) == 2  # the dropped create was acted on: a client can't know, and must not re-send
    assert (rows[done]["polls"], rows[done]["downloads"]) == (2, 1)  # the dropped download sent no body
    assert [r.path for r in instant.requests()][-3:] == [
        NATIVE_CREATE,
        f"/v1/videos/{done}",
        f"/v1/videos/{done}/content",
    ]
    assert unified_task(instant, done).status_code == 429  # the next request is answered again


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_answers(instant: Sandbox, kind: str) -> None:
    instant.faults.malformed = kind
    created = requests.post(instant.url + NATIVE_CREATE, json=native_body(), headers=AUTH)
    instant.faults.malformed = kind
    queried = unified_task(instant, next(iter(sandbox_tasks(instant))))
    for r, native in ((created, True), (queried, False)):
        assert r.status_code == 200 and len(r.headers["X-Request-Id"]) == 36, kind
        body = r.content
        if kind == "html":
            assert r.headers["Content-Type"].startswith("text/html") and body.startswith(b"<!DOCTYPE html>")
            continue
        assert r.headers["Content-Type"] == "application/json"
        if kind == "empty":
            assert body == b""
        elif kind == "truncated":
            assert body.startswith(b'{"') and len(body) > 10
            with pytest.raises(ValueError):
                json.loads(body)
        elif kind == "not_object":
            assert isinstance(r.json(), list) and isinstance(r.json()[0], dict)
        elif kind == "wrong_types" and native:
            assert r.json() == {
                "request_id": r.headers["X-Request-Id"],
                "output": {"task_id": 12345, "task_status": ["RUNNING"], "video_url": 7},
            }
        elif kind == "wrong_types":
            assert r.json() == {"id": None, "status": {"x": 1}, "progress": "ninety"}
        elif kind == "missing":
            assert r.json() == {"request_id": r.headers["X-Request-Id"]}
        else:
            assert len(body) == int(r.headers["Content-Length"]) == 64 * 2**20
            decoded = r.json()  # valid JSON, just far too big
            assert len(decoded["padding"]) > 63 * 2**20
            assert ("output" in decoded) if native else (decoded["status"] == "SUCCESS")
    assert len(sandbox_tasks(instant)) == 1  # the create behind the broken answer was acted on
    assert instant.faults.malformed is None and instant.faults.malformed_count == 1  # spent: defaults again
    assert native_task(instant, next(iter(sandbox_tasks(instant))))["output"]["task_status"] == "SUCCEEDED"


def test_malformed_count_and_scope(instant: Sandbox) -> None:
    task_id = create_native(instant)
    signed = native_task(instant, task_id)["output"]["video_url"]
    r = requests.post(instant.url + "/_sandbox/faults", json={"malformed": "html", "malformed_count": 2})
    assert r.json()["malformed"] == "html"
    # Downloads, signed URLs and control calls keep their real answers and don't use up the count.
    assert requests.get(f"{instant.url}/v1/videos/{task_id}/content", headers=AUTH).content == sample_mp4()
    assert requests.get(signed).content == sample_mp4()
    assert requests.get(instant.url + "/_sandbox/faults").json()["malformed_count"] == 2
    assert "text/html" in unified_task(instant, task_id).headers["Content-Type"]
    assert instant.faults.malformed_count == 1
    # An error answer is replaced too: it is the next answer of a query route.
    assert requests.get(f"{instant.url}/aliyun/v1/tasks/nope", headers=AUTH).text.startswith("<!DOCTYPE")
    assert native_task(instant, task_id)["output"]["task_status"] == "SUCCEEDED"
    r = requests.post(instant.url + "/_sandbox/faults", json={"malformed": "xml"})
    assert r.status_code == 400 and "not_object" in r.json()["error"]["message"]
    assert requests.post(instant.url + "/_sandbox/faults", json={"malformed_count": -1}).status_code == 400


def test_huge_answer_is_streamed(instant: Sandbox) -> None:
    task_id = create_native(instant)
    instant.faults.malformed = "huge"
    conn = http.client.HTTPConnection("127.0.0.1", instant.port, timeout=10)
    tracemalloc.start()
    try:
        conn.request("GET", f"/aliyun/v1/tasks/{task_id}", headers=AUTH)
        r = conn.getresponse()
        received = 0
        while piece := r.read(1 << 20):
            received += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        conn.close()
    assert received == 64 * 2**20 and peak < 16 * 2**20


def test_fail_after_fault_is_an_early_failure_captured_at_creation() -> None:
    with Sandbox(queue_seconds=0.3, run_seconds=60) as sb:
        sb.faults.fail_after = 0.8
        early = create_native(sb)
        sb.faults.fail_after = None
        normal = create_native(sb)
        seen = statuses_until(lambda: native_task(sb, early)["output"]["task_status"], {"FAILED"})
        assert seen == ["PENDING", "RUNNING", "FAILED"]
        out = native_task(sb, early)["output"]
        assert out["code"] == "DataInspectionFailed" and "inappropriate" in out["message"]
        assert "video_url" not in out and out["scheduled_time"] <= out["end_time"]
        assert native_task(sb, normal)["output"]["task_status"] == "RUNNING"
        rows = sandbox_tasks(sb)
        assert rows[early]["status"] == "FAILED"
        assert rows[early]["ends_at"] - rows[early]["created_at"] == pytest.approx(0.8)
        assert rows[normal]["ends_at"] - rows[normal]["created_at"] == pytest.approx(60.3)

        # Before the queue is over: PENDING straight to FAILED; an explicit code and message win.
        sb.faults.fail_after, sb.faults.fail_code = 0, "IPInfringementSuspect"
        view = unified_task(sb, create_unified(sb)).json()
        assert view["status"] == "FAILURE" and view["progress"] == 100
        assert view["error"]["code"] == "IPInfringementSuspect" and "inappropriate" in view["error"]["message"]
        assert 0 <= view["completed_at"] - view["created_at"] <= 1
        out = native_task(sb, view["id"])["output"]
        assert out["scheduled_time"] == out["end_time"] == out["submit_time"]


def test_fail_after_over_http(sandbox: Sandbox) -> None:
    base = sandbox.url + "/_sandbox/faults"
    assert requests.post(base, json={"fail_after": 0.5}).json()["fail_after"] == 0.5
    for bad in ("-1", '"1"', "true", "Infinity", "NaN"):  # raw JSON text: Python's json reads Infinity
        r = requests.post(base, data='{"fail_after": ' + bad + "}")
        assert r.status_code == 400 and r.json()["error"]["param"] == "fail_after", bad
    assert requests.post(base, json={"fail_after": None}).json()["fail_after"] is None


# ---- per-task timing, task list ---------------------------------------------------------------------


def test_timing_applies_to_tasks_created_afterwards() -> None:
    with Sandbox(queue_seconds=0, run_seconds=0, flavor="house") as sb:
        base = sb.url + "/_sandbox/timing"
        assert requests.get(base).json() == {"queue_seconds": 0, "run_seconds": 0, "ttl_seconds": 86400.0}
        done = create_native(sb)
        done_url = native_task(sb, done)["output"]["video_url"]
        r = requests.post(base, json={"queue_seconds": 60, "ttl_seconds": 1})
        assert r.status_code == 200
        assert r.json() == {"queue_seconds": 60, "run_seconds": 0, "ttl_seconds": 1}
        assert (sb.queue_seconds, sb.ttl_seconds) == (60, 1)
        queued = create_unified(sb)
        assert native_task(sb, done)["output"]["task_status"] == "SUCCEEDED"  # not sent back to the queue
        view = unified_task(sb, queued).json()
        assert view["status"] == "QUEUED" and view["expires_at"] - view["created_at"] <= 1

        for bad in ({"run_seconds": -1}, {"run_seconds": "1"}, {"ttl_seconds": True}, {"nope": 1}, [1]):
            r = requests.post(base, json=bad)
            assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter", bad
        assert requests.post(base, json={"run_seconds": 1, "queue_seconds": -1}).status_code == 400
        assert requests.get(base).json()["run_seconds"] == 0  # all-or-nothing

        time.sleep(1.1)
        assert native_task(sb, queued)["output"]["task_status"] == "UNKNOWN"
        assert unified_task(sb, queued).json()["error"]["code"] == "task_not_exist"
        assert requests.get(done_url).status_code == 200  # the old task keeps its day-long TTL

        assert requests.post(sb.url + "/_sandbox/reset").status_code == 200
        assert requests.get(base).json() == {"queue_seconds": 0, "run_seconds": 0, "ttl_seconds": 86400.0}


def test_short_ttl_expires_the_signed_url() -> None:
    with Sandbox(queue_seconds=0, run_seconds=0, ttl_seconds=0.6) as sb:
        task_id = create_native(sb)
        video_url = native_task(sb, task_id)["output"]["video_url"]
        assert requests.get(video_url).status_code == 200
        time.sleep(0.7)  # the task is gone; the URL's whole-second Expires may not have passed yet
        r = requests.get(video_url)
        assert r.status_code == 403 and r.json()["error"] == {
            "message": "Request has expired",
            "type": "invalid_request_error",
            "param": None,
            "code": "AccessDenied",
        }
        r = requests.get(f"{sb.url}/aliyun/v1/videos/{task_id}/content", headers=AUTH)
        assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"
        assert sandbox_tasks(sb)[task_id]["status"] == "UNKNOWN"


def test_task_list_counts_polls_and_downloads() -> None:
    with Sandbox(queue_seconds=0.3, run_seconds=0.1) as sb:
        before = time.time()
        native = create_native(sb)
        unified = create_unified(sb, unified_body(model="wan2.6-i2v", seconds="10"))
        rows = sandbox_tasks(sb)
        assert rows[native]["status"] == "PENDING" and rows[native]["polls"] == 0
        time.sleep(0.5)
        for _ in range(3):
            native_task(sb, native)
        unified_task(sb, unified)
        native_task(sb, unified)  # a query by either route counts
        video_url = native_task(sb, native)["output"]["video_url"]
        assert requests.get(f"{sb.url}/aliyun/v1/videos/{native}/content", headers=AUTH).ok
        assert requests.get(video_url, headers={"Range": "bytes=10-"}).status_code == 206
        assert requests.head(video_url).ok  # no body: not a download
        assert requests.get(f"{sb.url}/v1/videos/{unified}/content", headers=AUTH).ok

        rows = sandbox_tasks(sb)
        assert len(rows) == 2
        row = rows[native]
        assert set(row) == {
            "id",
            "model",
            "protocol",
            "status",
            "created_at",
            "ends_at",
            "expires_at",
            "polls",
            "downloads",
        }
        assert (row["model"], row["protocol"], row["status"]) == ("wan2.7-i2v", "native", "SUCCEEDED")
        assert (row["polls"], row["downloads"]) == (4, 2)
        assert before <= row["created_at"] < row["ends_at"] <= time.time()
        assert row["ends_at"] - row["created_at"] == pytest.approx(0.4)
        assert row["expires_at"] - row["created_at"] == pytest.approx(86400)
        other = rows[unified]
        assert (other["model"], other["protocol"], other["polls"], other["downloads"]) == (
            "wan2.6-i2v",
            "unified",
            2,
            1,
        )


# ---- rate and task limits, load stats ---------------------------------------------------------------

ZERO_STATS = {
    "in_flight": 0,
    "max_in_flight": 0,
    "max_active_tasks": 0,
    "throttled": 0,
    "creates": 0,
    "requests": 0,
    "video_bytes": 0,
    "video_seconds": 0.0,
}


def stats(sb: Sandbox) -> dict[str, float]:
    r = requests.get(sb.url + "/_sandbox/stats")
    assert r.status_code == 200
    body = dict(r.json())
    assert set(body) == set(ZERO_STATS)
    return body


def set_faults(sb: Sandbox, **faults: Any) -> None:
    r = requests.post(sb.url + "/_sandbox/faults", json=faults)
    assert r.status_code == 200, r.text


def test_rate_limit_answers_rate_quota_until_a_slot_frees(instant: Sandbox) -> None:
    task_id = create_native(instant)
    video_url = native_task(instant, task_id)["output"]["video_url"]
    set_faults(instant, rate_limit=2)
    query = f"{instant.url}/aliyun/v1/tasks/{task_id}"
    assert [requests.get(query, headers=AUTH).status_code for _ in range(2)] == [200, 200]

    r = requests.get(query, headers=AUTH)
    assert r.status_code == 429
    assert r.json()["error"] == {
        "message": "Requests rate limit exceeded, please try again later.",
        "type": "rate_limit_error",
        "param": None,
        "code": "Throttling.RateQuota",
    }
    assert r.json()["request_id"] == r.headers["X-Request-Id"]  # the native shape
    assert re.fullmatch(r"\d+\.\d", r.headers["Retry-After"])
    wait = float(r.headers["Retry-After"])
    assert 0.1 <= wait <= 1.0

    unified = requests.get(f"{instant.url}/v1/videos/{task_id}", headers=AUTH)
    assert unified.status_code == 429 and unified.json()["error"]["code"] == "Throttling.RateQuota"
    assert "request_id" not in unified.json() and float(unified.headers["Retry-After"]) <= wait
    # Control routes and signed URLs are not API requests: they neither count nor get refused.
    assert requests.get(instant.url + "/_sandbox/health").ok
    assert requests.get(video_url).status_code == 200
    # A refused request takes no other fault's turn.
    instant.faults.throttle = 1
    assert requests.get(query, headers=AUTH).json()["error"]["code"] == "Throttling.RateQuota"
    assert instant.faults.throttle == 1
    instant.faults.throttle = 0

    time.sleep(wait)
    assert requests.get(query, headers=AUTH).status_code == 200  # the very same request, now let through
    assert stats(instant)["throttled"] == 3


def test_rate_limited_create_makes_no_task(sandbox: Sandbox) -> None:
    set_faults(sandbox, rate_limit=1)
    first = create_unified(sandbox)
    r = requests.post(sandbox.url + NATIVE_CREATE, json=native_body(), headers=AUTH)
    assert r.status_code == 429 and r.json()["error"]["code"] == "Throttling.RateQuota"
    assert list(sandbox_tasks(sandbox)) == [first]
    assert len(sandbox.requests(NATIVE_CREATE)) == 1  # still recorded, like every API request
    expected = {"max_in_flight": 1, "max_active_tasks": 1, "throttled": 1, "creates": 1, "requests": 2}
    assert stats(sandbox) == {**ZERO_STATS, **expected}


def test_fractional_rate_limit_stretches_the_window(sandbox: Sandbox) -> None:
    set_faults(sandbox, rate_limit=0.5)  # one request per 2 s
    assert requests.get(sandbox.url + "/aliyun/v1/tasks/x", headers=AUTH).status_code == 200
    r = requests.get(sandbox.url + "/aliyun/v1/tasks/x", headers=AUTH)
    assert r.status_code == 429 and 1.5 < float(r.headers["Retry-After"]) <= 2.0


def test_task_limit_refuses_creates_while_full() -> None:
    with Sandbox(queue_seconds=0.1, run_seconds=0.2) as sb:
        set_faults(sb, task_limit=2)
        ids = [create_native(sb), create_unified(sb)]
        r = requests.post(sb.url + NATIVE_CREATE, json=native_body(), headers=AUTH)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        error = r.json()["error"]
        assert error["code"] == "Throttling.AllocationQuota" and error["type"] == "rate_limit_error"
        assert error["message"].startswith("Allocated quota exceeded") and "task_limit is 2" in error["message"]
        assert r.json()["request_id"] == r.headers["X-Request-Id"]
        unified = requests.post(sb.url + "/v1/videos", json=unified_body(), headers=AUTH)
        assert unified.status_code == 429 and unified.json()["error"]["code"] == "Throttling.AllocationQuota"
        assert sorted(sandbox_tasks(sb)) == sorted(ids)  # refused creates made no task

        statuses_until(lambda: sandbox_tasks(sb)[ids[0]]["status"], {"SUCCEEDED"})  # one ends, nobody polls
        third = create_native(sb)
        assert set(sandbox_tasks(sb)) == {*ids, third}
        s = stats(sb)
        assert (s["creates"], s["throttled"], s["max_active_tasks"]) == (3, 2, 2)


def test_task_limit_holds_under_concurrent_creates() -> None:
    with Sandbox(queue_seconds=5, run_seconds=5) as sb:
        sb.faults.task_limit = 3
        codes: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            r = requests.post(sb.url + NATIVE_CREATE, json=native_body(), headers=AUTH)
            with lock:
                codes.append(r.status_code)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert sorted(codes) == [200] * 3 + [429] * 5
        assert len(sb.tasks()) == 3 and sb.stats()["max_active_tasks"] == 3


def test_stats_measure_overlapping_requests_and_tasks() -> None:
    with Sandbox(queue_seconds=0.1, run_seconds=0.2) as sb:
        assert stats(sb) == ZERO_STATS
        ids: list[str] = []
        lock = threading.Lock()

        def create() -> None:
            task_id = create_native(sb)
            with lock:
                ids.append(task_id)

        threads = [threading.Thread(target=create) for _ in range(3)]  # three tasks at once, 0.3 s each
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        for task_id in ids:
            statuses_until(lambda task_id=task_id: sandbox_tasks(sb)[task_id]["status"], {"SUCCEEDED"})
        assert stats(sb)["max_active_tasks"] == 3  # counted from the timings: nobody polled them
        create_native(sb)  # alone: the peak stays
        assert stats(sb)["max_active_tasks"] == 3

        sb.faults.slow_download_bps = 100_000  # each download below takes about 0.5 s
        url = f"{sb.url}/aliyun/v1/videos/{ids[0]}/content"
        downloads = [
            threading.Thread(target=lambda: requests.get(url, headers={**AUTH, "Range": "bytes=0-49999"}))
            for _ in range(3)
        ]
        for t in downloads:
            t.start()
        live = 0
        deadline = time.monotonic() + 2
        while live < 2 and time.monotonic() < deadline:
            live = stats(sb)["in_flight"]
            time.sleep(0.01)
        for t in downloads:
            t.join(5)
        assert live >= 2
        # The pacing sleeps once more after the last write: the server may still hold a request a moment.
        deadline = time.monotonic() + 1
        while stats(sb)["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.01)
        s = served(sb, 150_000)
        assert s["in_flight"] == 0 and s["max_in_flight"] >= 2
        assert (s["creates"], s["requests"], s["throttled"]) == (4, 7, 0)
        # Three 50 kB bodies at 100 kB/s, served side by side: their times add up to about 1.5 s.
        assert s["video_bytes"] == 150_000 and 1.3 <= s["video_seconds"] <= 3.0
        assert s == sb.stats()


def served(sb: Sandbox, total: int) -> dict[str, float]:
    """The stats once ``total`` video bytes are counted: the server counts a body after its last write
    returns, which may be a moment after the client has read it all."""
    deadline = time.monotonic() + 2
    while (s := stats(sb))["video_bytes"] < total and time.monotonic() < deadline:
        time.sleep(0.01)
    return s


def test_stats_time_the_video_bodies_written_in_full(instant: Sandbox) -> None:
    task_id = create_native(instant)
    video_url = native_task(instant, task_id)["output"]["video_url"]
    content = f"{instant.url}/aliyun/v1/videos/{task_id}/content"
    instant.faults.video_size = 400_000
    instant.faults.slow_download_bps = 1_000_000
    assert len(requests.get(content, headers=AUTH).content) == 400_000
    s = served(instant, 400_000)
    assert s["video_bytes"] == 400_000 and 0.35 <= s["video_seconds"] <= 1.0  # 0.4 s at the paced rate
    instant.faults.slow_download_bps = None
    assert len(requests.get(video_url, headers={"Range": "bytes=100000-"}).content) == 300_000  # signed URL
    assert served(instant, 700_000)["video_bytes"] == 700_000
    set_faults(instant, cut_download_after=1000)  # a cut body is not a body written in full
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(content, headers=AUTH).content  # noqa: B018
    assert stats(instant)["video_bytes"] == 700_000


def test_reset_zeroes_the_stats(sandbox: Sandbox) -> None:
    set_faults(sandbox, throttle=1, rate_limit=10, task_limit=5)
    assert requests.post(sandbox.url + NATIVE_CREATE, json=native_body(), headers=AUTH).status_code == 429
    create_native(sandbox)
    assert stats(sandbox) == {
        "in_flight": 0,
        "max_in_flight": 1,
        "max_active_tasks": 1,
        "throttled": 1,
        "creates": 1,
        "requests": 2,
        "video_bytes": 0,
        "video_seconds": 0.0,
    }
    assert requests.post(sandbox.url + "/_sandbox/reset").json() == {"ok": True}
    assert stats(sandbox) == ZERO_STATS
    assert sandbox.faults == Faults()  # rate_limit and task_limit back to null


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("rate_limit", 0),
        ("rate_limit", -1),
        ("rate_limit", "5"),
        ("rate_limit", True),
        ("task_limit", 0),
        ("task_limit", 1.5),
        ("task_limit", "2"),
        ("task_limit", False),
    ],
)
def test_limit_faults_refuse_bad_values(sandbox: Sandbox, name: str, value: Any) -> None:
    r = requests.post(sandbox.url + "/_sandbox/faults", json={name: value})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == name and r.json()["error"]["message"].startswith(f"{name} must be")
    assert getattr(sandbox.faults, name) is None


def test_limit_faults_over_http(sandbox: Sandbox) -> None:
    for raw in (b'{"rate_limit": Infinity}', b'{"rate_limit": NaN}'):  # Python's json reads these
        r = requests.post(sandbox.url + "/_sandbox/faults", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "rate_limit"
    r = requests.post(sandbox.url + "/_sandbox/faults", json={"rate_limit": 2.5, "task_limit": 4})
    assert r.status_code == 200 and (r.json()["rate_limit"], r.json()["task_limit"]) == (2.5, 4)
    r = requests.post(sandbox.url + "/_sandbox/faults", json={"rate_limit": None, "task_limit": None})
    assert r.status_code == 200 and (sandbox.faults.rate_limit, sandbox.faults.task_limit) == (None, None)


def test_cli_sandbox_checks_limit_faults() -> None:
    result = wv("sandbox", "--port", "0", "--fault", "rate_limit=0")
    assert result.exit_code == 2 and "rate_limit must be a finite number > 0" in result.stderr
    result = wv("sandbox", "--port", "0", "--fault", "task_limit=0")
    assert result.exit_code == 2 and "task_limit must be an integer >= 1" in result.stderr


# ---- control endpoints ------------------------------------------------------------------------------


def test_control_endpoints(sandbox: Sandbox) -> None:
    base = sandbox.url + "/_sandbox"
    health = requests.get(base + "/health")
    assert health.json() == {"ok": True} and health.headers["X-Request-Id"]

    r = requests.post(base + "/faults", json={"throttle": 1, "retry_after": 0.5, "fail_code": "Boom"})
    assert r.status_code == 200 and r.json()["throttle"] == 1
    assert sandbox.faults.throttle == 1 and sandbox.faults.fail_code == "Boom"
    assert requests.get(base + "/faults").json()["retry_after"] == 0.5
    assert requests.post(base + "/faults", json={"nope": 1}).json()["error"]["param"] == "nope"
    assert requests.post(base + "/faults", json={"throttle": "2"}).status_code == 400
    assert requests.post(base + "/faults", json={"server_error_status": 404}).status_code == 400
    assert requests.post(base + "/faults", json=[1]).status_code == 400
    assert sandbox.faults.throttle == 1  # bad merges change nothing

    assert requests.post(sandbox.url + NATIVE_CREATE, json=native_body(), headers=AUTH).status_code == 429
    task_id = create_native(sandbox)
    log = requests.get(base + "/requests").json()
    assert [e["path"] for e in log] == [NATIVE_CREATE, NATIVE_CREATE]  # control calls are not recorded
    assert log[1]["json"]["model"] == "wan2.7-i2v" and log[1]["body_size"] > 0 and log[1]["method"] == "POST"
    assert requests.get(base + "/requests", params={"prefix": "/v1/"}).json() == []

    assert requests.post(base + "/reset").json() == {"ok": True}
    assert sandbox.requests() == [] and sandbox.faults == Faults()
    assert native_task(sandbox, task_id)["output"]["task_status"] == "UNKNOWN"
    assert requests.get(base + "/nothing").status_code == 404


# ---- server mechanics -------------------------------------------------------------------------------


def test_concurrent_creates(sandbox: Sandbox) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        task_id = create_native(sandbox)
        with lock:
            ids.append(task_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(set(ids)) == 8
    assert len(sandbox.requests(NATIVE_CREATE)) == 8


def test_keep_alive_survives_rejected_bodies(sandbox: Sandbox) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
    try:
        # No key -> 401 before the body is looked at; the server must still drain it.
        conn.request("POST", NATIVE_CREATE, body=b'{"model": "wan2.7-i2v"}')
        first = conn.getresponse()
        assert first.status == 401 and not first.will_close
        first.read()
        conn.request("GET", "/aliyun/v1/tasks/x", headers=AUTH)  # same socket
        second = conn.getresponse()
        assert second.status == 200 and b"UNKNOWN" in second.read()
    finally:
        conn.close()


def test_sandbox_imports_only_the_standard_library() -> None:
    # Of wanvid itself only the layers below it: errors, redact, config and rules (never the client's).
    code = """
import sys
before = set(sys.modules)
import wanvid.sandbox
new = set(sys.modules) - before
extra = {m.split(".")[0] for m in new} - set(sys.stdlib_module_names) - {"wanvid"}
assert not extra, sorted(extra)
layers = {".".join(m.split(".")[:2]) for m in new if m.startswith("wanvid.")}
allowed = {"wanvid.errors", "wanvid.redact", "wanvid.config", "wanvid.rules", "wanvid.sandbox"}
assert layers <= allowed, sorted(layers - allowed)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serve_forever_returns_on_stop() -> None:
    sb = Sandbox()
    thread = threading.Thread(target=sb.serve_forever)
    thread.start()
    assert requests.get(sb.url + "/_sandbox/health").ok
    sb.stop()
    thread.join(2)
    assert not thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(sb.url + "/_sandbox/health", timeout=1)


def test_client_hanging_up_mid_download_is_quiet(instant: Sandbox, capfd: pytest.CaptureFixture[str]) -> None:
    instant.faults.slow_download_bps = 100_000
    url = f"{instant.url}/aliyun/v1/videos/{create_native(instant)}/content"
    with requests.get(url, headers=AUTH, stream=True) as r:
        assert r.raw.read(10)  # then close the socket while the server is still writing
    time.sleep(0.3)  # let the server hit the broken pipe
    assert requests.get(instant.url + "/_sandbox/health").ok
    assert "Traceback" not in capfd.readouterr().err


# ---- flavors, the new faults, body encodings, DashScope aliases -----------------------------------------
# Expectations from ope.ai's pages and new-api's code (GATEWAY-VARIANTS.md), not from wanvid's rules.

DASHSCOPE_CREATE = "/api/v1/services/aigc/video-generation/video-synthesis"
ASYNC = {**AUTH, "X-DashScope-Async": "enable"}


def flavored(flavor: str, queue: float = 0.3, run: float = 0.3, **faults: Any) -> Sandbox:
    return Sandbox(queue_seconds=queue, run_seconds=run, flavor=flavor, faults=Faults(**faults))


def test_flavor_is_checked_switched_over_http_and_restored_by_reset(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="flavor"):
        Sandbox(flavor="openai")
    base = sandbox.url + "/_sandbox/flavor"
    assert sandbox.flavor == "docs" and requests.get(base).json() == {"flavor": "docs"}  # the default
    assert requests.post(base, json={"flavor": "newapi"}).json() == {"flavor": "newapi"}
    assert unified_task(sandbox, "nope").json() == {"code": "task_not_exist", "message": "task_not_exist", "data": None}
    for bad in ({"flavor": "x"}, {"flavor": "docs", "more": 1}, ["docs"]):
        assert requests.post(base, json=bad).status_code == 400
    assert sandbox.flavor == "newapi"
    requests.post(sandbox.url + "/_sandbox/reset")
    assert sandbox.flavor == "docs"


def test_docs_flavor_speaks_the_task_table_words() -> None:
    with flavored("docs") as sb:
        task_id = create_unified(sb)
        seen = statuses_until(lambda: str(unified_task(sb, task_id).json()["status"]), {"SUCCESS"})
        assert seen == ["NOT_START", "QUEUED", "IN_PROGRESS", "SUCCESS"]
    with flavored("docs", 0, 0, fail_code="X", fail_message="no") as sb:
        answer = unified_task(sb, create_unified(sb))
        assert answer.status_code == 200 and answer.json()["status"] == "FAILURE"
        assert answer.json()["error"] == {"code": "X", "message": "no"}


@pytest.mark.parametrize("missing", ["prompt", "size", "seconds"])
def test_docs_flavor_requires_prompt_size_and_seconds(missing: str) -> None:
    with flavored("docs") as sb:
        body = unified_body()
        del body[missing]
        r = requests.post(sb.url + "/v1/videos", json=body, headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["param"] == missing and sb.tasks() == []


def test_docs_flavor_unknown_id_is_the_pages_404() -> None:
    expected = {"error": {"message": "video not found", "type": "NotFound", "param": "", "code": "ResourceNotFound"}}
    with flavored("docs") as sb:
        for path in ("/v1/videos/nope", "/v1/videos/nope/content"):
            r = requests.get(sb.url + path, headers=AUTH)
            assert r.status_code == 404 and r.json() == expected


def test_newapi_flavor_answers_like_new_api() -> None:
    with flavored("newapi") as sb:
        created = requests.post(sb.url + "/v1/videos", json=unified_body(), headers=AUTH).json()
        assert set(created) == {"id", "task_id", "object", "model", "status", "progress", "created_at"}
        assert re.fullmatch(r"task_[A-Za-z0-9]{32}", created["id"]) and created["task_id"] == created["id"]
        assert (created["status"], created["progress"]) == ("queued", 0)
        answers = [unified_task(sb, created["id"]).json()]
        deadline = time.monotonic() + 5
        while answers[-1]["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.02)  # a poll's pace
            answers.append(unified_task(sb, created["id"]).json())
        assert answers[0]["status"] == "queued" and answers[-1]["status"] == "completed"
        assert {a["status"] for a in answers} == {"queued", "in_progress", "completed"}
        steps = sorted({a["progress"] for a in answers})
        assert steps == [0, 20, 30, 100] and [a["progress"] for a in answers] == sorted(a["progress"] for a in answers)
        running = [a for a in answers if a["status"] == "in_progress"]
        assert all(a["metadata"] == {"url": ""} and a["completed_at"] >= a["created_at"] for a in running)
        assert answers[-1]["metadata"]["url"].startswith("http://localhost:")
        assert all("size" not in a and "seconds" not in a and "prompt" not in a for a in answers)


def test_newapi_failed_task_is_200_with_the_error_inside() -> None:
    with flavored("newapi", 0, 0, fail_code="DataInspectionFailed", fail_message="审核未通过") as sb:
        r = unified_task(sb, create_unified(sb))
        assert r.status_code == 200
        answer = r.json()
        assert (answer["status"], answer["progress"]) == ("failed", 100)
        assert answer["error"] == {"code": "DataInspectionFailed", "message": "审核未通过"}


def test_newapi_error_shapes() -> None:
    with flavored("newapi") as sb:
        flat_400 = requests.post(sb.url + "/v1/videos", json=unified_body(prompt="  "), headers=AUTH)
        assert flat_400.status_code == 400
        assert flat_400.json() == {"code": "invalid_request", "message": "prompt is required", "data": None}
        bad_size = requests.post(sb.url + "/v1/videos", json=unified_body(size="big"), headers=AUTH).json()
        assert set(bad_size) == {"code", "message", "data"} and bad_size["code"] == "InvalidParameter"
        no_size = unified_body()
        del no_size["size"], no_size["seconds"]
        assert requests.post(sb.url + "/v1/videos", json=no_size, headers=AUTH).status_code == 200
        r = requests.get(sb.url + "/v1/videos/nope", headers=AUTH)
        assert r.status_code == 400 and r.json() == {
            "code": "task_not_exist",
            "message": "task_not_exist",
            "data": None,
        }
        r = requests.get(sb.url + "/v1/videos/nope/content", headers=AUTH)
        assert r.status_code == 404 and r.json() == {
            "error": {"message": "Task not found", "type": "invalid_request_error"}
        }
        early = requests.get(f"{sb.url}/v1/videos/{create_unified(sb)}/content", headers=AUTH)
        assert early.status_code == 400 and early.json() == {
            "error": {
                "message": "Task is not completed yet, current status: NOT_START",
                "type": "invalid_request_error",
            }
        }
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic x"}):
            denied = requests.get(sb.url + "/v1/videos/nope", headers=headers)
            error = denied.json()["error"]
            assert denied.status_code == 401 and (error["type"], error["code"]) == ("new_api_error", "")
            assert error["message"] == f"Invalid token (request id: {denied.headers['X-Request-Id']})"


def test_newapi_limits_answer_like_new_api() -> None:
    with flavored("newapi", rate_limit=1) as sb:
        assert unified_task(sb, "nope").status_code == 400
        limited = unified_task(sb, "nope")  # over the gateway's own limiter
        assert limited.status_code == 429 and limited.content == b"" and "Retry-After" not in limited.headers
        sb.faults.rate_limit, sb.faults.throttle = None, 1  # an upstream 429, relayed and rewritten
        relayed = unified_task(sb, "nope")
        assert relayed.status_code == 429 and "Retry-After" not in relayed.headers
        assert relayed.json() == {
            "code": "fail_to_fetch_task",
            "message": "当前分组上游负载已饱和，请稍后再试",
            "data": None,
        }


def test_newapi_content_route_is_a_proxy_without_range() -> None:
    with flavored("newapi", 0, 0) as sb:
        task_id = create_unified(sb)
        r = requests.get(f"{sb.url}/v1/videos/{task_id}/content", headers={**AUTH, "Range": "bytes=0-9"})
        assert r.status_code == 200 and r.content == sample_mp4()
        assert r.headers["Cache-Control"] == "public, max-age=86400"
        signed = unified_task(sb, task_id).json()["metadata"]["url"]
        assert requests.get(signed, headers={"Range": "bytes=0-9"}).status_code == 206  # the store honours it
        native = requests.get(f"{sb.url}/aliyun/v1/videos/{task_id}/content", headers={**AUTH, "Range": "bytes=0-9"})
        assert native.status_code == 206 and "Cache-Control" not in native.headers
    with flavored("newapi", 60, 0) as sb:  # controller/video_proxy.go:24-31, 52-55: the proxy's own envelope
        r = requests.get(f"{sb.url}/v1/videos/{create_unified(sb)}/content", headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        assert r.json()["error"]["message"].startswith("Task is not completed yet, current status: ")


@pytest.mark.parametrize(("flavor", "word"), [("house", "UNKNOWN"), ("docs", "UNKNOWN"), ("newapi", "unknown")])
def test_unknown_queries_fault_is_transient(flavor: str, word: str) -> None:
    with flavored(flavor, 0, 0, unknown_queries=2) as sb:
        unified_id, native_id = create_unified(sb), create_native(sb)
        assert [unified_task(sb, unified_id).json()["status"] for _ in range(3)][:2] == [word, word]
        assert unified_task(sb, unified_id).status_code == 200
        natives = [native_task(sb, native_id)["output"] for _ in range(3)]
        assert [o["task_status"] for o in natives] == ["UNKNOWN", "UNKNOWN", "SUCCEEDED"]
        assert natives[0]["task_id"] == native_id and "code" not in natives[0]  # alive, not "no such task"
        sb.faults.unknown_queries = 0
        assert native_task(sb, create_native(sb))["output"]["task_status"] == "SUCCEEDED"  # captured at creation


@pytest.mark.parametrize(
    ("flavor", "ended", "running"), [("docs", "SUCCESS", "IN_PROGRESS"), ("newapi", "completed", "in_progress")]
)
def test_regress_once_fault_goes_back_to_running_once(flavor: str, ended: str, running: str) -> None:
    with flavored(flavor, 0, 0, regress_once=True) as sb:
        task_id, native_id = create_unified(sb), create_native(sb)
        assert [unified_task(sb, task_id).json()["status"] for _ in range(4)] == [ended, running, ended, ended]
        natives = [native_task(sb, native_id)["output"]["task_status"] for _ in range(4)]
        assert natives == ["SUCCEEDED", "RUNNING", "SUCCEEDED", "SUCCEEDED"]
        assert requests.get(f"{sb.url}/v1/videos/{task_id}/content", headers=AUTH).content == sample_mp4()


def test_fetch_task_errors_fault_relays_the_provider_json_as_a_string(sandbox: Sandbox) -> None:
    task_id = create_native(sandbox)
    sandbox.faults.fetch_task_errors = 2  # the next query and create
    for r in (
        unified_task(sandbox, task_id),
        requests.post(sandbox.url + "/v1/videos", json=unified_body(), headers=AUTH),
    ):
        assert r.status_code == 500 and set(r.json()) == {"code", "message", "data"}
        assert r.json()["code"] == "fail_to_fetch_task"
        inner = json.loads(r.json()["message"])
        assert inner["code"] == "InternalError" and inner["message"] and inner["request_id"]
    assert unified_task(sandbox, task_id).status_code == 200 and sandbox.faults.fetch_task_errors == 0


def test_fetch_task_errors_fault_spares_content_routes(instant: Sandbox) -> None:
    task_id = create_native(instant)
    instant.faults.fetch_task_errors = 1
    assert requests.get(f"{instant.url}/aliyun/v1/videos/{task_id}/content", headers=AUTH).content == sample_mp4()
    assert instant.faults.fetch_task_errors == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("unknown_queries", -1), ("unknown_queries", 1.5), ("regress_once", "yes"), ("fetch_task_errors", True)],
)
def test_new_faults_refuse_bad_values(sandbox: Sandbox, name: str, value: Any) -> None:
    r = requests.post(sandbox.url + "/_sandbox/faults", json={name: value})
    assert r.status_code == 400 and r.json()["error"]["param"] == name


def test_cli_sandbox_checks_flavor_and_new_faults() -> None:
    result = wv("sandbox", "--port", "0", "--flavor", "openai")
    assert result.exit_code == 2 and "--flavor must be one of house, docs, newapi" in result.stderr
    result = wv("sandbox", "--port", "0", "--fault", "unknown_queries=-1")
    assert result.exit_code == 2 and "unknown_queries must be an integer >= 0" in result.stderr


# -- body encodings of /v1/videos (new-api common/gin.go reads JSON, urlencoded and multipart)


def multipart(parts: list[tuple[str, bytes, str | None]], boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body by hand: (name, data, filename or None) parts."""
    out = b""
    for name, data, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += b"Content-Type: application/octet-stream\r\n" if filename else b""
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_multipart_create_takes_the_uploaded_file_as_first_frame(sandbox: Sandbox) -> None:
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--b0und\r\n"  # CRLFs and a near-boundary inside
    body, headers = multipart(
        [
            ("model", b"wan2.7-i2v", None),
            ("prompt", "一只猫".encode(), None),
            ("size", b"1280x720", None),
            ("seconds", b"5", None),
            ("seed", b"42", None),
            ("generate_audio", b"true", None),
            ("input_reference", image, "cat.bin"),
        ]
    )
    r = requests.post(sandbox.url + "/v1/videos", data=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == "一只猫" and r.json()["seconds"] == "5"
    sent: dict[str, Any] = sandbox.requests("/v1/videos")[0].json or {}
    assert sent["seed"] == 42 and sent["generate_audio"] is True
    url = sent["input_reference"]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.partition(",")[2]) == image


def test_form_bodies_with_a_text_input_reference(sandbox: Sandbox) -> None:
    sandbox.flavor = "house"  # the house flavor's own shapes; docs and newapi have tests of their own
    reference = json.dumps(unified_body()["input_reference"]).encode()
    body, headers = multipart(
        [("model", b"wan2.7-i2v", None), ("prompt", b"a cat", None), ("input_reference", reference, None)]
    )
    assert requests.post(sandbox.url + "/v1/videos", data=body, headers=headers).status_code == 200
    form = {
        "model": "wan2.7-i2v",
        "prompt": "a cat",
        "size": "1280*720",
        "seconds": "5",
        "input_reference": "https://example.com/cat.png",
    }
    r = requests.post(sandbox.url + "/v1/videos", data=form, headers=AUTH)  # urlencoded; a bare URL
    assert r.status_code == 200 and r.json()["size"] == "1280*720"
    sent: dict[str, Any] = sandbox.requests("/v1/videos")[1].json or {}
    assert sent["input_reference"]["content"][0]["image_url"]["url"] == "https://example.com/cat.png"
    assert (
        requests.post(sandbox.url + "/v1/videos", data={**form, "input_reference": "ftp://x"}, headers=AUTH).status_code
        == 400
    )


def test_unreadable_form_bodies_are_400(sandbox: Sandbox) -> None:
    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=zzz"}
    r = requests.post(sandbox.url + "/v1/videos", data=b"no parts at all", headers=headers)
    assert r.status_code == 400
    r = requests.post(
        sandbox.url + "/v1/videos",
        data=b"\xff\xfe=\xff",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and sandbox.tasks() == []


@pytest.mark.parametrize(("size", "resolution_size"), [("1280*720", "1280*720"), ("1080p", "1080p"), ("720P", "720P")])
def test_unified_size_forms(sandbox: Sandbox, size: str, resolution_size: str) -> None:
    r = requests.post(sandbox.url + "/v1/videos", json=unified_body(size=size), headers=AUTH)
    assert r.status_code == 200 and r.json()["size"] == resolution_size


# -- DashScope's own routes, for its SDK


@pytest.mark.parametrize("flavor", ["house", "newapi"])
def test_dashscope_aliases_serve_the_native_protocol(flavor: str) -> None:
    with flavored(flavor, 0, 0) as sb:
        r = requests.post(sb.url + DASHSCOPE_CREATE, json=native_body("wan2.6-i2v"), headers=ASYNC)
        assert r.status_code == 200 and r.json()["output"]["task_status"] == "PENDING" and r.json()["request_id"]
        task_id = r.json()["output"]["task_id"]
        out = requests.get(f"{sb.url}/api/v1/tasks/{task_id}", headers=AUTH).json()["output"]
        assert out["task_status"] == "SUCCEEDED" and requests.get(out["video_url"]).content == sample_mp4()
        assert native_task(sb, task_id)["output"]["task_status"] == "SUCCEEDED"  # one task, both routes
        gone = requests.get(f"{sb.url}/api/v1/tasks/nope", headers=AUTH)
        assert gone.status_code == 200 and gone.json()["output"]["task_status"] == "UNKNOWN"


def test_dashscope_alias_errors_are_flat(sandbox: Sandbox) -> None:
    sync = requests.post(sandbox.url + DASHSCOPE_CREATE, json=native_body(), headers=AUTH)
    assert sync.status_code == 403 and sync.json()["code"] == "AccessDenied"
    bad = requests.post(sandbox.url + DASHSCOPE_CREATE, json=native_body(resolution="4K"), headers=ASYNC)
    assert bad.status_code == 400 and set(bad.json()) == {"request_id", "code", "message"}
    assert bad.json()["code"] == "InvalidParameter" and "resolution" in bad.json()["message"]
    denied = requests.get(sandbox.url + "/api/v1/tasks/x")
    assert denied.status_code == 401 and set(denied.json()) == {"request_id", "code", "message"}
    assert sandbox.tasks() == []
