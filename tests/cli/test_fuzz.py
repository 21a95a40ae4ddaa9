"""Fuzz tests: the CLI's arguments, the config file, manifests and the media/box parsers, fed what a hostile or
careless user can feed them. Whatever comes in: no exit 1 ("unexpected"), no traceback, never the key, no hang.

Commands run in-process (typer's CliRunner) against a base URL on 127.0.0.1 where nothing listens and with
no retries, so nothing is paid and nothing waits; each example gets its own config and data dirs. A
watchdog (SIGALRM, main thread only) turns a hang into a failure naming the input. ``WANVID_DEBUG=1`` lets
an unexpected exception through the error boundary, so a failure shows its traceback. The inputs that once
failed are pinned as ``@example``s; hypothesis adds fresh random ones on every run.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from wanvid.cli.app import app
from wanvid.errors import FieldError
from wanvid.rules import media, mp4
from wanvid.rules.models import spec_for
from wanvid.sandbox import sample_mp4

from ..gateway.test_gateway_variants import Answer, gateway  # noqa: F401 - gateway is a fixture
from ..helpers import TEST_KEY, wv


def fuzz(n: int, *, shrink: bool = True) -> settings:
    """``n`` random inputs after the explicit ones. Commands are not shrunk: a hang costs the watchdog's seconds
    on every shrinking step, and an argv is short enough to read as found."""
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]
    return settings(
        max_examples=n,
        deadline=None,
        database=None,  # nothing written into the tree; the failures worth keeping are @examples below
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# Random inputs per run, on top of the explicit examples; together a few seconds (most of it the CLI's).
CLI_INPUTS, CONFIG_INPUTS, MANIFEST_INPUTS, MP4_INPUTS, MEDIA_INPUTS = 80, 20, 25, 200, 60


# -- running the CLI -------------------------------------------------------------------------------


class Hang(BaseException):
    """A command ran past the watchdog (BaseException: no ``except Exception`` in wanvid swallows it)."""


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; the suite runs tests there
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def closed_url() -> Iterator[str]:
    """http://127.0.0.1:PORT where nothing listens: the port is bound (no one else takes it), never listened on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def cli(argv: list[str], closed_url: str, *, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    """Run wanvid in-process with fresh config and data dirs; assert the promises."""
    with tempfile.TemporaryDirectory() as home:
        base = {
            "WANVID_CONFIG_DIR": f"{home}/config",
            "WANVID_DATA_DIR": f"{home}/data",
            "WANVID_BASE_URL": closed_url,
            "WANVID_API_KEY": TEST_KEY,
            "WANVID_MAX_RETRIES": "0",
            "WANVID_DEBUG": "1",
        }
        with watchdog(3.0):
            result = CliRunner().invoke(app, argv, env={**base, **(env or {})}, input=stdin)
    check(argv, result)
    return result


def check(what: Any, result: Any) -> None:
    text = result.stdout + result.stderr
    trace = ""
    if result.exc_info and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))
    assert result.exit_code != 1, f"exit 1 for {what!r}:\n{text}\n{trace}"
    assert "Traceback" not in text, f"a traceback for {what!r}:\n{text}"
    assert TEST_KEY not in text, f"the key in the output for {what!r}"


# -- CLI arguments ---------------------------------------------------------------------------------

# Never drawn: --install-completion edits the user's shell files; the bucket options reach AWS; sandbox
# serves until stopped (its bad ports are a test of their own below).
LEFT_OUT = {"--install-completion", "--show-completion", "--bucket", "--bucket-endpoint", "--bucket-region"}
LEFT_OUT |= {"--upload-images", "--no-upload-images"}


def _commands() -> list[tuple[tuple[str, ...], list[Any]]]:
    """(command words, params) of every command of the real app, from its click tree."""
    found = []

    def walk(cmd: Any, words: tuple[str, ...]) -> None:
        if hasattr(cmd, "list_commands"):
            ctx = type(cmd).context_class(cmd)
            found.append((words, [p for p in cmd.params if not set(p.opts) & LEFT_OUT]))
            for name in cmd.list_commands(ctx):
                if name != "sandbox":
                    walk(cmd.get_command(ctx, name), (*words, name))
        else:
            found.append(
                (words, [p for p in cmd.params if not getattr(p, "hidden", False) and not set(p.opts) & LEFT_OUT])
            )

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()
ALL_OPTIONS = sorted({o for _, params in COMMANDS for p in params for o in (*p.opts, *p.secondary_opts) if o[0] == "-"})

