"""Fixtures shared by the project's tests: free ports and the app running as a real server."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "{{ cookiecutter.package_name }}"
HOOK_PREFIX = "/aws/lambda-microvms/runtime/v1/"
SERVER_SCRIPT = Path(__file__).with_name("lifecycle_server.py")


def free_port() -> int:
    """Return a port that is free on 127.0.0.1 now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> object:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.body[:200]!r})"


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """Send one HTTP/1.1 request to 127.0.0.1:port and read the whole response."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


class AppProcess:
    """The app started as `python -m <package>` does, through tests/lifecycle_server.py."""

    def __init__(self, extra_args: list[str], env: dict[str, str]) -> None:
        self.app_port = free_port()
        self.hooks_port = free_port()
        environment = {
            **os.environ,
            "APP_PORT": str(self.app_port),
            "HOOKS_PORT": str(self.hooks_port),
            "MICROVM_HOST": "127.0.0.1",
            "MICROVM_REQUEST_GATE_TIMEOUT_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"microvm-test-{self.app_port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), PACKAGE, *extra_args],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def hook(self, name: str, body: bytes | None = None, **kwargs: object) -> Response:
        return request(self.hooks_port, "POST", HOOK_PREFIX + name, body=body, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, **kwargs: object) -> Response:
        return request(self.app_port, "GET", path, **kwargs)  # type: ignore[arg-type]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll /ready like the platform until it answers 200; fail on any other final status."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the app exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = self.hook("ready", timeout=2)
            except OSError as error:
                last = error
            else:
                if response.status == 200:
                    return
                assert response.status == 503, f"/ready answered {response}"
                last = response
            time.sleep(0.05)
        raise AssertionError(f"/ready did not answer 200 within {timeout} s (last: {last}):\n{self.log()}")

    def run(self, microvm_id: str = "microvm-test-1", payload: str = "") -> Response:
        body = json.dumps({"microvmId": microvm_id, "runHookPayload": payload}).encode()
        return self.hook("run", body, headers={"Content-Type": "application/json"})

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def start_app() -> Iterator[object]:
    """Start the app with extra lifecycle_server.py arguments and environment; stop it after the test."""
    started: list[AppProcess] = []

    def start(*extra_args: str, **env: str) -> AppProcess:
        app = AppProcess(list(extra_args), env)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def app(start_app) -> AppProcess:
    """The app with no extra callbacks, past /ready."""
    running = start_app()
    running.wait_ready()
    return running
