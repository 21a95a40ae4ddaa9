"""The sandbox: wanvid's built-in gateway emulator (``wanvid sandbox``), a product of its own.

It serves both protocols of API.md on a local port, as the real gateway answers them, with switchable
faults, so a client (wanvid, the official SDKs, users' own code in their CI) can be tested without a key
or a network. Standard library only (plus wanvid's own errors and model rules, which client and emulator
share).

The public face is what this module exports:

- ``Sandbox``: the server. ``with Sandbox(queue_seconds=0.2, run_seconds=0.6) as sb:`` serves on a free
  127.0.0.1 port; ``sb.url`` is its base URL, ``sb.api_key`` the key it wants (None: any Bearer key).
  ``sb.faults``, ``sb.flavor``, ``sb.requests()``, ``sb.tasks()``, ``sb.stats()`` and ``sb.reset()``
  steer and observe it, as do its HTTP control endpoints under ``/_sandbox/`` (health, faults, flavor,
  timing, tasks, requests, stats, reset).
- ``Faults``: the fault switches (failed tasks, 429/5xx, rate and task limits, dropped connections,
  malformed answers, cut, slow, changed, huge or HTML videos, expiry, ...); ``MALFORMED_KINDS`` the broken
  answers the ``malformed`` fault can give.
- ``FLAVORS``: the answer styles (``docs``, the default; ``newapi``; ``house``), and ``STATUS_STYLES`` the
  unified words of ``house``.
- ``RecordedRequest``: one request as ``Sandbox.requests()`` returns it.
- ``sample_mp4()``: the bytes of the video every finished task serves; ``min_video_size()`` the smallest
  ``video_size`` fault.

For pytest, ``wanvid.sandbox.pytest_plugin`` gives a ``wanvid_sandbox`` fixture
(``pytest_plugins = ["wanvid.sandbox.pytest_plugin"]`` in a conftest.py).

Inside, one module per concern: ``server`` (``Sandbox``, its lifecycle and state), ``handler`` (HTTP
routing, auth, the routes of both protocols, downloads, control endpoints), ``validation`` (create
requests), ``flavors`` (the answer styles), ``faults`` (the switches and their rules), ``tasks`` (the
time-driven task lifecycle) and ``video`` (the served MP4, ETags, Range). Only the names below are the
sandbox's interface; the modules' own names may change.
"""

from wanvid.sandbox.faults import MALFORMED_KINDS, Faults
from wanvid.sandbox.flavors import FLAVORS, STATUS_STYLES
from wanvid.sandbox.handler import RecordedRequest
from wanvid.sandbox.server import Sandbox
from wanvid.sandbox.video import min_video_size, sample_mp4

__all__ = [
    "FLAVORS",
    "MALFORMED_KINDS",
    "STATUS_STYLES",
    "Faults",
    "RecordedRequest",
    "Sandbox",
    "min_video_size",
    "sample_mp4",
]
