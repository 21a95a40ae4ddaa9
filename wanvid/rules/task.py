"""The one task shape and status vocabulary the rest of wanvid sees, whatever the protocol said.

Each protocol parses its answers into ``Task``; the raw payload is kept for ``--json``. What makes a
task id usable (``id_problem``) is decided here, once, for ids from the server and from the command line.
How every time in a JSON document is written (``utc``, ``gateway_time``: ISO 8601 in UTC with a "Z") is
decided here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    # The gateway's task table says "unknown" both for an id it never had and, for a while, for a live task
    # whose upstream poll hiccuped (GATEWAY-VARIANTS.md): not ended; the waiter decides how long to believe it.
    UNKNOWN = "UNKNOWN"
    NOT_FOUND = "NOT_FOUND"  # no such task, or it expired
    UNRECOGNIZED = "UNRECOGNIZED"  # a status string no documented vocabulary has: shown, polled on

    @property
    def ended(self) -> bool:
        return self in _ENDED


_ENDED = {Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.NOT_FOUND}

# Every vocabulary the gateway has documented (native, the unified endpoint's three, OpenAI's),
# compared case-insensitively. One table, so a new spelling is a one-line change.
_STATUS_WORDS: dict[str, Status] = {
    "pending": Status.PENDING,
    "queued": Status.PENDING,
    "not_start": Status.PENDING,
    "submitted": Status.PENDING,
    "running": Status.RUNNING,
    "in_progress": Status.RUNNING,
    "processing": Status.RUNNING,
    "succeeded": Status.SUCCEEDED,
    "success": Status.SUCCEEDED,
    "completed": Status.SUCCEEDED,
    "failed": Status.FAILED,
    "failure": Status.FAILED,
    "canceled": Status.CANCELED,
    "cancelled": Status.CANCELED,
    "unknown": Status.UNKNOWN,
    "expired": Status.NOT_FOUND,
}


def parse_status(word: object) -> Status:
    return _STATUS_WORDS.get(str(word or "").strip().lower(), Status.UNRECOGNIZED)


ID_LIMIT = 200  # real ids are 32-36 characters (a UUID, new-api's task_ + 32); far longer is not an id


def id_problem(task_id: str) -> str | None:
    """Why ``task_id`` (already stripped) cannot be used as a task id, or None when it can.

    An id is printed on one line, sent as one URL path segment (where ``.`` and ``..`` would be folded into
    another route by URL normalisation) and used in file names (``<task_id>.mp4``)."""
    if not task_id:
        return "it is empty"
    if len(task_id) > ID_LIMIT:
        return f"it is longer than {ID_LIMIT} characters"
    if task_id in (".", ".."):
        return "it is a path segment, not a name"
    if "/" in task_id or "\\" in task_id:
        return "it contains a slash"
    if not task_id.isprintable() or any(c.isspace() for c in task_id):
        return "it contains spaces or unprintable characters"
    return None


def shown_id(task_id: object) -> str:
    """An id for a one-line message: escaped (``repr``) and cut short, whatever it holds."""
    try:
        text = repr(task_id)
    except (ValueError, RecursionError):  # an int of more digits than Python prints, a list nested too deep
        text = f"<a {type(task_id).__name__} too large to show>"
    return text if len(text) <= 80 else text[:77] + "…"


@dataclass
class Task:
    id: str
    protocol: str
    status: Status
    raw_status: str
    progress: int | None = None
    video_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    model: str | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    request_id: str | None = None
    expires_at: float | None = None  # unix time the result is gone, when the gateway says
    retry_after: float | None = None  # a poll hint the server sent with this answer
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of a task (``--json``); ``raw`` is the server's own answer."""
        return {
            "id": self.id,
            "protocol": self.protocol,
            "status": self.status.value,
            "raw_status": self.raw_status,
            "progress": self.progress,
            "model": self.model,
            "video_url": self.video_url,
            "error": (
                {"code": self.error_code, "message": self.error_message}
                if self.error_code or self.error_message
                else None
            ),
            "submitted_at": gateway_time(self.submitted_at),
            "started_at": gateway_time(self.started_at),
            "finished_at": gateway_time(self.finished_at),
            "request_id": self.request_id,
            "expires_at": utc(self.expires_at),
            "raw": self.raw,
        }


# Every time in a JSON document (--json, sidecars, results files): ISO 8601, UTC, whole seconds, "Z".
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The native protocol's times carry no zone ("2026-11-20 10:00:00.123", API.md): they are DashScope's clock in
# China Standard Time. Its signed video URLs say so: Expires is end_time + 24 h only when end_time is read
# at UTC+8 (end_time "2025-10-11 19:02:27.297", Expires=1760266939 = 2025-10-12T11:02:19Z).
GATEWAY_ZONE = timezone(timedelta(hours=8))


def utc(seconds: float | None) -> str | None:
    """A Unix time as the JSON documents write times; None for none or one no calendar holds."""
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime(TIME_FORMAT)
    except (OverflowError, OSError, ValueError):
        return None


def gateway_time(text: str | None) -> str | None:
    """A gateway's time text (native: naive, at ``GATEWAY_ZONE``; unified, as wanvid parsed it: "... UTC";
    or ISO with an offset) as the JSON documents write times; None when it is no time (``raw`` keeps it)."""
    if not text:
        return None
    text = text.strip()
    stated_utc = text.endswith(" UTC")
    try:
        when = datetime.fromisoformat(text.removesuffix(" UTC").strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC if stated_utc else GATEWAY_ZONE)
    try:
        return when.astimezone(UTC).strftime(TIME_FORMAT)
    except (OverflowError, ValueError):  # year 1 at +08:00 is before the calendar's start in UTC
        return None


def status_word(task: Task) -> str:
    """The task's status, or the server's own word when it is none wanvid knows."""
    return task.status.value if task.status is not Status.UNRECOGNIZED else task.raw_status


def describe(task: Task) -> str:
    """One line about a task's state, as shown while polling."""
    text = status_word(task) + (" (unrecognised)" if task.status is Status.UNRECOGNIZED else "")
    if task.progress is not None and not task.status.ended:
        text += f" {task.progress}%"
    return text
