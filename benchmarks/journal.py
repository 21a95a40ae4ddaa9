"""Journal rows: a journal of 100,000 tasks costs nothing extra, for every command that reads it and for a batch.

Journals of 1, 1,000, 10,000 and 100,000 rows (quick mode: 1 and 10,000) each get their own data dir.
Each starts with one real task: ``wanvid create`` against the sandbox (so the journal's file, schema and
newest row are wanvid's own), then ``wanvid wait`` and ``wanvid download`` (so it is finished and saved).
The other rows are older copies of that row with their own ids, request hashes, times, statuses and models
(89 % succeeded and saved, 3 % succeeded and never downloaded, 6 % failed, 1 % canceled, 0.5 % not found,
0.5 % pending or running but never followed, all past their 24 h; and ``LIVE`` tasks still pending or
running, created in the last hour, of a second profile, so that every state ``list --status`` accepts has
something to find while the default profile's ``wait --all`` has nothing unfinished), written with direct
SQL inserts in one transaction through the journal's own schema (``wanvid.store.journal``): a 100k journal
takes a few seconds to build, not 100,000 processes.

Every command is a whole process (``common.measure``) of wanvid installed from a wheel (``installed_copy``),
all sizes interleaved; the ratio is the median at the largest size over the median at 1 row. ``list``'s
peak RSS is compared the same way. Task-id completion is asked twice: with an empty word (every id matches:
the newest 50 are offered) and with a rare word, the shortest prefix of the journal's oldest id that no other
id shares (one id offered; the oldest, so a query that walks the ids newest first would read them all).

Then a batch of 100 rows (quick mode: 20) runs on every journal of the curve but the 1-row one (1,000,
10,000, 100,000; quick: 10,000) and on an empty one (``-j 8 --stagger 0``, tasks that end at once), three
times each (quick: twice), interleaved; judged at the largest size.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import time
import uuid
from pathlib import Path

from .common import Ctx, Proc, Row, installed_copy, isolated_env, measure, median, mib, ms, rounds, sandbox, say

RATIO_TARGET = 1.25
COMPLETE_TARGET = 0.060
MODELS = ("wan2.7-i2v", "wan2.6-i2v", "wan2.5-i2v-preview")
LIVE = 8  # filler tasks still pending or running (half each), of LIVE_PROFILE: a batch in flight
LIVE_PROFILE = "studio"  # not the default profile, whose `wait --all` is timed with nothing unfinished


def run(ctx: Ctx) -> list[Row]:
    sizes = (1, 10_000) if ctx.quick else (1, 1_000, 10_000, 100_000)
    n = 3 if ctx.quick else 9
    batch_rows = 20 if ctx.quick else 100
    batch_reps = 2 if ctx.quick else 3
    _, wanvid = installed_copy(ctx.tmp)
    rows: list[Row] = []
    with sandbox(ctx.env) as url:
        envs: dict[int, dict[str, str]] = {}
        rare: dict[int, str] = {}  # a prefix of one id only: the journal's oldest
        for size in sizes:
            t0 = time.monotonic()
            envs[size] = _journal(ctx, wanvid, url, size)
            rare[size] = _rare_prefix(Path(envs[size]["WANVID_DATA_DIR"]) / "journal.sqlite3")
            say(f"   journal of {size} rows built in {time.monotonic() - t0:.1f} s; rare word {rare[size]!r}")
        cases: dict[str, tuple[list[str], dict[str, str]]] = {}
        for size, env in envs.items():
            dl = str(Path(env["WANVID_DATA_DIR"]).parent / "videos" / "latest.mp4")
            studio = ["--profile", LIVE_PROFILE]  # where the live tasks are
            commands = {
                "list": ["list"],
                "list --status succeeded": ["list", "--status", "succeeded"],
                "list --status failed": ["list", "--status", "failed"],
                "list --status canceled": ["list", "--status", "canceled"],
                "list --status expired": ["list", "--status", "expired"],
                "list --status pending --profile studio": ["list", "--status", "pending", *studio],
                "list --status running --profile studio": ["list", "--status", "running", *studio],
                "list --status unfinished --profile studio": ["list", "--status", "unfinished", *studio],
                "list --all": ["list", "--all"],
                "list --json": ["list", "--json"],
                "status (no id)": ["status", "-q"],
                "wait (no id, finished)": ["wait", "-q"],
                "download (no id, saved)": ["download", "-q", "-o", dl],
                "create (reuse check)": ["create", "examples/cat.png", "-p", "bench journal", "-q"],
                "wait --all (none unfinished)": ["wait", "--all", "-q"],
            }
            for name, words in commands.items():
                cases[f"{name}@{size}"] = ([wanvid, *words, "--base-url", url], env)
            cases[f"complete task id@{size}"] = (
                [wanvid],
                {**env, "_WANVID_COMPLETE": "complete_bash", "COMP_WORDS": "wanvid status ", "COMP_CWORD": "2"},
            )
            cases[f"complete task id (rare word)@{size}"] = (
                [wanvid],
                {
                    **env,
                    "_WANVID_COMPLETE": "complete_bash",
                    "COMP_WORDS": f"wanvid status {rare[size]}",
                    "COMP_CWORD": "2",
                },
            )
        say(f"   {len(cases)} cases x {n} interleaved runs (+2 warm-up)")
        got = rounds(cases, n)
        small, large = sizes[0], sizes[-1]
        names = sorted({k.split("@")[0] for k in cases}, key=lambda k: list(cases).index(f"{k}@{small}"))
        width = max(30, *(len(name) for name in names))
        say(f"   {'median wall by journal size:':<{width - 1}}" + "  ".join(f"{s:>9,}" for s in sizes))
        for name in names:
            walls = [median([p.wall for p in got[f"{name}@{s}"]]) for s in sizes]
            say(f"   {name:<{width}}" + "  ".join(f"{ms(w):>9}" for w in walls))
        # CPU time (user + system) moves less than wall time when something else shares the cores
        say(f"   {'median CPU by journal size:':<{width - 1}}" + "  ".join(f"{s:>9,}" for s in sizes))
        for name in names:
            cpus = [median([p.cpu for p in got[f"{name}@{s}"]]) for s in sizes]
            say(f"   {name:<{width}}" + "  ".join(f"{ms(c):>9}" for c in cpus))
        for name in names:
            a, b = got[f"{name}@{large}"], got[f"{name}@{small}"]
            wa, wb = median([p.wall for p in a]), median([p.wall for p in b])
            bad = _bad_exit(a + b)
            ok = wa / wb <= RATIO_TARGET and not bad
            note = bad
            target = f"<= {RATIO_TARGET}x"
            if name.startswith("complete task id"):
                offered = [len([line for line in p.out.splitlines() if line.strip()]) for p in (*a, *b)]
                want = 1 if "rare" in name else 50  # the newest 50 of an empty word; the 1-row journal has one
                ok = ok and wa <= COMPLETE_TARGET and set(offered[: len(a)]) == {want} and set(offered[len(a) :]) == {1}
                target += f", <= {ms(COMPLETE_TARGET)}"
                count = f"offers {offered[0]} id{'s' if offered[0] != 1 else ''} (1 row: {offered[-1]})"
                note = "; ".join(x for x in (bad, count) if x)
            rows.append(
                Row(f"journal {large:,} rows: {name}", ms(wa), f"1 row {ms(wb)}", f"{wa / wb:.2f}x", target, ok, note)
            )
        ra = median([p.rss for p in got[f"list@{large}"]])
        rb = median([p.rss for p in got[f"list@{small}"]])
        rows.append(
            Row(
                f"journal {large:,} rows: list peak RSS",
                mib(ra),
                f"1 row {mib(rb)}",
                f"{ra / rb:.2f}x",
                f"<= {RATIO_TARGET}x",
                ra / rb <= RATIO_TARGET,
            )
        )
        rows.append(_batch(ctx, wanvid, url, {s: envs[s] for s in sizes[1:]}, batch_rows, batch_reps))
    return rows


def _rare_prefix(path: Path) -> str:
    """The shortest prefix of the journal's oldest task id that no other id starts with."""
    db = sqlite3.connect(path)
    try:
        oldest = db.execute("SELECT id FROM tasks ORDER BY created_at LIMIT 1").fetchone()[0]
        for length in range(1, len(oldest) + 1):
            word = oldest[:length]
            if db.execute("SELECT count(*) FROM tasks WHERE substr(id, 1, ?) = ?", (length, word)).fetchone()[0] == 1:
                return str(word)
        return str(oldest)
    finally:
        db.close()


