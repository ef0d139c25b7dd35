"""Tests of the local MicroVM emulator (microvm-local).

Most tests drive tests/local_fake_app.py, a small standard-library app whose
hooks can be made to break the contract on purpose. The last tests run the
emulator's commands against the project's real app. Every server listens on
127.0.0.1 on ports the kernel picks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.local import cli, tokens
from {{ cookiecutter.package_name }}.local.demo import run_demo
from {{ cookiecutter.package_name }}.local.emulator import Emulator
from {{ cookiecutter.package_name }}.local.process import LaunchConfig
from {{ cookiecutter.package_name }}.local.timeline import (
    RULE_BUILD_STATUS,
    RULE_BUILD_TIMEOUT,
    RULE_PROCESS_RUNNING,
    RULE_RUNTIME_STATUS,
    RULE_RUNTIME_TIMEOUT,
    ContractViolation,
    Timeline,
)
from {{ cookiecutter.package_name }}.local.vm import (
    RUNNING,
    SUSPENDED,
    TERMINATED,
    EmulatedMicrovm,
    IdlePolicy,
)
from {{ cookiecutter.package_name }}.microvm.config import Settings, load_settings

PACKAGE = Emulator.__module__.split(".")[0]
FAKE_APP = Path(__file__).with_name("local_fake_app.py")
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
# Upper bound for one emulator scenario; the slowest takes about 3 s.
SCENARIO_TIMEOUT_SECONDS = 30.0


def settings_with(**timeouts: int) -> Settings:
    """Return the project's settings, ignoring APP_PORT and friends, with some hook timeouts replaced."""
    settings = load_settings({})
    hooks = dict(settings.hooks)
    for name, seconds in timeouts.items():
        hooks[name] = dataclasses.replace(hooks[name], timeout_seconds=seconds)
    return dataclasses.replace(settings, hooks=hooks)


def fake_launch(mode: str) -> LaunchConfig:
    return LaunchConfig(
        command=(sys.executable, str(FAKE_APP)),
        poll_interval_seconds=0.05,
        stop_timeout_seconds=2.0,
        environment={"FAKE_APP_MODE": mode},
    )


def token_for(*ports: int, key: bytes = KEY, **options: Any) -> str:
    allowed = [tokens.PortRange(port, port) for port in ports]
    return tokens.mint_token(key, allowed_ports=allowed, expiration_minutes=options.pop("minutes", 5), **options)


def run_scenario(
    scenario: Callable[[Emulator, EmulatedMicrovm], Awaitable[Any]],
    *,
    mode: str = "ok",
    settings: Settings | None = None,
    idle_policy: IdlePolicy | None = None,
) -> tuple[Any, Emulator]:
    """Launch one fake MicroVM, await ``scenario(emulator, microvm)``, shut down; return its result and the emulator."""
    emulator_box: list[Emulator] = []

    async def main() -> Any:
        timeline = Timeline(io.StringIO())
        emulator = Emulator(settings or settings_with(), timeline, fake_launch(mode), KEY)
        emulator_box.append(emulator)
        async with asyncio.timeout(SCENARIO_TIMEOUT_SECONDS):
            try:
                [microvm] = await emulator.launch_microvms(1, "payload", [idle_policy])
                return await scenario(emulator, microvm)
            finally:
                await emulator.shutdown("test finished")

    result = asyncio.run(main())
    return result, emulator_box[0]


class Harness:
    """One fake MicroVM behind its endpoint, served from an event loop in a background thread."""

    def __init__(self) -> None:
        self.settings = settings_with()
        self.timeline = Timeline(io.StringIO())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emulator = Emulator(self.settings, self.timeline, fake_launch("ok"), KEY)
        [self.microvm] = self.call(self.emulator.launch_microvms(1, "payload", [None]))
        self.port = self.emulator.endpoints[self.microvm.id].port

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(SCENARIO_TIMEOUT_SECONDS)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None, chunked: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def close(self) -> None:
        self.call(self.emulator.shutdown("tests finished"))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def fake_vm() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


# -- tokens -----------------------------------------------------------------------------------------


def test_token_allows_listed_ports_only() -> None:
    claims = tokens.verify_token(KEY, token_for(8080, 8443))
    assert claims.allows_port(8080)
    assert claims.allows_port(8443)
    assert not claims.allows_port(9000)


