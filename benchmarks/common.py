"""Shared plumbing: the isolated environment, timing whole processes, the sandbox subprocess, result rows.

Whole processes are timed from just before spawn to just after reaping with ``os.wait4``, which also
hands back the child's peak RSS (``ru_maxrss``): the figures a user at a shell sees, interpreter start
included. Every wanvid process runs the venv's installed ``wanvid`` script with its own config and data
dirs, a dummy key, and an explicit ``--base-url``, so nothing on the machine leaks into the figures.
"""

from __future__ import annotations

import marshal
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
WANVID = str(Path(sys.executable).parent / "wanvid")  # the installed entry point, as a user runs it
KEY = "bench-dummy-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MiB = 1024 * 1024


@dataclass
class Ctx:
    """What every section gets: the mode, a scratch dir (removed at the end) and the isolated env."""

    quick: bool
    tmp: Path
    env: dict[str, str]


@dataclass
class Row:
    """One line of the final table. Values are preformatted text; ``ok`` decides the exit code."""

    name: str
    measured: str
    comparison: str
    ratio: str
    target: str
    ok: bool
    note: str = ""


@dataclass
class Proc:
    wall: float  # seconds, spawn to reap
    rss: int  # peak resident set size of the child, bytes
    rc: int
    out: str  # stdout
    cpu: float = 0.0  # seconds of CPU, user + system, of the child


def isolated_env(tmp: Path) -> dict[str, str]:
    """The caller's environment minus anything wanvid or completion reads, plus private dirs and a dummy key."""
    drop = ("WANVID_", "OPEAI_", "_WANVID_", "_TYPER_", "COMP_", "PYTHON")
    # PYTHON* goes too (PYTHONPATH aside): PYTHONDONTWRITEBYTECODE, for one, leaves an editable install's
    # modules without .pyc files, so every run would compile them; an installed tool never does.
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) or k == "PYTHONPATH"}
    dirs = {name: tmp / name for name in ("config", "data", "xdg-config", "xdg-data", "xdg-cache")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    env.update(
        WANVID_CONFIG_DIR=str(dirs["config"]),
        WANVID_DATA_DIR=str(dirs["data"]),  # where the task journal lives
        XDG_CONFIG_HOME=str(dirs["xdg-config"]),  # in case something falls back to platformdirs
        XDG_DATA_HOME=str(dirs["xdg-data"]),
        XDG_CACHE_HOME=str(dirs["xdg-cache"]),
        WANVID_API_KEY=KEY,
    )
    return env


def installed_copy(tmp: Path) -> tuple[str, str]:
    """wanvid installed from a wheel, as a user has it, in a throwaway venv whose other packages are the
    repo .venv's (a .pth line); returns that venv's (python, wanvid).

    The .venv holds wanvid as an editable install, whose import hook (setuptools' finder, loaded by a .pth
    file at every start of that interpreter) costs ~14 ms of each process and is not there for a user. A
    directory named by a .pth line gets no .pth processing of its own, so the hook stays out."""
    import sysconfig

    venv = tmp / "installed"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "_wanvid_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # pip builds the wheel (in its build isolation, as `make test`'s install did) and installs it there.
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(REPO)]
    subprocess.run(install, check=True, stdout=subprocess.DEVNULL)
    return str(python), str(venv / "bin" / "wanvid")


def say(text: str) -> None:
    """Progress and detail figures, flushed at once so a long run shows it is alive (and `| tee` keeps it)."""
    print(text, flush=True)


class _Spawner:
    """The helper process (spawner.py) that forks the measured processes; one request at a time."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wanvid-bench-spawn-"))
        script = str(Path(__file__).with_name("spawner.py"))
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.lock = threading.Lock()

    def run(self, argv: Sequence[str], env: dict[str, str], stderr_path: str | None) -> Proc:
        out = self.dir / "stdout"
        with self.lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            marshal.dump((list(argv), env, str(REPO), str(out), stderr_path), self.proc.stdin)
            self.proc.stdin.flush()
            wall, rss, rc, cpu = marshal.load(self.proc.stdout)
            text = out.read_text(errors="replace")
        return Proc(wall, rss, rc, text, cpu)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_spawner: _Spawner | None = None


def measure(argv: Sequence[str], env: dict[str, str], *, stderr_path: str | None = None) -> Proc:
    """Run one process to completion (cwd: the repo; stdin: /dev/null; stderr: /dev/null or
    ``stderr_path``); its wall time, peak RSS, exit code and stdout."""
    global _spawner
    if _spawner is None:
        _spawner = _Spawner()
    return _spawner.run(argv, env, stderr_path)


def close_spawner() -> None:
    global _spawner
    if _spawner is not None:
        _spawner.close()
        _spawner = None


def rounds(cases: dict[str, tuple[list[str], dict[str, str]]], n: int, warmup: int = 2) -> dict[str, list[Proc]]:
    """Run every case ``n`` times, interleaved (a, b, c, a, b, c ...) so drift hits all of them alike.

    The first ``warmup`` rounds are dropped: they pay for cold page cache and .pyc writing."""
    got: dict[str, list[Proc]] = {name: [] for name in cases}
    for i in range(warmup + n):
        for name, (argv, env) in cases.items():
            p = measure(argv, env)
            if i >= warmup:
                got[name].append(p)
    return got


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@contextmanager
def sandbox(env: dict[str, str], *, queue: float = 0.0, run: float = 0.0, fail: str | None = None) -> Iterator[str]:
    """``wanvid sandbox --port 0`` as a subprocess (its own interpreter, so it competes with the harness for
    neither the GIL nor a core); yields its base URL. Task timings and the failure fault are start flags."""
    argv = [WANVID, "sandbox", "--port", "0", "--queue-seconds", str(queue), "--run-seconds", str(run)]
    if fail:
        argv += ["--fail", fail]
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert p.stdout is not None
        url = p.stdout.readline().decode().strip()  # the first stdout line is its URL
        if not url.startswith("http"):
            raise RuntimeError(f"`wanvid sandbox` did not start (exit {p.poll()})")
        yield url
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if p.stdout:
            p.stdout.close()


# The image is an https URL: the sandbox checks its form but never fetches it, so creating costs nothing.
NATIVE_CREATE = {
    "model": "wan2.7-i2v",
    "input": {"prompt": "x", "media": [{"type": "first_frame", "url": "https://example.com/cat.png"}]},
}


def create_task(session: requests.Session, url: str) -> str:
    """Create a task straight over HTTP (no wanvid process in between); its id."""
    r = session.post(url + "/aliyun/v1/videos/generations", json=NATIVE_CREATE, headers=AUTH, timeout=10)
    r.raise_for_status()
    return str(r.json()["output"]["task_id"])


# ---- formatting ------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def mib(nbytes: float) -> str:
    return f"{nbytes / MiB:.1f} MiB"


def rate(bps: float | None) -> str:
    return "n/a" if bps is None else f"{bps / MiB:.0f} MiB/s"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def size_name(nbytes: int) -> str:
    return f"{nbytes // (1024 * MiB)} GiB" if nbytes % (1024 * MiB) == 0 else f"{nbytes // MiB} MiB"
