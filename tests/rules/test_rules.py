"""Pure layers: model rules, request validation, body shapes per model x protocol, statuses, poll schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from wanvid.errors import FieldError, UsageError, WaitTimeout
from wanvid.gateway.protocols import Native, Unified
from wanvid.gateway.service import abbreviate, body_for
from wanvid.jobs.poller import wait_for
from wanvid.rules.models import MODELS, check_media_types, check_params
from wanvid.rules.request import VideoRequest, validate
from wanvid.rules.task import Status, Task, parse_status

W27, W26 = MODELS["wan2.7-i2v"], MODELS["wan2.6-i2v"]


@pytest.fixture
def png(tmp_path: Path) -> str:
    path = tmp_path / "frame.png"
    Image.new("RGB", (640, 480), "orange").save(path)
    return str(path)


@pytest.mark.parametrize(
    ("spec", "kwargs", "field"),
    [
        (W27, {"duration": 1}, "duration"),
        (W27, {"duration": 16}, "duration"),
        (W26, {"duration": 7}, "duration"),
        (W27, {"resolution": "480P"}, "resolution"),
        (W27, {"prompt": "x" * 5001}, "prompt"),
        (W26, {"prompt": "x" * 1501}, "prompt"),
        (W26, {"negative_prompt": "x" * 501}, "negative_prompt"),
        (W27, {"seed": -1}, "seed"),
        (W27, {"seed": 2**31}, "seed"),
        (W27, {"shot_type": "multi"}, "shot_type"),
        (W26, {"shot_type": "wide"}, "shot_type"),
    ],
)
def test_each_model_rule_names_its_field(spec, kwargs, field):
    with pytest.raises(FieldError) as exc:
        check_params(spec, **kwargs)
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("spec", "kwargs"),
    [
        (W27, {"duration": 2, "resolution": "720P", "prompt": "x" * 5000, "seed": 2**31 - 1}),
        (W27, {"duration": 15, "seed": 0}),
        (W26, {"duration": 10, "shot_type": "multi", "prompt": "x" * 1500}),
    ],
)
def test_values_at_the_limits_pass(spec, kwargs):
    check_params(spec, **kwargs)


def test_media_combinations():
    check_media_types(["first_frame", "last_frame", "driving_audio"])
    check_media_types(["first_clip", "last_frame"])
    for bad in (["first_frame", "first_clip"], ["last_frame"], ["driving_audio", "first_clip"], []):
        with pytest.raises(FieldError, match="not accepted"):
            check_media_types(bad)


def test_flags_a_protocol_cannot_carry_are_errors_not_dropped(png):
    with pytest.raises(FieldError) as exc:
        validate(VideoRequest("wan2.7-i2v", png, prompt="walk", last_frame=png), "unified")
    assert exc.value.field == "last_frame" and "--protocol native" in exc.value.message
    with pytest.raises(FieldError) as exc:
        validate(VideoRequest("wan2.7-i2v", png, size="1280x720"), "native")
    assert exc.value.field == "size"
    with pytest.raises(FieldError):
        validate(VideoRequest("wan2.6-i2v", png, last_frame=png), "native")
    with pytest.raises(FieldError, match="WIDTHxHEIGHT"):
        validate(VideoRequest("wan2.7-i2v", png, prompt="walk", size="big"), "unified")
    with pytest.raises(UsageError):
        validate(VideoRequest("wan2.7-i2v", png), "grpc")


def test_unknown_model_warns_and_skips_model_checks(png):
    v = validate(VideoRequest("wan9.9-i2v", png, duration=99), "native")
    assert v.spec is None and "not one wanvid knows" in v.warnings[0]
    assert body_for(v)["parameters"] == {"duration": 99}


def test_native_wan27_body_shape(png):
    v = validate(
        VideoRequest(
            "wan2.7-i2v",
            png,
            prompt="walk",
            negative_prompt="blur",
            resolution="720P",
            duration=5,
            seed=7,
            prompt_extend=False,
            watermark=True,
            last_frame="https://example.com/last.png",
        ),
        "native",
    )
    body = body_for(v)
    assert set(body) == {"model", "input", "parameters"}
    assert body["input"]["prompt"] == "walk" and body["input"]["negative_prompt"] == "blur"
    media = body["input"]["media"]
    assert [m["type"] for m in media] == ["first_frame", "last_frame"]
    assert media[0]["url"].startswith("data:image/png;base64,")
    assert media[1]["url"] == "https://example.com/last.png"
    assert body["parameters"] == {
        "resolution": "720P",
        "duration": 5,
        "prompt_extend": False,
        "watermark": True,
        "seed": 7,
    }


def test_native_wan26_body_shape(png):
    v = validate(VideoRequest("wan2.6-i2v", png, shot_type="multi", audio="https://example.com/a.mp3"), "native")
    body = body_for(v)
    assert set(body["input"]) == {"img_url", "audio_url"}
    assert body["input"]["img_url"].startswith("data:image/png;base64,")
    assert body["parameters"] == {"shot_type": "multi"}


def test_unified_body_shape(png):
    v = validate(
        VideoRequest("wan2.7-i2v", png, prompt="walk", duration=5, size="1280X720", seed=3, generate_audio=False),
        "unified",
    )
    body = body_for(v)
    assert body["seconds"] == "5" and body["size"] == "1280x720" and "content" not in body
    content = body["input_reference"]["content"]
    assert content[0]["type"] == "image_url" and content[0]["role"] == "first_frame"
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_abbreviate_shortens_only_data_uris():
    long = "data:image/png;base64," + "A" * 1000
    out = abbreviate({"a": [long, "https://x/y.png"], "b": 1})
    assert len(out["a"][0]) < 100 and "1022 chars" in out["a"][0]
    assert out["a"][1] == "https://x/y.png" and out["b"] == 1


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("PENDING", Status.PENDING),
        ("queued", Status.PENDING),
        ("NOT_START", Status.PENDING),
        ("Submitted", Status.PENDING),
        ("IN_PROGRESS", Status.RUNNING),
        ("running", Status.RUNNING),
        ("SUCCESS", Status.SUCCEEDED),
        ("completed", Status.SUCCEEDED),
        ("SUCCEEDED", Status.SUCCEEDED),
        ("FAILURE", Status.FAILED),
        ("failed", Status.FAILED),
        ("CANCELED", Status.CANCELED),
        ("UNKNOWN", Status.UNKNOWN),
        ("unknown", Status.UNKNOWN),
        ("expired", Status.NOT_FOUND),
        ("WEIRD_NEW", Status.UNRECOGNIZED),
        (None, Status.UNRECOGNIZED),
    ],
)
def test_every_status_vocabulary_maps_case_insensitively(word, status):
    assert parse_status(word) is status


def test_parse_answers_of_both_protocols():
    n = Native.parse_task(
        {
            "request_id": "r1",
            "output": {"task_id": "t1", "task_status": "FAILED", "code": "DataInspectionFailed", "message": "bad"},
        }
    )
    assert (n.id, n.status, n.error_code, n.request_id) == ("t1", Status.FAILED, "DataInspectionFailed", "r1")
    u = Unified.parse_task({"id": "v1", "status": "in_progress", "progress": 40, "created_at": 0})
    assert (u.id, u.status, u.progress, u.submitted_at) == ("v1", Status.RUNNING, 40, "1970-01-01 00:00:00 UTC")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _fetcher(clock: FakeClock, ends_at: float, final: str = "SUCCEEDED"):
    calls = []

    def fetch() -> Task:
        calls.append(clock.now)
        word = final if clock.now >= ends_at else "RUNNING"
        return Task("t", "native", parse_status(word), word)

    return fetch, calls


def _notice(calls: list[float], ends_at: float) -> float:
    return calls[-1] - ends_at


def test_a_120s_task_with_a_known_eta_takes_few_polls_and_is_noticed_promptly():
    clock = FakeClock()
    fetch, calls = _fetcher(clock, ends_at=120)
    task = wait_for(fetch, timeout=600, eta=120, clock=clock, sleep=clock.sleep)
    assert task.status is Status.SUCCEEDED
    assert len(calls) <= 20 and 0 <= _notice(calls, 120) <= 1.5
    assert max(clock.sleeps) == 30.0  # sparse in the middle


@pytest.mark.parametrize("eta", [None, 120.0, 300.0])
def test_a_fast_failure_is_noticed_within_two_seconds_whatever_the_eta(eta):
    clock = FakeClock()
    fetch, calls = _fetcher(clock, ends_at=3, final="FAILED")
    assert wait_for(fetch, timeout=600, eta=eta, clock=clock, sleep=clock.sleep).status is Status.FAILED
    assert _notice(calls, 3) <= 1.5


def test_an_overrunning_task_is_polled_with_growing_gaps_up_to_15s():
    clock = FakeClock()
    fetch, calls = _fetcher(clock, ends_at=400)
    wait_for(fetch, timeout=600, eta=60, clock=clock, sleep=clock.sleep)
    after = [g for t, g in zip(calls, clock.sleeps, strict=False) if t > 66]
    assert after == sorted(after) and after[-1] == 15.0 and len(calls) < 45


def test_waiting_on_an_old_task_uses_its_age():
    clock = FakeClock()
    fetch, calls = _fetcher(clock, ends_at=20)  # i.e. 120 s after creation, for a task 100 s old
    wait_for(fetch, timeout=600, eta=120, age=100, clock=clock, sleep=clock.sleep)
    assert clock.sleeps[0] <= 8 and _notice(calls, 20) <= 1.5


def test_progress_moves_the_expected_finish():
    clock = FakeClock()
    calls: list[float] = []

    def fetch() -> Task:  # unified-style progress, a task that really takes 200 s
        calls.append(clock.now)
        done = clock.now >= 200
        t = Task("t", "unified", Status.SUCCEEDED if done else Status.RUNNING, "x")
        t.progress = None if done else int(clock.now / 2)
        return t

    # no history: dense until progress means something (10 s), then its estimate
    wait_for(fetch, timeout=600, clock=clock, sleep=clock.sleep)
    assert _notice(calls, 200) <= 1.5 and len(calls) <= 35  # 7 of them in the first 6 s: it might be short


def test_fixed_interval_and_server_hint():
    clock = FakeClock()
    fetch, _ = _fetcher(clock, ends_at=3)
    wait_for(fetch, timeout=60, interval=0.5, clock=clock, sleep=clock.sleep)
    assert set(clock.sleeps) == {0.5}

    clock = FakeClock()

    def hinted() -> Task:
        t = Task("t", "native", Status.RUNNING if clock.now < 10 else Status.SUCCEEDED, "x")
        t.retry_after = 5.0
        return t

    wait_for(hinted, timeout=60, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [5.0, 5.0]


def test_timeout_looks_once_more_at_the_deadline_then_raises():
    clock = FakeClock()
    fetch, calls = _fetcher(clock, ends_at=1000)
    with pytest.raises(WaitTimeout, match="still RUNNING"):
        wait_for(fetch, timeout=10, clock=clock, sleep=clock.sleep)
    assert calls[-1] == 10


def test_failed_task_is_returned_not_raised():
    clock = FakeClock()
    fetch, _ = _fetcher(clock, ends_at=4, final="FAILED")
    assert wait_for(fetch, timeout=60, clock=clock, sleep=clock.sleep).status is Status.FAILED
