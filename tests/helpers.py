"""What the tests share: running wanvid in-process (``wv``) and as a process (``run``, ``start``, ``finish``,
``on_a_terminal``), the flags that make it poll fast, and waiting for a state instead of sleeping.

A test waits for what it needs to be true (``wait_until``): a request in the sandbox's log, a file on disk,
a signal taken by a process (``signal_delivered``, ``handler_reset``). Sleeping a fixed time instead fails
on a loaded machine, where everything takes longer than the guess. Fixtures (gateways, images) live in
conftest.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from typer.testing import CliRunner, Result

from wanvid.cli.app import app
from wanvid.sandbox import Sandbox

TEST_KEY = "test-key-0123456789-never-print"
ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "examples" / "cat.png"
WANVID = [sys.executable, "-m", "wanvid"]

FAST = ["--poll-interval", "0.1"]  # the shortest poll interval wanvid accepts: a sandbox task ends within a poll
FAST_BATCH = [*FAST, "--stagger", "0.02"]  # a batch also staggers its creates (default 0.5 s apart)

T = TypeVar("T")


# -- in-process ---------------------------------------------------------------------------------------


def wv(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run wanvid in-process; fail the test if the key or a traceback shows up anywhere in the output."""
    result = CliRunner().invoke(app, list(args), input=input, env=env)
    everything = result.stdout + result.stderr
    assert TEST_KEY not in everything, "the API key leaked into output"
    assert "Traceback" not in everything
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# -- as a process -------------------------------------------------------------------------------------


def gateway_env(sb: Sandbox | str) -> dict[str, str]:
    """The variables that point wanvid at a sandbox (or a base URL), with the test key."""
    return {"WANVID_BASE_URL": sb if isinstance(sb, str) else sb.url, "WANVID_API_KEY": TEST_KEY}


def process_env(sb: Sandbox | str | None = None, env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The test's environment (its isolated config and data dirs: conftest's ``isolated``), pointed at
    ``sb`` if given, then ``env`` on top; a None value there unsets the variable."""
    # PYTHONFAULTHANDLER: a process a test must kill for hanging prints every thread's stack (``finish``)
    full = {**os.environ, "PYTHONFAULTHANDLER": "1", **(gateway_env(sb) if sb is not None else {})}
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return full


def checked(out: str, err: str) -> None:
    """What no wanvid process may ever print: the key, anywhere, or a traceback."""
    assert TEST_KEY not in out + err, "the API key leaked into output"
    assert "Traceback" not in err, err


def run(
    *args: str,
    sb: Sandbox | str | None = None,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 60,
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    """``wanvid ARGS`` as a process, to its end (a hang fails the test: TimeoutExpired); ``sb`` and ``env``
    as in ``process_env``, ``kw`` goes to subprocess.run (input, preexec_fn, cwd...)."""
    proc = subprocess.run(
        [*WANVID, *args], capture_output=True, text=True, timeout=timeout, env=process_env(sb, env), **kw
    )
    checked(proc.stdout, proc.stderr)
    return proc


def start(
    *args: str, sb: Sandbox | str | None = None, env: Mapping[str, str | None] | None = None, **kw: Any
) -> subprocess.Popen[str]:
    """``wanvid ARGS`` started as a process with stdout and stderr piped (read them with ``finish``)."""
    return subprocess.Popen(
        [*WANVID, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=process_env(sb, env),
        **kw,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    """Wait for a ``start``ed process: (exit code, stdout, stderr), checked as ``run`` checks them. One still
    running at ``timeout`` fails the test with what it printed and where each of its threads was."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler (process_env) prints every thread's stack, then it dies
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"wanvid {proc.args[3:]} still ran after {timeout} s; stderr:\n{err}") from None
    checked(out, err)
    return proc.returncode, out, err


def on_a_terminal(args: list[str], env: Mapping[str, str]) -> tuple[str, str]:
    """Run wanvid with stderr on a pseudo-terminal (stdout stays a pipe); return (stdout, terminal)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*WANVID, *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **env},
    )
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    return out, screen.decode(errors="replace")


# -- waiting for a state ------------------------------------------------------------------------------


def wait_until(check: Callable[[], T], what: str, timeout: float = 30) -> T:
    """Poll ``check`` until it returns something true, and return that; fail naming ``what`` after
    ``timeout`` seconds (a bound against a hang, far above any real wait)."""
    deadline = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)  # a poll's pace, not a guess at how long the state takes
    return got


def creates(sb: Sandbox) -> int:
    """Create requests the sandbox received on the native route (refused ones too)."""
    return sum(1 for r in sb.requests("/aliyun/v1/videos/generations") if r.method == "POST")


def queries(sb: Sandbox) -> int:
    """Native status queries the sandbox received: a process that made one is polling its task."""
    return len(sb.requests("/aliyun/v1/tasks/"))


def _signal_mask(pid: int, field: str) -> int | None:
    """A signal set from /proc/PID/status (SigPnd, ShdPnd, SigCgt...); None off Linux or once it exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    return None


def signal_delivered(proc: subprocess.Popen[str], sig: int) -> bool:
    """Whether ``sig``, sent to ``proc``, has been handed to it (no longer pending): its handler has run,
    or runs as the interrupted system call returns. True where /proc cannot tell."""
    pending = [_signal_mask(proc.pid, field) for field in ("SigPnd", "ShdPnd")]
    return not any(mask is not None and mask & (1 << (sig - 1)) for mask in pending)


def handler_reset(proc: subprocess.Popen[str], sig: int) -> bool:
    """Whether ``proc`` no longer catches ``sig`` (its handler was set back to the default action).
    True where /proc cannot tell."""
    caught = _signal_mask(proc.pid, "SigCgt")
    return caught is None or not caught & (1 << (sig - 1))


class FakeClock:
    """Time that passes only when something sleeps: a schedule or a rate checked without waiting it out."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
