"""The per-model rules of ../shared/API.md, and the checks built on them.

Shared by the client (checks before money is spent) and the sandbox (answers 400 InvalidParameter
with the same rules), so the two can never disagree. Pure data and pure functions; no I/O.
Also which model a name means (``canonical_model``: any case; a typo of a known model is refused).
Field names in ``FieldError.field`` are canonical: ``model``, ``prompt``, ``negative_prompt``, ``resolution``,
``duration``, ``seed``, ``shot_type``, ``media``, ``image``, ``last_frame``, ``audio``, ``first_clip``,
``size``. The CLI maps them to flags, the sandbox to body paths.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from wanvid.errors import FieldError

DEFAULT_MODEL = "wan2.7-i2v"
SEED_MAX = 2_147_483_647
MB = 1024 * 1024


# The rules below are NamedTuples, not frozen dataclasses: every start of the CLI builds these classes,
# and a NamedTuple class is built in about a tenth of a frozen dataclass's time (0.06 ms against 0.6 ms).
class ImageRule(NamedTuple):
    formats: tuple[str, ...]  # Pillow format names
    min_side: int
    max_side: int
    max_bytes: int
    max_aspect: float | None  # long side / short side; None = no limit documented


class AudioRule(NamedTuple):
    formats: tuple[str, ...]  # "wav", "mp3"
    min_seconds: float
    max_seconds: float
    max_bytes: int


class VideoRule(NamedTuple):
    formats: tuple[str, ...]  # "mp4", "mov"
    min_seconds: float
    max_seconds: float
    min_side: int
    max_side: int
    max_bytes: int


class ModelSpec(NamedTuple):
    name: str
    durations: tuple[int, ...]
    prompt_max: int
    image: ImageRule
    audio: AudioRule
    video: VideoRule | None  # first_clip support
    native_media: bool  # True: input.media list (wan2.7); False: input.img_url / audio_url (wan2.6)
    shot_type: bool
    last_frame: bool
    resolutions: tuple[str, ...] = ("720P", "1080P")
    negative_prompt_max: int = 500
    default_duration: int = 5
    default_resolution: str = "1080P"


IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP")

MODELS: dict[str, ModelSpec] = {
    "wan2.7-i2v": ModelSpec(
        name="wan2.7-i2v",
        durations=tuple(range(2, 16)),
        prompt_max=5000,
        image=ImageRule(IMAGE_FORMATS, 240, 8000, 20 * MB, 8.0),
        audio=AudioRule(("wav", "mp3"), 2, 30, 15 * MB),
        video=VideoRule(("mp4", "mov"), 2, 10, 240, 4096, 100 * MB),
        native_media=True,
        shot_type=False,
        last_frame=True,
    ),
    "wan2.6-i2v": ModelSpec(
        name="wan2.6-i2v",
        durations=(5, 10, 15),
        prompt_max=1500,
        image=ImageRule(IMAGE_FORMATS, 360, 2000, 10 * MB, None),
        audio=AudioRule(("wav", "mp3"), 3, 30, 15 * MB),
        video=None,
        native_media=False,
        shot_type=True,
        last_frame=False,
    ),
}

# wan2.7 input.media: the only type combinations the upstream accepts.
MEDIA_COMBINATIONS: tuple[frozenset[str], ...] = tuple(
    frozenset(c)
    for c in (
        {"first_frame"},
        {"first_frame", "driving_audio"},
        {"first_frame", "last_frame"},
        {"first_frame", "last_frame", "driving_audio"},
        {"first_clip"},
        {"first_clip", "last_frame"},
    )
)


# The output sizes wan documents per resolution, as WIDTH, HEIGHT: DashScope's wan2.6 "size" parameter
# (1080P: 1920*1080, 1080*1920, 1440*1440, 1632*1248, 1248*1632; 720P: 1280*720, 720*1280, 960*960,
# 1088*832, 832*1088), the same lists new-api checks in relay/channel/task/ali/adaptor.go. Each resolution
# has one size per shape: 16:9, 9:16, 1:1, 4:3 (1.31), 3:4.
SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "720P": ((1280, 720), (720, 1280), (960, 960), (1088, 832), (832, 1088)),
    "1080P": ((1920, 1080), (1080, 1920), (1440, 1440), (1632, 1248), (1248, 1632)),
}
SHAPES = ("16:9", "9:16", "1:1", "4:3", "3:4")  # the shape of each SIZES entry, in order


def nearest_size(resolution: str, width: int, height: int) -> tuple[int, int, str]:
    """The documented size at ``resolution`` whose aspect ratio is closest to ``width``:``height``, and its
    shape. Closest is measured on the log of the ratios, so 2:1 and 1:2 are as far from 1:1 as each other;
    an exact tie (never for whole-pixel images in practice) goes to the shape listed first."""
    import math

    sizes, target = SIZES[resolution], math.log(width / height)
    i = min(range(len(sizes)), key=lambda k: abs(math.log(sizes[k][0] / sizes[k][1]) - target))
    return sizes[i][0], sizes[i][1], SHAPES[i]


def spec_for(model: str) -> ModelSpec | None:
    """The rules for ``model``, or None for a model this version does not know (checked server-side)."""
    return MODELS.get(model)


def canonical_model(name: str) -> tuple[str, str | None]:
    """The model name to send for ``name``, and a line saying what was changed (None: sent as given).

    - a known model in another case (``WAN2.7-I2V``): its canonical name, with the line;
    - a near miss of a known model (a typo: ``wan2.7-i2b``, ``wan27-i2v``; or cut short: ``wan2.7``): a
      FieldError naming the known one, before anything is sent. Near: at most 2 edits (insert, delete,
      substitute, swap two neighbours) apart, case-folded; but names that differ only in their digits are
      not near misses (``wan2.8-i2v`` is a new version, not a typo);
    - anything else (a newer model, ``wan2.7-i2v-plus``, a gateway alias): as given; ``validate`` warns.
    """
    if name in MODELS:
        return name, None
    folded = name.casefold()
    for known in MODELS:
        if known.casefold() == folded:
            return known, f"model {name!r} sent as {known}"
    near = sorted((_distance(folded, known), known) for known in MODELS if _near_miss(folded, known))
    near += [(0, known) for known in MODELS if known.casefold().startswith(folded + "-")]  # wan2.7: cut short
    if near:
        known = near[0][1]
        raise FieldError(
            "model",
            f"unknown model {name!r}; did you mean {known}?",
            hint=f"use {known}; a name differing from a known one only in digits (a newer version) is sent unchecked",
        )
    return name, None


def _near_miss(folded: str, known: str) -> bool:
    if _digitless(folded) == _digitless(known):  # wan2.8-i2v, wan2.10-i2v: another version, on purpose
        return False
    return _distance(folded, known) <= 2


def _digitless(name: str) -> str:
    """``name`` with each run of digits as one ``#``: wan2.10-i2v and wan2.7-i2v match, wan2.7-iv2 does not."""
    import re

    return re.sub(r"[0-9]+", "#", name)


