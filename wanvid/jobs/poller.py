"""Polling a task until it ends: the schedule, the deadline, and nothing else.

The schedule is shaped by when a task is likely to end (``eta``, seconds after its creation, from the
journal's history of similar tasks):

- fast at first (every 1.5 s for the first 6 s), because fast failures such as content moderation
  come back in seconds; for a task that may itself take only seconds (no history, or a history shorter
  than ``SHORT_TASK``) the first gaps are a fifth of its age, from 0.4 s, so it is noticed within ~20 %
  of its time (a 2 s task: by 2.4 s instead of 3 s, for 7 more requests in its first 6 s);
- sparse in the middle (every 30 s at most), where nothing is expected to happen;
- dense again around the expected finish (every 1.5 s from shortly before it), so the result is
  noticed within about a second of being ready;
- and, if the task overruns, slowly growing gaps (x1.3 up to 15 s, Alibaba's suggestion).

With no history (the first task of a kind: nothing in the journal, no ``progress`` yet) nothing says when
the task will end: the schedule is then geometric, a gap of ``UNSURE`` of the task's age (at least 1.5 s,
at most 30 s), so a task is noticed at most 15 % of its age late, whenever it ends. The prior
(``PRIOR_ETA``) is only what the live line counts down: a dense window around a guess would cost a dozen
requests and rarely be where the task ends (a sandbox task of 10 s was shown RUNNING for 28 s after it
ended under the prior's sparse middle). Simulated from creation: 33 requests for a 120 s task (54 with a
window around the prior; 26 with the prior's schedule alone, which noticed an 8 s task up to 28 s late), 14
for an 8 s one. How late depends on where the end falls in a gap: at most 15 % of the age, about half
that on average (``make bench`` measured 0.2-16 s for 120 s tasks watched from various moments).

Server hints win over the schedule: a ``Retry-After`` sets the next gap (bounded by ``MAX_HINT``), and
a ``progress`` percentage moves the expected finish. ``--poll-interval`` fixes the gap over all of it.
For a 120 s task this is about 16 requests with the finish seen within 1.5 s, where a fixed 5 s poll
makes 24 and a fixed 15 s one notices 7.5 s late on average. ``wait_for`` returns the ended task
whatever its outcome and raises ``WaitTimeout`` when the deadline passes first. Clock and sleep are
injectable so tests of the schedule take no real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wanvid.errors import WaitTimeout
from wanvid.rules.task import Status, Task

EARLY = 6.0  # seconds after creation during which fast failures are looked for
DENSE = 1.5  # the gap while something is likely to happen
SPARSE = 30.0  # the longest gap while nothing is expected
OVERRUN = 15.0  # the longest gap once the expected finish has passed
GROWTH = 1.3
UNSURE = 0.15  # with no history: the gap is this fraction of the task's age (at least DENSE, at most SPARSE)
MAX_HINT = 60.0
MIN_HINT = 1.0
# In the first EARLY seconds of a task that may be short (no history, or one shorter than SHORT_TASK), the
# gap is QUICK of its age, at least FIRST_GAP: a 2 s task is noticed by 2.4 s, not at 3 s (1.5x).
FIRST_GAP = 0.4
QUICK = 0.2
SHORT_TASK = 12.0
PRIOR_ETA = 90.0  # no history: tasks take 1-5 minutes (API.md); erring early costs a few polls, late costs minutes
# How long a task the journal knows to be young may answer UNKNOWN before wanvid believes it is gone. The
# gateway polls upstream about every 15 s and stores a transient upstream error (throttling at Alibaba's 20
# query/s, a network blip) as "unknown" until its next poll succeeds (GATEWAY-VARIANTS.md): 10 minutes is
# 40 of its polls, enough to ride out an upstream incident, while a task that is really gone still ends the
# wait in bounded time. Giving up early would abandon a video already paid for; --timeout still applies.
UNKNOWN_GRACE = 600.0


def window(eta: float) -> float:
    """How long before the expected finish dense polling starts: 10 % of it, at least 6 s."""
    return max(6.0, 0.1 * eta)


def next_gap(age: float, eta: float | None, overrun_polls: int = 0) -> float:
    """Seconds until the next poll of a task ``age`` seconds old that should end ``eta`` seconds after creation
    (None: nothing known, so ``UNSURE`` of its age)."""
    gap = min(SPARSE, max(DENSE, UNSURE * age)) if eta is None else _gap(age, eta, overrun_polls)
    if age < EARLY and (eta is None or eta < SHORT_TASK):  # a task that may end within seconds
        gap = min(gap, max(FIRST_GAP, QUICK * age))
    return gap


def _gap(age: float, eta: float, overrun_polls: int) -> float:
    if age < EARLY:
        return DENSE
    start = eta - window(eta)
    if age < start:
        return min(SPARSE, start - age)  # land exactly where the dense window begins
    if age < eta + window(eta):
        return DENSE
    return min(DENSE * GROWTH ** (overrun_polls + 1), OVERRUN)


def eta_from_progress(task: Task, age: float, eta: float | None) -> float | None:
    """A server's ``progress`` (unified protocol) extrapolated: elapsed / done x 100, once it is meaningful."""
    if task.status is not Status.RUNNING or task.progress is None or not 5 <= task.progress < 100:
        return eta
    return age * 100.0 / task.progress


def wait_for(
    fetch: Callable[[], Task],
    *,
    timeout: float | None,
    interval: float | None = None,
    eta: float | None = None,
    age: float = 0.0,
    unknown_grace: float = 0.0,
    on_update: Callable[[Task, float], None] = lambda task, elapsed: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Task:
    """Poll until the task ends. ``age``: how old the task already was when waiting began.

    An UNKNOWN answer is polled through for ``unknown_grace`` seconds (counted from the first of an unbroken
    run of them), then returned as the end: the caller judges it (``service.check_outcome``)."""
    start = clock()
    overrun = 0
    unknown_since: float | None = None
    while True:
        task = fetch()
        elapsed = clock() - start
        on_update(task, elapsed)
        if task.status.ended:
            return task
        if task.status is Status.UNKNOWN:
            unknown_since = elapsed if unknown_since is None else unknown_since
            if elapsed - unknown_since >= unknown_grace:
                return task
        else:
            unknown_since = None
        if timeout is not None and elapsed >= timeout:
            raise WaitTimeout(f"task {task.id} is still {task.status.value} after {elapsed:.0f}s")
        now = age + elapsed
        eta = eta_from_progress(task, now, eta)
        if interval is not None:
            wait = interval
        elif task.retry_after is not None:
            # A stray "Retry-After: 3600" must not put the poller to sleep for an hour, nor "0" make it spin.
            wait = min(max(task.retry_after, MIN_HINT), MAX_HINT)
        else:
            wait = next_gap(now, eta, overrun)
            overrun = overrun + 1 if eta is not None and now >= eta + window(eta) else 0  # no eta: no overrun
        if timeout is not None:
            wait = min(wait, max(0.0, timeout - elapsed))  # one last look exactly at the deadline
        sleep(wait)