NUMBERS = ["nan", "inf", "-inf", "1e400", "-1e400", "-1", "0", "-0", "1e-9", "1e-300", "99999999999999999999"]
NUMBERS += ["9" * 5000, "0x10", "1_000", " 7", "3.5", "1,5", "", "١٢"]  # the last: Arabic-Indic digits


@st.composite
def _text(draw: Any) -> str:
    # A shell cannot pass NUL; undecodable bytes reach sys.argv as lone surrogates (surrogateescape).
    alphabet = st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]) | st.sampled_from(
        ["\udcff", "\n", "\r", "\x1b[31m", "..", "/", "~", "{row}", "{", "}", "%s", "\t", "-", "--", "="]
    )
    return "".join(draw(st.lists(alphabet, max_size=12)))


def _values(paths: list[str], urls: list[str]) -> st.SearchStrategy[str]:
    numbers = st.sampled_from(NUMBERS) | st.integers().map(str) | st.floats().map(repr)
    return st.one_of(st.sampled_from(paths), st.sampled_from(urls), numbers, _text(), st.sampled_from(ALL_OPTIONS))


@pytest.fixture
def places(tmp_path: Path, closed_url: str) -> tuple[list[str], list[str]]:
    """Paths and URLs worth passing where wanvid expects a file or a URL."""
    Image.new("RGB", (832, 480), "teal").save(tmp_path / "cat.png")
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "m.csv").write_text(f"image,prompt\n{tmp_path / 'cat.png'},a cat\n")
    (tmp_path / "clip.mp4").write_bytes(sample_mp4())
    (tmp_path / "empty.png").write_bytes(b"")
    paths = ["cat.png", str(tmp_path / "cat.png"), "missing.png", "adir", "adir/", "fifo", "/dev/null", "/dev/zero"]
    paths += ["m.csv", "clip.mp4", "empty.png", "~nouser_wanvid/x.png", "a" * 300 + ".png", "", "-", ".", "..", "/"]
    urls = [closed_url, f"{closed_url}/x.png", f"{closed_url}\n", "https://exa mple.com", "http://127.0.0.1:99999"]
    urls += ["http://[::1", "http://", "ftp://127.0.0.1/x", "data:image/png;base64,AAAA", "data:,", "s3://b/k"]
    urls += [
        "file:///etc/passwd",
        "http://127.0.0.1:0",
        "//127.0.0.1",
        f"{closed_url}/../..",
        "http://user:pw@127.0.0.1:1",
    ]
    return paths, urls


@st.composite
def argvs(draw: Any, paths: list[str], urls: list[str]) -> list[str]:
    words, params = draw(st.sampled_from(COMMANDS))
    values = _values(paths, urls)
    argv = list(words)
    for _ in range(draw(st.integers(0, 6))):
        pick = draw(st.integers(0, 9))
        if pick < 7 and params:
            p = draw(st.sampled_from(params))
            names = [*p.opts, *p.secondary_opts]
            if getattr(p, "param_type_name", "") == "argument":
                argv.append(draw(values))
            elif getattr(p, "is_flag", False):
                argv.append(draw(st.sampled_from(names)))
            else:
                choices = list(getattr(p.type, "choices", []) or [])
                value = draw(st.sampled_from(choices) | values if choices else values)
                name = draw(st.sampled_from(names))
                argv += [f"{name}={value}"] if name.startswith("--") and draw(st.booleans()) else [name, value]
        elif pick < 9:
            argv.append(draw(values))
        else:
            argv.append(draw(st.sampled_from(ALL_OPTIONS)))
    return argv


ENVS = st.fixed_dictionaries(
    {},
    optional={
        "WANVID_MAX_RETRIES": st.sampled_from(["99999999999999999999", "-1", "nan", "1e3", " 2"]),
        "WANVID_BASE_URL": st.sampled_from(["https://exa mple.com", "http://[::1", "http://127.0.0.1:99999", ""]),
        "WANVID_PROTOCOL": st.sampled_from(["unified", "bogus", ""]),
        "WANVID_HEARTBEAT": st.sampled_from(["nan", "-1", "1e400"]),
    },
)


