"""``Session``: the resolved settings, the journal, a client factory and a reporter — what every job is given.

A session is built once per command (or per ``wanvid.Wanvid``) from the same precedence everywhere:
explicit arguments > environment > config file profile > defaults (``wanvid.config.resolve``). It holds
no state about any one task: the protocol a task was created with, the deadline of a wait and the
output of a download are arguments of the steps (``wanvid.jobs.steps``), not fields set here.

Every key the session could send is registered with ``wanvid.redact`` as soon as it is known, so no
message, journal row or result file can carry it.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wanvid import config, redact
from wanvid.errors import UsageError
from wanvid.report import LogReporter, Reporter

if TYPE_CHECKING:
    from wanvid.gateway.client import Client, Gate
    from wanvid.store.journal import Entry, Journal

_OPENING = threading.Lock()


@dataclass
class Session:
    settings: config.Settings
    report: Reporter = field(default_factory=LogReporter)
    allow_insecure: bool = False  # send the key over plain http to a host that is not this machine
    debug: bool = False  # log every HTTP exchange through ``report.debug``
    # A batch row's session: a rate-limit budget shared with the other rows, and a sleep that ends (raising
    # KeyboardInterrupt) when the batch is stopped.
    gate: Gate | None = None
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        profile: str | None = None,
        protocol: str | None = None,
        report: Reporter | None = None,
        allow_insecure: bool = False,
        debug: bool = False,
    ) -> Session:
        """Explicit values > ``WANVID_*`` environment > the config file's profile > defaults."""
        # Every key this process could hold, masked out of any message even if it is malformed.
        for candidate in (api_key, *(os.environ.get(n) for n in config.KEY_ENV_VARS)):
            redact.add(candidate)
        settings = config.resolve(api_key=api_key, base_url=base_url, profile=profile, protocol=protocol)
        redact.add(settings.api_key.value)
        return cls(settings, report or LogReporter(), allow_insecure=allow_insecure, debug=debug)

    @property
    def base(self) -> str:
        return (self.settings.base_url.value or config.DEFAULT_BASE_URL).rstrip("/")

    @property
    def profile_name(self) -> str:
        return self.settings.profile.value or config.DEFAULT_PROFILE

    @property
    def protocol(self) -> str:
        """The protocol new tasks are created with."""
        return self.settings.protocol.value or config.DEFAULT_PROTOCOL

    def protocol_for(self, entry: Entry | None) -> str:
        """The protocol to ask about a task with: the one the journal says it was created with (a fact about the
        task beats env and config), unless one was given explicitly."""
        if entry is not None and entry.protocol and self.settings.protocol.source != "flag":
            return entry.protocol
        return self.protocol

    # The journal connection, opened on first use and shared (by reference: ``dataclasses.replace`` copies the
    # list, not its content) by the sessions of a batch's rows. One connection serves every worker thread
    # (``Journal`` takes turns under a lock): they share one page cache instead of each rereading the file.
    _journal: list[Journal] = field(default_factory=list, repr=False, compare=False)
    _borrowed: bool = field(default=False, repr=False, compare=False)  # a row's session: the owner closes it

    @property
    def journal(self) -> Journal:
        """The journal connection, opened on first use."""
        if not self._journal:
            from wanvid.store.journal import Journal

            with _OPENING:
                if not self._journal:
                    self._journal.append(Journal())
        return self._journal[0]

    def close(self) -> None:
        """Close the journal connection, if this session opened it (a batch row's session leaves it open)."""
        if self._journal and not self._borrowed:
            self._journal[0].close()

    def client(self) -> Client:
        """An HTTP client for the gateway; a UsageError without a key, or for plain http to another host."""
        from wanvid.gateway.client import Client, is_loopback

        key = self.settings.require_key()
        host = urlsplit(self.base).hostname or ""
        if urlsplit(self.base).scheme == "http" and not is_loopback(host):
            if not self.allow_insecure:
                raise UsageError(
                    f"refusing to send the API key over plain http to {host}",
                    hint="use an https:// base URL, or pass --allow-insecure if you trust every network in between",
                )
            self.report.warn(f"sending the API key over plain http to {host} (--allow-insecure)")
        return Client(
            self.base,
            key,
            sleep=self.sleep,
            on_retry=self.report.warn if self.report.chatty else None,
            on_throttle=getattr(self.report, "throttled", None),  # optional (wanvid.report): a batch row's reason
            log=self.report.debug if self.debug else None,
            gate=self.gate,
        )

    def for_row(self, report: Reporter, gate: Gate, sleep: Callable[[float], None]) -> Session:
        """The session of one batch row's worker: its own display and sleep, the batch's journal connection."""
        return replace(self, report=report, gate=gate, sleep=sleep, _borrowed=True)

    def again(self, *words: str, protocol: str | None = None) -> str:
        """The exact command that picks up where a job stopped (never with the key in it). ``protocol``: the
        task's, pinned so that a different env or config cannot change it; None leaves it out."""
        cmd = ["wanvid", *words]
        if protocol is not None and (protocol != "native" or self.settings.protocol.source != "default"):
            cmd += ["--protocol", protocol]
        if self.settings.profile.source == "flag":
            cmd += ["--profile", self.profile_name]
        if self.settings.base_url.source == "flag":
            cmd += ["--base-url", self.settings.base_url.value or ""]
        if self.allow_insecure:
            cmd += ["--allow-insecure"]
        return shlex.join(cmd)
