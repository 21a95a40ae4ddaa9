"""Hostile inputs to the CLI's own files and arguments (issue 13): manifests that are FIFOs, devices, huge
or deeply nested; results files that are planted links, devices or full; a task id with control
characters; options out of range. Each ends with its documented exit code and one line, never exit 1,
never a hang, and nothing sent or paid for."""

from __future__ import annotations

import json
import os
import resource
import signal
import threading
from pathlib import Path

import pytest
from PIL import Image

from wanvid.jobs.batch import ResultsFile, RowResult
from wanvid.rules.manifest import MAX_BYTES, MAX_CELL
from wanvid.sandbox import Sandbox

from ..helpers import FAST, finish, gateway_env, run, start, wv


@pytest.fixture
def env(gw: Sandbox) -> dict[str, str]:
    return gateway_env(gw)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


# -- the manifest: not a regular file, too big, hostile content ----------------------------------


def test_a_fifo_manifest_is_refused_at_once_in_process(gw, isolated):
    fifo = isolated / "rows.csv"
    os.mkfifo(fifo)
    got: dict[str, object] = {}
    worker = threading.Thread(target=lambda: got.update(r=wv("batch", str(fifo))))
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # it blocks on the FIFO: give it a writer so the thread ends, then fail
        os.close(os.open(fifo, os.O_WRONLY))
        worker.join()
        pytest.fail("wanvid batch blocked on a FIFO manifest")
    r = got["r"]
    assert r.exit_code == 2 and "rows.csv is not a regular file" in one_line(r.stderr)  # type: ignore[attr-defined]
    assert gw.requests() == []


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_fifo_or_a_device_manifest_ends_a_real_process(env, gw, isolated, kind):
    manifest = isolated / "rows.csv"
    os.mkfifo(manifest) if kind == "fifo" else manifest.symlink_to("/dev/zero")
    proc = run("batch", str(manifest), env=env)
    assert proc.returncode == 2 and "is not a regular file" in one_line(proc.stderr) and gw.requests() == []


def test_a_manifest_over_the_size_cap_is_refused_unread(gw, isolated):
    manifest = isolated / "rows.csv"
    with manifest.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no disk used, and not read
    r = wv("batch", str(manifest))
    assert r.exit_code == 2 and f"is {MAX_BYTES + 1:,} bytes" in one_line(r.stderr) and gw.requests() == []


@pytest.fixture
def shot(isolated: Path) -> Path:
    Image.new("RGB", (832, 480), "teal").save(isolated / "shot.png")
    return isolated / "shot.png"


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("big.csv", "image,prompt\nshot.png," + "x" * 10_000_000 + "\n", "prompt: the cell has 10,000,000 characters"),
        ("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
        ("deep-value.jsonl", '{"image": "shot.png", "prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested"),
        ("digits.jsonl", '{"image": "shot.png", "seed": ' + "7" * 5001 + "}\n", "number wanvid cannot read"),
        ("overflow.jsonl", '{"image": "shot.png", "seed": ' + "7" * 400 + "}\n", "seed: 777"),
        ("digits.csv", "image,seed\nshot.png," + "7" * 5001 + "\n", "seed: '777"),
        ("twice.jsonl", '{"image": "shot.png", "prompt": "a", "prompt": "b"}\n', "has the key 'prompt' twice"),
        ("cased.jsonl", '{"image": "shot.png", "prompt": "a", "Prompt": "b"}\n', "sets prompt twice"),
        ("nouser.csv", "image,prompt\n~no-such-user-here/shot.png,x\n", "names no user on this machine"),
    ],
)
def test_hostile_manifest_content_is_a_row_problem(gw, shot, name, text, problem):
    Path(name).write_text(text)
    r = wv("batch", name, "--json")
    assert r.exit_code == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["rows"][0]["row"] == 1 and problem in doc["rows"][0]["problems"][0]
    assert len(r.stdout) < 2_000  # no cell is echoed whole
    assert gw.requests() == []


def test_a_cell_just_under_the_bound_reaches_validation(gw, shot):
    Path("m.csv").write_text("image,prompt\nshot.png," + "x" * MAX_CELL + "\n")
    r = wv("batch", "m.csv", "--json")
    assert r.exit_code == 2 and "characters; wan2.7-i2v takes at most 5000" in r.stdout and gw.requests() == []


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("image,prompt,prompt", "column 2 ('prompt') and column 3 ('prompt')"),
        ("image,Prompt,seed,prompt", "column 2 ('Prompt') and column 4 ('prompt')"),
        ("image,negative-prompt,negative_prompt", "'negative_prompt' twice: column 2"),
    ],
)
def test_a_column_twice_refuses_the_manifest_before_anything_is_paid(gw, shot, header, said):
    cells = {"image": "shot.png", "seed": "1"}
    Path("m.csv").write_text(f"{header}\n" + ",".join(cells.get(h, "a cat") for h in header.split(",")) + "\n")
    r = wv("batch", "m.csv")
    assert r.exit_code == 2 and said in one_line(r.stderr) and "m.csv" in r.stderr
    assert gw.requests() == []


