"""Reading a batch manifest: CSV or JSONL rows into typed request fields, every problem kept per row.

One row per video. A CSV has a header row naming the columns; a JSONL file has one JSON object per
line. Columns/keys are the create options (``image``, ``prompt``, ``negative_prompt``, ``model``,
``resolution``, ``duration``, ``seed``, ``prompt_extend``, ``watermark``, ``shot_type``, ``last_frame``,
``audio``, ``first_clip``, ``size``, ``generate_audio``; dashes work as well as underscores) plus
``output``, a file name for that row's video, and ``prompt_file`` / ``negative_prompt_file``, a UTF-8 file
holding the row's prompt (read as ``--prompt-file`` reads it; a row may give a prompt or its file, not
both). An empty cell (or a missing key, or null) means "not set
here": the command line's value applies. Local paths are relative to the manifest's own directory, so a
manifest can live beside its images. Rows are numbered from 1 in the order they appear (the CSV header
and blank JSONL lines are not rows).

The manifest must be a regular file of at most ``MAX_BYTES`` (a FIFO or a device is refused before it
is read: it could block or never end), and what is in it is bounded too: ``MAX_ROWS`` rows, ``MAX_CELL``
characters a cell. A column set twice (``prompt`` and ``Prompt``) is refused, since one of the two would
be dropped silently. Whatever the bytes, a problem is a ``UsageError`` (the file) or a row's problem.

Nothing here touches the network or the journal: ``read`` returns ``Row``s, each with its fields or the
reasons it cannot be used, and the batch planner decides what to do with them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import reprlib
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanvid import config
from wanvid.config import FALSE, TRUE
from wanvid.errors import FieldError, UsageError
from wanvid.rules.request import VideoRequest, read_prompt_file

REQUEST_FIELDS = {f.name for f in dataclasses.fields(VideoRequest)}
INT_FIELDS = {"duration", "seed"}
BOOL_FIELDS = {"prompt_extend", "watermark", "generate_audio"}
PATH_FIELDS = {"image", "last_frame", "audio", "first_clip"}
PROMPT_FILES = {"prompt_file": "prompt", "negative_prompt_file": "negative_prompt"}  # column -> the field it fills
COLUMNS = REQUEST_FIELDS | {"output"} | set(PROMPT_FILES)
MAX_ROWS = 100_000  # a manifest bigger than this is a mistake (a video file passed by accident, say)
# MAX_ROWS rows of a path, a prompt of a few hundred characters and a few options take ~60 MB; anything
# bigger is not a manifest, and the whole text is held in memory while it is read.
MAX_BYTES = 64 * 1024 * 1024
# A prompt is at most a few thousand characters; a bigger cell is a mistake, not a setting. Only an
# inline data: URI (an image file as text) is bigger, and the model's byte limits check it as a file.
MAX_CELL = 1024 * 1024
MAX_DIGITS = 20  # a duration or seed has at most 10 digits; int() of 5,000 digits raises, float() says inf
_shown = reprlib.Repr()  # a cell quoted in a message: bounded, whatever it holds
_shown.maxstring = _shown.maxother = 60
_shown.maxlevel = 2
HINT = "give the path of a .csv or .jsonl file"
_SPLIT = f"split it into manifests of at most {MAX_ROWS:,} rows"


@dataclass
class Row:
    number: int
    values: dict[str, Any] = field(default_factory=dict)  # canonical field -> typed value, only those set
    problems: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # a field read from a file -> the column that named it


def read(path: Path) -> list[Row]:
    """The rows of a CSV or JSONL manifest (by extension; else by whether it starts with '{')."""
    try:
        text = _load(path).decode("utf-8-sig")  # -sig: spreadsheets save CSV with a byte-order mark
    except UnicodeDecodeError:
        raise UsageError(f"manifest {path} is not UTF-8 text", hint="save it as UTF-8 CSV or JSONL") from None
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson") or (
        path.suffix.lower() != ".csv" and text.lstrip().startswith("{")
    )
    base = path.resolve().parent
    rows: list[Row] = []
    for number, raw in enumerate(_jsonl(text) if jsonl else _csv(text, path), start=1):
        if number > MAX_ROWS:
            raise UsageError(f"manifest {path} has over {MAX_ROWS:,} rows, the most taken at once", hint=_SPLIT)
        rows.append(_row(number, raw, base))  # one at a time: the raw cells of 100,000 rows are not all kept
    if not rows:
        raise UsageError(f"manifest {path} has no rows", hint="one row per video: image, prompt and any option")
    return rows


def _load(path: Path) -> bytes:
    """The manifest's bytes, if it is a regular file of at most MAX_BYTES."""
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, forever if there is none.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UsageError(f"manifest {path} does not exist", hint=HINT) from None
    except IsADirectoryError:
        raise UsageError(f"manifest {path} is a directory", hint=HINT) from None
    except OSError as exc:
        raise UsageError(f"cannot read manifest {path}: {exc.strerror}", hint=HINT) from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):  # opened read-only it is a descriptor, but no file object takes it
        os.close(fd)
        raise UsageError(f"manifest {path} is a directory", hint=HINT)
    with open(fd, "rb") as f:
        mode, size = st.st_mode, st.st_size
        if not stat.S_ISREG(mode):  # a FIFO, a pipe, /dev/zero: it may block or never end
            raise UsageError(
                f"manifest {path} is not a regular file (a pipe or a device)",
                hint="save the rows to a .csv or .jsonl file and give its path",
            )
        if size > MAX_BYTES:
            raise UsageError(f"manifest {path} is {size:,} bytes; at most {MAX_BYTES:,} are read", hint=_SPLIT)
        try:
            data = f.read(MAX_BYTES + 1)  # the file may grow while it is read
        except OSError as exc:
            raise UsageError(f"cannot read manifest {path}: {exc.strerror}", hint=HINT) from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"manifest {path} is over {MAX_BYTES:,} bytes", hint=_SPLIT)
    return data


@contextmanager
def _big_cells() -> Iterator[None]:
    """Let the csv module read any cell the file can hold (its default limit is 128 KiB, and over it the
    whole file fails); the cells over MAX_CELL are then the rows' problems, named by row."""
    old = csv.field_size_limit(MAX_BYTES)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _csv(text: str, path: Path) -> Iterator[dict[str, Any] | str]:
    """Each record's cells by column name, or why it is not a row."""
    reader = csv.DictReader(io.StringIO(text, newline=""))  # the csv module splits lines, keeping quoted newlines
    try:
        with _big_cells():
            names = reader.fieldnames
            if not names or not any(name.strip() for name in names):
                raise UsageError(
                    f"manifest {path} has no header row", hint="the first line names the columns: image,prompt"
                )
            _check_header(names, path)
            for record in reader:
                extra = record.pop(None, None)  # type: ignore[call-overload,unused-ignore]  # cells beyond the header
                if extra:
                    yield f"has {len(extra)} more cell(s) than the header has columns"
                    continue
                yield {k: v for k, v in record.items() if k is not None}
    except csv.Error as exc:
        raise UsageError(f"manifest {path} is not CSV at line {reader.line_num}: {exc}", hint=HINT) from None


def _check_header(names: Sequence[str], path: Path) -> None:
    unknown = [name for name in names if name.strip() and _canonical(name) not in COLUMNS]
    if unknown:  # a misspelt column would silently drop a setting from every row: stop here
        raise UsageError(
            f"manifest {path} has unknown column {_shown.repr(unknown[0])}",
            hint="columns: " + ", ".join(sorted(COLUMNS)),
        )
    first: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        canonical = _canonical(name)
        if canonical and canonical in first:  # only one of the two cells would reach the request
            raise UsageError(
                f"manifest {path} has the column {canonical!r} twice: column {first[canonical]} "
                f"({names[first[canonical] - 1]!r}) and column {number} ({name!r})",
                hint="keep one of them",
            )
        first.setdefault(canonical, number)


class _Twice(ValueError):
    """A JSON object with a key twice: json.loads would keep only the last one's value."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Twice(key)
        obj[key] = value
    return obj


def _jsonl(text: str) -> Iterator[dict[str, Any] | str]:
    """Each line's object, or why it is not a row."""
    for line in text.split("\n"):  # not splitlines(): JSON text may hold a raw U+2028 or form feed
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=_object)
        except json.JSONDecodeError as exc:
            yield f"is not valid JSON ({exc.msg} at column {exc.colno})"
        except _Twice as exc:
            yield f"has the key {_shown.repr(exc.args[0])} twice"
        except RecursionError:
            yield "is nested too deeply to be a row (a row is one object of plain values)"
        except ValueError as exc:  # an integer of more than 4,300 digits
            yield f"holds a number wanvid cannot read ({str(exc).split(':')[0]})"
        else:
            yield value if isinstance(value, dict) else "is not a JSON object"


