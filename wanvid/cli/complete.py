"""Tab completion without Typer: the answer to one completion request in a few milliseconds.

The scripts in completions/ run ``wanvid`` with ``_WANVID_COMPLETE=complete_bash|complete_zsh|
complete_fish`` for every tab press. Going through Typer means importing typer, click and rich and
building the whole app (~70 ms) to print a few words. ``__main__.main`` sends those requests here
instead, and this module answers them from ``completion_table.json``, which scripts/gen_completions.py
generates from the Typer app (a test fails when the committed table drifts from it).

The answer is the one Typer would print, byte for byte, with the same exit status:

- the request is read from the same environment variables as Typer's Bash/Zsh/FishComplete;
- the command line is parsed with click's rules (``_OptionParser``: long and short options, joined
  short options, ``--opt=value``, ``--``, groups that stop at their first positional word) over the
  option strings the real parser knows, resilient as click's completion is: a parse error ends
  parsing where it happened;
- the context and the incomplete word are resolved as click's ``_resolve_context`` and
  ``_resolve_incomplete`` do (option name, option value, positional argument, or subcommand); an
  option already on the line is not offered again unless it may repeat;
- candidates come from the table (subcommands with their short help, options with theirs, choices,
  models), for task ids from the journal with ``task_rows`` (``cli._complete_task``'s too), opened read-only, and
  for profile names (``--profile``) from the config file as ``config.profiles()`` reads it (tomllib;
  a missing, unreadable or invalid file names none);
- help is printed as Typer prints it for zsh and fish: the table holds it escaped and rendered by
  rich (markup, emoji); only the wrapping to the terminal width is done here, as rich does it.

Whenever a request needs something this module does not reproduce (``--version`` on the line, a
parameter the generator marked "fallback", help text with markup from the journal, non-ASCII output,
Windows, a ``WANVID_DATA_DIR`` whose ``~`` pathlib cannot expand), ``answer`` returns None and the
caller lets Typer answer. Directories and the config file are read through ``wanvid.config``, the one
module that knows them; otherwise the standard library only (json, shlex; sqlite3 for task ids).
"""

from __future__ import annotations

import json
import os
import re
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Command = dict[str, Any]  # one command of the table
    Param = dict[str, Any]  # one parameter of a command
    Help = str | list[str] | None  # None, one text for both shells, or [zsh, fish]
    Item = tuple[str, Help]

TABLE = os.path.join(os.path.dirname(__file__), "completion_table.json")
LOCK_WAIT = 2.0  # seconds to wait for a locked journal; then no candidates rather than a hung tab press
# The task-id completion's queries, for both paths (``task_rows``; cli._complete_task calls it too): the newest
# TASKS_SHOWN tasks whose id starts with the word, newest first. Ids are compared as SQLite's BINARY collation does,
# so case counts, as it does when the shell's completion keeps the ids that start with the word (str.startswith).
TASKS_SHOWN = 50
# A prefix that at most this many ids share is read as one range of the tasks_ids index (covering) and its matches
# sorted newest first. One that more share (none typed yet, or the "task_" every new-api id starts with) is found by
# walking tasks_created (covering) newest first until the 50th match, never sorting them all: with more than this
# many matches among 100,000 tasks, spread over time, the walk reads some 5,000 entries at most on average; matches
# bunched among the oldest tasks make it read further. A journal of schema 4 or older (read-only here until the
# next command upgrades it) has no tasks_ids: the same answers, read as before, with the whole table.
TASKS_SORTED = 1000
TASKS_COUNT = "SELECT count(*) FROM (SELECT 1 FROM tasks WHERE id >= ? AND id < ? LIMIT ?)"
TASKS_BY_ID = (
    "SELECT id, status, model, created_at FROM tasks WHERE id >= ? AND id < ? "
    f"ORDER BY created_at DESC, id DESC LIMIT {TASKS_SHOWN}"
)
# substr(), not a range: no index on id may serve it, so the planner walks tasks_created, newest first
TASKS_NEWEST = (
    "SELECT id, status, model, created_at FROM tasks WHERE substr(id, 1, length(?1)) = ?1 "
    f"ORDER BY created_at DESC, id DESC LIMIT {TASKS_SHOWN}"
)
# Typer's switch that turns --install-completion/--show-completion into options taking a shell name;
# the table describes the app without it.
NO_DETECTION = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


