"""Errors of the clone harness."""

from __future__ import annotations


class HarnessError(Exception):
    """The harness could not run: invalid arguments, a failed build phase, or a clone that did not report."""


class CloneTimeoutError(HarnessError):
    """A clone did not report within its timeout; it has been killed and reaped."""

    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid
