"""The operations the commands are made of: submit, query, judge an outcome, fetch the video, dry run, and
the models a key may use (``list_models``).

Each takes plain values and a ``Client`` and returns a ``Task``; no printing, no flags. This is the
layer a Python user would script against.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanvid.errors import BadAnswer, NotFound, TaskFailed, UsageError, WanvidError
from wanvid.gateway.client import NOT_FOUND_CODES, Client, request_id_of, retry_after
from wanvid.gateway.protocols import PROTOCOLS, Protocol
from wanvid.rules.task import Status, Task

if TYPE_CHECKING:  # the body and download modules load only when a command sends or downloads
    from wanvid.gateway.body import StreamedBody
    from wanvid.gateway.download import Downloaded, PartStore, Progress
    from wanvid.rules.request import Validated


def streamed_body(v: Validated) -> StreamedBody:
    """The create body as sent: local files streamed as base64, everything else as given."""
    from wanvid.gateway.body import StreamedBody, placeholder

    files = {name: m.local for name, m in v.media.items() if m.local}
    body = PROTOCOLS[v.protocol].build_body(v, lambda name: placeholder(name) if name in files else v.media[name].ref)
    return StreamedBody(body, files)


def body_for(v: Validated) -> dict[str, Any]:
    """The create body exactly as the gateway receives it (reads every local file; for tests and tools)."""
    return json.loads(b"".join(streamed_body(v)))


def submit(client: Client, v: Validated) -> Task:
    _check_sendable(v)
    proto = PROTOCOLS[v.protocol]
    try:
        payload = client.post_json(proto.create_path, streamed_body(v))
        task = _created(proto, payload)
    except BadAnswer as exc:
        exc.hint = "the gateway may have created the task anyway; look at your tasks in the ope.ai console first"
        raise
    if not task.id:  # the create was sent and may be paid for: the console is the only place left to look
        raise BadAnswer(
            "the gateway accepted the request but sent no task id",
            request_id=task.request_id,
            hint="the gateway may have created a task anyway; look at your tasks in the ope.ai console first",
        )
    task.model = task.model or v.request.model
    return task


def _check_sendable(v: Validated) -> None:
    """The upload rules, for every caller and not only the commands: a local audio or video file for wan2.7's
    media list goes by URL (``wanvid.gateway.upload``), and a file meant to go by URL has been uploaded. Nothing is
    sent otherwise: the task would be paid for with media the gateway cannot fetch."""
    from wanvid.gateway.upload import Hosted, Hosting, prepare

    for m in v.media.values():
        if isinstance(m, Hosted) and m.url is None and m.file is not None:
            raise UsageError(
                f"{m.file.path} is to be sent by URL but was not uploaded",
                hint="call wanvid.gateway.upload.publish first",
            )
    prepare(v, Hosting(None, False), connect=False)  # raises for a local file that may not go inline


def _created(proto: Protocol, payload: dict[str, Any]) -> Task:
    """The create answer as a task. An id with a missing or odd status is still a task that was paid for."""
    try:
        return proto.parse_task(payload)
    except BadAnswer:
        task_id = proto.task_id_of(payload)
        if task_id is None:
            raise
        return Task(task_id, proto.name, Status.PENDING, "")


def query(client: Client, protocol: str, task_id: str) -> Task:
    proto = PROTOCOLS[protocol]

    def parse(payload: dict[str, Any], resp: Any) -> Task:
        task = proto.parse_task(payload)
        task.id = task.id or task_id
        task.request_id = task.request_id or request_id_of(resp)
        task.retry_after = retry_after(resp)  # a poll hint; the poller bounds it
        if task.status is Status.UNKNOWN and (task.error_code or "").lower() in NOT_FOUND_CODES:
            task.status = Status.NOT_FOUND  # an UNKNOWN that names its reason: the gateway has no such task
        return task

    return client.get_json(proto.task_path(task_id), parse)


def fetch_video(
    client: Client,
    task: Task,
    dest: Path,
    *,
    force: bool,
    store: PartStore | None = None,
    progress: Progress | None = None,
    refresh: Callable[[], str | None] | None = None,
    placed: Callable[[Downloaded], None] | None = None,
) -> Downloaded:
    """Download a finished task's MP4: the gateway's content route, else the task's signed video URL.

    ``refresh`` returns a current signed URL when the task's is missing or refused; by default the task
    is queried again."""
    from wanvid.gateway.download import download

    def requery() -> str | None:
        return query(client, task.protocol, task.id).video_url

    route = PROTOCOLS[task.protocol].content_path(task.id)
    return download(
        client,
        task.id,
        route,
        dest,
        force=force,
        video_url=task.video_url,
        refresh=refresh or requery,
        store=store,
        progress=progress,
        placed=placed,
    )


def check_outcome(task: Task, *, alive: bool = False) -> Task:
    """Return a task that did not fail; raise the error whose exit code says how it ended.

    ``alive``: the caller knows the task is young, so an UNKNOWN answer is a passing state, not "gone"."""
    error: WanvidError
    if task.status in (Status.FAILED, Status.CANCELED):
        detail = ": ".join(x for x in (task.error_code, task.error_message) if x) or "no reason given"
        error = TaskFailed(
            f"task {task.id} ended {task.status.value}: {detail}",
            hint="change the input or prompt as the message says, then create a new task",
        )
    elif task.status is Status.NOT_FOUND or (task.status is Status.UNKNOWN and not alive):
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

    def shown(name: str) -> str:
        local = v.media[name].local
        if local is None:
            return v.media[name].ref
        return f"data:{local.mime};base64,…[{4 * -(-local.size_bytes // 3)} chars of {local.path}]"

    return {
        "method": "POST",
        "url": base_url.rstrip("/") + proto.create_path,
        "headers": {"Authorization": "Bearer ****", "Content-Type": "application/json"},  # never the key
        "body": abbreviate(proto.build_body(v, shown)),
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


MODELS_PATH = "/v1/models"  # new-api's model list (router/relay-router.go): what the key may use, free of charge


def list_models(client: Client) -> list[dict[str, Any]]:
    """The models the gateway lists for the client's key: new-api's ``{"data": [{"id", "object", "created",
    "owned_by", "supported_endpoint_types"}], "object": "list"}`` (controller/model.go ListModels); an entry
    without a string ``id`` is left out, an answer without a ``data`` list is a BadAnswer."""

    def parse(payload: dict[str, Any], resp: Any) -> list[dict[str, Any]]:
        data = payload.get("data")
        if not isinstance(data, list):
            raise BadAnswer("the model list has no data list", request_id=request_id_of(resp, payload))
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    return client.get_json(MODELS_PATH, parse)


# Words in a model id, a "type" (new-api's newer controller/model.go availableModelType) or endpoint types
# that make it a video model; new-api lists most models with ["openai"] whatever they do.
VIDEO_WORDS = ("i2v", "t2v", "video", "sora", "veo", "kling", "seedance", "hailuo", "vidu")
VIDEO_ENDPOINTS = {"openai-video", "video"}


def is_video_model(entry: dict[str, Any]) -> bool:
    kinds = entry.get("supported_endpoint_types")
    if entry.get("type") == "video" or (isinstance(kinds, list) and VIDEO_ENDPOINTS & {str(k) for k in kinds}):
        return True
    low = str(entry.get("id", "")).lower()
    return any(word in low for word in VIDEO_WORDS) and "music" not in low
