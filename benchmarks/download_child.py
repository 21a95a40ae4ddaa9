"""``wanvid download`` in this process, with its copy loop timed: the download section's wanvid runs.

Usage: python download_child.py RESULT_JSON download TASK_ID -o FILE [...]   (the arguments after
RESULT_JSON are wanvid's own). It runs the same ``wanvid.cli.app.run()`` the installed ``wanvid`` script calls,
after wrapping ``wanvid.gateway.download._copy`` (the loop that reads the body and writes the ``.part``) so that
two clocks run: the loop's whole time, and the time spent inside the progress callback it is handed (the
live bar's redraws, or -q's no-op). The loop's time with the bar against without, in pairs of runs, is
the bar's cost per byte; the callback's share of it is the redraws' own part (see download.py).

RESULT_JSON gets ``{"copy_seconds", "advance_seconds", "advance_calls", "bytes"}`` summed over the
loop's calls (more than one only when a dropped connection was resumed). Two ``perf_counter`` reads per
callback, about ten callbacks a second: the clocks cost nothing measurable.
"""

import json
import sys
import time
from typing import Any

from wanvid.cli.app import run
from wanvid.gateway import download

spent = {"copy_seconds": 0.0, "advance_seconds": 0.0, "advance_calls": 0, "bytes": 0}
_copy = download._copy


def _timed_copy(job: Any, resp: Any, size: int, encoding: Any) -> int:
    advance = job.advance

    def timed_advance(n: int) -> None:
        t = time.perf_counter()
        try:
            advance(n)
        finally:
            spent["advance_seconds"] += time.perf_counter() - t
            spent["advance_calls"] += 1

    job.advance = timed_advance  # the instance's attribute shadows the method for this call
    t0, before = time.perf_counter(), size
    try:
        size = _copy(job, resp, size, encoding)
        return size
    finally:
        del job.advance
        spent["copy_seconds"] += time.perf_counter() - t0
        spent["bytes"] += size - before


def main() -> None:
    result = sys.argv.pop(1)
    download._copy = _timed_copy
    try:
        run()
    finally:
        with open(result, "w") as f:
            json.dump(spent, f)


if __name__ == "__main__":
    main()
