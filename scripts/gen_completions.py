"""Regenerate completions/ and wanvid/cli/completion_table.json from the CLI itself (`make completions`).

tests/processes/test_subprocess.py checks the scripts for drift, tests/cli/test_complete.py the table.

The table is what wanvid/cli/complete.py answers a tab-completion request from without importing typer:
every command and subcommand (hidden aliases included), its parser (the option strings the real click
parser knows, with their actions), its parameters in the order click walks them, their help as Typer
prints it for zsh and fish (escaped, markup and emoji rendered by rich, not yet wrapped: that depends
on the terminal width at completion time), and how each one completes its value: "none", "choice"
(the choices), "items" (the models, listed here), "tasks" (task ids from the journal) or "profiles"
(profile names from the config file; the autocompletion is tried on sample config files here and must
answer as complete.profiles() does). Anything this generator does not recognise is written as
"fallback": the fast path then hands such a request to Typer instead of guessing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SHELLS = {"bash": "wanvid.bash", "zsh": "_wanvid", "fish": "wanvid.fish"}
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "completions"
TABLE = ROOT / "wanvid" / "cli" / "completion_table.json"
# Typer's switch that makes --install-completion/--show-completion take a shell name; the table is
# built without it (as users run wanvid), and complete.py hands requests made with it to Typer.
NO_DETECTION = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


def script(shell: str) -> str:
    # Typer's switch that makes --show-completion take the shell as a value instead of detecting it.
    env = {**os.environ, NO_DETECTION: "1"}
    cmd = [sys.executable, "-m", "wanvid", "--show-completion", shell]
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


# ---------------------------------------------------------------------------------------------
# The completion table.


def _functions(fn: Any, depth: int = 0) -> Iterator[Callable[..., Any]]:
    """``fn`` and every function it wraps: ``__wrapped__`` and functions held in its closure."""
    if depth > 6 or not callable(fn):
        return
    yield fn
    inner = getattr(fn, "__wrapped__", None)
    if inner is not None:
        yield from _functions(inner, depth + 1)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(content) and hasattr(content, "__code__"):
            yield from _functions(content, depth + 1)


def _help(text: str | None) -> str | list[str] | None:
    """[zsh, fish]: the help as Typer formats it for each shell, before wrapping to the terminal
    (one string when both are the same)."""
    if not text:
        return None
    from typer import _completion_classes, rich_utils

    def zsh_escape(s: str) -> str:  # ZshComplete.format_completion's escape
        return s.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`").replace(":", r"\\:")

    saved = rich_utils.MAX_WIDTH
    rich_utils.MAX_WIDTH = 1 << 30  # render markup and emoji, never wrap
    try:
        zsh = _completion_classes._sanitize_help_text(zsh_escape(text))
        fish = _completion_classes._sanitize_help_text(re.sub(r"\s", " ", text))
    finally:
        rich_utils.MAX_WIDTH = saved
    return zsh if zsh == fish else [zsh, fish]


def _callback(param: Any) -> str:
    """What running the parameter's callback during completion (resilient parsing) can do:
    "none" nothing; "given" print or exit when the option is on the command line; "always" unknown."""
    if param.callback is None:
        return "none"
    from typer import completion

    from wanvid.cli import app as cli

    fns = list(_functions(param.callback))
    if any(f in (completion.install_callback, completion.show_callback) for f in fns):
        return "none"  # both return at once under resilient parsing
    if any(f.__module__ == "typer._click.decorators" and f.__name__ == "show_help" for f in fns):
        return "none"  # likewise
    if cli._version in fns:
        return "given"  # prints the version and exits when the flag is given, nothing otherwise
    return "always"


# Config files the profiles autocompletion is tried on, with the names it must offer: tables only,
# sorted, none from a file that is not valid TOML or UTF-8 (or is missing: None).
PROFILE_SAMPLES: list[tuple[bytes | None, list[str]]] = [
    (
        b'[profiles.prod]\napi_key = "k"\n[profiles.Dev]\n[profiles.dev-eu]\nprotocol = "unified"\n'
        b'[profiles."with space"]\n[profiles.default]\n[other.x]\n',
        ["Dev", "default", "dev-eu", "prod", "with space"],
    ),
    (b'profiles = { b = {}, a = { base_url = "u" }, c = "not a table" }\n', ["a", "b"]),
    (b'profiles = "not a table"\n', []),
    (b"[profiles.a\n", []),
    (b"[profiles.\xff]\n", []),
    (b"", []),
    (None, []),
]
PROFILE_PREFIXES = ["", "d", "D", "dev", "dev-eu", "p", "x", "with "]


def _completes_profiles(param: Any, ctx: Any) -> bool:
    """Whether the parameter's autocompletion offers config.profiles() that start with the word, as
    complete.py's "profiles" does, for every sample config file and prefix (no help)."""
    saved = os.environ.get("WANVID_CONFIG_DIR")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["WANVID_CONFIG_DIR"] = tmp
            path = Path(tmp) / "config.toml"
            for content, names in PROFILE_SAMPLES:
                if content is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(content)
                for prefix in PROFILE_PREFIXES:
                    got = [(item.value, item.help) for item in param.shell_complete(ctx, prefix)]
                    if got != [(name, None) for name in names if name.startswith(prefix)]:
                        return False
    finally:
        if saved is None:
            os.environ.pop("WANVID_CONFIG_DIR", None)
        else:
            os.environ["WANVID_CONFIG_DIR"] = saved
    return True


