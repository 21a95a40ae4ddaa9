"""Never paying twice when processes race, and never losing a paid task to a signal.

Real processes on one journal against one sandbox, real signals. The sandbox's create is wrapped so a
test can hold its answer after the task is made (paid for) upstream: the window where a stop used to lose
the task, and where two identical requests used to both pay.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from wanvid.sandbox import Sandbox, sample_mp4
from wanvid.store.journal import Journal, journal_path

from ..helpers import (
    FAST,
    TEST_KEY,
    creates,
    finish,
    gateway_env,
    queries,
    run,
    signal_delivered,
    start,
    wait_until,
    wv,
)

SAMPLE = sample_mp4()


class HeldCreates:
    """Wraps the sandbox's task creation: ``made`` is set once a task exists upstream; its answer waits for
    ``release`` (or for ``delay`` seconds: a slow gateway, which is what lets identical requests overlap)."""

    def __init__(self, sb: Sandbox, monkeypatch: pytest.MonkeyPatch, delay: float | None = None) -> None:
        self.made = threading.Event()
        self.release = threading.Event()
        original = sb._create

        def create(new, protocol):  # type: ignore[no-untyped-def]
            task = original(new, protocol)
            self.made.set()
            self.release.wait(30 if delay is None else delay)
            return task

        monkeypatch.setattr(sb, "_create", create)


def files_under(limit: int):  # type: ignore[no-untyped-def]
    """A child's preexec_fn: no file grows past ``limit`` bytes (EFBIG from write(), as a full disk or quota
    gives ENOSPC/EDQUOT; SIGXFSZ ignored so that the write fails instead of the process dying)."""
    import resource

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limited


# -- signals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_while_the_create_is_in_flight_keeps_the_task_and_names_it(
    sandbox, cat, isolated, monkeypatch, sig
):
    held = HeldCreates(sandbox, monkeypatch)
    proc = start("run", str(cat), "-p", "walk", "-q", sb=sandbox)
    assert held.made.wait(30)  # the gateway made (and charged for) the task; its answer has not gone out
    proc.send_signal(sig)
    # the signal must land while the answer is still held (a deferred signal is the point)
    wait_until(lambda: signal_delivered(proc, sig), "the signal to reach the process")
    held.release.set()
    code, out, err = finish(proc)
    rows = Journal().recent()
    assert len(rows) == 1 and creates(sandbox) == 1, err  # journaled, although the process was told to stop
    task_id = rows[0].id
    assert code == 128 + sig, err
    assert f"created task {task_id}" in err
    resume = f"wanvid wait {task_id} && wanvid download {task_id}"
    assert f"note: stopped right after creating task {task_id}; resume with: {resume}" in err
    assert out == ""
    # and the resume command it printed finishes the job without paying again
    assert wv("wait", task_id, *FAST, env=gateway_env(sandbox)).exit_code == 0
    assert wv("download", task_id, env=gateway_env(sandbox)).exit_code == 0
    assert (isolated / "cat.mp4").read_bytes() == SAMPLE and creates(sandbox) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_while_waiting_exits_128_plus_it_and_keeps_the_task(slow, cat, isolated, sig):
    proc = start("run", str(cat), "--json", sb=slow)
    wait_until(lambda: queries(slow), "the first status query")
    proc.send_signal(sig)
    code, out, err = finish(proc, timeout=20)
    task_id = Journal().recent()[0].id
    assert (
        code == 128 + sig
        and f"note: stopped waiting; task {task_id} keeps running; resume with: wanvid wait {task_id}" in err
    )
    doc = __import__("json").loads(out)
    assert doc["error"]["exit_code"] == 128 + sig and doc["error"]["task_id"] == task_id
    assert [e.status for e in Journal().recent()] == ["PENDING"]


def test_a_batch_stopped_by_sigterm_exits_143_and_keeps_its_tasks(slow, cat, isolated):
    (isolated / "m.csv").write_text(f"image,prompt\n{cat},one\n{cat},two\n")
    proc = start("batch", "m.csv", "-j", "2", "--name", "{row}.mp4", sb=slow)
    wait_until(lambda: queries(slow) >= 2, "both rows' first status queries")
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=30)
    assert code == 143, err
    assert len(Journal().recent()) == 2 and creates(slow) == 2


# -- racing ----------------------------------------------------------------------------------------


def test_identical_runs_started_together_pay_once_and_all_exit_0_with_the_one_video(
    sandbox, cat, isolated, monkeypatch
):
    HeldCreates(sandbox, monkeypatch, delay=0.5)  # a slow create answer: the runs overlap in the window
    procs = [start("run", str(cat), "-p", "same", "-o", "out.mp4", *FAST, sb=sandbox) for _ in range(3)]
    results = [finish(p) for p in procs]
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    assert creates(sandbox) == 1
    assert all(out == f"{isolated / 'out.mp4'}\n" for _, out, _ in results)
    assert (isolated / "out.mp4").read_bytes() == SAMPLE
    assert sum("reusing task" in err for _, _, err in results) == 2
    assert not list(isolated.glob("*.part"))


def test_two_batches_of_one_manifest_started_together_pay_once_per_row(sandbox, cat, isolated, monkeypatch):
    HeldCreates(sandbox, monkeypatch, delay=0.3)
    (isolated / "m.csv").write_text("image,prompt\n" + "".join(f"{cat},shot {n}\n" for n in range(3)))
    a = start("batch", "m.csv", "-d", "a", "--name", "{row}.mp4", *FAST, sb=sandbox)
    b = start("batch", "m.csv", "-d", "b", "--name", "{row}.mp4", *FAST, sb=sandbox)
    for proc in (a, b):
        code, _, err = finish(proc)
        assert code == 0, err
    assert creates(sandbox) == 3
    names = [sorted(p.name for p in (isolated / d).glob("*.mp4")) for d in ("a", "b")]
    assert names[0] == names[1] == ["1.mp4", "2.mp4", "3.mp4"]


def test_a_claim_left_by_a_dead_process_is_taken_over_with_a_warning(gw, cat, isolated):
    """A wanvid killed while its create was in flight leaves its claim: the next run does not wait for it
    forever (its pid no longer runs) and says the gateway may hold a task the journal never heard of."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # The killed process's request: its create reached the gateway, its answer never reached the journal.
    assert wv("create", str(cat), "-p", "walk").exit_code == 0
    with sqlite3.connect(journal_path()) as db:
        (fingerprint,) = db.execute("SELECT request_hash FROM tasks").fetchone()
        db.execute("DELETE FROM tasks")
        db.execute(
            "INSERT INTO claims VALUES (?, ?, 'default', ?, ?, 'old-token', ?)",
            (fingerprint, gw.url, dead.pid, socket.gethostname(), time.time() - 5),
        )
    r = wv("run", str(cat), "-p", "walk", *FAST)
    assert r.exit_code == 0, r.stderr
    assert f"pid {dead.pid}" in r.stderr and "not in the journal" in r.stderr
    assert creates(gw) == 2
    with sqlite3.connect(journal_path()) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


