"""Tab completion's fast path (wanvid/cli/complete.py) answers exactly as Typer does, without importing it.

Typer's own answer is the reference: ``typer.completion.shell_complete`` on the app's Click command (built
once), which is what ``WANVID_TYPER_COMPLETE=1 wanvid`` runs, called in-process with the environment each
shell's completion script sets. The fast path (``complete.answer``, as ``wanvid.__main__`` calls it) gets the
same environment, and must print the same bytes with the same exit status, or decline (print nothing,
return None) exactly where Typer is meant to answer. In-process, thousands of requests cost what a few
dozen processes did:

- every command and group × every kind of completion it offers × every shell (``systematic_lines``);
- hand-picked lines (LINES: odd input, quoting, joined short options, ``--``...), help wrapped to several
  terminal widths, unusable config files and journals, and a bounded hypothesis run over random lines.

Real processes only for what only a process shows: that ``python -m wanvid`` and the installed ``wanvid``
script send each shell's request to the fast path, which imports nothing heavy and prints Typer's answer;
that Typer's in-process answer is the one its own process prints; and that other requests reach Typer.
The table the fast path reads must match the app (``make completions``).
"""

from __future__ import annotations

import functools
import io
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from wanvid import config
from wanvid.cli import complete
from wanvid.store.journal import SCHEMA, Entry, Journal, journal_path

ROOT = Path(__file__).resolve().parents[2]
PYTHON_M = [sys.executable, "-m", "wanvid"]
SCRIPT = Path(sys.executable).parent / "wanvid"
HEAVY = {"typer", "click", "rich", "requests", "urllib3", "PIL", "wanvid.cli.app"}
# The variables of a completion request (request_env): cleared before each one is set.
REQUEST_VARS = ("_WANVID_COMPLETE", "COMP_WORDS", "COMP_CWORD", "_TYPER_COMPLETE_ARGS", "_TYPER_COMPLETE_FISH_ACTION")

# id, status, model, age in seconds: "3e" ids are the ones the examples complete
TASKS = [
    ("3e9f0c1a-old", "SUCCEEDED", "wan2.6-i2v", 5000),
    ("ab12cd34", "FAILED", "wan2.7-i2v", 4000),
    ("3e41b7d2-mid", "RUNNING", "wan2.7-i2v", 3000),
    ("3E00UPPER", "PENDING", "wan2.7-i2v", 2500),
    ("t_under", "SUCCEEDED", None, 2000),
    ("t1over", "SUCCEEDED", "wan2.7-i2v", 1500),
    ("3e7a5f60-new", "PENDING", "wan2.7-i2v", 1000),
]


def record(tasks: Sequence[tuple[str, str, str | None, float]]) -> None:
    journal = Journal()
    now = time.time()
    for task_id, status, model, age in tasks:
        journal.record(
            Entry(
                id=task_id,
                base_url="http://gw",
                protocol="native",
                profile="default",
                created_at=now - age,
                updated_at=now - age,
                status=status,
                model=model,
            )
        )
    journal.close()


@pytest.fixture
def journal() -> Iterator[None]:
    record(TASKS)
    yield


# two profiles (and a table that is not one) in the config file the tests' WANVID_CONFIG_DIR points to
PROFILES_TOML = """\
[profiles.staging]
base_url = "http://staging.example"

[profiles.default]
api_key = "not-a-real-key"
protocol = "unified"

[defaults]
model = "wan2.7-i2v"
"""


def write_config(content: bytes | str) -> Path:
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


@pytest.fixture
def profiles() -> Iterator[None]:
    write_config(PROFILES_TOML)
    yield


def request_env(shell: str, line: str, action: str = "get-args") -> dict[str, str]:
    """What the committed completion scripts set for the command line typed so far."""
    if shell == "bash":
        words = complete._split(line)  # the words bash has in COMP_WORDS (Typer splits them again)
        cword = len(words) - (0 if line.endswith(" ") or not line else 1)
        return {"_WANVID_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    env = {"_WANVID_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line}
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = action
    return env


# bash; zsh; fish's two requests (the words with their help, and "are there any": an exit status only)
SHELL_VARIANTS = [("bash", "get-args"), ("zsh", ""), ("fish", "get-args"), ("fish", "is-args")]
ALL_VARIANTS = [*SHELL_VARIANTS, ("fish", "")]  # and a fish request with no action, which prints a newline


# ---------------------------------------------------------------------------------------------
# Both answers, in-process.

Answer = tuple[str, int]  # stdout, exit status


@contextmanager
def request(env: Mapping[str, str]) -> Iterator[None]:
    """The process environment of one completion request: ``env`` on the test's (conftest's isolated dirs),
    and typer's settings that a process reads from it once, at import (typer.rich_utils), as it would."""
    import typer.rich_utils as rich_utils

    with pytest.MonkeyPatch.context() as mp:
        for name in REQUEST_VARS:
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        width = os.environ.get("TERMINAL_WIDTH")
        mp.setattr(rich_utils, "MAX_WIDTH", int(width) if width else None)
        force = True if any(os.environ.get(n) for n in ("GITHUB_ACTIONS", "FORCE_COLOR", "PY_COLORS")) else None
        mp.setattr(rich_utils, "FORCE_TERMINAL", False if os.environ.get("_TYPER_FORCE_DISABLE_TERMINAL") else force)
        yield