def test_fuzz_cli_arguments(places, closed_url):
    paths, urls = places

    @fuzz(CLI_INPUTS, shrink=False)
    @given(argv=argvs(paths, urls), env=ENVS)
    @example(argv=["status", "x", "--base-url", "https://exa mple.com"], env={})
    @example(argv=["status", "x", "--base-url", "http://127.0.0.1:99999"], env={})
    @example(argv=["status", "x", "--base-url", "http://[::1"], env={})
    @example(argv=["status", "x"], env={"WANVID_BASE_URL": closed_url + "\n"})
    @example(argv=["status", "x"], env={"WANVID_MAX_RETRIES": "99999999999999999999"})
    @example(argv=["run", "cat.png", "-p", "x", "--poll-interval", "1e-9", "--timeout", "1"], env={})
    @example(argv=["run", "cat.png", "-o", "~nouser_wanvid/x.mp4"], env={})
    @example(argv=["run", "cat.png", "-o", "a" * 300 + ".mp4"], env={})
    @example(argv=["run", "fifo", "-p", "x"], env={})
    @example(argv=["batch", "fifo"], env={})
    @example(argv=["batch", "adir"], env={})
    @example(argv=["batch", ""], env={})
    @example(argv=["batch", "m.csv", "--results", "fifo"], env={})
    @example(argv=["wait", "x", "--timeout", "nan"], env={})
    @example(argv=["run", "cat.png", "--duration", "9" * 5000], env={})
    def run(argv: list[str], env: dict[str, str]) -> None:
        cli(argv, closed_url, env=env, stdin="")

    run()


@pytest.mark.parametrize("port", ["-1", "65536", "99999", "1e3", "nan"])
def test_sandbox_refuses_a_port_out_of_range(closed_url, port):
    r = cli(["sandbox", "--port", port], closed_url)
    assert r.exit_code == 2, r.stderr


# -- config.toml -----------------------------------------------------------------------------------

