"""``list`` says when each task's state was last seen, and ``list --refresh`` asks the gateway first.

Plain ``list`` reads the journal only: no key needed, no request sent. ``--refresh`` queries each unfinished
task shown (of this profile and gateway), journals the answers, then prints; a task the gateway cannot
tell about is a note on stderr, not a failure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from wanvid.sandbox import Sandbox
from wanvid.store.journal import Journal

from ..helpers import queries, wait_until, wv


def _seen_long_ago(task_id: str, seconds: float = 3600) -> None:
    """As if the journal last heard about the task ``seconds`` ago."""
    j = Journal()
    j.db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (time.time() - seconds, task_id))


def _row(listing: str, task_id: str) -> str:
    return next(line for line in listing.splitlines() if line.startswith(task_id))


def test_plain_list_shows_last_seen_and_never_touches_the_network(gw: Sandbox, cat: Path, monkeypatch) -> None:
    task_id = wv("create", str(cat), "-q").stdout.strip()
    _seen_long_ago(task_id)
    before = len(gw.requests())
    monkeypatch.delenv("WANVID_API_KEY")  # and needs no key
    r = wv("list")
    assert r.exit_code == 0, r.stderr
    assert "LAST SEEN" in r.stdout.splitlines()[0]
    assert "60m ago" in _row(r.stdout, task_id)  # created just now, last seen an hour ago
    assert len(gw.requests()) == before


def test_refresh_brings_a_stale_pending_task_up_to_date(gw: Sandbox, cat: Path) -> None:
    task_id = wv("create", str(cat), "-q").stdout.strip()
    wait_until(lambda: gw.tasks()[0]["status"] == "SUCCEEDED", "the task to end on the gateway")
    _seen_long_ago(task_id)
    assert "PENDING" in _row(wv("list").stdout, task_id)  # what the journal last heard
    asked = queries(gw)
    r = wv("list", "--refresh")
    assert r.exit_code == 0, r.stderr
    row = _row(r.stdout, task_id)
    assert "SUCCEEDED" in row and "60m ago" not in row
    assert queries(gw) == asked + 1
    # written down: a plain list (no network) now says so too
    assert "SUCCEEDED" in _row(wv("list").stdout, task_id)
    assert queries(gw) == asked + 1


def test_refresh_of_an_unchanged_task_updates_when_it_was_seen(slow_gw: Sandbox, cat: Path) -> None:
    task_id = wv("create", str(cat), "-q").stdout.strip()
    _seen_long_ago(task_id)
    r = wv("list", "--refresh", "--json")
    assert r.exit_code == 0, r.stderr
    (doc,) = json.loads(r.stdout)
    assert doc["status"] == "PENDING"
    assert "PENDING" in _row(wv("list").stdout, task_id) and "60m ago" not in _row(wv("list").stdout, task_id)


def test_refresh_asks_only_about_unfinished_tasks_and_journals_a_lost_one(gw: Sandbox, cat: Path) -> None:
    lost = wv("create", str(cat), "-p", "one", "-q").stdout.strip()
    gw.reset()  # the gateway forgets it
    kept = wv("create", str(cat), "-p", "two", "-q").stdout.strip()
    wait_until(lambda: gw.tasks()[0]["status"] == "SUCCEEDED", "the task to end on the gateway")
    r = wv("list", "--refresh")
    assert r.exit_code == 0, r.stderr
    assert "NOT_FOUND" in _row(r.stdout, lost) and "SUCCEEDED" in _row(r.stdout, kept)
    asked = queries(gw)
    assert wv("list", "--refresh").exit_code == 0
    assert queries(gw) == asked  # nothing unfinished is left to ask about


def test_a_task_the_gateway_cannot_tell_about_is_a_note_not_a_failure(gw: Sandbox, cat: Path, monkeypatch) -> None:
    first = wv("create", str(cat), "-p", "one", "-q").stdout.strip()
    second = wv("create", str(cat), "-p", "two", "-q").stdout.strip()
    monkeypatch.setenv("WANVID_MAX_RETRIES", "0")
    gw.faults.server_errors = 1  # the first query (the newest task's) fails
    r = wv("list", "--refresh")
    assert r.exit_code == 0, r.stderr
    assert f"task {second} not refreshed" in r.stderr and f"task {first} not refreshed" not in r.stderr
    assert first in r.stdout and second in r.stdout
    assert len(gw.requests("/aliyun/v1/tasks/")) == 2


def test_refresh_leaves_other_profiles_tasks_alone(gw: Sandbox, cat: Path, slow: Sandbox) -> None:
    other = wv("create", str(cat), "-q", "--base-url", slow.url).stdout.strip()
    r = wv("list", "--all", "--refresh")
    assert r.exit_code == 0, r.stderr
    assert "1 unfinished task(s) of another profile or gateway not refreshed" in r.stderr
    assert not slow.requests("/aliyun/v1/tasks/") and other in r.stdout


def test_refresh_needs_the_gateway_settings(gw: Sandbox, cat: Path, monkeypatch) -> None:
    wv("create", str(cat), "-q")
    monkeypatch.delenv("WANVID_API_KEY")
    r = wv("list", "--refresh")
    assert r.exit_code != 0 and r.stderr.startswith("error: ") and "key" in r.stderr
    assert wv("list", "--refresh", "--api-key", "sk-given-as-an-option").exit_code == 0
