"""The sandbox's answer styles ("flavors"): the words, shapes and errors of the unified protocol in each.

``Sandbox(flavor=...)`` picks one, ``POST /_sandbox/flavor`` switches it at runtime:

- ``docs`` (the default): ope.ai's own pages: the task-table words (``NOT_START`` until the gateway's
  first poll, ``QUEUED``, ``IN_PROGRESS``, ``SUCCESS``, ``FAILURE``, ``UNKNOWN``), 404 ``video not found``
  for an unknown unified id, and a unified create without ``prompt``, ``size`` or ``seconds`` refused.
- ``newapi``: what new-api's Go code (QuantumNous/new-api at 4ca47ee23, the base of ope.ai's fork)
  answers; comments cite its files. Lowercase unified statuses with ``progress`` always, ``task_<32>``
  ids with a ``task_id`` alias, ``metadata.url``, flat ``{code, message, data}`` task errors, its 401,
  an empty 429 from its own limiter, and a content route that proxies without ``Range``.
- ``house``: the sandbox's own first style: uppercase unified statuses (``status_style`` picks other
  words), ``{"error": {...}}`` envelopes everywhere, 400 ``task_not_exist`` for an unknown unified id,
  ``size``/``seconds`` optional. Kept for suites written against it.

``docs`` is the default because it is what ope.ai tells its users, strictest rules included; ``newapi``
is the other half of the truth (the code), and a client must pass against both.

This module owns the parts of an answer that depend on the flavor alone: status words, the unified task
view, task ids, not-found and not-ready errors and the unified create's extra rules. The few flavor
branches woven into request handling (new-api's 401, its empty 429, flat errors, its content proxy) stay
in ``handler``, next to the flow they change.
"""

from __future__ import annotations

import secrets
import string
import uuid
from typing import Any

from wanvid.sandbox.tasks import FAILED, PENDING, RUNNING, SUCCEEDED, UNKNOWN, Task, not_polled, status_at
from wanvid.sandbox.validation import Reject, bad

STATUS_STYLES = ("upper", "openai", "newapi")
# How the gateway answers (see the module docstring): "docs" (the default) follows ope.ai's pages,
# "newapi" what new-api's Go code (commit 4ca47ee23) answers, "house" is the sandbox's first style.
FLAVORS = ("house", "docs", "newapi")

# Native vocabulary is the internal one; the unified route maps it per ``status_style``.
_UNIFIED_STATUS: dict[str, dict[str, str]] = {
    "upper": {PENDING: "QUEUED", RUNNING: "IN_PROGRESS", SUCCEEDED: "SUCCESS", FAILED: "FAILURE"},
    "openai": {PENDING: "queued", RUNNING: "in_progress", SUCCEEDED: "completed", FAILED: "failed"},
    "newapi": {PENDING: "SUBMITTED", RUNNING: "IN_PROGRESS", SUCCEEDED: "SUCCESS", FAILED: "FAILURE"},
}
# The flavors' words. new-api's task table (model/task.go:34-41) has the "upper" ones: ope.ai's pages show
# them, and so does new-api's content route (controller/video_proxy.go:52-55). new-api's own unified route
# answers OpenAI's (dto/openai_video.go:9-13, ali/adaptor.go:522 convertAliStatus).
_TASK_TABLE, _NEWAPI_WORDS = _UNIFIED_STATUS["upper"], _UNIFIED_STATUS["openai"]
for _words in _UNIFIED_STATUS.values():  # the unknown_queries fault's transient word, in each vocabulary
    _words[UNKNOWN] = "unknown" if _words[PENDING].islower() else "UNKNOWN"
# new-api's progress per task-table state after a poll (relay/channel/task/taskcommon/helpers.go:71-74);
# a task not polled yet has "0%" (model/task.go:202).
_NEWAPI_PROGRESS = {PENDING: 20, RUNNING: 30, SUCCEEDED: 100, FAILED: 100}
_ID_CHARS = string.ascii_letters + string.digits


def new_task_id(flavor: str) -> str:
    """A new task's id: new-api's public ids are "task_" and 32 random letters and digits
    (model/task.go:139-141); the other flavors' are UUIDs."""
    if flavor == "newapi":
        return "task_" + "".join(secrets.choice(_ID_CHARS) for _ in range(32))
    return str(uuid.uuid4())


def check_unified_create(flavor: str, body: Any) -> None:
    """The flavor's own rules for a unified create, checked before the protocol's (``validation``)."""
    obj = body if isinstance(body, dict) else {}
    if flavor == "docs":
        # ope.ai's Create Video page marks prompt, size and seconds required.
        for key in ("prompt", "size", "seconds"):
            if obj.get(key) in (None, ""):
                raise bad(key, f"{key} is required")
    elif flavor == "newapi" and not str(obj.get("prompt") or "").strip():
        # relay/common/relay_utils.go:74-77 (validatePrompt), answered flat.
        raise Reject(400, "invalid_request", "prompt is required")


def created_answer(flavor: str, view: dict[str, Any]) -> dict[str, Any]:
    """A unified create's answer: the fields of the new task's ``unified_view`` the flavor sends."""
    if flavor == "newapi":
        # ali/adaptor.go:405-416 (DoResponse): no prompt, size or seconds; progress 0 (an int, always
        # sent: dto/openai_video.go:21); task_id, the deprecated alias of id.
        keys: tuple[str, ...] = ("id", "task_id", "object", "model", "status", "progress", "created_at")
    else:
        keys = ("id", "object", "status", "created_at", "model", "prompt", "size", "seconds")
    return {k: view[k] for k in keys}


def unified_status(flavor: str, status_style: str, task: Task, status: str, elapsed: float) -> str:
    """The unified route's word for the native ``status``."""
    if flavor == "newapi":
        # Before its first poll the stored upstream answer is the create's PENDING: "queued"
        # (ali/adaptor.go:497, 522-526), never NOT_START on this route.
        return _NEWAPI_WORDS[status]
    if flavor == "docs":  # ope.ai's pages show the task table's own words
        return task_table_status(task, status, elapsed)
    if status_style == "newapi" and not_polled(task, status, elapsed):
        return "NOT_START"
    return _UNIFIED_STATUS[status_style][status]


def task_table_status(task: Task, status: str, elapsed: float) -> str:
    """new-api's task-table word (model/task.go:34-41), as its content route and ope.ai's pages show it."""
    return "NOT_START" if not_polled(task, status, elapsed) else _TASK_TABLE[status]


def unified_view(
    flavor: str, status_style: str, task: Task, status: str, elapsed: float, *, url: str, expire: bool
) -> dict[str, Any]:
    """A unified query's answer. ``url``: the task's signed video URL; ``expire``: the expire fault."""
    if flavor == "newapi":
        return _newapi_view(task, status, elapsed, url=url, expire=expire)
    view: dict[str, Any] = {
        "id": task.id,
        "object": "video",
        "status": unified_status(flavor, status_style, task, status, elapsed),
        "created_at": int(task.created_wall),
        "model": task.model,
        "prompt": task.prompt,
        "size": task.size,
        "seconds": task.seconds,
    }
    ended = status in (SUCCEEDED, FAILED)
    if status == RUNNING:
        done = (elapsed - task.queue_seconds) / task.run_seconds if task.run_seconds > 0 else 1.0
        view["progress"] = max(0, min(99, int(100 * done)))
    elif ended:
        view["progress"] = 100
        view["completed_at"] = int(task.created_wall + task.ends_after)
    view["expires_at"] = int(task.created_wall + task.ttl_seconds)
    if status == FAILED and task.failure:
        code, message = task.failure
        view["error"] = {"code": code, "message": message}
    elif status == SUCCEEDED:
        view["metadata"] = {"url": url}
    return view


def _newapi_view(task: Task, status: str, elapsed: float, *, url: str, expire: bool) -> dict[str, Any]:
    """A unified answer as new-api's ali adaptor builds it (ConvertToOpenAIVideo, ali/adaptor.go:489-520,
    dto/openai_video.go:15-30): no prompt, size, seconds or expires_at; progress from the task table's
    steps; completed_at is the task row's last update, set while it still runs; metadata.url always
    there, empty until the video is ready; a failed task carries error {code, message} at HTTP 200."""
    # UNKNOWN (the unknown_queries fault) changes the word only: the row keeps its progress.
    shown = status_at(task, elapsed, expire=expire) or status if status == UNKNOWN else status
    if not_polled(task, shown, elapsed):
        progress, updated = 0, 0.0
    else:
        progress = _NEWAPI_PROGRESS[shown]
        steps = (task.queue_seconds / 2, min(task.queue_seconds, task.ends_after), task.ends_after)
        updated = max((step for step in steps if step <= elapsed), default=0.0)
    view: dict[str, Any] = {
        "id": task.id,
        "task_id": task.id,  # the deprecated alias (dto/openai_video.go:17; doubao/adaptor.go:352)
        "object": "video",
        "model": task.model,
        "status": _NEWAPI_WORDS[status],
        "progress": progress,
        "created_at": int(task.created_wall),
        "completed_at": int(task.created_wall + updated),
        "metadata": {"url": url if status == SUCCEEDED else ""},
    }
    if status == FAILED and task.failure:
        code, message = task.failure
        view["error"] = {"code": code, "message": message}
    return view


def unified_not_found(flavor: str, task_id: str, *, content: bool) -> Reject:
    """An unknown or expired id on a unified route, as the flavor answers it."""
    if flavor == "docs":  # ope.ai's Get Video Task page
        error = {"message": "video not found", "type": "NotFound", "param": "", "code": "ResourceNotFound"}
        return Reject(404, "ResourceNotFound", error["message"], body={"error": error})
    if flavor == "newapi" and content:  # controller/video_proxy.go:24-31, 47-49: no code
        error = {"message": "Task not found", "type": "invalid_request_error"}
        return Reject(404, "", error["message"], body={"error": error})
    if flavor == "newapi":  # relay/relay_task.go:374-377: the message is the code itself
        return Reject(400, "task_not_exist", "task_not_exist")
    return Reject(400, "task_not_exist", f"Task {task_id} does not exist or has expired")


def not_ready(flavor: str, status_style: str, task: Task, status: str, elapsed: float, *, native: bool) -> Reject:
    """A content request for a task that has no video (yet), as the route and flavor answer it."""
    if not native and flavor == "newapi":
        # controller/video_proxy.go:52-55: the task-table word, no code.
        message = f"Task is not completed yet, current status: {task_table_status(task, status, elapsed)}"
        return Reject(400, "", message, body={"error": {"message": message, "type": "invalid_request_error"}})
    shown = status if native else unified_status(flavor, status_style, task, status, elapsed)
    return bad(None, f"Task is not completed yet, current status: {shown}")
