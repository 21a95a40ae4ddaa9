"""`wanvid batch` against a real sandbox: many rows, bounded concurrency, a shared 429 budget, reruns that
never pay twice, validation of the whole manifest, name templates, results and exit codes."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from PIL import Image
from referencing import Registry, Resource

from wanvid.gateway.client import Gate
from wanvid.jobs.batch import RowResult, worst
from wanvid.sandbox import Sandbox

from ..helpers import FAST_BATCH, ROOT, TEST_KEY, finish, on_a_terminal, run, start, wait_until, wv

SCHEMAS = ROOT / "docs" / "schema"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """Quicker tasks than conftest's (``gw`` uses this one): a batch runs many of them."""
    with Sandbox(queue_seconds=0.1, run_seconds=0.3) as sb:
        yield sb


def images(folder: Path, n: int) -> list[Path]:
    """``n`` different product shots (different bytes, so different requests)."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"shot{i:02d}.png"
        Image.new("RGB", (832, 480), (i * 5 % 256, 80, 120)).save(path)
        paths.append(path)
    return paths


def csv_manifest(path: Path, rows: list[dict[str, object]]) -> Path:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = [",".join(keys)] + [",".join(str(row.get(k, "")) for k in keys) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def results(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def validator(name: str) -> Draft202012Validator:
    registry: Registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()))) for p in SCHEMAS.glob("*.json")
    )
    return Draft202012Validator(json.loads((SCHEMAS / name).read_text()), registry=registry)


def creates(sb: Sandbox) -> int:
    """Tasks the sandbox made (a create answered 429 made none)."""
    return sb.stats()["creates"]


# -- the acceptance tests ----------------------------------------------------------------


def test_many_rows_under_rate_limiting_all_saved_within_the_concurrency(gw, tmp_path):
    rows = 24  # six rounds of the 4 workers: enough for the limit and the burst to bite
    gw.faults.rate_limit = 25  # API requests per second, all clients together: 429 + Retry-After above it
    gw.faults.throttle, gw.faults.retry_after = 6, 0.3  # and a burst of 429s, whatever the machine's pace
    shots = images(tmp_path / "shots", rows)
    manifest = csv_manifest(tmp_path / "shots.csv", [{"image": f"shots/{p.name}", "prompt": "spin"} for p in shots])
    r = wv(
        "batch",
        str(manifest),
        "-d",
        "out",
        "--concurrency",
        "4",
        "--json",
        "--poll-interval",
        "0.25",
        "--stagger",
        "0.02",
    )
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    validator("batch.json").validate(doc)
    assert doc["summary"]["saved"] == rows and doc["exit_code"] == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == [f"{p.stem}.mp4" for p in shots]
    stats = gw.stats()
    assert stats["throttled"] > 0  # the limit really bit
    assert stats["creates"] == rows  # and no row was paid for twice
    assert stats["max_active_tasks"] <= 4 and stats["max_in_flight"] <= 4
    lines = results(tmp_path / "out" / "shots.results.jsonl")
    assert [line["row"] for line in lines] == list(range(1, rows + 1))
    row_schema = validator("batch-row.json")
    for line in lines:
        row_schema.validate(line)


def test_interrupted_batch_rerun_pays_no_row_twice(sandbox, tmp_path):
    shots = images(tmp_path / "shots", 12)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": f"shots/{p.name}"} for p in shots])
    env = {"WANVID_DATA_DIR": str(tmp_path / "data")}
    sandbox.run_seconds = 1.5  # rows are still running when Ctrl-C comes
    cmd = ["batch", str(manifest), "-d", str(tmp_path / "out"), "-j", "3", "--json", *FAST_BATCH]
    proc = start(*cmd, sb=sandbox, env=env)
    out_file = tmp_path / "out" / "m.results.jsonl"

    def saved() -> int:
        return len(out_file.read_text().splitlines()) if out_file.exists() else 0

    def running() -> int:  # rows whose task the gateway made and the batch is polling
        return sum(1 for t in sandbox.tasks() if t["polls"] and t["status"] in ("PENDING", "RUNNING"))

    # Ctrl-C once some rows are saved and a fresh wave of rows has been submitted and is running
    wait_until(lambda: saved() >= 3 and running() == 3, "a wave of three rows running after three saved")
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(proc, timeout=30)
    assert code == 130, stderr
    first = json.loads(stdout)
    states = {row["status"] for row in first["rows"]}
    assert "interrupted" in states and "not_started" in states and "saved" in states
    assert all(row["error"]["exit_code"] == 130 for row in first["rows"] if row["status"] == "not_started")
    interrupted = [row for row in first["rows"] if row["status"] == "interrupted"]
    assert all(row["task_id"] and "resume with" in row["error"]["hint"] for row in interrupted)
    paid = creates(sandbox)
    assert paid < 12

    sandbox.run_seconds = 0.3
    again = run(*cmd, sb=sandbox, env=env)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    by_row = {row["row"]: row for row in second["rows"]}
    assert creates(sandbox) == 12  # each row paid for exactly once over both runs
    for row in first["rows"]:
        if row["status"] == "saved":
            assert by_row[row["row"]]["status"] == "already_saved"
        if row["status"] == "interrupted":
            assert by_row[row["row"]]["task_id"] == row["task_id"] and by_row[row["row"]]["reused"] is True
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == [f"{p.stem}.mp4" for p in shots]


def test_every_invalid_row_is_listed_and_nothing_is_sent(gw, tmp_path):
    shots = images(tmp_path, 3)
    manifest = csv_manifest(
        tmp_path / "m.csv",
        [
            {"image": shots[0].name, "duration": "5"},
            {"image": "missing.png", "duration": "5"},
            {"image": shots[1].name, "duration": "99"},
            {"image": shots[2].name, "duration": "five"},
            {"image": shots[2].name, "duration": "10"},
        ],
    )
    r = wv("batch", str(manifest), *FAST_BATCH)
    assert r.exit_code == 2
    assert gw.requests() == []  # nothing sent, not even for the valid rows
    listed = [line for line in r.stderr.splitlines() if line.startswith("row ")]
    assert [line.split(":")[0] for line in listed] == ["row 2", "row 3", "row 4"]
    assert "missing.png" in listed[0] and "duration" in listed[1] and "'five' is not a whole number" in listed[2]
    assert "3 of 5 row(s)" in r.stderr and "--skip-invalid" in r.stderr

    r = wv("batch", str(manifest), "--skip-invalid", "--json", *FAST_BATCH)
    assert r.exit_code == 2  # not every row succeeded
    doc = json.loads(r.stdout)
    validator("batch.json").validate(doc)
    assert [row["status"] for row in doc["rows"]] == ["saved", "invalid", "invalid", "invalid", "saved"]
    assert creates(gw) == 2


def test_invalid_manifest_json_lists_rows(gw, tmp_path):
    images(tmp_path, 1)
    (tmp_path / "m.jsonl").write_text(
        '{"image": "shot00.png", "seed": 1}\nnot json\n[1]\n{"image": "shot00.png", "sede": 2}\n'
    )
    r = wv("batch", "m.jsonl", "--json")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["error"]["exit_code"] == 2
    assert [row["row"] for row in doc["rows"]] == [2, 3, 4]
    assert (
        "not valid JSON" in doc["rows"][0]["problems"][0] and "unknown column 'sede'" in doc["rows"][2]["problems"][0]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("image,promt\ncat.png,x\n", "unknown column 'promt'"),
        ("", "has no header row"),
        ("image,prompt\n", "has no rows"),
    ],
)
def test_manifest_level_errors(gw, tmp_path, content, message):
    (tmp_path / "m.csv").write_text(content)
    r = wv("batch", "m.csv")
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert gw.requests() == []


def test_missing_manifest_is_a_usage_error(gw):
    r = wv("batch", "nope.csv")
    assert r.exit_code == 2 and "manifest nope.csv does not exist" in r.stderr


# -- names, defaults, results --------------------------------------------------------------------


def test_command_line_options_are_defaults_rows_override_them(gw, tmp_path):
    shots = images(tmp_path, 2)
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"image": shots[0].name, "prompt": "left"})
        + "\n"
        + json.dumps({"image": shots[1].name, "prompt": "right", "duration": 10, "seed": "7", "watermark": "yes"})
        + "\n"
    )
    r = wv("batch", "m.jsonl", "--model", "wan2.6-i2v", "--duration", "5", "--seed", "3", *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    bodies = sorted((q.json for q in gw.requests() if q.method == "POST"), key=lambda b: b["input"]["prompt"])
    assert [b["model"] for b in bodies] == ["wan2.6-i2v", "wan2.6-i2v"]
    assert bodies[0]["parameters"]["duration"] == 5 and bodies[0]["parameters"]["seed"] == 3
    assert bodies[1]["parameters"]["duration"] == 10 and bodies[1]["parameters"]["seed"] == 7
    assert bodies[1]["parameters"]["watermark"] is True and "watermark" not in bodies[0]["parameters"]


def test_name_template_fields_and_collisions(gw, tmp_path):
    shot = images(tmp_path, 1)[0]
    rows = [{"image": shot.name, "seed": s} for s in (1, 2)]
    manifest = csv_manifest(tmp_path / "m.csv", rows)
    r = wv("batch", str(manifest), "--name", "{stem}.mp4", *FAST_BATCH)
    assert r.exit_code == 2 and "row 2: writes the same file as row 1 (shot00.mp4); put {row} in --name" in r.stderr
    r = wv("batch", str(manifest), "--name", "{stem}-{colour}.mp4")
    assert r.exit_code == 2 and "unknown field {colour}" in r.stderr
    r = wv("batch", str(manifest), "--name", "../{stem}.mp4")
    assert r.exit_code == 2 and "must be a file name" in r.stderr
    r = wv("batch", str(manifest), "--name", "{row}-{stem}-{seed}-{model}.mp4", "-d", "v", *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "v").glob("*.mp4")) == [
        "1-shot00-1-wan2.7-i2v.mp4",
        "2-shot00-2-wan2.7-i2v.mp4",
    ]
    assert creates(gw) == 2


def test_task_id_names_are_found_again_on_rerun(gw, tmp_path):
    shots = images(tmp_path, 2)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
    r = wv("batch", str(manifest), "--name", "{task_id}.mp4", "-q", *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    saved = r.stdout.split()
    ids = sorted(q.path.rsplit("/", 1)[-1] for q in gw.requests() if q.method == "GET" and "/tasks/" in q.path)
    assert {Path(p).stem for p in saved} <= set(ids) and len(saved) == 2
    r = wv("batch", str(manifest), "--name", "{task_id}.mp4", "--json", *FAST_BATCH)
    assert r.exit_code == 0 and creates(gw) == 2
    assert [row["status"] for row in json.loads(r.stdout)["rows"]] == ["already_saved", "already_saved"]


def test_output_column_and_existing_files(gw, tmp_path):
    shots = images(tmp_path, 2)
    manifest = csv_manifest(
        tmp_path / "m.csv", [{"image": shots[0].name, "output": "hero.mp4"}, {"image": shots[1].name}]
    )
    (tmp_path / "shot01.mp4").write_bytes(b"not ours")
    r = wv("batch", str(manifest), *FAST_BATCH)
    assert r.exit_code == 2 and "row 2: output" in r.stderr and "already exists" in r.stderr
    assert (tmp_path / "shot01.mp4").read_bytes() == b"not ours"
    r = wv("batch", str(manifest), "--force", *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "hero.mp4").stat().st_size > 1000 and (tmp_path / "shot01.mp4").stat().st_size > 1000


def test_failed_rows_give_the_worst_exit_code_and_the_others_still_run(gw, tmp_path):
    shots = images(tmp_path, 3)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
    gw.faults.fail_code, gw.faults.fail_message = "DataInspectionFailed", "inappropriate content"
    r = wv("batch", str(manifest), "--json", *FAST_BATCH)
    assert r.exit_code == 3
    doc = json.loads(r.stdout)
    validator("batch.json").validate(doc)
    assert doc["summary"]["failed"] == 3 and doc["exit_code"] == 3
    assert all("DataInspectionFailed" in row["error"]["message"] for row in doc["rows"])


def test_an_auth_failure_stops_starting_rows(tmp_path, monkeypatch):
    with Sandbox(queue_seconds=0.1, run_seconds=0.3, api_key="the-right-key-123") as sb:
        monkeypatch.setenv("WANVID_BASE_URL", sb.url)
        monkeypatch.setenv("WANVID_API_KEY", TEST_KEY)
        shots = images(tmp_path, 8)
        manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
        r = wv("batch", str(manifest), "-j", "2", "--json", *FAST_BATCH)
        assert r.exit_code == 4
        doc = json.loads(r.stdout)
        assert doc["summary"]["not_started"] >= 5  # only the rows already started tried at all
        assert len(sb.requests()) <= 2


def test_worst_ranks_failure_classes():
    def rows(*codes: int) -> list[RowResult]:
        return [RowResult(i, "error", error={"exit_code": c} if c else None) for i, c in enumerate(codes)]

    assert worst(rows(0, 0)) == 0
    assert worst(rows(0, 3, 2)) == 3  # a failed task outranks an invalid row
    assert worst(rows(3, 6, 5)) == 6  # the network outranks single tasks
    assert worst(rows(6, 4)) == 4  # the account outranks the network
    assert worst(rows(4, 130)) == 130  # an interrupted batch is unfinished whatever else happened


def test_on_complete_runs_per_row_with_the_row_in_the_environment(gw, tmp_path):
    shots = images(tmp_path, 3)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
    log = tmp_path / "hook.log"
    hook = f'echo "$WANVID_ROW $WANVID_TASK_ID $WANVID_OUTPUT" >> {log}; echo hello-from-hook'
    r = wv("batch", str(manifest), "--on-complete", hook, "-q", *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    lines = sorted(log.read_text().splitlines())
    assert [line.split()[0] for line in lines] == ["1", "2", "3"]
    assert all(Path(line.split()[2]).is_file() for line in lines)
    assert "hello-from-hook" in r.stderr and "hello-from-hook" not in r.stdout


# -- the live table and the shared budget ------------------------------------------------------


def test_live_table_on_a_terminal(sandbox, tmp_path):
    shots = images(tmp_path / "s", 3)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": f"s/{p.name}"} for p in shots])
    env = {"WANVID_BASE_URL": sandbox.url, "WANVID_API_KEY": TEST_KEY, "WANVID_DATA_DIR": str(tmp_path / "d")}
    out, screen = on_a_terminal(["batch", str(manifest), "-d", str(tmp_path / "o"), *FAST_BATCH], env)
    assert "\x1b[" in screen and "ROW" in screen and "DOWNLOAD" in screen and "3/3 done" in screen
    assert "row=1" not in screen  # no plain lines on a terminal
    assert out.count("saved") == 3


def test_gate_shares_a_429_and_spaces_creates():
    # Each thread keeps its own virtual time, which only its sleeps move: the figures are the Gate's
    # schedule, not how late a loaded machine woke a thread (real wake-ups made this flaky under xdist).
    local = threading.local()

    def clock() -> float:
        return getattr(local, "now", 0.0)

    def sleep(seconds: float) -> None:
        local.now = clock() + seconds

    gate = Gate(spacing=0.2, clock=clock)
    gate.hold(0.3)
    started: list[float] = []
    t0 = clock()

    def worker() -> None:
        gate.wait(sleep)
        started.append(clock() - t0)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert min(started) >= 0.29  # nobody went through the hold
    assert max(started) - min(started) >= 0.19  # and they left one by one (RELEASE_GAP apart)
    local.now = t0 + max(started)  # the main thread joined the workers: its time is where theirs ended
    t0 = clock()
    for _ in range(3):
        gate.wait(sleep, create=True)
    assert clock() - t0 >= 0.39  # three creates: two gaps of 0.2 s


# -- from the independent review ---------------------------------------------------------------


def test_a_tight_rate_limit_slows_the_batch_but_loses_no_row(gw, tmp_path):
    gw.faults.rate_limit = 4  # far below what 8 workers polling every 0.3 s would send
    shots = images(tmp_path, 10)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
    r = wv("batch", str(manifest), "-j", "8", "--json", "--poll-interval", "0.3", "--stagger", "0")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0, [row["error"] for row in doc["rows"] if row["error"]]
    assert doc["summary"]["saved"] == 10 and gw.stats()["throttled"] > 0 and creates(gw) == 10


def test_row_errors_never_carry_the_key(gw, tmp_path):
    gw.faults.fail_code, gw.faults.fail_message = "Echo", f"your key {TEST_KEY} is not allowed here"
    shots = images(tmp_path, 2)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
    r = wv("batch", str(manifest), *FAST_BATCH)  # wv fails the test if the key reaches stdout or stderr
    assert r.exit_code == 3 and "your key **** is not allowed" in r.stdout + r.stderr
    text = (tmp_path / "m.results.jsonl").read_text()
    assert TEST_KEY not in text and "****" in text


def test_csv_cells_keep_their_newlines_and_whole_floats_are_numbers(gw, tmp_path):
    images(tmp_path, 1)
    (tmp_path / "m.csv").write_text('image,prompt,duration\nshot00.png,"line one\nline two",5.0\n')
    r = wv("batch", "m.csv", *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    (body,) = [q.json for q in gw.requests() if q.method == "POST"]
    assert body["input"]["prompt"] == "line one\nline two" and body["parameters"]["duration"] == 5


def test_templates_that_cannot_be_filled_are_row_problems_not_crashes(gw, tmp_path):
    shots = images(tmp_path, 2)
    manifest = csv_manifest(
        tmp_path / "m.csv", [{"image": shots[0].name, "output": "clip {final}.mp4"}, {"image": shots[1].name}]
    )
    r = wv("batch", str(manifest), "--name", "{stem:d}.mp4")
    assert r.exit_code == 2 and "unexpected" not in r.stderr
    assert "row 1: output uses unknown field {final}" in r.stderr and "row 2: cannot fill in the name" in r.stderr
    assert gw.requests() == []
    r = wv("batch", str(manifest), "--name", "{task_id:.8}.mp4", "-q", "--skip-invalid", *FAST_BATCH)
    assert r.exit_code == 2  # row 1 is still invalid
    (saved,) = r.stdout.split()
    assert len(Path(saved).stem) == 8


def test_an_error_after_paying_keeps_the_task_and_the_file_in_the_results(gw, tmp_path):
    shots = images(tmp_path, 1)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": shots[0].name}])
    (tmp_path / "shot00.mp4.json").mkdir()  # the sidecar cannot be written
    r = wv("batch", str(manifest), "--json", *FAST_BATCH)
    (row,) = json.loads(r.stdout)["rows"]
    assert r.exit_code != 0 and row["status"] == "error"
    assert row["task_id"] and row["output"] == str(tmp_path / "shot00.mp4")


def test_a_rerun_finds_saved_rows_however_the_directory_is_spelt(gw, tmp_path):
    shots = images(tmp_path, 2)
    manifest = csv_manifest(tmp_path / "m.csv", [{"image": p.name} for p in shots])
    (tmp_path / "sub").mkdir()
    assert wv("batch", str(manifest), "-d", "out", *FAST_BATCH).exit_code == 0
    r = wv("batch", str(manifest), "-d", "sub/../out/", "--json", *FAST_BATCH)
    assert r.exit_code == 0 and {row["status"] for row in json.loads(r.stdout)["rows"]} == {"already_saved"}
    assert creates(gw) == 2


def test_results_may_not_overwrite_the_manifest(gw, tmp_path):
    images(tmp_path, 1)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"image": "shot00.png"}\n')
    r = wv("batch", "m.jsonl", "--results", "m.jsonl")
    assert r.exit_code == 2 and "is the manifest" in r.stderr
    assert manifest.read_text() == '{"image": "shot00.png"}\n' and gw.requests() == []
