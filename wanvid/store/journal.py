"""The task journal: every task created on this machine, kept in SQLite so nothing paid for is lost.

One file, ``journal.sqlite3`` in the platform's data dir (platformdirs; moved by ``WANVID_DATA_DIR``).
A task is recorded right after the gateway answers the create request, before the first poll, and
updated whenever wanvid learns more (status, video URL, output file). Partial downloads record their
source here too, so a later process can resume them.

Never paying twice across processes: before a create request is sent, ``claim`` takes a row in
``claims`` for its request hash, profile and gateway, in the same transaction that looks for a live task
answering the same request. A second process with the identical request finds the claim and waits for
the task to be recorded (``record`` drops the claim in the same transaction), then reuses it. A claim
whose process is gone (no such pid on this host, or older than ``CLAIM_LIFE``) is taken over, and so is
one this process left behind after a create that may have made a task.

Concurrency: WAL mode plus a busy timeout, and every write is one short ``BEGIN IMMEDIATE``
transaction, so several wanvid processes share the file without lost or torn rows. Within a process one
``Journal`` may serve several threads (a batch's workers): a lock takes them in turn. Durability: the
commit that records a new task id is synced (``synchronous=FULL``); every other one is ``NORMAL`` (in WAL:
safe against a crash of the process; on power loss the last few may roll back, never a task id).

Scale: every query is served by an index and reads only the rows it returns (a test checks each plan), so
a journal of 100,000 tasks costs what one of ten does; ``prune`` drops the rows of old tasks past their
life, ``vacuum`` shrinks the file.

Opening: a new journal opened
by many at once (two batches starting) is opened again when SQLite refuses one of them while another
turns the file to WAL. A file that is not
a journal, or one written by a newer wanvid (``PRAGMA user_version`` above ``SCHEMA``), is refused
with a ``StorageError`` and never touched; so is a journal path that is a symbolic link. Older schemas
are upgraded in place (columns, tables and indexes added; an index replaced, no row dropped; schema 5's index
takes ~0.1 s for 100,000 tasks, once). Nothing here prints, and every value written passes ``wanvid.redact``
first: a key a gateway echoed never lands in the file.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from wanvid import config
from wanvid.errors import StorageError

SCHEMA = 5  # 1: tasks, parts, outputs; 2: parts.size/mtime_ns, claims; 3: an index for every query;
# 4: the same indexes again, for a journal that reached 3 before all of them existed (an INDEXED BY needs its index);
# 5: tasks_ids, task ids by prefix (the task-id completion)
TASK_LIFE = 24 * 3600.0  # task ids and result URLs live 24 h (API.md)
BUSY_TIMEOUT = 30.0  # seconds another process may hold the write lock before we give up

_TASKS = """
CREATE TABLE IF NOT EXISTS tasks (
    id            TEXT NOT NULL,
    base_url      TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    profile       TEXT NOT NULL,
    model         TEXT,
    request       TEXT,     -- JSON: the request, local files as {"path", "sha256", "bytes"}
    request_hash  TEXT,     -- sha256 of the canonical request: the key for "never pay twice"
    resolution    TEXT,
    duration      INTEGER,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    status        TEXT NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    request_id    TEXT,
    video_url     TEXT,
    expires_at    REAL,     -- when the task and its result are gone for good
    ended_at      REAL,     -- when wanvid first saw it end
    took          REAL,     -- seconds from submission to finish, by the gateway's own clock
    output_path   TEXT,     -- where `run` meant to save it, then where it was saved
    output_bytes  INTEGER,
    downloaded_at REAL,
    PRIMARY KEY (base_url, id)
)"""
_PARTS = """
CREATE TABLE IF NOT EXISTS parts (
    path       TEXT PRIMARY KEY,  -- absolute path of the <target>.part file
    task_id    TEXT NOT NULL,
    source     TEXT NOT NULL,     -- the URL the bytes came from
    etag       TEXT,
    total      INTEGER,
    updated_at REAL NOT NULL,
    size       INTEGER,           -- the file's size and mtime when wanvid last stopped writing it:
    mtime_ns   INTEGER            -- a .part changed since then by something else is not resumed
)"""
_PARTS_V2 = ("ALTER TABLE parts ADD COLUMN size INTEGER", "ALTER TABLE parts ADD COLUMN mtime_ns INTEGER")
_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    request_hash TEXT NOT NULL,
    base_url     TEXT NOT NULL,
    profile      TEXT NOT NULL,
    pid          INTEGER NOT NULL,  -- the process sending the create request
    host         TEXT NOT NULL,     -- ... on this machine (a journal on a shared disk may see others)
    token        TEXT NOT NULL,     -- this claim, not an older one of a recycled pid
    started_at   REAL NOT NULL,
    PRIMARY KEY (request_hash, base_url, profile)
)"""
_OUTPUTS = """
CREATE TABLE IF NOT EXISTS outputs (
    path         TEXT PRIMARY KEY,  -- absolute path of a saved video
    task_id      TEXT NOT NULL,
    base_url     TEXT NOT NULL,
    request_hash TEXT,              -- lets a rerun of the same command see the work is done
    bytes        INTEGER NOT NULL,
    saved_at     REAL NOT NULL
)"""
_LIFE = f"coalesce(nullif(expires_at, 0), created_at + {TASK_LIFE!r})"  # Entry.life_ends, in SQL
# One index for every query the journal makes (tests/rules/test_journal_scale.py checks each query's plan), so
# that a command costs the same with a journal of 100,000 tasks as with one of ten.
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS tasks_recent ON tasks (profile, base_url, created_at)",
    "CREATE INDEX IF NOT EXISTS tasks_same ON tasks (request_hash, base_url, profile, created_at)",
    "CREATE INDEX IF NOT EXISTS tasks_state ON tasks (profile, base_url, status, created_at)",
    "CREATE INDEX IF NOT EXISTS tasks_any_state ON tasks (status, created_at)",
    # covering: `list --all` reads it alone, newest first, and so does the task-id completion for a prefix that
    # more than a thousand ids share
    "CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at, id, status, model)",
    # covering: the task-id completion reads the ids that start with a prefix as one range (wanvid.cli.complete)
    "CREATE INDEX IF NOT EXISTS tasks_ids ON tasks (id, created_at, status, model)",
    # by when a task's life ends (``_LIFE``, the very expression the queries use): a filter on a state that
    # only live tasks show reads the live ones (a day's worth), not every task that ever had that state
    f"CREATE INDEX IF NOT EXISTS tasks_alive ON tasks (profile, base_url, status, {_LIFE})",
    f"CREATE INDEX IF NOT EXISTS tasks_any_alive ON tasks (status, {_LIFE})",
    "CREATE INDEX IF NOT EXISTS tasks_typical ON tasks (base_url, model, resolution, duration, created_at) "
    "WHERE status = 'SUCCEEDED'",
    "CREATE INDEX IF NOT EXISTS outputs_request ON outputs (request_hash, saved_at)",
)
_INDEXES_DROPPED = ("DROP INDEX IF EXISTS tasks_request",)  # schema 1-2: request_hash alone, planned around

