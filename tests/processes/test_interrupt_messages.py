"""What an interrupt or a timeout says: once a task exists, the task (its id said once) and the command that goes
on, as a note, not an error (the task is fine; only this process stopped). Exit codes stay 130/143/129 and 124.

Real processes, real signals, each sent only after a readiness signal: the sandbox logged the first status
query (or the create), or the process wrote the line that comes right before the moment tested.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from wanvid.sandbox import Sandbox
from wanvid.store.journal import Journal

from ..helpers import FAST, checked, creates, finish, queries, run, start, wait_until

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def the_note(err: str, task_id: str, resume: str) -> str:
    """The one line about the stop: a note naming the task once, then the command that goes on (``resume``,
    which run and download follow with the output they were given, ``-o PATH``)."""
    assert "error:" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("note: ")]
    said, _, rest = line.partition("; resume with: ")
    assert said.count(task_id) == 1, line
    assert rest == resume or rest.startswith(resume + " -o "), line
    return line


class Lines:
    """A started process's stderr, line by line as it comes (its stdout is read at the end)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.lines = proc, []
        assert proc.stderr is not None
        self.thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        assert self.proc.stdout is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler (process_env) prints every thread's stack
            self.proc.wait(30)
            self.thread.join(10)
            raise AssertionError(f"still running after {timeout} s; stderr:\n{''.join(self.lines)}") from None
        out = self.proc.stdout.read()
        self.thread.join(10)
        err = "".join(self.lines)
        checked(out, err)
        return code, out, err


def created(slow: Sandbox, cat: Path, prompt: str = "walk") -> str:
    made = run("create", str(cat), "-p", prompt, "-q", sb=slow)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.mark.parametrize("sig", SIGNALS)
def test_wait_with_an_id_names_it_once_and_how_to_go_on(slow: Sandbox, cat: Path, isolated: Path, sig: int) -> None:
    task_id = created(slow, cat)
    proc = start("wait", task_id, *FAST, sb=slow)
    wait_until(lambda: queries(slow), "the first status query")
    proc.send_signal(sig)
    code, out, err = finish(proc, timeout=20)
    assert code == 128 + sig and out == "", err
    line = the_note(err, task_id, f"wanvid wait {task_id}")
    assert line == f"note: stopped waiting; task {task_id} keeps running; resume with: wanvid wait {task_id}"


def test_wait_for_the_journals_latest_names_it_from_its_first_moments(slow: Sandbox, cat: Path, isolated: Path) -> None:
    """The line naming the journal's task comes right before the wait begins: a Ctrl-C then names the task."""
    task_id = created(slow, cat)
    before = queries(slow)
    proc = start("wait", *FAST, sb=slow)
    lines = Lines(proc)
    wait_until(lambda: lines.has(f"task {task_id} (the most recent"), "the line naming the journal's task")
    proc.send_signal(signal.SIGINT)
    code, out, err = lines.finish()
    assert code == 130 and out == "", err
    the_note(err, task_id, f"wanvid wait {task_id}")
    assert queries(slow) - before <= 1


