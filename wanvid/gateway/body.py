"""The create request's body, streamed: JSON around local files whose base64 is produced chunk by chunk.

A 10 MiB image sent through ``requests.post(json=...)`` costs a 14 MiB data URI, a second copy in the
JSON string and a third as bytes. Here the JSON is rendered once with a placeholder per local file
and split there; ``iter`` reads each file in pieces, base64-encodes them on the way out and hashes
them. The length is known beforehand (base64 of n bytes is 4 * ceil(n / 3) characters), so the
request carries a plain Content-Length, and the body can be iterated again when a request is retried.

The bytes sent are the bytes checked: if a file changed since it was inspected, or its hash differs
from the one the journal recorded, the stream raises before its last piece, the server sees a cut
request, and nothing is created.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from wanvid.errors import UsageError
from wanvid.rules.media import LocalMedia

CHUNK = 3 * 256 * 1024  # a multiple of 3, so pieces encode without padding; 1 MiB of base64 each


def placeholder(name: str) -> str:
    """What a body carries in place of local file ``name`` until it is streamed."""
    return f"\x00wanvid-file:{name}\x00"


class StreamedBody:
    """An iterable of bytes with a length, which requests sends as a Content-Length body."""

    def __init__(self, body: dict[str, Any], files: dict[str, LocalMedia]) -> None:
        text = json.dumps(body)
        self.parts: list[bytes | LocalMedia] = []
        # json.dumps writes \x00 as \u0000: split on that spelling of each placeholder.
        marks = {json.dumps(placeholder(n))[1:-1]: m for n, m in files.items()}
        rest = text
        while marks:
            at, mark = min((rest.find(m), m) for m in marks)
            if at < 0:
                break
            media = marks.pop(mark)
            self.parts += [rest[:at].encode(), f"data:{media.mime};base64,".encode(), media]
            rest = rest[at + len(mark) :]
        self.parts.append(rest.encode())

    def __len__(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else 4 * -(-p.size_bytes // 3) for p in self.parts)

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from _encoded(part)


def _encoded(media: LocalMedia) -> Iterator[bytes]:
    import base64

    digest, sent = hashlib.sha256(), 0
    with media.path.open("rb") as f:
        piece = f.read(CHUNK)
        while piece:
            following = f.read(CHUNK)
            digest.update(piece)
            sent += len(piece)
            if not following:  # the last piece: check before it leaves, so a changed file never arrives whole
                _check_unchanged(media, sent, digest.hexdigest())
            yield base64.b64encode(piece)
            piece = following
    if sent == 0:
        _check_unchanged(media, sent, digest.hexdigest())


def _check_unchanged(media: LocalMedia, sent: int, sha256: str) -> None:
    known = media.__dict__.get("sha256")  # the hash the journal recorded, if one was taken
    if sent != media.size_bytes or media.changed() or (known is not None and known != sha256):
        raise UsageError(
            f"{media.path} changed while it was being sent; nothing was created",
            hint="leave the file alone until the task is created, then run the command again",
        )
