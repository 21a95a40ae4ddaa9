"""The gateway's two wire protocols: routes, request bodies, and answers parsed into ``Task``.

``native`` is the Aliyun/DashScope format (``/aliyun/v1/...``, full feature set); ``unified`` is the
OpenAI/Sora-style ``/v1/videos`` (first frame only). Only this module knows JSON shapes; see
../shared/API.md for the source of each field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import BadAnswer
from .task import Task, parse_status

if TYPE_CHECKING:  # `status` and `wait` load this module but never build a body, nor need wanvid.request
    from .request import Validated


class Native:
    name = "native"
    create_path = "/aliyun/v1/videos/generations"

    @staticmethod
    def task_path(task_id: str) -> str:
        return f"/aliyun/v1/tasks/{_seg(task_id)}"

    @staticmethod
    def content_path(task_id: str) -> str:
        return f"/aliyun/v1/videos/{_seg(task_id)}/content"

    @staticmethod
    def build_body(v: Validated, url: Callable[[str], str]) -> dict[str, Any]:
        """``url(field)`` gives the media URL to send (inline data for local files)."""
        from .request import media_types  # loaded already: ``v`` came from it

        r = v.request
        inp: dict[str, Any] = {}
        if r.prompt is not None:
            inp["prompt"] = r.prompt
        if r.negative_prompt is not None:
            inp["negative_prompt"] = r.negative_prompt
        if v.spec is not None and not v.spec.native_media:  # wan2.6-i2v: flat URL fields
            inp["img_url"] = url("image")
            if r.audio is not None:
                inp["audio_url"] = url("audio")
        else:  # wan2.7-i2v and models wanvid does not know: the newer media list
            fields = {
                "first_frame": "image",
                "first_clip": "first_clip",
                "last_frame": "last_frame",
                "driving_audio": "audio",
            }
            inp["media"] = [{"type": t, "url": url(fields[t])} for t in media_types(r)]
        params = {
            k: getattr(r, k)
            for k in ("resolution", "duration", "prompt_extend", "watermark", "seed", "shot_type")
            if getattr(r, k) is not None
        }
        body: dict[str, Any] = {"model": r.model, "input": inp}
        if params:
            body["parameters"] = params
        return body

    @staticmethod
    def task_id_of(payload: dict[str, Any]) -> str | None:
        task_id = _obj(payload.get("output")).get("task_id")
        return task_id if isinstance(task_id, str) and task_id else None

    @staticmethod
    def parse_task(payload: dict[str, Any]) -> Task:
        rid = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
        out = _obj(payload.get("output"))
        raw_status = _text(out, "task_status", rid, payload, required=True) or ""
        return Task(
            id=_text(out, "task_id", rid, payload) or "",
            protocol="native",
            status=parse_status(raw_status),
            raw_status=raw_status,
            video_url=_text(out, "video_url", rid, payload),
            # DashScope puts a failed task's reason in output; a gateway in front may put it at the top level
            error_code=_loose(out.get("code")) or _loose(payload.get("code")),
            error_message=_loose(out.get("message")) or _loose(payload.get("message")),
            submitted_at=_loose(out.get("submit_time")),
            started_at=_loose(out.get("scheduled_time")),
            finished_at=_loose(out.get("end_time")),
            request_id=rid,
            raw=payload,
        )


class Unified:
    name = "unified"
    create_path = "/v1/videos"

    @staticmethod
    def task_path(task_id: str) -> str:
        return f"/v1/videos/{_seg(task_id)}"

    @staticmethod
    def content_path(task_id: str) -> str:
        return f"/v1/videos/{_seg(task_id)}/content"

    @staticmethod
    def build_body(v: Validated, url: Callable[[str], str]) -> dict[str, Any]:
        r = v.request
        body: dict[str, Any] = {"model": r.model}
        if r.prompt is not None:
            body["prompt"] = r.prompt
        # ``validate`` always fills size and seconds in, both required by ope.ai's Create Video page, and gives
        # size in the form to send (see request.SIZE_FORMS).
        if r.size is not None:
            body["size"] = r.size
        if r.duration is not None:
            body["seconds"] = str(r.duration)  # the unified endpoint documents seconds as a string
        if r.generate_audio is not None:
            body["generate_audio"] = r.generate_audio
        if r.seed is not None:
            body["seed"] = r.seed
        body["input_reference"] = {
            "content": [{"type": "image_url", "role": "first_frame", "image_url": {"url": url("image")}}]
        }
        return body

    @staticmethod
    def task_id_of(payload: dict[str, Any]) -> str | None:
        for key in ("id", "task_id"):  # new-api still sends task_id, a deprecated alias of id (dto/openai_video.go)
            task_id = payload.get(key)
            if isinstance(task_id, str) and task_id:
                return task_id
        return None

    @staticmethod
    def parse_task(payload: dict[str, Any]) -> Task:
        raw_status = _text(payload, "status", None, payload, required=True) or ""
        err = _obj(payload.get("error"))
        meta = _obj(payload.get("metadata"))
        _text(payload, "id", None, payload)  # a mistyped id is a BadAnswer, as in every other field we act on
        return Task(
            id=Unified.task_id_of(payload) or "",
            protocol="unified",
            status=parse_status(raw_status),
            raw_status=raw_status,
            progress=_percent(payload.get("progress")),
            # new-api: metadata.url, an empty string until the video is done
            video_url=_text(meta, "url", None, payload) or _text(payload, "video_url", None, payload),
            error_code=_loose(err.get("code")),
            error_message=_loose(err.get("message")),
            model=_loose(payload.get("model")),
            submitted_at=_unix(payload.get("created_at")),
            finished_at=_unix(payload.get("completed_at")),
            expires_at=_number(payload.get("expires_at")),
            raw=payload,
        )


Protocol = type[Native] | type[Unified]
PROTOCOLS: dict[str, Protocol] = {"native": Native, "unified": Unified}


def _seg(task_id: str) -> str:
    """A task id as one path segment: '../x' or 'a?b' must not change which URL is asked for."""
    return quote(task_id, safe="")


def _obj(value: object) -> dict[str, Any]:
    """A JSON object from the server, or {} when it sent something else (a missing or mistyped field)."""
    return value if isinstance(value, dict) else {}


def _text(
    obj: dict[str, Any], key: str, rid: str | None, payload: dict[str, Any], required: bool = False
) -> str | None:
    """A string field wanvid acts on: a wrong type is a ``BadAnswer``, never a guess."""
    value = obj.get(key)
    if isinstance(value, str) and value:
        return value
    if value is None or value == "":
        if not required:
            return None
        said = ": ".join(str(payload[k]) for k in ("code", "message") if isinstance(payload.get(k), str))
        problem = f"no {key}" + (f" ({said})" if said else "")
    else:
        problem = f"a {key} that is a JSON {type(value).__name__}, not a string"
    raise BadAnswer(
        f"the gateway's answer has {problem}",
        request_id=rid,
        hint="the gateway or a proxy in between sent something unexpected; try again later",
    )


def _loose(value: object) -> str | None:
    """A field only shown to the user: any scalar is shown as text, anything else dropped."""
    if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
        return str(value)
    return None


def _number(value: object) -> float | None:
    """A finite JSON number (JSON text may say 1e400, which Python reads as infinity), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _percent(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and 0 <= number <= 100 else None


def _unix(value: object) -> str | None:
    number = _number(value)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # a time no calendar holds: shown as missing, not a crash
        return None
