"""The one task shape and status vocabulary the rest of wanvid sees, whatever the protocol said.

Each protocol parses its answers into ``Task``; the raw payload is kept for ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "request_id": self.request_id,
            "expires_at": self.expires_at,
            "raw": self.raw,
        }