@functools.cache
def _typer_command(detection_disabled: bool) -> Any:
    """The app's Click command, as Typer builds it in a completion process (its --install-completion and
    --show-completion depend on the shell-detection switch read at build time)."""
    import typer.main

    from wanvid.cli.app import app

    assert bool(os.environ.get(complete.NO_DETECTION)) == detection_disabled
    return typer.main.get_command(app)


def typer_answer(env: Mapping[str, str]) -> Answer:
    """What ``WANVID_TYPER_COMPLETE=1 wanvid`` prints for the request in ``env``, and its exit status
    (typer.core._typer_main_shell_completion, without the process)."""
    from typer.completion import shell_complete

    out = io.StringIO()
    with request(env), redirect_stdout(out):
        cli = _typer_command(bool(os.environ.get(complete.NO_DETECTION)))
        try:
            code = shell_complete(cli, {}, "wanvid", "_WANVID_COMPLETE", os.environ["_WANVID_COMPLETE"])
        except SystemExit as exc:  # fish is-args answers with sys.exit
            code = int(exc.code or 0)
    return out.getvalue(), code


def fast_answer(env: Mapping[str, str]) -> Answer | None:
    """What the fast path prints for the request in ``env`` and its exit status, as ``wanvid.__main__`` runs
    it; None where it leaves the request to Typer (having printed nothing)."""
    out, err = io.StringIO(), io.StringIO()
    with request(env), redirect_stdout(out), redirect_stderr(err):
        code = complete.answer(os.environ["_WANVID_COMPLETE"].partition("_")[2])
    assert err.getvalue() == ""  # never a word on stderr, whatever it meets
    if code is None:
        assert out.getvalue() == "", "the fast path printed, then left the request to Typer"
        return None
    return out.getvalue(), code


def assert_same(
    line: str,
    extra: Mapping[str, str] | None = None,
    fallback: tuple[str, ...] = (),
    variants: list[tuple[str, str]] = ALL_VARIANTS,
) -> dict[tuple[str, str], str]:
    """In every variant, the fast path answers ``line`` as Typer does, except in the ``fallback`` shells,
    where it leaves the request to Typer; return Typer's stdout per (shell, action)."""
    typer: dict[tuple[str, str], str] = {}
    for shell, action in variants:
        env = {**request_env(shell, line, action), **(extra or {})}
        want = typer_answer(env)
        got = fast_answer(env)
        if shell in fallback:
            assert got is None, f"{line!r} ({shell} {action}) was expected to be left to Typer"
        else:
            assert got == want, (line, shell, action)
        typer[shell, action] = want[0]
    return typer


def fast(shell: str, line: str, action: str = "get-args", **extra: str) -> Answer:
    """The fast path's own answer (it must not leave this one to Typer)."""
    got = fast_answer({**request_env(shell, line, action), **extra})
    assert got is not None, f"{line!r} ({shell}) was left to Typer"
    return got


def bash(line: str) -> list[str]:
    out, code = fast("bash", line)
    assert code == 0 and out.endswith("\n")
    return out[:-1].split("\n") if out != "\n" else []


# ---------------------------------------------------------------------------------------------
# Fast path == Typer: every command, every kind of completion, every shell.


def _a_value_prefix(completes: dict[str, Any]) -> str:
    """The start of a value an option of this kind completes (journal and config from the fixtures)."""
    if completes["kind"] == "choice":
        return str(completes["choices"][0][:1].lower())  # choices ignore case
    if completes["kind"] == "items":
        return str(completes["items"][0][0][:4])
    return "s" if completes["kind"] == "profiles" else "x"


