"""The emulator's timeline output and the contract rules a hook can break.

Each line is one event: time since the emulator started, the MicroVM, the
event (a hook, a request, a process signal), the HTTP status, how long it took
and the state transition it caused. Payloads and tokens are never printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

# The rules that the platform enforces, quoted in every violation report.
RULE_BUILD_STATUS = (
    "a build hook (/ready, /validate) returns 200 when done or 503 for 'not yet, poll again'; "
    "any other status fails the image build"
)
RULE_BUILD_TIMEOUT = (
    "a build hook must return 200 before its timeout_seconds have passed since the first call; "
    "otherwise the image build fails"
)
RULE_RUNTIME_STATUS = (
    "a runtime hook (/run, /resume, /suspend, /terminate) must return 200; "
    "the platform terminates the MicroVM on any other status"
)
RULE_RUNTIME_TIMEOUT = (
    "a runtime hook must respond within its timeout_seconds; the platform terminates the MicroVM when it does not"
)
RULE_HOOK_PORT = "the hook server must accept connections on [hooks] port whenever the platform calls a hook"
RULE_PROCESS_RUNNING = "the container CMD must keep running: the snapshot freezes whatever runs when /ready returns 200"


class ContractViolation(Exception):
    """The app broke a lifecycle rule of the platform; ``rule`` states the rule, ``detail`` what happened."""

    def __init__(self, microvm: str, detail: str, rule: str) -> None:
        super().__init__(f"{microvm}: {detail}")
        self.microvm = microvm
        self.detail = detail
        self.rule = rule

    def report(self) -> str:
        return f"contract violation in {self.microvm}: {self.detail}\n  rule: {self.rule}"


@dataclass(frozen=True)
class TimelineEvent:
    elapsed: float
    microvm: str
    event: str
    status: int | None
    duration: float | None
    transition: str
    note: str


class Timeline:
    """Print events as they happen and keep them for tests and summaries."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._clock = clock
        self._started = clock()
        self.events: list[TimelineEvent] = []
        self._header_printed = False

    def elapsed(self) -> float:
        return self._clock() - self._started

    def event(
        self,
        microvm: str,
        event: str,
        *,
        status: int | None = None,
        duration: float | None = None,
        transition: str = "",
        note: str = "",
    ) -> TimelineEvent:
        entry = TimelineEvent(self.elapsed(), microvm, event, status, duration, transition, note)
        self.events.append(entry)
        if not self._header_printed:
            self._header_printed = True
            self.say(f"{'elapsed':>9}  {'microvm':<44}  {'event':<9}  {'status':>6}  {'duration':>8}  state / note")
        status_text = "-" if status is None else str(status)
        duration_text = "-" if duration is None else f"{duration:.3f}s"
        details = "  ".join(part for part in (transition, note) if part)
        self.say(f"{entry.elapsed:8.3f}s  {microvm:<44}  {event:<9}  {status_text:>6}  {duration_text:>8}  {details}")
        return entry

    def say(self, text: str) -> None:
        """Print one free-form line, for phase headings, check results and endpoints."""
        print(text, file=self._stream, flush=True)

    def find(self, microvm: str | None = None, event: str | None = None) -> list[TimelineEvent]:
        """Return the recorded events of one MicroVM and/or one kind, in order."""
        return [
            entry
            for entry in self.events
            if (microvm is None or entry.microvm == microvm) and (event is None or entry.event == event)
        ]