def _completes(param: Any, ctx: Any) -> dict[str, Any]:
    """How a parameter completes its value: the fast path's vocabulary, or "fallback"."""
    from typer._click.types import ParamType
    from typer._types import TyperChoice
    from typer.models import TyperPath

    from wanvid.cli import options

    if param._custom_shell_complete is not None:
        fns = list(_functions(param._custom_shell_complete))
        if options._complete_model in fns:
            items = [[value, _help(text)] for value, text in options._complete_model("")]
            return {"kind": "items", "items": items}
        if any(f.__module__ == "wanvid.cli.options" and "_complete_task" in f.__code__.co_names for f in fns):
            return {"kind": "tasks"}
        if any(f.__module__ == "wanvid.cli.options" and "profiles" in f.__code__.co_names for f in fns):
            return {"kind": "profiles"} if _completes_profiles(param, ctx) else {"kind": "fallback"}
        return {"kind": "fallback"}
    kind = type(param.type)
    if kind.shell_complete in (ParamType.shell_complete, TyperPath.shell_complete):  # no candidates
        return {"kind": "none"}
    if isinstance(param.type, TyperChoice) and kind.shell_complete is TyperChoice.shell_complete:
        return {
            "kind": "choice",
            "choices": [str(c) for c in param.type.choices],
            "case_sensitive": bool(param.type.case_sensitive),
        }
    return {"kind": "fallback"}


def _command(cmd: Any, ctx: Any) -> dict[str, Any]:
    from typer.core import TyperArgument, TyperGroup, TyperOption

    if ctx.token_normalize_func is not None:
        raise SystemExit(f"{ctx.command_path}: token_normalize_func is not supported by wanvid/cli/complete.py")
    parser = cmd.make_parser(ctx)
    help_option = cmd.get_help_option(ctx)
    params: list[dict[str, Any]] = []
    for p in cmd.get_params(ctx):
        if isinstance(p, TyperOption):
            option = {
                "kind": "option",
                "dest": p.name,
                "opts": list(p.opts),
                "secondary": list(p.secondary_opts),
                "value": not (p.is_flag or p.count),  # the option takes a value
                "nargs": p.nargs,
                "multiple": bool(p.multiple),
                "hidden": bool(p.hidden),
                "help": _help(p.help),
                "completes": _completes(p, ctx),
                "callback": _callback(p),
            }
            if p is help_option:
                # click names it list(set(ctx.help_option_names) - other options' names): the order of
                # a set of strings, which changes with each process's hash seed. The table keeps the
                # list; complete.py does the same set operations in its own process.
                option["opts"] = []
                option["help_names"] = list(ctx.help_option_names)
            params.append(option)
        elif isinstance(p, TyperArgument):
            params.append(
                {
                    "kind": "argument",
                    "dest": p.name,
                    "nargs": p.nargs,
                    "completes": _completes(p, ctx),
                    "callback": _callback(p),
                }
            )
        else:
            raise SystemExit(f"{ctx.command_path}: parameter {p!r} is neither a TyperOption nor a TyperArgument")

    def opt(o: Any) -> list[Any]:
        if o.action.endswith("_const") and o.const is None:
            raise SystemExit(f"{ctx.command_path}: flag {o._long_opts or o._short_opts} stores None")
        return [o.dest, o.action, o.nargs]

    entry: dict[str, Any] = {
        "interspersed": bool(ctx.allow_interspersed_args),
        "ignore_unknown": bool(ctx.ignore_unknown_options),
        "prefixes": sorted(parser._opt_prefixes),
        "long": {name: opt(parser._long_opt[name]) for name in sorted(parser._long_opt)},
        "short": {name: opt(parser._short_opt[name]) for name in sorted(parser._short_opt)},
        "arguments": [[a.dest, a.nargs] for a in parser._args],
        "params": params,
    }
    if isinstance(cmd, TyperGroup):
        entry["commands"] = {}
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None:
                continue
            sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
            entry["commands"][name] = {
                "hidden": bool(sub.hidden),
                "help": _help(sub.get_short_help_str()),
                **_command(sub, sub_ctx),
            }
    return entry


def table() -> str:
    """The completion table as committed: JSON text."""
    saved = os.environ.pop(NO_DETECTION, None)
    try:
        import typer.main

        from wanvid.cli import app as cli
        from wanvid.store import journal

        root = typer.main.get_command(cli.app)
        ctx = root.make_context("wanvid", [], resilient_parsing=True)
        doc = {
            "comment": "Generated by scripts/gen_completions.py (make completions) for wanvid/cli/complete.py",
            # task ids are read only from a journal of this version (_complete_task's Journal refuses
            # newer ones and finds none in older ones)
            "journal_schema": journal.SCHEMA,
            "root": _command(root, ctx),
        }
    finally:
        if saved is not None:
            os.environ[NO_DETECTION] = saved
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for shell, name in SHELLS.items():
        (OUT / name).write_text(script(shell))
        print(f"wrote completions/{name}")
    TABLE.write_text(table())
    print(f"wrote {TABLE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
