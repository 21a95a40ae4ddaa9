"""What people read: every command's --help (its examples, its placeholders), the man page, docs/cli.md and
the README. The examples are run too, against the built-in gateway, as a user would paste them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import typer

from wanvid.cli.app import app
from wanvid.cli.examples import EXAMPLES
from wanvid.jobs.batch import NAME_FIELDS
from wanvid.sandbox import Sandbox

from ..helpers import CAT, FAST, ROOT, finish, run, start, wait_until, wv


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the app, hidden aliases too: () is ``wanvid`` itself."""

    def walk(cmd: object, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        subs = getattr(cmd, "commands", {})
        return [path, *(p for name, sub in subs.items() for p in walk(sub, (*path, name)))]

    return walk(typer.main.get_command(app), ())


PATHS = command_paths()
LEAVES = [p for p in PATHS if p and p != ("config",)]


def help_of(path: tuple[str, ...]) -> str:
    r = wv(*path, "--help")
    assert r.exit_code == 0, r.stderr
    return r.stdout


def examples_in(text: str) -> list[tuple[str, str]]:
    """The (comment, command) pairs of a help's Examples section."""
    assert "\nExamples:\n" in text, text
    lines = [line.strip() for line in text.split("\nExamples:\n", 1)[1].splitlines() if line.strip()]
    assert all(line.startswith("#") for line in lines[::2]), lines
    return [(what.lstrip("# "), command) for what, command in zip(lines[::2], lines[1::2], strict=True)]


# -- --help ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_command_help_ends_with_one_to_three_examples_that_start_with_wanvid(path):
    shown = examples_in(help_of(path))
    assert 1 <= len(shown) <= 3
    assert all(command.startswith("wanvid ") for _, command in shown), shown
    canonical = "list" if path == ("history",) else " ".join(path)  # the alias shows its command's examples
    assert shown == list(EXAMPLES[f"wanvid {canonical}"])


def test_every_example_is_filed_under_a_command_that_exists():
    assert set(EXAMPLES) == {" ".join(("wanvid", *p)) for p in PATHS if p != ("history",)}


PLACEHOLDER = re.compile(r"<[A-Za-z_][\w .-]*>|\{[A-Za-z_][\w ]*\}")
TEMPLATE_FIELDS = {f"{{{name}}}" for name in NAME_FIELDS}  # batch --name's fields: its syntax, not placeholders


def placeholders(text: str) -> list[str]:
    return [p for p in PLACEHOLDER.findall(text) if p not in TEMPLATE_FIELDS]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "wanvid")
def test_no_help_has_angle_or_brace_placeholders(path):
    text = help_of(path)
    assert placeholders(text) == [], text
    usage = text.splitlines()[0]
    assert "{" not in usage and "<" not in usage
    words = usage.split("[OPTIONS]", 1)[-1].split()
    assert all(w.strip("[].") == w.strip("[].").upper() for w in words), usage  # placeholders in capitals


def test_config_set_names_its_arguments_in_capitals():
    assert help_of(("config", "set")).startswith("Usage: wanvid config set [OPTIONS] NAME VALUE\n")
    assert help_of(("batch",)).startswith("Usage: wanvid batch [OPTIONS] MANIFEST\n")


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_short_and_long(flag):
    from wanvid import __version__

    r = wv(flag)
    assert (r.exit_code, r.stdout) == (0, f"wanvid {__version__}\n")


# -- the examples, run -------------------------------------------------------------------------------

# Examples that need a finished task to exist first (the most recent one is theirs).
AFTER_A_TASK = {"wanvid status", "wanvid wait", "wanvid download"}


def _prepare(workdir: Path) -> None:
    shutil.copy(CAT, workdir / "cat.png")
    shutil.copy(CAT, workdir / "dog.png")
    (workdir / "shots.csv").write_text("image,prompt,seed\ncat.png,the cat blinks,1\ndog.png,the dog blinks,2\n")
    (workdir / "key.txt").write_text("sk-example-key\n")
    (workdir / "prompt.txt").write_text("the cat walks toward the camera\n")


