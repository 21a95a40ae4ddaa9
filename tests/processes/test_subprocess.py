"""wanvid as users and scripts run it: real processes, a real `wanvid sandbox`, signals, completions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import CAT, FAST, ROOT, TEST_KEY, finish, on_a_terminal, queries, run, start, wait_until


@pytest.fixture
def gateway() -> Iterator[str]:
    """`wanvid sandbox` started the way a user starts it, stopped with Ctrl-C (SIGINT)."""
    proc = start("sandbox", "--port", "0", "--queue-seconds", "0.2", "--run-seconds", "0.5")
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:")
    yield url
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


@pytest.fixture
def env(gateway: str) -> dict[str, str]:
    return {"WANVID_BASE_URL": gateway, "WANVID_API_KEY": TEST_KEY}


def faults(url: str, **switches: object) -> None:
    req = urllib.request.Request(
        f"{url}/_sandbox/faults",
        data=json.dumps(switches).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=5).close()


def test_run_end_to_end_as_a_process(env, tmp_path):
    proc = run("run", str(CAT), "-p", "the cat walks toward the camera", *FAST, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tmp_path / 'cat.mp4'}\n"
    data = (tmp_path / "cat.mp4").read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 10_000


def test_console_script_and_module_agree():
    script = Path(sys.executable).parent / "wanvid"
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True).stdout
    assert out == run("--version").stdout


@pytest.mark.parametrize(
    ("setup", "args", "code", "needle"),
    [
        (None, ["create", str(CAT), "--duration", "99"], 2, "--duration"),
        (None, ["status", "no-such-task"], 5, "unknown to the gateway"),
        (
            {"fail_code": "DataInspectionFailed", "fail_message": "flagged"},
            ["run", str(CAT), *FAST],
            3,
            "DataInspectionFailed: flagged",
        ),
        ({"server_errors": 50}, ["status", "x"], 6, "gateway error 500"),
    ],
)
def test_exit_codes_as_a_process(gateway, env, setup, args, code, needle):
    if setup:
        faults(gateway, **setup)
    proc = run(*args, env={**env, "WANVID_MAX_RETRIES": "0"})
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    if args[0] != "status":  # status prints the state it found, then exits with the outcome
        assert proc.stdout == ""


def test_missing_key_exits_4_as_a_process(gateway):
    proc = run("create", str(CAT), env={"WANVID_BASE_URL": gateway})
    assert proc.returncode == 4 and "wanvid config set-key" in proc.stderr


def test_timeout_exits_124_as_a_process(slow):
    proc = run("run", str(CAT), "--timeout", "0.2", *FAST, sb=slow)
    assert proc.returncode == 124 and "resume with: wanvid wait" in proc.stderr and proc.stdout == ""


def test_ctrl_c_while_waiting_keeps_the_task_and_prints_how_to_resume(slow):
    task_id = run("create", str(CAT), sb=slow).stdout.strip()
    waiter = start("wait", task_id, "--poll-interval", "5", sb=slow)
    # Ctrl-C once it polls: any sooner, and the process may not even have reached its wait
    wait_until(lambda: queries(slow), "the waiter's first status query")
    waiter.send_signal(signal.SIGINT)
    code, out, err = finish(waiter, timeout=10)
    assert code == 130
    assert task_id in err and f"resume with: wanvid wait {task_id}" in err and out == ""


def test_cli_import_stays_light():
    code = (
        "import sys, wanvid.cli.app; heavy = {'requests', 'urllib3', 'rich.progress', 'rich.live', 'PIL'}"
        " & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", ["wanvid.bash", "_wanvid", "wanvid.fish"])
def test_committed_completions_match_the_cli(name):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_completions import SHELLS, script
    finally:
        sys.path.pop(0)
    shell = {v: k for k, v in SHELLS.items()}[name]
    assert (ROOT / "completions" / name).read_text() == script(shell), "run `make completions`"


def test_bash_completion_request_offers_commands_options_and_models():
    def complete(words: str) -> list[str]:
        cword = len(words.split()) - (0 if words.endswith(" ") else 1)
        env = {"_WANVID_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        return run(env=env, timeout=30).stdout.split()

    assert {"create", "status", "wait", "download", "run", "config", "sandbox"} <= set(complete("wanvid "))
    assert "--negative-prompt" in complete("wanvid create --neg")
    assert complete("wanvid run x.png -m wan2.") == ["wan2.7-i2v", "wan2.6-i2v"]
    assert set(complete("wanvid create --protocol ")) == {"native", "unified"}


def test_committed_cli_reference_and_man_page_match_the_cli():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_docs import MAN, OUT, commands, manpage, reference
    finally:
        sys.path.pop(0)
    root = commands()
    assert OUT.read_text() == reference(root), "run `make docs`"
    assert MAN.read_text() == manpage(root), "run `make docs`"


def test_live_display_on_a_terminal_and_no_color(env):
    import re

    task_id = run("create", str(CAT), env=env).stdout.strip()
    out, screen = on_a_terminal(["wait", task_id, *FAST], env)
    assert out.startswith("http://localhost:") and out.count("\n") == 1  # stdout: the result only
    assert "SUCCEEDED" in screen and "\x1b[" in screen  # a live rich display, not plain lines
    assert f"task={task_id} status=PENDING" not in screen
    colour = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;5;\d+|38;2;[\d;]+)m")
    assert colour.search(screen)
    task_id = run("create", str(CAT), env=env).stdout.strip()
    _, plain = on_a_terminal(["wait", task_id, *FAST], {**env, "NO_COLOR": "1"})
    assert "SUCCEEDED" in plain and not colour.search(plain)


def test_every_command_as_a_process(env, tmp_path):
    task_id = run("create", str(CAT), "-q", env=env).stdout.strip()
    assert json.loads(run("status", task_id, "--json", env=env).stdout)["id"] == task_id
    assert run("wait", task_id, "-q", *FAST, env=env).stdout == f"{task_id}\n"
    got = run("download", task_id, "-o", "out.mp4", "--json", env=env)
    assert json.loads(got.stdout) == {
        "task_id": task_id,
        "path": str(tmp_path / "out.mp4"),
        "bytes": (tmp_path / "out.mp4").stat().st_size,
        "video": {"duration": 5.0, "width": 640, "height": 360},
        "metadata": str(tmp_path / "out.mp4.json"),
        "already_saved": False,
    }
    assert json.loads((tmp_path / "out.mp4.json").read_text())["task_id"] == task_id
    listed = run("list", env=env).stdout.splitlines()
    assert listed[0].split() == ["TASK", "STATUS", "MODEL", "CREATED", "LAST", "SEEN", "OUTPUT"]
    assert listed[1].split()[:2] == [task_id, "SUCCEEDED"] and listed[1].endswith(str(tmp_path / "out.mp4"))
    assert run("status", "-q", env=env).stdout == "SUCCEEDED\n"  # no id: the most recent task
    cfg = {"WANVID_CONFIG_DIR": str(tmp_path / "cfg")}
    stored = run("config", "set-key", "--stdin", input=TEST_KEY + "\n", env=cfg, timeout=30)
    assert stored.returncode == 0 and stored.stdout == f"{tmp_path / 'cfg' / 'config.toml'}\n"
    shown = run("config", "show", env=cfg)
    assert "****rint" in shown.stdout and "(file)" in shown.stdout
    assert run("config", "path", env=cfg).stdout == stored.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--help"],
        ["config", "--help"],
        ["config", "path", "--help"],
        ["history", "--help"],
        ["stauts"],  # a typo: Click's suggestion needs every command
        ["status", "--bogus"],
        ["--version"],
        ["--help"],  # the listing, from stand-ins that only carry each command's name and help
        [],
        ["--bogus"],
        ["--", "status"],  # after "--" a command may still follow: nothing is replaced
        ["--version", "status"],
        ["-h", "status"],
    ],
)
def test_a_process_answers_as_the_whole_app_does(args, tmp_path):
    """A process builds only the command its first word names, or stand-ins for a listing (cli.run); nothing
    the user sees may change."""
    env = {**os.environ, "COLUMNS": "100", "WANVID_CONFIG_DIR": str(tmp_path)}
    whole_app = "import sys; from wanvid.cli.app import app; sys.argv[0] = 'wanvid'; app(prog_name='wanvid')"
    whole = subprocess.run([sys.executable, "-c", whole_app, *args], capture_output=True, text=True, env=env)
    proc = run(*args, env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (whole.returncode, whole.stdout, whole.stderr)
    assert proc.stdout or proc.stderr


def test_every_root_option_ends_the_process():
    """cli.run builds stand-ins when the first word is an option, which is safe only while no root option
    lets a command run after it. A new root option (say --debug) must revisit _only_the_named_command."""
    import typer.main

    from wanvid.cli.app import app

    root = typer.main.get_command(app)
    options = {p.name for p in root.get_params(root.make_context("wanvid", [], resilient_parsing=True))}
    assert options == {"version", "install_completion", "show_completion", "help"}


def test_a_reader_that_goes_away_is_not_an_error_report():
    proc = start("create", str(CAT), "--dry-run", env={"PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `wanvid ... | head -c0`
    err = proc.stderr.read()
    proc.wait(timeout=30)
    assert "unexpected" not in err and "Traceback" not in err
