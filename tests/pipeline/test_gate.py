"""The batch's shared rate-limit Gate: AIMD pacing found from the gateway's 429s (pure logic, on a fake
clock), and a batch under the sandbox's rate_limit fault (few 429s, every row saved, --stagger honoured)."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import deque
from pathlib import Path

import pytest

import wanvid.jobs.batch as batch_module
from wanvid.gateway.client import DECREASE, Gate
from wanvid.sandbox import Sandbox
from wanvid.sandbox.faults import admit

from ..helpers import TEST_KEY, FakeClock, wv
from .test_batch import creates, csv_manifest, images


def simulate(gate: Gate, clock: FakeClock, requests: int, limit: float, *, retry_after: bool = True) -> int:
    """Send ``requests`` requests one after another (each answered at once) through ``gate`` to a limiter
    like the sandbox's (a sliding window of ``limit`` a second); the number answered 429."""
    admitted: deque[float] = deque()
    refused = done = 0
    while done < requests:
        gate.wait(clock.sleep)
        sent = clock()
        wait = admit(admitted, limit, sent)
        if wait is None:
            gate.passed(sent)
            done += 1
        else:
            refused += 1
            gate.hold(wait if retry_after else 0.1, sent)
    return refused


def test_no_429_no_pace():
    clock = FakeClock()
    gate = Gate(clock=clock)
    for _ in range(100):
        gate.wait(clock.sleep)
        gate.passed()
    assert clock() == 0 and gate.rate is None


def test_a_batch_at_the_limit_runs_near_it_with_few_429s():
    clock = FakeClock()
    gate = Gate(clock=clock)
    refused = simulate(gate, clock, 300, 10)
    floor = 300 / 10
    assert clock() <= 1.15 * floor, clock()
    assert refused <= 30, refused


def test_without_retry_after_the_pace_is_still_found():
    clock = FakeClock()
    gate = Gate(clock=clock)
    refused = simulate(gate, clock, 300, 10, retry_after=False)  # new-api's limiter: an empty 429
    assert clock() <= 1.25 * 30 and refused <= 60, (clock(), refused)


def test_the_rate_recovers_after_a_hold():
    clock = FakeClock()
    gate = Gate(clock=clock)
    for _ in range(10):  # ten answers within the last second ...
        gate.passed()
        clock.sleep(0.1)
    gate.hold(5.0)  # ... then a 429 with Retry-After 5
    assert gate.rate == pytest.approx(DECREASE * 10)
    gate.wait(clock.sleep)
    assert clock() >= 6.0  # the hold was honoured
    start = clock()
    while gate.rate is not None and gate.rate < 10:  # answers keep coming at the pace
        gate.passed()
        gate.wait(clock.sleep)
    assert clock() - start <= 4.0  # back at the rate seen before the hold within seconds


def test_429s_of_requests_sent_before_a_cut_count_as_one():
    clock = FakeClock()
    gate = Gate(clock=clock)
    sent = clock()
    for _ in range(10):
        gate.passed(sent)
    clock.sleep(0.01)
    for _ in range(20):  # a burst of 20 requests sent together, all refused
        gate.hold(0.1, sent)
    assert gate.cuts == 1 and gate.rate == pytest.approx(DECREASE * 10)
    clock.sleep(1.0)
    gate.hold(0.1, clock())  # a request sent a while after the cut and still refused: the pace is too fast
    assert gate.cuts == 2 and gate.rate < DECREASE * 10


def test_paced_turns_are_first_come_first_served_and_creates_keep_the_stagger():
    clock = FakeClock()
    gate = Gate(spacing=0.5, clock=clock)
    starts = []
    for _ in range(3):
        gate.wait(clock.sleep, create=True)
        starts.append(clock())
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [0.5, 0.5]
    gate.hold(0.0)  # a 429 with nothing answered before: a cautious start pace
    t0 = clock()
    gate.wait(clock.sleep)
    gate.wait(clock.sleep)
    assert math.isclose(clock() - t0, gate.gap, rel_tol=1e-6)


# -- against the sandbox ------------------------------------------------------------------------------


def limited_batch(sb: Sandbox, tmp_path: Path, rows: int) -> None:
    """A batch of ``rows`` new rows, as many workers, through ``sb`` limited to 10 requests a second (the
    environment points wanvid at it): every row saved, each paid for once."""
    sb.faults.rate_limit = 10
    shots = images(tmp_path, rows)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
    r = wv("batch", str(manifest), "-j", str(rows), "--json", "--poll-interval", "0.3")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0, [row["error"] for row in doc["rows"] if row["error"]]
    assert doc["summary"]["saved"] == rows and creates(sb) == rows


def test_a_batch_under_a_rate_limit_saves_every_row_with_few_429s(gw, tmp_path):
    limited_batch(gw, tmp_path, 16)
    assert gw.stats()["throttled"] <= 16, gw.stats()  # a burst at the start, then the pace holds


def test_stagger_is_honoured_when_given(gw, tmp_path, monkeypatch):
    created: list[float] = []

    class Recording(Gate):
        def wait(self, sleep, *, create=False):  # type: ignore[no-untyped-def]
            super().wait(sleep, create=create)
            if create:
                created.append(time.monotonic())

    monkeypatch.setattr(batch_module, "Gate", Recording)
    shots = images(tmp_path, 3)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
    r = wv("batch", str(manifest), "-j", "3", "--poll-interval", "0.1", "--stagger", "0.4")
    assert r.exit_code == 0, r.stderr
    assert creates(gw) == 3 and len(created) == 3
    gaps = [b - a for a, b in itertools.pairwise(created)]
    assert min(gaps) >= 0.39, gaps


def test_new_apis_empty_429s_still_find_the_pace(tmp_path, monkeypatch):
    """new-api's own limiter answers an empty 429 with no Retry-After: the batch paces itself all the same."""
    with Sandbox(queue_seconds=0.1, run_seconds=0.3, flavor="newapi") as sb:
        monkeypatch.setenv("WANVID_BASE_URL", sb.url)
        monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
        limited_batch(sb, tmp_path, 12)
        assert sb.stats()["throttled"] <= 2 * 12, sb.stats()
