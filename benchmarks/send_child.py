"""One measured send of a local image, in a fresh interpreter (run by send.py; prints one JSON line).

Modes: ``wanvid`` = ``wanvid.gateway.service.submit`` of a validated request; ``baseline`` = the naive way the
benchmark compares with, ``requests.post(url, json=body)`` with the whole base64 data URI as a string in ``body``.
Both are timed from the file path to the parsed answer; ``began`` (wall clock: for wanvid before its
validation, which reads and hashes the file; for the baseline before it reads the file) lets send.py time
create-to-first-byte with the sink's clock: what each must do before its first body byte leaves, wanvid
validating and starting its stream, the baseline reading the whole file, base64-encoding it, JSON-encoding
the body and handing it to ``requests`` (the garbage collection and peak reset below, between wanvid's
validation and its send, are taken out of its figure). Memory is the growth of the peak RSS over the RSS just
before: the kernel's high-water mark (VmHWM) is reset first through /proc/self/clear_refs, so anything that
happened earlier (imports, Pillow looking at the image) cannot hide the send's own peak.
"""

from __future__ import annotations

import base64
import gc
import json
import sys
import time
from pathlib import Path

import requests  # imported before timing in both modes; wanvid.gateway.client imports it anyway


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5" resets the peak RSS to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def main() -> None:
    mode, image, url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    began = 0.0
    if mode == "wanvid":
        from wanvid.gateway.client import Client
        from wanvid.gateway.service import submit
        from wanvid.rules.request import VideoRequest, validate

        began = time.time()  # wall clock, comparable with the sink's first-byte time: the request as given
        v = validate(VideoRequest(model="wan2.7-i2v", image=str(image), prompt="x"), "native")
        client = Client(url, "bench-key")

        def send() -> str:
            return submit(client, v).id
    else:
        session = requests.Session()

        def send() -> str:
            uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode("ascii")
            body = {"model": "wan2.7-i2v", "input": {"prompt": "x", "media": [{"type": "first_frame", "url": uri}]}}
            r = session.post(
                url + "/aliyun/v1/videos/generations",
                json=body,
                headers={"Authorization": "Bearer bench-key"},
                timeout=60,
            )
            r.raise_for_status()
            return str(r.json()["output"]["task_id"])

    paused = time.time()
    gc.collect()
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    base_peak = _status_kib("VmHWM")
    if mode == "wanvid":
        began += time.time() - paused  # the measuring above is not wanvid's
    else:
        began = time.time()
    t0 = time.perf_counter()
    task_id = send()
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    if not reset:  # without the reset only growth beyond the old peak is visible: an underestimate
        before = max(before, base_peak)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "extra_bytes": max(0, peak - before) * 1024,
                "task_id": task_id,
                "exact": reset,
                "began": began,
            }
        )
    )


if __name__ == "__main__":
    main()
