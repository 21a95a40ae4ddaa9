"""A journal of 100,000 tasks costs what one of ten does: every query the journal makes is served by an index.

The queries are not listed by hand: every public method of ``Journal`` is called (a test fails when one is
added and not called here), each statement SQLite runs is captured by a trace callback with its values, and
its ``EXPLAIN QUERY PLAN`` must show neither a scan of a whole table, nor a walk of a whole index (``SCAN ... USING
INDEX``) where a range could serve, nor a temporary B-tree for its ORDER BY. Exactly these are allowed (``WALKS``,
``SORTS``): a walk of tasks_created newest first that stops at its LIMIT, for a statement with no WHERE (``list
--all``), for the expired filter (every task but the last day's is expired: the walk passes over a day's worth), and
for the task-id completion's walk (``TASKS_NEWEST``: only when more than ``TASKS_SORTED`` ids share the prefix);
a sort of the live tasks (a day's worth) for a state only live tasks show, and of the completion's range
(``TASKS_BY_ID``: at most ``TASKS_SORTED`` rows, counted first); a scan of a subquery's rows, and of ``SMALL`` tables.
The task-id completion's queries (``wanvid.cli.complete.task_rows``) are checked the same way. Plans, not
timings: the speed itself is ``make bench``'s journal section.
"""

from __future__ import annotations

import inspect
import random
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest

from wanvid.cli import complete
from wanvid.cli.complete import TASKS_BY_ID, TASKS_COUNT, TASKS_NEWEST, task_rows
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
    task_rows(j.db_read, "t1")  # few ids share it: counted, then read as a range of tasks_ids
    task_rows(j.db_read, "")  # every id: tasks_created walked newest first
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
    bad = {sql: plan for sql in sorted(queries) if (plan := faults(j.db, sql))}
    assert not bad, "\n".join(f"{sql}\n    {plan}" for sql, plan in bad.items())


def _prefix(template: str) -> str:
    """A statement's text up to its first value: how a traced statement (values filled in) is recognised."""
    return template.split("?", 1)[0]


def _walk_allowed(sql: str) -> bool:
    """A walk of a whole index that stops at the LIMIT, where no range could serve (see the module docstring)."""
    newest_first = " ORDER BY created_at DESC" in sql and " LIMIT " in sql
    expired_only = " WHERE status NOT IN ('FAILED', 'CANCELED') AND NOT " in sql and sql.count(" AND ") == 1
    completion = sql.startswith(_prefix(TASKS_NEWEST))
    return newest_first and (" WHERE " not in sql or expired_only or completion)


def _sort_allowed(sql: str) -> bool:
    """A sort of few rows, however long the journal (see the module docstring)."""
    # A filter on a state only live tasks show reads the live ones by when their life ends, then sorts them.
    live_only = f"{_LIFE} > " in sql and f"NOT {_LIFE}" not in sql and "INDEXED BY" in sql
    return live_only or sql.startswith(_prefix(TASKS_BY_ID))  # the completion's range: at most TASKS_SORTED rows


def faults(db: sqlite3.Connection, sql: str) -> list[str]:
    """What is wrong with ``sql``'s plan (nothing: []); the whole plan when anything is."""
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
    wrong = []
    for step in plan:
        words = step.split()
        table = words[0] == "SCAN" and not words[1].startswith("(") and words[1] not in SMALL
        if table and not (" USING " in step and " INDEX tasks_created" in step and _walk_allowed(sql)):
            wrong.append(step)
        if "TEMP B-TREE" in step and not _sort_allowed(sql):
            wrong.append(step)
    return plan if wrong else []


# The task-id completion's query of schema 4 (wanvid.cli.complete.TASKS_SQL then)
OLD_TASKS_SQL = (
    "SELECT id, status, model, created_at FROM tasks WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at DESC LIMIT 50"
)