def test_token_range_and_all_ports() -> None:
    ranged = tokens.verify_token(
        KEY, tokens.mint_token(KEY, allowed_ports=[tokens.PortRange(8000, 8100)], expiration_minutes=1)
    )
    everything = tokens.verify_token(KEY, tokens.mint_token(KEY, allowed_ports=None, expiration_minutes=1))
    assert ranged.allows_port(8050)
    assert not ranged.allows_port(8101)
    assert everything.allows_port(1)


def test_token_with_altered_claims_rejected() -> None:
    prefix, _claims, signature = token_for(8080).split(".")
    forged_claims = tokens.mint_token(OTHER_KEY, allowed_ports=None, expiration_minutes=60).split(".")[1]
    with pytest.raises(tokens.TokenError, match="signature is invalid"):
        tokens.verify_token(KEY, f"{prefix}.{forged_claims}.{signature}")


def test_token_from_other_key_rejected() -> None:
    with pytest.raises(tokens.TokenError, match="signature is invalid"):
        tokens.verify_token(KEY, token_for(8080, key=OTHER_KEY))


def test_token_with_non_ascii_rejected() -> None:
    prefix, claims, _signature = token_for(8080).split(".")
    with pytest.raises(tokens.TokenError, match="malformed"):
        tokens.verify_token(KEY, f"{prefix}.{claims}.\u00e9\u00e9")


def test_token_expired_rejected() -> None:
    token = token_for(8080, minutes=1, now=time.time() - 61)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify_token(KEY, token)


@pytest.mark.parametrize("minutes", [0, 61])
def test_mint_rejects_expiration_outside_limits(minutes: int) -> None:
    with pytest.raises(ValueError, match=f"expiration of {minutes} minutes is invalid"):
        tokens.mint_token(KEY, allowed_ports=None, expiration_minutes=minutes)


@pytest.mark.parametrize("text", ["", "http", "0", "70000", "9000-8000", "80-", "-80", "8080 8081"])
def test_port_spec_rejects_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="is invalid"):
        tokens.parse_port_spec(text)


def test_key_file_private_and_stable(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    first = tokens.load_or_create_key(state_dir)
    second = tokens.load_or_create_key(state_dir)
    key_mode = stat.S_IMODE((state_dir / tokens.KEY_FILE_NAME).stat().st_mode)
    assert first == second
    assert key_mode == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700


def test_key_file_readable_by_others_rejected(tmp_path: Path) -> None:
    tokens.load_or_create_key(tmp_path)
    (tmp_path / tokens.KEY_FILE_NAME).chmod(0o644)
    with pytest.raises(tokens.KeyFileError, match="chmod 600"):
        tokens.load_or_create_key(tmp_path)


# -- proxy: tokens, routing, headers, bodies, WebSocket ---------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "missing token"),
        ("bad_signature", "signature is invalid"),
        ("expired", "expired"),
        ("port_not_allowed", "is not allowed by this token"),
        ("other_microvm", "was minted for microvm-other"),
    ],
)
def test_proxy_rejects_token(fake_vm: Harness, case: str, expected: str) -> None:
    app_port, hooks_port = fake_vm.settings.app_port, fake_vm.settings.hooks_port
    headers = {
        "missing": {},
        "bad_signature": {tokens.TOKEN_HEADER: token_for(app_port, key=OTHER_KEY)},
        "expired": {tokens.TOKEN_HEADER: token_for(app_port, minutes=1, now=time.time() - 120)},
        "port_not_allowed": {tokens.TOKEN_HEADER: token_for(app_port), "X-aws-proxy-port": str(hooks_port)},
        "other_microvm": {tokens.TOKEN_HEADER: token_for(app_port, microvm_id="microvm-other")},
    }[case]
    status, response_headers, body = fake_vm.request("GET", "/session", headers)
    assert status == 403
    assert expected in body.decode()
    assert response_headers.get("x-amzn-requestid")


def test_proxy_routes_default_port_to_app(fake_vm: Harness) -> None:
    token = token_for(fake_vm.settings.app_port, microvm_id=fake_vm.microvm.id)
    status, _, body = fake_vm.request("GET", "/session", {tokens.TOKEN_HEADER: token})
    assert status == 200
    assert json.loads(body)["microvm_id"] == fake_vm.microvm.id


def test_proxy_routes_port_header_to_hooks_port(fake_vm: Harness) -> None:
    hooks_port = fake_vm.settings.hooks_port
    headers = {tokens.TOKEN_HEADER: token_for(hooks_port), "X-aws-proxy-port": str(hooks_port)}
    status, _, body = fake_vm.request("POST", "/aws/lambda-microvms/runtime/v1/probe", headers, body=b"")
    assert status == 200
    assert json.loads(body) == {"server": "hooks", "hook": "probe"}