CONFIG_KEYS = ["api_key", "base_url", "protocol", "profile", "profiles", "default", "bucket", "upload_images"]


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _toml(value: Any) -> str:
    """``value`` as an inline TOML value (strings as JSON, which TOML's basic strings accept for ASCII)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else "inf"
            if value == float("inf")
            else "-inf"
            if value == -float("inf")
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"


_scalars = (
    st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.text(st.characters(codec="ascii", blacklist_characters="\x00"), max_size=20)
    | st.sampled_from([TEST_KEY, "native", "unified", "https://exa mple.com", "http://[::1", "s3://b"])
)
_values_toml = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(CONFIG_KEYS) | st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def configs(draw: Any) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:  # TOML-ish text: the syntax's own characters, shuffled
        return draw(st.text(st.sampled_from(list("[]=.\"'{},#\n abc_-19")), max_size=120)).encode()
    doc = draw(st.dictionaries(st.sampled_from(CONFIG_KEYS), _values_toml, max_size=4))
    lines = [f"{_toml_key(k)} = {_toml(v)}" for k, v in doc.items()]
    if kind == 3:  # the tables wanvid reads, holding whatever
        name = draw(st.sampled_from(["default", "x", "", "a.b"]))
        lines.append(f"[profiles.{_toml_key(name)}]")
        lines += [
            f"{_toml_key(k)} = {_toml(v)}"
            for k, v in draw(st.dictionaries(st.sampled_from(CONFIG_KEYS), _values_toml, max_size=4)).items()
        ]
    return "\n".join(lines).encode()


def test_fuzz_config_file(tmp_path, closed_url):
    @fuzz(CONFIG_INPUTS, shrink=False)
    @given(raw=configs())
    @example(raw=b"profiles = 1")
    @example(raw=b"[profiles]\ndefault = 1")
    @example(raw=b"[profiles.default]\napi_key = 1\nbase_url = [1]\nprotocol = {a = 1}")
    @example(raw=b"[profiles.default.api_key]\nx = 1")
    @example(raw=b"a = " + b"[" * 5000 + b"]" * 5000)
    @example(raw=f'[profiles.default]\napi_key = "{TEST_KEY}"\nbase_url = "https://exa mple.com"'.encode())
    @example(raw=b"\xff\xfe")
    def run(raw: bytes) -> None:
        with tempfile.TemporaryDirectory() as home:
            (Path(home) / "config.toml").write_bytes(raw)
            # No key in the environment: the file's own key is the one in play.
            env = {"WANVID_CONFIG_DIR": home, "WANVID_API_KEY": ""}
            for argv in (["config", "show"], ["status", "x"]):
                cli(argv, closed_url, env=env)

    run()


# -- manifests -------------------------------------------------------------------------------------

COLUMNS = ["image", "prompt", "output", "seed", "duration", "resolution", "model", "last_frame", "size", "row"]


@st.composite
def manifests(draw: Any, cat: str) -> tuple[str, bytes]:
    cells = (
        st.sampled_from([cat, "missing.png", "", "a cat", "-1", "nan", "1e400", "9" * 30, "720P", "../x.mp4"]) | _text()
    )
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.sampled_from(["m.csv", "m.jsonl", "m.txt"])), draw(st.binary(max_size=300))
    if kind == 1:  # CSV: known and unknown columns, duplicated ones, ragged rows, quotes
        header = draw(st.lists(st.sampled_from(COLUMNS) | _text(), min_size=1, max_size=5))
        rows = draw(st.lists(st.lists(cells, max_size=6), max_size=4))
        text = "\n".join(",".join(json.dumps(c) if draw(st.booleans()) else c for c in row) for row in [header, *rows])
        return "m.csv", text.encode("utf-8", "surrogateescape")
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | cells,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(COLUMNS) | _text(), inner, max_size=4)
        ),
        max_leaves=10,
    )
    rows = draw(st.lists(st.dictionaries(st.sampled_from(COLUMNS), json_values, max_size=5) | json_values, max_size=4))
    lines = [json.dumps(r, allow_nan=True) if not isinstance(r, str) else r for r in rows]
    if kind == 3:
        lines.append(draw(_text()))
    return "m.jsonl", "\n".join(lines).encode("utf-8", "surrogateescape")


def test_fuzz_manifests(tmp_path, closed_url):
    cat = tmp_path / "cat.png"
    Image.new("RGB", (832, 480), "teal").save(cat)

    @fuzz(MANIFEST_INPUTS, shrink=False)
    @given(manifest=manifests(str(cat)))
    @example(manifest=("m.csv", b"image,prompt\n" + f"{cat},".encode() + b"x" * 10_000_000))
    @example(manifest=("m.jsonl", b'{"image": ' + b"[" * 5000 + b"]" * 5000 + b"}"))
    @example(manifest=("m.jsonl", b'{"image": "x", "seed": ' + b"9" * 5001 + b"}"))
    @example(manifest=("m.csv", f"image,prompt,prompt\n{cat},a,b\n".encode()))
    def run(manifest: tuple[str, bytes]) -> None:
        name, raw = manifest
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / name
            path.write_bytes(raw)
            cli(["batch", str(path), "-d", f"{work}/out", "--stagger", "0", "--timeout", "1"], closed_url)

    run()


# -- media and the MP4 box parser ------------------------------------------------------------------

SAMPLE = sample_mp4()
HEAD = 2215  # ftyp (32) + moov (2175) + free (8): the sample's boxes before its mdat


def box(kind: bytes, body: bytes, size: int | None = None) -> bytes:
    return struct.pack(">I", len(body) + 8 if size is None else size) + kind + body


@st.composite
def mp4s(draw: Any) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:  # the sample with bytes of its headers flipped
        data = bytearray(SAMPLE)
        for at, value in draw(
            st.lists(st.tuples(st.integers(0, HEAD - 1), st.integers(0, 255)), min_size=1, max_size=8)
        ):
            data[at] = value
        return bytes(data)
    if kind == 2:  # the sample cut, or with bytes inserted into its headers
        at = draw(st.integers(0, HEAD))
        return SAMPLE[:at] + draw(st.binary(max_size=16)) + (SAMPLE[at:] if draw(st.booleans()) else b"")
    # Crafted: an ftyp and a moov of random children, with sizes that may lie.
    kinds = st.sampled_from([b"mvhd", b"trak", b"tkhd", b"mdia", b"hdlr", b"mdhd", b"mvex", b"mehd", b"free", b"udta"])
    leaf = st.builds(lambda k, b, s: box(k, b, s), kinds, st.binary(max_size=40), st.none() | st.integers(0, 2**32 - 1))
    tree = st.recursive(
        leaf,
        lambda inner: st.builds(lambda k, kids: box(k, b"".join(kids)), kinds, st.lists(inner, max_size=3)),
        max_leaves=8,
    )
    moov = box(b"moov", b"".join(draw(st.lists(tree, max_size=4))), draw(st.none() | st.integers(0, 2**32 - 1)))
    return box(b"ftyp", b"isom" + b"\0" * 12) + moov + draw(st.binary(max_size=16))


def test_fuzz_the_mp4_box_parser_raises_only_value_error():
    @fuzz(MP4_INPUTS)
    @given(data=mp4s())
    @example(data=box(b"ftyp", b"isom" + b"\0" * 12) + box(b"moov", box(b"mvhd", b"")))  # the crafted 32-byte file
    @example(data=box(b"ftyp", b"isom" + b"\0" * 12) + box(b"moov", box(b"mvhd", b"\1" + b"\0" * 3)))
    def run(data: bytes) -> None:
        for parse in (mp4.mp4_info, mp4.verify_mp4):
            with suppress(ValueError):
                parse(io.BytesIO(data))

    run()


def test_fuzz_media_inspection_raises_only_field_error(tmp_path):
    spec = spec_for("wan2.7-i2v")
    assert spec is not None
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)  # PCM, mono, 8 kHz, 16 bit
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + fmt + b"data"
    heads = st.sampled_from(
        [b"", b"RIFF\0\0\0\0WAVE", wav, b"ID3\4\0\0\0\0\0\0", b"\xff\xfb\x90\x00", b"\x89PNG\r\n\x1a\n"]
    )

    @fuzz(MEDIA_INPUTS)
    @given(data=st.one_of(mp4s(), st.builds(lambda h, t: h + t, heads, st.binary(max_size=200))))
    def run(data: bytes) -> None:
        path = tmp_path / "input"
        path.write_bytes(data)
        for inspect, rule in (
            (media.inspect_video, spec.video),
            (media.inspect_audio, spec.audio),
            (media.inspect_image, spec.image),
        ):
            for r in (rule, None):
                with suppress(FieldError):
                    inspect(path, r, "first_clip", "wan2.7-i2v")

    run()


# -- a hostile status on a terminal ----------------------------------------------------------------


def test_the_live_displays_take_server_text_as_text_not_markup(monkeypatch):
    """rich markup in a status word, a task id or a file name ("[/x]") was a MarkupError: exit 1 on a terminal."""
    import pty
    import sys

    from wanvid.cli.output import Output, _LiveBoard, _LiveDownload, _LivePoll
    from wanvid.rules.task import Status, Task

    master, replica = pty.openpty()
    terminal = open(replica, "w", encoding="utf-8")  # noqa: SIM115 - closed below, after the last write
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "100")

    task = Task(id="[/x]", protocol="native", status=Status.UNRECOGNIZED, raw_status="[/bold]")
    with _LivePoll("[/x]", None, 0) as view:
        view.update(task, 1.0)
    with _LiveDownload("[/x].mp4") as dl:
        dl.start(10)
        dl.advance(5)
    with _LiveBoard([(1, "[/x].png")]) as board:
        board.event(1, "[/bold]", task_id="[/x]")
        board.render()
    Output().table(("ID", "PROMPT"), [("[/x]", "[bold]a cat[/]")], [])  # `list` on a terminal
    terminal.close()
    shown = b""
    while chunk := _read_some(master):
        shown += chunk
    os.close(master)
    assert b"[/x]" in shown and b"[bold]a cat[/]" in shown


def _read_some(fd: int) -> bytes:
    import select

    if not select.select([fd], [], [], 0)[0]:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other end is closed and drained
        return b""


def test_an_answer_nested_deeper_than_the_stack_is_exit_6(gateway):  # noqa: F811 - the imported fixture
    """JSON nested past Python's recursion limit (well under the 1 MiB cap) was a RecursionError: exit 1."""
    deep = b'{"output": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    gateway.on("GET", "/aliyun/v1/tasks/t1", Answer(200, deep, {"Content-Type": "application/json"}))
    r = wv("status", "t1", "--protocol", "native")
    assert r.exit_code == 6 and "nested too deeply" in r.stderr, r.stderr