UNFINISHED = ("PENDING", "RUNNING", "UNRECOGNIZED")
TYPICAL_SETTLED = 5  # successes of a kind after which typical_seconds is cached for the journal object's life
# What `list --status` filters on: the shown states, plus "UNFINISHED" for any of the above still alive.
STATES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "EXPIRED", "NOT_FOUND", "UNFINISHED")


@dataclass
class Entry:
    """One journal row."""

    id: str
    base_url: str
    protocol: str
    profile: str
    created_at: float
    updated_at: float
    status: str
    model: str | None = None
    request: str | None = None
    request_hash: str | None = None
    resolution: str | None = None
    duration: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    video_url: str | None = None
    expires_at: float | None = None
    ended_at: float | None = None
    took: float | None = None
    output_path: str | None = None
    output_bytes: int | None = None
    downloaded_at: float | None = None

    @property
    def life_ends(self) -> float:
        return self.expires_at or self.created_at + TASK_LIFE

    def expired(self, now: float | None = None) -> bool:
        return (now or time.time()) >= self.life_ends

    @property
    def shown_status(self) -> str:
        """The status as listed: EXPIRED once a task that did not fail has outlived its 24 h."""
        if self.status in ("FAILED", "CANCELED"):
            return self.status
        return "EXPIRED" if self.expired() else self.status

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED and not self.expired()

    def request_data(self) -> dict[str, Any]:
        return json.loads(self.request) if self.request else {}

    def to_dict(self) -> dict[str, Any]:
        """The row as ``list --json`` prints it: times as ISO 8601 UTC text (``took`` stays seconds)."""
        from wanvid.rules.task import utc

        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _TIMES:
            doc[name] = utc(doc[name])
        doc["request"] = self.request_data()
        doc["shown_status"] = self.shown_status
        return doc


