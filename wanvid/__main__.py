"""Entry point for ``python -m wanvid`` and the ``wanvid`` console script."""

from __future__ import annotations


def main() -> None:
    from .cli import run

    run()


if __name__ == "__main__":
    main()