def test_a_refused_create_releases_its_claim_so_the_next_one_is_not_kept_waiting(gw, cat, isolated):
    gw.faults.server_errors, gw.faults.server_error_status = 1, 400  # the create is refused
    first = wv("run", str(cat), "-p", "walk", *FAST)
    assert first.exit_code == 2, first.stderr
    with sqlite3.connect(journal_path()) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    again = wv("run", str(cat), "-p", "walk", *FAST)  # would wait for the claim if it were left behind
    assert again.exit_code == 0 and "waiting" not in again.stderr and creates(gw) == 2


def test_a_schema_1_journal_is_upgraded_in_place_keeping_its_rows(isolated: Path) -> None:
    path = journal_path()
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE tasks (id TEXT NOT NULL, base_url TEXT NOT NULL, protocol TEXT NOT NULL, profile TEXT NOT NULL,
          model TEXT, request TEXT, request_hash TEXT, resolution TEXT, duration INTEGER, created_at REAL NOT NULL,
          updated_at REAL NOT NULL, status TEXT NOT NULL, error_code TEXT, error_message TEXT, request_id TEXT,
          video_url TEXT, expires_at REAL, ended_at REAL, took REAL, output_path TEXT, output_bytes INTEGER,
          downloaded_at REAL, PRIMARY KEY (base_url, id));
        CREATE TABLE parts (path TEXT PRIMARY KEY, task_id TEXT NOT NULL, source TEXT NOT NULL, etag TEXT,
          total INTEGER, updated_at REAL NOT NULL);
        CREATE TABLE outputs (path TEXT PRIMARY KEY, task_id TEXT NOT NULL, base_url TEXT NOT NULL,
          request_hash TEXT, bytes INTEGER NOT NULL, saved_at REAL NOT NULL);
        INSERT INTO tasks (id, base_url, protocol, profile, created_at, updated_at, status)
          VALUES ('t-1', 'http://gw', 'native', 'default', 1, 1, 'SUCCEEDED');
        INSERT INTO parts VALUES ('/x.mp4.part', 't-1', 'http://gw/c', NULL, 10, 1);
        PRAGMA user_version=1;
        """
    )
    db.close()
    j = Journal()
    assert j.get("http://gw", "t-1") is not None
    part = j.part(Path("/x.mp4.part"))
    assert part is not None and part.total == 10 and part.size is None
    assert wv("list", "--all").stdout.count("t-1") == 1


# -- crashes: SIGKILL at each point of a run, then the same command again ---------------------------


def _kill_when(proc: subprocess.Popen[str], check: Callable[[], bool], what: str) -> None:
    wait_until(check, what)
    proc.kill()  # SIGKILL: no handler runs, nothing is tidied up
    proc.communicate(timeout=10)


@pytest.mark.parametrize("point", ["first poll in flight", "while running", "mid-download"])
def test_a_run_killed_at_any_point_is_finished_by_running_it_again_without_paying_twice(
    sandbox, cat, isolated, monkeypatch, point
):
    handler = sandbox._server.RequestHandlerClass
    original = handler._native_query
    polls = threading.Event()
    answered: list[str] = []

    def query(self, task_id):  # type: ignore[no-untyped-def]
        polls.set()  # the first poll is in flight: the kill lands before its answer is read
        original(self, task_id)
        answered.append(task_id)

    monkeypatch.setattr(handler, "_native_query", query)
    args = ("run", str(cat), "-p", "walk", "-o", "out.mp4", *FAST)
    if point == "while running":  # long enough for a few polls to be answered before the kill
        requests.post(f"{sandbox.url}/_sandbox/timing", json={"queue_seconds": 0.5, "run_seconds": 1.5}, timeout=5)
    if point == "mid-download":
        sandbox.faults.slow_download_bps = 40_000
    proc = start(*args, sb=sandbox)
    part = isolated / "out.mp4.part"
    if point == "mid-download":
        _kill_when(proc, lambda: part.exists() and part.stat().st_size >= 20_000, "20 kB in the .part")
        sandbox.faults.slow_download_bps = None
    elif point == "while running":
        _kill_when(proc, lambda: len(answered) >= 3, "three answered polls")
    else:
        _kill_when(proc, polls.is_set, "the first poll")
    assert len(Journal().recent()) == 1  # the paid task outlived the kill
    code, out, err = finish(start(*args, sb=sandbox))
    assert code == 0, err
    assert out == f"{isolated / 'out.mp4'}\n" and (isolated / "out.mp4").read_bytes() == SAMPLE
    assert creates(sandbox) == 1 and "reusing task" in err
    if point == "mid-download":
        assert "resuming out.mp4.part" in err


def test_a_full_disk_under_the_journal_is_named_as_such_not_as_permissions(sandbox, cat, isolated):
    """The journal cannot grow (a file size limit stands in for a full disk or quota): exit 8 saying the
    disk may be full, not that the directory should be made writable."""
    assert wv("list", env=gateway_env(sandbox)).exit_code == 0  # the journal exists; its first write-ahead page
    proc = run("create", str(cat), "-p", "walk", sb=sandbox, preexec_fn=files_under(4096))  # will not fit under this
    assert proc.returncode == 8, proc.stderr
    assert "full" in proc.stderr and "free some space" in proc.stderr and "writable" not in proc.stderr


def test_runs_killed_at_staggered_moments_then_rerun_lose_nothing_and_announce_any_second_payment(
    sandbox, cat, isolated
):
    """SIGKILL wherever it lands (creating, polling, downloading, placing), six times over, then the same
    command once more: the video arrives whole, and a task is paid for again only where a killed process
    never journaled the gateway's answer, which the next run says out loud."""
    sandbox.faults.slow_download_bps = 60_000  # so that some kills land mid-download
    args = ("run", str(cat), "-p", "walk", "-o", "out.mp4", *FAST)
    warned = kills = 0
    for delay in (0.15, 0.35, 0.6, 0.9, 1.2, 1.6):
        proc = start(*args, sb=sandbox)
        try:
            proc.wait(delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            kills += 1
        _, err = proc.communicate(timeout=10)
        warned += "not in the journal" in err
        if (isolated / "out.mp4").exists():
            break
    assert kills >= 3  # the point of the test: several processes died mid-job
    code, out, err = finish(start(*args, sb=sandbox))
    warned += "not in the journal" in err
    assert code == 0, err
    assert out == f"{isolated / 'out.mp4'}\n" and (isolated / "out.mp4").read_bytes() == SAMPLE
    assert creates(sandbox) <= 1 + warned
    assert not list(isolated.glob("*.part"))


# -- the review's cases: waits that must end, handlers that must be left as found -------------------------


def test_a_signal_during_a_throttled_creates_retry_wait_ends_it_at_once_and_pays_nothing(sandbox, cat, isolated):
    """Only the create request itself is held against signals: a retry's wait (after a 429, which made
    nothing) ends as soon as a signal comes, instead of sitting out a 20 s Retry-After."""
    sandbox.faults.throttle, sandbox.faults.retry_after = 3, 20
    proc = start("run", str(cat), "-p", "walk", sb=sandbox)
    wait_until(lambda: creates(sandbox), "the first (throttled) create")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=30)
    assert code == 143, err
    assert time.monotonic() - started < 15  # a hang bound (the Retry-After was 20 s), not a speed target
    assert Journal().recent() == []  # nothing to keep: every create was answered 429
    with sqlite3.connect(journal_path()) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0  # released: nothing was made


