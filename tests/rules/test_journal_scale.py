"""A journal of 100,000 tasks costs what one of ten does: every query the journal makes is served by an index.

The queries are not listed by hand: every public method of ``Journal`` is called (a test fails when one is
added and not called here), each statement SQLite runs is captured by a trace callback with its values, and
its ``EXPLAIN QUERY PLAN`` must show neither a scan of a whole table nor a temporary B-tree for its ORDER BY
(except the sort of the live tasks, a day's worth, for a state only live tasks show).
The task-id completion's query (``wanvid.cli.complete.TASKS_SQL``) is checked the same way. Plans, not
timings: the speed itself is ``make bench``'s journal section.
"""

from __future__ import annotations

import inspect
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from wanvid.cli.complete import TASKS_SQL
from wanvid.store.journal import _LIFE, SCHEMA, STATES, Entry, Journal, Part

from .test_journal import entry as pending_entry

# Tables that only ever hold a handful of rows (a claim lives only while its create request is out): a scan
# of them is a scan of a few rows, and an index would cost every claim one more page written.
SMALL = {"claims"}
DATA = Path(__file__).resolve().parent.parent / "data"


def entry(task_id: str, **kw: object) -> Entry:
    """test_journal's entry, as a finished task of one kind (what typical_seconds and the filters look at)."""
    kind = {"status": "SUCCEEDED", "model": "wan2.7-i2v", "resolution": "720P", "duration": 5, "took": 40.0}
    return pending_entry(task_id, **{**kind, "request_hash": f"h{task_id}", **kw})


def exercise(j: Journal, tmp: Path) -> set[str]:
    """Call every public method of the journal (each list filter, with and without a scope); their names."""
    e = entry("t1")
    j.record(e)
    j.record(entry("t2", status="PENDING"), claim="tok")
    j.update("http://gw", "t1", status="SUCCEEDED")
    j.get("http://gw", "t1")
    j.latest("default", "http://gw")
    j.recent(profile="default", base_url="http://gw")
    j.recent()
    j.recent(profile="default", base_url="http://gw", since=time.time() - 3600)
    for state in (None, *STATES):  # the scopes its callers give: profile and gateway, or none (list --all)
        j.listed(state, profile="default", base_url="http://gw")
        j.listed(state)
    j.has_profile("default")
    j.unfinished("default", "http://gw")
    j.same_request("ht1", "http://gw", "default")
    j.claim("hnew", "http://gw", "default", "tok2")
    j.release("tok2")
    j.disown("tok3")
    j.typical_seconds("http://gw", e)
    j.saved(e, tmp / "v.mp4", 10)
    j.output(tmp / "v.mp4")
    j.outputs_for("ht1")
    j.save_part(tmp / "v.mp4.part", Part("t1", "http://x", None, 10))
    j.part(tmp / "v.mp4.part")
    j.drop_part(tmp / "v.mp4.part")
    j.prune(30 * 86400, dry_run=True)
    j.prune(30 * 86400)
    j.vacuum()
    j.db_read(TASKS_SQL, ("t%",))
    j.db_read(TASKS_SQL, ("%",))
    return {
        "record", "update", "get", "latest", "recent", "listed", "unfinished", "same_request", "claim", "release",
        "disown", "has_profile", "typical_seconds", "saved", "output", "outputs_for", "save_part", "part",
        "drop_part", "prune", "vacuum", "db_read", "close",
    }  # fmt: skip


def test_every_public_method_of_the_journal_is_exercised(tmp_path: Path) -> None:
    public = {n for n, _ in inspect.getmembers(Journal, inspect.isfunction) if not n.startswith("_")}
    public |= {n for n, v in vars(Journal).items() if isinstance(v, property) and not n.startswith("_")}
    j = Journal(tmp_path / "j.sqlite3")
    called = exercise(j, tmp_path)
    assert public - {"db"} <= called, f"add {sorted(public - called - {'db'})} to exercise() above"