class Fallback(Exception):
    """Typer must answer this request: something in it is beyond what this module reproduces."""


class _Usage(Exception):
    """click's UsageError during resilient parsing: parsing stops where it happened."""


def answer(shell: str) -> int | None:
    """Print the answer to the completion request in the environment; return the exit status, or
    None (having printed nothing) when Typer must answer it."""
    try:
        out, status = _answer(shell)
    except Exception:  # Fallback, or anything unforeseen: Typer answers (or fails) as it always did
        return None
    if out is not None:
        sys.stdout.write(out)
        sys.stdout.flush()
    return status


def _answer(shell: str) -> tuple[str | None, int]:
    env = os.environ
    if os.name == "nt" or env.get(NO_DETECTION) or shell not in ("bash", "zsh", "fish"):
        raise Fallback
    args, incomplete = _request(shell)
    items = candidates(load_table(), args, incomplete)
    if shell == "bash":  # BashComplete: values only
        out: str | None = "\n".join(value for value, _ in items) + "\n"
        status = 0
    elif shell == "zsh":  # ZshComplete
        width = _Width()
        lines = []
        for value, help_ in items:
            text = _shell_help(help_, 0)
            if text:
                lines.append(f'"{_zsh_escape(value)}":"{_fit(text, width)}"')
            else:
                lines.append(f'"{_zsh_escape(value)}"')
        joined = "\n".join(lines)
        out, status = (f"_arguments '*: :(({joined}))'" if lines else "_files") + "\n", 0
    else:  # FishComplete
        width = _Width()
        lines = []
        for value, help_ in items:
            text = _shell_help(help_, 1)
            lines.append(f"{value}\t{_fit(text, width)}" if text else value)
        action = env.get("_TYPER_COMPLETE_FISH_ACTION", "")
        if action == "is-args":  # exit status only: 0 = complete these words, 1 = let fish complete files
            out, status = None, 0 if lines else 1
        elif action == "get-args":
            out, status = "\n".join(lines) + "\n", 0
        else:
            out, status = "\n", 0
    if out is not None and (not out.isascii() or "\x1b" in out):
        raise Fallback  # click.echo re-encodes and strips ANSI codes; not reproduced here
    return out, status


def load_table() -> dict[str, Any]:
    with open(TABLE, encoding="utf-8") as f:
        table: dict[str, Any] = json.load(f)
    return table


# ---------------------------------------------------------------------------------------------
# The request: Typer's get_completion_args for each shell.


def _request(shell: str) -> tuple[list[str], str]:
    env = os.environ
    if shell == "bash":
        cwords = _split(env["COMP_WORDS"])
        cword = int(env["COMP_CWORD"])
        args = cwords[1:cword]
        try:
            incomplete = cwords[cword]
        except IndexError:
            incomplete = ""
        return args, incomplete
    line = env.get("_TYPER_COMPLETE_ARGS", "")
    args = _split(line)[1:]
    if args and not line.endswith(" "):
        return args[:-1], args[-1]
    return args, ""


def _split(string: str) -> list[str]:
    """click's split_arg_string: shlex, keeping an unfinished quote or escape as it is."""
    import shlex

    lex = shlex.shlex(string, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    out = []
    try:
        for token in lex:
            out.append(token)
    except ValueError:
        out.append(lex.token)
    return out


# ---------------------------------------------------------------------------------------------
# Resolving the command line: click's _resolve_context, _resolve_incomplete and shell_complete.


class _Context:
    """The little of click's Context that completion looks at."""

    def __init__(self, command: Command, parent: _Context | None) -> None:
        self.command = command
        self.prefixes: set[str] = set(parent.prefixes) if parent else set()
        self.given: set[str] = set()  # parameters whose value came from the command line
        self.protected: list[str] = []
        self.args: list[str] = []


def candidates(table: dict[str, Any], args: list[str], incomplete: str) -> list[Item]:
    """What Typer's ShellComplete.get_completions returns: (value, help) in click's order."""
    args = list(args)
    ctx = _resolve_context(table["root"], args)
    param, incomplete = _resolve_incomplete(ctx, args, incomplete)
    if param is None:
        return _command_items(ctx, incomplete)
    return _param_items(param, incomplete, table["journal_schema"])


def _resolve_context(root: Command, args: list[str]) -> _Context:
    ctx = _make_context(root, list(args), None)
    rest = ctx.protected + ctx.args
    while rest:
        subcommands = ctx.command.get("commands")
        if subcommands is None:
            break
        sub = subcommands.get(rest[0])
        if sub is None:  # an unknown command: resilient parsing stops here
            return ctx
        ctx = _make_context(sub, rest[1:], ctx)
        rest = ctx.protected + ctx.args
    return ctx


def _make_context(command: Command, args: list[str], parent: _Context | None) -> _Context:
    ctx = _Context(command, parent)
    values, rest = _parse(command, args)
    for param in command["params"]:
        given = values.get(param["dest"]) is not None
        if param["callback"] == "always" or (param["callback"] == "given" and given):
            raise Fallback  # a callback runs during parsing (--version prints); Typer's to do
        if given:
            ctx.given.add(param["dest"])
    if "commands" in command and rest:
        ctx.protected, ctx.args = rest[:1], rest[1:]
    else:
        ctx.args = rest
    ctx.prefixes.update(command["prefixes"])
    return ctx


def _parse(command: Command, args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """click's _OptionParser.parse_args under resilient parsing: (values by dest, leftover args)."""
    prefixes = set(command["prefixes"])
    long_opts: dict[str, list[Any]] = command["long"]
    short_opts: dict[str, list[Any]] = command["short"]
    ignore_unknown = command["ignore_unknown"]
    rargs = list(args)
    largs: list[str] = []
    values: dict[str, Any] = {}

    def take(name: str, nargs: int) -> Any:
        if len(rargs) < nargs:
            raise _Usage(f"option {name} requires {nargs} argument(s)")
        if nargs == 1:
            return rargs.pop(0)
        value = tuple(rargs[:nargs])
        del rargs[:nargs]
        return value

    def store(dest: str, action: str, value: Any) -> None:
        if action == "store":
            values[dest] = value
        elif action == "store_const":
            values[dest] = True  # the generator checked no flag stores None
        elif action == "append":
            values.setdefault(dest, []).append(value)
        elif action == "append_const":
            values.setdefault(dest, []).append(True)
        elif action == "count":
            values[dest] = values.get(dest, 0) + 1
        else:
            raise Fallback

    def match_short(arg: str) -> None:
        prefix = arg[0]
        unknown = []
        i = 1
        for ch in arg[1:]:
            option = short_opts.get(prefix + ch)
            i += 1
            if option is None:
                if ignore_unknown:
                    unknown.append(ch)
                    continue
                raise _Usage(f"no such option {prefix + ch}")
            dest, action, nargs = option
            stop = False
            value = None
            if action in ("store", "append"):
                if i < len(arg):
                    rargs.insert(0, arg[i:])
                    stop = True
                value = take(prefix + ch, nargs)
            store(dest, action, value)
            if stop:
                break
        if ignore_unknown and unknown:
            largs.append(prefix + "".join(unknown))

    def process_opts(arg: str) -> None:
        explicit = None
        if "=" in arg:
            name, explicit = arg.split("=", 1)
        else:
            name = arg
        option = long_opts.get(name)
        if option is None:
            if arg[:2] not in prefixes:
                match_short(arg)
                return
            if not ignore_unknown:
                raise _Usage(f"no such option {name}")
            largs.append(arg)
            return
        dest, action, nargs = option
        value = None
        if action in ("store", "append"):
            if explicit is not None:
                rargs.insert(0, explicit)
            value = take(name, nargs)
        elif explicit is not None:
            raise _Usage(f"option {name} does not take a value")
        store(dest, action, value)

    try:
        while rargs:
            arg = rargs.pop(0)
            if arg == "--":
                break
            if arg[:1] in prefixes and len(arg) > 1:
                process_opts(arg)
            elif command["interspersed"]:
                largs.append(arg)
            else:
                rargs.insert(0, arg)
                break
        # Positional arguments (click's _unpack_args, for arguments of one value each, and a last one that takes
        # all the rest: `wait ID ID...`).
        positional = largs + rargs
        arguments = command["arguments"]
        for index, (dest, nargs) in enumerate(arguments):
            if nargs == -1 and index == len(arguments) - 1:
                values[dest] = tuple(positional[index:]) or None
                positional = positional[:index]
                break
            if nargs != 1:
                raise Fallback
            values[dest] = positional[index] if index < len(positional) else None
        largs = positional[len(arguments) :]
    except _Usage:
        pass
    return values, largs


def _start_of_option(ctx: _Context, value: str) -> bool:
    return bool(value) and value[0] in ctx.prefixes


def _resolve_incomplete(ctx: _Context, args: list[str], incomplete: str) -> tuple[Param | None, str]:
    """The parameter whose value is being completed (None: the command's names) and the word."""
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and _start_of_option(ctx, incomplete):
        name, _, incomplete = incomplete.partition("=")
        args.append(name)
    if "--" not in args and _start_of_option(ctx, incomplete):
        return None, incomplete
    params = ctx.command["params"]
    for param in params:  # the value of an option given last
        if param["kind"] == "option" and param["value"]:
            last = None
            for index, arg in enumerate(reversed(args)):
                if index + 1 > param["nargs"]:
                    break
                if _start_of_option(ctx, arg):
                    last = arg
                    break
            if last is not None and last in param["opts"]:
                return param, incomplete
    for param in params:  # the first positional argument without a value
        if param["kind"] == "argument":
            if param["nargs"] == -1:  # click: an argument of any number of values always takes one more
                return param, incomplete
            if param["nargs"] != 1:
                raise Fallback
            if param["dest"] not in ctx.given:
                return param, incomplete
    return None, incomplete


def _command_items(ctx: _Context, incomplete: str) -> list[Item]:
    """TyperGroup.shell_complete / Command.shell_complete: visible subcommands, then option names."""
    items: list[Item] = []
    for name, sub in ctx.command.get("commands", {}).items():
        if name.startswith(incomplete) and not sub["hidden"]:
            items.append((name, sub["help"]))
    if incomplete and not incomplete[0].isalnum():
        for param in ctx.command["params"]:
            if param["kind"] != "option" or param["hidden"]:
                continue
            if not param["multiple"] and param["dest"] in ctx.given:
                continue
            names = _opts(param, ctx.command) + param["secondary"]
            items.extend((name, param["help"]) for name in names if name.startswith(incomplete))
    return items


def _opts(param: Param, command: Command) -> list[str]:
    """An option's names. The help option's are click's ``get_help_option_names``: a set of the
    context's help option names less those other options use, listed in the set's order (which
    depends on the hash seed, so it is computed in this process as Typer would compute it here)."""
    help_names = param.get("help_names")
    if help_names is None:
        opts: list[str] = param["opts"]
        return opts
    names = set(help_names)
    for other in command["params"]:
        if other is not param and other["kind"] == "option":
            names.difference_update(other["opts"])
            names.difference_update(other["secondary"])
    return list(names)


def _param_items(param: Param, incomplete: str, schema: int) -> list[Item]:
    completes = param["completes"]
    kind = completes["kind"]
    if kind == "none":
        return []
    if kind == "choice":  # TyperChoice.shell_complete
        if completes["case_sensitive"]:
            return [(c, None) for c in completes["choices"] if c.startswith(incomplete)]
        lowered = incomplete.lower()
        return [(c, None) for c in completes["choices"] if c.lower().startswith(lowered)]
    if kind == "items":  # a static autocompletion (models), filtered as Typer filters it
        return [(value, help_) for value, help_ in completes["items"] if value.startswith(incomplete)]
    if kind == "tasks":
        return [
            (task_id, _JournalHelp(text) if text else None)
            for task_id, text in tasks(incomplete, schema)
            if task_id.startswith(incomplete)
        ]
    if kind == "profiles":  # the --profile autocompletion: config.profiles(), filtered by prefix
        return [(name, None) for name in profiles() if name.startswith(incomplete)]
    raise Fallback


# ---------------------------------------------------------------------------------------------
# Task ids from the journal.


def journal_path() -> str:
    """The journal's path, from the one module that knows wanvid's directories (``wanvid.config``)."""
    from wanvid import config
    from wanvid.errors import UsageError

    try:
        return str(config.journal_path())
    except UsageError:  # a WANVID_DATA_DIR with a ~user this machine does not have: Typer's path reports it
        raise Fallback from None


def task_rows(read: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]], incomplete: str) -> list[tuple[Any, ...]]:
    """(id, status, model, created_at) of the TASKS_SHOWN newest tasks whose id starts with ``incomplete``,
    newest first (ties: the greater id first), through ``read(sql, args)`` (a connection's execute + fetchall).

    Whatever the journal's size, this reads about what it returns: at most TASKS_SORTED + 1 entries of the
    tasks_ids index to count the matches, then either those matches (a range of that index, sorted) or, when
    more share the prefix, tasks_created from the newest task until the 50th match."""
    try:
        incomplete.encode()
    except UnicodeEncodeError:  # bytes that are not UTF-8, passed on by the shell as they were typed: no id
        return []  # starts with them (SQLite could not even be asked)
    upper = _after(incomplete)
    if upper is not None:
        count = read(TASKS_COUNT, (incomplete, upper, TASKS_SORTED + 1))[0][0]
        if count <= TASKS_SORTED:
            return read(TASKS_BY_ID, (incomplete, upper))
    return read(TASKS_NEWEST, (incomplete,))


