"""Progress for logs: without a terminal, or with CI set, one key=value line per change plus a heartbeat."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from wanvid.sandbox import Sandbox

from .conftest import TEST_KEY
from .test_subprocess import CAT, _on_a_terminal, run

POLL_LINE = re.compile(
    r"^task=(?P<id>\S+) status=(?P<status>PENDING|RUNNING|SUCCEEDED)(?: progress=\d+%)?"
    r" elapsed=(?P<elapsed>\d+)s(?: left=\d+s)?$"
)
DOWNLOAD_LINE = re.compile(r"^task=(?P<id>\S+) status=(?P<status>DOWNLOADING|DOWNLOADED) file=\S+ .* elapsed=[\d.]+s$")


@pytest.fixture
def slow_gw() -> Iterator[dict[str, str]]:
    """Tasks that stay RUNNING for 3 s, long enough for several heartbeats of 1 s."""
    with Sandbox(queue_seconds=0.4, run_seconds=3.0) as sb:
        yield {"WANVID_BASE_URL": sb.url, "WANVID_API_KEY": TEST_KEY, "WANVID_HEARTBEAT": "1"}


def _progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("task=")]


def test_heartbeat_lines_without_a_terminal(slow_gw, tmp_path):
    got = run("run", str(CAT), "-o", str(tmp_path / "cat.mp4"), "--poll-interval", "0.1", env=slow_gw)
    assert got.returncode == 0, got.stderr
    assert "\x1b[" not in got.stderr
    lines = _progress_lines(got.stderr)
    polls = [POLL_LINE.match(line) for line in lines if "status=DOWNLOAD" not in line]
    assert all(polls), lines  # every progress line is a well-formed key=value line
    statuses = [m["status"] for m in polls if m]
    # Each change is said once, in order, and the 3 s of RUNNING show life about once a second
    # although the task was polled ~30 times.
    assert statuses[0] == "PENDING" and statuses[-1] == "SUCCEEDED"
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert 2 <= statuses.count("RUNNING") <= 5
    running = [int(m["elapsed"]) for m in polls if m and m["status"] == "RUNNING"]
    assert running == sorted(running) and len(set(running)) == len(running)  # one line per heartbeat, not per poll
    ids = {m["id"] for m in polls if m}
    assert len(ids) == 1 and f"created task {ids.pop()}" in got.stderr
    downloads = [DOWNLOAD_LINE.match(line) for line in lines if "status=DOWNLOAD" in line]
    assert [m["status"] for m in downloads if m] == ["DOWNLOADING", "DOWNLOADED"]


def test_ci_set_on_a_terminal_gives_heartbeat_lines_not_a_live_display(slow_gw):
    task_id = run("create", str(CAT), "-q", env=slow_gw).stdout.strip()
    out, screen = _on_a_terminal(["wait", task_id, "--poll-interval", "0.1"], {**slow_gw, "CI": "true"})
    assert out.startswith("http://localhost:")
    assert "\x1b[" not in screen  # no cursor movement or colour: a CI log viewer shows it as is
    lines = [line for line in screen.replace("\r", "").splitlines() if line.startswith("task=")]
    assert lines and all(POLL_LINE.match(line) for line in lines), lines
    assert lines[-1].startswith(f"task={task_id} status=SUCCEEDED")


def test_quiet_and_json_have_no_heartbeat(slow_gw):
    task_id = run("create", str(CAT), "-q", env=slow_gw).stdout.strip()
    got = run("wait", task_id, "--poll-interval", "0.1", "--json", env=slow_gw)
    assert got.returncode == 0 and not _progress_lines(got.stderr)