def test_proxy_unmapped_port_gets_502(fake_vm: Harness) -> None:
    headers = {tokens.TOKEN_HEADER: token_for(7777), "X-aws-proxy-port": "7777"}
    status, _, body = fake_vm.request("GET", "/", headers)
    assert status == 502
    assert "nothing is listening on port 7777" in body.decode()


@pytest.mark.parametrize("port", ["http", "0", "65536", "80, 81"])
def test_proxy_invalid_port_header_gets_400(fake_vm: Harness, port: str) -> None:
    headers = {
        tokens.TOKEN_HEADER: tokens.mint_token(KEY, allowed_ports=None, expiration_minutes=1),
        "X-aws-proxy-port": port,
    }
    status, _, body = fake_vm.request("GET", "/", headers)
    assert status == 400
    assert "is invalid" in body.decode()


def test_proxy_strips_proxy_headers_and_adds_request_id(fake_vm: Harness) -> None:
    app_port = fake_vm.settings.app_port
    sent = {
        tokens.TOKEN_HEADER: token_for(app_port),
        "X-aws-proxy-port": str(app_port),
        "X-aws-proxy-force-h2": "false",
        "x-aws-proxy-anything": "1",
        "x-amzn-requestid": "forged-by-client",
        "X-Custom": "kept",
    }
    status, response_headers, body = fake_vm.request("GET", "/headers", sent)
    seen = {name.lower(): value for name, value in json.loads(body)}
    assert status == 200
    assert [name for name in seen if name.startswith("x-aws-proxy-")] == []
    assert seen["x-amzn-requestid"] not in ("", "forged-by-client")
    assert seen["x-custom"] == "kept"
    assert "x-forwarded-for" not in seen
    assert seen["connection"] == "close"
    assert response_headers["connection"] == "close"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_proxy_forwards_request_body(fake_vm: Harness, chunked: bool) -> None:
    payload = os.urandom(200_000)
    body: Any = iter([payload[:70_000], payload[70_000:]]) if chunked else payload
    headers = {tokens.TOKEN_HEADER: token_for(fake_vm.settings.app_port)}
    status, _, echoed = fake_vm.request("POST", "/echo", headers, body=body, chunked=chunked)
    assert status == 200
    assert echoed == payload


