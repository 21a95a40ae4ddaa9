"""The root of the command line: the Typer app, its ``config`` group, the root callback, and ``run()``.

The commands themselves live in one module each (``wanvid.cli.tasks``, ``batch``, ``sandbox``,
``config``); they are added here, in the order ``wanvid --help`` lists them. Also here, the two
workarounds for the framework: ``_Group`` reports Click's own usage errors the way every other error
is reported, and ``run()`` builds only the command a process runs (``_only_the_named_command``).
``app`` and ``run`` are what the console script, ``python -m wanvid``, the tests and the benchmarks use.
"""

import copy
import inspect
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from wanvid import __version__
from wanvid.cli import batch, config, journal, placement, sandbox, tasks
from wanvid.cli.boundary import write_examples
from wanvid.cli.options import _complete_task as _complete_task  # tests compare complete.py's query with it
from wanvid.cli.output import Output
from wanvid.errors import UsageError


class _Group(TyperGroup):
    """The root command: a usage error Click finds itself (an unknown option, a value not among the
    choices, a missing argument) is reported like every other error: one line, exit 2, and the error
    document on stdout with --json."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **kw: Any) -> Any:  # fmt: skip
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **kw)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            argv = placement.hoist(argv, _groups())  # `wanvid --json status` is `wanvid status --json`
            code = super().main(argv, prog_name, complete_var, False, windows_expand_args, **kw)
        except UsageError as misplaced:  # a command's own option before the command name
            Output(json_mode=_json_asked(argv)).error(misplaced)
            sys.exit(misplaced.exit_code)
        except typer.TyperException as exc:  # click's usage errors (typer vendors click)
            if type(exc).__name__ == "NoArgsIsHelpError":  # `wanvid` or `wanvid config` alone: the help
                sys.stderr.write(exc.format_message() + "\n")
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            path = ctx.command_path if ctx else "wanvid"
            message = exc.format_message()
            hint = f"see: {path} --help"
            if type(exc).__name__ == "NoSuchOption":  # an option of some other command: say which
                message = placement.misplaced(getattr(exc, "option_name", ""), path, app) or message
            elif message.startswith("No such command") and _first_word(argv) in KEY_WORDS:
                message = f"no command {_first_word(argv)!r}: wanvid's key commands are under config"  # not "batch?"
                hint = "the key is checked with: wanvid config check; stored with: wanvid config set-key"
            error = UsageError(message, hint=hint)
            error.exit_code = exc.exit_code
            Output(json_mode=_json_asked(argv)).error(error)
            sys.exit(exc.exit_code)
        except typer.Abort:
            sys.stderr.write("\nerror: aborted\n")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        write_examples(ctx, formatter)


class _ConfigGroup(TyperGroup):
    """The ``config`` and ``journal`` groups: their help ends with examples too."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        write_examples(ctx, formatter)


# Where users of gh and hf look for the key commands (`gh auth status`, `hf auth whoami`, `gh auth login`):
# wanvid has one name for each, under config, and says so instead of a bare "No such command".
KEY_WORDS = {"auth", "login", "whoami", "logout"}


def _first_word(argv: list[str]) -> str:
    return next((a for a in argv if not a.startswith("-")), "")


def _json_asked(argv: list[str]) -> bool:
    before_dashes = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in before_dashes


def _groups() -> dict[str, set[str]]:
    """Each group's name and the names of its commands (what ``placement.hoist`` needs to know of the app)."""
    return {
        g.name: {c.name or "" for c in g.typer_instance.registered_commands}
        for g in app.registered_groups
        if g.name and g.typer_instance
    }


