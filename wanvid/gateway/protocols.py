"""The gateway's two wire protocols: routes, request bodies, and answers parsed into ``Task``.

``native`` is the Aliyun/DashScope format (``/aliyun/v1/...``, full feature set); ``unified`` is the
OpenAI/Sora-style ``/v1/videos`` (first frame only). Only this module knows JSON shapes; see
../shared/API.md for the source of each field.

Answers are untrusted: every field a ``Task`` gets from one goes through a checked path. Task ids are
validated (``task.id_problem``; surrounding whitespace is dropped, a bad id is a ``BadAnswer``), numbers
must be finite and in range (else they are dropped), text shown to the user is one printable line, and a
video URL has its spaces and control characters percent-encoded. Task ids in paths are percent-encoded
as one segment, and ``.``/``..`` are refused there (URL normalisation would route them elsewhere).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from wanvid.errors import BadAnswer, UsageError
from wanvid.rules.task import Task, id_problem, parse_status, shown_id

if TYPE_CHECKING:  # `status` and `wait` load this module but never build a body, nor need wanvid.rules.request
    from wanvid.rules.request import Validated


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
        from wanvid.rules.request import media_types  # loaded already: ``v`` came from it

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
        return _task_id(_obj(payload.get("output")), "task_id", _rid(payload))

    @staticmethod
    def parse_task(payload: dict[str, Any]) -> Task:
        rid = _rid(payload)
        out = _obj(payload.get("output"))
        raw_status = _word(out, "task_status", rid, payload)
        return Task(
            id=_task_id(out, "task_id", rid) or "",
            protocol="native",
            status=parse_status(raw_status),
            raw_status=raw_status,
            video_url=_url(_text(out, "video_url", rid, payload)),
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
        # new-api still sends task_id, a deprecated alias of id (dto/openai_video.go); the first one given counts
        key = "id" if payload.get("id") not in (None, "") else "task_id"
        return _task_id(payload, key)

    @staticmethod
    def parse_task(payload: dict[str, Any]) -> Task:
        raw_status = _word(payload, "status", None, payload)
        err = _obj(payload.get("error"))
        meta = _obj(payload.get("metadata"))
        return Task(
            id=Unified.task_id_of(payload) or "",
            protocol="unified",
            status=parse_status(raw_status),
            raw_status=raw_status,
            progress=_percent(payload.get("progress")),
            # new-api: metadata.url, an empty string until the video is done
            video_url=_url(_text(meta, "url", None, payload) or _text(payload, "video_url", None, payload)),
            error_code=_loose(err.get("code")),
            error_message=_loose(err.get("message")),
            model=_loose(payload.get("model")),
            submitted_at=_unix(payload.get("created_at")),
            finished_at=_unix(payload.get("completed_at")),
            expires_at=_timestamp(payload.get("expires_at")),
            raw=payload,
        )


Protocol = type[Native] | type[Unified]
PROTOCOLS: dict[str, Protocol] = {"native": Native, "unified": Unified}


def _seg(task_id: str) -> str:
    """A task id as one path segment: '../x' or 'a?b' must not change which URL is asked for.

    Ids from answers are checked when parsed; this refuses one from the command line (or a library caller)
    before it is sent: quoting cannot protect '..', which URL normalisation turns into the parent route."""
    problem = id_problem(task_id)
    if problem:
        raise UsageError(
            f"task id {shown_id(task_id)} cannot be asked for: {problem}",
            hint="give the id `wanvid create` printed; `wanvid list` shows the tasks this machine created",
        )
    return quote(task_id, safe="")


def _rid(payload: dict[str, Any]) -> str | None:
    """The answer's request id (DashScope's ``request_id``), as a line that can be shown."""
    return _loose(payload.get("request_id")) if isinstance(payload.get("request_id"), str) else None


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


def _task_id(obj: dict[str, Any], key: str, rid: str | None = None) -> str | None:
    """The task id under ``key``: None when absent or empty, else a usable id without its surrounding
    whitespace (a paid task is not lost to a stray newline), or a ``BadAnswer`` naming what is wrong."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    task_id = value.strip() if isinstance(value, str) else ""
    problem = id_problem(task_id) if isinstance(value, str) else f"it is a JSON {type(value).__name__}, not a string"
    if problem:
        raise BadAnswer(
            f"the gateway's answer has an unusable task id {shown_id(value)}: {problem}",
            request_id=rid,
            hint="the gateway or a proxy in between sent something unexpected; try again later",
        )
    return task_id


def _word(obj: dict[str, Any], key: str, rid: str | None, payload: dict[str, Any]) -> str:
    """A required status word: a string of printable characters (it is printed, and decides what happens)."""
    word = (_text(obj, key, rid, payload, required=True) or "").strip()
    if not word or len(word) > 100 or not word.isprintable():
        raise BadAnswer(
            f"the gateway's answer has a {key} that is not a status word: {shown_id(word)}",
            request_id=rid,
            hint="the gateway or a proxy in between sent something unexpected; try again later",
        )
    return word


def _url(value: str | None) -> str | None:
    """A video URL as one printable line: spaces and control characters inside are percent-encoded (as
    requests would send them), so the URL still works and never spills onto a second line."""
    if value is None:
        return None
    text = value.strip()
    return "".join(c if c.isprintable() and not c.isspace() else quote(c) for c in text) or None


def _loose(value: object) -> str | None:
    """A field only shown to the user: any scalar is shown as one line of printable text (runs of spaces and
    line breaks become one space, other control characters "?", as wanvid.cli.output shows them; cut at 1000
    characters), anything else dropped."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    try:
        text = str(value)
    except ValueError:  # an int of more digits than Python will print
        return None
    text = " ".join("".join(c if c.isprintable() or c.isspace() else "?" for c in text).split())
    return (text if len(text) <= 1000 else text[:999] + "…") or None


def _number(value: object) -> float | None:
    """A finite JSON number, else None: JSON text may say 1e400 (Python reads infinity) or NaN, and an
    integer may be too large for a float at all."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


LAST_TIME = 253402300800  # 10000-01-01: unix times past this are not times (datetime cannot show them)


def _timestamp(value: object) -> float | None:
    """A unix time: a finite number from 1970 to before the year 10000, else None."""
    number = _number(value)
    return number if number is not None and 0 <= number < LAST_TIME else None


def _percent(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and 0 <= number <= 100 else None


def _unix(value: object) -> str | None:
    number = _timestamp(value)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # a time no calendar holds: shown as missing, not a crash
        return None
