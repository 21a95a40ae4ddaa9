"""`make bench`: run every section, print the machine, one table of medians and ratios, exit 1 on a miss.

Usage: python -m benchmarks.run [--quick] [--only startup,send,download,batch_rate,polling]
(``BENCH_QUICK=1`` = ``--quick``: fewer runs, smaller download, a 30 s task; for development only, the
targets are judged on the full run). Sections run one after another, never overlapping: a busy neighbour
would show up in the millisecond rows. The one exception is light: the polling section's seed tasks are
created first and watched by three mostly sleeping ``wanvid wait`` processes while the others run (see
polling.py). A section that crashes becomes a failed row; the others still run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import batch_rate, download, journal, polling, send, startup
from .common import REPO, Ctx, Row, close_spawner, isolated_env, say

SECTIONS: dict[str, Callable[[Ctx], list[Row]]] = {
    "startup": startup.run,
    "send": send.run,
    "download": download.run,
    "journal": journal.run,
    "batch_rate": batch_rate.run,
}
NAMES = (*SECTIONS, "polling")  # polling also needs its seeds, so it is called on its own below


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller sizes, a 30 s task")
    parser.add_argument("--only", default=",".join(NAMES), help="comma-separated sections to run")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in NAMES]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    if shutil.which("curl") is None:
        parser.error("curl is needed (the download row compares with it)")

    print(machine(quick))
    print(flush=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="wanvid-bench-"))
    rows: list[Row] = []
    # Each section has its own scratch dir, config and journal: what one leaves behind cannot sway another.
    ctxs = {name: Ctx(quick=quick, tmp=tmp / name, env=isolated_env(tmp / name)) for name in chosen}
    seeds: polling.Seeds | None = None
    try:
        if "polling" in chosen:
            try:  # its seed tasks take a task's length to run: start them now, they age while the rest runs
                seeds = polling.Seeds(ctxs["polling"])
            except Exception as exc:
                rows.append(Row("polling: seeds", "error", "", "", "runs", False, f"{type(exc).__name__}: {exc}"))
                chosen.remove("polling")
        for name in chosen:
            say(f"== {name}")
            t0 = time.monotonic()
            try:
                if name == "polling":
                    assert seeds is not None
                    rows += polling.run(ctxs[name], seeds)
                else:
                    rows += SECTIONS[name](ctxs[name])
            except Exception as exc:  # one broken section must not hide the others' figures
                rows.append(Row(f"{name}: section", "error", "", "", "runs", False, f"{type(exc).__name__}: {exc}"))
            say(f"   {name} took {time.monotonic() - t0:.0f} s")
    finally:
        if seeds:
            seeds.close()
        close_spawner()
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(rows))
    failed = [r for r in rows if not r.ok]
    print(
        f"\n{len(rows) - len(failed)} of {len(rows)} targets met; benchmark took {time.monotonic() - started:.0f} s; "
        f"load at the end {load()}" + (" (quick mode: not the official figures)" if quick else "")
    )
    return 1 if failed else 0


def machine(quick: bool) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split("\n")[0].split(" ")[:2]
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True)
    lines = [
        f"machine   {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"software  Python {platform.python_version()}, typer {importlib.metadata.version('typer')}, {' '.join(curl)}",
        f"wanvid    {importlib.metadata.version('wanvid')} at {commit.stdout.strip() or 'unknown commit'} "
        f"({sys.prefix})",
        f"mode      {'quick (development; not the official figures)' if quick else 'full'}",
        f"load      {load()} (1, 5, 15 min averages at start; anything busy besides the benchmark skews it)",
    ]
    return "\n".join(lines)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def table(rows: list[Row]) -> str:
    head = ("row", "median", "comparison", "ratio", "target", "result")
    cells = [(r.name, r.measured, r.comparison, r.ratio, r.target, "PASS" if r.ok else "FAIL") for r in rows]
    widths = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = ["", fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    for row, c in zip(rows, cells, strict=True):
        out.append(fmt.format(*c).rstrip())
        if row.note:
            out.append(f"    {row.note}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
