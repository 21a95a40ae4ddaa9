"""Common options before the command name work as after it; an option where it does not belong says where it goes."""

from __future__ import annotations

import json

import pytest

from ..helpers import TEST_KEY, run, wv


def test_json_before_the_command_is_the_same_document(gw, cat):
    task_id = wv("create", str(cat), "-p", "a cat").stdout.strip()
    before, after = wv("--json", "status", task_id), wv("status", task_id, "--json")
    assert before.exit_code == after.exit_code == 0
    assert json.loads(before.stdout)["id"] == json.loads(after.stdout)["id"] == task_id


def test_base_url_and_key_before_the_command_go_to_that_gateway(sandbox, cat, monkeypatch):
    monkeypatch.setenv("WANVID_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: the flag must win
    r = wv("--base-url", sandbox.url, f"--api-key={TEST_KEY}", "-q", "create", str(cat), "-p", "a cat")
    assert r.exit_code == 0, r.stderr
    assert len(sandbox.requests("/aliyun/v1/videos/generations")) == 1
    listed = wv("--base-url", sandbox.url, "--json", "list")
    assert [t["id"] for t in json.loads(listed.stdout)] == [r.stdout.strip()]


def test_profile_before_a_group_and_between_group_and_subcommand(isolated):
    assert wv("config", "set", "base_url", "http://127.0.0.1:8/", "--profile", "work").exit_code == 0
    for args in (["--profile", "work", "config", "show"], ["config", "--profile", "work", "show"]):
        r = wv("--json", *args)
        assert r.exit_code == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["profile"] == {"value": "work", "source": "flag"}
        assert doc["base_url"]["value"] == "http://127.0.0.1:8/"


def test_an_option_a_command_has_no_use_for_says_which_commands_have_it():
    for args in (["config", "path", "--api-key", "K"], ["--api-key", "K", "config", "path"]):
        r = wv(*args)
        assert r.exit_code == 2
        assert (
            "--api-key does not apply to config path (it only prints the config file's path); "
            "it is an option of create, status, wait, download, run, batch, list" in r.stderr
        )
    r = wv("--debug", "config", "path")
    assert r.exit_code == 2 and "--debug does not apply to config path" in r.stderr


def test_a_command_option_before_the_command_says_to_put_it_after(gw, cat):
    r = wv("--prompt", "x", "run", str(cat))
    assert r.exit_code == 2
    assert "--prompt is an option of create, run, batch: put it after the command name" in r.stderr
    assert "e.g. wanvid run --prompt" in r.stderr
    assert gw.requests() == []


def test_a_common_option_with_no_command_says_it_goes_with_one():
    r = wv("--json")
    assert r.exit_code == 2
    assert "--json goes with a command" in json.loads(r.stdout)["error"]["message"]


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--json", "--help"]])
def test_the_root_help_still_answers(args):
    r = wv(*args)
    assert r.exit_code == 0 and "Usage: wanvid" in r.stdout and "status" in r.stdout


def test_version_and_double_dash_still_work():
    assert wv("--version").stdout.startswith("wanvid ")
    assert wv("--", "list").exit_code == 0


def test_a_real_process_takes_options_before_the_command(sandbox, cat):
    created = run("create", str(cat), "-p", "a cat", sb=sandbox).stdout.strip()
    proc = run("--json", "--protocol", "native", "status", created, sb=sandbox)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == created
    proc = run("--quiet", "config", "path", sb=sandbox)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("config.toml")


def test_common_options_before_a_double_dash_and_the_command(isolated):
    r = wv("--json", "--", "list")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == []
