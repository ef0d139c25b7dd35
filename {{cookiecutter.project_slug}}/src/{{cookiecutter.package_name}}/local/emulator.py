"""A set of emulated MicroVMs with their endpoints, launched, watched and shut down together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence

from ..microvm.config import Settings
from .process import LaunchConfig
from .proxy import Endpoint
from .timeline import ContractViolation, Timeline
from .vm import TERMINATED, EmulatedMicrovm, IdlePolicy


class Emulator:
    """Launch MicroVMs from one app, serve each on its own endpoint and terminate them all at the end.

    A rule broken in any MicroVM, even in a background task such as the idle
    policy, lands in ``violations`` and ends :meth:`wait`.
    """

    def __init__(
        self,
        settings: Settings,
        timeline: Timeline,
        launch: LaunchConfig,
        token_key: bytes,
        stop_requested: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.timeline = timeline
        self.launch = launch
        self.token_key = token_key
        self.microvms: list[EmulatedMicrovm] = []
        self.endpoints: dict[str, Endpoint] = {}
        self.violations: list[ContractViolation] = []
        self.stop_requested = stop_requested if stop_requested is not None else asyncio.Event()
        self._changed = asyncio.Event()

    def _record_violation(self, violation: ContractViolation) -> None:
        if violation not in self.violations:
            self.violations.append(violation)
            self._changed.set()

    async def launch_microvms(
        self,
        count: int,
        payload: str,
        idle_policies: Sequence[IdlePolicy | None],
        first_endpoint_port: int = 0,
    ) -> list[EmulatedMicrovm]:
        """Build and run ``count`` MicroVMs, then start one endpoint for each.

        ``idle_policies[i]`` applies to the i-th MicroVM. With ``first_endpoint_port``
        set, endpoints take consecutive ports from it; with 0, free ports.
        Raises the first ContractViolation; the MicroVM that broke the rule is terminated.
        """
        microvms = [
            EmulatedMicrovm(
                self.settings,
                self.timeline,
                self.launch,
                idle_policy=idle_policies[index],
                on_violation=self._record_violation,
            )
            for index in range(count)
        ]
        self.microvms.extend(microvms)
        self.timeline.say(
            f"build: starting {count} app process(es) with {' '.join(self.launch.command)}; each runs the image-build "
            "hooks itself, because a local process cannot be snapshotted and restored"
        )
        await self._all(microvm.build() for microvm in microvms)
        self.timeline.say("run: sending /run to each MicroVM")
        await self._all(microvm.run(payload) for microvm in microvms)
        for index, microvm in enumerate(microvms):
            endpoint = Endpoint(microvm, self.settings, self.token_key, self.timeline)
            await endpoint.start(first_endpoint_port + index if first_endpoint_port else 0)
            self.endpoints[microvm.id] = endpoint
            self.timeline.event(
                microvm.id,
                "endpoint",
                note=f"{endpoint.url} (port {self.settings.app_port} unless X-aws-proxy-port says otherwise)",
            )
        return microvms

    async def _all(self, coroutines: Iterable[Awaitable[None]]) -> None:
        """Await every coroutine, record every violation, then raise the first exception."""
        results = await asyncio.gather(*coroutines, return_exceptions=True)
        for result in results:
            if isinstance(result, ContractViolation):
                self._record_violation(result)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def wait(self, max_duration_seconds: float) -> str:
        """Wait until a rule is broken, every MicroVM has terminated, a stop is requested or the time is up.

        Returns which of these ended the wait.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_duration_seconds
        stop = asyncio.create_task(self.stop_requested.wait())
        try:
            while True:
                if self.violations:
                    return "a lifecycle rule was broken"
                if self.stop_requested.is_set():
                    return "stop requested"
                if self.microvms and all(microvm.state == TERMINATED for microvm in self.microvms):
                    return "every MicroVM has terminated"
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return f"maximum duration of {max_duration_seconds:g} s reached"
                # Wake on a violation, a stop request, or once a second to check the MicroVM states.
                changed = asyncio.create_task(self._changed.wait())
                await asyncio.wait({changed, stop}, timeout=min(1.0, remaining), return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                self._changed.clear()
        finally:
            stop.cancel()

    async def shutdown(self, reason: str) -> None:
        """Close every endpoint, then terminate every MicroVM that has not terminated yet."""
        for endpoint in self.endpoints.values():
            await endpoint.close()
        results = await asyncio.gather(
            *(microvm.terminate(reason) for microvm in self.microvms), return_exceptions=True
        )
        for result in results:
            if isinstance(result, ContractViolation):
                self._record_violation(result)
            elif isinstance(result, BaseException):
                raise result