def test_wait_with_json_keeps_its_error_document(slow: Sandbox, cat: Path, isolated: Path) -> None:
    task_id = created(slow, cat)
    proc = start("wait", task_id, "--json", *FAST, sb=slow)
    wait_until(lambda: queries(slow), "the first status query")
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc, timeout=20)
    doc = json.loads(out)  # docs/json.md: the error document, as before
    assert code == 143 and doc["error"]["exit_code"] == 143 and doc["error"]["task_id"] == task_id
    assert doc["error"]["hint"] == f"task {task_id} is safe; resume with: wanvid wait {task_id}"
    the_note(err, task_id, f"wanvid wait {task_id}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_run_names_its_task_once_and_how_to_finish(slow: Sandbox, cat: Path, isolated: Path, sig: int) -> None:
    proc = start("run", str(cat), "-p", "walk", *FAST, sb=slow)
    wait_until(lambda: queries(slow), "the first status query")
    proc.send_signal(sig)
    code, out, err = finish(proc, timeout=20)
    task_id = Journal().recent()[0].id
    assert code == 128 + sig and out == "", err
    assert f"created task {task_id}" in err
    the_note(err, task_id, f"wanvid wait {task_id} && wanvid download {task_id}")


def test_timeouts_are_notes_naming_the_task(slow: Sandbox, cat: Path, isolated: Path) -> None:
    task_id = created(slow, cat)
    waited = run("wait", task_id, "--timeout", "0.3", *FAST, sb=slow)
    assert waited.returncode == 124, waited.stderr
    the_note(waited.stderr, task_id, f"wanvid wait {task_id}")
    waited = run("wait", task_id, "--timeout", "1.5", *FAST, sb=slow)  # the gateway answered: no network cause
    assert waited.returncode == 124 and "no answer" not in waited.stderr, waited.stderr
    assert f"task {task_id} is still PENDING after" in the_note(waited.stderr, task_id, f"wanvid wait {task_id}")
    ran = run("run", str(cat), "-p", "other", "--timeout", "0.3", *FAST, sb=slow)
    assert ran.returncode == 124, ran.stderr
    other = Journal().recent()[0].id
    the_note(ran.stderr, other, f"wanvid wait {other} && wanvid download {other}")


def test_ctrl_c_in_creates_retry_wait_says_no_task_was_made(sandbox: Sandbox, cat: Path, isolated: Path) -> None:
    sandbox.faults.throttle, sandbox.faults.retry_after = 100, 30  # a 429 with Retry-After: 30
    proc = start("create", str(cat), "-p", "walk", sb=sandbox)
    lines = Lines(proc)
    wait_until(lambda: lines.has("retrying POST"), "the create's retry wait")
    proc.send_signal(signal.SIGINT)
    code, out, err = lines.finish()
    assert code == 130 and out == "", err
    assert "error:" not in err and "Traceback" not in err
    assert err.splitlines()[-1] == "note: interrupted before any task was created"
    assert creates(sandbox) == 1 and sandbox.tasks() == [] and Journal().recent() == []


def test_an_interrupt_before_the_first_query_of_wait_id_names_the_task(
    slow_gw: Sandbox, cat: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C in the first moments of ``wait ID``, before any query: a real SIGINT, sent by the process to
    itself at the moment it builds its client (no readiness signal can time it from outside)."""
    import os

    from wanvid.cli.context import Ctx

    from ..helpers import wv

    task_id = created(slow_gw, cat)
    before, own = queries(slow_gw), Ctx.client

    def interrupted_now(self: Ctx):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGINT)
        return own(self)

    monkeypatch.setattr(Ctx, "client", interrupted_now)
    r = wv("wait", task_id, *FAST)
    assert r.exit_code == 130 and r.stdout == "", r.stderr
    line = the_note(r.stderr, task_id, f"wanvid wait {task_id}")
    assert line == f"note: stopped waiting; task {task_id} keeps running; resume with: wanvid wait {task_id}"
    assert queries(slow_gw) == before
    two = [task_id, created(slow_gw, cat, "run")]
    r = wv("wait", *two, *FAST)
    assert r.exit_code == 130, r.stderr
    assert r.stderr.splitlines()[-1] == (
        f"note: stopped waiting; tasks {', '.join(two)} keep running; resume with: wanvid wait {' '.join(two)}"
    )


def test_wait_for_several_names_every_task_still_running_on_ctrl_c_and_timeout(
    slow: Sandbox, cat: Path, isolated: Path
) -> None:
    ids = [created(slow, cat), created(slow, cat, "run")]
    proc = start("wait", *ids, *FAST, sb=slow)
    wait_until(lambda: queries(slow), "the first status query")
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, timeout=20)
    assert code == 130 and out == "" and "error:" not in err, err
    assert err.splitlines()[-1] == (
        f"note: stopped waiting; tasks {', '.join(ids)} keep running; resume with: wanvid wait {' '.join(ids)}"
    )
    waited = run("wait", *ids, "--timeout", "0.3", *FAST, sb=slow)
    assert waited.returncode == 124 and "error:" not in waited.stderr and "warning:" not in waited.stderr
    assert waited.stderr.splitlines()[-1] == (
        f"note: gave up waiting at --timeout; tasks {', '.join(ids)} keep running; "
        f"resume with: wanvid wait {' '.join(ids)}"
    )
    assert [line.split()[0] for line in waited.stdout.splitlines()] == ids  # a line for each, as it stands
