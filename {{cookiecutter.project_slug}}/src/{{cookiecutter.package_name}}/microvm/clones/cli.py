"""The command line of the clone harness: ``python -m <package>.microvm.clones``."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ..config import APP_PACKAGE
from .errors import HarnessError
from .harness import DEFAULT_CLONE_TIMEOUT_SECONDS, DEFAULT_CLONES, check_clones
from .paths import UniquenessPaths, read_uniqueness_paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}",
        description=(
            "Run the app's build phase, fork clones as if restored from one snapshot, and check that per-VM "
            "and per-request values differ. Exit status: 0 no shared values, 1 shared values or failed "
            "requests, 2 usage error or failed build phase."
        ),
    )
    parser.add_argument(
        "--app", default=f"{APP_PACKAGE}.app", help="module that defines `app` and SERVER (default: %(default)s)"
    )
    parser.add_argument(
        "--pyproject",
        type=Path,
        default=Path("pyproject.toml"),
        help="file with the [tool.microvm.uniqueness] lists (default: %(default)s)",
    )
    parser.add_argument("--per-vm", action="append", metavar="PATH", help="a per-VM path; replaces the pyproject lists")
    parser.add_argument(
        "--per-request", action="append", metavar="PATH", help="a per-request path; replaces the pyproject lists"
    )
    parser.add_argument("--clones", type=int, default=DEFAULT_CLONES, help="number of clones (default: %(default)s)")
    parser.add_argument(
        "--clone-timeout",
        type=float,
        default=DEFAULT_CLONE_TIMEOUT_SECONDS,
        help="seconds each clone may take before it is killed (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _option_paths(values: list[str] | None, option: str) -> tuple[str, ...]:
    for value in values or []:
        if not value.startswith("/"):
            raise HarnessError(f"{option} {value!r} is invalid; use an absolute path such as /session")
    return tuple(values or [])


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    try:
        if options.per_vm or options.per_request:
            paths = UniquenessPaths(
                _option_paths(options.per_vm, "--per-vm"),
                _option_paths(options.per_request, "--per-request"),
            )
        else:
            paths = read_uniqueness_paths(options.pyproject)
        report = check_clones(options.app, paths, options.clones, options.clone_timeout)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # usually the app's own error in the build phase: show where it came from
        traceback.print_exc()
        print(f"error: {type(error).__name__}: {error} (traceback above)", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=2) if options.json else report.format_text())
    return 1 if report.problems else 0