def test_a_json_error_about_an_argument_that_is_not_utf8_is_still_one_document(closed_url):
    """Found by the fuzz above: an argument holding bytes that are not UTF-8 (a surrogate in Python) crashed the
    --json error document with exit 1."""
    r = cli(["config", "unset", "--json", "", "\n}\udcff-"], closed_url)
    assert r.exit_code == 2 and "\\udcff" in r.stdout  # escaped: the document is valid UTF-8
    assert "\udcff" in json.loads(r.stdout)["error"]["message"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["status", "--profile", "\x1e\udcff\n\n", "--quiet"], "--profile"),  # found by the fuzz: exit 1 in SQLite
        (["create", "cat.png", "-p", "a\udcffb", "--dry-run"], "--prompt"),
        (["create", "cat.png", "--model", "\udcff", "--dry-run"], "--model"),
        (["status", "ab\udcff"], "TASK_ID"),
        (["config", "set-key", "--profile", "\udcff", "--stdin"], "--profile"),
    ],
)
def test_text_that_is_not_utf8_is_refused_by_name(closed_url, argv, named):
    r = cli(argv, closed_url, stdin="key\n")
    assert r.exit_code == 2 and f"{named} is not valid UTF-8 text (byte 0xff)" in r.stderr


def test_a_file_name_that_is_not_utf8_is_still_a_file_name(closed_url, tmp_path):
    r = cli(["create", str(tmp_path / "c\udcffat.png"), "-p", "x", "--dry-run"], closed_url)
    assert r.exit_code == 2 and "does not exist" in r.stderr  # looked for, not refused as text
