"""Regenerate docs/cli.md, the CLI reference, from the code (`make docs`); a test checks for drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def reference() -> str:
    typer_cmd = Path(sys.executable).parent / "typer"  # typer's own CLI, installed with typer
    cmd = [str(typer_cmd), "wanvid.cli.app", "utils", "docs", "--name", "wanvid", "--title", "wanvid command reference"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main() -> None:
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(reference())
    print(f"wrote {OUT.relative_to(OUT.parent.parent)}")


if __name__ == "__main__":
    main()
