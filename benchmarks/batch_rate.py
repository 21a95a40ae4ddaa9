"""A batch at the gateway's limit: wall time, requests per video and 429s of ``wanvid batch``.

One sandbox subprocess serves every run (reset between them). Three kinds of run:

- limited (-j 32): the sandbox's ``rate_limit`` fault at 10 API requests a second (creates, polls and
  content downloads all count, as new-api's limiter counts every API request) and tasks that are done at
  once, so a video needs 3 requests (create, one poll, one download); the floor is rows x 3 / 10 s;
- limited, real tasks (-j 32): the same limit, tasks that take ``SLOW`` seconds (queue + run), so the
  client has to poll a task more than once without knowing when it ends, and the requests a video needs
  depend on its polling. Two things are judged here, and neither moves with the other: (a) the limit is
  kept busy: wall <= 1.25x the requests the gateway let through for the batch (``/_sandbox/stats``: all
  API requests minus those answered 429, which the limiter does not count against its window) / 10 s,
  the fastest the limit can serve the requests the client chose to make; (b) the client does not make
  too many of them: at most 5 requests a video, 429s included, every row saved. (a) alone cannot see
  wasteful polling (more polls raise its floor as much as its wall), and (b) alone cannot see a gate
  that leaves the limit idle; together they can. The wall is also printed against the workload's own
  floor, the larger of rows x 3 / 10 s (the requests a video needs when each task is polled once, at
  its end) and ceil(rows / j) x ``SLOW`` (the batch's waves of tasks), 18 s at 60 rows: printed, not
  judged, since a client that cannot know when a task ends must poll it more than once, so it cannot
  get near that floor;
- unlimited (-j 10): no limit and short tasks (``TASK`` seconds); the floor is rows / j x the task's
  time (the batch's waves of tasks; the sizes are whole waves). A fixed spacing of creates would show
  here (0.5 s apart caps a batch at 2 tasks a second whatever -j is), and so would first polls that
  notice a short task late.

The curve (10, 60, 200 rows; quick 10, 30) is printed for the limited and unlimited runs; the judged size
(60 rows; quick 30) runs ``REPS`` times (quick once) for each of the three kinds, interleaved (limited,
real tasks, unlimited, then again), every repetition printed, and the targets are judged on the median
of each kind: wall <= 1.25x its floor (the real-task kind: the admitted requests / limit), every row saved,
<= 5 requests a video for the limited kinds.
The real-task kind runs at the judged size only.

Wall time is the ``wanvid batch`` process, start to exit (interpreter start included).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import requests

from .common import WANVID, Ctx, Row, measure, median, sandbox, say

LIMIT = 10.0  # API requests a second
J = 32  # -j of the limited runs: more workers than the limit lets through
J_FREE = 10  # -j of the unlimited curve: the sizes are whole waves of it
TASK = 2.0  # seconds a short task takes in the unlimited curve (queue + run)
SLOW = 5.0  # seconds a task takes in the limited real-task runs (1 s queued + 4 s running)
PER_VIDEO = 3  # create, one poll, one download (tasks done at once)
RATIO_TARGET = 1.25
MAX_PER_VIDEO = 5
REPS = 3  # runs of each kind at the judged size (quick: QUICK_REPS)
QUICK_REPS = 1

LIMITED, SLOW_LIMITED, FREE = "limited", "limited, real tasks", "unlimited"
WHAT = {
    LIMITED: f"-j {J}, {LIMIT:.0f} req/s limit, instant tasks",
    SLOW_LIMITED: f"-j {J}, {LIMIT:.0f} req/s limit, {SLOW:.0f} s tasks",
    FREE: f"-j {J_FREE}, no limit, {TASK:.0f} s tasks",
}


@dataclass
class Got:
    kind: str
    n: int
    wall: float
    saved: int
    requests: int  # API requests the sandbox received, 429s included
    throttled: int  # of them answered 429
    creates: int  # by route, 429s included
    polls: int
    downloads: int

    @property
    def floor(self) -> float:
        """The workload's floor: what the batch needs at the least, however a client polls."""
        if self.kind == LIMITED:
            return self.n * PER_VIDEO / LIMIT
        if self.kind == SLOW_LIMITED:
            return max(self.n * PER_VIDEO / LIMIT, math.ceil(self.n / J) * SLOW)
        return math.ceil(self.n / J_FREE) * TASK

    @property
    def busy_floor(self) -> float:
        """The requests the limiter let through (429s take no slot of its window) / the limit."""
        return (self.requests - self.throttled) / LIMIT

    @property
    def ratio(self) -> float:
        return self.wall / self.floor

    @property
    def judged(self) -> float:
        """The ratio the kind is judged on: the real-task kind on the limit kept busy, the others on the floor."""
        return self.wall / self.busy_floor if self.kind == SLOW_LIMITED else self.ratio

    @property
    def per_video(self) -> float:
        return self.requests / self.n


