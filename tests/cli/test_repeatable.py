"""Commands that are safe to repeat: a download of a video already saved, waiting for several tasks, and
`download --all`, which finishes everything unfinished and saves every video not yet on disk."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from wanvid.sandbox import Sandbox
from wanvid.store.journal import Journal

from ..helpers import FAST, ROOT, wv

SAMPLE = (Path(__file__).parents[2] / "wanvid" / "assets" / "sample.mp4").read_bytes()


def valid(schema: str, doc: object) -> None:
    """``doc`` is valid against docs/schema/``schema``."""
    folder = ROOT / "docs" / "schema"
    registry: Registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()))) for p in folder.glob("*.json")
    )
    Draft202012Validator({"$ref": schema}, registry=registry).validate(doc)


def fetches(sb: Sandbox) -> int:
    """Requests for a video's bytes: the gateway's content routes and the signed object URLs."""
    return sum(1 for r in sb.requests() if r.path.endswith("/content") or r.path.startswith("/_oss"))


def finished(cat: Path, *extra: str) -> str:
    task_id = wv("create", str(cat), *extra).stdout.strip()
    assert wv("wait", task_id, *FAST).exit_code == 0
    return task_id


# -- download, again ----------------------------------------------------------------------------------


def test_downloading_a_saved_video_again_prints_its_path_and_fetches_nothing(gw, cat, isolated):
    task_id = finished(cat)
    first = wv("download", task_id)
    path = isolated / f"{task_id}.mp4"
    assert first.exit_code == 0 and first.stdout == f"{path}\n" and fetches(gw) >= 1
    asked = len(gw.requests())

    again = wv("download", task_id)
    assert again.exit_code == 0 and again.stdout == f"{path}\n"
    assert "already saved" in again.stderr
    doc = json.loads(wv("download", task_id, "--json").stdout)
    valid("download.json", doc)
    assert doc["already_saved"] is True and doc["path"] == str(path) and doc["bytes"] == len(SAMPLE)
    assert doc["metadata"] == f"{path}.json" and doc["video"]["duration"]
    assert len(gw.requests()) == asked  # not a content request, not even a status query
    assert path.read_bytes() == SAMPLE
    assert json.loads(wv("download", task_id, "--force", "--json").stdout)["already_saved"] is False
    assert len(gw.requests()) > asked


def test_a_file_that_is_not_what_was_saved_is_still_refused(gw, cat, isolated):
    task_id = finished(cat)
    path = Path(wv("download", task_id).stdout.strip())
    path.write_bytes(path.read_bytes() + b"edited")  # not the size the journal saved
    asked = fetches(gw)
    r = wv("download", task_id)
    assert r.exit_code == 2 and "already exists" in r.stderr and "--force" in r.stderr
    assert fetches(gw) == asked
    assert wv("download", task_id, "--force").exit_code == 0 and path.read_bytes() == SAMPLE


def test_after_run_a_bare_download_finds_the_saved_file(gw, cat, isolated):
    r = wv("run", str(cat), "-o", "twice.mp4", *FAST)
    assert r.exit_code == 0 and r.stdout == f"{isolated / 'twice.mp4'}\n"
    task_id = json.loads(wv("list", "--json").stdout)[0]["id"]
    asked = len(gw.requests())
    for args in ((), (task_id,)):
        again = wv("download", *args)
        assert again.exit_code == 0 and again.stdout == f"{isolated / 'twice.mp4'}\n", again.stderr
    assert len(gw.requests()) == asked
    assert not (isolated / f"{task_id}.mp4").exists()  # no duplicate under the task's name
    assert sorted(p.name for p in isolated.glob("*.mp4")) == ["twice.mp4"]


# -- wait for several tasks -----------------------------------------------------------------------------


def created(cat: Path, prompt: str) -> str:
    return wv("create", str(cat), "-p", prompt).stdout.strip()


def test_wait_for_several_tasks_prints_one_line_each_and_the_worst_exit(gw, cat):
    good = created(cat, "one")
    gw.faults.fail_code, gw.faults.fail_message = "DataInspectionFailed", "flagged"
    bad = created(cat, "two")
    gw.faults.fail_code = gw.faults.fail_message = None
    other = created(cat, "three")

    r = wv("wait", good, bad, other, *FAST)
    assert r.exit_code == 3, r.stderr  # the failed one
    lines = [line.split() for line in r.stdout.splitlines()]
    assert [line[:2] for line in lines] == [[good, "SUCCEEDED"], [bad, "FAILED"], [other, "SUCCEEDED"]]
    assert lines[0][2].startswith("http") and len(lines[1]) == 2
    assert "DataInspectionFailed" in r.stderr or "flagged" in r.stderr

    doc = json.loads(wv("wait", good, bad, other, "--json", *FAST).stdout)  # wait --all's document
    valid("wait-all.json", doc)
    assert [t["id"] for t in doc["tasks"]] == [good, bad, other]
    assert [t["status"] for t in doc["tasks"]] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert wv("wait", good, other, "-q", *FAST).stdout == f"{good}\n{other}\n"
    assert wv("wait", good, other, *FAST).exit_code == 0


def test_wait_for_several_ranks_gone_above_failed(gw, cat):
    gw.faults.fail_code = "DataInspectionFailed"
    bad = created(cat, "one")
    gw.faults.fail_code = None
    r = wv("wait", bad, "0123456789abcdef-no-such-task", *FAST)
    assert r.exit_code == 5  # a batch's order: a task gone is worse than one failed
    assert [line.split()[1] for line in r.stdout.splitlines()] == ["FAILED", "NOT_FOUND"]
    assert wv("wait", bad, "--all").exit_code == 2  # ids or --all, not both


# -- download --all -------------------------------------------------------------------------------------


def test_download_all_finishes_and_saves_everything_not_on_disk(gw, cat, isolated):
    saved = wv("run", str(cat), "-p", "saved", "-o", "kept.mp4", *FAST)  # already on disk
    assert saved.exit_code == 0
    done = finished(cat, "-p", "done")  # succeeded, never downloaded
    gw.faults.fail_code, gw.faults.fail_message = "DataInspectionFailed", "flagged"
    failed = created(cat, "failed")
    gw.faults.fail_code = gw.faults.fail_message = None
    gw.ttl_seconds = 0.5
    gone = created(cat, "expires")  # its result is gone before anyone downloads it
    gw.ttl_seconds, gw.queue_seconds = 86400.0, 1.0
    running = created(cat, "still running")  # unfinished: waited for
    stopped = wv("run", str(cat), "-p", "meant", "-o", "meant.mp4", "--timeout", "0", *FAST)
    assert stopped.exit_code == 124  # paid for, to be saved at meant.mp4
    fetched = fetches(gw)

    r = wv("download", "--all", *FAST)
    assert r.exit_code == 5, r.stderr  # the worst: the expired one (5 ranks above failed, 3)
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in r.stdout.splitlines()}
    kept = json.loads(wv("list", "--json").stdout)
    ids = {e["output_path"]: e["id"] for e in kept if e["output_path"]}
    assert rows[ids[str(isolated / "kept.mp4")]] == ["already_saved", str(isolated / "kept.mp4")]
    assert rows[done] == ["saved", str(isolated / f"{done}.mp4")]
    assert rows[running] == ["saved", str(isolated / f"{running}.mp4")]
    assert rows[ids[str(isolated / "meant.mp4")]] == ["saved", str(isolated / "meant.mp4")]  # where run meant it
    assert rows[failed][0] == "failed" and rows[gone][0] == "gone"
    assert (isolated / "meant.mp4").read_bytes() == SAMPLE == (isolated / f"{running}.mp4").read_bytes()
    assert fetches(gw) >= fetched + 3
    assert "1 video(s) already on disk where they were saved: not downloaded again" in r.stderr
    assert "is already saved" not in r.stderr and "expired" in r.stderr  # one line for them all, not one each

    fetched = fetches(gw)
    again = wv("download", "--all", "--json", *FAST)  # safe to repeat: nothing fetched twice
    doc = json.loads(again.stdout)
    valid("download-all.json", doc)
    assert again.exit_code == 5 and doc["exit_code"] == 5
    statuses = sorted(t["status"] for t in doc["tasks"])
    assert statuses == ["already_saved"] * 4 + ["failed", "gone"]
    assert all(t["error"]["task_id"] == t["task_id"] for t in doc["tasks"] if t["error"])
    assert fetches(gw) == fetched
    quiet = wv("download", "--all", "-q", *FAST)
    assert sorted(quiet.stdout.split()) == sorted(t["path"] for t in doc["tasks"] if t["path"])


def test_download_all_into_a_directory_and_its_usage_errors(gw, cat, isolated):
    done = finished(cat, "-p", "done")
    (isolated / "into").mkdir()
    r = wv("download", "--all", "-o", "into", "-q", *FAST)
    assert r.exit_code == 0 and r.stdout == f"{isolated / 'into' / (done + '.mp4')}\n"
    assert wv("download", "--all", "-o", "file.mp4").exit_code == 2
    assert wv("download", done, "--all").exit_code == 2


# -- run --dry-run --------------------------------------------------------------------------------------


def test_run_dry_run_prints_the_request_and_where_the_video_would_go(gw, cat, isolated, monkeypatch):
    monkeypatch.delenv("WANVID_API_KEY")  # no key needed: nothing is sent
    r = wv("run", str(cat), "-p", "a cat", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("POST ") and f"would save the video to {isolated / 'cat.mp4'}" in r.stdout
    doc = json.loads(wv("run", str(cat), "-p", "a cat", "-o", "sub.mp4", "--dry-run", "--json").stdout)
    valid("dry-run.json", doc)
    assert doc["output"] == str(isolated / "sub.mp4") and doc["body"]["input"]["prompt"] == "a cat"
    assert gw.requests() == [] and not list(isolated.glob("*.mp4"))


def test_run_dry_run_refuses_what_run_would_and_says_when_nothing_would_be_sent(gw, cat, isolated):
    (isolated / "taken.mp4").write_bytes(b"someone else's")
    r = wv("run", str(cat), "-p", "a cat", "-o", "taken.mp4", "--dry-run")
    assert r.exit_code == 2 and "already exists" in r.stderr and r.stdout == ""
    assert wv("run", str(cat), "-p", "a cat", "-o", "made.mp4", *FAST).exit_code == 0
    asked = len(gw.requests())
    r = wv("run", str(cat), "-p", "a cat", "-o", "made.mp4", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["output"] == str(isolated / "made.mp4") and doc["already_saved"] == Journal().recent()[0].id
    assert len(gw.requests()) == asked


def test_the_python_face_downloads_all_and_repeats_safely(gw, cat, isolated):
    import wanvid

    done = finished(cat, "-p", "done")
    client = wanvid.Wanvid()
    first = client.download_all()
    assert [(d.task_id, d.status, d.path) for d in first] == [(done, "saved", str(isolated / f"{done}.mp4"))]
    asked = len(gw.requests())
    assert [d.status for d in client.download_all()] == ["already_saved"]
    assert client.download(done).found is True
    assert len(gw.requests()) == asked
