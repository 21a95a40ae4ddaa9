"""Every expected failure as a typed exception carrying its exit code and a hint.

The CLI has one error boundary (``wanvid.cli.boundary``) that turns these into a one-line message on stderr
and the exit code below; anything else is a bug and exits 1. The hierarchy::

    WanvidError (1)               unexpected / generic
    ├── UsageError (2)            bad flags or input, caught locally before anything is sent
    │   └── FieldError (2)        one request field breaks a model rule (carries the field name)
    ├── ApiError                  the gateway answered with an error (carries status, code, request id)
    │   ├── InvalidRequest (2)    HTTP 400 / ModelNotFound: the server rejected the request as invalid
    │   ├── AuthError (4)         missing key, 401, 403, quota or arrears
    │   ├── NotFound (5)          404, task_not_exist, UNKNOWN: no such task, or it expired
    │   │   └── Expired (5)       the journal's 24 h are over and the gateway has no (or no usable) answer
    │   ├── Unavailable (6)       connection errors, 5xx, 429 after the retry budget is spent
    │   └── BadAnswer (6)         an answer wanvid cannot read: not JSON, wrong shape, too big
    ├── TaskFailed (3)            the task itself ended FAILED / CANCELED
    ├── CorruptDownload (7)       the download is not the video: not an MP4, short, or broken
    ├── StorageError (8)          this machine cannot keep the result or the journal: disk full,
    │                             read-only directory, a corrupt or newer-schema journal
    ├── HookFailed (9)            the video is saved, but the --on-complete command failed
    ├── WaitTimeout (124)         --timeout passed while the task still runs
    └── Interrupted (130/143/129) stopped by a signal: 128 + its number (SIGINT/Ctrl-C 130, SIGTERM 143,
                                  SIGHUP 129), as a shell reports a process the signal killed

An error raised after a task was paid for carries ``task_id`` (and the task's JSON when known), so the
boundary can always say which task is safe and how to pick it up. This module imports nothing heavy:
it is on the path of ``--help``.
"""

from __future__ import annotations

from typing import Any


class WanvidError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.task_id: str | None = None
        self.task: dict[str, Any] | None = None  # the task's JSON document, for --json error output

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of an error (``--json``)."""
        doc: dict[str, Any] = {
            "error": {
                "message": self.message,
                "hint": self.hint,
                "exit_code": self.exit_code,
                "code": getattr(self, "code", None),
                "request_id": getattr(self, "request_id", None),
                "task_id": self.task_id,
            }
        }
        if self.task is not None:
            doc["task"] = self.task
        return doc


class UsageError(WanvidError):
    exit_code = 2


class FieldError(UsageError):
    """A value breaks a model rule. ``field`` is the canonical name (``duration``, ``image``...)."""

    def __init__(self, field: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.field = field


class ApiError(WanvidError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.code = code
        self.at_deadline = False  # raised because the caller's deadline came first (Client.bounded)
        self.request_id = request_id
        self.unsent = False  # the request certainly never reached the server (refused, unresolved)


class InvalidRequest(ApiError):
    exit_code = 2


class AuthError(ApiError):
    exit_code = 4


class NotFound(ApiError):
    exit_code = 5


class Unavailable(ApiError):
    exit_code = 6


class Expired(NotFound):
    pass


class BadAnswer(ApiError):
    exit_code = 6


class TaskFailed(WanvidError):
    exit_code = 3


class CorruptDownload(WanvidError):
    exit_code = 7


class StorageError(WanvidError):
    exit_code = 8


class HookFailed(WanvidError):
    exit_code = 9


class WaitTimeout(WanvidError):
    exit_code = 124


class Interrupted(WanvidError):
    exit_code = 130

    def __init__(self, message: str, hint: str | None = None, *, signum: int = 2) -> None:
        super().__init__(message, hint)
        self.exit_code = 128 + signum


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Python raises KeyboardInterrupt for SIGINT, so that every place that
    tidies up after a Ctrl-C (journal, resume command) does the same for ``timeout``, CI cancellation and
    ``docker stop``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop_for(signum: int) -> KeyboardInterrupt:
    """What a stop by ``signum`` raises where it is noticed: KeyboardInterrupt for SIGINT, else ``Stopped``."""
    return KeyboardInterrupt() if signum == 2 else Stopped(signum)


def signal_number(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt: SIGTERM/SIGHUP for ``Stopped``, else SIGINT (2)."""
    return exc.signum if isinstance(exc, Stopped) else 2
