"""``Ctx``: one invocation's common options, its output, and the job session built from them.

The CLI's own concerns live here (``--json``/``--quiet`` and the ``Output`` that honours them, the task
a command has paid for so that an interrupt can name it); everything a job needs is the
``wanvid.jobs.session.Session`` made from the same options, with ``Output`` as its reporter. Also the
video options' way to a checked request (``validated``), and where a prompt comes from (``prompt_inputs``:
--prompt-file, stdin, the ``-p -`` and ``-p @FILE`` traps).
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from wanvid import config, redact
from wanvid.cli.output import Output
from wanvid.errors import FieldError, UsageError

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
    from wanvid.jobs import defaults
    from wanvid.rules.request import VideoRequest, validate

    from_file, allow_empty = prompt_inputs(ctx, opts)
    values = {k: (v.value if isinstance(v, Enum) else v) for k, v in opts.items()}
    protocol = ctx.session.protocol  # the settings first: a profile that does not exist is named before its defaults
    filled = defaults.fill(values, ctx.profile_name)  # the profile's model, resolution, duration where no flag is
    try:
        v = validate(VideoRequest(**values), protocol, allow_empty_prompt=allow_empty)
    except FieldError as exc:
        if exc.field in filled:  # the value came from the config file: name the file and the fix
            raise defaults.from_file(exc, ctx.profile_name) from None
        if exc.field in from_file:  # the text came from --prompt-file: name the flag the user typed
            exc.field = PROMPT_FILES[exc.field]
        raise flag_error(exc) from None
    for warning in v.warnings:
        ctx.out.warn(warning)
    for note in v.notes:  # e.g. the size and seconds chosen for a unified create
        ctx.out.info(note)
    return v


# The options that say where a prompt comes from; they are not request fields.
PROMPT_FILES = {"prompt": "prompt_file", "negative_prompt": "negative_prompt_file"}


def prompt_inputs(ctx: Ctx, opts: dict[str, Any]) -> tuple[set[str], bool]:
    """Take the prompt options out of ``opts``, the text of --prompt-file/--negative-prompt-file put in
    ``prompt``/``negative_prompt``; return the fields read from a file and --allow-empty-prompt.

    ``-p -`` and ``-p @FILE`` (FILE existing) are refused: other tools read stdin or a file for them, and
    sent as they are they would pay for a video of the text "-" or "@FILE". A "@" that names no file is
    sent as typed, with a warning."""
    from wanvid.rules.request import read_prompt_file

    allow_empty = bool(opts.pop("allow_empty_prompt", False))
    from_file: set[str] = set()
    stdin_flag = None
    for name, file_name in PROMPT_FILES.items():
        text, ref = opts.get(name), opts.pop(file_name, None)
        flag, file_flag = "--" + name.replace("_", "-"), "--" + file_name.replace("_", "-")
        what = name.replace("_", " ")
        if ref is not None:
            if text is not None:
                raise UsageError(f"{flag} and {file_flag} exclude each other", hint="give the text or a file, not both")
            if ref == "-":
                if stdin_flag:
                    raise UsageError(
                        f"{stdin_flag} - and {file_flag} - would both read stdin", hint="read one of them from a file"
                    )
                stdin_flag = file_flag
                if _on_terminal():
                    ctx.out.note(f"reading the {what} from the terminal; end it with Ctrl-D")
            try:
                opts[name] = read_prompt_file(ref, file_name)
            except FieldError as exc:
                raise flag_error(exc) from None
            from_file.add(name)
        elif text == "-":
            raise UsageError(f"{flag} - would send '-' as the {what}", hint=f"read stdin with {file_flag} -")
        elif text is not None and text.startswith("@"):
            if _names_file(text[1:]):
                raise UsageError(
                    f"{flag} {text} would send the file's name as the {what}, not what it holds",
                    hint=f"read the file with {file_flag} {shlex.quote(text[1:])}",
                )
            ctx.out.warn(f"{flag} starts with '@' but names no file; sent as text")
    return from_file, allow_empty


def _names_file(path: str) -> bool:
    try:
        return bool(path) and os.path.exists(os.path.expanduser(path)) and not os.path.isdir(os.path.expanduser(path))
    except (OSError, ValueError):  # a NUL in the text, a name too long: no file
        return False


def _on_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False
