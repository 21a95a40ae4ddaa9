"""Downloading a big result: wanvid's steady rate against curl's, its peak RSS, and the live bar's cost.

The sandbox's ``video_size`` fault makes every video response exactly N bytes. Three ways of fetching the
same task run side by side, interleaved: ``curl`` on the content route, ``wanvid download -q``, and
``wanvid download`` on a pseudo-terminal (the live bar only appears when stderr is a terminal). wanvid runs
through ``download_child.py``: the ``wanvid.cli.app.run()`` the installed script calls, with clocks on its
copy loop.

The steady rate is the slope between two sizes, (big - small) / (t_big - t_small) of whole-process
medians: a process's fixed costs (interpreter start, the status query, connecting) cancel out, for curl
and wanvid alike, and what is left is bytes per second once the transfer runs.

The live bar's cost is judged on the copy loop's time with the bar over its time without, in 60 pairs
of back-to-back runs at 256 MiB (median of the per-pair ratios): the loop is the same code either way,
so this is the bar's extra time per byte, whatever way it comes. Single pairs scatter by +-10 %, hence
the many pairs. Printed beside it: the redraws' own share of the loop (the time inside its progress
callback; a lower bound), the rate the sandbox served with and without the bar (``video_bytes`` /
``video_seconds`` of ``GET /_sandbox/stats``) and the loop's own rates (medians of 7 rounds: they move
by tens of per cent between runs, so they only cross-check), and the bar's fixed cost (loading rich, the
first and last draw) from the small size.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import struct
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import requests

from .common import (
    KEY,
    Ctx,
    MiB,
    Proc,
    Row,
    create_task,
    measure,
    median,
    mib,
    ms,
    rate,
    sandbox,
    say,
    size_name,
)
from .common import ratio as fmt_ratio

RATE_TARGET = 0.9  # x curl
RSS_TARGET = 60 * MiB
BAR_TARGET = 0.10  # extra time per byte with the live bar
SMALL = 16 * MiB
PAIR_SIZE = 256 * MiB  # the bar's paired runs: the cost per byte is the same at any size, pairs come cheaper
VARIANTS = ("curl", "quiet", "bar")
CHILD = (sys.executable, str(Path(__file__).with_name("download_child.py")))


def _scratch(tmp: Path, big: int) -> Path:
    """Where the downloads land: a RAM-backed dir when there is room, so that the rates compare the clients
    and not the disk's writeback (on a shared disk it swung the ratios by +-25 % between runs)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 3 * big:
        return Path(tempfile.mkdtemp(prefix="wanvid-bench-", dir=shm))
    out = tmp / "download"
    out.mkdir(exist_ok=True)  # beside the other scratch files, on the same disk
    return out