def test_the_plan_check_refuses_a_walk_of_an_index_where_a_range_serves(tmp_path: Path) -> None:
    """The completion's query before schema 5 (LIKE, planned as a walk of tasks_created) fails the check."""
    j = Journal(tmp_path / "j.sqlite3")
    old = OLD_TASKS_SQL.replace("?", "'ab%'")
    assert faults(j.db, old) == ["SCAN tasks USING COVERING INDEX tasks_created"]
    latest = "SELECT * FROM tasks WHERE profile = 'x' AND base_url = 'y' ORDER BY created_at DESC LIMIT 1"
    assert faults(j.db, latest) == []
    assert faults(j.db, latest.replace("profile =", "+profile =").replace("base_url =", "+base_url ="))
    assert faults(j.db, "SELECT id FROM tasks WHERE id > 'a' ORDER BY status")  # a sort of a range of any size


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


def kept_every_row(j: Journal, prefix: str, video: str, part_path: str) -> None:
    """An upgraded fixture journal still has its running task, its saved one (with the outputs row) and its
    partial download, as the older wanvid wrote them."""
    assert [e.id for e in j.listed(None, profile="default", base_url="http://gw")] == [
        f"{prefix}running",
        f"{prefix}saved",
    ]
    saved = j.get("http://gw", f"{prefix}saved")
    assert saved is not None and saved.output_path == video and saved.took == 42.0
    assert j.outputs_for("hash-saved") == [(video, f"{prefix}saved")]
    part = j.part(Path(part_path))
    assert part is not None and (part.etag, part.size, part.mtime_ns) == ("etag", 10, 123)


def test_a_journal_written_by_the_previous_wanvid_opens_upgraded_with_every_row(tmp_path: Path) -> None:
    """tests/data/journal-schema2.sqlite3 was written by wanvid's journal.py of schema 2 itself: a running
    task, a saved one (with its outputs row) and a partial download."""
    path = tmp_path / "journal.sqlite3"
    shutil.copyfile(DATA / "journal-schema2.sqlite3", path)
    j = Journal(path)
    kept_every_row(j, "old-", "/v/old.mp4", "/v/x.mp4.part")
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


