"""Shared fixtures: every test runs with config, data dir and env isolated, against a real sandbox.

Helpers that are not fixtures (``wv``, processes, waiting for a state) are in helpers.py; ``TEST_KEY`` and
``wv`` are imported here too, for the tests that still take them from conftest."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from PIL import Image

from wanvid.sandbox import Sandbox

from .helpers import TEST_KEY, wv

__all__ = ["TEST_KEY", "wv"]

# A shell starts a background job (`make test &`, a CI step's `cmd &`) with SIGINT ignored, and an ignored
# signal stays ignored across exec: every wanvid the tests start would ignore the Ctrl-C they send it (wanvid
# leaves an ignored signal alone, as nohup expects). The tests model a terminal, where Ctrl-C arrives.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The fuzz tests (hypothesis) draw the same inputs on every run, so a red CI is the code's doing and can be
# reproduced; WANVID_FUZZ=explore draws new ones (and found the lone-surrogate bugs of cli.boundary._check_text).
hypothesis.settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis.settings.register_profile("explore", derandomize=False, database=None)
hypothesis.settings.load_profile(os.environ.get("WANVID_FUZZ", "repeatable"))

_ENV_VARS = (
    "WANVID_API_KEY",
    "OPEAI_API_KEY",
    "WANVID_BASE_URL",
    "WANVID_PROFILE",
    "WANVID_CONFIG_DIR",
    "WANVID_DATA_DIR",
    "WANVID_PROTOCOL",
    "WANVID_MAX_RETRIES",
    "WANVID_DEBUG",
    "NO_COLOR",
    "CI",
    "WANVID_HEARTBEAT",
    "WANVID_BUCKET",
    "WANVID_BUCKET_ENDPOINT",
    "WANVID_BUCKET_REGION",
    "WANVID_UPLOAD_IMAGES",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real user's config or journal, and no real env var leaks in."""
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANVID_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANVID_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A real gateway emulator on a free 127.0.0.1 port with fast task timings."""
    with Sandbox(queue_seconds=0.2, run_seconds=0.6) as sb:
        yield sb


@pytest.fixture
def gw(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox as the gateway of every in-process command (base URL and key in the environment)."""
    monkeypatch.setenv("WANVID_BASE_URL", sandbox.url)
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
    return sandbox


@pytest.fixture
def slow() -> Iterator[Sandbox]:
    """A gateway whose tasks stay PENDING for a minute: a task that is surely unfinished, even on a loaded
    machine (a timeout, a signal while waiting, a list of unfinished tasks)."""
    with Sandbox(queue_seconds=60, run_seconds=60) as sb:
        yield sb


@pytest.fixture
def slow_gw(slow: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """``slow`` as the gateway of every in-process command, as ``gw`` is for ``sandbox``."""
    monkeypatch.setenv("WANVID_BASE_URL", slow.url)
    monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
    return slow


@pytest.fixture
def cat(isolated: Path) -> Path:
    path = isolated / "cat.png"
    Image.new("RGB", (832, 480), "teal").save(path)
    return path


# The suite runs on a few xdist workers, which take tests in collection order. The longest tests (each
# waits out a task, a batch or a rate limit) go first, so that no worker is left running one of them
# alone at the end while the others are idle; their order among themselves, and everyone else's, is kept.
LONG_FIRST = (
    "tests/processes/test_demo.py",
    "tests/pipeline/test_batch.py::test_many_rows",
    "tests/pipeline/test_gate.py",
    "tests/processes/test_live_line.py",
    "tests/pipeline/test_batch.py::test_a_tight_rate_limit",
    "tests/pipeline/test_nothing_lost.py::test_429_5xx",
    "tests/rules/test_journal.py::test_a_new_journal_opened_by_many",
    "tests/gateway/test_real_causes.py",
    "tests/processes/test_scripting.py",
    "tests/pipeline/test_batch.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: within a rank, collection order
