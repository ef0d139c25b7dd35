"""The end-to-end demo: build, two MicroVMs, traffic through the proxy, an idle suspend and resume, terminate.

Every step is a check that prints its result; the demo passes only when all
of them hold and no hook broke a rule.
"""

from __future__ import annotations

import asyncio
import json

from ..microvm.config import Settings
from . import httpwire
from .emulator import Emulator
from .process import LaunchConfig
from .timeline import ContractViolation, Timeline
from .tokens import TOKEN_HEADER, PortRange, mint_token
from .vm import RUNNING, SUSPENDED, TERMINATED, EmulatedMicrovm, IdlePolicy

DEMO_PAYLOAD = '{"tenant": "demo"}'
# The path whose response carries the per-VM session id, set by /run.
SESSION_PATH = "/session"
# Seconds allowed for one request through the proxy, resuming included.
REQUEST_TIMEOUT_SECONDS = 15.0
# Minutes the demo's token stays valid.
TOKEN_MINUTES = 5


class Checks:
    """Named pass/fail results, printed as they are made."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.results: list[tuple[str, bool]] = []

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.results.append((name, passed))
        suffix = f": {detail}" if detail else ""
        self.timeline.say(f"check {'ok    ' if passed else 'FAILED'} {name}{suffix}")
        return passed

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(passed for _, passed in self.results)


async def _get(endpoint_port: int, path: str, token: str | None) -> httpwire.Response:
    """Send GET through an endpoint; a failed exchange becomes a 599 response whose body contains the error."""
    headers = [] if token is None else [(TOKEN_HEADER, token)]
    try:
        return await httpwire.request(endpoint_port, "GET", path, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)
    except (OSError, TimeoutError, httpwire.HttpError, asyncio.IncompleteReadError) as error:
        return httpwire.Response(599, [], f"request failed: {type(error).__name__}: {error}".encode())


def _session_id(response: httpwire.Response) -> tuple[str | None, str | None]:
    """Return the ``session_id`` and ``microvm_id`` fields of a /session response."""
    try:
        document = json.loads(response.body)
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    session, microvm = document.get("session_id"), document.get("microvm_id")
    return (session if isinstance(session, str) else None, microvm if isinstance(microvm, str) else None)


async def _read_session(emulator: Emulator, checks: Checks, microvm: EmulatedMicrovm, token: str) -> str | None:
    response = await _get(emulator.endpoints[microvm.id].port, SESSION_PATH, token)
    session, reported_id = _session_id(response)
    detail = f"status {response.status}, session_id {session!r}"
    if response.status != 200:
        detail += f", body {response.body[:200].decode('utf-8', 'replace').strip()!r}"
    checks.check(
        f"GET {SESSION_PATH} through the proxy of {microvm.id} returns 200 with a session_id",
        response.status == 200 and session is not None,
        detail,
    )
    if reported_id is not None:
        checks.check(
            f"the app in {microvm.id} got its MicroVM id from the /run body",
            reported_id == microvm.id,
            f"the app reports {reported_id}",
        )
    return session


async def run_demo(
    settings: Settings,
    timeline: Timeline,
    launch: LaunchConfig,
    token_key: bytes,
    *,
    max_idle_seconds: float = 1.0,
    payload: str = DEMO_PAYLOAD,
) -> bool:
    """Run the demo sequence and return True when every check held and no lifecycle rule was broken."""
    emulator = Emulator(settings, timeline, launch, token_key)
    checks = Checks(timeline)
    # Only the first MicroVM gets an idle policy, so the second one shows /terminate from RUNNING.
    idle_policy = IdlePolicy(max_idle_seconds, suspended_duration_seconds=60.0, auto_resume=True)
    try:
        first, second = await emulator.launch_microvms(2, payload, [idle_policy, None])
        token = mint_token(
            token_key, allowed_ports=[PortRange(settings.app_port, settings.app_port)], expiration_minutes=TOKEN_MINUTES
        )

        timeline.say("proxy: requests through each MicroVM's endpoint")
        rejected = await _get(emulator.endpoints[first.id].port, SESSION_PATH, token=None)
        checks.check(
            "a request without a token is rejected with 403", rejected.status == 403, f"status {rejected.status}"
        )
        sessions = [await _read_session(emulator, checks, microvm, token) for microvm in (first, second)]
        for microvm, session in zip((first, second), sessions, strict=True):
            timeline.say(f"session id of {microvm.id}: {session}")
        checks.check(
            "the two MicroVMs have different session ids",
            None not in sessions and sessions[0] != sessions[1],
            " vs ".join(map(str, sessions)),
        )

        timeline.say(f"idle: no traffic to {first.id} for {max_idle_seconds:g} s")
        suspend_bound = max_idle_seconds + settings.hooks["suspend"].timeout_seconds + 5.0
        suspended = await first.wait_for_state((SUSPENDED, TERMINATED), suspend_bound)
        checks.check(
            f"{first.id} suspends after {max_idle_seconds:g} s without traffic",
            suspended and first.state == SUSPENDED,
            f"state {first.state}",
        )
        resumed_session = await _read_session(emulator, checks, first, token)
        checks.check(
            "the next request resumed it, with the same session id as before",
            first.state == RUNNING and resumed_session is not None and resumed_session == sessions[0],
            f"state {first.state}, session id {resumed_session}",
        )
    except ContractViolation:
        # The emulator has recorded it; the report follows the shutdown.
        pass
    finally:
        timeline.say("terminate: every MicroVM")
        await emulator.shutdown("demo ended")

    for violation in emulator.violations:
        timeline.say(violation.report())
        for microvm in emulator.microvms:
            if microvm.id == violation.microvm and microvm.process.output:
                timeline.say(f"last lines of output from {microvm.id}:\n{microvm.process.output_tail()}")
    if not emulator.violations and emulator.microvms:
        terminate_enabled = settings.hooks["terminate"].enabled
        for microvm in emulator.microvms:
            statuses = [entry.status for entry in timeline.find(microvm.id, "terminate")]
            checks.check(
                f"{microvm.id} terminated" + (" after /terminate returned 200" if terminate_enabled else ""),
                microvm.state == TERMINATED and (statuses == [200] or not terminate_enabled),
                f"state {microvm.state}, /terminate statuses {statuses}",
            )
    passed_count = sum(passed for _, passed in checks.results)
    outcome = "passed" if checks.passed and not emulator.violations else "FAILED"
    timeline.say(f"demo {outcome}: {passed_count} of {len(checks.results)} checks held")
    return outcome == "passed"
