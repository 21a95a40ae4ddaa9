"""How a command is declared and how it ends: the ``command`` decorator and the error boundary.

``@command(name, *groups, common=...)`` turns a body ``func(ctx, **own, **groups)`` into a ``Command``:
its own parameters, then the shared option groups (``wanvid.cli.options``), then the common options it
offers (``common``, names from ``options.COMMON_PARAMS``), appended to its signature for Typer. At run
time the common options are packed into a ``Ctx`` (``wanvid.cli.context``), those the command does not
offer at their defaults (None or False), and the body runs inside ``error_boundary``, the one place that
turns a ``WanvidError`` (or Ctrl-C, a closed pipe, a bug) into a one-line message and its exit code.
``wanvid.cli.app`` adds the commands to the app, in the order the help lists them. Each command's help ends
with its examples (``wanvid.cli.examples``), and its usage line names a required argument in capitals
(``MANIFEST``) as Click does, not Typer's ``{MANIFEST}``: one placeholder style in every help.
"""

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand

from wanvid.cli import examples
from wanvid.cli.context import Ctx
from wanvid.cli.options import COMMON_PARAMS, GATEWAY
from wanvid.errors import Interrupted, UsageError, WanvidError, signal_number


@dataclass(frozen=True)
class Command:
    """A command ready for Typer: its name, hidden aliases, and the callback whose signature Typer reads."""

    name: str
    callback: Callable[..., Any]
    aliases: tuple[str, ...] = ()

    def add_to(self, target: typer.Typer) -> None:
        cls = type(f"Command_{self.name}", (_Help,), {"canonical": self.name})
        # The whole first paragraph in a group's listing: Click would cut it to fit one line, ending in "...".
        summary = " ".join((inspect.getdoc(self.callback) or "").split("\n\n")[0].split())
        target.command(self.name, cls=cls, short_help=summary or None)(self.callback)
        for alias in self.aliases:  # the same command under another name, kept out of the help listing
            target.command(alias, hidden=True, cls=cls, short_help=summary or None)(self.callback)


class _Help(TyperCommand):
    """How a command's help reads: its usage line with Click's placeholders, and an Examples section at
    the end, after Options (where Click puts an epilog)."""

    canonical = ""  # the command's own name, which its examples are filed under (an alias shows them too)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        # Typer writes a required argument as {NAME}; Click, and the rest of wanvid's help, as NAME.
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        write_examples(ctx, formatter, self.canonical)


def write_examples(ctx: Any, formatter: Any, name: str | None = None) -> None:
    """The Examples section of the help of ``ctx``'s command (``name``: the name its examples are filed
    under, when it was called by another). A group's ``format_epilog`` may call it too."""
    text = examples.help_text(command_path(ctx, name))
    if text:
        with formatter.section("Examples"):
            formatter.write_text(text)


def command_path(ctx: Any, name: str | None = None) -> str:
    """``wanvid config set``: the path ``wanvid.cli.examples`` files a command's examples under, from the
    names of the commands from the root down to ``ctx``'s (not the program name it was started as), the
    last one ``name`` when given."""
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.command.name)
        ctx = ctx.parent
    names.reverse()
    if name is not None:
        names[-1:] = [name]
    return " ".join(["wanvid", *names])


