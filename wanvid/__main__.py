"""Entry point for ``python -m wanvid`` and the ``wanvid`` console script."""

from __future__ import annotations

import os

# The completion requests of the scripts in completions/ that complete.py answers without Typer.
# WANVID_TYPER_COMPLETE=1 sends them through Typer instead (a debugging aid: Typer's own answer).
FAST_COMPLETION = ("complete_bash", "complete_zsh", "complete_fish")


def main() -> None:
    instruction = os.environ.get("_WANVID_COMPLETE")
    if instruction in FAST_COMPLETION and not os.environ.get("WANVID_TYPER_COMPLETE"):
        from wanvid.cli.complete import answer

        status = answer(instruction.partition("_")[2])
        if status is not None:
            raise SystemExit(status)
    from wanvid.cli.app import run

    run()


if __name__ == "__main__":
    main()
