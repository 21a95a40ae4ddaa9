"""One time format in every JSON wanvid writes (schema version 2): ISO 8601, UTC, whole seconds, "Z".

Each document of a real run against the sandbox is walked for its time fields (``test_json_schema.times``):
each must parse with ``datetime.fromisoformat`` into an aware UTC time, and name the moment the sandbox's
own clock says (so the native protocol's zoneless times are read in the right zone).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from wanvid.rules.task import gateway_time, utc
from wanvid.sandbox import Sandbox

from ..helpers import FAST, FAST_BATCH, wv
from .test_json_schema import assert_times, check, times


def _when(text: str) -> float:
    when = datetime.fromisoformat(text)
    assert when.tzinfo is not None and when.utcoffset().total_seconds() == 0, text  # type: ignore[union-attr]
    return when.timestamp()


def _found(doc: Any) -> dict[str, str]:
    """The time fields that hold a time, by where they are; every one checked."""
    assert_times(doc)
    return {where: value for where, value in times(doc) if value is not None}


def test_gateway_times_are_read_in_their_zone_and_written_in_utc() -> None:
    # DashScope's own example: end_time in China Standard Time, the signed URL's Expires 24 h later (UTC).
    assert gateway_time("2025-10-11 19:02:27.297") == "2025-10-11T11:02:27Z"
    assert utc(1760266939) == "2025-10-12T11:02:19Z"
    assert gateway_time("2026-11-21 02:06:33 UTC") == "2026-11-21T02:06:33Z"  # unified, as wanvid parsed it
    assert gateway_time("2026-11-21T10:06:33+08:00") == "2026-11-21T02:06:33Z"
    assert gateway_time("soon") is None and gateway_time("") is None and gateway_time(None) is None
    assert gateway_time("0001-01-01 00:00:00") is None  # before the calendar's start once in UTC: no crash
    assert utc(None) is None and utc(1e300) is None


def test_run_status_list_and_the_sidecar_agree_with_the_gateways_clock(gw: Sandbox, cat: Path) -> None:
    doc = check("run.json", json.loads(wv("run", str(cat), "-p", "a cat", "--json", *FAST).stdout))
    (task,) = gw.tasks()
    created, ended = task["created_at"], task["ends_at"]
    found = _found(doc)
    assert {"/task/submitted_at", "/task/started_at", "/task/finished_at"} <= set(found)
    assert abs(_when(found["/task/submitted_at"]) - created) < 1.5
    assert abs(_when(found["/task/finished_at"]) - ended) < 1.5

    sidecar = json.loads(Path(doc["metadata"]).read_text())
    timings = _found(sidecar)
    assert set(timings) == {
        f"/timings/{k}" for k in ("created", "submitted", "started", "finished", "noticed", "downloaded")
    }
    assert abs(_when(timings["/timings/submitted"]) - created) < 1.5
    assert (
        _when(timings["/timings/created"])
        <= _when(timings["/timings/noticed"])
        <= _when(timings["/timings/downloaded"])
    )

    status = check("status.json", json.loads(wv("status", task["id"], "--json").stdout))
    assert _found(status)["/finished_at"] == found["/task/finished_at"]

    (row,) = check("list.json", json.loads(wv("list", "--json").stdout))
    listed = _found(row)
    assert set(listed) == {"/created_at", "/updated_at", "/expires_at", "/ended_at", "/downloaded_at"}
    assert abs(_when(listed["/created_at"]) - created) < 1.5
    assert abs(_when(listed["/expires_at"]) - task["expires_at"]) < 1.5  # from the signed URL's Expires


def test_create_wait_and_unified_expiry(gw: Sandbox, cat: Path) -> None:
    created = check(
        "create.json", json.loads(wv("create", str(cat), "-p", "u", "--protocol", "unified", "--json").stdout)
    )
    _found(created)
    done = check("wait.json", json.loads(wv("wait", created["id"], "--protocol", "unified", "--json", *FAST).stdout))
    (task,) = gw.tasks()
    found = _found(done)
    assert abs(_when(found["/expires_at"]) - task["expires_at"]) < 1.5
    assert abs(_when(found["/submitted_at"]) - task["created_at"]) < 1.5


@pytest.mark.parametrize("flavor", ["newapi", "house"])
def test_every_flavor_gives_the_same_format(gw: Sandbox, cat: Path, flavor: str) -> None:
    gw.flavor = flavor
    doc = check("run.json", json.loads(wv("run", str(cat), "-p", flavor, "--json", *FAST).stdout))
    found = _found(doc)
    assert "/task/finished_at" in found


def test_batch_documents_and_results_file(gw: Sandbox, cat: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"image,prompt\n{cat.name},one\n{cat.name},two\n")
    r = wv("batch", str(manifest), "--json", "--name", "{row}", *FAST_BATCH)
    assert r.exit_code == 0, r.stderr
    doc = check("batch.json", json.loads(r.stdout))
    assert_times(doc)
    for line in Path(doc["results"]).read_text().splitlines():
        assert_times(check("batch-row.json", json.loads(line)))
    for row in doc["rows"]:  # each row's sidecar
        assert len(_found(json.loads(Path(row["output"] + ".json").read_text()))) == 6


def test_status_shows_the_same_utc_times_as_its_json(gw: Sandbox, cat: Path) -> None:
    assert wv("run", str(cat), "-p", "a cat", "-q", *FAST).exit_code == 0
    task_id = gw.tasks()[0]["id"]
    doc = json.loads(wv("status", task_id, "--json").stdout)
    shown = dict(line.split(None, 1) for line in wv("status", task_id).stdout.splitlines())
    assert shown["submitted"] == doc["submitted_at"] and shown["finished"] == doc["finished_at"]