def systematic_lines() -> dict[str, list[str]]:
    """Per command and group (by its words), lines that ask it for every kind of completion it offers:
    the next word (subcommands by prefix, an argument's values, or nothing), option names (all of them,
    and by prefix), the values of one option of each kind (free text, choices, models, profiles) as
    ``--opt VALUE``, ``--opt=VALUE`` and by prefix, a flag's negative form, options already on the line
    (not offered again), a repeatable option (offered again), and the word after an argument."""
    lines: dict[str, list[str]] = {}

    def walk(command: dict[str, Any], words: list[str]) -> None:
        base = " ".join(words)
        mine = lines.setdefault(base, [f"{base} ", f"{base} -", f"{base} --"])
        for name, sub in command.get("commands", {}).items():  # hidden ones too: not offered, but they complete
            mine.append(f"{base} {name[:2]}")
            walk(sub, [*words, name])
        one_of_each: dict[str, dict[str, Any]] = {}
        for p in command["params"]:
            if p["kind"] == "argument":
                one_of_each.setdefault("argument", p)
            elif p["opts"] and p["callback"] == "none":  # not the help option (help_names), nor --version
                kind = p["completes"]["kind"] if p["value"] else "flag"
                one_of_each.setdefault("negative" if p["secondary"] else kind, p)
                if p["multiple"]:
                    one_of_each.setdefault("multiple", p)
        for kind, p in one_of_each.items():
            if kind == "argument":
                mine += [f"{base} 3e" if p["completes"]["kind"] == "tasks" else f"{base} x", f"{base} x "]
                continue
            name = p["opts"][0]
            mine.append(f"{base} {name[:-1]}")  # by prefix
            if kind == "negative":
                mine += [f"{base} {p['secondary'][0][:5]}", f"{base} {p['secondary'][0]} --"]
            elif kind == "multiple":
                mine.append(f"{base} {name} a=1 {name[:4]}")
            elif kind == "flag":
                mine.append(f"{base} {name} --")
            else:
                first = _a_value_prefix(p["completes"])
                mine += [f"{base} {name} ", f"{base} {name} {first}", f"{base} {name} x --"]
                long = [n for n in p["opts"] if n.startswith("--")]
                mine += [f"{base} {long[0]}=", f"{base} {long[0]}={first}"] if long else []
                short = [n for n in p["opts"] if len(n) == 2]
                mine += [f"{base} {short[0]} ", f"{base} {short[0]}{first}"] if short else []

    walk(complete.load_table()["root"], ["wanvid"])
    return lines


SYSTEMATIC = systematic_lines()


@pytest.mark.parametrize("command", SYSTEMATIC)
def test_every_kind_of_completion_of_every_command_answers_as_typer(
    command: str, journal: None, profiles: None
) -> None:
    for line in SYSTEMATIC[command]:
        assert_same(line, variants=SHELL_VARIANTS)


def test_the_systematic_lines_reach_every_kind_of_completion() -> None:
    """A guard on systematic_lines itself: each kind of candidate, in each command that has it."""
    every = [line for lines in SYSTEMATIC.values() for line in lines]
    assert len(SYSTEMATIC) >= 16 and len(every) >= 300
    for line in ("wanvid ", "wanvid create --model ", "wanvid create --resolution ", "wanvid status 3e"):
        assert line in every
    for line in ("wanvid batch --profile ", "wanvid config set-key --profile=s", "wanvid sandbox --fault a=1 --fa"):
        assert line in every
    assert "wanvid run --no-" in every and "wanvid create -m " in every and "wanvid history --" in every


# ---------------------------------------------------------------------------------------------
# Fast path == Typer: hand-picked lines, terminal widths, requests it must leave to Typer.

LINES = [
    # subcommands
    "wanvid ",
    "wanvid sta",
    "wanvid config ",
    "wanvid config s",
    "wanvid bogus ",
    "wanvid his",  # a hidden alias is not offered...
    "wanvid history --",  # ...but completes after it
    "wanvid history --status ",
    "wanvid ba",
    # option names
    "wanvid -",
    "wanvid --",
    "wanvid --help st",
    "wanvid create --re",
    "wanvid run x.png --no-",
    "wanvid run x.png --metadata --no-",
    "wanvid create --resolution 1080p --res",
    "wanvid sandbox --fault a=1 --fa",
    "wanvid create --bogus --mo",
    "wanvid config set-key --",
    "wanvid create --prompt 'a cat walks' -",
    "wanvid batch --",
    "wanvid batch rows.csv -",
    "wanvid batch rows.csv -j 4 --con",
    "wanvid batch rows.csv --skip-invalid --s",
    "wanvid run x.png --on",
    "wanvid download --on",
    # option values
    "wanvid create x.png --model ",
    "wanvid create x.png -m wan2.",
    "wanvid create x.png --model=",
    "wanvid create x.png --model=wan2.6",
    "wanvid create x.png --resolution ",
    "wanvid create --resolution 1",
    "wanvid status --protocol u",
    "wanvid status --protocol U",
    "wanvid list --limit=",
    "wanvid create -qm ",
    "wanvid create -qmwan",
    "wanvid create --model",
    "wanvid batch rows.csv --resolution ",
    "wanvid batch rows.csv --resolution 7",
    "wanvid batch rows.csv --model ",
    "wanvid batch rows.csv -m wan2.7",
    "wanvid run x.png --protocol ",
    "wanvid batch rows.csv --protocol=n",
    "wanvid batch rows.csv --concurrency ",
    # profile names (the config file of the profiles fixture)
    "wanvid status --profile ",
    "wanvid status --profile s",
    "wanvid create x.png --profile=d",
    "wanvid batch rows.csv --profile ",
    "wanvid config show --profile def",
    "wanvid config set-key --profile nothing",
    "wanvid status --profile staging ",
    # task ids
    "wanvid status ",
    "wanvid download 3e",
    "wanvid download 3E",
    "wanvid download t_",
    "wanvid download %",
    "wanvid wait --timeout 5 ",
    "wanvid wait --timeout=5 3e7",
    "wanvid status 3e41b7d2-mid ",
    "wanvid status -- ",
    "wanvid -- status -",
    "wanvid status -- -",
    "wanvid status --json -q ",
    # positional arguments without completions
    "wanvid config set ",
    "wanvid batch ",
    "wanvid batch rows",
    "wanvid create ",
    "wanvid create x.png ",
    # odd input
    "wanvid status 'unterminated",
    "wanvid create =",
    "",
]


@pytest.mark.parametrize("line", LINES)
def test_fast_path_answers_as_typer(line: str, journal: None, profiles: None) -> None:
    assert_same(line)


@pytest.mark.parametrize(
    "extra",
    [
        {"COLUMNS": "40"},
        {"COLUMNS": "24", "LINES": "10"},
        {"TERMINAL_WIDTH": "30"},
        {"COLUMNS": "12"},
        {"TERM": "dumb", "FORCE_COLOR": "1", "COLUMNS": "30"},
        {"COLUMNS": "3"},
    ],
    ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()),
)
def test_help_is_wrapped_to_the_terminal_as_typer_wraps_it(extra: dict[str, str], journal: None) -> None:
    for line in ("wanvid create --", "wanvid status "):  # option help, and the journal's task help
        assert_same(line, extra, variants=[("zsh", ""), ("fish", "get-args")])  # bash shows no help


def test_requests_beyond_the_fast_path_are_left_to_typer(journal: None) -> None:
    for shell, action in ALL_VARIANTS:  # --version's callback prints during parsing
        assert fast_answer(request_env(shell, "wanvid --version ", action)) is None
    every = ("bash", "zsh", "fish")
    assert_same("wanvid status ", {complete.NO_DETECTION: "1"}, fallback=every)
    assert_same("wanvid create --", {"TERMINAL_WIDTH": "0"}, fallback=("zsh", "fish"))  # bash shows no help


@pytest.mark.parametrize(
    "env",
    [
        {"_WANVID_COMPLETE": "complete_bash", "COMP_WORDS": "wanvid sta", "COMP_CWORD": "-1"},
        {"_WANVID_COMPLETE": "complete_bash", "COMP_WORDS": "wanvid sta", "COMP_CWORD": "7"},
        {"_WANVID_COMPLETE": "complete_bash", "COMP_WORDS": "wanvid sta", "COMP_CWORD": "x"},
        {"_WANVID_COMPLETE": "complete_bash", "COMP_CWORD": "1"},
        {"_WANVID_COMPLETE": "complete_fish", "_TYPER_COMPLETE_ARGS": "wanvid sta"},
        {"_WANVID_COMPLETE": "complete_zsh"},
    ],
    ids=["cword-1", "cword7", "cword-x", "no-words", "fish-no-action", "zsh-no-args"],
)
def test_odd_requests_get_typers_answer(env: dict[str, str]) -> None:
    """Where Typer fails (a traceback, in a process), the fast path leaves it to Typer to fail; where
    Typer answers, the fast path answers the same or leaves it to Typer."""
    got = fast_answer(env)
    try:
        want = typer_answer(env)
    except Exception:
        assert got is None
    else:
        assert got in (None, want)


def test_a_task_id_with_markup_in_its_help_is_left_to_typer(journal: None) -> None:
    record([("3emarkup", "[bold]ODD[/bold]", None, 1)])
    out = assert_same("wanvid status 3em", fallback=("zsh", "fish"))
    assert out["zsh", ""] == '_arguments \'*: :(("3emarkup":"ODD"))\'\n'


# ---------------------------------------------------------------------------------------------
# As real processes: the entry points, Typer's own process, and what only Typer answers.


def imported(stderr: str) -> set[str]:
    """Module names from -X importtime output."""
    return {m.group(1) for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$", stderr, re.M)}


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY}


def run(cmd: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``cmd`` as a process, with the request in ``env`` (importtime on: stderr lists every import)."""
    full = {k: v for k, v in os.environ.items() if k not in (*REQUEST_VARS, "WANVID_TYPER_COMPLETE")}
    full.update({"PYTHONPROFILEIMPORTTIME": "1", **env})
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=60)


# One request per shell, each of another kind: task ids, option names, models with help, profiles. A fixed
# width: Typer's in-process answer sees the test's terminal, not the process's. No line here offers both
# of the help option's names, whose order depends on a process's hash seed.
ENTRY_REQUESTS = {
    ("bash", "get-args"): "wanvid status ",
    ("zsh", ""): "wanvid create --re",
    ("fish", "get-args"): "wanvid create x.png --model ",
    ("fish", "is-args"): "wanvid status --profile ",
}


def test_a_task_id_word_that_is_not_utf8_gets_no_candidates(journal: None) -> None:
    """A byte that is not UTF-8 typed into the word (bash passes it raw): no id starts with it; no traceback."""
    for line in ("wanvid status task_\udcff", "wanvid download \udcff"):
        env = {"_WANVID_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": "2"}
        got = run([sys.executable, "-m", "wanvid"], env)
        assert (got.returncode, got.stdout.strip()) == (0, ""), got.stderr[-2000:]
        assert "Traceback" not in got.stderr


@pytest.mark.parametrize("entry", ["python -m wanvid", "wanvid script"])
@pytest.mark.parametrize(("shell", "action"), SHELL_VARIANTS)
def test_each_entry_point_sends_each_shell_to_the_fast_path(
    entry: str, shell: str, action: str, journal: None, profiles: None
) -> None:
    if entry == "wanvid script" and not SCRIPT.exists():
        pytest.skip("console script not installed in this environment")
    env = {**request_env(shell, ENTRY_REQUESTS[shell, action], action), "COLUMNS": "80"}
    proc = run(PYTHON_M if entry == "python -m wanvid" else [str(SCRIPT)], env)
    assert "Traceback" not in proc.stderr
    assert (proc.stdout, proc.returncode) == typer_answer(env)
    modules = imported(proc.stderr)
    assert "wanvid.cli.complete" in modules and not heavy(modules), sorted(heavy(modules))


@pytest.mark.parametrize(
    ("shell", "action", "line", "extra"),
    [
        *((shell, action, line, {}) for (shell, action), line in ENTRY_REQUESTS.items()),
        ("zsh", "", "wanvid create --", {"TERMINAL_WIDTH": "30"}),  # typer reads it once, at import
        ("fish", "get-args", "wanvid status ", {"COLUMNS": "12"}),
    ],
)
def test_typers_answer_in_process_is_the_one_its_process_prints(
    shell: str, action: str, line: str, extra: dict[str, str], journal: None, profiles: None
) -> None:
    """The reference the tests above compare with is Typer's real answer."""
    env = {**request_env(shell, line, action), "COLUMNS": "80", **extra}
    proc = run(PYTHON_M, {**env, "WANVID_TYPER_COMPLETE": "1"})
    assert "typer" in imported(proc.stderr) and "Traceback" not in proc.stderr
    assert (proc.stdout, proc.returncode) == typer_answer(env)


@pytest.mark.parametrize("seed", ["0", "2"])  # a set of "-h" and "--help" lists "--help" first, then "-h" first
def test_the_help_options_names_come_in_the_order_of_the_process_hash_seed(seed: str) -> None:
    """click lists the help option's names in the order of a set of strings: one order per process, so
    in-process the tests above meet only one of the two."""
    env = {**request_env("bash", "wanvid create -"), "PYTHONHASHSEED": seed}
    typer = run(PYTHON_M, {**env, "WANVID_TYPER_COMPLETE": "1"})
    got = run(PYTHON_M, env)
    assert (got.stdout, got.returncode) == (typer.stdout, typer.returncode)
    names = got.stdout.split()
    assert names.index("--help") < names.index("-h") if seed == "0" else names.index("-h") < names.index("--help")


def test_a_request_beyond_the_fast_path_reaches_typer_as_a_process(journal: None) -> None:
    proc = run(PYTHON_M, request_env("bash", "wanvid --version "))
    assert "typer" in imported(proc.stderr) and "wanvid 0.1.0" in proc.stdout


def test_other_completion_instructions_still_go_to_typer() -> None:
    source = run(PYTHON_M, {"_WANVID_COMPLETE": "source_bash"})
    assert source.returncode == 0 and "complete -o default -F _wanvid_completion wanvid" in source.stdout
    ps = run(PYTHON_M, {"_WANVID_COMPLETE": "complete_powershell"})
    assert "typer" in imported(ps.stderr)


# ---------------------------------------------------------------------------------------------
# What the answers say.


def test_subcommands_are_offered_without_hidden_aliases() -> None:
    assert bash("wanvid ") == [
        "create",
        "status",
        "wait",
        "download",
        "run",
        "batch",
        "list",
        "sandbox",
        "config",
        "journal",
    ]
    assert bash("wanvid sta") == ["status"]
    assert bash("wanvid config s") == ["set-key", "set", "show"]
    assert bash("wanvid history --st") == ["--status"]


def test_options_already_given_are_not_offered_again() -> None:
    assert bash("wanvid run x.png --no-") == [
        "--no-prompt-extend",
        "--no-watermark",
        "--no-generate-audio",
        "--no-metadata",
        "--no-upload-images",
    ]
    assert bash("wanvid run x.png --no-metadata --no-") == [
        "--no-prompt-extend",
        "--no-watermark",
        "--no-generate-audio",
        "--no-upload-images",
    ]
    assert bash("wanvid create --re") == ["--resolution"]
    assert bash("wanvid sandbox --fault a=1 --fa") == ["--fail", "--fault"]  # --fault may repeat
    assert bash("wanvid sandbox --fail x:y --fa") == ["--fault"]


def test_choices_and_models() -> None:
    assert bash("wanvid create x.png --resolution ") == ["720P", "1080P"]
    assert bash("wanvid status --protocol U") == ["unified"]
    assert bash("wanvid create x.png --model=wan2.6") == ["wan2.6-i2v"]
    models = "wan2.7-i2v\t5000-char prompt\nwan2.6-i2v\t1500-char prompt\n"
    assert fast("fish", "wanvid create x.png --model ") == (models, 0)


def test_batch_offers_its_own_options() -> None:
    options = bash("wanvid batch --")
    for name in ("--output-dir", "--name", "--concurrency", "--stagger", "--results", "--skip-invalid"):
        assert name in options
    for name in ("--on-complete", "--force", "--no-metadata", "--timeout", "--resolution", "--profile", "--help"):
        assert name in options
    assert "--image" not in options and "--all" not in options
    assert bash("wanvid batch rows.csv --con") == ["--concurrency"]
    assert bash("wanvid batch rows.csv -j 2 --con") == []  # given already (as -j)
    assert bash("wanvid batch rows.csv --s") == ["--stagger", "--skip-invalid", "--seed", "--shot-type", "--size"]
    assert bash("wanvid run x.png --on") == ["--on-complete"]
    assert bash("wanvid download --on") == ["--on-complete"]
    assert bash("wanvid batch ") == []  # the manifest: the shell completes file names


def test_batch_completes_choices_and_models() -> None:
    assert bash("wanvid batch rows.csv --resolution ") == ["720P", "1080P"]
    assert bash("wanvid batch rows.csv --protocol N") == ["native"]
    assert bash("wanvid batch rows.csv -m wan2.7") == ["wan2.7-i2v"]


def test_profiles_come_from_the_config_file(profiles: None) -> None:
    assert bash("wanvid status --profile ") == ["default", "staging"]  # sorted, tables only
    assert bash("wanvid status --profile s") == ["staging"]
    assert bash("wanvid batch rows.csv --profile=d") == ["default"]
    assert bash("wanvid config set-key --profile x") == []
    assert fast("zsh", "wanvid create --profile ")[0] == '_arguments \'*: :(("default"\n"staging"))\'\n'
    assert fast("fish", "wanvid wait --profile st")[0] == "staging\n"


def test_profile_names_are_taken_as_they_are() -> None:
    write_config('[profiles."it\\"s"]\n[profiles."a:b $c"]\n[profiles."`x\\u0027"]\n[profiles.""]\n')
    assert bash("wanvid status --profile ") == ["", "`x'", "a:b $c", 'it"s']
    for line in ("wanvid status --profile ", "wanvid status --profile a", "wanvid status --profile=i"):
        assert_same(line)
    write_config('[profiles."\u00e9t\u00e9"]\n[profiles.ascii]\n')
    printed = [("bash", "get-args"), ("zsh", ""), ("fish", "get-args")]  # click.echo's encoding: Typer's
    assert_same("wanvid status --profile ", fallback=("bash", "zsh", "fish"), variants=printed)
    assert_same("wanvid status --profile ", variants=[("fish", "is-args")])  # an exit status only
    assert_same("wanvid status --profile a")


def test_no_config_file_gives_no_profiles() -> None:
    path = config.config_path()
    assert not path.exists()
    assert bash("wanvid status --profile ") == []
    out = assert_same("wanvid status --profile ")
    assert out["zsh", ""] == "_files\n"
    assert not path.exists() and not path.parent.exists()  # completion creates nothing


@pytest.mark.parametrize(
    "content",
    [
        b"[profiles.staging\nbase_url = 1\n",
        b"[profiles.default]\n[profiles.default]\n",
        b"[profiles.\xff]\n",
        b"\x00\x01\x02 not toml",
        b'profiles = "a string"\n',
        b"profiles = [1, 2]\n",
        b"",
        "directory",
        "dir-is-a-file",
    ],
    ids=[
        "unclosed-table",
        "duplicate-table",
        "not-utf8",
        "binary",
        "profiles-string",
        "profiles-array",
        "empty",
        "a-dir",
        "dir-is-a-file",
    ],
)
def test_an_unusable_config_file_gives_no_profiles_and_no_error(content: bytes | str) -> None:
    if content == "directory":
        config.config_path().mkdir(parents=True)
    elif content == "dir-is-a-file":  # WANVID_CONFIG_DIR names a file
        config.config_dir().parent.mkdir(parents=True, exist_ok=True)
        config.config_dir().write_text("[profiles.x]\n")
    else:
        assert isinstance(content, bytes)
        write_config(content)
    out = assert_same("wanvid status --profile ")  # the fast path answers: no error, no fallback
    assert (out["bash", "get-args"], out["zsh", ""], out["fish", "get-args"]) == ("\n", "_files\n", "\n")
    assert fast("bash", "wanvid status --profile ") == ("\n", 0)
    assert_same("wanvid batch --profile d")


def test_an_unreadable_config_file_gives_no_profiles(profiles: None) -> None:
    path = config.config_path()
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: the file stays readable")
        assert bash("wanvid status --profile ") == []
        assert_same("wanvid status --profile ")
    finally:
        path.chmod(0o600)


@pytest.mark.parametrize(
    ("variable", "line"), [("WANVID_CONFIG_DIR", "wanvid status --profile "), ("WANVID_DATA_DIR", "wanvid status ")]
)
def test_a_dir_with_a_user_pathlib_cannot_expand_gets_typers_answer(
    variable: str, line: str, journal: None, profiles: None
) -> None:
    """Typer's path finds no profiles or tasks there; the fast path finds none either, or leaves it to Typer."""
    for shell, action in ALL_VARIANTS:
        env = {**request_env(shell, line, action), variable: "~no-such-user-wanvid/x"}
        assert fast_answer(env) in (None, typer_answer(env))


def test_task_ids_most_recent_first_with_their_status(journal: None) -> None:
    assert bash("wanvid status ") == [t[0] for t in sorted(TASKS, key=lambda t: t[3])]
    assert bash("wanvid download 3e") == ["3e7a5f60-new", "3e41b7d2-mid", "3e9f0c1a-old"]
    assert bash("wanvid wait --timeout 5 3e") == ["3e7a5f60-new", "3e41b7d2-mid", "3e9f0c1a-old"]
    assert bash("wanvid download t_") == ["t_under"]  # "_" is not a wildcard
    assert fast("zsh", "wanvid download 3e")[0] == (
        '_arguments \'*: :(("3e7a5f60-new":"PENDING wan2.7-i2v"\n'
        '"3e41b7d2-mid":"RUNNING wan2.7-i2v"\n'
        '"3e9f0c1a-old":"SUCCEEDED wan2.6-i2v"))\'\n'
    )
    assert fast("fish", "wanvid download t")[0] == "t1over\tSUCCEEDED wan2.7-i2v\nt_under\tSUCCEEDED\n"


def test_at_most_fifty_task_ids() -> None:
    record([(f"task{i:03d}", "SUCCEEDED", "wan2.7-i2v", 1000 - i) for i in range(60)])
    ids = bash("wanvid status ")
    assert ids == [f"task{i:03d}" for i in range(59, 9, -1)]


def test_fish_is_args_is_an_exit_status(journal: None) -> None:
    assert fast("fish", "wanvid status ", "is-args") == ("", 0)
    assert fast("fish", "wanvid create ", "is-args") == ("", 1)


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not a database at all" * 100, "newer"],
    ids=["empty", "garbage", "newer-schema"],
)
def test_an_unusable_journal_gives_no_task_ids_and_no_error(content: bytes | str) -> None:
    path = journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if content == "newer":
        record(TASKS)
        with sqlite3.connect(path) as db:
            db.execute(f"PRAGMA user_version = {SCHEMA + 1}")
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    out = assert_same("wanvid status ")  # the fast path answers: no error, no fallback
    assert (out["bash", "get-args"], out["zsh", ""], out["fish", "get-args"]) == ("\n", "_files\n", "\n")
    assert fast("zsh", "wanvid status ") == ("_files\n", 0)