def test_a_journal_of_schema_4_is_upgraded_and_completes_task_ids_by_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/data/journal-schema4.sqlite3 was written by wanvid's journal.py of schema 4 itself (a running task, a
    saved one with its outputs row, a partial download; then rewritten with 1 KiB pages to stay small). The
    completion reads it as it is (read-only, no tasks_ids yet); the next Journal upgrades it in place: the index is
    added, nothing else changes."""
    path = tmp_path / "journal.sqlite3"
    shutil.copyfile(DATA / "journal-schema4.sqlite3", path)
    monkeypatch.setenv("WANVID_DATA_DIR", str(tmp_path))
    assert [t for t, _ in complete.tasks("v4-", SCHEMA)] == ["v4-running", "v4-saved"]
    assert complete.tasks("v4-s", SCHEMA) == [("v4-saved", "SUCCEEDED wan2.7-i2v")]
    ro = sqlite3.connect(path)
    assert ro.execute("PRAGMA user_version").fetchall() == [(4,)]  # the completion changed nothing
    ro.close()
    j = Journal(path)
    assert j.db_read("PRAGMA user_version") == [(SCHEMA,)]
    assert "tasks_ids" in {r[0] for r in j.db_read("SELECT name FROM sqlite_master WHERE type = 'index'")}
    kept_every_row(j, "v4-", "/v/old4.mp4", "/v/x4.mp4.part")
    statements: list[str] = []
    j.db.set_trace_callback(statements.append)
    assert [r[0] for r in task_rows(j.db_read, "v4-")] == ["v4-running", "v4-saved"]
    j.db.set_trace_callback(None)
    assert len(statements) == 2 and statements[1].startswith(_prefix(TASKS_BY_ID) + "'v4-' AND id < 'v4.'")
    plan = [r[3] for r in j.db_read("EXPLAIN QUERY PLAN " + statements[1])]
    assert plan[0] == "SEARCH tasks USING COVERING INDEX tasks_ids (id>? AND id<?)"
    j.close()


# Ids as the gateways make them (UUIDs; new-api's "task_" and 32 letters and digits, both cases), and odd ones: the
# characters LIKE and GLOB treat specially, non-ASCII, the last code point, a character just below the surrogates.
ODD_IDS = ["a%b", "a_b", "a\\b", "a[b", "a*b", "été", "é\U0010ffff", "\U0010ffffz", "x\ud7ff", "x\ue000"]
ODD_IDS += ["A", "a", "ab"]


def _ids(rnd: random.Random) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    ids = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(150)]
    ids += ["task_" + "".join(rnd.choice(letters) for _ in range(32)) for _ in range(150)]
    ids += ["task_a" + "".join(rnd.choice(letters) for _ in range(31)) for _ in range(40)]  # > 50 case-blind
    return ids + ODD_IDS


@pytest.mark.parametrize("sorted_at_most", [0, 3, 60, 1000])
def test_task_id_completion_offers_the_newest_50_ids_that_start_with_the_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sorted_at_most: int
) -> None:
    """Whichever way it reads them (a range, or the newest-first walk when more than TASKS_SORTED match), the
    completion answers the newest 50 ids that start with the word, case counting, newest first: what the shell
    shows (it keeps the ids that start with the word) with a LIKE that ignored ASCII case before."""
    monkeypatch.setattr(complete, "TASKS_SORTED", sorted_at_most)
    rnd = random.Random(sorted_at_most)
    j = Journal(tmp_path / "j.sqlite3")
    now = time.time()
    ids = _ids(rnd)
    created = {task_id: now - rnd.randrange(1000) for task_id in ids}  # ties too: the greater id first
    db = j.db
    db.execute("BEGIN")
    for task_id in ids:
        at = created[task_id]
        db.execute(
            "INSERT INTO tasks (id, base_url, protocol, profile, created_at, updated_at, status, model) "
            "VALUES (?, 'http://gw', 'native', 'default', ?, ?, 'SUCCEEDED', 'wan2.7-i2v')",
            (task_id, at, at),
        )
    db.execute("COMMIT")
    words = ["", "t", "task_", "task_a", "task_A", "TASK_", "3", "3e", "%", "_", "\\", "[", "*", "a", "A", "é"]
    words += ["\U0010ffff", "é\U0010ffff", "x\ud7ff", "nothing", *ids[::37], *(i[:7] for i in ids[::11])]
    old = OLD_TASKS_SQL
    for word in words:
        want = sorted((i for i in ids if i.startswith(word)), key=lambda i: (created[i], i), reverse=True)[:50]
        rows = task_rows(j.db_read, word)
        assert [r[0] for r in rows] == want, word
        assert all(r[1:] == ("SUCCEEDED", "wan2.7-i2v", created[r[0]]) for r in rows)
        # Before: the newest 50 that LIKE kept (ASCII case aside), of which the shell showed those that start with
        # the word. The same, unless more than 50 ids start with the word in either case: then fewer (the newest).
        like = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        before = [r[0] for r in j.db_read(old, (like,)) if r[0].startswith(word)]
        if len(j.db_read(old.replace("LIMIT 50", ""), (like,))) <= 50:
            assert before == want, word
        else:
            assert before == want[: len(before)], word
    j.close()


def test_task_id_completion_reads_a_range_for_a_rare_word_and_walks_for_a_common_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(complete, "TASKS_SORTED", 3)
    j = Journal(tmp_path / "j.sqlite3")
    for i in range(6):
        j.record(entry(f"task_{i}", created_at=time.time() - i))
    cases = {"task_1": [TASKS_COUNT, TASKS_BY_ID], "task_": [TASKS_COUNT, TASKS_NEWEST], "": [TASKS_NEWEST]}
    for word, sqls in cases.items():
        statements: list[str] = []
        j.db.set_trace_callback(statements.append)
        task_rows(j.db_read, word)
        j.db.set_trace_callback(None)
        assert [s.startswith(_prefix(sql)) for s, sql in zip(statements, sqls, strict=True)] == [True] * len(sqls)
        for s in statements:
            assert not faults(j.db, s), s
            plan = [r[3] for r in j.db.execute("EXPLAIN QUERY PLAN " + s)]
            if s.startswith(_prefix(TASKS_NEWEST)):
                assert plan == ["SCAN tasks USING COVERING INDEX tasks_created"], plan  # no sort: stops at the 50th
            else:
                assert "SEARCH tasks USING COVERING INDEX tasks_ids (id>? AND id<?)" in plan, plan
    j.close()
