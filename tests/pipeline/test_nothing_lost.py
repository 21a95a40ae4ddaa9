"""Nothing paid for is lost: the journal, reuse, resumable verified downloads, interrupts, expiry, hostile
answers and secrets, each driven through the sandbox's fault switches with real processes where it matters."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from wanvid.errors import UsageError
from wanvid.gateway.client import Client
from wanvid.gateway.service import submit
from wanvid.rules.request import VideoRequest, validate
from wanvid.sandbox import Sandbox, sample_mp4
from wanvid.sandbox.video import Video
from wanvid.store.journal import Journal, Part, journal_path

from ..helpers import (
    FAST,
    TEST_KEY,
    creates,
    finish,
    handler_reset,
    queries,
    run,
    start,
    wait_until,
    wv,
)

SAMPLE = sample_mp4()


def finished_task(gw: Sandbox, cat: Path) -> str:
    task_id = wv("create", str(cat), "-q", "--new").stdout.strip()
    assert wv("wait", task_id, "-q", *FAST).exit_code == 0
    return task_id


def ranges(sb: Sandbox, task_id: str) -> list[str | None]:
    return [r.headers.get("range") for r in sb.requests(f"/aliyun/v1/videos/{task_id}/content")]


# -- the journal ----------------------------------------------------------------------------------


def test_a_created_task_is_journaled_with_its_request_and_no_inline_data(gw, cat, isolated):
    task_id = wv("create", str(cat), "-p", "walk", "--seed", "7", "-q").stdout.strip()
    e = Journal().get(gw.url, task_id)
    assert e is not None and (e.protocol, e.profile, e.model) == ("native", "default", "wan2.7-i2v")
    assert e.status == "PENDING"
    request = json.loads(e.request or "")
    assert request["prompt"] == "walk" and request["seed"] == 7
    assert request["image"] == {
        "path": str(cat),
        "sha256": hashlib.sha256(cat.read_bytes()).hexdigest(),
        "bytes": cat.stat().st_size,
    }
    assert b"base64" not in journal_path().read_bytes()


def test_status_wait_download_default_to_the_most_recent_task(gw, cat, isolated):
    wv("create", str(cat), "-q", "-p", "first")
    second = wv("create", str(cat), "-q", "-p", "second").stdout.strip()
    r = wv("wait", *FAST)
    assert r.exit_code == 0 and f"task {second} (the most recent" in r.stderr
    assert wv("status", "-q").stdout == "SUCCEEDED\n"
    d = wv("download", "-q")
    assert d.stdout == f"{isolated / (second + '.mp4')}\n"
    e = Journal().get(gw.url, second)
    assert e is not None and e.status == "SUCCEEDED" and e.output_path == str(isolated / (second + ".mp4"))


def test_no_task_in_the_journal_is_a_usage_error(gw):
    r = wv("wait")
    assert r.exit_code == 2 and "the journal has no task" in r.stderr and "give a TASK_ID" in r.stderr


def test_list_filters_by_status_and_speaks_json(gw, cat, slow):
    done = finished_task(gw, cat)
    running = wv("create", str(cat), "-q", "--base-url", slow.url).stdout.strip()
    listed = wv("list").stdout
    assert done in listed and running not in listed  # another gateway: not in this list by default
    assert running in wv("list", "--all").stdout
    assert wv("history", "--all", "--status", "pending", "-q").stdout == f"{running}\n"
    doc = json.loads(wv("list", "--json", "--status", "succeeded").stdout)
    assert [t["id"] for t in doc] == [done] and doc[0]["request"]["image"]["path"].endswith("cat.png")
    bad = wv("list", "--status", "melted")
    assert bad.exit_code == 2 and "unfinished" in bad.stderr


def test_wait_all_waits_for_every_unfinished_task(gw, cat):
    ids = [wv("create", str(cat), "-q", "-p", p).stdout.strip() for p in ("a", "b", "c")]
    r = wv("wait", "--all", "--json", *FAST)
    assert r.exit_code == 0
    assert sorted(t["id"] for t in json.loads(r.stdout)["tasks"]) == sorted(ids)
    assert {e.status for e in Journal().recent()} == {"SUCCEEDED"}
    assert "0 unfinished" in wv("wait", "--all").stderr


# -- never pay twice ------------------------------------------------------------------------------


def test_two_identical_runs_create_one_task_and_new_creates_two(gw, cat, isolated):
    first = wv("run", str(cat), "-p", "walk", "-o", "a.mp4", *FAST)
    assert first.exit_code == 0 and creates(gw) == 1
    second = wv("run", str(cat), "-p", "walk", "-o", "b.mp4", *FAST)
    assert second.exit_code == 0 and creates(gw) == 1
    assert "reusing task" in second.stderr and "--new" in second.stderr
    assert (isolated / "a.mp4").read_bytes() == (isolated / "b.mp4").read_bytes() == SAMPLE
    again = wv("run", str(cat), "-p", "walk", "-o", "a.mp4", *FAST)  # the CI rerun: already on disk
    assert again.exit_code == 0 and "already saved" in again.stderr and creates(gw) == 1
    assert wv("run", str(cat), "-p", "walk", "-o", "c.mp4", "--new", *FAST).exit_code == 0
    assert creates(gw) == 2
    assert wv("run", str(cat), "-p", "other", "-o", "d.mp4", *FAST).exit_code == 0
    assert creates(gw) == 3  # a different prompt is a different request


def test_identical_runs_as_separate_processes_share_one_task(sandbox, cat, isolated):
    a = run("run", str(cat), "-o", "a.mp4", *FAST, sb=sandbox)
    b = run("run", str(cat), "-o", "b.mp4", *FAST, sb=sandbox)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert creates(sandbox) == 1 and "reusing task" in b.stderr
    c = run("run", str(cat), "-o", "c.mp4", "--new", *FAST, sb=sandbox)
    assert c.returncode == 0 and creates(sandbox) == 2


def test_same_bytes_under_another_name_is_the_same_request(gw, cat, isolated):
    copy = isolated / "copy.png"
    copy.write_bytes(cat.read_bytes())
    first = wv("create", str(cat), "-q").stdout
    assert wv("create", str(copy), "-q").stdout == first and creates(gw) == 1
    Image.new("RGB", (832, 480), "red").save(copy)
    assert wv("create", str(copy), "-q").stdout != first and creates(gw) == 2


def test_a_failed_task_is_not_reused(gw, cat):
    gw.faults.fail_code = "InternalError"
    assert wv("run", str(cat), *FAST).exit_code == 3
    gw.faults.fail_code = None
    assert wv("run", str(cat), *FAST).exit_code == 0 and creates(gw) == 2


# -- downloads that survive anything ------------------------------------------------------------


def test_a_download_cut_at_several_points_resumes_across_processes(sandbox, cat, isolated):
    task_id = run("create", str(cat), "-q", sb=sandbox).stdout.strip()
    assert run("wait", task_id, "-q", *FAST, sb=sandbox).returncode == 0
    part = isolated / "v.mp4.part"
    kept = 0
    for cut in (1000, 30_000, 40_000):
        sandbox.faults.cut_download_after, sandbox.faults.cut_downloads = cut, 1
        p = run("download", task_id, "-o", "v.mp4", sb=sandbox, env={"WANVID_MAX_RETRIES": "0"})
        assert p.returncode == 6, p.stderr
        assert f"{task_id} is safe; resume with: wanvid download {task_id} -o {isolated / 'v.mp4'}" in p.stderr
        assert not (isolated / "v.mp4").exists()
        kept += cut
        assert part.stat().st_size == kept and SAMPLE.startswith(part.read_bytes())
    done = run("download", task_id, "-o", "v.mp4", sb=sandbox)
    assert done.returncode == 0 and f"resuming v.mp4.part from byte {kept:,}" in done.stderr
    assert (isolated / "v.mp4").read_bytes() == SAMPLE and not part.exists()
    assert ranges(sandbox, task_id) == [None, "bytes=1000-", "bytes=31000-", "bytes=71000-"]
    assert Journal().part(part) is None


def test_a_changed_video_restarts_the_part_instead_of_splicing(gw, cat, isolated):
    task_id = finished_task(gw, cat)
    gw.faults.cut_download_after = 50_000
    assert wv("download", task_id, "-o", "v.mp4", env={"WANVID_MAX_RETRIES": "0"}).exit_code == 6
    gw.faults.video_variant = 1  # the server now has other bytes (and another ETag)
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 0 and "sent the whole video again" in r.stderr
    changed = requests.get(f"{gw.url}/aliyun/v1/videos/{task_id}/content", headers={"Authorization": "Bearer k"})
    assert (isolated / "v.mp4").read_bytes() == changed.content != SAMPLE
    resumed = [r for r in gw.requests(f"/aliyun/v1/videos/{task_id}/content") if r.headers.get("range")]
    assert resumed and resumed[0].headers.get("if-range")  # the guard that made the server send it whole


def test_a_server_that_ignores_ranges_gets_a_clean_restart(gw, cat, isolated):
    task_id = finished_task(gw, cat)
    gw.faults.cut_download_after = 50_000
    assert wv("download", task_id, "-o", "v.mp4", env={"WANVID_MAX_RETRIES": "0"}).exit_code == 6
    gw.faults.ignore_range = True
    assert wv("download", task_id, "-o", "v.mp4").exit_code == 0
    assert (isolated / "v.mp4").read_bytes() == SAMPLE


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html>502 Bad Gateway</html>" * 10, "is not the start of an MP4"),
        (SAMPLE[:2000], "has no record of where it came from"),
    ],
)
def test_a_corrupt_or_unknown_part_is_started_over(gw, cat, isolated, content, message):
    task_id = finished_task(gw, cat)
    if message.startswith("is not"):
        Journal().save_part(isolated / "v.mp4.part", Part(task_id, "x", None, None))
    (isolated / "v.mp4.part").write_bytes(content)
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 0 and message in r.stderr and "starting over" in r.stderr
    assert (isolated / "v.mp4").read_bytes() == SAMPLE


def test_the_content_route_failing_falls_back_to_the_signed_url_without_the_key(gw, cat, isolated):
    task_id = finished_task(gw, cat)
    gw.faults.content_errors = 10
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 0, r.stderr
    assert "fetching the signed video URL instead" in r.stderr
    assert (isolated / "v.mp4").read_bytes() == SAMPLE
    oss = gw.requests("/_oss/")
    assert oss and all("authorization" not in o.headers for o in oss)
    assert len(gw.requests(f"/aliyun/v1/videos/{task_id}/content")) == 1  # no retry storm before falling back


def test_an_html_page_instead_of_the_video_is_caught(gw, cat, isolated):
    task_id = finished_task(gw, cat)
    gw.faults.video_html = True
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 7 and "not an MP4 video (text/html" in r.stderr
    assert list(isolated.glob("v.mp4*")) == []


def test_a_truncated_mp4_fails_verification(gw, cat, isolated, monkeypatch):
    task_id = finished_task(gw, cat)
    # A server whose announced length matches what it sends, but the file ends mid-box.
    monkeypatch.setattr("wanvid.sandbox.server.video_for", lambda *key: Video(SAMPLE[:60_000], 60_000, '"cut"'))
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 7 and "not a complete MP4" in r.stderr
    assert list(isolated.glob("v.mp4*")) == []


def test_the_saved_video_is_verified_and_described(gw, cat, isolated):
    r = wv("run", str(cat), "-p", "walk", "--seed", "9", *FAST)
    assert r.exit_code == 0 and "(101,468 bytes; 5.0 s, 640x360)" in r.stderr.replace(str(len(SAMPLE)), "101,468")
    meta = json.loads((isolated / "cat.mp4.json").read_text())
    assert meta["prompt"] == "walk" and meta["seed"] == 9 and meta["model"] == "wan2.7-i2v"
    assert meta["inputs"]["image"]["sha256"] == hashlib.sha256(cat.read_bytes()).hexdigest()
    assert meta["video"] == {
        "path": str(isolated / "cat.mp4"),
        "bytes": len(SAMPLE),
        "duration": 5.0,
        "width": 640,
        "height": 360,
        "source": meta["video"]["source"],
    }
    assert meta["task_id"] and meta["request_id"] and meta["timings"]["finished"]
    assert "Signature" not in json.dumps(meta)
    assert wv("run", str(cat), "-p", "walk", "--seed", "9", "-o", "b.mp4", "--no-metadata", *FAST).exit_code == 0
    assert not (isolated / "b.mp4.json").exists()


# -- interrupts, timeouts, expiry, kills ----------------------------------------------------------


def test_sigkill_before_the_first_poll_answer_then_wait_finds_it(sandbox, cat, isolated, monkeypatch):
    held = threading.Event()
    handler = sandbox._server.RequestHandlerClass
    original = handler._native_query

    def hold(self, task_id):  # the first status query gets no answer until the test lets it go
        held.wait(30)
        original(self, task_id)

    monkeypatch.setattr(handler, "_native_query", hold)
    proc = start("run", str(cat), "-p", "walk", *FAST, sb=sandbox)
    wait_until(lambda: queries(sandbox), "the first status query")
    proc.kill()  # SIGKILL: no handler runs, nothing is tidied up
    proc.communicate(timeout=10)
    held.set()
    monkeypatch.setattr(handler, "_native_query", original)
    rows = Journal().recent()
    assert len(rows) == 1 and rows[0].status == "PENDING" and rows[0].output_path == str(isolated / "cat.mp4")
    w = run("wait", *FAST, sb=sandbox)
    assert w.returncode == 0 and f"task {rows[0].id} (the most recent" in w.stderr
    d = run("download", sb=sandbox)
    assert d.returncode == 0 and d.stdout == f"{isolated / 'cat.mp4'}\n"  # where the killed run meant it to go
    assert (isolated / "cat.mp4").read_bytes() == SAMPLE and creates(sandbox) == 1


def test_ctrl_c_during_a_download_keeps_the_part_and_resumes(sandbox, cat, isolated):
    task_id = run("create", str(cat), "-q", sb=sandbox).stdout.strip()
    assert run("wait", task_id, "-q", *FAST, sb=sandbox).returncode == 0
    sandbox.faults.slow_download_bps = 40_000
    proc = start("download", task_id, "-o", "v.mp4", sb=sandbox)
    part = isolated / "v.mp4.part"
    wait_until(lambda: part.exists() and part.stat().st_size >= 20_000, "20 kB in the .part")
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout=20)
    assert code == 130 and f"resume with: wanvid download {task_id} -o {isolated / 'v.mp4'}" in err
    assert not (isolated / "v.mp4").exists()
    kept = part.stat().st_size
    assert 20_000 <= kept < len(SAMPLE)
    sandbox.faults.slow_download_bps = None
    assert run("download", task_id, "-o", "v.mp4", sb=sandbox).returncode == 0
    assert (isolated / "v.mp4").read_bytes() == SAMPLE
    assert ranges(sandbox, task_id)[-1] == f"bytes={kept}-"


def test_a_second_ctrl_c_exits_at_once_even_while_cleanup_is_stuck(slow, cat, isolated):
    proc = start("run", str(cat), sb=slow)
    wait_until(lambda: queries(slow), "the first status query")
    blocker = sqlite3.connect(journal_path(), timeout=1, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the journal: the first Ctrl-C's tidy-up waits
    try:
        proc.send_signal(signal.SIGINT)
        # The tidy-up has begun once SIGINT is back to its default action (so that a second one ends it)
        wait_until(lambda: handler_reset(proc, signal.SIGINT), "the tidy-up after the first Ctrl-C")
        with pytest.raises(subprocess.TimeoutExpired):  # and it is stuck: it would wait up to 30 s for the lock
            proc.wait(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
        assert time.monotonic() - started < 3
        assert proc.returncode in (-signal.SIGINT, 130)  # ended by the signal itself, as a shell expects
    finally:
        blocker.execute("ROLLBACK")
    assert not list(isolated.glob("cat.mp4*"))
    assert [e.status for e in Journal().recent()] == ["PENDING"]  # the task is kept


def test_a_single_ctrl_c_during_wait_exits_130_and_keeps_the_task(slow, cat, isolated):
    proc = start("run", str(cat), "-q", sb=slow)
    wait_until(lambda: queries(slow), "the first status query")
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout=10)
    task_id = Journal().recent()[0].id
    assert code == 130 and f"created task {task_id}" in err  # the id even with -q
    # a note, not an error: the task goes on (tests/processes/test_interrupt_messages.py)
    resume = f"wanvid wait {task_id} && wanvid download {task_id}"
    assert f"note: stopped waiting; task {task_id} keeps running; resume with: {resume}" in err


def test_timeout_keeps_the_task_as_running_in_the_journal(slow_gw, cat):
    r = wv("run", str(cat), "--timeout", "0.3", *FAST)
    assert r.exit_code == 124 and "; resume with: wanvid wait " in r.stderr and "error:" not in r.stderr
    assert wv("list", "--status", "unfinished", "-q").stdout.strip() == Journal().recent()[0].id


def test_timeout_bounds_the_clients_own_retries(cat, monkeypatch, isolated):
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
    started = time.monotonic()
    r = wv("wait", "some-task", "--timeout", "0.5", "--base-url", "http://127.0.0.1:9")  # nothing listens
    assert r.exit_code == 124 and time.monotonic() - started < 3


def test_an_expired_task_is_reported_once_the_gateway_agrees_and_nothing_is_downloaded(gw, cat, isolated):
    requests.post(f"{gw.url}/_sandbox/timing", json={"ttl_seconds": 1.5}, timeout=5)
    task_id = finished_task(gw, cat)
    expires = Journal().get(gw.url, task_id).expires_at  # type: ignore[union-attr]
    assert expires is not None

    def expired() -> bool:  # by this machine's clock (the journal) and by the gateway
        return time.time() > expires and [t["status"] for t in gw.tasks() if t["id"] == task_id] == ["UNKNOWN"]

    wait_until(expired, "the task to expire")
    before = len(gw.requests())
    for command in (["download", task_id], ["wait", task_id], ["status", task_id]):
        r = wv(*command)
        assert r.exit_code == 5 and "expired at" in r.stderr and "24 h" in r.stderr
    asked = gw.requests()[before:]
    assert len(asked) == 3 and all(task_id in r.path and "content" not in r.path for r in asked)
    assert not list(isolated.glob("*.mp4*"))
    assert "EXPIRED" in wv("list").stdout


def test_a_task_made_while_the_clock_was_behind_is_asked_about_not_refused(gw, cat, isolated):
    """The journal's created_at came from a clock two days slow: by it the task is long expired, but the
    gateway still has it, so it is downloaded (with a note about the clock), not refused unasked."""
    task_id = wv("create", str(cat), "-p", "a cat").stdout.strip()
    skewed = time.time() - 2 * 86400
    with sqlite3.connect(Journal().path) as db:
        db.execute("UPDATE tasks SET created_at = ?, expires_at = NULL WHERE id = ?", (skewed, task_id))
    assert wv("wait", task_id, *FAST).exit_code == 0
    with sqlite3.connect(Journal().path) as db:
        db.execute("UPDATE tasks SET created_at = ?, expires_at = ? WHERE id = ?", (skewed, skewed + 86400, task_id))
    r = wv("download", task_id, "-o", "cat.mp4")
    assert r.exit_code == 0, r.stderr
    assert "clock" in r.stderr and (isolated / "cat.mp4").stat().st_size > 0


# -- the machine cannot keep it -------------------------------------------------------------------


@pytest.mark.parametrize("limit", [64 * 1024, 50_001])  # the second ends mid-write: the file takes only part
def test_a_file_size_limit_mid_download_keeps_the_part_for_the_rerun(sandbox, cat, isolated, limit):
    import resource

    assert len(SAMPLE) > limit
    task_id = run("create", str(cat), "-q", sb=sandbox).stdout.strip()
    assert run("wait", task_id, "-q", *FAST, sb=sandbox).returncode == 0

    def limited() -> None:  # EFBIG past 64 KiB, as a full quota would stop the writes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = run("download", task_id, "-o", "v.mp4", sb=sandbox, preexec_fn=limited)
    assert p.returncode == 8 and f"v.mp4.part keeps the {limit:,} bytes already downloaded" in p.stderr, p.stderr
    assert "no space left on the device" in p.stderr and "free some space" in p.stderr  # EFBIG reads as ENOSPC
    part = isolated / "v.mp4.part"
    assert part.read_bytes() == SAMPLE[:limit]
    assert run("download", task_id, "-o", "v.mp4", sb=sandbox).returncode == 0
    assert (isolated / "v.mp4").read_bytes() == SAMPLE


def test_a_read_only_output_dir_is_refused_before_paying(gw, cat, isolated, monkeypatch):
    out = isolated / "ro"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the kernel's answer the one a user would get
        real = os.access
        monkeypatch.setattr("wanvid.gateway.download.os.access", lambda p, m: False if Path(p) == out else real(p, m))
    else:
        out.chmod(0o555)
    r = wv("run", str(cat), "-o", str(out / "v.mp4"), *FAST)
    assert r.exit_code == 8 and f"output directory {out} is not writable" in r.stderr and "pick another -o" in r.stderr
    assert creates(gw) == 0


def test_a_dir_that_turns_read_only_after_paying_keeps_the_task(gw, cat, isolated, monkeypatch):
    real_open = os.open

    def refuse(path, flags, mode=0o777, **kw):
        if str(path).endswith(".part"):
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr("wanvid.gateway.download.os.open", refuse)
    r = wv("run", str(cat), *FAST)
    assert r.exit_code == 8 and "Read-only file system" in r.stderr
    task_id = Journal().recent()[0].id
    assert f"task {task_id} is safe; resume with: wanvid download {task_id}" in r.stderr
    monkeypatch.setattr("wanvid.gateway.download.os.open", real_open)
    assert wv("download").exit_code == 0 and (isolated / "cat.mp4").read_bytes() == SAMPLE


# -- retries and hostile answers ------------------------------------------------------------------


def test_429_5xx_and_dropped_connections_are_survived_within_the_budget(gw, cat, isolated):
    gw.faults.retry_after = 0.1
    gw.faults.throttle = 2
    task_id = wv("create", str(cat), "-q").stdout.strip()
    gw.faults.server_errors = 2
    gw.faults.drop_connections = 2
    assert wv("wait", task_id, "-q", *FAST).exit_code == 0
    gw.faults.drop_connections = 2
    assert wv("download", task_id, "-o", "v.mp4").exit_code == 0
    assert (isolated / "v.mp4").read_bytes() == SAMPLE


@pytest.mark.parametrize("fault", ["server_errors", "drop_connections", "throttle"])
def test_a_spent_retry_budget_is_exit_6_naming_the_task(gw, cat, fault):
    task_id = wv("create", str(cat), "-q").stdout.strip()
    gw.faults.retry_after = 0.05
    setattr(gw.faults, fault, 50)
    r = wv("wait", task_id, *FAST, env={"WANVID_MAX_RETRIES": "2"})
    assert r.exit_code == 6 and f"task {task_id} is safe; resume with: wanvid wait {task_id}" in r.stderr


@pytest.mark.parametrize("kind", ["html", "truncated", "empty", "not_object", "wrong_types", "missing", "huge"])
def test_malformed_answers_are_one_line_errors_with_the_request_id(gw, cat, kind):
    task_id = wv("create", str(cat), "-q").stdout.strip()
    gw.faults.malformed, gw.faults.malformed_count = kind, 50
    r = wv("status", task_id, env={"WANVID_MAX_RETRIES": "1"})
    last = r.stderr.splitlines()[-1]
    # a web page every time is what new-api answers a route it does not have: a wrong base URL (exit 2)
    assert (
        r.exit_code == (2 if kind == "html" else 6) and last.startswith("error: the gateway") and "(request id " in last
    ), r.stderr
    assert wv("status", task_id, "-q", env={"WANVID_MAX_RETRIES": "0"}).stderr.count("\n") == 1
    gw.faults.malformed_count = 1  # one bad answer in the middle of a wait is shrugged off
    assert wv("wait", task_id, "-q", *FAST).exit_code == 0


def test_a_malformed_create_answer_is_exit_6(gw, cat):
    gw.faults.malformed, gw.faults.malformed_count = "wrong_types", 1
    r = wv("create", str(cat), "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 6 and doc["error"]["exit_code"] == 6 and doc["error"]["request_id"]


def test_a_file_changed_after_checking_is_never_sent_half(gw, cat, isolated):
    v = validate(VideoRequest("wan2.7-i2v", str(cat), prompt="x"), "native")
    Image.new("RGB", (832, 480), "red").save(cat)  # changed after the checks, before the upload
    with pytest.raises(UsageError, match="changed while it was being sent; nothing was created"):
        submit(Client(gw.url, TEST_KEY), v)
    assert wv("list", "-q").stdout == "" and gw._tasks == {}


# -- secrets --------------------------------------------------------------------------------------


def test_the_key_is_never_sent_over_plain_http_to_another_host(monkeypatch, cat):
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
    r = wv("status", "t1", "--base-url", "http://gateway.example")
    assert r.exit_code == 2 and "refusing to send the API key over plain http to gateway.example" in r.stderr
    assert "--allow-insecure" in r.stderr
    r = wv("status", "t1", "--base-url", "http://127.0.0.1:9", "--allow-insecure", env={"WANVID_MAX_RETRIES": "0"})
    assert r.exit_code == 6 and "plain http" not in r.stderr  # loopback needs no override
    r = wv("status", "t1", "--base-url", "http://gateway.invalid", "--allow-insecure", env={"WANVID_MAX_RETRIES": "0"})
    assert r.exit_code == 6 and "warning: sending the API key over plain http to gateway.invalid" in r.stderr


def test_debug_logs_http_with_the_key_redacted(gw, cat):
    task_id = wv("create", str(cat), "-q").stdout.strip()
    r = wv("status", task_id, "--debug")
    assert f"debug: > GET {gw.url}/aliyun/v1/tasks/{task_id}" in r.stderr
    assert "debug: > Authorization: Bearer ****" in r.stderr and "debug: < HTTP 200" in r.stderr


def test_a_scan_of_every_output_and_file_finds_no_key(sandbox, cat, isolated):
    outputs = []
    for args in (
        ["create", str(cat), "--dry-run"],
        ["run", str(cat), "-p", "walk", *FAST, "--debug"],
        ["run", str(cat), "-p", "walk", "-o", "b.mp4", "--json", *FAST],
        ["status", "--debug"],
        ["status", "--json"],
        ["list", "--json"],
        ["download", "-o", "c.mp4", "--debug"],
        ["wait", "no-such-task", "--timeout", "0.1"],
        ["config", "show"],
        ["status", "x", "--base-url", "http://gateway.example"],
    ):
        p = run(*args, sb=sandbox)
        outputs.append(p.stdout + p.stderr)
    sandbox.faults.cut_download_after, sandbox.faults.cut_downloads = 5000, 1
    p = run("download", "-o", "d.mp4", sb=sandbox, env={"WANVID_MAX_RETRIES": "0"})
    outputs.append(p.stdout + p.stderr)
    assert (isolated / "d.mp4.part").exists() and (isolated / "b.mp4.json").exists()
    key = TEST_KEY.encode()
    assert not [o for o in outputs if TEST_KEY in o]
    files = [f for f in isolated.rglob("*") if f.is_file()]
    assert journal_path() in files and len(files) > 5
    assert [f for f in files if key in f.read_bytes()] == []
    rows = sqlite3.connect(journal_path()).execute("SELECT * FROM tasks").fetchall()
    assert rows and TEST_KEY not in repr(rows)


# -- polling from the journal's history -----------------------------------------------------------


def test_the_eta_comes_from_similar_tasks_in_the_journal(gw, cat):
    first = wv("run", str(cat), "-o", "a.mp4", "--duration", "5", *FAST)
    assert "no finished task like this one in the journal yet" in first.stderr
    wv("run", str(cat), "-o", "b.mp4", "--duration", "5", "--new", *FAST)
    third = wv("run", str(cat), "-o", "c.mp4", "--duration", "5", "--new", *FAST)
    assert "(the median of 2 similar task(s))" in third.stderr
    other = wv("run", str(cat), "-o", "d.mp4", "--duration", "10", *FAST)  # another duration: no history
    assert "no finished task like this one" in other.stderr


def test_task_ids_with_path_parts_make_safe_file_names():
    from wanvid.gateway.download import default_name

    assert default_name("../../etc/passwd") == "etc_passwd.mp4"
    assert default_name("a/b\\c") == "a_b_c.mp4" and default_name("..") == "video.mp4"


def test_the_sandbox_takes_any_fault_as_a_flag(tmp_path):
    proc = start("sandbox", "--port", "0", "--fault", "content_errors=2", "--fault", "malformed=html")
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        faults = requests.get(f"{url}/_sandbox/faults", timeout=5).json()
        assert faults["content_errors"] == 2 and faults["malformed"] == "html"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    bad = run("sandbox", "--port", "0", "--fault", "nope=1")
    assert bad.returncode == 2 and "Unknown fault 'nope'" in bad.stderr and bad.stdout == ""


# -- what the independent review found ----------------------------------------------------------


def test_a_paid_task_is_named_when_waiting_fails_any_way(gw, cat, isolated):
    def break_answers_once_polling() -> None:  # after the create's answer: the task is paid for
        wait_until(lambda: queries(gw), "the first status query")
        gw.faults.malformed = "wrong_types"

    threading.Thread(target=break_answers_once_polling, daemon=True).start()
    gw.faults.malformed_count = 500
    requests.post(f"{gw.url}/_sandbox/timing", json={"queue_seconds": 1.0}, timeout=5)  # pending while it lands
    r = wv("run", str(cat), "--json", *FAST, env={"WANVID_MAX_RETRIES": "1"})
    doc = json.loads(r.stdout)
    task_id = Journal().recent()[0].id
    assert r.exit_code == 6 and doc["error"]["task_id"] == task_id
    assert f"task {task_id} is safe; resume with: wanvid wait {task_id}" in r.stderr


def test_a_complete_part_left_before_the_rename_is_finished_without_asking_again(gw, cat, isolated):
    task_id = finished_task(gw, cat)
    part = isolated / "v.mp4.part"
    part.write_bytes(SAMPLE)
    Journal().save_part(part, Part(task_id, "x", None, len(SAMPLE)))
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 0 and (isolated / "v.mp4").read_bytes() == SAMPLE
    assert ranges(gw, task_id) == []  # nothing fetched: the bytes were all there


def test_a_part_the_server_cannot_continue_is_started_over(gw, cat, isolated):
    task_id = finished_task(gw, cat)
    part = isolated / "v.mp4.part"
    part.write_bytes(SAMPLE + b"\0" * 10)  # longer than the video, and no total on record
    Journal().save_part(part, Part(task_id, "x", None, None))
    r = wv("download", task_id, "-o", "v.mp4")
    assert r.exit_code == 0 and "starting over" in r.stderr
    assert (isolated / "v.mp4").read_bytes() == SAMPLE


def test_a_task_the_gateway_dropped_is_not_reused(gw, cat):
    first = wv("create", str(cat), "-q", "--protocol", "unified", "-p", "a cat").stdout.strip()
    gw.faults.expire = True
    r = wv("status", first)
    assert r.exit_code == 5 and "--new" in r.stderr
    assert Journal().get(gw.url, first).status == "NOT_FOUND"  # type: ignore[union-attr]
    gw.faults.expire = False
    second = wv("create", str(cat), "-q", "--protocol", "unified", "-p", "a cat").stdout.strip()
    assert second != first


def test_reuse_never_crosses_profiles(gw, cat):
    mine = wv("create", str(cat), "-q").stdout.strip()
    theirs = wv("create", str(cat), "-q", "--profile", "work").stdout.strip()
    assert mine != theirs and creates(gw) == 2


def test_timeout_bounds_a_request_that_hangs(cat, monkeypatch):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)  # accepts connections, never answers
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
    try:
        started = time.monotonic()
        r = wv("wait", "t1", "--timeout", "1", "--base-url", f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert r.exit_code == 124 and time.monotonic() - started < 5
    finally:
        silent.close()


def test_a_dropped_create_answer_says_the_task_may_exist(gw, cat):
    gw.faults.drop_connections = 1
    r = wv("create", str(cat))
    assert r.exit_code == 6 and "broke after the request was sent" in r.stderr and "console" in r.stderr


def test_a_create_answer_with_an_id_but_no_status_still_gives_the_id(gw, cat):
    gw.faults.malformed, gw.faults.malformed_count = "missing", 1
    r = wv("create", str(cat), "--json")
    assert r.exit_code == 6 and "may have created the task" in r.stderr  # no id in a "missing" answer


def test_the_wait_all_resume_command_leaves_each_tasks_protocol_to_the_journal(slow_gw, cat):
    wv("create", str(cat), "-q", "--protocol", "unified", "-p", "a cat")
    r = wv("wait", "--all", "--timeout", "0.2", *FAST)
    assert r.exit_code == 124 and f"resume with: wanvid wait --all --base-url {slow_gw.url}" not in r.stderr
    assert "resume with: wanvid wait --all" in r.stderr and "--protocol" not in r.stderr.split("resume with:")[1]


def test_the_eta_uses_the_gateways_own_times_not_when_we_looked(gw, cat):
    ids = [wv("create", str(cat), "-q", "-p", "same").stdout.strip()]
    ids.append(wv("create", str(cat), "-q", "-p", "same", "--new").stdout.strip())
    # Look only long after they finished: the time we looked would make the estimate 2 s or more
    ends = max(t["ends_at"] for t in gw.tasks())
    wait_until(lambda: time.time() > ends + 1.5, "the tasks to have finished long ago")
    for task_id in ids:
        assert wv("status", task_id).exit_code == 0
    r = wv("run", str(cat), "-p", "same", "--new", "-o", "x.mp4", *FAST)
    assert "expected to take about 1s (the median of 2" in r.stderr


@pytest.mark.parametrize("flag", ["--timeout", "--poll-interval"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_non_finite_wait_options_are_refused(gw, cat, flag, value):
    r = wv("run", str(cat), flag, value)
    assert r.exit_code == 2 and flag in r.stderr and creates(gw) == 0


def test_server_text_cannot_drive_the_terminal(gw, cat):
    gw.faults.fail_code, gw.faults.fail_message = "Bad", "evil \x1b]0;pwned\x07 \x1b[2J text"
    r = wv("run", str(cat), *FAST)
    assert r.exit_code == 3 and "\x1b" not in r.stderr and "evil ?]0;pwned? ?[2J text" in r.stderr
