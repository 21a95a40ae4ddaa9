"""Tab completion's fast path (wanvid/complete.py) answers exactly as Typer does, without importing it.

Every request runs the real entry points (`python -m wanvid` and the installed `wanvid` script) with
the environment each shell's completion script sets, once through the fast path and once through
Typer (WANVID_TYPER_COMPLETE=1), and the two answers must be the same bytes and exit status. A fuzz
test compares the two in-process over many more command lines. The table the fast path reads must
match the app (`make completions`).
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from wanvid import config
from wanvid.cli import complete
from wanvid.store.journal import SCHEMA, Entry, Journal, journal_path

ROOT = Path(__file__).resolve().parent.parent
PYTHON_M = [sys.executable, "-m", "wanvid"]
SCRIPT = Path(sys.executable).parent / "wanvid"
HEAVY = {"typer", "click", "rich", "requests", "urllib3", "PIL", "wanvid.cli.app"}

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


def record(tasks: list[tuple[str, str, str | None, float]]) -> None:
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


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    full.pop("WANVID_TYPER_COMPLETE", None)
    full.update(env)
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=60)


def imported(stderr: str) -> set[str]:
    """Module names from -X importtime output."""
    return {m.group(1) for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$", stderr, re.M)}


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY}


SHELL_VARIANTS = [("bash", "get-args"), ("zsh", ""), ("fish", "get-args"), ("fish", "is-args")]


def answers(
    line: str,
    extra: dict[str, str] | None = None,
    variants: list[tuple[str, str]] = SHELL_VARIANTS,
    all_scripts: bool = False,
) -> list[dict[str, Any]]:
    """For each shell: Typer's answer and the fast path's through both entry points.

    All with the same hash seed (one per line): click lists the help option's names in the order of a
    set of strings, which differs from process to process otherwise."""
    seed = str(sum(map(ord, line)) % 4096)
    jobs = []
    for shell, action in variants:
        env = {"PYTHONHASHSEED": seed, **request_env(shell, line, action), **(extra or {})}
        jobs.append((shell, action, "typer", PYTHON_M, {**env, "WANVID_TYPER_COMPLETE": "1"}))
        jobs.append((shell, action, "fast -m", [sys.executable, "-X", "importtime", "-m", "wanvid"], env))
        if SCRIPT.exists() and (shell == "bash" or all_scripts):  # the console script runs the same main()
            jobs.append((shell, action, "fast script", [str(SCRIPT)], env))
    with ThreadPoolExecutor(4) as pool:
        procs = list(pool.map(lambda job: run(job[3], job[4]), jobs))
    return [{"shell": s, "action": a, "how": how, "proc": p} for (s, a, how, _, _), p in zip(jobs, procs, strict=True)]


def assert_same(
    line: str,
    extra: dict[str, str] | None = None,
    fallback: tuple[str, ...] = (),
    variants: list[tuple[str, str]] = SHELL_VARIANTS,
    all_scripts: bool = False,
) -> dict[tuple[str, str], str]:
    """The fast path's answers equal Typer's, and only the ``fallback`` shells had Typer answer them;
    return Typer's stdout per (shell, action)."""
    got = answers(line, extra, variants, all_scripts)
    typer = {(r["shell"], r["action"]): r["proc"] for r in got if r["how"] == "typer"}
    for r in got:
        p = r["proc"]
        want = typer[r["shell"], r["action"]]
        assert "Traceback" not in p.stderr
        assert (p.stdout, p.returncode) == (want.stdout, want.returncode), (line, r["shell"], r["action"], r["how"])
        if r["how"] == "fast -m":
            loaded = heavy(imported(p.stderr))
            if r["shell"] not in fallback:
                assert not loaded, f"{line!r} ({r['shell']}) went through Typer: {sorted(loaded)}"
            else:
                assert "typer" in loaded, f"{line!r} ({r['shell']}) was expected to fall back to Typer"
    return {k: v.stdout for k, v in typer.items()}


# ---------------------------------------------------------------------------------------------
# Fast path == Typer, as real processes.

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
    # Half the shell variants per line, alternating, through `python -m wanvid` (bash also through the
    # console script, the same main()): every line meets Typer in two shells, every shell half the lines, at
    # half the processes. All shells on random lines: test_fuzz_fast_path_equals_typer_in_process.
    half = LINES.index(line) % 2
    assert_same(line, variants=[SHELL_VARIANTS[0], SHELL_VARIANTS[3]] if half else SHELL_VARIANTS[1:3])


@pytest.mark.parametrize(
    "line",
    ["wanvid sta", "wanvid create --re", "wanvid create x.png --model ", "wanvid status ", "wanvid run --profile "],
)
def test_the_console_script_answers_as_typer_in_every_shell(line: str, journal: None, profiles: None) -> None:
    assert_same(line, all_scripts=True)


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


