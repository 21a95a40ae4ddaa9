"""Polling a task until it ends: the schedule, the deadline, and nothing else.

``wait_for`` returns the ended task whatever its outcome (the caller decides what a failure means) and
raises ``WaitTimeout`` when the deadline passes first. Clock and sleep are injectable so tests of the
schedule take no real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import WaitTimeout
from .task import Task

FIRST_INTERVAL = 2.0
MAX_INTERVAL = 15.0
GROWTH = 1.5
MAX_HINT = 60.0


def intervals(fixed: float | None = None) -> Callable[[int], float]:
    """Seconds to wait before poll n+1: fixed, or 2 s growing by 1.5x to 15 s (Alibaba suggests ~15 s)."""
    if fixed is not None:
        return lambda n: fixed
    return lambda n: min(FIRST_INTERVAL * GROWTH**n, MAX_INTERVAL)


def wait_for(
    fetch: Callable[[], Task],
    *,
    timeout: float | None,
    interval: float | None = None,
    on_update: Callable[[Task, float], None] = lambda task, elapsed: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Task:
    schedule = intervals(interval)
    start = clock()
    n = 0
    while True:
        task = fetch()
        elapsed = clock() - start
        on_update(task, elapsed)
        if task.status.ended:
            return task
        if timeout is not None and elapsed >= timeout:
            raise WaitTimeout(f"task {task.id} is still {task.status.value} after {elapsed:.0f}s")
        # A server hint wins over our own schedule; --poll-interval wins over both. The hint is bounded:
        # a stray "Retry-After: 3600" must not put the poller to sleep for an hour.
        hinted = interval is None and task.retry_after is not None
        wait = min(task.retry_after or 0.0, MAX_HINT) if hinted else schedule(n)
        if timeout is not None:
            wait = min(wait, max(0.0, timeout - elapsed))  # one last look exactly at the deadline
        sleep(wait)
        n += 1
