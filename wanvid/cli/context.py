"""``Ctx``: one invocation's common options, its output, and the job session built from them.

The CLI's own concerns live here (``--json``/``--quiet`` and the ``Output`` that honours them, the task
a command has paid for so that an interrupt can name it); everything a job needs is the
``wanvid.jobs.session.Session`` made from the same options, with ``Output`` as its reporter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from wanvid import config, redact
from wanvid.cli.output import Output
from wanvid.errors import FieldError

if TYPE_CHECKING:
    from wanvid.gateway.client import Client
    from wanvid.jobs.session import Session
    from wanvid.rules.request import Validated


@dataclass
class Ctx:
    """The common options of one invocation, and what is derived from them."""

    api_key: str | None
    base_url: str | None
    profile: str | None
    protocol: str | None  # a flag's value (options.ProtocolName is a str enum)
    json_out: bool
    quiet: bool
    debug: bool
    allow_insecure: bool
    paid: str | None = None  # the task this invocation created or reuses, once there is one (create)

    @cached_property
    def out(self) -> Output:
        # Every key this run could hold, masked out of any message even if it is malformed or the settings
        # cannot be read.
        for candidate in (self.api_key, *(os.environ.get(n) for n in config.KEY_ENV_VARS)):
            redact.add(candidate)
        return Output(json_mode=self.json_out, quiet=self.quiet)

    @cached_property
    def session(self) -> Session:
        from wanvid.jobs.session import Session

        return Session.resolve(
            api_key=self.api_key,
            base_url=self.base_url,
            profile=self.profile,
            protocol=str(self.protocol) if self.protocol else None,
            report=self.out,
            allow_insecure=self.allow_insecure,
            debug=self.debug,
        )

    @property
    def settings(self) -> config.Settings:
        return self.session.settings

    @property
    def base(self) -> str:
        return self.session.base

    @property
    def profile_name(self) -> str:
        return self.session.profile_name

    def client(self) -> Client:
        return self.session.client()

    def again(self, *words: str, protocol: str | None = None) -> str:
        """The command that picks up where this one stopped; ``protocol`` pinned when given."""
        return self.session.again(*words, protocol=protocol)


# Fields whose flag is not simply "--" + field with dashes.
FLAGS = {"image": "IMAGE", "media": "IMAGE/--last-frame/--audio/--first-clip"}


def flag_error(exc: FieldError) -> FieldError:
    """A request field's error named by the flag that sets it."""
    exc.message = f"{FLAGS.get(exc.field, '--' + exc.field.replace('_', '-'))}: {exc.message}"
    return exc


def validated(ctx: Ctx, opts: dict[str, Any]) -> Validated:
    """The command line's video options, with the profile's defaults where no flag was given, checked against
    the model's rules (files inspected, nothing sent)."""
    from wanvid.cli import defaults
    from wanvid.rules.request import VideoRequest, validate

    values = {k: (v.value if isinstance(v, Enum) else v) for k, v in opts.items()}
    protocol = ctx.session.protocol  # the settings first: a profile that does not exist is named before its defaults
    filled = defaults.fill(values, ctx.profile_name)  # the profile's model, resolution, duration where no flag is
    try:
        v = validate(VideoRequest(**values), protocol)
    except FieldError as exc:
        raise (defaults.from_file(exc, ctx.profile_name) if exc.field in filled else flag_error(exc)) from None
    for warning in v.warnings:
        ctx.out.warn(warning)
    for note in v.notes:  # e.g. the size and seconds chosen for a unified create
        ctx.out.info(note)
    return v
