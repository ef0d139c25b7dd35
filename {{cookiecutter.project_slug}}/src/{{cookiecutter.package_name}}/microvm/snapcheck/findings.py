"""The results of a scan: findings, the report and the scan error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .rules import RULES

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Finding:
    """One problem at one place. Line and column are 1-based."""

    rule: str
    path: str
    line: int
    column: int
    message: str
    reason: str | None = None  # the suppression reason, for suppressed findings

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    def to_json(self) -> dict[str, Any]:
        rule = RULES[self.rule]
        data: dict[str, Any] = {
            "rule": self.rule,
            "name": rule.name,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "why": rule.why,
            "fix": rule.fix,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        return data


@dataclass
class ScanResult:
    """The findings of one scan, with the suppressed ones kept apart."""

    files_scanned: int = 0
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": "microvm-check",
            "schema_version": REPORT_SCHEMA_VERSION,
            "files_scanned": self.files_scanned,
            "finding_count": len(self.findings),
            "findings": [finding.to_json() for finding in self.findings],
            "suppressed": [finding.to_json() for finding in self.suppressed],
        }


class ScanError(Exception):
    """A path could not be scanned: it does not exist, is not Python, or does not parse."""