def run(ctx: Ctx) -> list[Row]:
    big = 256 * MiB if ctx.quick else 1024 * MiB
    reps = 3 if ctx.quick else 7
    pairs = 16 if ctx.quick else 60
    name = size_name(big)
    with sandbox(ctx.env) as url, requests.Session() as s:
        r = s.post(url + "/_sandbox/faults", json={"video_size": SMALL}, timeout=10)
        if r.status_code != 200:
            # Without the fault there is nothing big to download: say so, and count it as a miss.
            why = f"not measurable yet: the sandbox refuses the video_size fault ({r.status_code} {_message(r)})"
            return [
                Row(f"download {name}: steady rate", "-", "curl", "-", f">= {RATE_TARGET}x curl", False, why),
                Row(f"download {name}: peak RSS", "-", "", "-", "<= 60.0 MiB", False, "not measurable yet"),
                Row(f"download {name}: live bar cost", "-", "", "-", "<= 10 %", False, "not measurable yet"),
            ]
        task_id = create_task(s, url)  # the sandbox runs with zero queue and run time: it is done at once
        out = _scratch(ctx.tmp, big)
        say(f"   files go to {out} ({'memory' if str(out).startswith('/dev/shm') else 'disk'})")
        target = out / "video.mp4"
        clocks = ctx.tmp / "clocks.json"  # download_child.py's figures for the run that just ended
        argv = {
            "curl": [
                "curl",
                "-s",
                "-f",
                "-o",
                str(target),
                "-w",
                "%{speed_download}",
                "-H",
                f"Authorization: Bearer {KEY}",
                f"{url}/aliyun/v1/videos/{task_id}/content",
            ],
            "quiet": [*CHILD, str(clocks), "download", task_id, "-o", str(target), "-q", "--base-url", url],
            "bar": [*CHILD, str(clocks), "download", task_id, "-o", str(target), "--base-url", url],
        }
        env = {**ctx.env, "TERM": "xterm-256color"}  # the bar's terminal; TERM=dumb would turn it off
        got: dict[tuple[str, int], list[Proc]] = {(v, n): [] for v in VARIANTS for n in (SMALL, big)}
        seen: dict[str, list[float]] = {v: [] for v in VARIANTS}  # the big size's rate as the sandbox saw it
        loops: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS[1:]}  # the big size's loop clocks
        say(f"   {reps} rounds of curl / wanvid -q / wanvid with bar, at {size_name(SMALL)} and {name}")

        def fetch(v: str, size: int) -> tuple[Proc, dict[str, float] | None]:
            """One download of ``size`` bytes by ``v``, checked and cleaned up; its loop clocks (wanvid)."""
            clocks.unlink(missing_ok=True)
            p = _on_pty(argv[v], env) if v == "bar" else measure(argv[v], env)
            got_size = target.stat().st_size if target.exists() else 0
            for leftover in out.iterdir():
                leftover.unlink()
            # Settle the disk outside the timed region: the freed blocks' journal commit (and
            # discard, on filesystems mounted with it) would otherwise land in the next run.
            os.sync()
            if p.rc != 0 or got_size != size:
                raise RuntimeError(f"{v} download of {size} bytes: exit {p.rc}, {got_size} bytes on disk")
            return p, (json.loads(clocks.read_text()) if v != "curl" else None)

        for rnd in range(reps):
            # The order rotates each round: whichever runs right after a 1 GiB file was freed pays for it.
            order = VARIANTS[rnd % 3 :] + VARIANTS[: rnd % 3]
            for size in (SMALL, big):
                s.post(url + "/_sandbox/faults", json={"video_size": size}, timeout=10).raise_for_status()
                for v in order:
                    before = _served(s, url)
                    p, clock = fetch(v, size)
                    after = _served(s, url, at_least=before[0] + size)
                    got[(v, size)].append(p)
                    if size == big and clock:
                        loops[v].append(clock)
                    if size == big and after[0] - before[0] == size and after[1] > before[1]:  # this body alone
                        seen[v].append((after[0] - before[0]) / (after[1] - before[1]))
        # The bar's whole effect on the loop, in pairs: -q and bar back to back (alternating which goes first),
        # the ratio of their loop times per pair, median over many pairs. Single pairs scatter by +-10 %; the
        # median of 60 is good to about 2 %, and it takes in whatever the redraws do besides their own time.
        s.post(url + "/_sandbox/faults", json={"video_size": PAIR_SIZE}, timeout=10).raise_for_status()
        say(f"   {pairs} pairs of wanvid -q / wanvid with bar at {size_name(PAIR_SIZE)}, for the bar's cost")
        paired: list[float] = []
        for i in range(pairs):
            clock_of = {v: fetch(v, PAIR_SIZE)[1] for v in (("quiet", "bar") if i % 2 == 0 else ("bar", "quiet"))}
            q, b = clock_of["quiet"], clock_of["bar"]
            assert q and b
            paired.append(b["copy_seconds"] / q["copy_seconds"] - 1)
        s.post(url + "/_sandbox/faults", json={"video_size": None}, timeout=10)
        if out.parent == Path("/dev/shm"):
            shutil.rmtree(out, ignore_errors=True)

    def steady(v: str) -> float | None:
        dt = median([p.wall for p in got[(v, big)]]) - median([p.wall for p in got[(v, SMALL)]])
        return (big - SMALL) / dt if dt > 0 else None

    rates = {v: steady(v) for v in VARIANTS}
    curl_own = median([float(p.out or 0) for p in got[("curl", big)]])  # curl's -w %{speed_download}
    for v in VARIANTS:
        t_small, t_big = (median([p.wall for p in got[(v, n)]]) for n in (SMALL, big))
        say(
            f"   {v:<5}: {ms(t_small)} for {size_name(SMALL)}, {ms(t_big)} for {name}: steady {rate(rates[v])}, "
            f"whole process {rate(big / t_big)}"
        )
    say(f"   curl's own speed_download: {rate(curl_own)}")
    served = {v: median(seen[v]) if seen[v] else None for v in VARIANTS}
    say("   as the sandbox served the " + name + ": " + ", ".join(f"{v} {rate(served[v])}" for v in VARIANTS))
    own = {v: median([c["bytes"] / c["copy_seconds"] for c in loops[v]]) for v in loops}
    say("   the copy loop's own rate: " + ", ".join(f"{v} {rate(own[v])}" for v in loops))
    quiet_cb = median([c["advance_seconds"] for c in loops["quiet"]])
    bar_cb, bar_copy = (median([c[k] for c in loops["bar"]]) for k in ("advance_seconds", "copy_seconds"))
    calls = median([c["advance_calls"] for c in loops["bar"]])
    say(
        f"   inside the copy loop at {name} (medians): the bar's {calls:.0f} redraws took {ms(bar_cb)} of "
        f"{ms(bar_copy)}; -q's no-op callback {quiet_cb * 1e6:.0f} us"
    )
    # Per round: the bar's own time over the rest of that loop. A lower bound: it leaves out whatever the
    # redraws do to the rest of the loop, which the paired loop times take in.
    direct = median([c["advance_seconds"] / (c["copy_seconds"] - c["advance_seconds"]) for c in loops["bar"]])
    cost = median(paired)
    ranked = sorted(paired)
    say(
        f"   the bar's cost: its redraws alone +{direct * 100:.1f} % of the loop (at {name}); the loop with bar "
        f"over without, {len(paired)} pairs at {size_name(PAIR_SIZE)}: median {cost * 100:+.1f} %, quartiles "
        f"{ranked[len(ranked) // 4] * 100:+.1f} / {ranked[3 * len(ranked) // 4] * 100:+.1f} %"
    )
    fixed = median([p.wall for p in got[("bar", SMALL)]]) - median([p.wall for p in got[("quiet", SMALL)]])
    say(f"   the bar's fixed cost per download (loading rich, first and last draw; at {size_name(SMALL)}): {ms(fixed)}")
    indirect = served["quiet"] / served["bar"] - 1 if served["quiet"] and served["bar"] else None

    rss = {(v, n): median([p.rss for p in got[(v, n)]]) for v in ("quiet", "bar") for n in (SMALL, big)}
    peak = max(rss[("quiet", big)], rss[("bar", big)])
    small_peak = max(rss[("quiet", SMALL)], rss[("bar", SMALL)])
    say(f"   wanvid peak RSS: -q {mib(rss[('quiet', big)])}, with bar {mib(rss[('bar', big)])}")

    ok_rate = rates["quiet"] is not None and rates["curl"] is not None and rates["quiet"] >= RATE_TARGET * rates["curl"]
    return [
        Row(
            f"download {name}: steady rate",
            rate(rates["quiet"]),
            f"curl {rate(rates['curl'])}",
            fmt_ratio(rates["quiet"], rates["curl"]),
            f">= {RATE_TARGET}x curl",
            ok_rate,
        ),
        Row(
            f"download {name}: peak RSS",
            mib(peak),
            f"at {size_name(SMALL)}: {mib(small_peak)}",
            f"{peak / small_peak:.2f}x",
            "<= 60.0 MiB",
            peak <= RSS_TARGET,
        ),
        Row(
            f"download {name}: live bar cost",
            f"{cost * 100:+.1f} % loop time",
            f"redraws alone +{direct * 100:.1f} %",
            f"{cost * 100:+.1f} %",
            "<= 10 %",
            cost <= BAR_TARGET,
            "" if indirect is None else f"cross-check, served rate -q over bar (noisy): {indirect * 100:+.1f} %",
        ),
    ]


def _on_pty(argv: list[str], env: dict[str, str]) -> Proc:
    """``measure`` with stderr on a pseudo-terminal (the child opens it by name), drained as fast as a
    terminal would read it."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:  # EIO: every writer has closed the terminal
                break

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        p = measure(argv, env, stderr_path=os.ttyname(slave))
    finally:
        os.close(slave)  # our copy; with the child gone the drain now sees EIO and ends
        reader.join(5)
        os.close(master)
    return p


def _served(s: requests.Session, url: str, at_least: int = 0) -> tuple[int, float]:
    """The sandbox's (video_bytes, video_seconds) once at least ``at_least`` bytes are counted: it counts a
    body after its last write returns, which can be a moment after the client has exited."""
    deadline = time.monotonic() + 5
    while True:
        stats = s.get(url + "/_sandbox/stats", timeout=10).json()
        if stats["video_bytes"] >= at_least or time.monotonic() > deadline:
            return int(stats["video_bytes"]), float(stats["video_seconds"])
        time.sleep(0.005)


def _message(r: requests.Response) -> str:
    try:
        return str(r.json()["error"]["message"]).split(";")[0]  # "Unknown fault 'x'; known: ..." -> first part
    except (ValueError, KeyError, TypeError):
        return r.text[:200]