def _after(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``, in SQLite's BINARY order (UTF-8 bytes,
    so code points): its last character that can grow, grown by one; None if there is none (an empty prefix)."""
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    code = ord(stem[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:  # surrogates have no UTF-8 form: the next character is U+E000
        code = 0xE000
    return stem[:-1] + chr(code)


def tasks(incomplete: str, schema: int) -> list[tuple[str, str]]:
    """cli._complete_task: (id, "STATUS model") of the 50 most recent tasks whose id starts with
    ``incomplete`` (``task_rows``), newest first, from a journal of version ``schema``; no journal or an
    unreadable one: []."""
    path = journal_path()
    if not os.path.exists(path):
        return []
    import sqlite3

    uri = "file://" + os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT)
        try:
            # A newer version (or none) is a journal the Typer path would refuse or find empty: no ids either
            # way. An older one has the same tasks table; the next command that opens it upgrades it.
            if not 1 <= db.execute("PRAGMA user_version").fetchone()[0] <= schema:
                return []
            rows = task_rows(lambda sql, args: db.execute(sql, args).fetchall(), incomplete)
        finally:
            db.close()
    except sqlite3.Error:
        return []
    out = []
    for task_id, status, model, _ in rows:
        if not isinstance(task_id, str):
            raise Fallback  # Typer's str.startswith would fail on it
        out.append((task_id, f"{status} {model or ''}".strip()))
    return out


# ---------------------------------------------------------------------------------------------
# Profile names from the config file.


def profiles() -> list[str]:
    """config.profiles() itself: the sorted names of the config file's ``[profiles.NAME]`` tables."""
    from wanvid import config

    return config.profiles()