# -- the results file ----------------------------------------------------------------------------


@pytest.fixture
def invalid_rows(isolated: Path) -> Path:
    """A manifest whose one row is invalid: with --skip-invalid the batch writes its results and sends nothing."""
    (isolated / "m.csv").write_text("image,prompt\nmissing.png,x\n")
    return isolated / "m.csv"


def test_a_link_planted_at_the_old_temporary_name_is_not_followed(gw, invalid_rows, isolated):
    victim = isolated / "victim.txt"
    victim.write_text("precious\n")
    (isolated / "m.results.jsonl.tmp").symlink_to(victim)
    r = wv("batch", str(invalid_rows), "--skip-invalid")
    assert r.exit_code == 2 and victim.read_text() == "precious\n"
    assert [json.loads(line)["status"] for line in (isolated / "m.results.jsonl").read_text().splitlines()] == [
        "invalid"
    ]
    assert [p.name for p in isolated.iterdir() if p.name.endswith(".tmp")] == ["m.results.jsonl.tmp"]


@pytest.mark.parametrize("target", ["link", "/dev/full", "directory"])
def test_a_results_path_that_is_not_a_regular_file_is_refused_before_anything_is_sent(
    gw, invalid_rows, isolated, target
):
    victim = isolated / "victim.txt"
    victim.write_text("precious\n")
    results = isolated / "r.jsonl"
    if target == "link":
        results.symlink_to(victim)
    elif target == "directory":
        results.mkdir()
    else:
        results = Path(target)
    r = wv("batch", str(invalid_rows), "--skip-invalid", "--results", str(results))
    assert r.exit_code == 2 and f"the results file {results} is" in one_line(r.stderr)
    assert victim.read_text() == "precious\n" and gw.requests() == []


