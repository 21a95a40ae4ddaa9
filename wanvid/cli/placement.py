"""Where an option goes on the command line: common options before the command name, and the message for
an option given to a command it does not belong to.

``hoist`` moves the common options (``options.COMMON_PARAMS``: --api-key, --base-url, --profile,
--protocol, --json, -q, --debug, --allow-insecure) given before the command name (or between a group and
its subcommand) to just after the command's name, so ``wanvid --json status`` is ``wanvid status --json``.
A command's own option given before its name (``wanvid --prompt x run``) is a ``UsageError`` naming the
commands that have it. ``misplaced`` rewrites Click's "No such option" for an option some other command
has: ``wanvid list --api-key K`` says that list has no use for it and which commands do.

``hoist`` runs at every start, before Typer builds anything: it only compares strings. ``misplaced`` runs
only on the error path, where it reads the commands' signatures.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from wanvid.cli.options import COMMON_PARAMS
from wanvid.errors import UsageError

if TYPE_CHECKING:
    import typer

ROOT_OPTIONS = ("-h", "--help", "--version", "--install-completion", "--show-completion")


def _spellings(param: inspect.Parameter) -> list[str]:
    """Every way the command line spells a parameter's option (``--x/--no-x`` both, ``-q`` too); [] for an argument."""
    for info in (param.default, *getattr(param.annotation, "__metadata__", ())):
        if type(info).__name__ == "OptionInfo":
            # In Annotated[..., typer.Option("--json")] the first declaration lands in ``default``.
            first = [info.default] if isinstance(info.default, str) and info.default.startswith("-") else []
            decls = [*first, *(getattr(info, "param_decls", None) or ())]
            return [name for d in decls for name in d.split("/") if name.startswith("-")] or [
                "--" + param.name.replace("_", "-")
            ]
    return []


# Each common option's spellings -> whether it takes a value (--profile NAME) or is a switch (--json).
COMMON_FLAGS = {name: not isinstance(param.default, bool) for param in COMMON_PARAMS for name in _spellings(param)}


def hoist(argv: list[str], groups: dict[str, set[str]]) -> list[str]:
    """``argv`` with the common options found before the command name (and, for a group such as ``config``,
    before its subcommand) moved to just after them. ``groups``: each group's name and its subcommands.
    Before a root option (--help, --version, the completion installers) the common options are dropped: that
    option ends the process. Anything else before the command (an unknown option, ``--``) leaves ``argv`` as
    it is, for Click to answer; a command's own option there is a UsageError."""
    moved: list[str] = []
    i = 0
    words: list[str] = []  # the command (and subcommand) names, in order
    while i < len(argv):
        word = argv[i]
        if word == "--":
            if moved and not words and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                i += 1  # `wanvid --json -- list`: "--" before a command name only says a command follows
                continue
            return argv
        if word in ROOT_OPTIONS:  # `wanvid --json --help`: the root's own options end the process at once
            return [*words, *argv[i:]]
        if not word.startswith("-") or word == "-":
            words.append(word)
            i += 1
            if word in groups and i < len(argv) and len(words) == 1:
                continue  # a group: its subcommand may come after more common options
            break
        name, eq, _ = word.partition("=")
        if name not in COMMON_FLAGS:
            if name.startswith("-") and (owners := _owners_by_name(name)):
                command = next((w for w in argv[i + 1 :] if w in owners), owners[0])  # the one it was meant for
                raise UsageError(
                    f"{name} is an option of {', '.join(owners)}: put it after the command name",
                    hint=f"e.g. wanvid {command} {name} ...",
                )
            return argv
        takes = COMMON_FLAGS[name] and not eq
        moved += argv[i : i + 1 + takes]
        i += 1 + takes
    if not moved:
        return argv
    if len(words) == 2 and words[1] not in groups.get(words[0], set()):
        # `config <not a subcommand>`: the options stay with the group, where Click names the real problem
        return [words[0], *moved, words[1], *argv[i:]]
    return [*words, *moved, *argv[i:]]


# Why a command has no use for a common option, by command path; named in ``misplaced``'s message.
WHY = {
    "config set-key": "it only writes the config file",
    "config set": "it only writes the config file",
    "config unset": "it only writes the config file",
    "config get": "it only reads the config file",
    "config path": "it only prints the config file's path",
    "config check": "it asks /v1/models, the same route on both protocols",
    "config show": "it sends no request",
    "sandbox": "it serves requests; it sends none",
}


def misplaced(option: str, command_path: str, root: typer.Typer) -> str | None:
    """The message for ``option`` given to a command (``command_path``: "wanvid list") that has none such,
    when other commands have it; None when no command has it (Click's own message is better then)."""
    owners = owners_of(option, root)
    if not owners:
        return None
    where = command_path.removeprefix("wanvid").strip()
    everyone = len(owners) == len(list(_commands(root)))
    if not where or any(g.name == where for g in root.registered_groups):  # the root, or a group: no command yet
        example = f"wanvid {where + ' ' if where else ''}{'COMMAND' if everyone else owners[0]} {option}"
        which = "every command takes it" if everyone else f"it is an option of {', '.join(owners)}"
        return f"{option} goes with a command ({which}), before or after its name, e.g. {example}"
    why = f" ({WHY[where]})" if where in WHY else ""
    return f"{option} does not apply to {where}{why}; it is an option of {', '.join(owners)}"


def _owners_by_name(option: str) -> list[str]:
    from wanvid.cli.app import app  # only on the error path: app imports this module

    return owners_of(option, app)


def owners_of(option: str, root: typer.Typer) -> list[str]:
    """The visible commands (``config show`` for a group's) offering ``option``, in the help's order. A
    common option counts only where it is the common one (sandbox's --api-key is the key it accepts)."""
    common = {name: p for p in COMMON_PARAMS for name in _spellings(p)}
    found = []
    for path, callback in _commands(root):
        for param in inspect.signature(callback).parameters.values():
            if option in _spellings(param) and (option not in common or param.annotation is common[option].annotation):
                found.append(path)
                break
    return found


def _commands(root: typer.Typer, prefix: str = "") -> Iterator[tuple[str, Any]]:
    import typer

    for info in root.registered_commands:
        if not info.hidden and info.callback is not None:
            name = info.name or typer.main.get_command_name(info.callback.__name__)
            yield prefix + name, info.callback
    for group in root.registered_groups:
        if group.typer_instance is not None and group.name and not group.hidden:
            yield from _commands(group.typer_instance, f"{prefix}{group.name} ")
