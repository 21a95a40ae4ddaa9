"""Clients nobody here wrote: the official OpenAI and DashScope SDKs against a real sandbox, per flavor.

Every expectation comes from the gateway's documented behaviour (../shared/GATEWAY-VARIANTS.md, API.md,
new-api's Go code at 4ca47ee23) and from the SDKs' own types, never from wanvid's rule modules: nothing
here imports ``wanvid.rules.models`` or ``wanvid.rules.request``. Tasks take 0.2 s queued + 0.6 s running, or no
time at all (``instant``); the SDKs' own poll intervals are kept short or never reached.
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import openai
import pytest
import requests
from dashscope import VideoSynthesis
from openai.types import Video
from PIL import Image
from pydantic import ValidationError

from wanvid.sandbox import Faults, Sandbox, sample_mp4

# The OpenAI SDK marks its video methods deprecated (the Sora API's shutdown date); the calls still work.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KEY = "test-key-0123456789-never-print"
IMAGE_URL = "https://example.com/cat.png"


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 180), "teal").save(buf, "PNG")
    return buf.getvalue()


def sent_body(sb: Sandbox, prefix: str) -> dict[str, Any]:
    """The decoded body of the first request the sandbox recorded under ``prefix``."""
    body = sb.requests(prefix)[0].json
    assert isinstance(body, dict)
    return body


def openai_client(sb: Sandbox) -> openai.OpenAI:
    # max_retries=0: every answer the SDK sees is the sandbox's own, not a retry's.
    return openai.OpenAI(base_url=sb.url + "/v1", api_key=KEY, max_retries=0)


def sdk_create(client: openai.OpenAI, **fields: Any) -> Any:
    """videos.create with the SDK's own multipart body: the PNG is a file part (input_reference)."""
    body: dict[str, Any] = {
        "model": "wan2.7-i2v",
        "prompt": "a cat walks",
        "size": "1280x720",
        "seconds": "4",
        "input_reference": ("cat.png", png_bytes(), "image/png"),
    }
    body.update(fields)
    return client.videos.with_raw_response.create(**body)


