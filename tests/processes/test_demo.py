"""`make demo` as the README promises it: scripts/demo.sh runs end to end on the built-in gateway and leaves the
videos it names (run from a copy of the repository's script and example, with the installed wanvid on PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..helpers import ROOT


def test_make_demo_makes_its_videos(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "demo.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "error:" not in done.stderr
    out = tmp_path / "demo-out"
    assert (out / "cat.mp4").stat().st_size > 0 and (out / "cat.mp4.json").is_file()
    assert sorted(p.name for p in (out / "takes").glob("*.mp4")) == ["cat-1.mp4", "cat-2.mp4", "cat-3.mp4"]
    assert done.stdout.strip().endswith("cat.mp4")  # the run's result: the path