def _row(number: int, raw: dict[str, Any] | str, base: Path) -> Row:
    row = Row(number)
    if isinstance(raw, str):
        row.problems.append(raw)
        return row
    keys: dict[str, str] = {}  # canonical field -> the key that set it
    for key, value in raw.items():
        name = _canonical(str(key))
        if not name and (value is None or (isinstance(value, str) and not value.strip())):
            continue  # a trailing comma in the header: an unnamed, empty column
        if name not in COLUMNS:
            row.problems.append(f"unknown column {_shown.repr(key)} (known: {', '.join(sorted(COLUMNS))})")
            continue
        if name in keys:  # "prompt" and "Prompt": one of them would be dropped
            row.problems.append(f"sets {name} twice ({keys[name]!r} and {key!r})")
            continue
        keys[name] = key
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # not set in this row: the command line's value applies
        if isinstance(value, str) and len(value) > MAX_CELL and not (name in PATH_FIELDS and _is_data(value)):
            row.problems.append(f"{name}: the cell has {len(value):,} characters; at most {MAX_CELL:,} are taken")
            continue
        try:
            row.values[name] = _typed(name, value, base)
        except ValueError as exc:
            row.problems.append(f"{name}: {exc}")
    _check_prompt_cells(row, base)
    _read_prompt_files(row, base)
    return row


def _check_prompt_cells(row: Row, base: Path) -> None:
    """A prompt cell of "-" or "@FILE" (FILE existing): a prompt_file meant, which sent as it is would pay for a
    video of that text; refused like ``-p -`` and ``-p @FILE`` on the command line."""
    for name, column in (("prompt", "prompt_file"), ("negative_prompt", "negative_prompt_file")):
        text = row.values.get(name)
        if text == "-":
            row.problems.append(f"{name}: '-' would be sent as the text; give a file in the {column} column")
        elif isinstance(text, str) and text.startswith("@") and _names_file(base, text[1:]):
            row.problems.append(
                f"{name}: {text!r} would send the file's name, not what it holds;"
                f" put {text[1:]!r} in the {column} column"
            )


def _names_file(base: Path, name: str) -> bool:
    try:
        path = (base / Path(name).expanduser()) if name else None
        return path is not None and path.is_file()
    except (OSError, ValueError):  # a NUL, a name too long: no file
        return False


def _read_prompt_files(row: Row, base: Path) -> None:
    """A prompt_file cell's text into the row's prompt (so every row is read before any is sent)."""
    for column, name in PROMPT_FILES.items():
        ref = row.values.pop(column, None)
        if ref is None:
            continue
        if name in row.values:
            row.problems.append(f"sets both {name} and {column}; keep one")
        elif ref == "-":
            row.problems.append(f"{column}: - (standard input) cannot be read for a row; give a file")
        else:
            try:
                row.values[name] = read_prompt_file(ref, column, base)
                row.files[name] = column
            except FieldError as exc:
                row.problems.append(f"{column}: {exc.message}")


def _canonical(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _typed(name: str, value: Any, base: Path) -> Any:
    if name in INT_FIELDS:
        return _whole(value)
    if name in BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int, float)) else None
        if text in TRUE or text in FALSE:
            return text in TRUE
        raise ValueError(f"{_shown.repr(value)} is not true or false")
    if not isinstance(value, str):
        raise ValueError(f"{_shown.repr(value)} is not text")
    value = value.strip()
    if name == "resolution":
        return value.upper()  # 720p as the flag takes it
    if name == "shot_type":
        return value.lower()
    if name in PATH_FIELDS and not _is_url(value):
        try:
            path = config.expand(value, "path")
        except UsageError as exc:  # a row problem, like every bad cell
            raise ValueError(exc.message) from None
        return str(path if path.is_absolute() else base / path)
    return value


def _whole(value: Any) -> int:
    """5, "5" or 5.0: spreadsheets and pandas write a column of whole numbers with a blank as floats."""
    number: float | int | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and len(value.strip()) <= MAX_DIGITS:
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, float):
        number = int(number) if number.is_integer() else None
    if number is None or abs(number) >= 10**MAX_DIGITS:
        raise ValueError(f"{_shown.repr(value)} is not a whole number (of at most {MAX_DIGITS} digits)")
    return number


def _is_data(ref: str) -> bool:
    return ref[:5].lower() == "data:"


def _is_url(ref: str) -> bool:
    return ref[:8].lower().startswith(("http://", "https://", "data:"))