def test_sighup_under_nohup_is_ignored_as_nohup_asks(slow, cat, isolated):
    def nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = start("run", str(cat), sb=slow, preexec_fn=nohup)
    wait_until(lambda: queries(slow), "the first status query")
    proc.send_signal(signal.SIGHUP)
    seen = queries(slow)
    wait_until(lambda: queries(slow) > seen, "a poll after the hangup")  # it polls on: it is alive
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=20)
    assert code == 143, err


def test_the_journal_failing_after_a_paid_create_names_the_task(sandbox, cat, isolated):
    """The claim fits under the file size limit, the task's row (a long prompt) does not: the create is
    paid, the journal cannot keep it, and the error names the task instead of losing it."""
    assert wv("list", env=gateway_env(sandbox)).exit_code == 0
    proc = run("create", str(cat), "-p", "a cat walks " * 400, sb=sandbox, preexec_fn=files_under(12_000))
    assert proc.returncode == 8, proc.stderr
    assert creates(sandbox) == 1
    named = re.search(r"task (\S+) is safe; resume with: wanvid wait \1", proc.stderr)
    assert named, proc.stderr
    assert wv("status", named.group(1), env=gateway_env(sandbox)).exit_code == 0  # the id named is the paid task


def test_an_in_process_command_leaves_every_signal_handler_as_it_found_it(slow, cat, isolated, monkeypatch):
    """A library caller's (or a test runner's) handlers survive a command that was interrupted: wanvid's
    tidy-up resets SIGINT to exit at once on a second Ctrl-C, and must put it back afterwards."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    monkeypatch.setenv("WANVID_BASE_URL", slow.url)
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)

    def interrupt_once_polling() -> None:
        wait_until(lambda: queries(slow), "the first status query")
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C to this process, while the command waits

    thread = threading.Thread(target=interrupt_once_polling)
    thread.start()
    r = wv("run", str(cat), "-p", "walk")
    thread.join()
    assert r.exit_code == 130 and "keeps running; resume with: wanvid wait" in r.stderr
    assert {sig: signal.getsignal(sig) for sig in before} == before