def test_requests_beyond_the_fast_path_fall_back_to_typer(journal: None) -> None:
    every = ("bash", "zsh", "fish")
    assert_same("wanvid --version ", fallback=every)  # its callback prints during parsing
    assert "wanvid 0.1.0" in run(PYTHON_M, request_env("bash", "wanvid --version ")).stdout
    assert_same("wanvid status ", {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}, fallback=every)
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
    fast = run(PYTHON_M, env)
    typer = run(PYTHON_M, {**env, "WANVID_TYPER_COMPLETE": "1"})
    assert (fast.stdout, fast.returncode) == (typer.stdout, typer.returncode)
    assert ("Traceback" in fast.stderr) == ("Traceback" in typer.stderr)


def test_a_task_id_with_markup_in_its_help_falls_back(journal: None) -> None:
    record([("3emarkup", "[bold]ODD[/bold]", None, 1)])
    out = assert_same("wanvid status 3em", fallback=("zsh", "fish"))
    assert out["zsh", ""] == '_arguments \'*: :(("3emarkup":"ODD"))\'\n'


# ---------------------------------------------------------------------------------------------
# What the answers say.


def bash(line: str) -> list[str]:
    proc = run(PYTHON_M, request_env("bash", line))
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout.endswith("\n")
    return proc.stdout[:-1].split("\n") if proc.stdout != "\n" else []


def test_subcommands_are_offered_without_hidden_aliases() -> None:
    assert bash("wanvid ") == ["create", "status", "wait", "download", "run", "batch", "list", "sandbox", "config"]
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
    fish = run(PYTHON_M, request_env("fish", "wanvid create x.png --model ")).stdout
    assert fish == "wan2.7-i2v\t5000-char prompt\nwan2.6-i2v\t1500-char prompt\n"


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
    zsh = run(PYTHON_M, request_env("zsh", "wanvid create --profile ")).stdout
    assert zsh == '_arguments \'*: :(("default"\n"staging"))\'\n'
    fish = run(PYTHON_M, request_env("fish", "wanvid wait --profile st")).stdout
    assert fish == "staging\n"


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
    for shell in ("bash", "zsh", "fish"):
        proc = run(PYTHON_M, request_env(shell, "wanvid status --profile "))
        assert proc.returncode == 0 and proc.stderr == ""
        assert proc.stdout == {"bash": "\n", "zsh": "_files\n", "fish": "\n"}[shell]
    assert_same("wanvid batch --profile d")  # one line against Typer per file: each costs nine processes


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


def test_a_config_dir_pathlib_cannot_expand_falls_back_to_typer(profiles: None) -> None:
    env = {**request_env("bash", "wanvid status --profile "), "WANVID_CONFIG_DIR": "~no-such-user-wanvid/x"}
    fast = run([sys.executable, "-X", "importtime", "-m", "wanvid"], env)
    typer = run(PYTHON_M, {**env, "WANVID_TYPER_COMPLETE": "1"})
    assert (fast.stdout, fast.returncode) == (typer.stdout, typer.returncode)
    assert "typer" in imported(fast.stderr)


def test_task_ids_most_recent_first_with_their_status(journal: None) -> None:
    assert bash("wanvid status ") == [t[0] for t in sorted(TASKS, key=lambda t: t[3])]
    assert bash("wanvid download 3e") == ["3e7a5f60-new", "3e41b7d2-mid", "3e9f0c1a-old"]
    assert bash("wanvid wait --timeout 5 3e") == ["3e7a5f60-new", "3e41b7d2-mid", "3e9f0c1a-old"]
    assert bash("wanvid download t_") == ["t_under"]  # "_" is not a wildcard
    zsh = run(PYTHON_M, request_env("zsh", "wanvid download 3e")).stdout
    assert zsh == (
        '_arguments \'*: :(("3e7a5f60-new":"PENDING wan2.7-i2v"\n'
        '"3e41b7d2-mid":"RUNNING wan2.7-i2v"\n'
        '"3e9f0c1a-old":"SUCCEEDED wan2.6-i2v"))\'\n'
    )
    fish = run(PYTHON_M, request_env("fish", "wanvid download t")).stdout
    assert fish == "t1over\tSUCCEEDED wan2.7-i2v\nt_under\tSUCCEEDED\n"


def test_at_most_fifty_task_ids() -> None:
    record([(f"task{i:03d}", "SUCCEEDED", "wan2.7-i2v", 1000 - i) for i in range(60)])
    ids = bash("wanvid status ")
    assert ids == [f"task{i:03d}" for i in range(59, 9, -1)]


def test_fish_is_args_is_an_exit_status(journal: None) -> None:
    yes = run(PYTHON_M, request_env("fish", "wanvid status ", "is-args"))
    no = run(PYTHON_M, request_env("fish", "wanvid create ", "is-args"))
    assert (yes.returncode, yes.stdout, no.returncode, no.stdout) == (0, "", 1, "")


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
    for shell in ("bash", "zsh", "fish"):
        proc = run(PYTHON_M, request_env(shell, "wanvid status "))
        assert proc.returncode == 0 and proc.stderr == ""
        assert proc.stdout == {"bash": "\n", "zsh": "_files\n", "fish": "\n"}[shell]
        typer = run(PYTHON_M, {**request_env(shell, "wanvid status "), "WANVID_TYPER_COMPLETE": "1"})
        assert (typer.stdout, typer.returncode) == (proc.stdout, proc.returncode)


