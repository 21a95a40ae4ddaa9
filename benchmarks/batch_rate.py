"""A batch at the gateway's limit: wall time, requests per video and 429s of ``wanvid batch``.

One sandbox subprocess serves every run (reset between them). Two curves, interleaved size by size:

- limited (-j 32): the sandbox's ``rate_limit`` fault at 10 API requests a second (creates, polls and content
  downloads all count, as new-api's limiter counts every API request) and tasks that are done at once, so
  a video needs 3 requests (create, one poll, one download); the floor is rows x 3 / 10 s, the target
  1.25x of it with every row saved and at most 5 requests (429s included) a video;
- unlimited (-j 10): no limit and short tasks (``TASK`` seconds); the floor is rows / j x the task's
  time (the batch's waves of tasks; the sizes are whole waves), the target 1.25x of it. A fixed spacing
  of creates would show here (0.5 s apart caps a batch at 2 tasks a second whatever -j is), and so would
  first polls that notice a short task late.

Wall time is the ``wanvid batch`` process, start to exit (interpreter start included).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import requests

from .common import WANVID, Ctx, Row, measure, sandbox, say

LIMIT = 10.0  # API requests a second
J = 32  # -j of the limited curve: more workers than the limit lets through
J_FREE = 10  # -j of the unlimited curve: the sizes are whole waves of it
TASK = 2.0  # seconds a short task takes in the unlimited curve (queue + run)
PER_VIDEO = 3  # create, one poll, one download
RATIO_TARGET = 1.25
MAX_PER_VIDEO = 5


def run(ctx: Ctx) -> list[Row]:
    sizes = (10, 30) if ctx.quick else (10, 60, 200)
    judged = 30 if ctx.quick else 60  # the size the targets are judged on
    shots = _images(ctx.tmp / "shots", max(sizes))
    rows: list[Row] = []
    with sandbox(ctx.env) as url:  # timings and the limit are set per run through its control routes
        for n in sizes:
            for limited in (True, False):
                got = _batch(ctx, url, shots[:n], limited)
                floor = n * PER_VIDEO / LIMIT if limited else math.ceil(n / J_FREE) * TASK
                ratio = got["wall"] / floor
                per_video = got["requests"] / n
                say(
                    f"   {'limited  ' if limited else 'unlimited'} {n:>4} rows: {got['wall']:6.1f} s,"
                    f" floor {floor:5.1f} s,"
                    f" ratio {ratio:.2f}x, {per_video:.2f} requests/video, {got['throttled']} 429s,"
                    f" {got['saved']}/{n} saved"
                )
                if n != judged:
                    continue
                ok = ratio <= RATIO_TARGET and got["saved"] == n and (not limited or per_video <= MAX_PER_VIDEO)
                what = f"-j {J}, {LIMIT:.0f} req/s limit" if limited else f"-j {J_FREE}, no limit, {TASK:.0f} s tasks"
                rows.append(
                    Row(
                        f"batch {n} rows {what}",
                        f"{got['wall']:.1f} s",
                        f"floor {floor:.1f} s",
                        f"{ratio:.2f}x",
                        f"<= {RATIO_TARGET}x" + (f", <= {MAX_PER_VIDEO} req/video" if limited else ""),
                        ok,
                        f"{per_video:.2f} requests/video, {got['throttled']} answered 429, {got['saved']}/{n} saved",
                    )
                )
    return rows


def _batch(ctx: Ctx, url: str, shots: list[Path], limited: bool) -> dict[str, float]:
    requests.post(url + "/_sandbox/reset", timeout=10).raise_for_status()
    timing = (
        {"queue_seconds": 0.0, "run_seconds": 0.0} if limited else {"queue_seconds": 0.5, "run_seconds": TASK - 0.5}
    )
    requests.post(url + "/_sandbox/timing", json=timing, timeout=10).raise_for_status()
    if limited:
        requests.post(url + "/_sandbox/faults", json={"rate_limit": LIMIT}, timeout=10).raise_for_status()
    work = ctx.tmp / f"run-{len(shots)}-{'limited' if limited else 'free'}"
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
        str(J if limited else J_FREE),
        "--json",
    ]
    (work / "stderr").touch()  # the spawner opens it without creating it
    p = measure(argv, ctx.env, stderr_path=str(work / "stderr"))
    if p.rc not in (0, 3, 6):
        tail = " / ".join((work / "stderr").read_text().strip().splitlines()[-4:]) or "no output"
        raise RuntimeError(f"wanvid batch exited {p.rc}: {tail}")
    doc = json.loads(p.out)
    stats = requests.get(url + "/_sandbox/stats", timeout=10).json()
    return {
        "wall": p.wall,
        "saved": doc["summary"].get("saved", 0),
        "requests": stats["requests"],
        "throttled": stats["throttled"],
    }


def _images(folder: Path, n: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"shot{i:03d}.png"
        Image.new("RGB", (832, 480), (i % 256, i // 256 * 40, 120)).save(path)
        paths.append(path)
    return paths
