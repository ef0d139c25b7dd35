"""The microvm-check command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .findings import ScanError, ScanResult
from .rules import RULES
from .scan import PACKAGE_DIR, scan_paths


def format_text(result: ScanResult) -> str:
    """Render the findings as "path:line:column: rule name: message" lines, each with its reason and fix."""
    lines: list[str] = []
    for finding in result.findings:
        rule = RULES[finding.rule]
        lines.append(f"{finding.location}: {finding.rule} {rule.name}: {finding.message}")
        lines.append(f"    why: {rule.why}")
        lines.append(f"    fix: {rule.fix}")
    suppressed = f" ({len(result.suppressed)} suppressed)" if result.suppressed else ""
    if result.findings:
        lines.append(f"microvm-check: {len(result.findings)} finding(s) in {result.files_scanned} file(s){suppressed}.")
    else:
        lines.append(f"microvm-check: no findings in {result.files_scanned} file(s){suppressed}.")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microvm-check",
        description=(
            "Report values that every MicroVM would share because the app made them before the image snapshot: "
            "UUIDs, tokens, random state, timestamps, temporary files and connections made at import, "
            "while the app starts or in cached functions. Exit status: 0 no findings, 1 findings, "
            "2 usage error or a file that does not parse."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATHS",
        help=f"Python files or directories to scan (default: the app package, {PACKAGE_DIR})",
    )
    parser.add_argument("--json", type=Path, metavar="REPORT.json", help="also write the report as JSON to this file")
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="format of the report on standard output (default: text)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check from the command line and return the exit status."""
    arguments = build_parser().parse_args(argv)
    paths = arguments.paths or [PACKAGE_DIR]
    try:
        result = scan_paths(paths)
    except ScanError as error:
        print(f"microvm-check: error: {error}", file=sys.stderr)
        return 2

    report = json.dumps(result.to_json(), indent=2) + "\n"
    if arguments.json is not None:
        try:
            arguments.json.write_text(report, encoding="utf-8")
        except OSError as error:
            print(f"microvm-check: error: cannot write the JSON report to {arguments.json}: {error}", file=sys.stderr)
            return 2
    sys.stdout.write(report if arguments.format == "json" else format_text(result))
    return 1 if result.findings else 0
