"""wanvid in scripts and CI: heartbeat progress lines for logs (no terminal, or CI set), and --on-complete."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator

import pytest

from wanvid.sandbox import Sandbox

from ..helpers import CAT, FAST, finish, gateway_env, on_a_terminal, run, start, wait_until, wv

POLL_LINE = re.compile(
    r"^task=(?P<id>\S+) status=(?P<status>PENDING|RUNNING|SUCCEEDED)(?: progress=\d+%)?"
    r" elapsed=(?P<elapsed>\d+)s(?: left=\d+s)?$"
)
DOWNLOAD_LINE = re.compile(r"^task=(?P<id>\S+) status=(?P<status>DOWNLOADING|DOWNLOADED) file=\S+ .* elapsed=[\d.]+s$")


@pytest.fixture
def heartbeat_env() -> Iterator[dict[str, str]]:
    """A gateway whose tasks stay RUNNING for 3 s, long enough for several heartbeats of 1 s."""
    with Sandbox(queue_seconds=0.4, run_seconds=3.0) as sb:
        yield {**gateway_env(sb), "WANVID_HEARTBEAT": "1"}


def _progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("task=")]


def test_heartbeat_lines_without_a_terminal(heartbeat_env, tmp_path):
    got = run("run", str(CAT), "-o", str(tmp_path / "cat.mp4"), *FAST, env=heartbeat_env)
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


def test_ci_set_on_a_terminal_gives_heartbeat_lines_not_a_live_display(heartbeat_env):
    task_id = run("create", str(CAT), "-q", env=heartbeat_env).stdout.strip()
    out, screen = on_a_terminal(["wait", task_id, *FAST], {**heartbeat_env, "CI": "true"})
    assert out.startswith("http://localhost:")
    assert "\x1b[" not in screen  # no cursor movement or colour: a CI log viewer shows it as is
    lines = [line for line in screen.replace("\r", "").splitlines() if line.startswith("task=")]
    assert lines and all(POLL_LINE.match(line) for line in lines), lines
    assert lines[-1].startswith(f"task={task_id} status=SUCCEEDED")


def test_quiet_and_json_have_no_heartbeat(heartbeat_env):
    task_id = run("create", str(CAT), "-q", env=heartbeat_env).stdout.strip()
    got = run("wait", task_id, *FAST, "--json", env=heartbeat_env)
    assert got.returncode == 0 and not _progress_lines(got.stderr)


# -- --on-complete ------------------------------------------------------------------------------


def test_on_complete_gets_the_video_in_its_environment(gw, cat, tmp_path):
    seen = tmp_path / "seen.txt"
    hook = f'printf "%s\\n" "$WANVID_OUTPUT" "$WANVID_TASK_ID" "$WANVID_BYTES" "$WANVID_METADATA" > {seen}; echo done'
    r = wv("run", str(cat), "-o", "v.mp4", *FAST, "--on-complete", hook, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)  # still exactly one JSON document: the hook's output went to stderr
    output, task_id, size, metadata = seen.read_text().splitlines()
    assert output == doc["path"] == str(tmp_path / "v.mp4")
    assert task_id == doc["task"]["id"] and int(size) == doc["bytes"] == (tmp_path / "v.mp4").stat().st_size
    assert metadata == doc["metadata"]
    assert "on-complete: done" in r.stderr


def test_a_failing_hook_is_exit_9_with_the_video_kept(gw, cat, tmp_path):
    r = wv("run", str(cat), "-o", "v.mp4", *FAST, "--on-complete", "echo nope >&2; exit 3")
    assert r.exit_code == 9
    assert r.stdout.strip() == str(tmp_path / "v.mp4") and (tmp_path / "v.mp4").stat().st_size > 1000
    assert "on-complete: nope" in r.stderr and "--on-complete command exited 3 for task" in r.stderr
    task_id = r.stderr.split("created task ")[1].split()[0]
    r = wv("download", task_id, "-o", "again.mp4", "--on-complete", "kill -9 $$")
    assert r.exit_code == 9 and "killed by signal 9" in r.stderr and (tmp_path / "again.mp4").is_file()


def test_on_complete_as_a_process(sandbox, tmp_path):
    got = run(
        "run", str(CAT), "-o", str(tmp_path / "p.mp4"), *FAST, "-q",
        "--on-complete", 'test -s "$WANVID_OUTPUT" && echo "ok $WANVID_MODEL"', sb=sandbox,
    )  # fmt: skip
    assert got.returncode == 0 and got.stdout == f"{tmp_path / 'p.mp4'}\n"
    assert "on-complete: ok wan2.7-i2v" in got.stderr


def test_a_stop_during_the_hook_says_the_video_is_saved_and_how_to_look(sandbox, tmp_path):
    """SIGTERM while --on-complete runs: the video is on disk, so the task is named with `wanvid status`, not a
    resume command that would download it again (and fail: the file exists)."""
    started = tmp_path / "hook-started"
    out = tmp_path / "h.mp4"
    proc = start("run", str(CAT), "-o", str(out), *FAST, "--on-complete", f"touch {started}; exec sleep 30", sb=sandbox)
    wait_until(started.exists, "the hook to start")
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    (task,) = sandbox.tasks()
    assert code == 143 and out.stat().st_size > 0
    assert f"note: interrupted; task {task['id']} is safe; resume with: wanvid status {task['id']}" in err


def test_a_batch_rows_failing_hook_names_its_task(gw, tmp_path):
    (tmp_path / "m.csv").write_text(f"image,prompt\n{CAT},hook fails\n")
    r = wv("batch", "m.csv", "--on-complete", "exit 3", "--json", *FAST, "--stagger", "0")
    (row,) = json.loads(r.stdout)["rows"]
    assert r.exit_code == 9 and row["status"] == "error" and row["output"]
    assert row["error"]["task_id"] == row["task_id"] is not None