class _JournalHelp(str):
    """Help that comes from the journal: rendered for the shell only when a shell shows it."""

    def rendered(self, index: int) -> str:
        """Typer escapes it for zsh, then rich renders its markup and emoji codes; only plain text is
        taken here, where that rendering changes nothing."""
        if not (self.isascii() and self.isprintable()) or any(c in self for c in "[]:\\"):
            raise Fallback
        return _zsh_escape(self) if index == 0 else str(self)


# ---------------------------------------------------------------------------------------------
# Output details: Typer's zsh escaping, rich's wrapping of help to the terminal width.


def _zsh_escape(s: str) -> str:
    return s.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`").replace(":", r"\\:")


def _shell_help(help_: Help, index: int) -> str | None:
    """The help for zsh (index 0) or fish (1), rendered, not yet wrapped."""
    if isinstance(help_, _JournalHelp):
        return help_.rendered(index)
    if help_ is None or isinstance(help_, str):
        return help_
    return str(help_[index])


class _Width:
    """The width rich's console has in Typer's completion process (typer.rich_utils._get_rich_console
    and rich.console.Console.size), found only if some help is long enough to need it."""

    def __init__(self, value: int | None = None) -> None:
        self._value = value

    def get(self) -> int:
        if self._value is None:
            self._value = _console_width()
        return self._value


def _console_width() -> int:
    env = os.environ
    terminal_width = env.get("TERMINAL_WIDTH")
    width = int(terminal_width) if terminal_width else None  # typer.rich_utils.MAX_WIDTH
    if width is None:
        columns = env.get("COLUMNS")
        if columns is not None and columns.isdigit():
            width = int(columns)
    lines = env.get("LINES")
    height = int(lines) if lines is not None and lines.isdigit() else None
    if width is not None and height is not None:
        return width
    if env.get("TERM", "").lower() in ("dumb", "unknown") and _is_terminal():
        return 80
    detected = None
    for fd in _std_fds():
        try:
            detected, _ = os.get_terminal_size(fd)
        except (AttributeError, ValueError, OSError):
            pass
        else:
            break
    columns = env.get("COLUMNS")
    if columns is not None and columns.isdigit():
        detected = int(columns)
    detected = detected or 80
    return detected if width is None else width


def _std_fds() -> tuple[int, int, int]:
    fds = []
    for stream, default in ((sys.__stdin__, 0), (sys.__stdout__, 1), (sys.__stderr__, 2)):
        try:
            fds.append(stream.fileno())  # type: ignore[union-attr]
        except Exception:
            fds.append(default)
    return fds[0], fds[1], fds[2]


def _is_terminal() -> bool:
    """rich's Console.is_terminal with typer's force_terminal, for stdout."""
    env = os.environ
    if env.get("_TYPER_FORCE_DISABLE_TERMINAL"):
        return False
    if env.get("GITHUB_ACTIONS") or env.get("FORCE_COLOR") or env.get("PY_COLORS"):
        return True
    tty_compatible = env.get("TTY_COMPATIBLE", "")
    if tty_compatible == "0":
        return False
    if tty_compatible == "1":
        return True
    force_color = env.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return sys.stdout.isatty()
    except ValueError:
        return False


def _fit(text: str, width: _Width) -> str:
    """The help as rich renders it at the console's width: each line word-wrapped, overlong words
    folded (rich.text.Text.wrap with rich._wrap.divide_line, for text of one cell per character)."""
    lines = text.split("\n")
    w = width.get()
    if w < 1:
        raise Fallback
    out = []
    for line in lines:
        if not line.isascii():
            raise Fallback  # wide or zero-width characters: cell widths are rich's business
        if len(line) <= w:
            out.append(line)
        elif line.isprintable():
            out.append(_wrap_line(line, w))
        else:
            raise Fallback  # control characters take no cell

    return "\n".join(out).rstrip("\n")


_WORD = re.compile(r"\s*\S+\s*")


def _wrap_line(line: str, width: int) -> str:
    breaks: list[int] = []
    offset = 0
    position = 0
    match = _WORD.match(line, position)
    while match is not None:
        start, end = match.span()
        word = match.group(0)
        word_length = len(word.rstrip())
        if width - offset >= word_length:
            offset += len(word)
        elif word_length > width:  # fold the word over several lines
            folded = [word[i : i + width] for i in range(0, len(word), width)]
            for index, piece in enumerate(folded):
                if start:
                    breaks.append(start)
                if index == len(folded) - 1:
                    offset = len(piece)
                else:
                    start += len(piece)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
        match = _WORD.match(line, end)
    pieces = []
    for start, end in zip([0, *breaks], [*breaks, len(line)], strict=True):
        piece = line[start:end]
        if len(piece) > width:  # Text.rstrip_end, then Text.truncate with overflow "fold"
            excess = len(piece) - width
            trailing = len(piece) - len(piece.rstrip())
            piece = piece[: len(piece) - min(trailing, excess)]
            piece = piece[:width]
        pieces.append(piece)
    return "\n".join(pieces)