@pytest.fixture(params=["docs", "newapi"])
def flavored(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox(queue_seconds=0.2, run_seconds=0.6, flavor=request.param) as sb:
        yield sb


@pytest.fixture(params=["docs", "newapi"])
def instant(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Tasks finished the moment they are created."""
    with Sandbox(queue_seconds=0, run_seconds=0, flavor=request.param) as sb:
        yield sb


# ---- OpenAI SDK -------------------------------------------------------------------------------------


def test_openai_create_sends_multipart_and_the_file_is_the_first_frame(flavored: Sandbox) -> None:
    raw = sdk_create(openai_client(flavored))
    answer = raw.http_response.json()
    sent = flavored.requests("/v1/videos")[0]
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    frame = sent_body(flavored, "/v1/videos")["input_reference"]["content"][0]
    assert frame["role"] == "first_frame" and frame["type"] == "image_url"
    header, _, data = frame["image_url"]["url"].partition(",")
    assert header == "data:image/png;base64" and base64.b64decode(data) == png_bytes()  # byte for byte
    video = raw.parse()
    assert video.id == answer["id"] and video.object == "video"
    if flavored.flavor == "newapi":
        # model/task.go:139-141 ids; ali/adaptor.go:405-416: queued, progress 0, the task_id alias
        assert re.fullmatch(r"task_[A-Za-z0-9]{32}", video.id) and answer["task_id"] == video.id
        assert answer["status"] == "queued" and answer["progress"] == 0
    else:  # ope.ai's task-table words: NOT_START until the gateway's first poll
        assert answer["status"] == "NOT_START" and answer["size"] == "1280x720" and answer["seconds"] == "4"


def test_openai_create_and_poll(flavored: Sandbox) -> None:
    client = openai_client(flavored)
    with pytest.deprecated_call():
        video = client.videos.create_and_poll(
            model="wan2.7-i2v",
            prompt="a cat walks",
            size="1280x720",
            seconds="4",  # the SDK sends none unless given, and ope.ai's pages require it
            input_reference=("cat.png", png_bytes(), "image/png"),
            poll_interval_ms=50,
        )
    queries = len(flavored.requests("/v1/videos/"))
    if flavored.flavor == "newapi":
        assert video.status == "completed" and video.progress == 100 and queries >= 2
        assert str(video.model_extra and video.model_extra["metadata"]["url"]).startswith("http://localhost:")
    else:
        # The SDK's poll loop knows only queued/in_progress/completed/failed and returns at once on any
        # other word: on ope.ai's documented NOT_START it hands back an unfinished task after one query.
        assert video.status == "NOT_START" and queries == 1
        assert client.videos.retrieve(video.id).status in ("NOT_START", "QUEUED", "IN_PROGRESS")


def test_openai_retrieve_until_done_and_strict_video_validation(flavored: Sandbox) -> None:
    """Every answer of a task's life, checked against the SDK's strict ``Video`` model."""
    client = openai_client(flavored)
    raw = sdk_create(client)
    answers = [raw.http_response.json()]
    while answers[-1]["status"] not in ("completed", "SUCCESS"):
        time.sleep(0.02)  # a poll's pace, not a wait for readiness
        answers.append(client.videos.with_raw_response.retrieve(answers[0]["id"]).http_response.json())
    for answer in answers:
        with pytest.raises(ValidationError) as caught:
            Video.model_validate(answer)
        failing = {error["loc"][0] for error in caught.value.errors()}
        if flavored.flavor == "newapi":
            # new-api never sets size or seconds on these answers (dto/openai_video.go:25-26 omitempty,
            # ali/adaptor.go:405-416 and 489-520): the only fields the SDK's model misses.
            assert failing == {"size", "seconds"}, answer
            Video.model_validate({**answer, "size": "1280x720", "seconds": "4"})
        else:
            # The uppercase task-table words are outside the SDK's status Literal; progress is absent
            # until the task runs (API.md: "progress may or may not be present").
            assert failing == ({"status", "progress"} if "progress" not in answer else {"status"}), answer
    statuses = [a["status"] for a in answers]
    if flavored.flavor == "newapi":
        assert statuses[0] == "queued" and statuses[-1] == "completed"
        assert set(statuses) <= {"queued", "in_progress", "completed"}
        progress = [a["progress"] for a in answers]
        assert progress == sorted(progress) and set(progress) <= {0, 20, 30, 100}  # helpers.go:71-74 steps
        assert all(a["metadata"]["url"] == "" for a in answers[1:-1])  # empty until done
        assert all("completed_at" in a for a in answers[1:])  # the row's update time, set while running
    else:
        assert statuses[0] == "NOT_START" and statuses[-1] == "SUCCESS"
        assert set(statuses) <= {"NOT_START", "QUEUED", "IN_PROGRESS", "SUCCESS"}


def test_openai_failed_task_is_an_ended_video_with_its_error(instant: Sandbox) -> None:
    instant.faults.fail_code, instant.faults.fail_message = "DataInspectionFailed", "审核未通过"
    client = openai_client(instant)
    video_id = sdk_create(client).parse().id
    raw = client.videos.with_raw_response.retrieve(video_id)
    assert raw.http_response.status_code == 200  # a failed task is an answer, not an error
    video = raw.parse()
    assert video.error is not None and (video.error.code, video.error.message) == ("DataInspectionFailed", "审核未通过")
    if instant.flavor == "newapi":
        assert video.status == "failed" and video.progress == 100
        Video.model_validate({**raw.http_response.json(), "size": "1280x720", "seconds": "4"})
    else:
        assert video.status == "FAILURE"


def test_openai_download_content_writes_the_mp4(instant: Sandbox, tmp_path: Path) -> None:
    client = openai_client(instant)
    video_id = sdk_create(client).parse().id
    target = tmp_path / "out.mp4"
    client.videos.download_content(video_id).write_to_file(target)
    assert target.read_bytes() == sample_mp4()
    # new-api's proxy: no Range passed on, its own Cache-Control (controller/video_proxy.go:161-167)
    ranged = client.videos.with_raw_response.download_content(video_id, extra_headers={"Range": "bytes=0-99"})
    if instant.flavor == "newapi":
        assert ranged.http_response.status_code == 200 and ranged.content == sample_mp4()
        assert ranged.headers["Cache-Control"] == "public, max-age=86400"
    else:
        assert ranged.http_response.status_code == 206 and ranged.content == sample_mp4()[:100]


def test_openai_sdk_errors_per_flavor(instant: Sandbox) -> None:
    client = openai_client(instant)
    if instant.flavor == "docs":
        with pytest.raises(openai.NotFoundError) as caught:
            client.videos.retrieve("task_nope")
        assert caught.value.code == "ResourceNotFound" and caught.value.message.endswith("video not found")
        with pytest.raises(openai.BadRequestError) as refused:
            sdk_create(client, seconds=openai.omit)  # ope.ai marks seconds required
        assert refused.value.param == "seconds"
        return
    # new-api's flat task error: the SDK takes the whole body for its error object.
    with pytest.raises(openai.BadRequestError) as flat:
        client.videos.retrieve("task_nope")
    assert flat.value.code == "task_not_exist" and flat.value.body == {
        "code": "task_not_exist",
        "message": "task_not_exist",
        "data": None,
    }
    with pytest.raises(openai.NotFoundError) as missing:
        client.videos.download_content("task_nope")
    assert missing.value.body == {"message": "Task not found", "type": "invalid_request_error"}
    with Sandbox(api_key=KEY, flavor="newapi") as locked:
        bad_key = openai.OpenAI(base_url=locked.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as denied:
            bad_key.videos.retrieve("task_nope")
    assert denied.value.type == "new_api_error" and denied.value.code == ""
    assert "Invalid token (request id: " in denied.value.message
    instant.faults.rate_limit = 1
    with pytest.raises(openai.BadRequestError):
        client.videos.retrieve("task_nope")  # takes the one slot of the second
    with pytest.raises(openai.RateLimitError) as limited:
        client.videos.retrieve("task_nope")
    assert not limited.value.body and "retry-after" not in limited.value.response.headers  # empty 429


# ---- DashScope SDK ----------------------------------------------------------------------------------


def point(sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's module-level base URL, at this test's sandbox (monkeypatch restores it)."""
    monkeypatch.setattr(dashscope, "base_http_api_url", sb.url + "/api/v1")


def test_dashscope_async_call_fetch_wait_for_wan27_media(flavored: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    point(flavored, monkeypatch)
    media = [{"type": "first_frame", "url": IMAGE_URL}]
    created = VideoSynthesis.async_call(api_key=KEY, model="wan2.7-i2v", prompt="a cat", media=media, duration=5)
    assert created.status_code == 200 and created.output.task_status == "PENDING"
    sent = flavored.requests("/api/v1/services/aigc/video-generation/video-synthesis")[0]
    assert sent.headers["x-dashscope-async"] == "enable" and sent_body(flavored, "/api/")["input"]["media"] == media
    fetched = VideoSynthesis.fetch(created, api_key=KEY)
    assert fetched.status_code == 200 and fetched.output.task_id == created.output.task_id
    assert fetched.output.task_status in ("PENDING", "RUNNING")
    done = VideoSynthesis.wait(created, api_key=KEY)  # its loop sleeps 1 s between queries: one pass here
    assert done.output.task_status == "SUCCEEDED" and done.output.video_url.startswith("http://localhost:")
    assert requests.get(done.output.video_url).content == sample_mp4()  # the signed URL, no key


def test_dashscope_call_for_wan26_img_url(instant: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    point(instant, monkeypatch)
    answer = VideoSynthesis.call(api_key=KEY, model="wan2.6-i2v", prompt="a cat", img_url=IMAGE_URL, duration=10)
    assert answer.status_code == 200 and answer.output.task_status == "SUCCEEDED"
    assert sent_body(instant, "/api/v1/services/")["input"]["img_url"] == IMAGE_URL
    assert answer.usage is not None  # kept, its keys vary by model (API.md)


def test_dashscope_failed_task_code_and_message(instant: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    point(instant, monkeypatch)
    instant.faults.fail_code, instant.faults.fail_message = "DataInspectionFailed", "Input data may be unsafe."
    answer = VideoSynthesis.call(api_key=KEY, model="wan2.6-i2v", prompt="a cat", img_url=IMAGE_URL)
    # A failed task is an HTTP 200 query answer: the SDK leaves its top-level code empty and the reason is
    # output.code / output.message, as DashScope puts it.
    assert answer.status_code == 200 and not answer.code
    assert answer.output.task_status == "FAILED"
    assert (answer.output.code, answer.output.message) == ("DataInspectionFailed", "Input data may be unsafe.")


def test_dashscope_error_answers_are_flat(instant: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    point(instant, monkeypatch)
    bad = VideoSynthesis.async_call(api_key=KEY, model="wan2.6-i2v", prompt="a cat", img_url="ftp://x/cat.png")
    assert bad.status_code == 400 and bad.code == "InvalidParameter" and "img_url" in bad.message
    assert bad.request_id  # read from the flat body
    with Sandbox(api_key=KEY, queue_seconds=0, run_seconds=0, flavor=instant.flavor) as locked:
        point(locked, monkeypatch)
        denied = VideoSynthesis.async_call(api_key="wrong", model="wan2.6-i2v", prompt="a", img_url=IMAGE_URL)
        assert denied.status_code == 401 and denied.code == "InvalidApiKey"
    # Without X-DashScope-Async video synthesis is refused, as DashScope refuses synchronous calls.
    r = requests.post(
        instant.url + "/api/v1/services/aigc/video-generation/video-synthesis",
        json={"model": "wan2.6-i2v", "input": {"img_url": IMAGE_URL}},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 403 and set(r.json()) == {"request_id", "code", "message"}
    assert r.json()["code"] == "AccessDenied" and "synchronous" in r.json()["message"]
    assert instant.tasks() == []


def test_dashscope_wait_stops_on_a_transient_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's wait ends on UNKNOWN (final to DashScope), so its caller sees the gateway's transient word;
    asking again finds the task alive and done."""
    with Sandbox(queue_seconds=0, run_seconds=0, faults=Faults(unknown_queries=1)) as sb:
        point(sb, monkeypatch)
        created = VideoSynthesis.async_call(api_key=KEY, model="wan2.6-i2v", prompt="a cat", img_url=IMAGE_URL)
        assert VideoSynthesis.wait(created, api_key=KEY).output.task_status == "UNKNOWN"
        assert VideoSynthesis.wait(created, api_key=KEY).output.task_status == "SUCCEEDED"
