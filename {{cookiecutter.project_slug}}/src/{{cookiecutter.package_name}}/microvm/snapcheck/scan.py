"""Find the Python files to scan, run the analysis and apply the suppressions."""

from __future__ import annotations

import ast
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from .analysis import Project
from .findings import Finding, ScanError, ScanResult
from .source import ModuleInfo, Suppression, parse_module

# The app package: this file is in microvm/snapcheck/, and microvm/ is in the app package.
PACKAGE_DIR = Path(__file__).resolve().parents[2]
# Subpackages of the app package that a directory scan skips: the lifecycle package
# itself calls secrets only inside /run, and the deploy and local tools run on the
# developer's machine, never inside a MicroVM. A file named explicitly is still scanned.
SKIPPED_SUBPACKAGES = ("microvm", "deploy", "local")
SKIPPED_DIR_NAMES = frozenset(
    {"__pycache__", ".git", ".hg", ".venv", "venv", ".tox", ".nox", "node_modules", "build", "dist", "site-packages"}
)


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """Expand directories into their Python files, or raise ScanError for a missing or non-Python path."""
    skipped = {(PACKAGE_DIR / name).resolve() for name in SKIPPED_SUBPACKAGES}
    files: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise ScanError(f"{path}: no such file or directory; pass a Python file or a package directory")
        if path.is_file():
            if path.suffix != ".py":
                raise ScanError(f"{path}: not a Python file; pass .py files or directories")
            files[path.resolve()] = None
            continue
        for directory, subdirectories, filenames in os.walk(path):
            subdirectories[:] = sorted(
                name
                for name in subdirectories
                if name not in SKIPPED_DIR_NAMES
                and not name.startswith(".")
                and (Path(directory) / name).resolve() not in skipped
            )
            for filename in sorted(filenames):
                if filename.endswith(".py"):
                    files[(Path(directory) / filename).resolve()] = None
    if not files:
        listed_paths = ", ".join(str(path) for path in paths)
        raise ScanError(f"no Python files found in {listed_paths}; pass the app package directory or .py files")
    return list(files)


def scan_paths(paths: Sequence[Path]) -> ScanResult:
    """Scan files and directories and return the findings, or raise ScanError for a bad path or file."""
    files = collect_files(paths)
    modules = [parse_module(path) for path in files]
    project = Project(modules)
    project.analyse()

    result = ScanResult(files_scanned=len(modules))
    for module, finding, statement, node in project.findings():
        suppression = _matching_suppression(module, finding, statement, node)
        if suppression is None:
            result.findings.append(finding)
        else:
            result.suppressed.append(dataclasses.replace(finding, reason=suppression.reason))
    for module in modules:
        result.findings.extend(module.invalid_suppressions)
    result.findings.sort(key=lambda finding: (finding.path, finding.line, finding.column, finding.rule))
    result.suppressed.sort(key=lambda finding: (finding.path, finding.line, finding.column, finding.rule))
    return result


def _matching_suppression(
    module: ModuleInfo, finding: Finding, statement: ast.stmt | None, node: ast.expr
) -> Suppression | None:
    """Find a valid suppression for the finding on its own lines or on the lines of its statement."""
    first, last = node.lineno, node.end_lineno or node.lineno
    if statement is not None:
        first, last = min(first, statement.lineno), max(last, statement.end_lineno or statement.lineno)
    for line in range(first, last + 1):
        suppression = module.suppressions.get(line)
        if suppression is not None and finding.rule in suppression.rules:
            return suppression
    return None
