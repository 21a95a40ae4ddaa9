"""What wanvid writes down about a task: its journal row, the row's updates, its expiry, and the
metadata sidecar next to a saved video.

The commands call these around the service operations; ``wanvid.store.journal`` stores the rows. A task
the journal does not know (created on another machine) is still queried and downloaded, it just has
no history, no expiry check and a shorter sidecar.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from wanvid import __version__
from wanvid.errors import Expired, StorageError
from wanvid.rules.task import TIME_FORMAT, Status, Task, gateway_time
from wanvid.store.journal import TASK_LIFE, Entry, Journal

if TYPE_CHECKING:
    from wanvid.rules.request import Validated


def new_entry(task: Task, v: Validated, *, base_url: str, profile: str, request_hash: str) -> Entry:
    now = time.time()
    return Entry(
        id=task.id,
        base_url=base_url,
        protocol=v.protocol,
        profile=profile,
        created_at=now,
        updated_at=now,
        status=task.status.value,
        model=v.request.model,
        request=json.dumps(v.record(), ensure_ascii=False),
        request_hash=request_hash,
        resolution=v.request.resolution or v.request.size,
        duration=v.request.duration,
        request_id=task.request_id,
    )


def task_from(entry: Entry) -> Task:
    """What the journal knows of a task, as a ``Task`` (for a reused task, before any poll)."""
    return Task(
        id=entry.id,
        protocol=entry.protocol,
        status=Status(entry.status) if entry.status in Status.__members__ else Status.UNRECOGNIZED,
        raw_status=entry.status,
        video_url=entry.video_url,
        error_code=entry.error_code,
        error_message=entry.error_message,
        model=entry.model,
        request_id=entry.request_id,
        expires_at=entry.expires_at,
    )


_ENDED_WORDS = {s.value for s in Status if s.ended}
SEEN_EVERY = 60.0  # how stale a journal row's "last seen" may grow while a task is polled and nothing changes


def remember(journal: Journal, base_url: str, task: Task, known: Entry | None) -> None:
    """Write what an answer taught us about a journaled task (unknown tasks are left alone)."""
    if known is None:
        return
    # UNKNOWN says nothing about the task (a passing upstream hiccup, GATEWAY-VARIANTS.md), and an ended task
    # does not start again upstream: a gateway that answers "running" after "succeeded" is not believed.
    kept = task.status is Status.UNKNOWN or (not task.status.ended and known.status in _ENDED_WORDS)
    changes: dict[str, Any] = {"status": known.status if kept else task.status.value}
    cleared = task.status is Status.SUCCEEDED and bool(known.error_code or known.error_message)  # a passing one
    if task.error_code or task.error_message or cleared:
        changes.update(error_code=task.error_code, error_message=task.error_message)
    if task.video_url and task.video_url != known.video_url:
        changes["video_url"] = task.video_url
        changes["expires_at"] = expiry(task, known.created_at)
    if task.status.ended and known.ended_at is None:
        changes["ended_at"] = time.time()
        changes["took"] = took(task)
    # Nothing new: no write on every poll, but ``updated_at`` is when the state was last seen (``list``'s
    # LAST SEEN), so it is brought up to date at most once every SEEN_EVERY seconds.
    if changes["status"] == known.status and len(changes) == 1 and time.time() - known.updated_at < SEEN_EVERY:
        return
    journal.update(base_url, task.id, **changes)
    known.updated_at = time.time()
    for name, value in changes.items():
        setattr(known, name, value)


def took(task: Task) -> float | None:
    """Seconds from submission to finish by the gateway's clock (its time zone cancels out), or None."""
    start, end = _parse_time(task.submitted_at), _parse_time(task.finished_at)
    if start is None or end is None or not 0 <= end - start < 24 * 3600:
        return None
    return end - start


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    # fromisoformat, not strptime: it takes both gateways' forms ("2026-01-02 03:04:05.678", with a T or
    # without fractions) and is C code, where strptime's first call costs ~3 ms of every `status`.
    try:
        when = datetime.fromisoformat(text.removesuffix(" UTC").strip())
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def expiry(task: Task, created_at: float) -> float:
    """When the result is gone: the gateway's expires_at, the signed URL's Expires, or 24 h after creation."""
    if task.expires_at:
        return task.expires_at
    if task.video_url:
        expires = parse_qs(urlsplit(task.video_url).query).get("Expires", [""])[0]
        if expires.isdigit():
            return float(expires)
    return created_at + TASK_LIFE


def expired(entry: Entry) -> Expired:
    """The exit-5 error for a task whose 24 h are over by the journal's reckoning and the gateway's answer."""
    when = datetime.fromtimestamp(entry.life_ends, UTC).strftime("%Y-%m-%d %H:%M UTC")
    error = Expired(
        f"task {entry.id} and its result expired at {when}; the gateway keeps them 24 h",
        hint="create a new task (add --new to skip the journal's reuse check)",
    )
    error.task_id = entry.id
    return error


def age(seconds_ago: float) -> str:
    s = max(0, int(seconds_ago))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def sidecar_path(video: Path) -> Path:
    return video.with_name(video.name + ".json")


def write_sidecar(video: Path, task: Task, entry: Entry | None, *, size: int, info: Any, source: str) -> Path:
    """``<video>.json``: what made this video, so it can be reproduced or audited. Never the key."""
    from wanvid.redact import scrub_json

    request = entry.request_data() if entry else {}
    raw_out = task.raw.get("output") if isinstance(task.raw.get("output"), dict) else task.raw
    doc: dict[str, Any] = {
        "wanvid": __version__,
        "task_id": task.id,
        "request_id": (entry.request_id if entry else None) or task.request_id,
        "protocol": task.protocol,
        "base_url": entry.base_url if entry else None,
        "model": task.model or request.get("model"),
        "prompt": request.get("prompt"),
        "negative_prompt": request.get("negative_prompt"),
        "actual_prompt": raw_out.get("actual_prompt") if isinstance(raw_out, dict) else None,
        "seed": request.get("seed", raw_out.get("seed") if isinstance(raw_out, dict) else None),
        "parameters": {
            k: request[k]
            for k in ("resolution", "duration", "prompt_extend", "watermark", "shot_type", "size", "generate_audio")
            if k in request
        },
        "inputs": {k: request[k] for k in ("image", "last_frame", "audio", "first_clip") if k in request},
        "timings": {
            "created": iso(entry.created_at) if entry else None,
            "submitted": gateway_time(task.submitted_at),
            "started": gateway_time(task.started_at),
            "finished": gateway_time(task.finished_at),
            "noticed": iso(entry.ended_at) if entry and entry.ended_at else None,
            "downloaded": iso(time.time()),
        },
        "video": {
            "path": str(video),
            "bytes": size,
            "duration": info.duration,
            "width": info.width,
            "height": info.height,
            "source": urlsplit(source).path if "://" in source else source,  # no signature in the sidecar
        },
    }
    path = sidecar_path(video)
    try:
        fd, tmp = tempfile.mkstemp(dir=video.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(scrub_json(doc), f, indent=2, ensure_ascii=False)  # never the key, whatever a server sent
            f.write("\n")
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(
            f"the video is saved but its metadata {path} could not be written: {exc.strerror}",
            hint="free some space; or pass --no-metadata",
        ) from None
    return path


def iso(ts: float) -> str:
    """A unix time as the UTC ISO 8601 text every JSON document uses (``wanvid.rules.task.utc``)."""
    return datetime.fromtimestamp(ts, UTC).strftime(TIME_FORMAT)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
