"""What the live line of ``run`` shows on a terminal, and how soon the first task of a kind is noticed.

The first task on an empty journal has only a prior for its duration (``poller.PRIOR_ETA``): its schedule
must not leave a task that ended early RUNNING for half a minute (the sparse middle did: 28 s), and the
estimate on the live line counts down each second, not only when an answer arrives.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from wanvid.jobs.poller import DENSE, PRIOR_ETA, SPARSE, UNSURE, next_gap, wait_for
from wanvid.rules.task import Status, Task
from wanvid.sandbox import Sandbox

from ..helpers import FakeClock, gateway_env, on_a_terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LEFT = re.compile(r"~(?:(\d+)m)?(\d+)s left")


# -- the schedule -------------------------------------------------------------------------------------


def test_with_no_history_the_gap_grows_with_the_tasks_age() -> None:
    """No history: the gap is a fixed fraction of the task's age (at least DENSE, at most SPARSE), and a guess
    at the finish (the prior) draws no dense window of its own: a task is noticed as late, relative to its
    age, whenever it ends."""
    gaps = [next_gap(age, None) for age in (a / 2 for a in range(0, 801))]
    for age, gap in zip((a / 2 for a in range(0, 801)), gaps, strict=True):
        assert gap <= max(DENSE, UNSURE * age), age
        assert gap <= SPARSE, age
    assert gaps == sorted(gaps)  # never denser later on: no window around PRIOR_ETA
    assert next_gap(PRIOR_ETA, None) > next_gap(PRIOR_ETA, PRIOR_ETA)


@pytest.mark.parametrize("ends_at", [7.0, 12.0, 30.0, 60.0, 150.0, 400.0])
def test_a_first_task_is_noticed_within_a_fraction_of_its_duration(ends_at: float) -> None:
    clock = FakeClock()
    polls: list[float] = []

    def fetch() -> Task:
        polls.append(clock.now)
        return Task("t", "native", Status.SUCCEEDED if clock.now >= ends_at else Status.RUNNING, "x")

    wait_for(fetch, timeout=3600, eta=None, clock=clock, sleep=clock.sleep)
    assert polls[-1] - ends_at <= max(DENSE, UNSURE * ends_at)
    # what that costs: requests grow with the log of the duration (a 120 s task: 33, where a fixed 5 s poll
    # makes 24 and notices 2.5 s late on average; a window around the prior's 90 s made it 54)
    assert len(polls) <= {7.0: 13, 12.0: 17, 30.0: 23, 60.0: 28, 150.0: 35, 400.0: 43}[ends_at]


# -- on a terminal, against the sandbox ---------------------------------------------------------------


def _frames(screen: str) -> list[str]:
    """Every redraw of the display, ANSI stripped: rich rewrites its line after a carriage return."""
    return [line for line in re.split(r"[\r\n]+", ANSI.sub("", screen)) if line.strip()]


def _seconds(match: re.Match[str]) -> int:
    return int(match.group(1) or 0) * 60 + int(match.group(2))


def test_first_task_is_downloaded_within_one_gap_of_its_end_and_the_eta_counts_down(isolated: Path) -> None:
    """Empty journal; the task ends 8 s after creation, past the early dense phase, where the old schedule
    slept 30 s. The sandbox's clock says when it ended; a watcher notes when each request arrived."""
    from PIL import Image

    Image.new("RGB", (832, 480), "teal").save(isolated / "cat.png")
    with Sandbox(queue_seconds=1.0, run_seconds=7.0) as sb:
        arrivals: list[tuple[float, str]] = []
        done = threading.Event()

        def watch() -> None:  # notes the wall time each request arrived (a 5 ms pace)
            while not done.is_set():
                for r in sb.requests()[len(arrivals) :]:
                    arrivals.append((time.time(), r.path))
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            out, screen = on_a_terminal(
                ["run", "cat.png", "-p", "a cat", "-o", "cat.mp4"], {**gateway_env(sb), "COLUMNS": "80"}
            )
        finally:
            done.set()
            watcher.join()
        (task,) = sb.tasks()

    assert Path(out.strip()).name == "cat.mp4"
    ended = task["ends_at"]
    polls = [t for t, path in arrivals if path.startswith("/aliyun/v1/tasks/")]
    download = next(t for t, path in arrivals if path.startswith("/_oss/") or path.endswith("/content"))
    before = max(t for t in polls if t < ended)  # the last answer that said RUNNING
    after = [t for t in polls if ended <= t < download]
    # The first answer after the end is the one that made wanvid download: no poll in between.
    assert len(after) == 1
    # That poll came one scheduled gap after the one before (plus the answer's round trip and the journal
    # write, allowed 2 s on a busy machine).
    assert after[0] - before <= next_gap(before - task["created_at"], None) + 2.0
    # So the download started within a gap of the end (plus the same allowance twice), not the ~28 s of the
    # 30 s sparse sleep the schedule used to take here.
    assert download - ended <= max(DENSE, UNSURE * (ended - task["created_at"])) + 4.0

    frames = _frames(screen)
    live = [f for f in frames if "━" in f and "task " in f]  # the poll line's redraws
    assert live, screen
    lefts = [_seconds(m) for f in live if (m := LEFT.search(f))]
    assert lefts == sorted(lefts, reverse=True), lefts  # never goes up
    assert len(set(lefts)) >= 4, lefts  # and moved every second between the polls, not only at answers
    assert lefts[0] <= PRIOR_ETA


def test_the_live_display_fits_80_columns_with_a_short_id(isolated: Path, sandbox: Sandbox) -> None:
    from PIL import Image

    Image.new("RGB", (832, 480), "teal").save(isolated / "cat.png")
    _, screen = on_a_terminal(
        ["run", "cat.png", "-p", "a cat", "-o", "cat.mp4"], {**gateway_env(sandbox), "COLUMNS": "80"}
    )
    (task,) = sandbox.tasks()
    live = [f for f in _frames(screen) if "━" in f]  # every redraw of the poll and download lines
    assert any(f"task {task['id'][:8]} " in f for f in live), screen
    assert not any(task["id"] in f for f in live)
    too_long = [f for f in live if len(f) > 80]
    assert not too_long, too_long
