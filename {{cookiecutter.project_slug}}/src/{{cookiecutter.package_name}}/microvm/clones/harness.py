"""The whole check: the build phase, one clone per emulated MicroVM, and the report."""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

from .. import state
from ..config import Settings, SettingsError, load_settings
from ..gate import WARMUP_HEADER, Gate, set_gate
from ..lifecycle import Lifecycle
from ..worker import LocalDispatcher
from .callers import AiohttpCaller, AsgiCaller, Caller, WsgiCaller
from .compare import CloneReport, Problem, WarmupRecord, find_problems, shorten
from .errors import HarnessError
from .fork import run_in_clone
from .paths import UniquenessPaths

DEFAULT_CLONES = 3
# Seconds that one clone may take for /run and all its requests before it is killed.
DEFAULT_CLONE_TIMEOUT_SECONDS = 30.0
# Response bodies are cut to this many characters in the report that a clone sends back.
MAX_BODY_CHARS = 64 * 1024


@dataclass
class Build:
    """The state of the process after the build phase: what every clone starts from."""

    settings: Settings
    app_module: ModuleType
    caller: Caller
    lifecycle: Lifecycle
    warmup: list[WarmupRecord] = field(default_factory=list)


def run_build_phase(app_module_name: str, settings: Settings, request_timeout_seconds: float) -> Build:
    """Configure the gate, import the app, start its lifespan and send the warm-up requests.

    This is what ``python -m <package>`` and ``/ready`` do before the snapshot,
    without the servers. Raise HarnessError when a step fails.
    """
    warmup_token = uuid.uuid4().hex
    gate = Gate(settings.request_gate_timeout_seconds, settings.ungated_paths)
    gate.warmup_token = warmup_token
    set_gate(gate)
    # The harness may run in a process that served /run before; a snapshot has no VM identity.
    state.reset_for_tests()

    try:
        app_module = importlib.import_module(app_module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (app_module_name + ".").startswith(error.name + "."):
            raise HarnessError(
                f"app module {app_module_name!r} not found; pass --app MODULE with the module that defines `app`"
            ) from error
        raise
    app = getattr(app_module, "app", None)
    if app is None:
        raise HarnessError(f"{app_module_name} has no attribute `app`; define the WSGI or ASGI app object as `app`")
    server_kind = getattr(app_module, "SERVER", None)
    caller: Caller
    if server_kind == "uvicorn":
        caller = AsgiCaller(app, settings.app_port, request_timeout_seconds)
        caller.start_lifespan()
    elif server_kind == "waitress":
        caller = WsgiCaller(app, settings.app_port)
    elif server_kind == "aiohttp":
        caller = AiohttpCaller(app, settings.app_port, request_timeout_seconds)
        caller.start()
    else:
        raise HarnessError(
            f"{app_module_name}.SERVER is {server_kind!r}; "
            "set it to 'uvicorn' (ASGI), 'waitress' (WSGI) or 'aiohttp' (an aiohttp Application)"
        )

    lifecycle = Lifecycle(settings, LocalDispatcher(), warmup_token)
    build = Build(settings=settings, app_module=app_module, caller=caller, lifecycle=lifecycle)
    for warmup in settings.warmup:
        response = caller.request(warmup.method, warmup.path, {WARMUP_HEADER: warmup_token})
        if response.status != warmup.status:
            raise HarnessError(
                f"warm-up request {warmup.method} {warmup.path} got status {response.status}, "
                f"expected {warmup.status}; /ready would fail the image build the same way. "
                f"Response: {shorten(_decode(response.body))}"
            )
        build.warmup.append(WarmupRecord(warmup.method, warmup.path, response.status, _decode(response.body)))
    return build


def _decode(body: bytes) -> str:
    return body[:MAX_BODY_CHARS].decode("utf-8", "replace")


def probe_clone(build: Build, microvm_id: str, paths: UniquenessPaths) -> dict[str, Any]:
    """In a clone: send /run with ``microvm_id`` through the lifecycle, then request every checked path.

    Return the /run response and, per path, the status and body of each response:
    one request for a per-VM path, two for a per-request path.
    """
    build.caller.enter_clone()
    body = json.dumps({"microvmId": microvm_id, "runHookPayload": ""}).encode()
    run = build.lifecycle.handle("run", body)
    report: dict[str, Any] = {"run": {"status": run.status, "body": run.body}, "per_vm": {}, "per_request": {}}
    if run.status != 200:
        return report
    for kind, count in (("per_vm", 1), ("per_request", 2)):
        for path in getattr(paths, kind):
            responses = [build.caller.request("GET", path, {}) for _ in range(count)]
            report[kind][path] = [{"status": r.status, "body": _decode(r.body)} for r in responses]
    return report


@dataclass
class Report:
    """The outcome of one harness run."""

    app_module: str
    paths: UniquenessPaths
    warmup: list[WarmupRecord]
    clones: list[CloneReport]
    problems: list[Problem]

    def to_json(self) -> dict[str, Any]:
        return {
            "app_module": self.app_module,
            "per_vm": list(self.paths.per_vm),
            "per_request": list(self.paths.per_request),
            "warmup": [vars(record) for record in self.warmup],
            "clones": [vars(clone) for clone in self.clones],
            "problems": [problem.to_json() for problem in self.problems],
        }

    def format_text(self) -> str:
        checked = ", ".join([*self.paths.per_vm, *self.paths.per_request])
        if not self.problems:
            return f"{len(self.clones)} clones of {self.app_module} checked ({checked}): no shared values"
        lines = [f"{len(self.problems)} problem(s) in {len(self.clones)} clones of {self.app_module} ({checked}):"]
        lines.extend(problem.message for problem in self.problems)
        return "\n".join(lines)


def check_clones(
    app_module_name: str,
    paths: UniquenessPaths,
    clone_count: int = DEFAULT_CLONES,
    clone_timeout_seconds: float = DEFAULT_CLONE_TIMEOUT_SECONDS,
) -> Report:
    """Run the build phase in this process, fork ``clone_count`` clones, and check their values.

    Call it in a fresh process, so that the app's import is part of the build
    phase. The build phase gets the /ready timeout of microvm.toml, as on the
    platform; that bound needs SIGALRM, so it applies only in the main thread.
    Raise HarnessError when the arguments are invalid or the build phase fails.
    """
    if clone_count < 2:
        raise HarnessError(f"clone count {clone_count} is too small; use at least 2 so that values can be compared")
    if clone_timeout_seconds <= 0:
        raise HarnessError(f"clone timeout {clone_timeout_seconds:g} s is invalid; use a positive number of seconds")
    if not paths.per_vm and not paths.per_request:
        raise HarnessError("per_vm and per_request are both empty, so nothing would be checked; list at least one path")
    both = sorted(set(paths.per_vm) & set(paths.per_request))
    if both:
        raise HarnessError(
            f"paths listed in both per_vm and per_request: {', '.join(both)}; keep each path in one list"
        )
    try:
        settings = load_settings()
    except SettingsError as error:
        raise HarnessError(f"invalid settings: {error}") from error

    with _alarm(settings.hook("ready").timeout_seconds, "the build phase (import, lifespan startup, warm-up)"):
        build = run_build_phase(app_module_name, settings, clone_timeout_seconds)
    clones = []
    try:
        for number in range(1, clone_count + 1):
            clone = CloneReport(number, f"microvm-{uuid.uuid4()}")
            probe = functools.partial(probe_clone, build, clone.microvm_id, paths)
            try:
                clone.result = run_in_clone(probe, clone_timeout_seconds)
            except HarnessError as error:
                clone.error = str(error)
            clones.append(clone)
    finally:
        build.caller.shutdown()
    return Report(app_module_name, paths, build.warmup, clones, find_problems(build.warmup, paths, clones))


@contextlib.contextmanager
def _alarm(seconds: float, step: str) -> Iterator[None]:
    """Raise HarnessError in the main thread when the block runs longer than ``seconds``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise HarnessError(f"{step} timed out after {seconds:g} s, the /ready timeout in microvm.toml")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
