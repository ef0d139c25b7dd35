"""The apps under test, how their processes start and stop, and the hook calls that drive them."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import AWS_EXAMPLE, BARE, HOOK_PREFIX, LOOPBACK, TEMPLATE, BenchmarkError
from .environments import Project

# Modules the template's server imports when it starts, which the fork server
# imports once so that each forked server starts in milliseconds.
UVICORN_MODULES = [
    "uvicorn",
    "uvicorn.server",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.loops.asyncio",
]
WAITRESS_MODULES = ["waitress", "waitress.server", "waitress.channel", "waitress.task"]
SERVER_MODULES = {
    "fastapi": UVICORN_MODULES,
    "flask": WAITRESS_MODULES,
    "django": WAITRESS_MODULES,
    "litestar": UVICORN_MODULES,
    "starlette": UVICORN_MODULES,
    "aiohttp": ["aiohttp.web", "aiohttp.web_runner", "aiohttp.web_protocol"],
}

POLL_INTERVAL_SECONDS = 0.005
STARTUP_TIMEOUT_SECONDS = 60.0


@dataclass
class App:
    """One app to measure and how to start it."""

    name: str  # "fastapi", "fastapi-bare", "aws-example"
    kind: str  # TEMPLATE, BARE or AWS_EXAMPLE
    python: Path
    cwd: Path
    pythonpath: Path
    arguments: list[str]  # after the interpreter, for a fresh process
    suspend_arguments: list[str] | None = None  # a fresh process that also serves GET /slow
    forkserver_preload: list[str] = field(default_factory=list)
    forkserver_target: str = ""
    forkserver_arguments: list[str] = field(default_factory=list)

    @property
    def has_hooks(self) -> bool:
        return self.kind != BARE

    @property
    def warms_itself(self) -> bool:
        """Whether the app sends its own warm-up requests before /ready returns 200, as the template app does."""
        return self.kind == TEMPLATE


def template_app(project: Project) -> App:
    package = project.package
    return App(
        name=project.framework,
        kind=TEMPLATE,
        python=project.python,
        cwd=project.path,
        pythonpath=project.path / "src",
        arguments=["-m", package],
        suspend_arguments=[str(project.path / "tests" / "lifecycle_server.py"), package],
        forkserver_preload=[f"{package}.app", f"{package}.microvm.serve", *SERVER_MODULES[project.framework]],
        forkserver_target=f"{package}.microvm.serve:serve",
        forkserver_arguments=[f"{package}.app"],
    )


def bare_app(project: Project, fixtures: Path) -> App:
    script = fixtures / f"bare_{project.framework}.py"
    return App(
        name=f"{project.framework}-bare",
        kind=BARE,
        python=project.python,
        cwd=fixtures,
        pythonpath=fixtures,
        arguments=[str(script)],
        suspend_arguments=[str(script)],
    )


def aws_example_app(venv: Path, fixtures: Path) -> App:
    script = fixtures / "aws_example.py"
    return App(
        name=AWS_EXAMPLE,
        kind=AWS_EXAMPLE,
        python=venv / "bin" / "python",
        cwd=fixtures,
        pythonpath=fixtures,
        arguments=[str(script)],
        suspend_arguments=[str(script)],
        forkserver_preload=["aws_example"],
        forkserver_target="aws_example:main",
    )


def free_port() -> int:
    """Return a port that is free on 127.0.0.1 now; the kernel picks it."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Ports:
    app: int
    hooks: int

    @classmethod
    def pick(cls) -> Ports:
        app = free_port()
        hooks = free_port()
        while hooks == app:
            hooks = free_port()
        return cls(app, hooks)

    def environment(self) -> dict[str, str]:
        return {"APP_PORT": str(self.app), "HOOKS_PORT": str(self.hooks), "MICROVM_HOST": LOOPBACK}


def app_environment(app: App) -> dict[str, str]:
    """Return the environment of an app's processes: its own interpreter paths, unbuffered output as in the image."""
    environ = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    environ["PYTHONPATH"] = str(app.pythonpath)
    environ["PYTHONUNBUFFERED"] = "1"
    environ.pop("MICROVM_WORKERS", None)
    return environ


class ServerProcess:
    """An app started in a fresh interpreter, with its output in a log file."""

    def __init__(self, app: App, arguments: list[str], ports: Ports, log_path: Path) -> None:
        self.ports = ports
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [str(app.python), *arguments],
            cwd=app.cwd,
            env={**app_environment(app), **ports.environment()},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._log.close()


