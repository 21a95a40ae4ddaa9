"""Model names: a known model in any case is sent by its canonical name; a typo of a known model is refused
before anything is sent; a name that is neither (a newer version, a gateway alias) goes through with a
warning. The same rule for the CLI, the Python API and a batch's rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from wanvid import Wanvid
from wanvid.errors import FieldError
from wanvid.rules.models import canonical_model

from ..helpers import FAST_BATCH, TEST_KEY, creates, wv


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("wan2.7-i2v", "wan2.7-i2v"),
        ("WAN2.7-I2V", "wan2.7-i2v"),
        ("Wan2.6-I2V", "wan2.6-i2v"),
        ("wan2.8-i2v", "wan2.8-i2v"),  # only digits differ: a new version, on purpose
        ("wan2.10-i2v", "wan2.10-i2v"),
        ("wan3.0-i2v", "wan3.0-i2v"),
        ("wan2.7-i2v-plus", "wan2.7-i2v-plus"),  # 5 edits away
        ("ope-wan-i2v", "ope-wan-i2v"),  # a gateway alias
    ],
)
def test_names_that_are_sent(typed, sent):
    assert canonical_model(typed)[0] == sent


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("wan2.7-i2b", "wan2.7-i2v"),  # one letter
        ("WAN2.7-I2B", "wan2.7-i2v"),  # and in capitals
        ("wan2.7-iv2", "wan2.7-i2v"),  # two neighbours swapped
        ("wan27-i2v", "wan2.7-i2v"),  # a dropped dot
        ("wan2.7i2v", "wan2.7-i2v"),
        ("wan2.6-i2vv", "wan2.6-i2v"),
        ("wan2.6_i2v", "wan2.6-i2v"),
        ("wan2.7-i2", "wan2.7-i2v"),
        ("wan2.7", "wan2.7-i2v"),  # cut short
        ("WAN2.6", "wan2.6-i2v"),
    ],
)
def test_near_misses_are_refused_naming_the_known_model(typed, meant):
    with pytest.raises(FieldError) as caught:
        canonical_model(typed)
    assert caught.value.field == "model"
    assert caught.value.message == f"unknown model {typed!r}; did you mean {meant}?"


def test_cli_sends_the_canonical_name_with_a_note(gw, cat):
    r = wv("create", str(cat), "-p", "go", "-m", "WAN2.7-I2V")
    assert r.exit_code == 0, r.stderr
    (req,) = [r for r in gw.requests("/aliyun/v1/videos/generations") if r.method == "POST"]
    assert req.json["model"] == "wan2.7-i2v"
    assert "model 'WAN2.7-I2V' sent as wan2.7-i2v" in r.stderr and "warning" not in r.stderr


def test_cli_refuses_a_near_miss_before_sending(gw, cat):
    r = wv("create", str(cat), "-p", "go", "-m", "wan2.7-i2b")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: --model: unknown model 'wan2.7-i2b'; did you mean wan2.7-i2v?")
    assert creates(gw) == 0


def test_cli_sends_an_unknown_name_with_its_warning(gw, cat):
    r = wv("create", str(cat), "-p", "go", "-m", "wan2.8-i2v")
    assert "ModelNotFound" in r.stderr  # the gateway judged it: the sandbox knows only wan2.7/2.6-i2v
    (req,) = [r for r in gw.requests("/aliyun/v1/videos/generations") if r.method == "POST"]
    assert req.json["model"] == "wan2.8-i2v"
    assert "warning: model 'wan2.8-i2v' is not one wanvid knows" in r.stderr


def test_python_api_refuses_a_near_miss_and_fixes_the_case(gw, cat):
    client = Wanvid(base_url=gw.url, api_key=TEST_KEY)
    with pytest.raises(FieldError, match=r"did you mean wan2\.7-i2v\?"):
        client.create(cat, prompt="go", model="wan2.7-i2b")
    assert creates(gw) == 0
    assert client.request(cat, prompt="go", model="WAN2.7-I2V").request.model == "wan2.7-i2v"


def test_a_batch_row_with_a_near_miss_is_invalid(gw, tmp_path: Path):
    Image.new("RGB", (832, 480), "teal").save(tmp_path / "shot.png")
    rows = tmp_path / "rows.csv"
    rows.write_text("image,prompt,model,output\nshot.png,go,wan2.7-i2b,a.mp4\nshot.png,go,WAN2.7-I2V,b.mp4\n")
    r = wv("batch", str(rows), "-d", str(tmp_path / "out"), *FAST_BATCH)
    assert r.exit_code == 2
    assert "row 1: model: unknown model 'wan2.7-i2b'; did you mean wan2.7-i2v?" in r.stderr
    assert "row 2:" not in r.stderr
    assert creates(gw) == 0
