"""What each lifecycle hook does, independent of HTTP.

Status rules from the platform: ``/ready`` and ``/validate`` answer 503 for
"not yet" and are polled again, 200 when done, and any other status fails the
image build. The runtime hooks (``/run``, ``/resume``, ``/suspend``,
``/terminate``) succeed only with 200: any other status, or no answer within
the hook's timeout, makes the platform terminate the VM. So runtime hooks
answer 200 even when a callback fails, except ``/run`` when the per-VM state
could not be set up, where terminating the VM is safer than serving snapshot
state.
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from . import state
from .config import RUNTIME_HOOKS, Settings
from .gate import WARMUP_HEADER
from .worker import EventResult

logger = logging.getLogger("microvm")

# runHookPayload limit in bytes. The service model constrains it to 4096
# characters, but its own documentation and the user guide give 16 KiB, so the
# hook accepts the larger size.
MAX_RUN_PAYLOAD_BYTES = 16 * 1024
# Largest hook body read. JSON escaping can make a 16 KiB payload up to six
# times longer, plus the id and the field names.
MAX_HOOK_BODY_BYTES = 6 * MAX_RUN_PAYLOAD_BYTES + 1024
# Time kept back from a runtime hook's timeout so that the response itself is sent in time.
ANSWER_MARGIN_SECONDS = 0.25


class Dispatcher(Protocol):
    def broadcast(self, event: str, data: dict[str, Any], deadline: float) -> list[EventResult]: ...


@dataclass
class HookResponse:
    status: int
    body: dict[str, Any]


class Warmup:
    """The warm-up requests of one build hook, run once in a background thread."""

    def __init__(self, settings: Settings, token: str, timeout_seconds: float, app_host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.token = token
        # The address the warm-up requests go to: a loopback address the app listens on.
        self.app_host = app_host
        self.timeout_seconds = timeout_seconds
        self.started = False
        self.done = threading.Event()
        self.failure: str | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self.started:
                return
            self.started = True
        threading.Thread(target=self._run, name="microvm-warmup", daemon=True).start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout_seconds
        try:
            self._wait_for_app(deadline)
            for request in self.settings.warmup:
                status = self._send(request.method, request.path, deadline)
                if status != request.status:
                    self.failure = (
                        f"warm-up request {request.method} {request.path} got status {status}, "
                        f"expected {request.status}"
                    )
                    return
        except (OSError, TimeoutError, http.client.HTTPException) as error:
            self.failure = f"warm-up failed: {type(error).__name__}: {error}"
        finally:
            self.done.set()

    def _wait_for_app(self, deadline: float) -> None:
        """Poll until the app server accepts connections on its port."""
        while True:
            try:
                self._send("GET", self.settings.ungated_paths[0] if self.settings.ungated_paths else "/", deadline)
                return
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"the app did not accept connections on port {self.settings.app_port} "
                        f"within {self.timeout_seconds:g} s"
                    ) from None
                time.sleep(0.05)

    def _send(self, method: str, path: str, deadline: float) -> int:
        timeout = max(0.1, deadline - time.monotonic())
        connection = http.client.HTTPConnection(self.app_host, self.settings.app_port, timeout=timeout)
        try:
            connection.request(method, path, headers={WARMUP_HEADER: self.token})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()


class Lifecycle:
    """The state machine behind the hooks of one MicroVM."""

    def __init__(
        self, settings: Settings, dispatcher: Dispatcher, warmup_token: str, app_host: str = "127.0.0.1"
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.warmup_token = warmup_token
        self.app_host = app_host
        self.ready_warmup = Warmup(settings, warmup_token, settings.hook("ready").timeout_seconds, app_host)
        self.validate_warmup: Warmup | None = None
        self.vm: state.VmInfo | None = None
        self.phase = "build"
        # Runtime hooks run one at a time: a second /suspend waits for the first and then finds the VM suspended.
        self._runtime_lock = threading.Lock()

    def start_warmup(self) -> None:
        """Start the /ready warm-up at once, so that the first /ready poll may already find it done."""
        self.ready_warmup.start()

    def handle(self, hook: str, body: bytes) -> HookResponse:
        if hook == "ready":
            return self._build_hook(self.ready_warmup)
        if hook == "validate":
            if self.validate_warmup is None:
                timeout = self.settings.hook("validate").timeout_seconds
                self.validate_warmup = Warmup(self.settings, self.warmup_token, timeout, self.app_host)
            return self._build_hook(self.validate_warmup)
        if hook not in RUNTIME_HOOKS:
            logger.warning(
                "unknown lifecycle hook %r; responding 200 for forward compatibility", hook, extra={"hook": hook}
            )
            return HookResponse(200, {"status": "ignored", "reason": f"unknown hook {hook!r}"})
        deadline = time.monotonic() + self.settings.hook(hook).timeout_seconds - ANSWER_MARGIN_SECONDS
        if not self._runtime_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            logger.warning("/%s waited for another runtime hook until its timeout", hook, extra={"hook": hook})
            return HookResponse(200, {"status": "busy", "phase": self.phase})
        try:
            if hook == "run":
                return self._run(body, deadline)
            if hook == "resume":
                return self._resume(deadline)
            return self._stop(hook, deadline)
        finally:
            self._runtime_lock.release()

    @staticmethod
    def _build_hook(warmup: Warmup) -> HookResponse:
        warmup.start()
        if not warmup.done.is_set():
            return HookResponse(503, {"status": "warming up"})
        if warmup.failure:
            logger.error("build hook failed: %s", warmup.failure)
            return HookResponse(500, {"status": "failed", "reason": warmup.failure})
        return HookResponse(200, {"status": "ready"})

    def _run(self, body: bytes, deadline: float) -> HookResponse:
        request = parse_run_body(body)
        if request.error:
            logger.error("/run rejected: %s", request.error, extra={"hook": "run"})
            return HookResponse(413, {"status": "rejected", "reason": request.error})
        if self.phase == "terminated":
            logger.warning("/run arrived after /terminate; nothing to start", extra={"hook": "run"})
            return HookResponse(200, {"status": self.phase})
        # A retried /run keeps the identity: with the same id, or with none (the id is not in every
        # published body, and a retry of a body without one must not replace the VM's state).
        if self.vm is not None and request.microvm_id in (None, self.vm.microvm_id):
            return HookResponse(200, {"status": "already running", "microvmId": self.vm.microvm_id})
        if self.vm is not None:
            logger.warning(
                "/run for %s replaces identity %s", request.microvm_id, self.vm.microvm_id, extra={"hook": "run"}
            )
        microvm_id = request.microvm_id or f"microvm-local-{secrets.token_hex(16)}"
        vm = state.make_vm_info(microvm_id, request.microvm_id is not None, request.payload)
        # Reseed first: a per_vm factory that draws from `random` must not get the snapshot's state.
        state.reseed_generators()
        try:
            values = state.compute_per_vm_values()
        except Exception as error:  # fail closed, with the reason in the log
            reason = f"a per_vm factory raised {type(error).__name__}: {error}"
            logger.error("/run failed closed: %s", reason, extra={"hook": "run", "microvm_id": microvm_id})
            return HookResponse(500, {"status": "failed", "reason": reason})
        results = self.dispatcher.broadcast("run", {"vm": vm, "values": values}, deadline)
        errors = [message for result in results for message in result.errors]
        if errors or not all(result.ok for result in results):
            reason = "; ".join(errors) or "a worker could not apply /run"
            logger.error("/run failed closed: %s", reason, extra={"hook": "run", "microvm_id": microvm_id})
            return HookResponse(500, {"status": "failed", "reason": reason})
        self.vm = vm
        self.phase = "running"
        return HookResponse(200, {"status": "running", "microvmId": microvm_id})

    def _resume(self, deadline: float) -> HookResponse:
        if self.phase == "terminated":
            logger.warning("/resume arrived after /terminate; nothing to resume", extra={"hook": "resume"})
            return HookResponse(200, {"status": self.phase})
        if self.vm is None:
            logger.warning("/resume arrived before /run; the gate stays closed", extra={"hook": "resume"})
        self.dispatcher.broadcast("resume", {"has_vm": self.vm is not None}, deadline)
        state.reseed_generators()
        if self.vm is not None:
            self.phase = "running"
        return HookResponse(200, {"status": self.phase})

    def _stop(self, hook: str, deadline: float) -> HookResponse:
        target = "suspended" if hook == "suspend" else "terminated"
        if self.phase in (target, "terminated"):
            # Terminated is final: a late or retried /suspend must not reopen anything.
            return HookResponse(200, {"status": self.phase, "repeated": True})
        # Requests in flight get the hook's time less a margin for the callbacks, at most one second of it.
        margin = min(1.0, 0.2 * self.settings.hook(hook).timeout_seconds)
        results = self.dispatcher.broadcast(hook, {"drain_deadline": deadline - margin}, deadline)
        unfinished = sum(result.unfinished_requests for result in results)
        if unfinished:
            logger.warning(
                "/%s stopped waiting for %d request(s) still in flight", hook, unfinished, extra={"hook": hook}
            )
        self.phase = target
        return HookResponse(200, {"status": target, "unfinishedRequests": unfinished})


@dataclass
class RunRequest:
    microvm_id: str | None
    payload: str | None
    error: str | None = None


def parse_run_body(body: bytes) -> RunRequest:
    """Read the /run body defensively: an empty or malformed body means no id and no payload.

    The platform sends ``{"microvmId": "microvm-<uuid>", "runHookPayload": "<string>"}``; one
    published log looked for ``microVmId``, so both spellings are accepted.
    """
    if not body or not body.strip():
        return RunRequest(None, None)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        logger.warning("/run body is not JSON (%d bytes); continuing without id or payload", len(body))
        return RunRequest(None, None)
    if not isinstance(document, dict):
        logger.warning("/run body is JSON but not an object; continuing without id or payload")
        return RunRequest(None, None)

    microvm_id = document.get("microvmId", document.get("microVmId"))
    if not isinstance(microvm_id, str) or not microvm_id.strip() or len(microvm_id) > 256:
        microvm_id = None

    payload = document.get("runHookPayload")
    if payload is not None and not isinstance(payload, str):
        # A structured value instead of the documented string: keep it as JSON text.
        payload = json.dumps(payload)
    if payload is not None and len(payload.encode("utf-8", "surrogatepass")) > MAX_RUN_PAYLOAD_BYTES:
        size = len(payload.encode("utf-8", "surrogatepass"))
        return RunRequest(
            microvm_id,
            None,
            error=f"runHookPayload is {size} bytes, more than the {MAX_RUN_PAYLOAD_BYTES}-byte maximum",
        )
    return RunRequest(microvm_id, payload)