class ForkServer:
    """The fixture forkserver.py running in an app's environment, which forks one server per sample."""

    def __init__(self, app: App, fixtures: Path, log_dir: Path) -> None:
        self.app = app
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = (log_dir / f"{app.name}-forkserver.log").open("ab")
        command = [str(app.python), str(fixtures / "forkserver.py")]
        command += [f"--preload={module}" for module in app.forkserver_preload]
        command += [f"--target={app.forkserver_target}", *app.forkserver_arguments]
        self.process = subprocess.Popen(
            command,
            cwd=app.cwd,
            env=app_environment(app),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        greeting = self._receive()
        if not greeting.get("ready"):
            raise BenchmarkError(f"the fork server for {app.name} did not start: {greeting}")
        self.preload_seconds = float(greeting["preload_seconds"])

    def _send(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._receive()

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise BenchmarkError(
                f"the fork server for {self.app.name} exited; see {self.log_dir / (self.app.name + '-forkserver.log')}"
            )
        return json.loads(line)

    def spawn(self, ports: Ports) -> int:
        reply = self._send(
            {"spawn": {"env": ports.environment(), "log": str(self.log_dir / f"{self.app.name}-forked.log")}}
        )
        if "pid" not in reply:
            raise BenchmarkError(f"the fork server for {self.app.name} did not start a server: {reply}")
        return int(reply["pid"])

    def stop(self, pid: int) -> None:
        self._send({"stop": pid})

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """Send one request to 127.0.0.1:port on a new connection; return the status and the body."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def call_hook(ports: Ports, hook: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    return http_request(ports.hooks, "POST", HOOK_PREFIX + hook, body=body, timeout=timeout)


def run_body(microvm_id: str) -> bytes:
    """Return a /run body shaped like the platform's: the id and the caller's payload string."""
    return json.dumps({"microvmId": microvm_id, "runHookPayload": json.dumps({"tenant": "benchmark"})}).encode()


def wait_until_ready(app: App, ports: Ports, is_running: Callable[[], bool], log_path: Path) -> float:
    """Poll like the platform until the app is ready; return the seconds waited.

    An app with hooks is ready when POST /ready returns 200, and 503 means "not
    yet". Every app must then return 200 for GET /healthz.
    """
    started = time.perf_counter()
    deadline = started + STARTUP_TIMEOUT_SECONDS
    probes: list[tuple[Callable[[], tuple[int, bytes]], str]] = []
    if app.has_hooks:
        probes.append((lambda: call_hook(ports, "ready", timeout=5), "POST /ready"))
    probes.append((lambda: http_request(ports.app, "GET", "/healthz", timeout=5), "GET /healthz"))
    for probe, label in probes:
        while True:
            if not is_running():
                raise BenchmarkError(f"{app.name} exited before it was ready; see {log_path}:\n{log_tail(log_path)}")
            try:
                status, body = probe()
            except OSError:
                status, body = 0, b""
            if status == 200:
                break
            if status not in (0, 503):
                raise BenchmarkError(f"{app.name}: {label} returned status {status} {body[:200]!r}; see {log_path}")
            if time.perf_counter() > deadline:
                raise BenchmarkError(
                    f"{app.name}: {label} timed out without status 200 after {STARTUP_TIMEOUT_SECONDS:g} s; "
                    f"see {log_path}:\n{log_tail(log_path)}"
                )
            time.sleep(POLL_INTERVAL_SECONDS)
    return time.perf_counter() - started


class Server:
    """A started app server, fresh or forked, with the operations every measurement needs."""

    def __init__(
        self, ports: Ports, pid: int, log_path: Path, stop: Callable[[], None], is_running: Callable[[], bool]
    ) -> None:
        self.ports = ports
        self.pid = pid
        self.log_path = log_path
        self.stop = stop
        self.is_running = is_running


ServerStarter = Callable[[], Server]


def fresh_starter(app: App, arguments: list[str], log_dir: Path, log_name: str) -> ServerStarter:
    """Return a function that starts the app in a fresh interpreter on new ports."""

    def start() -> Server:
        ports = Ports.pick()
        process = ServerProcess(app, arguments, ports, log_dir / f"{log_name}.log")
        return Server(ports, process.pid, process.log_path, process.stop, process.is_running)

    return start


def forked_starter(forkserver: ForkServer) -> ServerStarter:
    """Return a function that forks a new server from the fork server on new ports."""

    def start() -> Server:
        ports = Ports.pick()
        pid = forkserver.spawn(ports)

        def is_running() -> bool:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                return False
            return state != "Z"

        log_path = forkserver.log_dir / f"{forkserver.app.name}-forked.log"
        return Server(ports, pid, log_path, lambda: forkserver.stop(pid), is_running)

    return start


@contextmanager
def started(app: App, start: ServerStarter) -> Iterator[Server]:
    """Start a server, wait until it is ready, and stop it when the block exits, normally or by an exception."""
    server = start_ready(app, start)
    try:
        yield server
    finally:
        server.stop()


# Starts of one server before giving up. A port that free_port() returned can be
# taken by another program before the server binds it, and the next start gets new ports.
START_ATTEMPTS = 3


def start_ready(app: App, start: ServerStarter) -> Server:
    """Start a server and wait until it is ready; start it again on new ports if it exits first."""
    for attempt in range(1, START_ATTEMPTS + 1):
        server = start()
        try:
            wait_until_ready(app, server.ports, server.is_running, server.log_path)
            return server
        except BenchmarkError:
            exited_by_itself = not server.is_running()
            server.stop()
            if not exited_by_itself or attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")
