"""Polling: how many status requests each schedule spends on a task and how late it notices the end.

The schedules replay the same task timings against the sandbox, side by side: wanvid's own (``wanvid
create`` then a real ``wanvid wait`` process), a fixed 5 s poll and a 1 s doubling to 5 s backoff (small
loops here). wanvid's schedule aims at the finish it expects from its journal (how long similar tasks
took), so it runs twice: with an empty journal (a first task) and with a journal that has seen three
similar tasks end (a returning user); the targets are judged on the latter. Two cases: a task that takes
120 s (30 s in quick mode; 5 s queued, the rest running) and one that FAILS 3 s after creation.

The three seed tasks of that journal are created before the other sections start (``Seeds``), so they
have run their 120 s by the time this section begins; three idle ``wanvid wait`` processes watch them
meanwhile (a few requests a minute), because the journal learns a task's length when wanvid sees it end.

Every (case, schedule, repetition) gets its own task and they all run at once, so the section lasts about
one task. Requests are counted by the sandbox (its request log), not by the client. The notice delay is
the wall time the client noticed (process exit or loop end) minus the end time the sandbox reports for the
task. wanvid's figures include its own process start (~0.2 s), as for a user who runs ``wanvid wait`` after
``wanvid create``. Each case has its own sandbox, started with that case's timings as flags.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import requests

from .common import AUTH, WANVID, Ctx, Row, create_task, median, sandbox, say

REQUEST_TARGET = 20
DELAY_TARGET = 2.0
FAIL_AFTER = 3.0
SEEDS = 3
ENDED = ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")
FRESH, SEEDED = "wanvid, empty journal", "wanvid, seeded journal"
LOOPS: dict[str, Callable[[int], float]] = {
    "fixed 5 s": lambda n: 5.0,
    "1 s doubling to 5 s": lambda n: min(2.0**n, 5.0),
}
SCHEDULES = (SEEDED, FRESH, *LOOPS)
SHORT = {FRESH: "empty journal", "1 s doubling to 5 s": "1-5 s backoff"}  # for the table's comparison column


class Seeds:
    """Started before the other sections: the long-task gateway, and a journal that will have seen three
    tasks like the measured ones end (same gateway, model, resolution and duration; only the prompt differs)."""

    def __init__(self, ctx: Ctx) -> None:
        self.total = 30.0 if ctx.quick else 120.0
        self.stack = ExitStack()
        self.url = self.stack.enter_context(sandbox(ctx.env, queue=5.0, run=self.total - 5.0))
        self.env = {FRESH: journal_env(ctx, "journal-empty"), SEEDED: journal_env(ctx, "journal-seeded")}
        self.watchers: list[subprocess.Popen[bytes]] = []
        say(f"== polling: {SEEDS} seed tasks of {self.total:.0f} s created now, watched while the other sections run")
        try:
            for i in range(SEEDS):
                task_id = wanvid_create(self.env[SEEDED], self.url, f"seed {i}")
                watch = [WANVID, "wait", task_id, "--base-url", self.url, "-q"]
                quiet = subprocess.DEVNULL
                self.watchers.append(
                    subprocess.Popen(watch, env=self.env[SEEDED], stdin=quiet, stdout=quiet, stderr=quiet)
                )
        except BaseException:
            self.close()  # no sandbox or watcher outlives a failed start
            raise

    def join(self) -> None:
        say(f"   waiting for the {SEEDS} seed tasks to end")
        codes = [w.wait() for w in self.watchers]
        if any(codes):
            raise RuntimeError(f"`wanvid wait` of the seed tasks exited {codes}")

    def close(self) -> None:
        for w in self.watchers:
            if w.poll() is None:
                w.kill()
                w.wait()
        self.stack.close()


@dataclass
class Job:
    case: str
    schedule: str
    url: str
    task_id: str
    lag: float  # seconds between creating the task and starting to watch it
    noticed: float | None = None  # wall clock (time.time), comparable with the sandbox's end time
    error: str = ""
    polls: int = 0
    delay: float = 0.0


def run(ctx: Ctx, seeds: Seeds) -> list[Row]:
    seeds.join()
    reps = 2 if ctx.quick else 3
    long_case, fail_case = f"{seeds.total:.0f} s task", f"fails at {FAIL_AFTER:.0f} s"
    jobs: list[Job] = []
    threads: list[threading.Thread] = []
    with (
        sandbox(ctx.env, queue=1.0, run=FAIL_AFTER - 1.0, fail="BenchFailure:failed on purpose") as fail_url,
        requests.Session() as s,
    ):
        say(f"   {reps} tasks per schedule and case, all at once; about {seeds.total + 10:.0f} s")
        # The short case first, so its clients are up before the long case's start.
        for case, url in ((fail_case, fail_url), (long_case, seeds.url)):
            for rep in range(reps):
                for schedule in SCHEDULES:
                    # Long case: repetition r starts watching r/reps of a 5 s period after creating, for every
                    # schedule alike. Started at creation, a fixed 5 s poll would hit a 120 s end exactly and
                    # look perfect; real clients come in at any phase. The short case starts at once, as a
                    # client that creates and then follows would.
                    lag = rep * 5.0 / reps if case == long_case else 0.0
                    if schedule in LOOPS:
                        task_id = create_task(s, url)
                    else:  # through wanvid, so its journal knows when the task was created
                        task_id = wanvid_create(seeds.env[schedule], url, f"{case} {rep}")
                    job = Job(case, schedule, url, task_id, lag)
                    jobs.append(job)
                    threads.append(threading.Thread(target=_follow, args=(job, seeds), daemon=True))
                    threads[-1].start()
                if case == fail_case:
                    # Few interpreters starting at once: on two cores each would start late, and that lag is
                    # not the schedule's doing.
                    time.sleep(0.5)
            time.sleep(1)
        for t in threads:
            t.join(seeds.total + 120)
        # Count first: the end-time look-ups below are requests too.
        for job in jobs:
            prefix = {"prefix": f"/aliyun/v1/tasks/{job.task_id}"}
            log = s.get(f"{job.url}/_sandbox/requests", params=prefix, timeout=10).json()
            job.polls = sum(1 for r in log if r["method"] == "GET")
        for job in jobs:
            ends_at = _end_time(s, job)
            if job.noticed is None:
                job.error = job.error or "did not finish"
            else:
                job.delay = job.noticed - ends_at

    print(f"\n   {'schedule':<24} {'case':<14} {'requests':>8}   notice delay: median (each)")
    stats: dict[tuple[str, str], tuple[float, float]] = {}
    for case in (long_case, fail_case):
        for schedule in SCHEDULES:
            mine = [j for j in jobs if j.case == case and j.schedule == schedule]
            broken = [j for j in mine if j.error]
            if broken:
                raise RuntimeError(f"{schedule} on the {case}: {broken[0].error}")
            polls, delays = [j.polls for j in mine], [j.delay for j in mine]
            stats[(case, schedule)] = (median(polls), median(delays))
            shown = ", ".join(f"{d:.2f}" for d in delays)
            print(f"   {schedule:<24} {case:<14} {median(polls):>8.0f}   {median(delays):>6.2f} s ({shown})")
    print(flush=True)

    def cmp(case: str, i: int, fmt: str) -> str:
        others = {SHORT.get(sch, sch): stats[(case, sch)][i] for sch in SCHEDULES[1:]}
        return ", ".join(f"{name} {fmt.format(value)}" for name, value in others.items())

    requests_, delay = stats[(long_case, SEEDED)]
    fixed_requests, fixed_delay = stats[(long_case, "fixed 5 s")]
    fail_delay = stats[(fail_case, SEEDED)][1]
    fixed_fail_delay = stats[(fail_case, "fixed 5 s")][1]
    return [
        Row(
            f"poll {long_case}: status requests",
            f"{requests_:.0f}",
            cmp(long_case, 0, "{:.0f}"),
            f"{requests_ / fixed_requests:.2f}x",
            f"<= {REQUEST_TARGET}",
            requests_ <= REQUEST_TARGET,
        ),
        Row(
            f"poll {long_case}: notice delay",
            f"{delay:.2f} s",
            cmp(long_case, 1, "{:.2f} s"),
            _ratio(delay, fixed_delay),
            f"<= {DELAY_TARGET:.1f} s",
            delay <= DELAY_TARGET,
        ),
        Row(
            f"poll task that {fail_case}: notice delay",
            f"{fail_delay:.2f} s",
            cmp(fail_case, 1, "{:.2f} s"),
            _ratio(fail_delay, fixed_fail_delay),
            f"<= {DELAY_TARGET:.1f} s",
            fail_delay <= DELAY_TARGET,
        ),
    ]


def journal_env(ctx: Ctx, name: str) -> dict[str, str]:
    data = ctx.tmp / name
    data.mkdir(parents=True, exist_ok=True)
    return {**ctx.env, "WANVID_DATA_DIR": str(data)}


def wanvid_create(env: dict[str, str], url: str, prompt: str) -> str:
    # A distinct prompt each time: wanvid may hand back the task of an identical earlier request.
    argv = [WANVID, "create", "examples/cat.png", "-p", prompt, "-q", "--base-url", url]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"`wanvid create` exited {p.returncode}: {p.stderr.strip()[-200:]}")
    return p.stdout.strip()


def _follow(job: Job, seeds: Seeds) -> None:
    """Poll one task with one schedule until it ends; note when that was noticed."""
    time.sleep(job.lag)
    try:
        if job.schedule not in LOOPS:
            # Not common.measure: that runs one process at a time, and these run side by side.
            p = subprocess.run(
                [WANVID, "wait", job.task_id, "--base-url", job.url, "-q"],
                env=seeds.env[job.schedule],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            job.noticed = time.time()
            expected = 0 if job.case.endswith("task") else 3  # wait exits 3 when the task failed
            if p.returncode != expected:
                job.error = f"`wanvid wait` exited {p.returncode}, expected {expected}"
            return
        interval = LOOPS[job.schedule]
        with requests.Session() as s:
            n = 0
            while True:
                r = s.get(f"{job.url}/aliyun/v1/tasks/{job.task_id}", headers=AUTH, timeout=10)
                r.raise_for_status()
                if r.json()["output"]["task_status"] in ENDED:
                    job.noticed = time.time()
                    return
                time.sleep(interval(n))
                n += 1
    except Exception as exc:
        job.error = f"{type(exc).__name__}: {exc}"


def _end_time(s: requests.Session, job: Job) -> float:
    """The task's end as the sandbox states it: ``end_time``, DashScope's zone-less text at UTC+8 (the
    gateway's zone, ``wanvid.rules.task.GATEWAY_ZONE``) with milliseconds."""
    from datetime import datetime

    from wanvid.rules.task import GATEWAY_ZONE

    r = s.get(f"{job.url}/aliyun/v1/tasks/{job.task_id}", headers=AUTH, timeout=10)
    text = r.json()["output"]["end_time"]  # e.g. "2026-11-20 10:00:00.123"
    return datetime.fromisoformat(text).replace(tzinfo=GATEWAY_ZONE).timestamp()


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b >= 0.1 else "n/a"  # against a near-zero delay a ratio says nothing
