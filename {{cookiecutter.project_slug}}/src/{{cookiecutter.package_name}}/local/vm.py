"""One emulated MicroVM: an app process driven through the platform's lifecycle states.

A local process cannot be snapshotted and restored, so each emulated MicroVM
is its own process that goes through the build sequence (/ready, the snapshot
point, /validate) and then gets /run. States and transitions follow the
service's MicrovmState values: PENDING, RUNNING, SUSPENDING, SUSPENDED,
TERMINATING and TERMINATED.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ..microvm.config import Settings
from .hooks import HookCaller
from .process import AppProcess, LaunchConfig, describe_exit
from .timeline import RULE_PROCESS_RUNNING, ContractViolation, Timeline

PENDING = "PENDING"
RUNNING = "RUNNING"
SUSPENDING = "SUSPENDING"
SUSPENDED = "SUSPENDED"
TERMINATING = "TERMINATING"
TERMINATED = "TERMINATED"

# RunMicrovm rejects a runHookPayload longer than 4096 characters (botocore 1.44.5 service model, and
# measured); the emulator checks the UTF-8 size, which is never smaller.
MAX_RUN_PAYLOAD_BYTES = 4096


class MicrovmUnavailable(Exception):
    """The MicroVM cannot take traffic: suspended without auto-resume, terminated, or its resume failed."""


@dataclass(frozen=True)
class IdlePolicy:
    """RunMicrovm's idlePolicy. The platform requires max_idle_seconds >= 60; the emulator takes any positive value."""

    max_idle_seconds: float
    # Time in SUSPENDED before the MicroVM is terminated; 0 terminates it when it suspends.
    suspended_duration_seconds: float
    auto_resume: bool = True


def new_microvm_id() -> str:
    return f"microvm-{uuid.uuid4()}"


def validate_payload(payload: str) -> None:
    """Raise ValueError when RunMicrovm would reject ``payload`` for its size."""
    size = len(payload.encode("utf-8"))
    if size > MAX_RUN_PAYLOAD_BYTES:
        raise ValueError(
            f"the run hook payload is {size} bytes; RunMicrovm accepts at most {MAX_RUN_PAYLOAD_BYTES}, "
            "so pass a reference (an id or a URL) instead of the data"
        )


