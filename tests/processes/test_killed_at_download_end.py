"""A wanvid killed (SIGKILL, or a power cut that rolls back the last commit) at the end of a download: right
after the ``.part`` became the output file, before the journal recorded it, the rerun finds the video,
records it, and pays and fetches nothing, where it used to refuse "output already exists" (a batch: refuse
every row); with the whole video in the ``.part``, before it was checked (its record still says what it
held when the answer began), the rerun resumes it at its end and fetches nothing either.

The kill is real: a wanvid process whose ``_place`` (the rename of the ``.part`` onto the output) or
``_verify`` (the check of the complete ``.part``) is wrapped to SIGKILL it. Only that moment is chosen by
the test; the rest is the installed code path, against a real sandbox.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from wanvid.sandbox import Sandbox, sample_mp4

from ..helpers import checked, creates, process_env, run

# sys.argv[1]: "place" (SIGKILL right after the rename) or "verify" (right before the complete .part is checked)
KILLED = """
import os, signal, sys
import wanvid.gateway.download as download
name = {"place": "_place", "verify": "_verify"}[sys.argv.pop(1)]
real = getattr(download, name)
def killed(*args, **kwargs):
    if name == "_place":
        real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
setattr(download, name, killed)
from wanvid.cli.app import run
sys.argv = ["wanvid", *sys.argv[1:]]
run()
"""


@pytest.fixture
def instant() -> Iterator[Sandbox]:
    with Sandbox(queue_seconds=0, run_seconds=0) as sb:
        yield sb


def killed(sb: Sandbox, *args: str, at: str = "place") -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, at, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=process_env(sb),
    )
    checked(proc.stdout, proc.stderr)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def contents(sb: Sandbox) -> int:
    return sum(1 for r in sb.requests() if r.path.endswith("/content"))


def unrecorded(isolated: Path, name: str) -> bool:
    """The state the kill leaves: the video in place, its .part gone, the journal still holding the .part's
    record and no saved video."""
    db = sqlite3.connect(isolated / "data" / "journal.sqlite3")
    part = str(isolated / f"{name}.part")
    recorded = db.execute("SELECT count(*) FROM outputs WHERE path = ?", (str(isolated / name),)).fetchone()[0]
    parts = db.execute("SELECT count(*) FROM parts WHERE path = ?", (part,)).fetchone()[0]
    return (isolated / name).is_file() and not Path(part).exists() and parts == 1 and recorded == 0


def test_run_killed_after_placing_the_video_is_done_on_the_rerun(instant: Sandbox, cat: Path, isolated: Path) -> None:
    killed(instant, "run", str(cat), "-p", "walk", "-o", "out.mp4")
    assert unrecorded(isolated, "out.mp4")

    again = run("run", str(cat), "-p", "walk", "-o", "out.mp4", sb=instant)

    assert again.returncode == 0, again.stderr
    assert "placed by a wanvid that stopped before recording it" in again.stderr
    assert again.stdout.strip() == str(isolated / "out.mp4")
    assert (creates(instant), contents(instant)) == (1, 1)  # nothing paid for or fetched again
    assert (isolated / "out.mp4").read_bytes() == sample_mp4()


def test_download_killed_after_placing_the_video_is_done_on_the_rerun(
    instant: Sandbox, cat: Path, isolated: Path
) -> None:
    task_id = run("create", str(cat), "-p", "walk", "-q", sb=instant).stdout.strip()
    killed(instant, "download", task_id, "-o", "v.mp4")
    assert unrecorded(isolated, "v.mp4")

    again = run("download", task_id, "-o", "v.mp4", "--json", sb=instant)

    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_saved"] is True
    assert contents(instant) == 1


def test_batch_killed_after_placing_a_row_finishes_every_row_on_the_rerun(instant: Sandbox, isolated: Path) -> None:
    for i in range(2):
        Image.new("RGB", (320, 320), (i * 90, 20, 20)).save(isolated / f"s{i}.png")
    (isolated / "m.csv").write_text("image,prompt\ns0.png,row 0\ns1.png,row 1\n")
    killed(instant, "batch", "m.csv", "-j", "1")
    assert unrecorded(isolated, "s0.mp4") and not (isolated / "s1.mp4").exists()

    again = run("batch", "m.csv", "-j", "1", sb=instant)

    assert again.returncode == 0, again.stderr
    assert (isolated / "s0.mp4").read_bytes() == (isolated / "s1.mp4").read_bytes() == sample_mp4()
    assert (creates(instant), contents(instant)) == (2, 2)  # row 1 paid once, row 0 not again


def test_download_killed_before_checking_the_whole_part_resumes_at_its_end(
    instant: Sandbox, cat: Path, isolated: Path
) -> None:
    task_id = run("create", str(cat), "-p", "walk", "-q", sb=instant).stdout.strip()
    killed(instant, "download", task_id, "-o", "v.mp4", at="verify")
    assert (isolated / "v.mp4.part").read_bytes() == sample_mp4() and not (isolated / "v.mp4").exists()

    again = run("download", task_id, "-o", "v.mp4", sb=instant)

    assert again.returncode == 0, again.stderr
    assert f"resuming v.mp4.part from byte {len(sample_mp4()):,}" in again.stderr
    assert (isolated / "v.mp4").read_bytes() == sample_mp4() and not (isolated / "v.mp4.part").exists()
    assert contents(instant) == 1  # the first download's only