_COLUMNS = tuple(f.name for f in fields(Entry))
_TIMES = ("created_at", "updated_at", "expires_at", "ended_at", "downloaded_at")  # Unix times in the journal


@dataclass
class Part:
    """Where the bytes of a ``.part`` file came from, so a later process can ask for the rest."""

    task_id: str
    source: str
    etag: str | None
    total: int | None
    size: int | None = None  # the file's size and st_mtime_ns when wanvid last stopped writing it
    mtime_ns: int | None = None


# A claim of a live process on this host is waited for this long at most (a recycled pid, say, after a
# container restart); one from another host (a journal on a shared disk) too. A create request, its
# retries under a batch's shared 429 budget included, ends well within it.
CLAIM_LIFE = 3600.0
_HOST = socket.gethostname()
_OURS: set[str] = set()  # tokens of the claims this process is working under right now


@dataclass
class Claim:
    """Another process is sending the create request for the same request right now."""

    pid: int
    host: str
    token: str
    started_at: float
    stale: bool = False  # its owner was gone: taken over

    def abandoned(self) -> bool:
        if time.time() - self.started_at > CLAIM_LIFE:
            return True
        if self.host != _HOST:
            return False
        if self.pid == os.getpid():
            return self.token not in _OURS  # left by this process (a create that failed), or a recycled pid
        try:
            os.kill(self.pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return True
        except PermissionError:  # it exists, as another user
            return False
        return False


def data_dir() -> Path:
    return config.data_dir()


def journal_path() -> Path:
    return config.journal_path()


class Journal:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or journal_path()
        self._db: sqlite3.Connection | None = None
        # One connection may serve a batch's worker threads (wanvid.jobs.session): each read and each write
        # transaction holds this lock, so the threads take turns on it as SQLite's own mutex would make them.
        self._lock = threading.RLock()
        self._typical: dict[tuple[Any, ...], tuple[float, int] | None] = {}

    # -- opening ----------------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            with self._lock:
                if self._db is None:
                    self._db = self._open()
        return self._db

    @contextmanager
    def _writing(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock. ``durable``: synced to the disk before it returns (a new task
        id); every other write is synced at the next checkpoint (WAL with synchronous=NORMAL: safe against a
        crash of the process, the last few may roll back if the machine loses power)."""
        with self._lock:
            db = self.db
            if durable:
                db.execute("PRAGMA synchronous=FULL")
            try:
                with _transaction(db):
                    yield db
            finally:
                if durable:
                    db.execute("PRAGMA synchronous=NORMAL")

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.path.exists() and not self.path.is_file() and not self.path.is_symlink():
                raise StorageError(
                    f"the journal {self.path} is not a regular file", hint="move it aside, then run again"
                )
            if self.path.is_symlink():  # SQLite would write through it into whatever it points at
                raise StorageError(
                    f"the journal {self.path} is a symbolic link; wanvid does not write through links",
                    hint="remove the link (or point WANVID_DATA_DIR at the directory it leads to)",
                )
        except OSError as exc:
            raise self._unusable(exc) from None
        # A journal being created by several processes (or threads) at once: while one of them turns the new
        # file to WAL, SQLite answers the others "locked" at once, without waiting (its deadlock rule), so the
        # opening is tried again, within the same time a locked write would wait.
        until = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                return self._connect()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= until:
                    raise self._unusable(exc) from None
                time.sleep(random.uniform(0.005, 0.05))
            except sqlite3.Error as exc:
                raise self._unusable(exc) from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA:
                raise StorageError(
                    f"the journal {self.path} is from a newer wanvid (schema {version}; this one knows {SCHEMA})",
                    hint="upgrade wanvid (pip install -U wanvid), or point WANVID_DATA_DIR at another directory",
                )
            if version < SCHEMA:
                self._create(db)
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
            db.execute("PRAGMA synchronous=NORMAL")  # a commit is not an fsync; see _writing
        except BaseException:
            db.close()
            raise
        return db

    def _create(self, db: sqlite3.Connection) -> None:
        """Create the tables, or bring a journal of an older schema up to this one (adding, never dropping)."""
        with _transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version >= SCHEMA:
                return  # another process created it while we waited for the lock
            if version == 0:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    # Tables but no version: not a file this program wrote. Refuse rather than guess.
                    raise sqlite3.DatabaseError("file is not a wanvid journal")
                db.execute(_TASKS)
                db.execute(_PARTS)
                db.execute(_OUTPUTS)
            elif version == 1:
                for statement in _PARTS_V2:
                    db.execute(statement)
            db.execute(_CLAIMS)
            for statement in (*_INDEXES_DROPPED, *_INDEXES):  # schema 3-5: built once, as the journal is opened
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA}")
        os.chmod(self.path, 0o600)  # it names your files and prompts

    def _unusable(self, exc: BaseException) -> StorageError:
        reason = str(exc).rstrip(".")
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return StorageError(
                f"the journal {self.path} is unreadable ({reason})",
                hint=f"move it aside (mv {self.path} {self.path}.bad) and run again; wanvid never overwrites it",
            )
        if "full" in reason or getattr(exc, "errno", None) == 28:  # SQLITE_FULL, ENOSPC
            return StorageError(
                f"no space left on the device for the journal {self.path} ({reason})",
                hint="free some space, then run again",
            )
        if "disk I/O error" in reason:  # SQLITE_IOERR: a write the system refused (a quota, a file size limit)
            return StorageError(
                f"the system refused a write to the journal {self.path} ({reason}): the disk or your quota may "
                "be full, or the disk failing",
                hint="free some space (or check the disk), then run again",
            )
        if "locked" in reason:
            return StorageError(
                f"the journal {self.path} stayed locked for {BUSY_TIMEOUT:.0f}s ({reason})",
                hint="another wanvid is writing to it; try again",
            )
        return StorageError(
            f"cannot use the journal {self.path} ({reason})",
            hint="make its directory writable, or point WANVID_DATA_DIR at one that is",
        )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- tasks ------------------------------------------------------------------------------------
    def record(self, entry: Entry, claim: str | None = None) -> None:
        """Insert a new task (or replace a row with the same gateway and id), and drop the ``claim`` under
        which it was created in the same transaction: a waiting process sees the task, never a gap."""
        from wanvid.redact import scrub_json

        marks = ", ".join("?" for _ in _COLUMNS)
        try:
            with self._writing(durable=True) as db:  # a paid-for task id: on the disk before anything else
                db.execute(
                    f"INSERT OR REPLACE INTO tasks ({', '.join(_COLUMNS)}) VALUES ({marks})",
                    scrub_json(tuple(getattr(entry, c) for c in _COLUMNS)),
                )
                if claim is not None:
                    db.execute("DELETE FROM claims WHERE token = ?", (claim,))
                    _OURS.discard(claim)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def update(self, base_url: str, task_id: str, **changes: Any) -> None:
        """Change some columns of a known task; unknown tasks (created elsewhere) are left alone."""
        changes["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in changes)
        self._write(
            f"UPDATE tasks SET {assignments} WHERE base_url = ? AND id = ?",
            (*changes.values(), base_url, task_id),
        )

    def get(self, base_url: str, task_id: str) -> Entry | None:
        rows = self._read("SELECT * FROM tasks WHERE base_url = ? AND id = ?", (base_url, task_id))
        return rows[0] if rows else None

    def latest(self, profile: str, base_url: str) -> Entry | None:
        rows = self._read(
            "SELECT * FROM tasks WHERE profile = ? AND base_url = ? ORDER BY created_at DESC LIMIT 1",
            (profile, base_url),
        )
        return rows[0] if rows else None

    def recent(
        self,
        *,
        profile: str | None = None,
        base_url: str | None = None,
        limit: int = 20,
        since: float | None = None,
    ) -> list[Entry]:
        """The newest tasks (created at ``since`` or later), newest first."""
        where, args = _where(profile=profile, base_url=base_url)  # type: tuple[str, tuple[Any, ...]]
        if since is not None:
            where, args = f"{where} {'AND' if where else 'WHERE'} created_at >= ?", (*args, since)
        return self._read(f"SELECT * FROM tasks {where} ORDER BY created_at DESC LIMIT ?", (*args, limit))

    def listed(
        self, state: str | None, *, profile: str | None = None, base_url: str | None = None, limit: int = 20
    ) -> list[Entry]:
        """The newest tasks in ``state`` (one of ``STATES``, as shown; None: any), filtered and limited in SQL."""
        where, args = _where(profile=profile, base_url=base_url)
        condition, more = _state_condition(state, time.time())
        if condition:
            where = f"{where} AND {condition}" if where else f"WHERE {condition}"
        # A state only live tasks show is read by when lives end, from now on: the live tasks (a day's worth)
        # are read and sorted, never the older ones that ever had that state (the planner, without
        # statistics, would rather walk those newest first).
        table = "tasks"
        if condition and _ALIVE in condition and "NOT " not in condition:
            table += " INDEXED BY " + ("tasks_alive" if profile and base_url else "tasks_any_alive")
        sql = f"SELECT * FROM {table} {where} ORDER BY created_at DESC LIMIT ?"
        return self._read(sql, (*args, *more, max(0, limit)))

    def unfinished(self, profile: str, base_url: str) -> list[Entry]:
        """Every live unfinished task of a profile and gateway, oldest first."""
        return self.listed("UNFINISHED", profile=profile, base_url=base_url, limit=1_000_000)[::-1]

    def same_request(self, request_hash: str, base_url: str, profile: str) -> Entry | None:
        """The newest task of this profile (so of its key) for an identical request that can still deliver:
        running, or done and unexpired."""
        now = time.time()
        rows = self._read(
            "SELECT * FROM tasks WHERE request_hash = ? AND base_url = ? AND profile = ? AND created_at > ? "
            "AND status NOT IN ('FAILED', 'CANCELED', 'NOT_FOUND') ORDER BY created_at DESC",
            (request_hash, base_url, profile, now - TASK_LIFE),
        )
        return next((e for e in rows if not e.expired(now)), None)

    def has_profile(self, profile: str) -> bool:
        """Whether any task of ``profile`` is journaled (``list`` tells a profile in use from a typo)."""
        return bool(self.db_read("SELECT 1 FROM tasks WHERE profile = ? LIMIT 1", (profile,)))

    # -- claims: one create per request at a time, across processes ------------------------------
    def claim(self, request_hash: str, base_url: str, profile: str, token: str) -> Entry | Claim | None:
        """Before paying for a request, in one transaction: the live task that already answers it (reuse
        it), or another process's claim on creating it right now (wait, then ask again), or None: the claim
        is ours (``token``) until ``record(..., claim=token)`` or ``release(token)``.

        A claim whose owner is gone is taken over: its process no longer runs on this host, or it is older
        than ``CLAIM_LIFE`` (a process elsewhere, or a recycled pid). ``Claim.stale`` says so, because the
        owner may have died after the gateway made the task and before the journal heard of it."""
        try:
            with self._writing() as db:
                reused = self.same_request(request_hash, base_url, profile)
                if reused is not None:
                    return reused
                key = (request_hash, base_url, profile)
                row = db.execute(
                    "SELECT pid, host, token, started_at FROM claims WHERE request_hash = ? AND base_url = ? "
                    "AND profile = ?",
                    key,
                ).fetchone()
                held = Claim(*row) if row else None
                if held is not None and held.token != token and not held.abandoned():
                    return held
                db.execute(
                    "INSERT OR REPLACE INTO claims (request_hash, base_url, profile, pid, host, token, started_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (*key, os.getpid(), _HOST, token, time.time()),
                )
                _OURS.add(token)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        if held is not None and held.token != token:
            held.stale = True
            return held
        return None

    def release(self, token: str) -> None:
        """Give up a claim (the create failed, or was never sent): the next identical request may pay."""
        _OURS.discard(token)
        self._write("DELETE FROM claims WHERE token = ?", (token,))

    def disown(self, token: str) -> None:
        """Stop working under a claim but leave it standing (a create that may have made a task): it is taken
        over, with a warning, once this process is gone (or by this process, which knows it is not working)."""
        _OURS.discard(token)

    def typical_seconds(self, base_url: str, entry: Entry) -> tuple[float, int] | None:
        """(median seconds from submission to finish, how many) of recent successes like ``entry``: same
        gateway, model, resolution and duration. The gateway's own timestamps, so a task first looked at
        an hour after it finished still tells the truth. Kept for the life of this journal object (a batch's
        rows share one) once TYPICAL_SETTLED tasks make it: a batch that starts with no history learns one
        from its own first rows, and one more success barely moves a median of 5 to 20."""
        key = (base_url, entry.model, entry.resolution, entry.duration)
        if key in self._typical:
            return self._typical[key]
        rows = self.db_read(
            "SELECT took FROM tasks INDEXED BY tasks_typical WHERE base_url = ? AND model IS ? AND resolution IS ? "
            "AND duration IS ? AND status = 'SUCCEEDED' AND took IS NOT NULL AND id != ? "
            "ORDER BY created_at DESC LIMIT 20",
            (base_url, entry.model, entry.resolution, entry.duration, entry.id),
        )
        seconds = sorted(r[0] for r in rows)
        found = (seconds[len(seconds) // 2], len(seconds)) if seconds else None
        if found is not None and found[1] >= TYPICAL_SETTLED:  # a median of few moves with each success: ask again
            self._typical[key] = found
        return found

    # -- retention --------------------------------------------------------------------------------
    def prune(self, older_than: float, *, dry_run: bool = False) -> int:
        """Drop the rows of tasks created more than ``older_than`` seconds ago whose life is over and whose
        outcome is on disk or never was to be: saved videos, failed and canceled tasks. How many (would be)
        dropped. Never a task that may still be fetched, nor one whose video was paid for and never saved (its
        row is the only record of it: ``list --status expired``); ``outputs`` stays, so a rerun still finds
        the videos saved before."""
        now = time.time()
        where = (
            f"WHERE created_at < ? AND NOT {_ALIVE} AND (downloaded_at IS NOT NULL OR status IN ('FAILED', 'CANCELED'))"
        )
        args = (now - max(older_than, TASK_LIFE), now)
        try:
            with self._writing() as db:
                count = int(db.execute(f"SELECT count(*) FROM tasks {where}", args).fetchone()[0])
                if not dry_run:
                    db.execute(f"DELETE FROM tasks {where}", args)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        return count

    def vacuum(self) -> tuple[int, int]:
        """Rewrite the file without its free pages; its size (bytes) before and after."""
        before = self.path.stat().st_size if self.path.exists() else 0
        try:
            with self._lock:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.db.execute("VACUUM")
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        return before, self.path.stat().st_size

    # -- saved videos -----------------------------------------------------------------------------
    def saved(self, entry: Entry, path: Path, size: int, *, part: Path | None = None) -> None:
        """Record that ``entry``'s video is now at ``path`` (one task may be saved to several paths), and
        forget the ``part`` it was downloaded into, in the same transaction."""
        from wanvid.redact import scrub_json

        now = time.time()
        try:
            with self._writing() as db:
                db.execute(
                    "UPDATE tasks SET output_path = ?, output_bytes = ?, downloaded_at = ?, updated_at = ? "
                    "WHERE base_url = ? AND id = ?",
                    scrub_json((str(path), size, now, now, entry.base_url, entry.id)),
                )
                db.execute(
                    "INSERT OR REPLACE INTO outputs (path, task_id, base_url, request_hash, bytes, saved_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    scrub_json((str(path), entry.id, entry.base_url, entry.request_hash, size, now)),
                )
                if part is not None:
                    db.execute("DELETE FROM parts WHERE path = ?", (str(part),))
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def output(self, path: Path) -> tuple[str, str | None, int] | None:
        """(task id, request hash, bytes) of the video wanvid last saved at ``path``."""
        rows = self.db_read("SELECT task_id, request_hash, bytes FROM outputs WHERE path = ?", (str(path),))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def outputs_for(self, request_hash: str) -> list[tuple[str, str]]:
        """(path, task id) of every video wanvid saved for this request, newest first."""
        rows = self.db_read(
            "SELECT path, task_id FROM outputs WHERE request_hash = ? ORDER BY saved_at DESC", (request_hash,)
        )
        return [(r[0], r[1]) for r in rows]

    # -- partial downloads ------------------------------------------------------------------------
    def part(self, path: Path) -> Part | None:
        row = self.db_read(
            "SELECT task_id, source, etag, total, size, mtime_ns FROM parts WHERE path = ?", (str(path),)
        )
        return Part(*row[0]) if row else None

    def save_part(self, path: Path, part: Part) -> None:
        self._write(
            "INSERT OR REPLACE INTO parts (path, task_id, source, etag, total, updated_at, size, mtime_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (str(path), part.task_id, part.source, part.etag, part.total, time.time(), part.size, part.mtime_ns),
        )

    def drop_part(self, path: Path) -> None:
        self._write("DELETE FROM parts WHERE path = ?", (str(path),))

    # -- plumbing ---------------------------------------------------------------------------------
    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        # Every value passes the key filter (wanvid.redact): whatever a server echoed, the file never holds it.
        from wanvid.redact import scrub_json

        try:
            with self._writing() as db:
                db.execute(sql, scrub_json(args))
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def db_read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[Entry]:
        try:
            with self._lock:
                cur = self.db.execute(sql, args)
                names = [d[0] for d in cur.description]
                rows = cur.fetchall()
            return [Entry(**dict(zip(names, row, strict=True))) for row in rows]
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")  # take the write lock now, not halfway through
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


_ALIVE = f"{_LIFE} > ?"  # not Entry.expired()


def _state_condition(state: str | None, now: float) -> tuple[str, tuple[Any, ...]]:
    """``Entry.shown_status == state`` (or ``Entry.unfinished``) as SQL, written so an index serves it: the
    unfinished states name the partial index's exact ``status IN (...)``."""
    unfinished = "status IN ('PENDING', 'RUNNING', 'UNRECOGNIZED')"
    if state is None:
        return "", ()
    if state == "UNFINISHED":
        return f"{unfinished} AND {_ALIVE}", (now,)
    if state in ("FAILED", "CANCELED"):
        return "status = ?", (state,)
    if state == "EXPIRED":
        return f"status NOT IN ('FAILED', 'CANCELED') AND NOT {_ALIVE}", (now,)
    if state in UNFINISHED:
        return f"{unfinished} AND status = ? AND {_ALIVE}", (state, now)
    return f"status = ? AND {_ALIVE}", (state, now)


def _where(**filters: str | None) -> tuple[str, tuple[str, ...]]:
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", ()
    return "WHERE " + " AND ".join(f"{k} = ?" for k in used), tuple(used.values())
