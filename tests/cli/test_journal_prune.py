"""`wanvid journal prune` drops only tasks that can no longer deliver; `vacuum` gives the space back."""

from __future__ import annotations

import json
import time
from pathlib import Path

from wanvid.store.journal import Entry, Journal

from ..helpers import wv

DAY = 86400.0


def crafted(path: Path | None = None) -> Journal:
    """Old saved, old never saved (expired), old failed, recent unsaved, an old one still alive by the
    gateway's own expiry, and week-old ones: never saved, and failed."""
    j = Journal(path)
    now = time.time()

    def add(task_id: str, age_days: float, **kw: object) -> Entry:
        created = now - age_days * DAY
        fields = {"status": "SUCCEEDED", "request_hash": f"h-{task_id}", **kw}
        e = Entry(id=task_id, base_url="http://gw", protocol="native", profile="default", created_at=created,
                  updated_at=created, **fields)  # type: ignore[arg-type]  # fmt: skip
        j.record(e)
        return e

    saved = add("old-saved", 40, downloaded_at=now - 40 * DAY, output_path="/v/old.mp4", output_bytes=9)
    j.saved(saved, Path("/v/old.mp4"), 9)
    add("old-unsaved", 40)
    add("old-failed", 50, status="FAILED")
    add("recent-unsaved", 0.5)
    add("recent-running", 0.1, status="RUNNING")
    add("old-but-alive", 40, expires_at=now + 3600)  # the gateway said its result lives on
    add("week-old-unsaved", 7)
    add("week-old-failed", 7, status="FAILED")
    return j


def ids(j: Journal) -> set[str]:
    return {r[0] for r in j.db_read("SELECT id FROM tasks")}


def test_prune_drops_old_ended_tasks_and_never_one_that_may_still_be_fetched(isolated: Path) -> None:
    j = crafted()
    r = wv("journal", "prune", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["pruned"] == 2 and len(ids(j)) == 8  # counted, nothing dropped
    r = wv("journal", "prune")
    assert r.exit_code == 0 and "dropped 2 task(s)" in r.stdout
    # kept: what may still be fetched, and what was paid for and never saved (its only record)
    kept = {"old-unsaved", "recent-unsaved", "recent-running", "old-but-alive", "week-old-unsaved", "week-old-failed"}
    assert ids(j) == kept
    # what was saved stays known: a rerun of the same request finds its video instead of paying again
    assert j.outputs_for("h-old-saved") == [("/v/old.mp4", "old-saved")]
    r = wv("journal", "prune", "--older-than", "1", "-q")
    assert r.exit_code == 0 and r.stdout.strip() == "1"  # the week-old failed one; never the unsaved one
    assert ids(j) == kept - {"week-old-failed"}


def test_a_prune_younger_than_a_task_life_keeps_every_live_task(isolated: Path) -> None:
    j = crafted()
    assert wv("journal", "prune", "--older-than", "1").exit_code == 0
    assert {"recent-unsaved", "recent-running", "old-but-alive"} <= ids(j)
    assert wv("journal", "prune", "--older-than", "0.5").exit_code == 2  # under a day: refused


def test_vacuum_shrinks_the_file_after_a_prune(isolated: Path) -> None:
    j = crafted()
    now = time.time()
    with j._writing() as db:  # a thousand old failed tasks with long requests
        db.executemany(
            "INSERT INTO tasks (id, base_url, protocol, profile, created_at, updated_at, status, request) "
            "VALUES (?, 'http://gw', 'native', 'default', ?, ?, 'FAILED', ?)",
            [(f"bulk-{i}", now - 90 * DAY, now - 90 * DAY, "x" * 2000) for i in range(1000)],
        )
    assert wv("journal", "prune").exit_code == 0
    r = wv("journal", "vacuum", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["bytes_after"] < doc["bytes_before"] / 4
    assert ids(j) == {
        "old-unsaved",
        "recent-unsaved",
        "recent-running",
        "old-but-alive",
        "week-old-unsaved",
        "week-old-failed",
    }