def command(
    name: str,
    *groups: list[inspect.Parameter],
    common: Sequence[str | inspect.Parameter] = GATEWAY,
    aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Command]:
    """Make ``func(ctx, **own, **groups)`` a command offering the ``common`` options.

    ``common`` names options of ``COMMON_PARAMS`` (in the order they are listed). A Parameter in it,
    named like one of them, fills that ``Ctx`` field from an option of the command's own instead
    (sandbox's ``--api-key`` is the key it accepts, not one it sends)."""
    by_name = {p.name: p for p in COMMON_PARAMS}
    chosen = [by_name[c] if isinstance(c, str) else c for c in common]
    unknown = [p.name for p in chosen if p.name not in by_name]
    if unknown:
        raise ValueError(f"{name}: {unknown} are not Ctx fields")
    defaults = {p.name: p.default for p in COMMON_PARAMS}  # None or False: an option not given

    def decorate(func: Callable[..., Any]) -> Command:
        sig = inspect.signature(func, eval_str=True)
        grouped = {p.name: p for group in groups for p in group}
        # A body may name a group's option in its own signature (for readability); the group's
        # declaration wins and takes that place.
        own = [
            grouped.pop(p.name, p).replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in sig.parameters.values()
            if p.name != "ctx" and p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        params = own + list(grouped.values()) + chosen
        common_names = [p.name for p in chosen]

        flags = {p.name: _flag_of(p) for p in params}

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            given = dict(kwargs)
            ctx = Ctx(**{**defaults, **{n: kwargs.pop(n) for n in common_names}})
            with error_boundary(ctx, name, given.get("task_id") or given.get("task_ids")):
                if ctx.json_out and ctx.quiet:
                    raise UsageError("--json and --quiet exclude each other", hint="pick one")
                _check_text(given, flags)
                return func(ctx, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params, return_annotation=None)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return Command(name, wrapper, aliases)

    return decorate


# Values that name files, or are run by the shell: a name that is not UTF-8 is still a file this system has.
PATHS = frozenset(
    (
        "image",
        "last_frame",
        "audio",
        "first_clip",
        "prompt_file",
        "negative_prompt_file",
        "output",
        "output_dir",
        "results",
        "manifest",
        "name",
        "on_complete",
    )
)


# The commands about one task that an interrupt names it for, with the same command to go on.
RESUMED_AS_IS = ("wait", "download", "status")


def _interrupted(ctx: Ctx, name: str | None, given: Any, signum: int) -> WanvidError:
    """An interrupt the job's steps did not name a task for: the first moments of a command, before its steps
    run. The task it created or reuses, else the one it is about (a stage named it, or its TASK_ID argument)."""
    from wanvid.jobs.steps import safe
    from wanvid.rules.task import id_problem

    if ctx.paid:
        error = Interrupted("interrupted", signum=signum)
        return safe(error, ctx.paid, ctx.again("status", ctx.paid, protocol=ctx.session.protocol))
    task_id = ctx.out.task_id
    if isinstance(given, list | tuple):  # `wait A B C`: every task it was to wait for keeps running
        ids = [g for g in dict.fromkeys(given) if isinstance(g, str) and not id_problem(g)]
        if len(ids) > 1:
            text = f"stopped waiting; tasks {', '.join(ids)} keep running"
            return Interrupted(text, signum=signum, hint="resume with: " + _again(ctx, name or "wait", *ids))
        given = ids[0] if ids else None
    if task_id is None and isinstance(given, str) and not id_problem(given):
        task_id = given
    if task_id is None:
        # create and run name their task themselves from the moment the gateway may have made it (jobs.steps)
        made = " before any task was created" if name in ("create", "run") else ""
        return Interrupted(f"interrupted{made}", signum=signum)
    words = (name, task_id) if name in RESUMED_AS_IS else ("status", task_id)
    resume = _again(ctx, *words)
    text = f"stopped waiting; task {task_id} keeps running" if name == "wait" else "interrupted"
    return safe(Interrupted(text, signum=signum), task_id, resume)


def _again(ctx: Ctx, *words: str) -> str:
    try:
        return ctx.again(*words, protocol=str(ctx.protocol) if ctx.protocol else None)
    except WanvidError:  # the settings could not be read: the command as given is still the way on
        import shlex

        return shlex.join(["wanvid", *words])


def _flag_of(param: inspect.Parameter) -> str:
    """How the command line spells a parameter: its long option, or an argument's name in capitals."""
    infos = [param.default, *getattr(param.annotation, "__metadata__", ())]
    for info in infos:
        if isinstance(info, typer.models.ArgumentInfo):
            return param.name.upper()
        if isinstance(info, typer.models.OptionInfo):
            longs = [d for d in info.param_decls or () if d.startswith("--")]
            return longs[0].split("/")[0] if longs else "--" + param.name.replace("_", "-")
    return param.name.upper()


def _check_text(values: dict[str, Any], flags: dict[str, str]) -> None:
    """Text options (a prompt, a model, a profile, a task id...) must be text: an argument whose bytes are not
    UTF-8 (Python keeps them as lone surrogates) is refused here, naming it, instead of failing in the
    journal, an HTTP header or the request body."""
    for name, value in values.items():
        if name in PATHS or not isinstance(value, str):
            continue
        bad = next((ch for ch in value if "\ud800" <= ch <= "\udfff"), None)
        if bad is not None:
            byte = ord(bad) - 0xDC00 if ord(bad) >= 0xDC80 else None
            shown = f" (byte 0x{byte:02x})" if byte is not None else ""
            raise UsageError(
                f"{flags.get(name, name)} is not valid UTF-8 text{shown}",
                hint="check the terminal's or the file's encoding, and give it as UTF-8",
            )


@contextmanager
def error_boundary(ctx: Ctx, name: str | None = None, task_id: Any = None) -> Iterator[None]:
    """Every way a command ends: its exit code and one line on stderr. SIGTERM and SIGHUP end it the way
    Ctrl-C does (``stop_signals``), and whatever stops it, a task it paid for, reuses or is about (``task_id``,
    the command's argument, or one a stage named) is named with the command ``name`` that goes on."""
    from wanvid import redact
    from wanvid.jobs.signals import stop_signals

    secrets = redact.secrets()
    try:
        with stop_signals():
            yield
    except typer.Exit:
        raise
    except WanvidError as exc:  # the steps that follow a payment name the task in their errors (session.safe)
        ctx.out.error(exc)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as stop:
        error = _interrupted(ctx, name, task_id, signal_number(stop))
        ctx.out.error(error)
        raise typer.Exit(error.exit_code) from None
    except BrokenPipeError:  # `wanvid ... | head`: the reader left; nothing to report to anyone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except Exception as exc:
        if os.environ.get("WANVID_DEBUG"):
            raise
        ctx.out.error(
            WanvidError(
                f"unexpected {type(exc).__name__}: {exc}",
                hint="rerun with WANVID_DEBUG=1 for a traceback and report it",
            )
        )
        raise typer.Exit(1) from None
    finally:
        redact.restore(secrets)  # everything this command prints is out; its keys are no longer needed
