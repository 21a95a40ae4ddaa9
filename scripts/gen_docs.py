"""Regenerate the command reference, docs/cli.md, and the man page, docs/wanvid.1, from the code (`make docs`).

Both come from one walk of the Click command tree Typer builds from ``wanvid.cli.app.app``: each command's
help, usage line, arguments and options as ``--help`` prints them, and its examples from
``wanvid.cli.examples``. Hidden commands (the ``history`` alias) are left out; their command's text names
them. tests/processes/test_subprocess.py fails when either file drifts from the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "cli.md"
MAN = ROOT / "docs" / "wanvid.1"
TITLE = "wanvid command reference"


@dataclass
class Command:
    """One command (or group) as its help shows it."""

    path: str  # "wanvid config set"
    usage: str  # "wanvid config set [OPTIONS] NAME VALUE"
    paragraphs: list[str]  # the help text, one string per paragraph
    arguments: list[tuple[str, str]]  # (name, help)
    options: list[tuple[str, str]]  # ("-p, --prompt TEXT", help)
    examples: tuple[tuple[str, str], ...]  # (what it does, command line)
    commands: list[Command] = field(default_factory=list)  # a group's commands, in the help's order

    @property
    def summary(self) -> str:
        return self.paragraphs[0] if self.paragraphs else ""


def commands() -> Command:
    """The root command, its commands (and theirs) below it."""
    import typer

    from wanvid.cli.app import app
    from wanvid.cli.examples import EXAMPLES

    root = typer.main.get_command(app)
    return _walk(root, typer.Context(root, info_name="wanvid", **root.context_settings), EXAMPLES)


def _walk(cmd: Any, ctx: Any, examples: dict[str, tuple[tuple[str, str], ...]]) -> Command:
    arguments, options = [], []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        target = arguments if param.param_type_name == "argument" else options
        target.append((record[0], " ".join(record[1].split())))
    paragraphs = [" ".join(p.split()) for p in (cmd.help or "").split("\n\n") if p.strip()]
    node = Command(
        path=ctx.command_path,
        usage=f"{ctx.command_path} {' '.join(cmd.collect_usage_pieces(ctx))}",
        paragraphs=paragraphs,
        arguments=arguments,
        options=options,
        examples=examples.get(ctx.command_path, ()),
    )
    for name in getattr(cmd, "list_commands", lambda _: [])(ctx):
        sub = cmd.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            node.commands.append(_walk(sub, type(ctx)(sub, info_name=name, parent=ctx), examples))
    return node


def _every(cmd: Command) -> list[Command]:
    return [cmd, *(c for sub in cmd.commands for c in _every(sub))]


# -- docs/cli.md ------------------------------------------------------------------------------------


def reference(root: Command | None = None) -> str:
    root = root or commands()
    out = [f"# {TITLE}", "", "Generated from the code by `make docs`, as is the man page `docs/wanvid.1`.", ""]
    for cmd in _every(root):
        if cmd is not root:
            out += [f"## `{cmd.path}`", ""]
        for paragraph in cmd.paragraphs:
            out += [paragraph, ""]
        out += ["**Usage**:", "", "```console", f"$ {cmd.usage}", "```", ""]
        for title, rows in (("Arguments", cmd.arguments), ("Options", cmd.options)):
            if rows:
                out += [f"**{title}**:", "", *(f"* `{name}`: {text}" for name, text in rows), ""]
        if cmd.commands:
            out += ["**Commands**:", "", *(f"* `{c.path.rsplit(' ', 1)[1]}`: {c.summary}" for c in cmd.commands), ""]
        if cmd.examples:
            lines = [line for what, command in cmd.examples for line in (f"# {what}", f"$ {command}", "")]
            out += ["**Examples**:", "", "```console", *lines[:-1], "```", ""]
    return "\n".join(out[:-1]) + "\n"


# -- docs/wanvid.1 ----------------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Text as roff shows it literally: backslashes escaped, every hyphen a minus sign (options and commands
    are copied from a man page), and a line that would start with a control character made text."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.MULTILINE)


def _bold_options(text: str) -> str:
    """An option as a man page sets it: what is typed as is (``--seed``, ``/``) bold, a placeholder italic."""
    words = text.split(" ")
    return " ".join(f"\\f{'B' if w[:1] in '-/' else 'I'}{_roff(w)}\\fR" for w in words)


def manpage(root: Command | None = None) -> str:
    from wanvid import __version__

    root = root or commands()
    out = [
        f'.TH WANVID 1 "" "wanvid {__version__}" "User Commands"',
        ".nh",  # no hyphenation, and a ragged right margin: option names and URLs stay whole
        ".ad l",
        ".SH NAME",
        f"wanvid \\- {_roff(root.summary[0].lower() + root.summary[1:].rstrip('.'))}",
        ".SH SYNOPSIS",
        ".nf",
        *(f"\\fB{_roff(c.path)}\\fR{_roff(c.usage[len(c.path) :])}" for c in _every(root) if not c.commands),
        ".fi",
        ".SH DESCRIPTION",
    ]
    for cmd in _every(root):
        if cmd is not root:
            out += [f'.SH "{cmd.path.upper()}"', ".nf", f"\\fB{_roff(cmd.usage)}\\fR", ".fi"]
        for paragraph in cmd.paragraphs:
            out += [".PP", _roff(paragraph)]
        for title, rows in (("Arguments", cmd.arguments), ("Options", cmd.options)):
            if rows:
                out += [f".SS {title}"]
                for name, text in rows:
                    out += [".TP", _bold_options(name), _roff(text)]
        if cmd.commands:
            out += [".SS Commands"]
            for sub in cmd.commands:
                out += [".TP", f"\\fB{_roff(sub.path)}\\fR", _roff(sub.summary)]
        if cmd.examples:
            out += [".SS Examples"]
            for what, command in cmd.examples:
                out += [".PP", _roff(what) + ":", ".RS 4", ".nf", f"\\fB{_roff(command)}\\fR", ".fi", ".RE"]
    out += [
        ".SH SEE ALSO",
        "The README of the wanvid sources: installing, settings, exit codes, batches, the built\\-in gateway;",
        "docs/cli.md, this reference in Markdown; docs/json.md, the JSON documents of \\fB\\-\\-json\\fR.",
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    root = commands()
    for path, text in ((OUT, reference(root)), (MAN, manpage(root))):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
