"""GET /v1/models: the sandbox answers it as new-api does, and `wanvid config check` reads it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from wanvid.sandbox import Sandbox

from ..helpers import TEST_KEY, wv

MIRROR = Path("/work/.mirror/SolveaCX+new-api/repo")
NEWAPI = "4ca47ee23"  # the commit the sandbox's newapi flavor follows (wanvid/sandbox/flavors.py)

# Transcribed from new-api at NEWAPI, used when its source is not on this machine (checked against it when it is):
# controller/model.go ListModels, default branch: c.JSON(200, gin.H{"success": true, "data": ..., "object": "list"})
LIST_KEYS = {"success", "data", "object"}
# dto/pricing.go type OpenAIModels: the json tags of its fields
ENTRY_KEYS = {"id", "object", "created", "owned_by", "supported_endpoint_types"}


def _go(path: str) -> str | None:
    if not MIRROR.is_dir():
        return None
    proc = subprocess.run(
        ["git", "--git-dir", str(MIRROR), "show", f"{NEWAPI}:{path}"], capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def entry_keys() -> set[str]:
    """The JSON names of dto.OpenAIModels' fields, read from new-api's source when it is here."""
    source = _go("dto/pricing.go")
    if source is None:
        return ENTRY_KEYS
    body = re.search(r"type OpenAIModels struct \{(.*?)\n\}", source, re.S)
    assert body, "dto.OpenAIModels is gone from new-api"
    return {tag.split(",")[0] for tag in re.findall(r'json:"([^"]+)"', body.group(1))}


def list_keys() -> set[str]:
    """The keys of ListModels' OpenAI answer (its last c.JSON(200, gin.H{...}) before AvailableModels)."""
    source = _go("controller/model.go")
    if source is None:
        return LIST_KEYS
    func = source[source.index("func ListModels(") :]
    func = func[: func.index("\n}\n")]
    last = func[func.rindex("c.JSON(200, gin.H{") :]
    return set(re.findall(r'"(\w+)":', last[: last.index("})")]))


def test_the_transcription_matches_new_apis_code() -> None:
    if not MIRROR.is_dir():
        pytest.skip("new-api's source is not on this machine")
    assert entry_keys() == ENTRY_KEYS and list_keys() == LIST_KEYS


@pytest.mark.parametrize("flavor", ["docs", "newapi", "house"])
def test_the_sandbox_lists_models_in_new_apis_shape(flavor: str) -> None:
    with Sandbox(api_key="only-this-key", flavor=flavor) as sb:
        r = requests.get(sb.url + "/v1/models", headers={"Authorization": "Bearer only-this-key"}, timeout=10)
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    assert set(doc) == list_keys() and doc["success"] is True and doc["object"] == "list"
    assert all(set(e) == entry_keys() and e["object"] == "model" for e in doc["data"])
    ids = [e["id"] for e in doc["data"]]
    assert {"wan2.7-i2v", "wan2.6-i2v"} <= set(ids) and len(ids) > 2  # and something that is not a video model


def test_the_sandbox_refuses_another_key_as_new_apis_auth_does() -> None:
    with Sandbox(api_key="only-this-key", flavor="newapi") as sb:
        for headers in ({"Authorization": "Bearer other"}, {}):
            r = requests.get(sb.url + "/v1/models", headers=headers, timeout=10)
            # middleware/utils.go abortWithOpenAiMessage; at NEWAPI every TokenAuth failure is "Invalid token"
            assert r.status_code == 401
            assert r.json() == {
                "error": {
                    "message": f"Invalid token (request id: {r.headers['X-Request-Id']})",
                    "type": "new_api_error",
                    "code": "",
                }
            }


# -- wanvid config check ----------------------------------------------------------------------------


@pytest.fixture
def keyed() -> Any:
    with Sandbox(api_key=TEST_KEY) as sb:
        yield sb


def test_a_good_key_names_its_source_gateway_and_models(keyed: Sandbox) -> None:
    r = wv("config", "check", "--base-url", keyed.url, env={"WANVID_API_KEY": TEST_KEY})
    assert r.exit_code == 0, r.stderr
    assert "from WANVID_API_KEY" in r.stdout and keyed.url in r.stdout
    assert r.stdout.splitlines()[0].split() == ["profile", "default"]
    assert re.search(r"wan2\.7-i2v +yes", r.stdout) and re.search(r"wan2\.6-i2v +yes", r.stdout)
    (request,) = keyed.requests("/v1/models")
    assert request.method == "GET"
    assert [x.path for x in keyed.requests()] == ["/v1/models"]  # nothing else, nothing paid for
    r = wv("config", "check", "--base-url", keyed.url, "--profile", "ci", env={"WANVID_API_KEY": TEST_KEY})
    assert r.exit_code == 0 and r.stdout.splitlines()[0].split() == ["profile", "ci"], r.stderr