def _distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): edits, a swap of neighbours counting one."""
    if abs(len(a) - len(b)) > 2:  # more than 2 apart whatever the letters; a long name is not compared
        return 3
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        row = [i]
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            best = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, prev2[j - 2] + 1)
            row.append(best)
        prev2, prev = prev, row
    return prev[-1]


def _durations_text(spec: ModelSpec) -> str:
    d = spec.durations
    if d == tuple(range(d[0], d[-1] + 1)) and len(d) > 3:
        return f"an integer from {d[0]} to {d[-1]}"
    return ", ".join(map(str, d[:-1])) + f" or {d[-1]}"


def check_params(
    spec: ModelSpec,
    *,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    resolution: str | None = None,
    duration: int | None = None,
    seed: int | None = None,
    shot_type: str | None = None,
) -> None:
    """Raise FieldError for the first value that breaks ``spec``'s rules. None means 'not given'."""
    if prompt is not None and len(prompt) > spec.prompt_max:
        raise FieldError("prompt", f"prompt is {len(prompt)} characters; {spec.name} takes at most {spec.prompt_max}")
    if negative_prompt is not None and len(negative_prompt) > spec.negative_prompt_max:
        raise FieldError(
            "negative_prompt",
            f"negative prompt is {len(negative_prompt)} characters; "
            f"{spec.name} takes at most {spec.negative_prompt_max}",
        )
    if resolution is not None and resolution not in spec.resolutions:
        raise FieldError(
            "resolution", f"resolution {resolution!r} is not one of {', '.join(spec.resolutions)} for {spec.name}"
        )
    if duration is not None and (isinstance(duration, bool) or duration not in spec.durations):
        raise FieldError(
            "duration", f"duration {duration} s is not allowed for {spec.name}: use {_durations_text(spec)}"
        )
    if seed is not None and (isinstance(seed, bool) or not 0 <= seed <= SEED_MAX):
        raise FieldError("seed", f"seed {seed} is out of range: use an integer from 0 to {SEED_MAX}")
    if shot_type is not None:
        if not spec.shot_type:
            raise FieldError("shot_type", f"shot type is only for wan2.6-i2v, not {spec.name}")
        if shot_type not in ("single", "multi"):
            raise FieldError("shot_type", f"shot type {shot_type!r} is not 'single' or 'multi'")


def check_media_types(types: Collection[str]) -> None:
    """Raise FieldError unless ``types`` (wan2.7 input.media types) is an accepted combination."""
    if len(set(types)) != len(types):
        raise FieldError("media", "each media type may appear only once")
    if frozenset(types) not in MEDIA_COMBINATIONS:
        accepted = "; ".join("+".join(sorted(c, key=_MEDIA_ORDER.index)) for c in MEDIA_COMBINATIONS)
        got = "+".join(sorted(types, key=lambda t: _MEDIA_ORDER.index(t) if t in _MEDIA_ORDER else 99)) or "none"
        raise FieldError("media", f"media combination {got} is not accepted; accepted: {accepted}")


_MEDIA_ORDER = ["first_frame", "first_clip", "last_frame", "driving_audio"]