def _file_size_limit() -> None:
    """In the child: files may not grow past 100 bytes, and the write fails with EFBIG (like a full disk)
    instead of the process being killed by SIGXFSZ."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))


def test_no_space_for_the_results_file_is_exit_8(env, gw, invalid_rows, isolated):
    proc = run("batch", str(invalid_rows), "--skip-invalid", env=env, preexec_fn=_file_size_limit)
    assert proc.returncode == 8, proc.stderr
    assert "no space left on the device for the results file" in one_line(proc.stderr)
    assert not [p for p in isolated.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind


def _row(n: int, status: str = "saved") -> RowResult:
    return RowResult(n, status, f"task-{n}", f"/videos/{n}.mp4")


def test_two_batches_sharing_a_results_file_keep_it_whole(isolated):
    path = isolated / "shared.results.jsonl"
    first = ResultsFile(path)
    first.add(_row(1))
    second = ResultsFile(path)  # a second batch starts while the first runs
    second.add(_row(1, "already_saved"))
    first.add(_row(2))  # appended, not written at the first batch's old offset over the second's lines
    assert [json.loads(line)["row"] for line in path.read_text().splitlines()] == [1, 2]
    first.close([_row(1), _row(2)])
    second.close([_row(1, "already_saved"), _row(2, "already_saved")])
    assert [json.loads(line)["status"] for line in path.read_text().splitlines()] == ["already_saved"] * 2
    assert [p.name for p in isolated.iterdir() if "shared" in p.name] == [path.name]  # no temporary left
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # as open() would have made it


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_two_concurrent_batches_of_one_manifest_both_end_with_every_row_saved(isolated):
    for i in range(4):
        Image.new("RGB", (832, 480), (i * 40, 80, 120)).save(isolated / f"s{i}.png")
    (isolated / "m.csv").write_text("image,prompt\n" + "".join(f"s{i}.png,spin\n" for i in range(4)))
    with Sandbox(queue_seconds=0.1, run_seconds=0.3) as sb:
        args = ["batch", "m.csv", "-d", "out", "--json", *FAST, "--stagger", "0"]
        procs = [start(*args, sb=sb), start(*args, sb=sb)]
        ends = [finish(p) for p in procs]
        creates = sb.stats()["creates"]
    for code, out, err in ends:
        assert code == 0, err
        assert {row["status"] for row in json.loads(out)["rows"]} <= {"saved", "already_saved"}
    lines = [json.loads(line) for line in (isolated / "out" / "m.results.jsonl").read_text().splitlines()]
    assert [row["row"] for row in lines] == [1, 2, 3, 4]
    assert {row["status"] for row in lines} <= {"saved", "already_saved"} and creates == 4


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e-9", "0.05", "0.099"])
def test_a_poll_interval_under_the_floor_is_refused_before_anything_is_sent(gw, cat, value):
    r = wv("run", str(cat), "--poll-interval", value)
    assert r.exit_code == 2 and "--poll-interval must be a number of seconds, 0.1 or more" in one_line(r.stderr)
    assert gw.requests() == []


def test_an_output_of_an_unknown_user_is_exit_2(gw, cat):
    for args in (
        ["run", str(cat), "-o", "~no-such-user-here/out.mp4"],
        ["download", "t1", "-o", "~no-such-user-here/"],
    ):
        r = wv(*args)
        assert r.exit_code == 2 and "~no-such-user-here names no user on this machine" in one_line(r.stderr)
    for flag in ("--output-dir", "--results"):
        Path("m.csv").write_text(f"image\n{cat}\n")
        r = wv("batch", "m.csv", flag, "~no-such-user-here/x")
        said = one_line(r.stderr)
        assert r.exit_code == 2 and f"{flag} '~no-such-user-here/x': ~no-such-user-here names no user" in said
    assert gw.requests() == []


def test_a_file_name_too_long_for_the_file_system_is_refused_before_paying(gw, cat, isolated):
    r = wv("run", str(cat), "-o", "x" * 300 + ".mp4")
    assert r.exit_code == 2 and "output file name xxxx" in one_line(r.stderr) and "is 304 bytes" in r.stderr
    Path("m.csv").write_text(f"image,output\n{cat},{'z' * 300}.mp4\n")
    r = wv("batch", "m.csv", "--json")
    assert r.exit_code == 2 and "is 304 bytes" in json.loads(r.stdout)["rows"][0]["problems"][0]
    assert gw.requests() == []
    # The longest name that leaves room for the .part, the .json and the sidecar's temporary is taken.
    room = os.pathconf(isolated, "PC_NAME_MAX") - 19
    assert wv("download", "no-such-task", "-o", "y" * (room + 1 - 4) + ".mp4").exit_code == 2
    assert gw.requests() == []
    assert wv("download", "no-such-task", "-o", "y" * (room - 4) + ".mp4").exit_code == 5  # asked: not found
    assert len(gw.requests()) == 1


@pytest.mark.parametrize("port", ["-1", "65536", "99999"])
def test_sandbox_port_out_of_range_is_exit_2(port):
    r = wv("sandbox", f"--port={port}")
    assert r.exit_code == 2 and f"--port must be from 0 to 65535, not {port}" in one_line(r.stderr)


@pytest.mark.parametrize(
    "args", [["--queue-seconds", "nan"], ["--run-seconds", "-1"], ["--ttl-seconds", "0"], ["--throttle", "-1"]]
)
def test_sandbox_timings_and_faults_out_of_range_are_exit_2(args):
    proc = run("sandbox", "--port", "0", *args, env={}, timeout=20)  # a process: a sandbox that starts never ends
    assert proc.returncode == 2 and args[0] in one_line(proc.stderr) and proc.stdout == ""


@pytest.mark.parametrize(
    ("task_id", "said"),
    [
        ("a\x00b", r"'a\x00b': it contains spaces or unprintable characters"),
        ("a\nb", r"'a\nb': it contains spaces or unprintable characters"),
        ("a\x1b]0;x\x07", "unprintable characters"),
        ("a b", "contains spaces"),
        ("..", "path segment"),
        (".", "path segment"),
        ("../tasks/x", "contains a slash"),
        ("a\\b", "contains a slash"),
        ("x" * 201, "longer than 200 characters"),
        ("", "is empty"),
    ],
)
@pytest.mark.parametrize("command", ["download", "status", "wait"])
def test_a_task_id_that_cannot_be_an_id_is_refused_before_any_request(gw, isolated, task_id, said, command):
    hook = ["--on-complete", f"touch {isolated / 'hooked'}"] if command == "download" else []
    r = wv(command, task_id, *hook)
    assert r.exit_code == 2 and said in one_line(r.stderr) and "\n" not in r.stderr.rstrip("\n")
    assert gw.requests() == [] and not (isolated / "hooked").exists() and r.stdout == ""


def test_a_task_id_with_a_newline_is_refused_by_a_real_process(env, gw):
    proc = run("status", "abc\nerror: forged", "--json", env=env)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["exit_code"] == 2
    assert not any(line.startswith("error: forged") for line in proc.stderr.splitlines()) and gw.requests() == []