def _journal(ctx: Ctx, wanvid: str, url: str, size: int) -> dict[str, str]:
    """A data dir whose journal has ``size`` rows, the newest a real, finished and saved task."""
    home = ctx.tmp / f"journal-{size}"
    env = isolated_env(home)
    (home / "videos").mkdir()
    for words in (
        ["create", "examples/cat.png", "-p", "bench journal", "-q"],
        ["wait", "-q"],
        ["download", "-q", "-o", str(home / "videos" / "latest.mp4")],
    ):
        p = measure([wanvid, *words, "--base-url", url], env)
        if p.rc != 0:
            raise RuntimeError(f"`wanvid {' '.join(words)}` exited {p.rc} while building the journal")
    if size > 1:
        _fill(Path(env["WANVID_DATA_DIR"]) / "journal.sqlite3", size - 1)
    return env


def _fill(path: Path, count: int) -> None:
    """Add ``count`` older tasks, copies of the real row with their own ids, hashes, times and outcomes."""
    from wanvid.store.journal import Journal

    Journal(path).close()  # the schema as this wanvid writes it (the file exists: opening upgrades nothing)
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    real = dict(db.execute("SELECT * FROM tasks").fetchone())
    rnd = random.Random(count)
    now = time.time()
    tasks, outputs = [], []
    for i in range(count):
        created = now - 2 * 86400 - i * (365 * 86400 / max(1, count)) - rnd.random()  # a year, all expired
        row = dict(real)
        task_id = str(uuid.UUID(int=rnd.getrandbits(128)))
        took = 30 + rnd.random() * 90
        roll = rnd.random()
        row.update(
            id=task_id,
            request_hash=f"{rnd.getrandbits(256):064x}",
            model=MODELS[i % len(MODELS)],
            created_at=created,
            updated_at=created + took + 5,
            ended_at=created + took,
            expires_at=created + 86400,
            video_url=None,
            took=took,
            output_path=None,
            output_bytes=None,
            downloaded_at=None,
        )
        if i < LIVE:  # a batch in flight under another profile: the newest of the filler, created in the last hour
            created = now - 60 - i * 300 - rnd.random()
            row.update(status=("PENDING", "RUNNING")[i % 2], profile=LIVE_PROFILE, created_at=created)
            row.update(updated_at=created + 30, ended_at=None, expires_at=None, took=None)
        elif roll < 0.06:
            row.update(status="FAILED", error_code="DataInspectionFailed", error_message="input rejected", took=None)
        elif roll < 0.07:
            row.update(status="CANCELED", took=None)
        elif roll < 0.075:  # the gateway forgot it before wanvid saw it end
            row.update(status="NOT_FOUND", ended_at=None, took=None)
        elif roll < 0.08:  # never followed to its end: shown as expired
            row.update(status=("PENDING", "RUNNING")[i % 2], ended_at=None, expires_at=None, took=None)
        elif roll < 0.11:
            row.update(status="SUCCEEDED")
        else:
            out = f"/home/user/videos/shot-{i:06}.mp4"
            row.update(status="SUCCEEDED", output_path=out, output_bytes=4_000_000, downloaded_at=created + took + 9)
            outputs.append((out, task_id, row["base_url"], row["request_hash"], 4_000_000, created + took + 9))
        tasks.append(tuple(row.values()))
    cols = list(real)
    db.execute("BEGIN")
    db.executemany(f"INSERT INTO tasks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", tasks)
    db.executemany("INSERT INTO outputs VALUES (?, ?, ?, ?, ?, ?)", outputs)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def _batch(ctx: Ctx, wanvid: str, url: str, full: dict[int, dict[str, str]], count: int, reps: int) -> Row:
    """The same batch of ``count`` new rows on each journal of ``full`` (by size) and on an empty one, ``reps``
    times each, interleaved (a new empty journal each time: the first batch's rows would otherwise be the second's
    history); the curve of median walls, judged at the largest size."""
    envs: list[tuple[str, int, dict[str, str] | None]] = [("empty", 0, None)]
    envs += [(f"{size:,}-row", size, env) for size, env in full.items()]
    times: dict[int, list[Proc]] = {size: [] for _, size, _ in envs}
    for rep in range(reps):
        for name, size, journal_env in envs:
            env = journal_env or isolated_env(ctx.tmp / f"journal-empty-{rep}")
            work = ctx.tmp / f"batch-{size}-{rep}"
            work.mkdir()
            manifest = work / "shots.csv"
            with manifest.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["image", "prompt", "output"])
                for i in range(count):  # a new prompt each run: every row pays for a new task
                    w.writerow([str(Path("examples/cat.png").resolve()), f"batch {rep} {size} row {i}", f"r{i}.mp4"])
            argv = [wanvid, "batch", str(manifest), "-d", str(work), "-j", "8", "--stagger", "0"]
            argv += ["--poll-interval", "0.1", "--no-metadata", "--base-url", url]
            p = measure(argv, env)
            saved = len(list(work.glob("r*.mp4")))
            say(f"   batch of {count} rows, {name} journal: {p.wall:.2f} s wall, {p.cpu:.2f} s CPU, exit {p.rc}, "
                f"{saved} videos saved")  # fmt: skip
            if saved != count and p.rc == 0:
                p.rc = -1  # a batch that saved fewer videos than it has rows did not do the work measured
            times[size].append(p)
    we = median([p.wall for p in times[0]])
    heads = ["empty" if size == 0 else f"{size:,}" for size in times]
    say(f"   batch of {count} rows, by journal size: " + "  ".join(f"{h:>9}" for h in heads))
    for label, value in (
        ("median wall", lambda t: f"{median([p.wall for p in t]):.2f} s"),
        ("median CPU", lambda t: f"{median([p.cpu for p in t]):.2f} s"),
        ("wall over the empty journal", lambda t: f"{median([p.wall for p in t]) / we:.2f}x"),
    ):
        say(f"   {label:<30}" + "  ".join(f"{value(t):>9}" for t in times.values()))
    size = max(full)
    wf = median([p.wall for p in times[size]])
    bad = _bad_exit([p for t in times.values() for p in t])
    return Row(
        f"batch of {count} rows on {size:,}-row journal",
        f"{wf:.2f} s",
        f"empty journal {we:.2f} s",
        f"{wf / we:.2f}x",
        f"<= {RATIO_TARGET}x",
        wf / we <= RATIO_TARGET and not bad,
        bad,
    )


def _bad_exit(procs: list[Proc]) -> str:
    codes = sorted({p.rc for p in procs if p.rc != 0})
    return f"exit {', '.join(map(str, codes))}" if codes else ""
