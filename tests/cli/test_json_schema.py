"""Every --json document against its published JSON Schema (docs/schema, described in docs/json.md).

The commands run for real, in-process and as processes, against the sandbox; stdout is validated with
``jsonschema``. The schemas require every field and pin its type, so a field renamed, removed or retyped
fails here; ``assert_strict`` proves that on the real documents.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from wanvid.sandbox import Sandbox

from ..helpers import FAST, ROOT, TEST_KEY, run, wv

SCHEMA_DIR = ROOT / "docs" / "schema"
DOC = ROOT / "docs" / "json.md"
SCHEMAS: dict[str, dict[str, Any]] = {p.name: json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.json"))}
# Relative "$ref": "task.json" resolves against the referring schema's name, the key here.
REGISTRY: Registry = Registry().with_resources((name, Resource.from_contents(s)) for name, s in SCHEMAS.items())
EXPECTED = {
    "task.json",
    "create.json",
    "dry-run.json",
    "status.json",
    "wait.json",
    "wait-all.json",
    "download.json",
    "download-all.json",
    "batch-plan.json",
    "run.json",
    "list.json",
    "config-show.json",
    "error.json",
    "batch.json",
    "batch-row.json",
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """Faster than conftest's: every test here waits for real tasks, some for several."""
    with Sandbox(queue_seconds=0.05, run_seconds=0.15) as sb:
        yield sb


def errors(schema: str, doc: Any) -> list[str]:
    """Why ``doc`` breaks ``schema`` (a file name, optionally with a #/$defs/... pointer); [] if it is valid."""
    validator = Draft202012Validator({"$ref": schema}, registry=REGISTRY)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)]


def check(schema: str, doc: Any) -> Any:
    problems = errors(schema, doc)
    assert not problems, f"{schema}:\n" + "\n".join(problems)
    assert_times(doc)
    return doc


