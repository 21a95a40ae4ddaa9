"""The pytest plugin users enable in their own suites (wanvid.sandbox.pytest_plugin): a user's pytest run
with it gets a working sandbox per test, reaches it with plain requests and with the wanvid CLI, and
the sandbox is gone when the test ends."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from wanvid.sandbox import Sandbox
from wanvid.sandbox.pytest_plugin import wanvid_sandbox  # noqa: F401  (the fixture, for the in-process test)

# A user's project: the root conftest.py enables the plugin, as the plugin's docstring says.
USER_CONFTEST = 'pytest_plugins = ["wanvid.sandbox.pytest_plugin"]\n'
USER_TESTS = """
import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from PIL import Image

from wanvid.sandbox import sample_mp4


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (832, 480), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def test_plain_requests(wanvid_sandbox):
    Path("sandbox-url.txt").write_text(wanvid_sandbox.url)  # for the outer test: is it stopped afterwards?
    auth = {"Authorization": f"Bearer {wanvid_sandbox.api_key}"}
    image = "data:image/png;base64," + base64.b64encode(png()).decode()
    body = {
        "model": "wan2.7-i2v",
        "prompt": "the cat walks toward the camera",
        "size": "1280x720",
        "seconds": "5",
        "input_reference": {"content": [{"type": "image_url", "image_url": {"url": image}}]},
    }
    created = requests.post(wanvid_sandbox.url + "/v1/videos", json=body, headers=auth, timeout=10)
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    deadline = time.monotonic() + 30
    while True:  # poll as a client does: each answer is the readiness signal
        task = requests.get(f"{wanvid_sandbox.url}/v1/videos/{task_id}", headers=auth, timeout=10).json()
        if task["status"] not in ("NOT_START", "QUEUED", "IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert task["status"] == "SUCCESS", task
    video = requests.get(f"{wanvid_sandbox.url}/v1/videos/{task_id}/content", headers=auth, timeout=10)
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    assert video.content == sample_mp4()  # the bundled clip every finished task serves


def test_the_wanvid_cli(wanvid_sandbox, tmp_path):
    (tmp_path / "cat.png").write_bytes(png())
    env = {**os.environ, "WANVID_BASE_URL": wanvid_sandbox.url, "WANVID_API_KEY": wanvid_sandbox.api_key}
    argv = [sys.executable, "-m", "wanvid", "run", "cat.png", "-p", "the cat walks", "--poll-interval", "0.1"]
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    saved = Path(result.stdout.strip())
    assert saved.resolve() == (tmp_path / "cat.mp4").resolve() and saved.read_bytes() == sample_mp4()
    assert len(wanvid_sandbox.tasks()) == 1
"""


def test_a_users_suite_gets_a_sandbox_per_test(isolated: Path) -> None:
    project = isolated / "user-project"
    project.mkdir()
    (project / "conftest.py").write_text(USER_CONFTEST)
    (project / "test_with_the_sandbox.py").write_text(USER_TESTS)
    # The user's own pytest run, in a process of its own: nothing of this suite's conftest is in it (but
    # the environment is, so the CLI there uses the isolated config and data dirs, not the real ones).
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    run = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    # The fixture stopped its sandbox when the test ended: the port is closed.
    with pytest.raises(requests.ConnectionError):
        requests.get((project / "sandbox-url.txt").read_text() + "/_sandbox/health", timeout=5)


def test_the_fixture_serves_on_loopback_with_its_own_key(wanvid_sandbox: Sandbox) -> None:  # noqa: F811
    assert wanvid_sandbox.url == f"http://127.0.0.1:{wanvid_sandbox.port}"
    assert wanvid_sandbox.api_key and wanvid_sandbox.api_key.startswith("sk-sandbox-")
    assert requests.get(wanvid_sandbox.url + "/_sandbox/health", timeout=5).json() == {"ok": True}
    wrong = requests.get(wanvid_sandbox.url + "/v1/videos/x", headers={"Authorization": "Bearer other"}, timeout=5)
    assert wrong.status_code == 401  # only the fixture's key is accepted
    right = {"Authorization": f"Bearer {wanvid_sandbox.api_key}"}
    assert requests.get(wanvid_sandbox.url + "/v1/videos/x", headers=right, timeout=5).status_code == 404


def test_the_plugin_is_not_loaded_into_every_pytest_run() -> None:
    # A pytest11 entry point would load it into the pytest run of everyone who installs wanvid, whatever
    # they test: it is opt-in, through pytest_plugins only.
    assert not [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.value.startswith("wanvid")]
