"""``microvm-deploy``: package, upload, build and run this project as a Lambda MicroVM image."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the deploy CLI and return its exit status."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