def test_json_and_the_filter_of_video_models(keyed: Sandbox) -> None:
    keyed.models = ["wan2.7-i2v", "qwen-plus", "wan2.5-i2v-preview", "text-embedding-v3", "sora-2"]  # type: ignore[attr-defined]
    r = wv("config", "check", "--json", "--base-url", keyed.url, "--api-key", TEST_KEY)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["models"] == {"wan2.7-i2v": True, "wan2.6-i2v": False}
    assert doc["other_video_models"] == ["wan2.5-i2v-preview", "sora-2"]
    assert (doc["key_source"], doc["profile"], doc["base_url"], doc["listed"]) == ("flag", "default", keyed.url, 5)
    keyed.models = ["qwen-plus"]  # type: ignore[attr-defined]
    r = wv("config", "check", "--base-url", keyed.url, "--api-key", TEST_KEY)
    assert r.exit_code == 0 and "may use none of wan2.7-i2v, wan2.6-i2v" in r.stderr


def test_a_key_from_the_config_file_is_named_by_its_path_and_profile(keyed: Sandbox, isolated: Path) -> None:
    wv("config", "set-key", "--stdin", "--profile", "work", input=TEST_KEY + "\n")
    r = wv("--profile", "work", "config", "check", "--base-url", keyed.url)
    assert r.exit_code == 0, r.stderr
    assert f"the config file {isolated / 'config' / 'config.toml'} (profile 'work')" in r.stdout


@pytest.mark.parametrize("flavor", ["docs", "newapi"])
def test_a_refused_key_exits_4_saying_how_to_fix_it(flavor: str) -> None:
    with Sandbox(api_key="only-this-key", flavor=flavor) as sb:
        r = wv("config", "check", "--base-url", sb.url, env={"WANVID_API_KEY": TEST_KEY})
        assert r.exit_code == 4
        assert f"the gateway at {sb.url} refused the key from WANVID_API_KEY" in r.stderr
        assert "set WANVID_API_KEY to a valid key" in r.stderr
        doc = json.loads(wv("config", "check", "--json", "--base-url", sb.url, "--api-key", TEST_KEY).stdout)
        assert doc["error"]["exit_code"] == 4 and doc["error"]["hint"] == "pass a valid key with --api-key"


def test_every_refused_key_hints_at_the_check(cat: Path) -> None:
    with Sandbox(api_key="only-this-key") as sb:
        for command in (["create", str(cat), "-p", "a cat"], ["status", "some-task"]):
            r = wv(*command, "--base-url", sb.url, "--api-key", TEST_KEY)
            assert r.exit_code == 4 and "check the key with: wanvid config check" in r.stderr


def test_unreachable_is_6_and_a_bad_base_url_is_2(keyed: Sandbox) -> None:
    port = keyed.url.rsplit(":", 1)[1]
    dead = f"http://127.0.0.1:{_free_port()}"
    r = wv("config", "check", "--base-url", dead, "--api-key", TEST_KEY, env={"WANVID_MAX_RETRIES": "0"})
    assert r.exit_code == 6, r.stderr
    assert wv("config", "check", "--base-url", "ftp://x", "--api-key", TEST_KEY).exit_code == 2
    root = f"http://127.0.0.1:{port}/not-the-root"  # a web page is asked again within the retry budget: none here
    r = wv("config", "check", "--base-url", root, "--api-key", TEST_KEY, env={"WANVID_MAX_RETRIES": "0"})
    # new-api serves its web console's page for a path outside /api and /v1 (router/web-router.go NoRoute)
    assert r.exit_code == 2 and "GET /not-the-root/v1/models with a web page" in r.stderr
    assert "check --base-url" in r.stderr


@pytest.mark.parametrize("words", [["auth", "status"], ["whoami"], ["login"]])
def test_gh_and_hf_users_are_pointed_at_config_check(words: list[str]) -> None:
    r = wv(*words)
    assert r.exit_code == 2
    assert r.stderr == (
        f"error: no command {words[0]!r}: wanvid's key commands are under config — "
        "the key is checked with: wanvid config check; stored with: wanvid config set-key\n"
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_key_in_a_profile_says_how_to_store_one_for_that_profile(keyed: Sandbox, isolated: Path) -> None:
    assert wv("config", "set", "base_url", keyed.url, "--profile", "other").exit_code == 0
    r = wv("config", "check", "--profile", "other", env={"WANVID_API_KEY": None, "OPEAI_API_KEY": None})
    assert r.exit_code == 4
    assert "no API key for profile 'other'" in r.stderr
    assert "store one with: wanvid config set-key --profile other" in r.stderr