def _in_process(line: str, sb: Sandbox) -> None:
    words = shlex.split(line.replace("http://127.0.0.1:8765", sb.url))
    stdin = None
    if "<" in words:  # `wanvid ... < FILE`: the shell's redirection
        at = words.index("<")
        stdin, words = Path(words[at + 1]).read_text(), words[:at]
    r = wv(*words[1:], input=stdin)
    assert r.exit_code == 0, f"{line}\n{r.stderr}"


def _in_a_shell(line: str, sb: Sandbox) -> None:
    """An example that uses the shell (a pipe, $(...), &&): run by bash, with this environment's wanvid first
    on PATH and the same settings (the gateway's, the isolated config and journal) as the in-process ones."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    r = subprocess.run(["bash", "-c", line.replace("http://127.0.0.1:8765", sb.url)], env=env, capture_output=True)
    assert r.returncode == 0, f"{line}\n{r.stderr.decode(errors='replace')}"


def _prompted(line: str) -> None:
    """A command that prompts for the key on its terminal (a pseudo-terminal it controls), answered."""
    import fcntl
    import pty
    import select
    import termios

    master, slave = pty.openpty()

    def controlled() -> None:  # the child's own session, the pty its controlling terminal (getpass uses /dev/tty)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    def read() -> bytes:
        ready, _, _ = select.select([master], [], [], 30)
        assert ready, f"{line}: no output for 30 s"
        try:
            return os.read(master, 1024)
        except OSError:  # EIO: the child closed the terminal
            return b""

    args = shlex.split(line)[1:]
    proc = subprocess.Popen(
        [sys.executable, "-m", "wanvid", *args], stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlled
    )
    os.close(slave)
    seen = b""
    while b"API key" not in seen:
        seen += read()
    # getpass turns echo off and flushes what was typed before: answer only once it listens
    wait_until(lambda: not termios.tcgetattr(master)[3] & termios.ECHO, "the prompt to turn echo off")
    os.write(master, b"sk-example-key\n")
    while chunk := read():
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=30) == 0, seen.decode(errors="replace")
    assert b"saved the API key" in seen and b"sk-example-key" not in seen


def _sandbox(line: str) -> None:
    """``wanvid sandbox ...`` in the foreground, on a free port, until it says where it listens; then Ctrl-C."""
    proc = start(*shlex.split(line)[1:], "--port", "0")
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{url}/_sandbox/faults", timeout=10) as answer:  # it serves: Ctrl-C stops that
        assert answer.status == 200
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 0, err


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_the_examples_run(path, gw, isolated, monkeypatch):
    workdir = isolated / "work"
    workdir.mkdir()
    _prepare(workdir)
    monkeypatch.chdir(workdir)
    if path in AFTER_A_TASK:
        task_id = wv("create", "cat.png", "-p", "the cat looks up").stdout.strip()
        assert wv("wait", task_id, *FAST).exit_code == 0  # download's examples need it finished
    for _, line in EXAMPLES[path]:
        if line.startswith("wanvid sandbox"):
            _sandbox(line)
        elif line.startswith("wanvid config set-key") and "--stdin" not in line:
            _prompted(line)
        elif any(mark in line for mark in ("|", "$(", "&&")):
            _in_a_shell(line, gw)
        else:
            _in_process(line, gw)


# -- docs/cli.md and the man page --------------------------------------------------------------------

MAN = ROOT / "docs" / "wanvid.1"
MD = ROOT / "docs" / "cli.md"


def _options(path: tuple[str, ...]) -> list[str]:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return [o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]


def _sections(text: str, heading: str) -> dict[str, str]:
    parts = re.split(heading, text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_the_man_page_has_a_section_per_command_with_its_options_and_examples():
    text = MAN.read_text()
    assert text.startswith(".TH WANVID 1 ")
    for head in ("NAME", "SYNOPSIS", "DESCRIPTION"):
        assert f"\n.SH {head}\n" in text
    sections = _sections(text, r'\n\.SH "([A-Z -]+)"\n')
    for path in LEAVES:
        if path == ("history",):
            continue
        section = sections[" ".join(("wanvid", *path)).upper()]
        for option in _options(path):
            assert option.replace("-", "\\-") in section, (path, option)
        for _, line in EXAMPLES[" ".join(("wanvid", *path))]:
            assert line.replace("\\", "\\e").replace("-", "\\-") in section


def test_the_man_page_renders_without_warnings():
    if shutil.which("groff"):
        check = subprocess.run(["groff", "-man", "-ww", "-z", str(MAN)], capture_output=True, text=True)
        assert (check.returncode, check.stderr) == (0, "")
    if not shutil.which("man"):
        pytest.skip("no man here: the roff structure is checked above")
    shown = subprocess.run(
        ["man", "-l", str(MAN)], capture_output=True, text=True, env={**os.environ, "MANWIDTH": "100"}, check=True
    ).stdout
    plain = re.sub(r".\x08", "", shown)  # overstrike bold, if the formatter used it
    assert "WANVID CONFIG SET" in plain and "wanvid batch [OPTIONS] MANIFEST" in plain
    assert '--name "{stem}-{row}.mp4"' in plain  # a hyphen in an example is a minus a shell can take


def test_the_reference_lists_whole_summaries_and_every_option():
    text = MD.read_text()
    listed = re.findall(r"^\* `[a-z-]+`: (.*)$", text, flags=re.MULTILINE)
    assert listed and not [summary for summary in listed if summary.endswith("...")]
    sections = _sections(text, r"\n## `([^`]+)`\n")
    for path in LEAVES:
        if path == ("history",):
            continue
        section = sections[" ".join(("wanvid", *path))]
        assert all(option in section for option in _options(path)), path
        assert "**Examples**:" in section
    assert placeholders(text) == []


# -- the README --------------------------------------------------------------------------------------

README = (ROOT / "README.md").read_text()


def test_the_readme_links_only_inside_the_repository():
    assert "../" not in README
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        if target.startswith("#"):
            continue
        assert "://" not in target, target
        assert (ROOT / target.split("#")[0]).exists(), target


def test_the_readme_does_not_talk_about_how_the_project_was_planned():
    words = re.findall(r"\b(?:the issue|issue's|the spec|spec's|spec was)\b", README, flags=re.IGNORECASE)
    assert words == []


def test_group_listings_show_whole_summaries():
    for path in [(), ("config",)]:
        listing = help_of(path).split("\nCommands:\n", 1)[1]
        assert "..." not in listing, listing
    assert "print its id.\n" in help_of(())


# What the README says `wanvid --install-completion` writes, per shell: (script, rc file, line added to it).
INSTALLED = {
    "bash": (".bash_completions/wanvid.sh", ".bashrc", "source '{home}/.bash_completions/wanvid.sh'"),
    "zsh": (".zfunc/_wanvid", ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit"),
    "fish": (".config/fish/completions/wanvid.fish", None, None),
}


@pytest.mark.parametrize("shell", sorted(INSTALLED))
def test_install_completion_writes_what_the_readme_says(shell, tmp_path):
    script, rc, line = INSTALLED[shell]
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}  # the shell named, not detected
    proc = run("--install-completion", shell, env=env)
    assert proc.returncode == 0, proc.stderr
    committed = {"bash": "wanvid.bash", "zsh": "_wanvid", "fish": "wanvid.fish"}[shell]
    assert (home / script).read_text().strip() == (ROOT / "completions" / committed).read_text().strip()
    assert f"`~/{script}`" in README
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert written == sorted([script, *([rc] if rc else [])])
    if rc:
        assert line.format(home=home) in (home / rc).read_text().splitlines()
        assert line.format(home="/home/you") in README