class EmulatedMicrovm:
    """An app process with the lifecycle of one MicroVM.

    Every state transition holds one lock, so a request that arrives while the
    MicroVM suspends waits, finds it SUSPENDED and resumes it. When a hook
    breaks a rule, the MicroVM is terminated, as the platform does, and the
    violation goes to ``on_violation`` (from background tasks) or is raised.
    """

    def __init__(
        self,
        settings: Settings,
        timeline: Timeline,
        launch: LaunchConfig,
        *,
        microvm_id: str | None = None,
        idle_policy: IdlePolicy | None = None,
        on_violation: Callable[[ContractViolation], None] | None = None,
    ) -> None:
        self.settings = settings
        self.timeline = timeline
        self.id = microvm_id or new_microvm_id()
        self.idle_policy = idle_policy
        self.process = AppProcess(self.id, launch, timeline)
        self.hooks = HookCaller(settings, timeline, self.process, self.id, launch.poll_interval_seconds)
        self.state = PENDING
        self.violation: ContractViolation | None = None
        self._on_violation = on_violation
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._suspended_at = 0.0
        self._idle_task: asyncio.Task[None] | None = None
        self._exit_task: asyncio.Task[None] | None = None

    # -- state ------------------------------------------------------------------------------------

    def _set_state(self, state: str) -> str:
        transition = f"{self.state} -> {state}"
        self.state = state
        # Wake every waiter of the previous event, then start a fresh one for the next change.
        self._changed.set()
        self._changed = asyncio.Event()
        return transition

    async def wait_for_state(self, states: tuple[str, ...], timeout: float) -> bool:
        """Wait until the state is one of ``states``; return False if ``timeout`` seconds pass first."""
        deadline = self._loop.time() + timeout
        while self.state not in states:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def touch(self) -> None:
        """Record traffic: the idle policy counts only bytes that cross the endpoint."""
        self._last_activity = self._loop.time()

    # -- launch -----------------------------------------------------------------------------------

    async def build(self) -> None:
        """Start the app process and run the image-build hooks: /ready, the snapshot point, /validate."""
        await self.process.start()
        self.timeline.event(
            self.id,
            "start",
            transition=f"-> {PENDING}",
            note=f"pid {self.process.pid}, app on 127.0.0.1:{self.process.app_port}, "
            f"hooks on 127.0.0.1:{self.process.hooks_port}",
        )
        try:
            await self.hooks.build_hook("ready")
            self.timeline.event(
                self.id, "snapshot", note="snapshot point: the platform would save memory and disk here"
            )
            await self.hooks.build_hook("validate")
        except ContractViolation as violation:
            await self._fail(violation)
            raise

    async def run(self, payload: str) -> None:
        """Send /run with a platform-shaped body; on 200 the MicroVM is RUNNING."""
        validate_payload(payload)
        body = json.dumps({"microvmId": self.id, "runHookPayload": payload}).encode()
        async with self._lock:
            try:
                await self.hooks.runtime_hook(
                    "run",
                    body,
                    transition=f"{PENDING} -> {RUNNING}",
                    note=f"runHookPayload of {len(payload)} characters",
                )
            except ContractViolation as violation:
                await self._fail_locked(violation)
                raise
            self._set_state(RUNNING)
            self.touch()
        self._exit_task = asyncio.create_task(self._watch_exit())
        if self.idle_policy is not None:
            self._idle_task = asyncio.create_task(self._watch_idle(self.idle_policy))

    async def _watch_exit(self) -> None:
        """Treat an app process that exits on its own as a failed MicroVM."""
        code = await self.process.wait()
        async with self._lock:
            if self.state not in (TERMINATING, TERMINATED):
                violation = ContractViolation(
                    self.id, f"the app process {describe_exit(code)} while {self.state}", RULE_PROCESS_RUNNING
                )
                await self._fail_locked(violation)

    # -- suspend and resume -----------------------------------------------------------------------

    async def ensure_running(self) -> None:
        """Return once the MicroVM is RUNNING, resuming it if it is suspended and auto-resume is on.

        Raises MicrovmUnavailable when it cannot take traffic.
        """
        if self.state == RUNNING:
            return
        async with self._lock:
            if self.state == RUNNING:
                return
            if self.state == SUSPENDED:
                if self.idle_policy is not None and not self.idle_policy.auto_resume:
                    raise MicrovmUnavailable(f"{self.id} is suspended and auto-resume is off")
                try:
                    await self._resume_locked("traffic arrived")
                except ContractViolation as violation:
                    raise MicrovmUnavailable(f"resuming {self.id} failed: {violation.detail}") from violation
                return
            raise MicrovmUnavailable(f"{self.id} is {self.state}")

    async def _suspend_locked(self, reason: str) -> None:
        self._set_state(SUSPENDING)
        try:
            await self.hooks.runtime_hook("suspend", transition=f"{RUNNING} -> {SUSPENDING}", note=reason)
        except ContractViolation as violation:
            # Measured on the platform: a /suspend that fails terminates the MicroVM, with no retry.
            await self._fail_locked(violation)
            raise
        self.process.freeze()
        self._suspended_at = self._loop.time()
        transition = self._set_state(SUSPENDED)
        self.timeline.event(self.id, "freeze", transition=transition, note="process group stopped (SIGSTOP)")

    async def _resume_locked(self, reason: str) -> None:
        self.process.thaw()
        self.timeline.event(self.id, "thaw", note=f"{reason}; process group continued (SIGCONT)")
        try:
            # The MicroVM stays SUSPENDED until /resume returns 200.
            await self.hooks.runtime_hook("resume", transition=f"{SUSPENDED} -> {RUNNING}")
        except ContractViolation as violation:
            # NOTE: the platform documents only that the MicroVM stays SUSPENDED; the emulator
            # takes the stricter reading of the runtime hook rule and terminates it.
            await self._fail_locked(violation)
            raise
        self._set_state(RUNNING)
        self.touch()

    async def _watch_idle(self, policy: IdlePolicy) -> None:
        """Suspend after max_idle_seconds without traffic; terminate after suspended_duration_seconds."""
        try:
            while self.state not in (TERMINATING, TERMINATED):
                now = self._loop.time()
                if self.state == RUNNING:
                    idle = now - self._last_activity
                    if idle < policy.max_idle_seconds:
                        await asyncio.sleep(policy.max_idle_seconds - idle)
                        continue
                    async with self._lock:
                        if self.state == RUNNING and self._loop.time() - self._last_activity >= policy.max_idle_seconds:
                            await self._suspend_locked(f"idle for {policy.max_idle_seconds:g} s")
                elif self.state == SUSPENDED:
                    suspended = now - self._suspended_at
                    if suspended < policy.suspended_duration_seconds:
                        await self._wait_for_change(policy.suspended_duration_seconds - suspended)
                        continue
                    async with self._lock:
                        if self.state == SUSPENDED:
                            await self._terminate_locked(
                                f"suspended for {policy.suspended_duration_seconds:g} s (suspendedDurationSeconds)"
                            )
                else:
                    await self._wait_for_change(1.0)
        except ContractViolation:
            # _fail_locked has recorded and reported it; the MicroVM is terminated.
            return

    async def _wait_for_change(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    # -- terminate --------------------------------------------------------------------------------

    async def terminate(self, reason: str) -> None:
        """Terminate: /terminate (when RUNNING), then SIGTERM and, after the stop timeout, SIGKILL.

        Raises ContractViolation when /terminate breaks a rule; the process is stopped anyway.
        """
        async with self._lock:
            await self._terminate_locked(reason)

    async def _terminate_locked(self, reason: str) -> None:
        if self.state in (TERMINATING, TERMINATED):
            return
        previous = self.state
        self._set_state(TERMINATING)
        violation: ContractViolation | None = None
        if previous == RUNNING:
            try:
                await self.hooks.runtime_hook("terminate", transition=f"{previous} -> {TERMINATING}", note=reason)
            except ContractViolation as error:
                violation = error
        else:
            # A MicroVM that never ran (an image build) gets no /terminate.
            # NOTE: the platform does not document whether it restores a suspended MicroVM to call
            # /terminate, so the emulator assumes it does not and the app must not rely on it.
            self.timeline.event(
                self.id, "terminate", transition=f"{previous} -> {TERMINATING}", note=f"{reason}; /terminate not called"
            )
        await self._stop_process()
        if violation is not None:
            self._record(violation)
            raise violation

    async def _stop_process(self) -> None:
        loop = self._loop
        started = loop.time()
        outcome = await self.process.stop()
        transition = self._set_state(TERMINATED)
        self.timeline.event(
            self.id, "stop", duration=loop.time() - started, transition=transition, note=f"process {outcome}"
        )
        for task in (self._idle_task, self._exit_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    def _record(self, violation: ContractViolation) -> None:
        self.timeline.event(self.id, "violation", note=violation.detail)
        if self.violation is None:
            self.violation = violation
            if self._on_violation is not None:
                self._on_violation(violation)

    async def _fail(self, violation: ContractViolation) -> None:
        async with self._lock:
            await self._fail_locked(violation)

    async def _fail_locked(self, violation: ContractViolation) -> None:
        """Stop the process after a violation, as the platform terminates the MicroVM, and keep the violation."""
        self._record(violation)
        if self.state != TERMINATED:
            self._set_state(TERMINATING)
            await self._stop_process()
