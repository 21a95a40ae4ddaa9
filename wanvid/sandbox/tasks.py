"""The sandbox's tasks: what a create asks for, a created task, and its time-driven lifecycle.

A task's status is never stored: it is computed from its age and the timings it captured at creation
(queue, run, TTL, when it ends). The native words (PENDING, RUNNING, SUCCEEDED, FAILED, UNKNOWN) are
the internal ones; ``flavors`` maps them to each answer style's words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PENDING, RUNNING, SUCCEEDED, FAILED, UNKNOWN = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "UNKNOWN"


@dataclass
class NewTask:
    """What a validated create request asks for, protocol-neutral."""

    model: str
    prompt: str
    size: str
    seconds: str
    duration: int
    resolution: str
    prompt_extend: bool


@dataclass
class Task(NewTask):
    """A created task: the request plus what the lifecycle is computed from, all fixed at creation."""

    id: str
    protocol: str  # the route that created it: "native" or "unified"
    created_mono: float  # ages come from the monotonic clock ...
    created_wall: float  # ... shown timestamps from the wall clock
    queue_seconds: float
    run_seconds: float
    ttl_seconds: float
    ends_after: float  # seconds from creation to SUCCEEDED or FAILED
    failure: tuple[str, str] | None  # (code, message) when the task ends FAILED
    polls: int = 0  # status queries received (guarded by the sandbox lock, like the counters below)
    downloads: int = 0  # video bodies started
    unknown_left: int = 0  # status queries still to answer UNKNOWN (the unknown_queries fault)
    regress: bool = False  # the regress_once fault, captured at creation
    ended_answers: int = 0  # status queries answered SUCCEEDED or FAILED so far


def status_at(task: Task, elapsed: float, *, expire: bool) -> str | None:
    """The native status ``elapsed`` seconds after creation, or None once expired (``expire``: the fault)."""
    if expire or elapsed > task.ttl_seconds:
        return None
    if elapsed >= task.ends_after:
        return SUCCEEDED if task.failure is None else FAILED
    return PENDING if elapsed < task.queue_seconds else RUNNING


def as_answered(task: Task, status: str) -> str:
    """The status a query answers under the unknown_queries and regress_once faults (sandbox lock held)."""
    if task.unknown_left > 0:
        task.unknown_left -= 1
        return UNKNOWN
    if status in (SUCCEEDED, FAILED):
        task.ended_answers += 1
        if task.regress and task.ended_answers == 2:  # the query right after the first ended answer
            return RUNNING
    return status


def not_polled(task: Task, status: str, elapsed: float) -> bool:
    """Whether the gateway's own first poll of the task is still to come: the first half of its queue
    time stands for that (the real gateway polls upstream about every 15 s)."""
    return status == PENDING and elapsed < task.queue_seconds / 2


def active_span(task: Task) -> float:
    """Seconds from creation during which the task is unfinished (PENDING or RUNNING): until it ends, or
    until its TTL runs out first."""
    return max(0.0, min(task.ends_after, task.ttl_seconds))


def max_overlap(tasks: Iterable[Task]) -> int:
    """The most tasks unfinished at one moment, from their own timings (polled or not)."""
    events: list[tuple[float, int]] = []
    for task in tasks:
        span = active_span(task)
        if span > 0:  # a task finished at creation (zero timings) is never unfinished
            events += [(task.created_mono, 1), (task.created_mono + span, -1)]
    # At equal times -1 sorts first: a task ending as another is created does not overlap it.
    events.sort()
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most