app = typer.Typer(
    cls=_Group,
    name="wanvid",
    help="Turn a still image into a video with Alibaba's Wan models (wan2.7-i2v, wan2.6-i2v) "
    "through the ope.ai gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
CONFIG_HELP = "Store the API key and the defaults of a profile; show where each setting comes from."
config_app = typer.Typer(cls=_ConfigGroup, help=CONFIG_HELP, no_args_is_help=True)
app.add_typer(config_app, name="config", short_help=CONFIG_HELP)  # whole in the listing, not cut at "..."
JOURNAL_HELP = "Drop old tasks that can no longer be fetched from the journal; give the space back to the disk."
journal_app = typer.Typer(cls=_ConfigGroup, help=JOURNAL_HELP, no_args_is_help=True)

# In the order the help lists them.
COMMANDS = (
    tasks.create,
    tasks.status,
    tasks.wait,
    tasks.download,
    tasks.run_,
    batch.batch_,
    tasks.list_,
    sandbox.sandbox,
)
CONFIG_COMMANDS = (
    config.config_set_key,
    config.config_set,
    config.config_unset,
    config.config_show,
    config.config_get,
    config.config_check,
    config.config_path,
)
for _cmd in COMMANDS:
    _cmd.add_to(app)
for _cmd in CONFIG_COMMANDS:
    _cmd.add_to(config_app)
for _cmd in (journal.journal_prune, journal.journal_vacuum):
    _cmd.add_to(journal_app)
app.add_typer(journal_app, name="journal", short_help=JOURNAL_HELP)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"wanvid {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Turn a still image into a video with Alibaba's Wan models through the ope.ai gateway.

    Quick start:  wanvid config set-key  then  wanvid run cat.png -p "the cat walks toward the camera"
    """


def run() -> None:
    """The console entry point (``wanvid.__main__``)."""
    if os.environ.get("_WANVID_COMPLETE"):  # a completion request Typer answers: the words are not in argv
        app(prog_name="wanvid")
    else:
        try:
            first = placement.hoist(sys.argv[1:], _groups())[:1]
        except UsageError:  # _Group.main reports it
            first = []
        _only_the_named_command(app, first)(prog_name="wanvid")


def _only_the_named_command(root: typer.Typer, first: list[str]) -> typer.Typer:
    """``root`` as this process needs it: only the command (or group) the first word names, when it
    names one; otherwise every command as a listing-only stand-in.

    Typer turns the signature of every registered command into Click parameters at each start, about
    10 ms for all of them, although a run uses one. When the first word is not a command (nothing, an
    option, a typo), no command can run: root's options all end the process (--help, --version, the
    completion installers) and Click stops at an unknown word. The root help listing and "No such
    command ... Did you mean" then need each command's name and help only, which the stand-ins keep
    (`_listed`). The one exception is ``--``, after which a command may follow: that keeps everything.
    Shallow copies, so ``app`` itself (which tests drive in-process) is never changed."""
    names = {c.name for c in root.registered_commands} | {g.name for g in root.registered_groups}
    if first == ["--"]:
        return root
    if first and first[0] in names:
        solo = copy.copy(root)
        solo.registered_commands = [c for c in root.registered_commands if c.name == first[0]]
        solo.registered_groups = [g for g in root.registered_groups if g.name == first[0]]
        return solo
    return _listed(root)


def _listed(root: typer.Typer) -> typer.Typer:
    """A copy of ``root`` whose commands (its groups' too) keep their name, help and flags but take no
    parameters: what a help listing shows of them, without building their Click parameters."""
    listed = copy.copy(root)
    listed.registered_commands = []
    for info in root.registered_commands:
        stand_in = copy.copy(info)
        stand_in.name = info.name or typer.main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]
        stand_in.help = inspect.getdoc(info.callback) if info.help is None else info.help
        stand_in.callback = _never_runs
        listed.registered_commands.append(stand_in)
    listed.registered_groups = []
    for group in root.registered_groups:
        stand_in_group = copy.copy(group)
        stand_in_group.typer_instance = _listed(group.typer_instance) if group.typer_instance else None
        listed.registered_groups.append(stand_in_group)
    return listed


def _never_runs() -> None:  # pragma: no cover - see _only_the_named_command: no command runs then
    raise AssertionError("a listing-only command ran")
