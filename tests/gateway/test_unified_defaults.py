"""Unified creates always carry `size` and `seconds`, which ope.ai's Create Video page marks required.

Every expectation here is a literal from the gateway's documents, never computed with wanvid's own rules:
- API.md: the unified body has `"size": "1280x720"` (WIDTHxHEIGHT) and `"seconds": "5"` (a string); both
  wan models default to 5 seconds at 1080P.
- GATEWAY-VARIANTS.md: `size` and `seconds` are required; `720P`/`1080p` are taken as a resolution and
  `W*H` is the form sent upstream.
- DashScope's wan "size" lists: 1080P is 1920x1080 (16:9), 1080x1920 (9:16), 1440x1440 (1:1),
  1632x1248 (4:3), 1248x1632 (3:4); 720P is 1280x720, 720x1280, 960x960, 1088x832, 832x1088.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from wanvid.sandbox import Sandbox

from ..helpers import FAST, TEST_KEY, wv

UNIFIED = ["--protocol", "unified"]
SAMPLE = (Path(__file__).parents[2] / "wanvid" / "assets" / "sample.mp4").read_bytes()


def image(folder: Path, width: int, height: int, name: str = "frame.png") -> Path:
    path = folder / name
    Image.new("RGB", (width, height), "teal").save(path)
    return path


def received(sb: Sandbox) -> list[dict]:
    """The create bodies the gateway received on the unified route."""
    return [r.json for r in sb.requests("/v1/videos") if r.method == "POST"]


def info_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("unified create: sending")]


# -- a first try that works -------------------------------------------------------------------------


def test_unified_run_without_size_or_duration_succeeds_end_to_end(gw, cat, isolated):
    """The issue's case: `wanvid run cat.png -p ... --protocol unified` with neither --size nor --duration."""
    r = wv("run", str(cat), "-p", "the cat walks", *UNIFIED, *FAST)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(isolated / "cat.mp4")
    assert (isolated / "cat.mp4").read_bytes() == SAMPLE
    (body,) = received(gw)
    assert body["size"] == "1920x1080"  # cat.png is 832x480: landscape, at the models' default 1080P
    assert body["seconds"] == "5" and isinstance(body["seconds"], str)
    assert body["prompt"] == "the cat walks" and "resolution" not in body and "duration" not in body
    (line,) = info_lines(r.stderr)
    assert "size 1920x1080" in line and "1080P" in line and "seconds 5 (the model's default)" in line


@pytest.mark.parametrize("flavor", ["docs", "newapi"])
def test_unified_run_passes_a_gateway_that_refuses_creates_without_size_or_seconds(flavor, cat, isolated, monkeypatch):
    """Against the sandbox answering like the real gateway (it refuses a create without size or seconds)."""
    with Sandbox(queue_seconds=0.2, run_seconds=0.6, flavor=flavor) as sb:
        monkeypatch.setenv("WANVID_BASE_URL", sb.url)
        monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
        r = wv("run", str(cat), "-p", "the cat walks", *UNIFIED, *FAST)
        assert r.exit_code == 0, r.stderr
        assert (isolated / "cat.mp4").read_bytes() == SAMPLE
        (body,) = received(sb)
        assert (body["size"], body["seconds"]) == ("1920x1080", "5")


# -- size from the image's shape, at the model's default resolution or --resolution -----------------


