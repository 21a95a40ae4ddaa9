"""`wanvid batch --dry-run` (the plan, nothing sent), `--new`, and what an interrupted batch says: the rows
it stopped are "interrupted" / "not started", never "failed", and the command that resumes it is printed."""

from __future__ import annotations

import json
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from PIL import Image
from referencing import Registry, Resource

from wanvid.sandbox import Sandbox

from ..helpers import FAST_BATCH, ROOT, finish, run, start, wait_until, wv


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(queue_seconds=0.1, run_seconds=0.3) as sb:
        yield sb


def shots(folder: Path, n: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"shot{i:02d}.png"
        Image.new("RGB", (832, 480), (i * 7 % 256, 90, 30)).save(path)
        paths.append(path)
    return paths


def manifest(tmp_path: Path, n: int, durations: dict[int, int] | None = None) -> Path:
    lines = ["image,duration"] + [
        f"s/{p.name},{(durations or {}).get(i, '')}" for i, p in enumerate(shots(tmp_path / "s", n))
    ]
    path = tmp_path / "m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def valid(doc: object) -> None:
    folder = ROOT / "docs" / "schema"
    registry: Registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()))) for p in folder.glob("*.json")
    )
    Draft202012Validator({"$ref": "batch-plan.json"}, registry=registry).validate(doc)


def plan(m: Path, out: Path, *extra: str) -> dict:
    r = wv("batch", str(m), "-d", str(out), "--dry-run", "--json", *extra)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    valid(doc)
    return doc


def test_dry_run_prints_the_plan_and_sends_nothing(gw, tmp_path):
    m = manifest(tmp_path, 3, {0: 10, 2: 3})
    out = tmp_path / "out"
    human = wv("batch", str(m), "-d", str(out), "--dry-run")
    assert human.exit_code == 0, human.stderr
    assert "create" in human.stdout and "total" in human.stdout and str(out / "shot00.mp4") in human.stdout
    assert "18 s of video billed" in human.stderr  # 10 + the model's default 5 + 3
    doc = plan(m, out)
    assert [r["action"] for r in doc["rows"]] == ["create"] * 3
    assert [r["seconds"] for r in doc["rows"]] == [10, 5, 3]
    assert [r["output"] for r in doc["rows"]] == [str(out / f"shot{i:02d}.mp4") for i in range(3)]
    summary = {"rows": 3, "create": 3, "reuse": 0, "already_saved": 0, "invalid": 0, "billed_seconds": 18}
    assert doc["summary"] == summary
    assert gw.requests() == [] and not out.exists()  # nothing sent, nothing written


def test_dry_run_after_a_batch_shows_what_is_saved_reused_or_new(gw, tmp_path):
    m = manifest(tmp_path, 3)
    out = tmp_path / "out"
    first = json.loads(wv("batch", str(m), "-d", str(out), "--json", *FAST_BATCH).stdout)
    ids = [r["task_id"] for r in first["rows"]]
    (out / "shot01.mp4").unlink()  # its task is live in the journal: a rerun reuses it
    asked = len(gw.requests())

    doc = plan(m, out)
    assert [(r["action"], r["task_id"]) for r in doc["rows"]] == [
        ("already_saved", ids[0]),
        ("reuse", ids[1]),
        ("already_saved", ids[2]),
    ]
    assert doc["summary"]["billed_seconds"] == 0
    fresh = plan(m, out, "--new")
    assert [r["action"] for r in fresh["rows"]] == ["already_saved", "create", "already_saved"]
    assert fresh["summary"]["billed_seconds"] == 5
    assert len(gw.requests()) == asked


def test_new_pays_for_fresh_tasks_where_a_rerun_reuses(gw, tmp_path):
    m = manifest(tmp_path, 2)
    out = tmp_path / "out"
    cmd = ["batch", str(m), "-d", str(out), "--json", *FAST_BATCH]
    first = json.loads(wv(*cmd).stdout)
    for video in out.glob("*.mp4"):
        video.unlink()
    again = json.loads(wv(*cmd).stdout)
    assert gw.stats()["creates"] == 2 and all(r["reused"] for r in again["rows"])
    for video in out.glob("*.mp4"):
        video.unlink()
    fresh = json.loads(wv(*cmd, "--new").stdout)
    assert gw.stats()["creates"] == 4
    assert [r["status"] for r in fresh["rows"]] == ["saved", "saved"] and not any(r["reused"] for r in fresh["rows"])
    assert {r["task_id"] for r in fresh["rows"]}.isdisjoint(r["task_id"] for r in first["rows"])
    assert wv(*cmd, "--new").stdout and gw.stats()["creates"] == 4  # saved rows stay skipped, --new or not


def test_an_interrupted_batch_says_so_and_prints_the_command_that_resumes_it(sandbox, tmp_path):
    m = manifest(tmp_path, 9)
    env = {"WANVID_DATA_DIR": str(tmp_path / "data")}
    sandbox.run_seconds = 1.5  # rows are still running when Ctrl-C comes
    cmd = ["batch", str(m), "-d", str(tmp_path / "out"), "-j", "3", "--new", *FAST_BATCH]
    proc = start(*cmd, sb=sandbox, env=env, cwd=tmp_path)
    wait_until(lambda: sum(1 for t in sandbox.tasks() if t["polls"]) >= 3, "three rows polling their tasks")
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(proc, timeout=30)
    assert code == 130, stderr
    statuses = [line.split()[1] for line in stdout.splitlines()[1:]]
    assert "interrupted" in statuses and "not_started" in statuses and "failed" not in statuses
    for line in stdout.splitlines()[1:]:  # the id once, in the TASK column; the row says what happened
        words = line.split()
        if words[1] == "interrupted" and len(words[2]) == 36:
            assert line.count(words[2]) == 1 and line.endswith("stopped; the task keeps running"), line
        if words[1] == "not_started":
            assert line.endswith("not started"), line
    resume = next(line for line in stderr.splitlines() if "resume with: " in line)
    assert resume.startswith("note: interrupted; resume with: wanvid batch ") and "error:" not in stderr
    words = shlex.split(resume.split("resume with: ", 1)[1].split(" (it reuses")[0])
    assert words[:2] == ["wanvid", "batch"] and "--new" not in words  # --new would pay again
    paid = sandbox.stats()["creates"]

    sandbox.run_seconds = 0.3
    again = run(*words[1:], sb=sandbox, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sandbox.stats()["creates"] == 9 and paid >= 3  # the interrupted rows' tasks were reused
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 9
