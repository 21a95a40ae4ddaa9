"""Reading a batch manifest: CSV or JSONL rows into typed request fields, every problem kept per row.

One row per video. A CSV has a header row naming the columns; a JSONL file has one JSON object per
line. Columns/keys are the create options (``image``, ``prompt``, ``negative_prompt``, ``model``,
``resolution``, ``duration``, ``seed``, ``prompt_extend``, ``watermark``, ``shot_type``, ``last_frame``,
``audio``, ``first_clip``, ``size``, ``generate_audio``; dashes work as well as underscores) plus
``output``, a file name for that row's video. An empty cell (or a missing key, or null) means "not set
here": the command line's value applies. Local paths are relative to the manifest's own directory, so a
manifest can live beside its images. Rows are numbered from 1 in the order they appear (the CSV header
and blank JSONL lines are not rows).

Nothing here touches the network or the journal: ``read`` returns ``Row``s, each with its fields or the
reasons it cannot be used, and the batch planner decides what to do with them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import FALSE, TRUE
from .errors import UsageError
from .request import VideoRequest

REQUEST_FIELDS = {f.name for f in dataclasses.fields(VideoRequest)}
INT_FIELDS = {"duration", "seed"}
BOOL_FIELDS = {"prompt_extend", "watermark", "generate_audio"}
PATH_FIELDS = {"image", "last_frame", "audio", "first_clip"}
COLUMNS = REQUEST_FIELDS | {"output"}
MAX_ROWS = 100_000  # a manifest bigger than this is a mistake (a video file passed by accident, say)


@dataclass
class Row:
    number: int
    values: dict[str, Any] = field(default_factory=dict)  # canonical field -> typed value, only those set
    problems: list[str] = field(default_factory=list)


def read(path: Path) -> list[Row]:
    """The rows of a CSV or JSONL manifest (by extension; else by whether it starts with '{')."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets save CSV with a byte-order mark
    except FileNotFoundError:
        raise UsageError(f"manifest {path} does not exist", hint="give the path of a .csv or .jsonl file") from None
    except IsADirectoryError:
        raise UsageError(f"manifest {path} is a directory", hint="give the path of a .csv or .jsonl file") from None
    except UnicodeDecodeError:
        raise UsageError(f"manifest {path} is not UTF-8 text", hint="save it as UTF-8 CSV or JSONL") from None
    except OSError as exc:
        raise UsageError(f"cannot read manifest {path}: {exc.strerror}") from None
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson") or (
        path.suffix.lower() != ".csv" and text.lstrip().startswith("{")
    )
    raw = _jsonl(text) if jsonl else _csv(text, path)
    if not raw:
        raise UsageError(f"manifest {path} has no rows", hint="one row per video: image, prompt and any option")
    if len(raw) > MAX_ROWS:
        raise UsageError(f"manifest {path} has {len(raw):,} rows; at most {MAX_ROWS:,} are taken at once")
    base = path.resolve().parent
    return [_row(n, values, base) for n, values in enumerate(raw, start=1)]


def _csv(text: str, path: Path) -> list[dict[str, Any] | str]:
    reader = csv.DictReader(io.StringIO(text, newline=""))  # the csv module splits lines, keeping quoted newlines
    if not reader.fieldnames or not any(name.strip() for name in reader.fieldnames):
        raise UsageError(f"manifest {path} has no header row", hint="the first line names the columns: image,prompt")
    unknown = [name for name in reader.fieldnames if name.strip() and _canonical(name) not in COLUMNS]
    if unknown:  # a misspelt column would silently drop a setting from every row: stop here
        raise UsageError(
            f"manifest {path} has unknown column {unknown[0]!r}", hint="columns: " + ", ".join(sorted(COLUMNS))
        )
    rows: list[dict[str, Any] | str] = []
    for record in reader:
        extra = record.pop(None, None)  # type: ignore[call-overload,unused-ignore]  # cells beyond the header
        if extra:
            rows.append(f"has {len(extra)} more cell(s) than the header has columns")
            continue
        rows.append({k: v for k, v in record.items() if k is not None})
    return rows


def _jsonl(text: str) -> list[dict[str, Any] | str]:
    rows: list[dict[str, Any] | str] = []
    for line in text.split("\n"):  # not splitlines(): JSON text may hold a raw U+2028 or form feed
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(f"is not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        rows.append(value if isinstance(value, dict) else "is not a JSON object")
    return rows


def _row(number: int, raw: dict[str, Any] | str, base: Path) -> Row:
    row = Row(number)
    if isinstance(raw, str):
        row.problems.append(raw)
        return row
    for key, value in raw.items():
        name = _canonical(str(key))
        if not name and (value is None or not str(value).strip()):
            continue  # a trailing comma in the header: an unnamed, empty column
        if name not in COLUMNS:
            row.problems.append(f"unknown column {key!r} (known: {', '.join(sorted(COLUMNS))})")
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # not set in this row: the command line's value applies
        try:
            row.values[name] = _typed(name, value, base)
        except ValueError as exc:
            row.problems.append(f"{name}: {exc}")
    return row


def _canonical(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _typed(name: str, value: Any, base: Path) -> Any:
    if name in INT_FIELDS:
        # 5.0 too: spreadsheets and pandas write a column of whole numbers with a blank as floats
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)
    if name in BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE or text in FALSE:
            return text in TRUE
        raise ValueError(f"{value!r} is not true or false")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    value = value.strip()
    if name == "resolution":
        return value.upper()  # 720p as the flag takes it
    if name == "shot_type":
        return value.lower()
    if name in PATH_FIELDS and not _is_url(value):
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else base / path)
    return value


def _is_url(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://", "data:"))