@pytest.mark.parametrize(
    ("width", "height", "extra", "size"),
    [
        (832, 480, [], "1920x1080"),  # 16:9-ish landscape
        (1000, 400, [], "1920x1080"),  # wider than 16:9: still the landscape size
        (480, 832, [], "1080x1920"),  # portrait
        (700, 690, [], "1440x1440"),  # near-square
        (800, 600, [], "1632x1248"),  # 4:3
        (900, 600, [], "1632x1248"),  # 3:2 is nearer 4:3 than 16:9
        (600, 800, [], "1248x1632"),  # 3:4
        (832, 480, ["--resolution", "720p"], "1280x720"),
        (480, 832, ["--resolution", "720P"], "720x1280"),
        (500, 500, ["--resolution", "720P"], "960x960"),
        (800, 600, ["--resolution", "720P"], "1088x832"),
        (600, 800, ["--resolution", "720P"], "832x1088"),
        (832, 480, ["--resolution", "1080P"], "1920x1080"),
    ],
)
def test_size_follows_the_images_aspect_ratio(gw, isolated, width, height, extra, size):
    r = wv("create", str(image(isolated, width, height)), "-p", "go", *UNIFIED, *extra)
    assert r.exit_code == 0, r.stderr
    (body,) = received(gw)
    assert body["size"] == size and body["seconds"] == "5"
    assert "resolution" not in body  # the unified route has no resolution field: --resolution picks the size
    (line,) = info_lines(r.stderr)
    assert f"size {size}" in line and f"{width}x{height}" in line


@pytest.mark.parametrize("model", ["wan2.7-i2v", "wan2.6-i2v"])
def test_each_models_default_duration_is_sent_as_a_string(gw, cat, model):
    r = wv("create", str(cat), "-p", "go", "-m", model, *UNIFIED)
    assert r.exit_code == 0, r.stderr
    (body,) = received(gw)
    assert body["model"] == model and body["seconds"] == "5" and body["size"] == "1920x1080"


def test_given_duration_and_size_are_sent_as_given_and_not_announced(gw, cat):
    r = wv("create", str(cat), "-p", "go", *UNIFIED, "-m", "wan2.6-i2v", "--duration", "10", "--size", "1280x720")
    assert r.exit_code == 0, r.stderr
    (body,) = received(gw)
    assert (body["size"], body["seconds"]) == ("1280x720", "10")
    assert info_lines(r.stderr) == []


def test_only_the_default_is_announced(gw, cat):
    r = wv("create", str(cat), "-p", "go", *UNIFIED, "--duration", "7")
    assert r.exit_code == 0, r.stderr
    (body,) = received(gw)
    assert (body["size"], body["seconds"]) == ("1920x1080", "7")
    (line,) = info_lines(r.stderr)
    assert "size 1920x1080" in line and "seconds" not in line


