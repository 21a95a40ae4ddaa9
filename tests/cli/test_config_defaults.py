"""A profile's video defaults (model, resolution, duration, output_dir) and a --profile that does not exist."""

from __future__ import annotations

import json

import pytest

from wanvid.sandbox import Sandbox

from ..helpers import FAST, TEST_KEY, wv

CREATE = "/aliyun/v1/videos/generations"


def bodies(sb: Sandbox) -> list:
    return [r.json for r in sb.requests(CREATE) if r.method == "POST"]


def setting(name: str, *extra: str) -> dict:
    r = wv("config", "get", name, "--json", *extra)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


# -- set, get, show, unset --------------------------------------------------------------------------


def test_set_get_show_and_unset_each_default(isolated):
    assert setting("model") == {"name": "model", "value": "wan2.7-i2v", "source": "default"}
    assert setting("resolution") == {"name": "resolution", "value": "", "source": "default"}
    for name, value, stored in (
        ("model", "wan2.6-i2v", "wan2.6-i2v"),
        ("resolution", "720p", "720P"),
        ("duration", "10", "10"),
        ("output_dir", "videos", str(isolated / "videos")),
    ):
        assert wv("config", "set", name, value).exit_code == 0
        assert wv("config", "get", name).stdout == stored + "\n"
        assert setting(name)["source"] == "file"
    shown = json.loads(wv("config", "show", "--json").stdout)
    assert shown["duration"] == {"value": "10", "source": "file"}
    assert "model      wan2.6-i2v" in wv("config", "show").stdout
    assert wv("config", "unset", "model").exit_code == 0
    assert setting("model") == {"name": "model", "value": "wan2.7-i2v", "source": "default"}
    assert "duration = 10" in (isolated / "config" / "config.toml").read_text()  # a TOML integer


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("resolution", "4K", "is not 720P or 1080P"),
        ("duration", "ten", "is not a whole number"),
        ("duration", "3", "not allowed for wan2.6-i2v (the profile's model): use 5, 10, 15"),
        ("duration", "99", None),
        ("model", "wan 2", "is not a model id"),
        ("output_dir", "file.txt", "is not a directory"),
        ("colour", "red", "unknown setting 'colour'"),
    ],
)
def test_a_value_that_cannot_be_used_is_refused_when_set(isolated, name, value, needle):
    (isolated / "file.txt").write_text("x")
    if name == "duration" and value == "3":
        wv("config", "set", "model", "wan2.6-i2v")
    r = wv("config", "set", name, value)
    assert r.exit_code == 2
    assert needle is None or needle in r.stderr, r.stderr
    assert name != "duration" or setting("duration")["value"] == ""


def test_an_unknown_model_is_stored_with_a_warning(isolated):
    r = wv("config", "set", "model", "wan9-i2v")
    assert r.exit_code == 0 and "not one wanvid knows" in r.stderr
    assert setting("model")["value"] == "wan9-i2v"


# -- the defaults in use ----------------------------------------------------------------------------


def test_create_sends_the_profiles_defaults_and_a_flag_wins(gw, cat):
    for name, value in (("model", "wan2.6-i2v"), ("resolution", "720P"), ("duration", "10")):
        wv("config", "set", name, value)
    dry = json.loads(wv("create", str(cat), "-p", "a cat", "--dry-run", "--json").stdout)
    assert dry["body"]["model"] == "wan2.6-i2v"
    assert dry["body"]["parameters"] == {"resolution": "720P", "duration": 10}
    assert wv("create", str(cat), "-p", "a cat", "-m", "wan2.7-i2v", "--duration", "3").exit_code == 0
    assert wv("create", str(cat), "-p", "a dog").exit_code == 0
    first, second = bodies(gw)
    assert first["model"] == "wan2.7-i2v" and first["parameters"] == {"resolution": "720P", "duration": 3}
    assert second["model"] == "wan2.6-i2v" and second["parameters"] == {"resolution": "720P", "duration": 10}


def test_a_file_default_the_flag_model_refuses_names_the_config_file(gw, cat):
    wv("config", "set", "duration", "3")  # allowed for wan2.7-i2v, not for wan2.6-i2v
    r = wv("create", str(cat), "-p", "a cat", "-m", "wan2.6-i2v")
    assert r.exit_code == 2
    assert "duration from the config file (profile 'default')" in r.stderr
    assert "wanvid config set duration" in r.stderr
    assert gw.requests() == []


def test_profiles_keep_their_own_defaults(gw, cat):
    wv("config", "set", "model", "wan2.6-i2v", "--profile", "work")
    wv("create", str(cat), "-p", "a cat", "--profile", "work")
    wv("create", str(cat), "-p", "a cat")
    assert [b["model"] for b in bodies(gw)] == ["wan2.6-i2v", "wan2.7-i2v"]


