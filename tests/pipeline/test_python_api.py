"""The Python API as a user meets it: docs/python.md's examples run as scripts against a real sandbox, and
``wanvid.Wanvid`` keeps the CLI's guarantees (one journal, reuse, typed errors with exit codes).

Each example is run by a fresh Python process in a directory holding ``cat.png``, with the sandbox's URL and
a key in the environment, as a reader would run it after ``wanvid sandbox``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wanvid
from wanvid.sandbox import Sandbox

from ..helpers import TEST_KEY

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "python.md"
CAT = ROOT / "examples" / "cat.png"


def blocks() -> list[tuple[str, str]]:
    """(heading, code) of every ```python block of docs/python.md."""
    found, heading = [], ""
    for part in re.split(r"^(## .*)$", DOC.read_text(), flags=re.M):
        if part.startswith("## "):
            heading = part[3:].strip()
            continue
        found += [(heading, code) for code in re.findall(r"```python\n(.*?)```", part, flags=re.S)]
    return found


PYTEST = "Testing your code against the sandbox"  # a conftest.py and a test module, run by pytest


def examples() -> list[tuple[str, str]]:
    """The blocks that are scripts."""
    return [(h, c) for h, c in blocks() if h != PYTEST]


def run_script(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (cwd / "example.py").write_text(code)
    return subprocess.run(
        [sys.executable, "example.py"], cwd=cwd, env=os.environ.copy(), capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def reader(gw: Sandbox, isolated: Path) -> Path:
    shutil.copy(CAT, isolated / "cat.png")
    return isolated


def test_the_doc_has_examples_for_every_entry_point() -> None:
    code = "\n".join(c for _, c in examples())
    for call in ("Wanvid(", ".create(", ".wait(", ".download(", ".run(", ".batch(", "except wanvid."):
        assert call in code, f"docs/python.md shows no {call}"


@pytest.mark.parametrize(("heading", "code"), examples(), ids=[h for h, _ in examples()])
def test_every_example_in_docs_python_md_runs(heading: str, code: str, reader: Path, gw: Sandbox) -> None:
    done = run_script(code, reader)
    assert done.returncode == 0, f"example under '{heading}' failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr


def test_the_pytest_plugin_example_passes_in_a_users_project(reader: Path) -> None:
    """The doc's conftest.py and test module, as a user's project, run by pytest in its own process."""
    conftest, test = [c for h, c in blocks() if h == PYTEST]
    (reader / "conftest.py").write_text(conftest)
    (reader / "test_mine.py").write_text(test)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"],
        cwd=reader,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_create_wait_download_then_the_same_call_reuses_the_task(reader: Path, gw: Sandbox) -> None:
    """The issue's script: create, wait and download against the sandbox; the identical second call pays nothing."""
    code = next(c for h, c in examples() if h == "Create, wait, download")
    done = run_script(code, reader)
    assert done.returncode == 0, done.stderr
    creates = [r for r in gw.requests() if r.method == "POST"]
    assert len(creates) == 1  # two create() calls, one task paid for
    (task,) = gw.tasks()
    assert (reader / "walk.mp4").stat().st_size > 0
    assert json.loads((reader / "walk.mp4.json").read_text())["task_id"] == task["id"]


def test_run_shares_the_cli_journal_and_the_cli_sees_its_task(reader: Path, gw: Sandbox) -> None:
    from ..helpers import wv

    video = wanvid.Wanvid().run(CAT, prompt="one journal", output="shared.mp4", poll_interval=0.1)
    listed = wv("list", "--json")
    assert listed.exit_code == 0
    assert video.task_id in {t["id"] for t in json.loads(listed.stdout)}
    # and the CLI's identical run finds the saved video instead of paying again
    again = wv("run", str(CAT), "-p", "one journal", "-o", "shared.mp4", "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["task_id"] == video.task_id
    assert len([r for r in gw.requests() if r.method == "POST"]) == 1


def test_errors_are_typed_and_carry_the_cli_exit_codes(reader: Path, gw: Sandbox, monkeypatch) -> None:
    client = wanvid.Wanvid()
    with pytest.raises(wanvid.FieldError) as bad:
        client.create(CAT, prompt="x", duration=99)
    assert bad.value.exit_code == 2
    assert gw.requests() == []  # refused before sending
    with pytest.raises(wanvid.NotFound) as missing:
        client.status("0" * 32)
    assert missing.value.exit_code == 5
    monkeypatch.delenv("WANVID_API_KEY")
    with pytest.raises(wanvid.AuthError) as nokey:
        wanvid.Wanvid().create(CAT, prompt="x")
    assert nokey.value.exit_code == 4


def test_explicit_arguments_beat_the_environment(reader: Path, gw: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("WANVID_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    client = wanvid.Wanvid(base_url=gw.url, api_key=TEST_KEY)
    assert client.base_url == gw.url
    assert client.create(CAT, prompt="precedence").status is not None


def test_nothing_is_printed_by_the_library(reader: Path, gw: Sandbox, capfd) -> None:
    wanvid.Wanvid().run(CAT, prompt="silent", output="silent.mp4", poll_interval=0.1)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_import_wanvid_stays_light() -> None:
    code = "import sys, wanvid; print(sorted(m for m in ('requests', 'rich', 'PIL', 'wanvid.api') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_interrupted_wait_names_the_task_and_leaves_every_signal_handler_as_it_was(reader: Path, slow) -> None:
    """Ctrl-C in a script's wait: Interrupted (exit 130) naming the task, and afterwards Ctrl-C is still Python's
    KeyboardInterrupt (a library must not leave the process to be killed by the next one)."""
    script = f"""
import os, signal, contextlib, wanvid

class SignalOnFirstPoll(wanvid.LogReporter):
    @contextlib.contextmanager
    def polling(self, task_id, eta=None, age=0.0):
        class View:
            def update(self, task, elapsed):
                os.kill(os.getpid(), signal.SIGINT)  # the wait has begun: that is the state to interrupt
        yield View()

names = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
before = [signal.getsignal(s) for s in names]
client = wanvid.Wanvid(base_url={slow.url!r}, api_key={TEST_KEY!r}, reporter=SignalOnFirstPoll())
task = client.create("cat.png", prompt="interrupt me")
try:
    client.wait(task.id, poll_interval=0.1)
except wanvid.Interrupted as exc:
    print("interrupted", exc.exit_code, exc.task_id == task.id)
print("handlers kept", [signal.getsignal(s) for s in names] == before)
try:
    os.kill(os.getpid(), signal.SIGINT)
    signal.sigtimedwait([], 0.01) if hasattr(signal, "sigtimedwait") else None
    print("not interrupted")
except KeyboardInterrupt:
    print("KeyboardInterrupt again")
"""
    done = run_script(script, reader)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["interrupted 130 True", "handlers kept True", "KeyboardInterrupt again"]


def test_a_custom_reporter_hears_every_batch_row(reader: Path, gw: Sandbox) -> None:
    class Recorder(wanvid.LogReporter):
        def __init__(self) -> None:
            super().__init__()
            self.stages: list[tuple[str, str | None]] = []

        def stage(self, stage: str, *, task_id=None, status=None, dest=None) -> None:  # type: ignore[no-untyped-def]
            self.stages.append((stage, task_id))

    (reader / "m.csv").write_text("image,prompt\ncat.png,one\ncat.png,two\n")
    recorder = Recorder()
    result = wanvid.Wanvid(reporter=recorder).batch("m.csv", name="{row}.mp4", poll_interval=0.1, stagger=0)
    assert result.ok and result.summary["saved"] == 2
    saved = {task_id for stage, task_id in recorder.stages if stage == "SAVED"}
    assert saved == {row.task_id for row in result.rows}


def test_one_client_serves_several_threads(reader: Path, gw: Sandbox) -> None:
    """Each thread gets its own journal connection (sqlite3's may not cross threads)."""
    import threading

    client = wanvid.Wanvid()
    task = client.create(CAT, prompt="threads")
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(client.wait(task.id, poll_interval=0.1)))
    worker.start()
    worker.join(60)
    assert [t.status for t in got] == [wanvid.Status.SUCCEEDED]  # type: ignore[attr-defined]


def test_a_warning_is_logged_not_printed(reader: Path, capfd) -> None:
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("wanvid").addHandler(handler)
    try:
        wanvid.Wanvid(api_key=TEST_KEY).request(CAT, prompt="x", model="wan9-i2v")
    finally:
        logging.getLogger("wanvid").removeHandler(handler)
    assert capfd.readouterr() == ("", "")
    assert any("wan9-i2v" in r.getMessage() and r.levelname == "WARNING" for r in records)


def test_request_words_take_any_case_as_on_the_command_line(reader: Path) -> None:
    v = wanvid.Wanvid(api_key=TEST_KEY, protocol="NATIVE").request(CAT, prompt="x", resolution="720p")
    assert v.request.resolution == "720P"