def test_no_journal_gives_no_task_ids() -> None:
    assert not journal_path().exists()
    assert bash("wanvid status ") == []
    assert not journal_path().exists()  # completion creates nothing


# ---------------------------------------------------------------------------------------------
# The pieces: the table, the journal and config paths, the journal query, the wrapping.


def test_committed_table_matches_the_cli() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_completions import TABLE, table
    finally:
        sys.path.pop(0)
    assert Path(complete.TABLE) == TABLE
    assert TABLE.read_text() == table(), "run `make completions`"


@pytest.mark.parametrize(
    "env",
    [
        {"WANVID_DATA_DIR": "~/somewhere"},
        {"WANVID_DATA_DIR": "rel/dir/"},
        {"XDG_DATA_HOME": "/xdg/data"},
        {"XDG_DATA_HOME": "/xdg/data/", "HOME": "relative"},
        {"XDG_DATA_HOME": "", "HOME": "/home/someone/"},
        {"XDG_DATA_HOME": None, "HOME": "/"},
        {"XDG_DATA_HOME": "relative/xdg", "HOME": "/home/someone"},
        {"XDG_DATA_HOME": "  ", "HOME": "/home/someone"},
        {"XDG_DATA_HOME": None, "HOME": ""},
    ],
)
def test_journal_path_is_the_journals(env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANVID_DATA_DIR")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert complete.journal_path() == str(journal_path())


@pytest.mark.parametrize("kind", ["data", "config"])
@pytest.mark.parametrize(
    "env",
    [
        {"XDG_DATA_HOME": "/xdg/data", "XDG_CONFIG_HOME": "/xdg/config"},
        {"XDG_DATA_HOME": "/xdg/data/", "XDG_CONFIG_HOME": "/xdg/config/", "HOME": "relative"},
        {"XDG_DATA_HOME": "", "XDG_CONFIG_HOME": "", "HOME": "/home/someone/"},
        {"XDG_DATA_HOME": None, "XDG_CONFIG_HOME": None, "HOME": "/"},
        {"XDG_DATA_HOME": "relative/xdg", "XDG_CONFIG_HOME": "relative/xdg", "HOME": "/home/someone"},
        {"XDG_DATA_HOME": "  ", "XDG_CONFIG_HOME": "  ", "HOME": "/home/someone"},
        {"XDG_DATA_HOME": None, "XDG_CONFIG_HOME": None, "HOME": ""},
        {"XDG_DATA_HOME": "/xdg/data", "XDG_CONFIG_HOME": None, "HOME": "/home/someone"},
    ],
)
def test_the_user_dirs_a_tab_press_finds_are_platformdirs(
    kind: str, env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """config's user dirs, which skip importing platformdirs where they can (every tab press reads them),
    are the ones platformdirs names."""
    import platformdirs

    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    want = platformdirs.user_data_dir if kind == "data" else platformdirs.user_config_dir
    assert config._user_dir(kind) == Path(want("wanvid", appauthor=False))


def test_journal_path_on_linux_does_not_import_platformdirs() -> None:
    code = "import sys, wanvid.cli.complete as c; c.journal_path(); print('platformdirs' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k not in ("WANVID_DATA_DIR", "XDG_DATA_HOME")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ("False" if sys.platform == "linux" else "True")


def test_profiles_on_linux_do_not_import_platformdirs() -> None:
    code = "import sys, wanvid.cli.complete as c; c.profiles(); print('platformdirs' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k not in ("WANVID_CONFIG_DIR", "XDG_CONFIG_HOME")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ("False" if sys.platform == "linux" else "True")


@pytest.mark.parametrize(
    "content",
    [
        PROFILES_TOML,
        "profiles = { b = {}, a = { protocol = 'native' }, c = 'x' }\n",
        '[profiles.z]\n[profiles.Z]\n[profiles.a.b]\n[profiles."\u00e9t\u00e9"]\n',
        "[[profiles]]\nname = 'x'\n",
        "profiles = 1\n",
        "[profiles\n",
        "x = 1979-05-27T07:32:00Z\n[profiles.d]\n",
        None,
    ],
)
def test_profiles_are_config_profiles(content: str | None) -> None:
    if content is not None:
        write_config(content)
    assert complete.profiles() == config.profiles()


def test_task_query_is_cli_complete_task(journal: None) -> None:
    from wanvid.cli.app import _complete_task

    schema = complete.load_table()["journal_schema"]
    for prefix in ["", "3", "3e", "3E", "t_", "t", "%", "\\", "ab12cd34", "nothing"]:
        assert complete.tasks(prefix, schema) == _complete_task(prefix), prefix


def test_wrapping_is_richs() -> None:
    from rich.console import Console
    from rich.text import Text

    rng = random.Random(7)
    words = ["a", "bb", "word", "longerword", "x" * 17, "", " ", "  "]
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        width = rng.randint(1, 30)
        console = Console(width=width, file=open(os.devnull, "w"))  # noqa: SIM115
        want = "".join(s.text for s in console.render(Text(text))).rstrip("\n")
        assert complete._fit(text, complete._Width(width)) == want, (text, width)


FUZZ_WORDS = [
    "create", "run", "status", "wait", "download", "list", "history", "sandbox", "config", "set", "set-key",
    "show", "bogus", "x.png", "--model", "-m", "wan2.", "--resolution", "720p", "1080P", "--protocol", "u",
    "--", "-", "--no-", "--metadata", "--no-metadata", "-q", "-qm", "-mq", "--json", "--timeout=5",
    "--timeout", "5", "--fault", "a=1", "--status", "-n", "3e", "t_", "--bogus", "=", "--model=", "--model=wan",
    "-h", "--help", "--all", "'a b'", "--prompt", "-p", "--dry-run", "--new", "-o", "out.mp4", "--force",
    "--install-completion", "--show-completion", "--limit=3", "--shot-type", "s", "3E", "%", "'open",
    "--prompt-extend", "-n5", "--all", "unset", "path", "--stdin", "--port", "0", "--fail=x",
    "batch", "rows.csv", "-j", "--concurrency", "-d", "--skip-invalid", "--on-complete", "--profile", "--profile=",
    "staging", "s", "d",
]  # fmt: skip


ENDINGS = [" ", "", " 3", " -", " --m", " wan", " t", "=", " s"]


# Random lines on every run, like tests/cli/test_fuzz.py; a few hundred in-process requests cost a second or two.
@settings(
    max_examples=400,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    words=st.lists(st.sampled_from(FUZZ_WORDS), max_size=5),
    ending=st.sampled_from(ENDINGS),
    variant=st.sampled_from(ALL_VARIANTS),
)
def test_fuzz_fast_path_equals_typer(
    words: list[str], ending: str, variant: tuple[str, str], journal: None, profiles: None
) -> None:
    line = " ".join(["wanvid", *words]) + ending
    shell, action = variant
    env = request_env(shell, line, action)
    assert fast_answer(env) == typer_answer(env), (shell, action, line)