def run(ctx: Ctx) -> list[Row]:
    sizes = (10, 30) if ctx.quick else (10, 60, 200)
    judged = 30 if ctx.quick else 60  # the size the targets are judged on
    reps = QUICK_REPS if ctx.quick else REPS
    shots = _images(ctx.tmp / "shots", max(sizes))
    got: dict[str, list[Got]] = {LIMITED: [], SLOW_LIMITED: [], FREE: []}
    with sandbox(ctx.env) as url:  # timings and the limit are set per run through its control routes
        for n in sizes:
            kinds = (LIMITED, SLOW_LIMITED, FREE) if n == judged else (LIMITED, FREE)
            for rep in range(reps if n == judged else 1):
                for kind in kinds:
                    g = _batch(ctx, url, shots[:n], kind, rep)
                    _show(g, f" #{rep + 1}" if n == judged else "   ")
                    if n == judged:
                        got[kind].append(g)
    rows = []
    for kind, runs in got.items():
        wall = median([g.wall for g in runs])
        floor = median([g.floor for g in runs])
        ratio = median([g.ratio for g in runs])
        judged_ratio = median([g.judged for g in runs])
        per_video = median([g.per_video for g in runs])
        saved = min(g.saved for g in runs)
        limited = kind != FREE
        ok = judged_ratio <= RATIO_TARGET and saved == judged and (not limited or per_video <= MAX_PER_VIDEO)
        busy = ""
        if kind == SLOW_LIMITED:
            busy_floor = median([g.busy_floor for g in runs])
            busy = f"; admitted requests / limit {busy_floor:.1f} s, limit kept busy {judged_ratio:.2f}x (judged)"
        say(
            f"   {kind:<19} {judged:>4} rows, median of {_runs(len(runs))}: {wall:6.1f} s, floor {floor:5.1f} s,"
            f" ratio {ratio:.2f}x{' (printed, not judged)' if kind == SLOW_LIMITED else ''}{busy},"
            f" {per_video:.2f} requests/video"
        )
        each = "; requests/video " + ", ".join(f"{g.per_video:.2f}" for g in runs) if limited else ""
        tail = f"; 429s {', '.join(str(g.throttled) for g in runs)}; fewest saved {saved}/{judged}"
        if kind == SLOW_LIMITED:
            rows.append(
                Row(
                    f"batch {judged} rows {WHAT[kind]}: limit kept busy",
                    f"{wall:.1f} s",
                    f"admitted req / limit {busy_floor:.1f} s",
                    f"{judged_ratio:.2f}x",
                    f"<= {RATIO_TARGET}x, <= {MAX_PER_VIDEO} req/video",
                    ok,
                    f"median of {_runs(len(runs))}: ratios "
                    + ", ".join(f"{g.judged:.2f}" for g in runs)
                    + each
                    + tail
                    + f"; workload floor {floor:.1f} s (rows x {PER_VIDEO} / limit, or the waves of tasks):"
                    f" {ratio:.2f}x, printed, not judged",
                )
            )
            continue
        rows.append(
            Row(
                f"batch {judged} rows {WHAT[kind]}",
                f"{wall:.1f} s",
                f"floor {floor:.1f} s",
                f"{ratio:.2f}x",
                f"<= {RATIO_TARGET}x" + (f", <= {MAX_PER_VIDEO} req/video" if limited else ""),
                ok,
                f"median of {_runs(len(runs))} (ratio and requests per run): ratios "
                + ", ".join(f"{g.ratio:.2f}" for g in runs)
                + each
                + tail,
            )
        )
    return rows


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _show(g: Got, tag: str) -> None:
    busy = f", admitted/limit {g.busy_floor:5.1f} s ({g.judged:.2f}x)" if g.kind == SLOW_LIMITED else ""
    say(
        f"   {g.kind:<19} {g.n:>4} rows{tag}: {g.wall:6.1f} s, floor {g.floor:5.1f} s, ratio {g.ratio:.2f}x{busy},"
        f" {g.per_video:.2f} requests/video ({g.creates / g.n:.2f} creates, {g.polls / g.n:.2f} polls,"
        f" {g.downloads / g.n:.2f} downloads), {g.throttled} 429s, {g.saved}/{g.n} saved"
    )


