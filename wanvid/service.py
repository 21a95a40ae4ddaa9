"""The operations the commands are made of: submit, query, judge an outcome, fetch the video, dry run.

Each takes plain values and a ``Client`` and returns a ``Task``; no printing, no flags. This is the
layer a Python user would script against.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import Client, retry_after
from .download import Downloaded, download
from .errors import ApiError, NotFound, TaskFailed, WanvidError
from .protocols import PROTOCOLS
from .request import Validated
from .task import Status, Task


def body_for(v: Validated) -> dict[str, Any]:
    return PROTOCOLS[v.protocol].build_body(v, lambda name: v.media[name].url())


def submit(client: Client, v: Validated) -> Task:
    proto = PROTOCOLS[v.protocol]
    payload = client.post_json(proto.create_path, body_for(v))
    task = proto.parse_task(payload)
    if not task.id:
        raise ApiError(
            "the gateway accepted the request but sent no task id",
            request_id=task.request_id,
            hint="check `wanvid status` later; nothing can be resumed without an id",
        )
    task.model = task.model or v.request.model
    return task


def query(client: Client, protocol: str, task_id: str) -> Task:
    proto = PROTOCOLS[protocol]
    payload, resp = client.get_json(proto.task_path(task_id))
    task = proto.parse_task(payload)
    task.id = task.id or task_id
    task.retry_after = retry_after(resp)  # a poll hint; the poller bounds it
    return task


def fetch_video(
    client: Client,
    protocol: str,
    task_id: str,
    dest: Path,
    *,
    force: bool,
    on_start: Callable[[int | None], None],
    on_chunk: Callable[[int], None],
) -> Downloaded:
    """Download a finished task's MP4 through the gateway's content route."""
    route = PROTOCOLS[protocol].content_path(task_id)
    return download(client, route, dest, force=force, on_start=on_start, on_chunk=on_chunk)


def check_outcome(task: Task) -> Task:
    """Return a task that did not fail; raise the error whose exit code says how it ended."""
    error: WanvidError
    if task.status in (Status.FAILED, Status.CANCELED):
        detail = ": ".join(x for x in (task.error_code, task.error_message) if x) or "no reason given"
        error = TaskFailed(
            f"task {task.id} ended {task.status.value}: {detail}",
            hint="change the input or prompt as the message says, then create a new task",
        )
    elif task.status is Status.NOT_FOUND:
        error = NotFound(
            f"task {task.id} is unknown to the gateway or has expired",
            hint="check the id and --protocol; tasks and results live 24 h",
        )
    else:
        return task
    error.task_id, error.task = task.id, task.to_dict()
    raise error


def dry_run(v: Validated, base_url: str) -> dict[str, Any]:
    proto = PROTOCOLS[v.protocol]
    return {
        "method": "POST",
        "url": base_url.rstrip("/") + proto.create_path,
        "headers": {"Authorization": "Bearer ****", "Content-Type": "application/json"},  # never the key
        "body": abbreviate(body_for(v)),
    }


def abbreviate(value: Any, limit: int = 96) -> Any:
    """Shorten inline ``data:`` URIs so a dry run stays readable; everything else unchanged."""
    if isinstance(value, dict):
        return {k: abbreviate(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [abbreviate(v, limit) for v in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > limit:
        return f"{value[:48]}…[{len(value)} chars]"
    return value
