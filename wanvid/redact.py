"""The process's secrets, and the one function that masks them out of everything that leaves it.

A secret is registered where it becomes known (``jobs.session.Session.resolve`` and ``cli.context.Ctx``:
the key from the flag, the environment and the config file; ``wanvid.gateway.upload``: bucket credentials), with its
percent-encoded form, since a server may echo it inside a URL. Two kinds of places call ``scrub``:

- ingress: ``client._json_body`` scrubs the gateway's answer before parsing it, so a ``Task`` never
  holds the key, and neither does anything derived from it (the journal row, the video URL, the
  sidecar). That keeps the data clean, but it covers only what came in through that door;
- every sink: stdout and stderr (``wanvid.cli.output``), ``--debug`` logs, journal writes, the metadata
  sidecar and a batch's results file. These are the guarantee, whatever produced the text (an error
  answer read elsewhere, a file name, an exception's message).

The secrets are an immutable tuple swapped under a lock: batch rows scrub from many threads at once,
and a reader never sees a half-updated list.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

MASK = "****"
MIN_LENGTH = 8  # shorter strings would mask ordinary words; real keys are far longer

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def add(secret: str | None) -> None:
    """Mask ``secret`` (as given, stripped, and percent-encoded) from now on; None or short text is ignored."""
    global _secrets
    text = (secret or "").strip()
    variants = {v for v in (secret or "", text, quote(text, safe="")) if len(v) >= MIN_LENGTH}
    if not variants:
        return
    with _lock:
        # Longest first: a key with its surrounding spaces goes before the bare key it contains.
        _secrets = tuple(sorted(set(_secrets) | variants, key=len, reverse=True))


def secrets() -> tuple[str, ...]:
    return _secrets


def restore(saved: tuple[str, ...]) -> None:
    """Go back to the secrets ``secrets()`` returned earlier: a command run in a longer-lived process (a
    test, a library caller) leaves the list as it found it, rather than growing it with every key seen."""
    global _secrets
    with _lock:
        _secrets = saved


def scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub_json(obj: Any) -> Any:
    """``obj`` with every string in it scrubbed, keys included (dicts and lists deep; tuples become lists)."""
    if isinstance(obj, str):
        return scrub(obj)
    if not _secrets:
        return obj
    if isinstance(obj, dict):
        return {scrub(k) if isinstance(k, str) else k: scrub_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_json(v) for v in obj]
    return obj