def test_run_and_download_put_videos_in_output_dir_and_o_wins(gw, cat, isolated):
    wv("config", "set", "output_dir", str(isolated / "out"))  # created on first use
    r = wv("run", str(cat), "-p", "a cat", *FAST)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(isolated / "out" / "cat.mp4") and (isolated / "out" / "cat.mp4").is_file()
    r = wv("run", str(cat), "-p", "a dog", "-o", "here.mp4", *FAST)
    assert r.stdout.strip() == str(isolated / "here.mp4")
    task_id = wv("create", str(cat), "-p", "a bird").stdout.strip()
    assert wv("wait", task_id, *FAST).exit_code == 0
    r = wv("download", task_id)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(isolated / "out" / f"{task_id}.mp4")


def test_batch_takes_the_defaults_and_a_cell_wins(gw, cat, isolated):
    wv("config", "set", "model", "wan2.6-i2v")
    wv("config", "set", "output_dir", str(isolated / "batch-out"))
    manifest = isolated / "rows.csv"
    manifest.write_text(f"image,prompt,model,output\n{cat},one,,one.mp4\n{cat},two,wan2.7-i2v,two.mp4\n")
    r = wv("batch", str(manifest), *FAST, "--stagger", "0.02", "--json")
    assert r.exit_code == 0, r.stderr
    assert sorted(b["model"] for b in bodies(gw)) == ["wan2.6-i2v", "wan2.7-i2v"]
    assert (isolated / "batch-out" / "one.mp4").is_file() and (isolated / "batch-out" / "two.mp4").is_file()


# -- a profile that does not exist ------------------------------------------------------------------


def test_a_profile_typo_names_the_profiles_that_exist(sandbox, cat, monkeypatch):
    wv("config", "set-key", "--stdin", "--profile", "work", input=TEST_KEY + "\n")
    wv("config", "set", "base_url", sandbox.url, "--profile", "work")
    for args, env in ((["--profile", "wrok"], {}), ([], {"WANVID_PROFILE": "wrok"})):
        for command in (["status"], ["create", str(cat), "-p", "x"], ["config", "show"], ["list"]):
            r = wv(*command, *args, env=env)
            assert r.exit_code == 2, (command, r.stderr)
            assert "profile 'wrok'" in r.stderr and "does not exist" in r.stderr and "work" in r.stderr
            assert "no API key" not in r.stderr
    assert sandbox.requests() == []
    assert wv("create", str(cat), "-p", "x", "--profile", "work").exit_code == 0  # the real one works


def test_making_a_profile_and_a_key_from_the_environment_are_not_typos(gw, cat, isolated):
    # a key in the environment: the profile only scopes the journal
    assert wv("create", str(cat), "-p", "x", "--profile", "ci").exit_code == 0
    assert len(json.loads(wv("list", "--profile", "ci", "--json").stdout)) == 1
    assert wv("config", "set", "model", "wan2.6-i2v", "--profile", "new").exit_code == 0
    assert wv("config", "set-key", "--stdin", "--profile", "newer", input="a-key-0123456789\n").exit_code == 0
    r = wv("config", "unset", "model", "--profile", "nwe")
    assert r.exit_code == 2 and "profile 'nwe'" in r.stderr
    assert "nwe" not in (isolated / "config" / "config.toml").read_text()


def test_a_model_change_that_leaves_the_duration_out_warns(isolated):
    wv("config", "set", "duration", "3")
    r = wv("config", "set", "model", "wan2.6-i2v")
    assert r.exit_code == 0 and "the profile's duration 3 s is not allowed for wan2.6-i2v" in r.stderr


def test_get_names_the_settings_it_knows(isolated):
    r = wv("config", "get", "colour")
    assert r.exit_code == 2 and "unknown setting 'colour'" in r.stderr and "output_dir" in r.stderr
    assert wv("config", "get", "api_key", "--api-key", TEST_KEY).stdout == "****" + TEST_KEY[-4:] + "\n"


def test_config_set_model_stores_the_known_name_and_refuses_a_typo(isolated):
    r = wv("config", "set", "model", "WAN2.6-i2v")
    assert r.exit_code == 0 and "warning" not in r.stderr, r.stderr
    assert wv("config", "get", "model").stdout.strip() == "wan2.6-i2v"
    r = wv("config", "set", "model", "wan2.7-iv2")
    assert r.exit_code == 2
    assert "unknown model 'wan2.7-iv2'; did you mean wan2.7-i2v?" in r.stderr
    assert wv("config", "get", "model").stdout.strip() == "wan2.6-i2v"  # the typo was not stored


def test_the_python_api_takes_the_profiles_defaults_as_the_cli_does(isolated, cat):
    import wanvid

    assert wv("config", "set", "model", "wan2.6-i2v").exit_code == 0
    assert wv("config", "set", "resolution", "720P").exit_code == 0
    client = wanvid.Wanvid(api_key=TEST_KEY, base_url="http://127.0.0.1:9")  # nothing is sent
    v = client.request(cat, prompt="go")
    assert (v.request.model, v.request.resolution) == ("wan2.6-i2v", "720P")
    assert client.request(cat, prompt="go", model="wan2.7-i2v").request.model == "wan2.7-i2v"  # the argument wins