def times(doc: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every time field of a document (a key ending in ``_at``, ``url_expires``, a sidecar's ``timings``),
    with where it is; a gateway's own answer (``raw``) and a recorded request's values are not wanvid's."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "raw":
                continue
            here = f"{where}/{key}"
            if key.endswith("_at") or key == "url_expires":
                yield here, value
            elif key == "timings" and isinstance(value, dict):
                yield from ((f"{here}/{k}", v) for k, v in value.items())
            else:
                yield from times(value, here)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from times(value, f"{where}/{i}")


def assert_times(doc: Any) -> None:
    """Schema version 2: every time is ISO 8601 text with a zone (UTC, "Z"), or null."""
    from datetime import datetime

    for where, value in times(doc):
        if value is None:
            continue
        assert isinstance(value, str), f"{where}: {value!r} is not a time text"
        when = datetime.fromisoformat(value)
        assert when.tzinfo is not None and when.utcoffset().total_seconds() == 0, f"{where}: {value!r}"
        assert value.endswith("Z"), f"{where}: {value!r}"


def parsed(result: Any, schema: str, exit_code: int = 0) -> Any:
    """One JSON document on stdout, the expected exit code, and valid against ``schema``."""
    assert result.exit_code == exit_code, (result.exit_code, result.stderr)
    return check(schema, json.loads(result.stdout))


def assert_strict(schema: str, doc: dict[str, Any], optional: tuple[str, ...] = ()) -> None:
    """Dropping, renaming or retyping any field of a valid document makes it invalid."""
    for key, value in doc.items():
        if key in optional:
            continue
        dropped = {k: v for k, v in doc.items() if k != key}
        assert errors(schema, dropped), f"{schema}: removing {key!r} went unnoticed"
        assert errors(schema, {**dropped, key + "_renamed": value}), f"{schema}: renaming {key!r} went unnoticed"
        wrong = {} if isinstance(value, list) else [value]
        assert errors(schema, {**doc, key: wrong}), f"{schema}: {key!r} as {type(wrong).__name__} went unnoticed"


def _create(cat: Path, *extra: str) -> dict[str, Any]:
    return parsed(wv("create", str(cat), "--json", *extra), "create.json")


# -- the schemas themselves -----------------------------------------------------------------------


def test_every_schema_is_a_valid_draft_2020_12_schema_of_version_2():
    assert set(SCHEMAS) == EXPECTED
    for name, schema in SCHEMAS.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert schema["x-wanvid-schema-version"] == 2, name
        assert schema.get("additionalProperties", True) is True, f"{name}: later additions must stay valid"


def test_every_ref_resolves():
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for name, schema in SCHEMAS.items():
        resolver = REGISTRY.resolver(base_uri=name)
        for ref in refs(schema):
            assert not ref.startswith(("http:", "https:", "/")), f"{name}: {ref} is not relative"
            resolver.lookup(ref)  # raises when the file or the pointer is missing


def test_every_schema_file_is_referenced_from_the_docs():
    text = DOC.read_text()
    linked = set(re.findall(r"\(schema/([\w.-]+\.json)\)", text))
    assert set(SCHEMAS) <= linked, f"not linked from docs/json.md: {sorted(set(SCHEMAS) - linked)}"
    assert linked <= set(SCHEMAS), f"docs/json.md links missing files: {sorted(linked - set(SCHEMAS))}"


def test_batch_schemas_accept_the_documented_shapes_and_refuse_others():
    """No command prints these yet: checked against hand-written documents of the documented shape."""
    saved = {"row": 1, "task_id": "t1", "status": "saved", "output": "/v/a.mp4", "error": None, "reused": False}
    error = {"message": "m", "hint": None, "exit_code": 3, "code": None, "request_id": None, "task_id": "t2"}
    failed = {"row": 2, "task_id": "t2", "status": "failed", "output": None, "error": error, "reused": False}
    waiting = {"row": 3, "task_id": None, "status": "not_started", "output": None, "error": None, "reused": False}
    for row in (saved, failed, waiting):
        check("batch-row.json", row)
        assert_strict("batch-row.json", row)
    assert errors("batch-row.json", {**saved, "status": "done"})
    assert errors("batch-row.json", {**saved, "row": 0})
    assert errors("batch-row.json", {**saved, "error": error})  # a success carries no error
    assert errors("batch-row.json", {**failed, "error": None})  # a failure says why
    summary = dict.fromkeys(
        ("saved", "already_saved", "failed", "error", "invalid", "interrupted", "not_started"), 0
    ) | {"rows": 3, "saved": 1, "failed": 1, "not_started": 1}
    batch = {
        "manifest": "/v/m.csv",
        "results": "/v/m.results.jsonl",
        "rows": [saved, failed, waiting],
        "summary": summary,
        "exit_code": 3,
    }
    check("batch.json", batch)
    assert_strict("batch.json", batch)
    assert errors("batch.json", {**batch, "rows": [{**saved, "reused": "no"}]})
    assert errors("batch.json", {**batch, "summary": {k: v for k, v in summary.items() if k != "invalid"}})


# -- success documents ----------------------------------------------------------------------------


def test_create_status_wait_download(gw, cat, isolated):
    created = _create(cat, "-p", "the cat walks")
    assert created["reused"] is False and created["protocol"] == "native"
    assert_strict("create.json", created)
    assert errors("create.json", {**created, "status": "DONE"})  # the status vocabulary is closed
    task_id = created["id"]

    status = parsed(wv("status", task_id, "--json"), "status.json")
    assert status["id"] == task_id and status["status"] in ("PENDING", "RUNNING", "SUCCEEDED")
    assert_strict("status.json", status)

    done = parsed(wv("wait", task_id, "--json", *FAST), "wait.json")
    assert done["status"] == "SUCCEEDED" and done["video_url"]
    assert_strict("wait.json", done)
    assert errors("wait.json", {**done, "status": "FAILED"})

    got = parsed(wv("download", task_id, "--json"), "download.json")
    assert got["path"] == str(isolated / f"{task_id}.mp4") and got["metadata"] == got["path"] + ".json"
    assert isinstance(got["video"]["duration"], float)
    assert_strict("download.json", got)
    assert_strict("download.json#/properties/video", got["video"])
    bare = parsed(wv("download", task_id, "-o", "bare.mp4", "--no-metadata", "--json"), "download.json")
    assert bare["metadata"] is None

    again = _create(cat, "-p", "the cat walks")  # the journal's live task for the same request
    assert again["reused"] is True and again["id"] == task_id


def test_unified_task_objects(gw, cat):
    created = _create(cat, "--protocol", "unified", "-p", "a cat")
    assert created["protocol"] == "unified" and created["raw_status"] == "NOT_START"  # ope.ai's first word
    done = parsed(wv("wait", created["id"], "--json", "--protocol", "unified", *FAST), "wait.json")
    assert done["protocol"] == "unified" and done["expires_at"].endswith("Z")


def test_dry_run_on_both_protocols(gw, cat):
    for protocol, path in (("native", "/aliyun/v1/videos/generations"), ("unified", "/v1/videos")):
        doc = parsed(
            wv("create", str(cat), "-p", "a cat", "--dry-run", "--json", "--protocol", protocol), "dry-run.json"
        )
        assert doc["url"] == gw.url + path
        assert_strict("dry-run.json", doc)
    assert gw.requests() == []


def test_wait_all(gw, cat):
    assert parsed(wv("wait", "--all", "--json"), "wait-all.json") == {"tasks": []}
    ids = [_create(cat, "-p", prompt)["id"] for prompt in ("one", "two")]
    doc = parsed(wv("wait", "--all", "--json", *FAST), "wait-all.json")
    assert [t["id"] for t in doc["tasks"]] == ids and {t["status"] for t in doc["tasks"]} == {"SUCCEEDED"}
    assert_strict("wait-all.json", doc)
    assert errors("wait-all.json", {"tasks": [{**doc["tasks"][0], "progress": "50%"}]})


def test_run_then_run_again_already_saved(gw, cat, isolated):
    doc = parsed(wv("run", str(cat), "-p", "walk", "--json", *FAST), "run.json")
    check("run.json#/$defs/saved", doc)
    assert doc["path"] == str(isolated / "cat.mp4") and doc["task"]["status"] == "SUCCEEDED"
    assert doc["reused"] is False
    assert_strict("run.json", doc)

    again = parsed(wv("run", str(cat), "-p", "walk", "--json", *FAST), "run.json")
    check("run.json#/$defs/already_saved", again)
    assert again == {"task": None, "task_id": doc["task"]["id"], "path": doc["path"], "reused": True}
    assert_strict("run.json", again)
    assert errors("run.json", {**again, "task": doc["task"]})  # neither shape: half of each


def test_list(gw, cat, isolated):
    assert parsed(wv("list", "--json"), "list.json") == []
    wv("run", str(cat), "-p", "walk", *FAST)
    _create(cat, "-p", "pending", "--protocol", "unified")
    rows = parsed(wv("list", "--json"), "list.json")
    assert [r["protocol"] for r in rows] == ["unified", "native"]
    saved = rows[1]
    assert saved["output_path"] == str(isolated / "cat.mp4") and saved["shown_status"] == "SUCCEEDED"
    assert saved["request"]["image"]["path"] == str(cat.resolve())
    for row in rows:
        assert_strict("list.json#/$defs/entry", row)
    assert errors("list.json", [{**saved, "created_at": "yesterday"}])


def test_config_show(gw, isolated):
    doc = parsed(wv("config", "show", "--json"), "config-show.json")
    assert doc["api_key"] == {"value": "****" + TEST_KEY[-4:], "source": "env WANVID_API_KEY"}
    assert doc["config_file"]["value"] == str(isolated / "config" / "config.toml")
    assert_strict("config-show.json", doc)
    assert errors("config-show.json", {**doc, "api_key": {"value": TEST_KEY, "source": "flag"}})  # never the key
    wv("config", "set", "protocol", "unified")
    doc = parsed(wv("config", "show", "--json", "--profile", "other"), "config-show.json")
    assert doc["profile"] == {"value": "other", "source": "flag"} and doc["protocol"]["source"] == "default"


# -- error documents ------------------------------------------------------------------------------


def test_invalid_flag_value_is_an_error_document(gw, cat):
    doc = parsed(wv("create", str(cat), "--duration", "99", "--json"), "error.json", exit_code=2)
    assert "task" not in doc and doc["error"]["exit_code"] == 2 and "--duration" in doc["error"]["message"]
    assert_strict("error.json", doc)
    assert_strict("error.json#/$defs/error", doc["error"])
    assert errors("error.json", {"error": {**doc["error"], "exit_code": 42}})  # a known exit code
    doc = parsed(wv("list", "--status", "bogus", "--json"), "error.json", exit_code=2)
    assert doc["error"]["hint"].startswith("use one of")
    assert gw.requests() == []


def test_a_value_click_rejects_is_an_error_document(gw, cat):
    doc = parsed(wv("create", str(cat), "--resolution", "999p", "--json"), "error.json", exit_code=2)
    assert "--resolution" in doc["error"]["message"] and doc["error"]["hint"] == "see: wanvid create --help"
    doc = parsed(wv("list", "--limit", "abc", "--json"), "error.json", exit_code=2)
    assert "--limit" in doc["error"]["message"]
    assert gw.requests() == []


def test_failed_task_is_an_error_document_with_the_task(gw, cat):
    gw.faults.fail_code, gw.faults.fail_message = "DataInspectionFailed", "input image flagged"
    task_id = _create(cat)["id"]
    doc = parsed(wv("wait", task_id, "--json", *FAST), "error.json", exit_code=3)
    assert doc["error"]["task_id"] == task_id and doc["task"]["status"] == "FAILED"
    assert doc["task"]["error"] == {"code": "DataInspectionFailed", "message": "input image flagged"}
    assert_strict("error.json", doc)  # exit 3 always carries the task
    assert errors("error.json", {**doc, "task": {**doc["task"], "status": "SUCCEEDED"}})
    # status and wait --all print their own document, whose task says FAILED, and exit 3 all the same
    status = parsed(wv("status", task_id, "--json"), "status.json", exit_code=3)
    assert status["status"] == "FAILED"
    listed = parsed(wv("wait", "--all", "--json", *FAST), "wait-all.json")
    assert listed == {"tasks": []}  # a task that ended is no longer unfinished
    other = _create(cat, "-p", "another")["id"]
    listed = parsed(wv("wait", "--all", "--json", *FAST), "wait-all.json", exit_code=3)
    assert [(t["id"], t["status"]) for t in listed["tasks"]] == [(other, "FAILED")]
    run = parsed(wv("run", str(cat), "-p", "third", "--json", *FAST), "error.json", exit_code=3)
    assert run["task"]["status"] == "FAILED" and run["error"]["task_id"] == run["task"]["id"]


def test_missing_task_is_an_error_document(gw):
    doc = parsed(wv("wait", "no-such-task", "--json", *FAST), "error.json", exit_code=5)
    # UNKNOWN with code ResourceNotFound: the gateway says the task does not exist
    assert doc["task"]["status"] == "NOT_FOUND" and doc["task"]["raw_status"] == "UNKNOWN"
    assert_strict("error.json", doc, optional=("task",))  # an exit-5 document need not carry a task
    doc = parsed(wv("download", "no-such-task", "--json"), "error.json", exit_code=5)
    assert doc["task"]["status"] == "NOT_FOUND"
    # the unified endpoint answers an HTTP error (docs flavor: 404 ResourceNotFound), with no task object
    doc = parsed(wv("status", "no-such-task", "--protocol", "unified", "--json"), "error.json", exit_code=5)
    assert "task" not in doc and doc["error"]["code"] == "ResourceNotFound" and doc["error"]["request_id"]
    # native status prints the task object it got, NOT_FOUND, and exits 5
    doc = parsed(wv("status", "no-such-task", "--json"), "status.json", exit_code=5)
    assert doc["status"] == "NOT_FOUND"


# -- as processes ---------------------------------------------------------------------------------


def from_process(proc: subprocess.CompletedProcess[str], schema: str, exit_code: int = 0) -> Any:
    assert proc.returncode == exit_code, proc.stderr
    return check(schema, json.loads(proc.stdout))


def test_run_list_and_errors_as_processes(gw, cat, isolated):
    doc = from_process(run("run", str(cat), "-p", "walk", "--json", *FAST), "run.json")
    assert doc["path"] == str(isolated / "cat.mp4") and doc["bytes"] > 10_000
    rows = from_process(run("list", "--json"), "list.json")
    assert [r["id"] for r in rows] == [doc["task"]["id"]]
    error = from_process(run("status", "nope", "--protocol", "unified", "--json"), "error.json", exit_code=5)
    assert error["error"]["exit_code"] == 5
    from_process(run("config", "show", "--json"), "config-show.json")