def test_every_query_the_journal_makes_is_served_by_an_index(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    statements: list[str] = []
    j.db.set_trace_callback(statements.append)
    exercise(j, tmp_path)
    j.db.set_trace_callback(None)
    queries = {s for s in statements if s.split(None, 1)[0].upper() in ("SELECT", "UPDATE", "DELETE", "WITH")}
    assert len(queries) > 20  # the trace saw them all, values filled in
    bad = {}
    for sql in sorted(queries):
        plan = [row[3] for row in j.db.execute("EXPLAIN QUERY PLAN " + sql)]
        scans = [p for p in plan if p.startswith("SCAN ") and " USING " not in p and p.split()[1] not in SMALL]
        # A filter on a state only live tasks show reads the live ones by when their life ends, then sorts
        # them: a day's worth of tasks, however long the journal.
        live_only = f"{_LIFE} > " in sql and f"NOT {_LIFE}" not in sql and "INDEXED BY" in sql
        sorts = [p for p in plan if "TEMP B-TREE" in p and not live_only]
        if scans or sorts:
            bad[sql] = plan
    assert not bad, "\n".join(f"{sql}\n    {plan}" for sql, plan in bad.items())


def test_the_list_filters_agree_with_the_shown_status(tmp_path: Path) -> None:
    """The SQL filter keeps exactly the rows ``Entry.shown_status`` (and ``unfinished``) would."""
    j = Journal(tmp_path / "j.sqlite3")
    now = time.time()
    rows = []
    for i, status in enumerate(("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "NOT_FOUND", "UNRECOGNIZED")):
        for k, (age, expires) in enumerate(((60, None), (2 * 86400, None), (61, now - 1), (2 * 86400 + 1, now + 3600))):
            e = entry(f"{status}-{k}", status=status, created_at=now - age - 10 * i, expires_at=expires)
            j.record(e)
            rows.append(e)
    for state in STATES:
        want = [e.id for e in sorted(rows, key=lambda e: -e.created_at)]
        want = [
            i
            for i, e in zip(want, sorted(rows, key=lambda e: -e.created_at), strict=True)
            if (e.unfinished if state == "UNFINISHED" else e.shown_status == state)
        ]
        assert [e.id for e in j.listed(state, limit=100)] == want, state
        assert [e.id for e in j.listed(state, limit=1)] == want[:1], state


def test_a_journal_of_the_previous_schema_is_upgraded_and_keeps_its_tasks(tmp_path: Path) -> None:
    """A file as wanvid with schema 2 wrote it (its exact statements) gains the indexes and loses nothing."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(OLD_SCHEMA_2)
    db.execute(
        "INSERT INTO tasks (id, base_url, protocol, profile, created_at, updated_at, status, request_hash) "
        "VALUES ('old1', 'http://gw', 'native', 'default', ?, ?, 'RUNNING', 'hh')",
        (time.time() - 60, time.time() - 60),
    )
    db.close()
    j = Journal(path)
    assert [e.id for e in j.listed("UNFINISHED", profile="default", base_url="http://gw")] == ["old1"]
    found = j.same_request("hh", "http://gw", "default")
    assert found is not None and found.id == "old1"
    assert j.db_read("PRAGMA user_version") == [(SCHEMA,)]
    names = {r[0] for r in j.db_read("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"tasks_same", "tasks_alive", "tasks_created"} <= names and "tasks_request" not in names
    j.close()


# What wanvid 0.x with journal schema 2 created (copied from its journal.py, not imported: it must not drift).
OLD_SCHEMA_2 = """
CREATE TABLE tasks (
    id TEXT NOT NULL, base_url TEXT NOT NULL, protocol TEXT NOT NULL, profile TEXT NOT NULL, model TEXT,
    request TEXT, request_hash TEXT, resolution TEXT, duration INTEGER, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, status TEXT NOT NULL, error_code TEXT, error_message TEXT, request_id TEXT,
    video_url TEXT, expires_at REAL, ended_at REAL, took REAL, output_path TEXT, output_bytes INTEGER,
    downloaded_at REAL, PRIMARY KEY (base_url, id));
CREATE TABLE parts (path TEXT PRIMARY KEY, task_id TEXT NOT NULL, source TEXT NOT NULL, etag TEXT,
    total INTEGER, updated_at REAL NOT NULL, size INTEGER, mtime_ns INTEGER);
CREATE TABLE outputs (path TEXT PRIMARY KEY, task_id TEXT NOT NULL, base_url TEXT NOT NULL, request_hash TEXT,
    bytes INTEGER NOT NULL, saved_at REAL NOT NULL);
CREATE INDEX tasks_recent ON tasks (profile, base_url, created_at);
CREATE INDEX tasks_request ON tasks (request_hash);
CREATE TABLE claims (request_hash TEXT NOT NULL, base_url TEXT NOT NULL, profile TEXT NOT NULL,
    pid INTEGER NOT NULL, host TEXT NOT NULL, token TEXT NOT NULL, started_at REAL NOT NULL,
    PRIMARY KEY (request_hash, base_url, profile));
PRAGMA user_version=2;
PRAGMA journal_mode=WAL;
"""


@pytest.mark.parametrize("state", [None, "SUCCEEDED", "UNFINISHED"])
def test_list_reads_only_the_rows_it_shows(tmp_path: Path, state: str | None) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    for i in range(30):
        j.record(entry(f"t{i:02}", created_at=time.time() - i, status="RUNNING" if i % 2 else "SUCCEEDED"))
    got = j.listed(state, profile="default", base_url="http://gw", limit=3)
    assert len(got) == 3 and got == sorted(got, key=lambda e: -e.created_at)


def test_a_journal_written_by_the_previous_wanvid_opens_upgraded_with_every_row(tmp_path: Path) -> None:
    """tests/data/journal-schema2.sqlite3 was written by wanvid's journal.py of schema 2 itself: a running
    task, a saved one (with its outputs row) and a partial download."""
    path = tmp_path / "journal.sqlite3"
    shutil.copyfile(DATA / "journal-schema2.sqlite3", path)
    j = Journal(path)
    assert [e.id for e in j.listed(None, profile="default", base_url="http://gw")] == ["old-running", "old-saved"]
    saved = j.get("http://gw", "old-saved")
    assert saved is not None and saved.output_path == "/v/old.mp4" and saved.took == 42.0
    assert j.outputs_for("hash-saved") == [("/v/old.mp4", "old-saved")]
    part = j.part(Path("/v/x.mp4.part"))
    assert part is not None and (part.etag, part.size, part.mtime_ns) == ("etag", 10, 123)
    assert j.db_read("PRAGMA user_version") == [(SCHEMA,)]
    assert j.typical_seconds("http://gw", entry("new", resolution=None, duration=None)) == (42.0, 1)
    j.record(entry("new"))
    assert j.get("http://gw", "new") is not None
    j.close()


def test_one_journal_serves_many_threads_at_once(tmp_path: Path) -> None:
    """A batch's workers share one connection: concurrent records, updates and reads lose nothing."""
    j = Journal(tmp_path / "j.sqlite3")

    def work(n: int) -> None:
        for i in range(25):
            j.record(entry(f"t{n}-{i}", status="RUNNING"))
            j.update("http://gw", f"t{n}-{i}", status="SUCCEEDED")
            j.listed("SUCCEEDED", profile="default", base_url="http://gw", limit=5)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert j.db_read("SELECT count(*), count(DISTINCT status) FROM tasks") == [(200, 1)]


def test_only_the_commit_of_a_new_task_id_waits_for_the_disk(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    statements: list[str] = []
    j.db.set_trace_callback(statements.append)
    j.record(entry("t1"))
    j.update("http://gw", "t1", status="RUNNING")
    j.db.set_trace_callback(None)
    insert = next(i for i, s in enumerate(statements) if s.startswith("INSERT OR REPLACE INTO tasks"))
    update = next(i for i, s in enumerate(statements) if s.startswith("UPDATE tasks"))
    synced = [i for i, s in enumerate(statements) if s == "PRAGMA synchronous=FULL"]
    assert len(synced) == 1 and synced[0] < insert < update
    assert j.db_read("PRAGMA synchronous") == [(1,)]  # NORMAL for everything else


def test_a_batch_with_no_history_learns_the_typical_duration_from_its_own_rows(tmp_path: Path) -> None:
    """typical_seconds is kept for the journal object's life (a batch shares one), but not while it knows
    too few tasks: a batch that starts on an empty journal learns from its own first successes."""
    j = Journal(tmp_path / "j.sqlite3")
    probe = entry("probe")
    assert j.typical_seconds("http://gw", probe) is None
    for i in range(5):
        j.record(entry(f"done{i}", status="SUCCEEDED", took=40.0 + i))
    assert j.typical_seconds("http://gw", probe) == (42.0, 5)
    j.record(entry("done-later", status="SUCCEEDED", took=400.0))
    assert j.typical_seconds("http://gw", probe) == (42.0, 5)  # settled: asked once per kind from here on