@pytest.mark.parametrize(
    ("framing_headers", "body"),
    [
        ("Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
        ("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    ],
    ids=["bad-chunk-size", "negative-chunk-size", "chunked-and-length", "two-lengths"],
)
def test_proxy_malformed_request_body_gets_400(fake_vm: Harness, framing_headers: str, body: bytes) -> None:
    token = token_for(fake_vm.settings.app_port)
    with socket.create_connection(("127.0.0.1", fake_vm.port), timeout=10) as connection:
        head = f"POST /echo HTTP/1.1\r\nHost: localhost\r\n{tokens.TOKEN_HEADER}: {token}\r\n{framing_headers}\r\n"
        connection.sendall(head.encode() + body)
        response = b""
        while data := connection.recv(4096):
            response += data
    assert response.startswith(b"HTTP/1.1 400 ")


def _websocket_handshake(port: int, protocols: str) -> tuple[socket.socket, bytes]:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(
        (
            "GET /ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {protocols}\r\n"
            "\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        data = connection.recv(4096)
        if not data:
            break
        head += data
    return connection, head


def test_proxy_websocket_strips_subprotocols_and_tunnels(fake_vm: Harness) -> None:
    token = token_for(fake_vm.settings.app_port)
    app_port = fake_vm.settings.app_port
    protocols = f"lambda-microvms, lambda-microvms.authentication.{token}, lambda-microvms.port.{app_port}, chat"
    connection, head = _websocket_handshake(fake_vm.port, protocols)
    with connection:
        # A masked text frame "hello", as a client sends it (RFC 6455); the fake app echoes raw bytes.
        mask = b"\x01\x02\x03\x04"
        frame = bytes([0x81, 0x80 | 5]) + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(b"hello"))
        connection.sendall(frame)
        echoed = b""
        while len(echoed) < len(frame):
            data = connection.recv(4096)
            if not data:
                break
            echoed += data
    head_text = head.decode("latin-1").lower()
    assert head_text.startswith("http/1.1 101")
    assert "x-seen-subprotocols: chat\r\n" in head_text
    assert "x-seen-proxy-headers: \r\n" in head_text
    assert echoed == frame


def test_proxy_websocket_without_token_rejected(fake_vm: Harness) -> None:
    connection, head = _websocket_handshake(fake_vm.port, "lambda-microvms, chat")
    connection.close()
    assert head.startswith(b"HTTP/1.1 403")


def test_run_body_and_hook_transport_match_platform(fake_vm: Harness) -> None:
    status, _, body = fake_vm.request("GET", "/hooks", {tokens.TOKEN_HEADER: token_for(fake_vm.settings.app_port)})
    # test_proxy_routes_port_header_to_hooks_port may have sent a "probe" call through the proxy.
    calls = [call for call in json.loads(body) if call["hook"] != "probe"]
    run_call = next(call for call in calls if call["hook"] == "run")
    assert status == 200
    assert [call["hook"] for call in calls][:4] == ["ready", "ready", "validate", "run"]
    assert json.loads(run_call["body"]) == {"microvmId": fake_vm.microvm.id, "runHookPayload": "payload"}
    assert fake_vm.microvm.id.startswith("microvm-")
    assert run_call["content_type"] == "application/json"
    assert {call["host"] for call in calls} == {f"localhost:{fake_vm.settings.hooks_port}"}
    assert {call["user_agent"] for call in calls} == {None}


def test_proxy_502_when_app_not_listening() -> None:
    async def scenario(emulator: Emulator, microvm: EmulatedMicrovm) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", emulator.endpoints[microvm.id].port, timeout=10)
        headers = {tokens.TOKEN_HEADER: token_for(emulator.settings.app_port)}
        def send() -> http.client.HTTPResponse:
            connection.request("GET", "/", headers=headers)
            return connection.getresponse()

        response = await asyncio.to_thread(send)
        return response.status, response.read().decode()

    (status, body), _ = run_scenario(scenario, mode="no_app")
    assert status == 502
    assert "nothing is listening on port" in body


# -- idle policy ------------------------------------------------------------------------------------


def _process_state(pid: int) -> str:
    """Return the one-letter state from /proc/<pid>/stat; "T" means stopped by a signal."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def _wait_for_process_state(pid: int, expected: str, timeout: float = 5.0) -> str:
    """Poll the process state until it is ``expected`` or ``timeout`` passes; signals arrive asynchronously."""
    deadline = time.monotonic() + timeout
    state = _process_state(pid)
    while state != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        state = _process_state(pid)
    return state


async def _get_session(emulator: Emulator, microvm: EmulatedMicrovm) -> tuple[int, bytes]:
    def send() -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", emulator.endpoints[microvm.id].port, timeout=10)
        connection.request("GET", "/session", headers={tokens.TOKEN_HEADER: token_for(emulator.settings.app_port)})
        response = connection.getresponse()
        return response.status, response.read()

    return await asyncio.to_thread(send)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_idle_suspends_and_request_resumes() -> None:
    async def scenario(emulator: Emulator, microvm: EmulatedMicrovm) -> dict[str, Any]:
        _, before = await _get_session(emulator, microvm)
        suspended = await microvm.wait_for_state((SUSPENDED,), 5.0)
        frozen_state = await _wait_for_process_state(microvm.process.pid, "T")
        status, after = await _get_session(emulator, microvm)
        return {
            "suspended": suspended,
            "frozen": frozen_state,
            "status": status,
            "same": before == after,
            "state": microvm.state,
        }

    result, emulator = run_scenario(scenario, idle_policy=IdlePolicy(0.3, 60.0))
    hooks = [(entry.event, entry.status) for entry in emulator.timeline.events if entry.event in ("suspend", "resume")]
    assert result["suspended"]
    assert result["frozen"] == "T"
    assert result["status"] == 200
    assert result["same"]
    assert result["state"] == RUNNING
    assert hooks[:2] == [("suspend", 200), ("resume", 200)]


def test_suspended_without_auto_resume_gets_502() -> None:
    async def scenario(emulator: Emulator, microvm: EmulatedMicrovm) -> tuple[int, bytes, str]:
        await microvm.wait_for_state((SUSPENDED,), 5.0)
        status, body = await _get_session(emulator, microvm)
        return status, body, microvm.state

    (status, body, state), _ = run_scenario(scenario, idle_policy=IdlePolicy(0.2, 60.0, auto_resume=False))
    assert status == 502
    assert b"auto-resume is off" in body
    assert state == SUSPENDED


def test_suspended_duration_zero_terminates_without_terminate_hook() -> None:
    async def scenario(emulator: Emulator, microvm: EmulatedMicrovm) -> bool:
        return await microvm.wait_for_state((TERMINATED,), 5.0)

    terminated, emulator = run_scenario(scenario, idle_policy=IdlePolicy(0.2, 0.0))
    terminate_events = emulator.timeline.find(event="terminate")
    assert terminated
    assert [entry.status for entry in terminate_events] == [None]
    assert "/terminate not called" in terminate_events[0].note
    assert emulator.violations == []


# -- contract violations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "timeouts", "rule", "detail"),
    [
        ("run_500", {}, RULE_RUNTIME_STATUS, "/run returned 500 (reason: per-VM setup failed)"),
        ("run_slow", {"run": 1}, RULE_RUNTIME_TIMEOUT, "/run did not respond within its timeout of 1 s"),
        ("ready_404", {}, RULE_BUILD_STATUS, "/ready returned 404"),
        ("ready_never", {"ready": 1}, RULE_BUILD_TIMEOUT, "/ready did not return 200 within 1 s"),
        ("exit_early", {}, RULE_PROCESS_RUNNING, "exited with code 3"),
    ],
)
def test_launch_reports_violation(mode: str, timeouts: dict[str, int], rule: str, detail: str) -> None:
    async def scenario(emulator: Emulator, microvm: EmulatedMicrovm) -> None:
        raise AssertionError("the launch should have failed")

    with pytest.raises(ContractViolation) as raised:
        run_scenario(scenario, mode=mode, settings=settings_with(**timeouts))
    assert raised.value.rule == rule
    assert detail in raised.value.detail


def test_launch_violation_terminates_process() -> None:
    emulators: list[Emulator] = []

    async def main() -> None:
        emulator = Emulator(settings_with(), Timeline(io.StringIO()), fake_launch("run_500"), KEY)
        emulators.append(emulator)
        try:
            await emulator.launch_microvms(1, "", [None])
        except ContractViolation:
            pass
        finally:
            await emulator.shutdown("test finished")

    asyncio.run(main())
    [microvm] = emulators[0].microvms
    assert microvm.state == TERMINATED
    assert microvm.process.returncode is not None
    assert len(emulators[0].violations) == 1


@pytest.mark.parametrize("hook", ["suspend", "resume"])
def test_failed_idle_hook_terminates_microvm(hook: str) -> None:
    async def scenario(emulator: Emulator, microvm: EmulatedMicrovm) -> int | None:
        await microvm.wait_for_state((SUSPENDED, TERMINATED), 5.0)
        status = None
        if hook == "resume":
            status, _ = await _get_session(emulator, microvm)
        await microvm.wait_for_state((TERMINATED,), 5.0)
        return status

    status, emulator = run_scenario(scenario, mode=f"{hook}_500", idle_policy=IdlePolicy(0.2, 60.0))
    [violation] = emulator.violations
    assert violation.rule == RULE_RUNTIME_STATUS
    assert f"/{hook} returned 500" in violation.detail
    assert emulator.microvms[0].state == TERMINATED
    if hook == "resume":
        assert status == 502


# -- demo and commands ------------------------------------------------------------------------------


def test_demo_fails_when_session_ids_are_shared() -> None:
    output = io.StringIO()

    async def main() -> bool:
        return await run_demo(
            settings_with(), Timeline(output), fake_launch("static_session"), KEY, max_idle_seconds=0.3
        )

    passed = asyncio.run(main())
    assert not passed
    assert "check FAILED the two MicroVMs have different session ids" in output.getvalue()
    assert "demo FAILED" in output.getvalue()


def test_token_command_prints_valid_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks_port = load_settings({}).hooks_port
    status = cli.main(["--state-dir", str(tmp_path), "token", "--port", str(hooks_port), "--expires-in", "1"])
    captured = capsys.readouterr()
    claims = tokens.verify_token(tokens.load_or_create_key(tmp_path), captured.out.strip())
    assert status == 0
    assert claims.allows_port(hooks_port)
    assert claims.expires_at - claims.issued_at == 60
    assert "warning: this token allows the hooks port" in captured.err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["token", "--expires-in", "61"], "'61' is invalid"),
        (["token", "--port", "9000-80"], "write the lower port first"),
        (["run", "--vms", "0"], "'0' is invalid"),
        (["run", "--max-idle", "-1"], "'-1' is invalid"),
        (["run", "--payload", "x" * 4097], "RunMicrovm accepts at most 4096"),
    ],
    ids=["expiry", "port-range", "vms", "max-idle", "payload"],
)
def test_cli_rejects_invalid_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--state-dir", str(tmp_path), *arguments])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def _run_command(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, tokens.STATE_DIR_VARIABLE: str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.local", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_passes_against_real_app(tmp_path: Path) -> None:
    result = _run_command(tmp_path, "demo")
    session_lines = [line for line in result.stdout.splitlines() if line.startswith("session id of ")]
    session_ids = {line.rsplit(": ", 1)[1] for line in session_lines}
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo passed" in result.stdout
    assert len(session_lines) == 2
    assert len(session_ids) == 2


def test_build_passes_against_real_app(tmp_path: Path) -> None:
    result = _run_command(tmp_path, "build")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "build passed" in result.stdout


def test_run_stops_at_max_duration_against_real_app(tmp_path: Path) -> None:
    result = _run_command(tmp_path, "run", "--max-duration", "1", "--app-output", "tail")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped: maximum duration of 1 s reached" in result.stdout
    assert " terminate " in result.stdout
{%- if cookiecutter.framework not in ["flask", "django"] %}


def test_websocket_through_proxy_reconnects_after_idle_suspend() -> None:
    """An idle WebSocket gets the suspend notice; a new connection after it resumes the VM and works."""
    from websocket_client import OP_CLOSE, WebSocketClient

    # The command of the container, `python -m <package>`, with this interpreter.
    launch = LaunchConfig(command=(sys.executable, "-m", PACKAGE), poll_interval_seconds=0.05)

    async def scenario(emulator: Emulator, microvm: EmulatedMicrovm) -> dict[str, Any]:
        port = emulator.endpoints[microvm.id].port
        token = token_for(emulator.settings.app_port)
        # Browsers cannot set headers on a WebSocket, so the token travels as a subprotocol.
        headers = {"Sec-WebSocket-Protocol": f"lambda-microvms, lambda-microvms.authentication.{token}"}

        def connect_and_idle() -> dict[str, Any]:
            client = WebSocketClient(port, headers=headers)
            try:
                greeting = json.loads(client.receive().text)
                client.send_text("before")
                echo = client.receive().text
                # No bytes cross the endpoint now, so the idle policy suspends the VM.
                notice = json.loads(client.receive().text)
                closing = client.receive()
                client.close(closing.close_code or 1000)
            finally:
                client.sock.close()
            return {"session": greeting["session_id"], "echo": echo, "notice": notice, "closing": closing}

        before = await asyncio.to_thread(connect_and_idle)
        suspended = await microvm.wait_for_state((SUSPENDED,), 5.0)

        def reconnect() -> dict[str, Any]:
            client = WebSocketClient(port, headers=headers)
            try:
                greeting = json.loads(client.receive().text)
                client.send_text("after")
                return {"session": greeting["session_id"], "echo": client.receive().text}
            finally:
                client.close()

        after = await asyncio.to_thread(reconnect)
        return {"before": before, "suspended": suspended, "after": after, "state": microvm.state}

    async def main() -> tuple[dict[str, Any], Emulator]:
        emulator = Emulator(settings_with(), Timeline(io.StringIO()), launch, KEY)
        async with asyncio.timeout(SCENARIO_TIMEOUT_SECONDS):
            try:
                [microvm] = await emulator.launch_microvms(1, "payload", [IdlePolicy(1.0, 60.0)])
                return await scenario(emulator, microvm), emulator
            finally:
                await emulator.shutdown("test finished")

    result, emulator = asyncio.run(main())
    before, after = result["before"], result["after"]
    assert before["echo"] == "before"
    assert before["notice"]["event"] == "suspend"
    assert (before["closing"].opcode, before["closing"].close_code) == (OP_CLOSE, 1001)
    assert result["suspended"]
    # The reconnect resumed the same VM: same session id, and the socket works again.
    assert after == {"session": before["session"], "echo": "after"}
    assert result["state"] == RUNNING
    hooks = [(entry.event, entry.status) for entry in emulator.timeline.events if entry.event in ("suspend", "resume")]
    assert hooks[:2] == [("suspend", 200), ("resume", 200)]
{%- endif %}
