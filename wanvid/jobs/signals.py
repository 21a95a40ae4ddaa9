"""Signals: SIGTERM and SIGHUP end a job the way Ctrl-C does, and none of them may lose a paid task.

``stop_signals`` (installed by the CLI's error boundary, and by anyone who wants the same in a script)
turns SIGTERM and SIGHUP into ``Stopped``, a KeyboardInterrupt, so one ``except KeyboardInterrupt``
tidies up after all three. ``signals_held`` holds them while a create request is in flight and being
journaled: a stop between the gateway's answer and the journal would lose a task that is paid for, so
the job stops right after, naming it. Signals reach only the main thread; a batch's workers are stopped
between steps instead (``wanvid.jobs.batch``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wanvid.errors import Stopped, stop_for

if TYPE_CHECKING:
    from wanvid.gateway.client import Client

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _handled(sig: int) -> bool:
    """Whether wanvid should take this signal: not one the parent set to be ignored (``nohup``, a background
    job's SIGINT), which must stay ignored."""
    return signal.getsignal(sig) is not signal.SIG_IGN


_armed = False  # inside stop_signals: a second stop signal, while the first is being tidied up, ends the process


def armed() -> bool:
    return _armed


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Stopped`` (a KeyboardInterrupt) for as long as a command runs, so they are
    handled like Ctrl-C everywhere: the task named, the journal tidied, exit 128 + the signal's number; and
    a second signal while the first is being tidied up ends the process at once (``exit_on_second_interrupt``).
    Every handler (SIGINT's too, which the tidy-up may reset) is as it was when the command ends.

    The CLI runs every command inside it; a Python program opts in (``with wanvid.stop_signals(): ...``).
    Without it the library changes no handler for longer than a create request's flight."""
    global _armed
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    was_armed, _armed = _armed, True
    for sig in STOP_SIGNALS:
        if sig != signal.SIGINT and _handled(sig):
            signal.signal(sig, stop)
    try:
        yield
    finally:
        _armed = was_armed
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class Held:
    """What ``signals_held`` gives its caller: the signals that arrived, and the client to send the create
    with (this one's retry waits end at once when a signal has come)."""

    caught: list[int]
    client: Client


@contextmanager
def signals_held(client: Client, say: Callable[[str], None]) -> Iterator[Held]:
    """Hold SIGINT, SIGTERM and SIGHUP while the create is sent and journaled; the caller sees which arrived.

    Only the request itself is held: a retry's wait (after a refused or throttled create, which made
    nothing) ends at once when a signal has come. A second signal says what is being waited for; a third
    ends the process at once, task or not."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield Held(caught, client)  # signals reach only the main thread; a batch worker is stopped between steps
        return

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)
        if len(caught) == 2:
            with contextlib.suppress(OSError):
                say(
                    "waiting for the gateway's answer to the create, so the task it makes is not lost "
                    "(a third signal ends wanvid now, losing it)"
                )
        elif len(caught) >= 3:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    nap = client.sleep

    def sleep(seconds: float) -> None:  # a retry's wait: nothing made yet, so a signal ends it
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 or caught:
            if caught:
                raise stop_for(caught[0])
            nap(min(left, 0.1))

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS if _handled(sig)}
    for sig in previous:
        signal.signal(sig, hold)
    try:
        yield Held(caught, client.sleeping(sleep))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_on_second_interrupt() -> None:
    """After the first Ctrl-C (or SIGTERM, SIGHUP) wanvid tidies up (journal, message); a second one ends the
    process at once, even inside a C call such as a wait for the journal's lock (the system's default
    action, not Python's). Only inside ``stop_signals``: a library call must not leave handlers changed."""
    if _armed and threading.current_thread() is threading.main_thread():  # a batch's main thread: its own
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
