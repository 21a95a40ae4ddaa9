"""How the layers below the CLI tell a person what is happening, without printing anything themselves.

``Reporter`` is the interface every step that takes time or has something to say is given: the job
pipeline (``wanvid.jobs``), uploads (``wanvid.gateway.upload``) and the client's retries. The CLI's
``Output`` (rich live views on a terminal, heartbeat lines in logs) and a batch row's view implement it;
a Python program passes none and gets ``LogReporter``, which sends the same lines to the standard
``logging`` module under the ``wanvid`` logger, or passes its own object with these methods.

Everything a reporter receives may hold text a server sent back: the CLI's views scrub it
(``wanvid.redact``) before it reaches a stream; ``LogReporter`` scrubs it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wanvid import redact

if TYPE_CHECKING:
    import logging

    from wanvid.rules.task import Task


# How a batch row ends, as boards show it (the results file has them in lower case); the first two are good.
FINAL = ("SAVED", "ALREADY_SAVED", "FAILED", "ERROR", "INVALID", "INTERRUPTED", "NOT_STARTED")
GOOD = FINAL[:2]


class PollView(Protocol):
    """Told about every status answer while a task is waited for."""

    def update(self, task: Task, elapsed: float) -> None: ...


class DownloadView(Protocol):
    """Told the size of a download (None when unknown) and every piece that arrives."""

    def start(self, total: int | None) -> None: ...
    def advance(self, n: int) -> None: ...


class Reporter(Protocol):
    """What a job reports. ``info`` is progress chatter a person may want (hidden by ``--quiet``/``--json``);
    ``note`` is a line a script's log should keep (a reused task, a created task id); ``warn`` is a warning;
    ``debug`` is the HTTP log. ``chatty`` says whether passing retries are worth a warning line."""

    @property
    def chatty(self) -> bool: ...
    def info(self, text: str) -> None: ...
    def note(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...
    def debug(self, text: str) -> None: ...
    def stage(
        self, stage: str, *, task_id: str | None = None, status: str | None = None, dest: Path | None = None
    ) -> None:
        """A job moved on (``wanvid.jobs.pipeline``): ``SUBMITTING``; ``CREATED`` or ``REUSED`` with the task and
        its status; ``FOUND`` with the task a command about an earlier one (wait, status, download) goes on with;
        ``NAMED`` with the output path; ``SAVED`` with the saved file."""
        ...

    def polling(self, task_id: str, eta: float | None = None, age: float = 0.0) -> AbstractContextManager[PollView]:
        """``eta``: seconds after creation the task should end; ``age``: how old it was when waiting began."""
        ...

    def downloading(self, name: str, task_id: str) -> AbstractContextManager[DownloadView]: ...

    # Optional, looked up with getattr: ``throttled(reason)``, the reason a request waits while the gateway
    # throttles it ("waiting for the gateway's rate limit (Retry-After 5 s)"), then None once it is answered.


class _Quiet:
    def update(self, task: Task, elapsed: float) -> None:
        pass

    def start(self, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


class LogReporter:
    """The library's default: lines go to ``logging.getLogger("wanvid")`` (info, warning, debug levels), and
    progress is logged at each status change and download start, never per chunk."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        import logging  # here, not at the top: the CLI imports this module on every start and never logs

        self.log = logger or logging.getLogger("wanvid")
        # A library prints nothing unless the program configured logging (logging's last-resort handler would
        # print warnings to stderr otherwise).
        root = logging.getLogger("wanvid")
        if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
            root.addHandler(logging.NullHandler())

    @property
    def chatty(self) -> bool:
        return self.log.isEnabledFor(20)  # logging.INFO

    def info(self, text: str) -> None:
        self.log.info("%s", redact.scrub(text))

    def note(self, text: str) -> None:
        self.log.info("%s", redact.scrub(text))

    def warn(self, text: str) -> None:
        self.log.warning("%s", redact.scrub(text))

    def debug(self, text: str) -> None:
        self.log.debug("%s", redact.scrub(text))

    def stage(
        self, stage: str, *, task_id: str | None = None, status: str | None = None, dest: Path | None = None
    ) -> None:
        if stage == "CREATED":
            self.log.info("created task %s", task_id)
        elif stage == "REUSED":
            self.log.info("reusing task %s (%s)", task_id, (status or "").lower())

    @contextmanager
    def polling(self, task_id: str, eta: float | None = None, age: float = 0.0) -> Iterator[PollView]:
        yield _StatusLog(self.log, task_id)

    @contextmanager
    def downloading(self, name: str, task_id: str) -> Iterator[DownloadView]:
        self.log.info("downloading %s (task %s)", name, task_id)
        yield _Quiet()


class _StatusLog:
    def __init__(self, log: logging.Logger, task_id: str) -> None:
        self.log, self.task_id, self.last = log, task_id, ""

    def update(self, task: Task, elapsed: float) -> None:
        if task.status.value != self.last:
            self.last = task.status.value
            self.log.info("task %s is %s (%.0fs)", self.task_id, self.last, elapsed)