def _batch(ctx: Ctx, url: str, shots: list[Path], kind: str, rep: int) -> Got:
    requests.post(url + "/_sandbox/reset", timeout=10).raise_for_status()
    timing = {
        LIMITED: {"queue_seconds": 0.0, "run_seconds": 0.0},
        SLOW_LIMITED: {"queue_seconds": 1.0, "run_seconds": SLOW - 1.0},
        FREE: {"queue_seconds": 0.5, "run_seconds": TASK - 0.5},
    }[kind]
    requests.post(url + "/_sandbox/timing", json=timing, timeout=10).raise_for_status()
    if kind != FREE:
        requests.post(url + "/_sandbox/faults", json={"rate_limit": LIMIT}, timeout=10).raise_for_status()
    work = ctx.tmp / f"run-{len(shots)}-{kind.replace(' ', '').replace(',', '-')}-{rep}"
    work.mkdir(parents=True)
    manifest = work / "m.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "prompt"])  # a prompt of its own per run: no task of an earlier run is reused
        w.writerows([[str(p), f"{work.name} shot {i}"] for i, p in enumerate(shots)])
    argv = [
        WANVID,
        "--base-url",
        url,
        "batch",
        str(manifest),
        "-d",
        str(work / "out"),
        "-j",
        str(J if kind != FREE else J_FREE),
        "--json",
    ]
    (work / "stderr").touch()  # the spawner opens it without creating it
    p = measure(argv, ctx.env, stderr_path=str(work / "stderr"))
    if p.rc not in (0, 3, 6):
        tail = " / ".join((work / "stderr").read_text().strip().splitlines()[-4:]) or "no output"
        raise RuntimeError(f"wanvid batch exited {p.rc}: {tail}")
    doc = json.loads(p.out)
    stats = requests.get(url + "/_sandbox/stats", timeout=10).json()
    log = requests.get(url + "/_sandbox/requests", timeout=30).json()
    api = [r for r in log if not r["path"].startswith("/_oss")]
    creates = sum(r["method"] == "POST" for r in api)
    downloads = sum(r["method"] == "GET" and "/content" in r["path"] for r in api)
    return Got(
        kind=kind,
        n=len(shots),
        wall=p.wall,
        saved=doc["summary"].get("saved", 0),
        requests=stats["requests"],
        throttled=stats["throttled"],
        creates=creates,
        polls=len(api) - creates - downloads,
        downloads=downloads,
    )


def _images(folder: Path, n: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"shot{i:03d}.png"
        Image.new("RGB", (832, 480), (i % 256, i // 256 * 40, 120)).save(path)
        paths.append(path)
    return paths
