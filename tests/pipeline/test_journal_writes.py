"""How often a batch row writes to the journal: every write transaction is a lock other processes wait on and
a commit, and only the one that keeps a new task id is synced to the disk.

The journal's connection is traced (SQLite's own trace hook) while a batch runs through the Python API
against a real sandbox whose tasks end at once, so each row's path is fixed: claim the request, record the
new task id, the status that says it ended, the ``.part``'s origin as the download starts, the saved video.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import wanvid
from wanvid.sandbox import Sandbox
from wanvid.store.journal import Journal

from ..helpers import TEST_KEY

ROWS = 4


@pytest.fixture
def instant() -> Iterator[Sandbox]:
    with Sandbox(queue_seconds=0, run_seconds=0) as sb:
        yield sb


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the journal's connections run, in order."""
    seen: list[str] = []
    connect = Journal._connect

    def traced(self: Journal) -> sqlite3.Connection:
        db = connect(self)
        db.set_trace_callback(seen.append)
        return db

    monkeypatch.setattr(Journal, "_connect", traced)
    return seen


def test_a_batch_row_makes_five_journal_writes_and_one_sync(
    instant: Sandbox, statements: list[str], isolated: Path
) -> None:
    lines = []
    for i in range(ROWS):
        Image.new("RGB", (320, 320), (i * 40, 10, 10)).save(isolated / f"s{i}.png")
        lines.append(f"s{i}.png,row {i}")
    (isolated / "m.csv").write_text("image,prompt\n" + "\n".join(lines) + "\n")

    got = wanvid.Wanvid(base_url=instant.url, api_key=TEST_KEY).batch(isolated / "m.csv", output_dir="out")

    assert got.exit_code == 0 and got.summary["saved"] == ROWS
    writes = [s for s in statements if s == "BEGIN IMMEDIATE"]
    synced = [s for s in statements if s == "PRAGMA synchronous=FULL"]
    # claim, record (synced), SUCCEEDED, the .part's origin, the saved video with the .part forgotten
    assert len(writes) == 5 * ROWS, statements
    assert len(synced) == ROWS
    # nothing the merged writes used to keep is missing
    db = sqlite3.connect(isolated / "data" / "journal.sqlite3")
    assert db.execute("SELECT count(*) FROM parts").fetchone()[0] == 0
    saved = db.execute("SELECT output_path, downloaded_at FROM tasks").fetchall()
    assert sorted(Path(p).name for p, _ in saved) == [f"s{i}.mp4" for i in range(ROWS)]
    assert all(at is not None for _, at in saved)
    assert db.execute("SELECT count(*) FROM outputs").fetchone()[0] == ROWS