def test_a_remote_image_falls_back_to_landscape_and_says_so(gw):
    r = wv("create", "https://example.com/cat.png", "-p", "go", *UNIFIED, "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert gw.requests() == []
    body = json.loads(r.stdout[r.stdout.index("\n\n") :])
    assert body["size"] == "1920x1080" and body["seconds"] == "5"
    (line,) = info_lines(r.stderr)
    assert "16:9 landscape" in line and "not known" in line


def test_a_data_uri_image_is_measured_like_a_file(gw):
    buf = io.BytesIO()
    Image.new("RGB", (480, 832), "teal").save(buf, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = wv("create", uri, "-p", "go", *UNIFIED)
    assert r.exit_code == 0, r.stderr
    (body,) = received(gw)
    assert body["size"] == "1080x1920" and body["seconds"] == "5"


# -- shown before anything is paid for ----------------------------------------------------------------


def test_dry_run_shows_the_chosen_size_and_seconds(gw, cat):
    r = wv("create", str(cat), "-p", "go", *UNIFIED, "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert gw.requests() == []
    assert r.stdout.startswith(f"POST {gw.url}/v1/videos\n")
    assert '"size": "1920x1080"' in r.stdout and '"seconds": "5"' in r.stdout
    assert len(info_lines(r.stderr)) == 1
    doc = json.loads(wv("create", str(cat), "-p", "go", *UNIFIED, "--dry-run", "--json").stdout)
    assert doc["body"]["size"] == "1920x1080" and doc["body"]["seconds"] == "5"


def test_quiet_hides_the_info_line(gw, cat):
    r = wv("create", str(cat), "-p", "go", *UNIFIED, "--quiet")
    assert r.exit_code == 0, r.stderr
    assert info_lines(r.stderr) == []
    (body,) = received(gw)
    assert (body["size"], body["seconds"]) == ("1920x1080", "5")


# -- --size in every form the gateway takes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("1280x720", "1280x720"),
        ("1280X720", "1280x720"),
        ("1280*720", "1280*720"),  # the provider's own form, passed upstream as is
        ("720P", "720P"),
        ("720p", "720P"),
        ("1080p", "1080P"),
    ],
)
def test_each_size_form_is_accepted(gw, cat, given, sent):
    r = wv("create", str(cat), "-p", "go", *UNIFIED, "--size", given, "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    body = json.loads(r.stdout)["body"]
    assert body["size"] == sent and body["seconds"] == "5"
    (line,) = info_lines(r.stderr) or [""]
    assert "size" not in line.split("sending", 1)[-1]  # a size the user gave is not announced


@pytest.mark.parametrize(("given", "sent"), [("720X1280", "720x1280"), ("720*1280", "720*1280"), ("1080p", "1080P")])
def test_each_size_form_reaches_the_gateway(gw, cat, given, sent):
    r = wv("create", str(cat), "-p", "go", *UNIFIED, "--size", given)
    assert r.exit_code == 0, r.stderr
    (body,) = received(gw)
    assert (body["size"], body["seconds"]) == (sent, "5")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--size", "big"], "--size: size 'big' is not WIDTHxHEIGHT (1280x720), WIDTH*HEIGHT (1280*720)"),
        (["--size", "0x720"], "--size: size '0x720' is not WIDTHxHEIGHT"),
        (["--size", "1280x"], "--size: size '1280x' is not WIDTHxHEIGHT"),
        (["--size", "1280:720"], "or a resolution (720P, 1080P)"),
        (["--size", "480P"], "--size: size '480P' is not a resolution wan2.7-i2v makes: use 720P or 1080P"),
        (["--size", "720P", "--resolution", "720P"], "--resolution: give --size or --resolution, not both"),
    ],
)
def test_bad_size_is_one_line_exit_2_and_nothing_sent(gw, cat, args, needle):
    r = wv("create", str(cat), "-p", "go", *UNIFIED, *args)
    assert r.exit_code == 2
    assert needle in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert r.stdout == "" and gw.requests() == []


# -- the same command is the same request: reused, never paid twice ------------------------------------


def test_the_same_unified_create_twice_reuses_the_task(gw, cat):
    first = wv("create", str(cat), "-p", "go", *UNIFIED)
    second = wv("create", str(cat), "-p", "go", *UNIFIED)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout and "reusing task" in second.stderr
    assert len(received(gw)) == 1


def test_spelling_out_the_defaults_is_the_same_request(gw, cat):
    """The fingerprint is of what is sent: the chosen defaults, spelled out, send the same body."""
    first = wv("create", str(cat), "-p", "go", *UNIFIED)
    second = wv("create", str(cat), "-p", "go", *UNIFIED, "--size", "1920x1080", "--duration", "5")
    third = wv("create", str(cat), "-p", "go", *UNIFIED, "--resolution", "1080P")
    assert first.stdout == second.stdout == third.stdout
    assert len(received(gw)) == 1


def test_a_different_size_is_a_different_request(gw, cat):
    wv("create", str(cat), "-p", "go", *UNIFIED)
    r = wv("create", str(cat), "-p", "go", *UNIFIED, "--resolution", "720P")
    assert r.exit_code == 0 and "reusing" not in r.stderr
    assert [b["size"] for b in received(gw)] == ["1920x1080", "1280x720"]


def test_the_same_unified_run_twice_pays_once(gw, cat, isolated):
    first = wv("run", str(cat), "-p", "go", *UNIFIED, *FAST)
    second = wv("run", str(cat), "-p", "go", *UNIFIED, *FAST)
    assert first.exit_code == second.exit_code == 0, second.stderr
    assert "already saved" in second.stderr
    assert len(received(gw)) == 1
