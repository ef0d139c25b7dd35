"""Call the app's lifecycle hooks the way the platform does, and enforce the platform's status rules.

Build hooks (/ready, /validate) are polled: 503 means "not yet", 200 means done,
and the hook's timeout counts from the first call. Runtime hooks are called once
and must return 200 within their timeout. Like the platform, the caller sends
HTTP/1.1 from 127.0.0.1 with ``Host: localhost:<hooks port>`` and no User-Agent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from ..microvm.config import HOOK_PATH_PREFIX, Settings
from . import httpwire
from .process import AppProcess, describe_exit
from .timeline import (
    RULE_BUILD_STATUS,
    RULE_BUILD_TIMEOUT,
    RULE_HOOK_PORT,
    RULE_PROCESS_RUNNING,
    RULE_RUNTIME_STATUS,
    RULE_RUNTIME_TIMEOUT,
    ContractViolation,
    Timeline,
)

# Characters of a hook's "reason" field quoted in a violation report.
MAX_REASON_CHARS = 200


@dataclass(frozen=True)
class HookResult:
    hook: str
    status: int
    duration: float
    calls: int


def _reason(response: httpwire.Response) -> str:
    """Return the ``reason`` field of a JSON hook response, if any; other body content is never printed."""
    try:
        document = json.loads(response.body)
    except ValueError:
        return ""
    reason = document.get("reason") if isinstance(document, dict) else None
    return f" (reason: {str(reason)[:MAX_REASON_CHARS]})" if reason else ""


class HookCaller:
    """The platform's hook client for one app process."""

    def __init__(
        self, settings: Settings, timeline: Timeline, process: AppProcess, microvm: str, poll_interval: float
    ) -> None:
        self.settings = settings
        self.timeline = timeline
        self.process = process
        self.microvm = microvm
        self.poll_interval = poll_interval

    async def _post(self, name: str, body: bytes, timeout: float) -> httpwire.Response:
        headers = [("Content-Type", "application/json")] if body else []
        return await httpwire.request(
            self.process.hooks_port,
            "POST",
            HOOK_PATH_PREFIX + name,
            headers=headers,
            body=body,
            timeout=timeout,
            host_header=f"localhost:{self.settings.hooks_port}",
        )

    def _violation(self, detail: str, rule: str) -> ContractViolation:
        return ContractViolation(self.microvm, detail, rule)

    def _check_running(self, name: str) -> None:
        code = self.process.returncode
        if code is not None:
            raise self._violation(
                f"the app process {describe_exit(code)} before /{name} returned 200", RULE_PROCESS_RUNNING
            )

    async def build_hook(self, name: str, transition: str = "") -> HookResult | None:
        """Poll build hook ``name`` until it returns 200; return None when it is disabled.

        Raises ContractViolation for any status but 200 and 503, for an invalid
        HTTP response, for an app process that exits, and when the timeout passes.
        """
        hook = self.settings.hooks[name]
        if not hook.enabled:
            self.timeline.event(self.microvm, name, note="disabled in microvm.toml, so the platform never calls it")
            return None
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + hook.timeout_seconds
        calls = 0
        reported_waiting = reported_503 = False
        while True:
            self._check_running(name)
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.timeline.event(self.microvm, name, duration=loop.time() - started, note="timed out")
                raise self._violation(
                    f"/{name} did not return 200 within {hook.timeout_seconds} s ({calls} calls)", RULE_BUILD_TIMEOUT
                )
            calls += 1
            try:
                response = await self._post(name, b"", remaining)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                if not reported_waiting:
                    reported_waiting = True
                    self.timeline.event(
                        self.microvm, name, note="hook port not accepting connections yet (app starting); polling"
                    )
            except (OSError, httpwire.HttpError, asyncio.IncompleteReadError) as error:
                raise self._violation(
                    f"/{name} sent no valid HTTP response ({type(error).__name__}: {error})", RULE_BUILD_STATUS
                ) from None
            else:
                if response.status == 200:
                    duration = loop.time() - started
                    self.timeline.event(
                        self.microvm,
                        name,
                        status=200,
                        duration=duration,
                        transition=transition,
                        note=f"{calls} call(s)",
                    )
                    return HookResult(name, 200, duration, calls)
                if response.status != 503:
                    self.timeline.event(self.microvm, name, status=response.status, duration=loop.time() - started)
                    raise self._violation(f"/{name} returned {response.status}{_reason(response)}", RULE_BUILD_STATUS)
                if not reported_503:
                    reported_503 = True
                    self.timeline.event(
                        self.microvm, name, status=503, note=f"not done yet; polling every {self.poll_interval:g} s"
                    )
            await asyncio.sleep(max(0.0, min(self.poll_interval, deadline - loop.time())))

    async def runtime_hook(
        self, name: str, body: bytes = b"", transition: str = "", note: str = ""
    ) -> HookResult | None:
        """Call runtime hook ``name`` once; return None when it is disabled.

        Raises ContractViolation unless it returns 200 within its timeout.
        """
        hook = self.settings.hooks[name]
        if not hook.enabled:
            self.timeline.event(
                self.microvm,
                name,
                transition=transition,
                note="disabled in microvm.toml, so the platform never calls it",
            )
            return None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            response = await self._post(name, body, hook.timeout_seconds)
        except TimeoutError:
            self.timeline.event(self.microvm, name, duration=loop.time() - started, note="timed out")
            raise self._violation(
                f"/{name} did not respond within its timeout of {hook.timeout_seconds} s", RULE_RUNTIME_TIMEOUT
            ) from None
        except ConnectionRefusedError:
            raise self._violation(
                f"nothing accepted the connection for /{name} on the hooks port", RULE_HOOK_PORT
            ) from None
        except (OSError, httpwire.HttpError, asyncio.IncompleteReadError) as error:
            raise self._violation(
                f"/{name} sent no valid HTTP response ({type(error).__name__}: {error})", RULE_RUNTIME_STATUS
            ) from None
        duration = loop.time() - started
        if response.status != 200:
            self.timeline.event(self.microvm, name, status=response.status, duration=duration)
            raise self._violation(f"/{name} returned {response.status}{_reason(response)}", RULE_RUNTIME_STATUS)
        self.timeline.event(self.microvm, name, status=200, duration=duration, transition=transition, note=note)
        return HookResult(name, 200, duration, 1)
