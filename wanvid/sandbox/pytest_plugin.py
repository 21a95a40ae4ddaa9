"""A pytest plugin for users' own tests: the ``wanvid_sandbox`` fixture, a gateway emulator per test.

Enable it in your root conftest.py (it is deliberately not a ``pytest11`` entry point, so it never loads
into the pytest runs of everyone who installs wanvid)::

    pytest_plugins = ["wanvid.sandbox.pytest_plugin"]

then ask for the fixture::

    def test_my_client(wanvid_sandbox):
        url, key = wanvid_sandbox.url, wanvid_sandbox.api_key
        ...  # point your client, an SDK or the wanvid CLI (WANVID_BASE_URL, WANVID_API_KEY) at them

The fixture is a started ``wanvid.sandbox.Sandbox`` on a free 127.0.0.1 port with fast task timings
(0.2 s queued, 0.6 s running) and a fresh random key it insists on; it is stopped when the test ends.
Steer it from the test through its attributes (``faults``, ``flavor``, ``queue_seconds``...) or over
HTTP (``/_sandbox/``), and assert on ``requests()``, ``tasks()`` and ``stats()``.

Only this module needs pytest: ``import wanvid.sandbox`` does not load it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from wanvid.sandbox import Sandbox


@pytest.fixture
def wanvid_sandbox() -> Iterator[Sandbox]:
    """A started gateway emulator: ``.url`` its base URL, ``.api_key`` the key it accepts (and no other)."""
    # Nothing to wait for: the port is bound and listening when Sandbox() returns, so a request made
    # before the serving thread runs waits in the backlog instead of being refused.
    with Sandbox(api_key="sk-sandbox-" + secrets.token_hex(16), queue_seconds=0.2, run_seconds=0.6) as sb:
        yield sb
