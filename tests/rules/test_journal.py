"""The task journal: rows survive processes, concurrent writers lose nothing, bad files are refused untouched."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from wanvid.errors import StorageError
from wanvid.store.journal import SCHEMA, Entry, Journal, Part, journal_path

from ..helpers import CAT, run


def entry(task_id: str, **kw: object) -> Entry:
    now = time.time()
    base = {
        "id": task_id,
        "base_url": "http://gw",
        "protocol": "native",
        "profile": "default",
        "created_at": now,
        "updated_at": now,
        "status": "PENDING",
    }
    return Entry(**{**base, **kw})  # type: ignore[arg-type]


def test_the_journal_lives_in_wanvid_data_dir(isolated: Path) -> None:
    j = Journal()
    j.record(entry("t1"))
    assert journal_path() == isolated / "data" / "journal.sqlite3" and journal_path().is_file()
    assert (journal_path().stat().st_mode & 0o777) == 0o600


def test_rows_round_trip_and_latest_is_per_profile_and_gateway() -> None:
    j = Journal()
    j.record(entry("old", created_at=time.time() - 60))
    j.record(entry("new"))
    j.record(entry("other-profile", profile="work"))
    j.record(entry("other-gateway", base_url="http://elsewhere"))
    latest = j.latest("default", "http://gw")
    assert latest is not None and latest.id == "new"
    j.update("http://gw", "new", status="SUCCEEDED", video_url="http://v")
    got = Journal().get("http://gw", "new")  # a second connection, as another process would open
    assert got is not None and (got.status, got.video_url) == ("SUCCEEDED", "http://v")
    assert [e.id for e in j.recent(profile="default", base_url="http://gw")] == ["new", "old"]
    assert [e.id for e in j.unfinished("default", "http://gw")] == ["old"]


def test_same_request_finds_only_tasks_that_can_still_deliver() -> None:
    j = Journal()
    j.record(entry("failed", request_hash="h", status="FAILED"))
    assert j.same_request("h", "http://gw", "default") is None
    j.record(entry("stale", request_hash="h", status="SUCCEEDED", created_at=time.time() - 25 * 3600))
    assert j.same_request("h", "http://gw", "default") is None  # past its 24 h life
    j.record(entry("url-gone", request_hash="h", status="SUCCEEDED", expires_at=time.time() - 1))
    assert j.same_request("h", "http://gw", "default") is None  # its signed URL has expired
    j.record(entry("live", request_hash="h", status="RUNNING"))
    found = j.same_request("h", "http://gw", "default")
    assert found is not None and found.id == "live"
    assert j.same_request("h", "http://another-gateway", "default") is None
    assert j.same_request("h", "http://gw", "work") is None  # another profile: another key, another account


def test_parts_are_recorded_by_path() -> None:
    j = Journal()
    p = Path("/x/v.mp4.part")
    assert j.part(p) is None
    j.save_part(p, Part("t1", "http://gw/content", '"abc"', 1000))
    assert Journal().part(p) == Part("t1", "http://gw/content", '"abc"', 1000)
    j.drop_part(p)
    assert j.part(p) is None


def _writer(path: str, worker: int, count: int) -> None:
    j = Journal(Path(path))
    for i in range(count):
        j.record(entry(f"w{worker}-{i}", request_hash=str(worker)))
        j.update("http://gw", f"w{worker}-{i}", status="RUNNING")


def test_concurrent_processes_lose_no_rows(isolated: Path) -> None:
    path = isolated / "shared.sqlite3"
    ctx = multiprocessing.get_context("spawn")  # real separate interpreters, as separate wanvid runs
    procs = [ctx.Process(target=_writer, args=(str(path), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = Journal(path).recent(limit=1000)
    assert len(rows) == 160 and {e.status for e in rows} == {"RUNNING"}
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_corrupt_journal_is_refused_and_left_untouched(isolated: Path) -> None:
    path = journal_path()
    path.parent.mkdir(parents=True)
    garbage = b"this is not a database, but it is somebody's file\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(StorageError, match="unreadable") as caught:
        Journal().latest("default", "http://gw")
    assert caught.value.exit_code == 8 and "mv " in (caught.value.hint or "")
    assert path.read_bytes() == garbage


def test_a_newer_schema_is_refused_and_left_untouched(isolated: Path) -> None:
    path = journal_path()
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE future (x)")
    db.execute(f"PRAGMA user_version={SCHEMA + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StorageError, match="newer wanvid") as caught:
        Journal().record(entry("t1"))
    assert caught.value.exit_code == 8 and "upgrade" in (caught.value.hint or "")
    assert path.read_bytes() == before


def test_a_foreign_sqlite_file_is_not_adopted(isolated: Path) -> None:
    path = journal_path()
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="not a wanvid journal"):
        Journal().record(entry("t1"))
    assert [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")] == ["notes"]


def test_cli_reports_a_corrupt_journal_with_exit_8_before_paying(isolated: Path, sandbox) -> None:
    path = journal_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage" * 1000)
    proc = run("run", str(CAT), "-p", "go", sb=sandbox)
    assert proc.returncode == 8, proc.stderr
    assert proc.stderr.startswith("error: the journal ") and "mv " in proc.stderr
    assert sandbox.requests() == []  # nothing was paid for
    assert path.read_bytes() == b"garbage" * 1000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20 10:00:00.123", 1795168800.123),  # native: the gateway's local form, read as UTC
        ("2026-11-20 10:00:00", 1795168800.0),
        ("2026-11-20T10:00:00.123", 1795168800.123),
        ("2026-11-20 10:00:00 UTC", 1795168800.0),  # unified: what wanvid.gateway.protocols makes of unix seconds
        ("2026-11-20T18:00:00+08:00", 1795168800.0),  # an explicit offset is honoured
        ("", None),
        (None, None),
        ("yesterday", None),
        ("2026-13-40 99:00:00", None),
    ],
)
def test_gateway_times_are_read_in_every_form_they_come_in(text, expected):
    from wanvid.store.records import _parse_time

    got = _parse_time(text)
    assert got == expected if expected is None else got == pytest.approx(expected)


def test_a_new_journal_opened_by_many_at_once_opens_for_all(tmp_path):
    """Two batches (or one batch's rows) starting on a journal that does not exist yet: while one connection turns
    the new file to WAL, SQLite answered the others "locked" at once, without waiting, and a row failed with exit 8
    (about one start in fifteen). Each of 40 fresh journals is opened by 12 threads at the same moment."""
    import threading
    import uuid

    failed: list[str] = []
    for n in range(40):
        path = tmp_path / f"{n}.sqlite3"
        barrier = threading.Barrier(12)

        def one(i: int, path: Path = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                journal = Journal(path)
                journal.output(Path(f"/videos/{i}.mp4"))  # a row's first look: is its video saved already?
                token = uuid.uuid4().hex
                journal.claim(f"request-{i}", "http://gw", "default", token)
                journal.release(token)
                journal.close()
            except StorageError as exc:
                failed.append(exc.message)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failed == []