def test_no_journal_gives_no_task_ids() -> None:
    assert not journal_path().exists()
    assert bash("wanvid status ") == []
    assert not journal_path().exists()  # completion creates nothing


def test_the_fast_path_imports_no_heavy_stack(journal: None, profiles: None) -> None:
    for shell, line in [
        ("bash", "wanvid status "),
        ("zsh", "wanvid create --"),
        ("fish", "wanvid create --model "),
        ("bash", "wanvid status --profile "),
        ("zsh", "wanvid batch rows.csv --profile d"),
        ("fish", "wanvid batch --"),
    ]:
        proc = run([sys.executable, "-X", "importtime", "-m", "wanvid"], request_env(shell, line))
        modules = imported(proc.stderr)
        assert "wanvid.cli.complete" in modules and proc.stdout.strip()
        assert not heavy(modules), sorted(heavy(modules))


def test_other_completion_instructions_still_go_to_typer() -> None:
    source = run(PYTHON_M, {"_WANVID_COMPLETE": "source_bash"})
    assert source.returncode == 0 and "complete -o default -F _wanvid_completion wanvid" in source.stdout
    ps = run([sys.executable, "-X", "importtime", "-m", "wanvid"], {"_WANVID_COMPLETE": "complete_powershell"})
    assert "typer" in imported(ps.stderr)


# ---------------------------------------------------------------------------------------------
# In-process: the table, the journal query, the wrapping, and a fuzz against Typer.


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


def test_journal_path_on_linux_does_not_import_platformdirs() -> None:
    code = "import sys, wanvid.cli.complete as c; c.journal_path(); print('platformdirs' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k not in ("WANVID_DATA_DIR", "XDG_DATA_HOME")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ("False" if sys.platform == "linux" else "True")


@pytest.mark.parametrize(
    "env",
    [
        {"WANVID_CONFIG_DIR": "~/somewhere"},
        {"WANVID_CONFIG_DIR": "rel/dir/"},
        {"WANVID_CONFIG_DIR": "/abs/conf/"},
        {"WANVID_CONFIG_DIR": ""},
        {"WANVID_CONFIG_DIR": None},
        {"WANVID_CONFIG_DIR": None, "XDG_CONFIG_HOME": "/xdg/config"},
        {"WANVID_CONFIG_DIR": None, "XDG_CONFIG_HOME": "/xdg/config/", "HOME": "relative"},
        {"WANVID_CONFIG_DIR": None, "XDG_CONFIG_HOME": "", "HOME": "/home/someone/"},
        {"WANVID_CONFIG_DIR": None, "XDG_CONFIG_HOME": None, "HOME": "/"},
        {"WANVID_CONFIG_DIR": None, "XDG_CONFIG_HOME": "relative/xdg", "HOME": "/home/someone"},
        {"WANVID_CONFIG_DIR": None, "XDG_CONFIG_HOME": "  ", "HOME": "/home/someone"},
        {"WANVID_CONFIG_DIR": None, "XDG_CONFIG_HOME": None, "HOME": ""},
        {"WANVID_CONFIG_DIR": None, "XDG_DATA_HOME": "/xdg/data", "HOME": "/home/someone"},
    ],
)
def test_config_path_is_the_configs(env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert complete.config_path() == str(config.config_path())


def test_config_path_on_linux_does_not_import_platformdirs() -> None:
    code = "import sys, wanvid.cli.complete as c; c.config_path(); print('platformdirs' in sys.modules)"
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


def test_fuzz_fast_path_equals_typer_in_process(journal: None, profiles: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer.main
    from typer._completion_classes import BashComplete, FishComplete, ZshComplete

    from wanvid.cli.app import app

    cli = typer.main.get_command(app)
    classes = {"bash": BashComplete, "zsh": ZshComplete, "fish": FishComplete}
    rng = random.Random(2024)
    variants = [*SHELL_VARIANTS, ("fish", "")]
    for i in range(1000):
        words = [rng.choice(FUZZ_WORDS) for _ in range(rng.randint(0, 5))]
        line = " ".join(["wanvid", *words]) + rng.choice([" ", "", " 3", " -", " --m", " wan", " t", "=", " s"])
        shell, action = variants[i % len(variants)]
        for name in ("COMP_WORDS", "COMP_CWORD", "_TYPER_COMPLETE_ARGS", "_TYPER_COMPLETE_FISH_ACTION"):
            monkeypatch.delenv(name, raising=False)
        for name, value in request_env(shell, line, action).items():
            monkeypatch.setenv(name, value)
        comp = classes[shell](cli, {}, "wanvid", "_WANVID_COMPLETE")
        try:
            want: tuple[str | None, int] = (comp.complete() + "\n", 0)
        except SystemExit as exc:  # fish is-args
            want = (None, int(exc.code or 0))
        assert complete._answer(shell) == want, (shell, action, line)
