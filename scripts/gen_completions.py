"""Regenerate completions/ from the CLI itself (`make completions`); tests/test_subprocess.py checks for drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHELLS = {"bash": "wanvid.bash", "zsh": "_wanvid", "fish": "wanvid.fish"}
OUT = Path(__file__).resolve().parent.parent / "completions"


def script(shell: str) -> str:
    # Typer's switch that makes --show-completion take the shell as a value instead of detecting it.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    cmd = [sys.executable, "-m", "wanvid", "--show-completion", shell]
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for shell, name in SHELLS.items():
        (OUT / name).write_text(script(shell))
        print(f"wrote completions/{name}")


if __name__ == "__main__":
    main()
