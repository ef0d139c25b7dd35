"""Contract tests of the lifecycle hooks against the real app server on loopback ports.

Rules under test: build hooks answer 503 (not yet) or 200; runtime hooks answer
200, because any other status makes the platform terminate the VM, except /run
when per-VM state cannot be set up; app requests wait for /run.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from conftest import HOOK_PREFIX, request

RUNTIME_HOOKS = ["run", "resume", "suspend", "terminate"]


def test_ready_then_validate_answer_200(app) -> None:
    assert app.hook("ready").status == 200
    statuses = []
    for _ in range(200):
        status = app.hook("validate").status
        statuses.append(status)
        if status != 503:
            break
        time.sleep(0.02)
    assert statuses[-1] == 200, statuses
    assert set(statuses[:-1]) <= {503}


def test_healthz_served_before_run(app) -> None:
    response = app.get("/healthz")
    assert response.status == 200


def test_app_request_before_run_gets_503(app) -> None:
    started = time.monotonic()
    response = app.get("/session")
    waited = time.monotonic() - started
    assert response.status == 503
    assert response.headers.get("retry-after") == "1"
    # The gate timeout is 1 s in these tests: the request waited for /run, then gave up.
    assert waited >= 0.9


def test_request_waiting_at_gate_served_after_run(app) -> None:
    results = []
    waiter = threading.Thread(target=lambda: results.append(app.get("/session")))
    waiter.start()
    time.sleep(0.2)
    assert app.run("microvm-gate").status == 200
    waiter.join(5)
    assert results[0].status == 200
    assert results[0].json()["microvm_id"] == "microvm-gate"


def test_run_sets_identity(app) -> None:
    assert app.run("microvm-abc", payload='{"tenant": "t1"}').status == 200
    body = app.get("/session").json()
    assert body["microvm_id"] == "microvm-abc"
    assert len(body["session_id"]) >= 16


def test_run_repeated_same_id_is_idempotent(app) -> None:
    assert app.run("microvm-same").status == 200
    first = app.get("/session").json()["session_id"]
    repeat = app.run("microvm-same")
    assert repeat.status == 200
    assert app.get("/session").json()["session_id"] == first


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b"[1, 2, 3]", id="json-array"),
        pytest.param(b'{"microVmId": "microvm-camel"}', id="microVmId-spelling"),
        pytest.param(b'{"microvmId": "microvm-x", "runHookPayload": "plain text", "extra": 1}', id="unknown-field"),
        pytest.param(b'{"microvmId": "microvm-x", "runHookPayload": {"nested": true}}', id="payload-object"),
        pytest.param(b"\xff\xfe\x00garbage", id="binary"),
    ],
)
def test_run_accepts_malformed_bodies(app, body: bytes) -> None:
    response = app.hook("run", body)
    assert response.status == 200
    session = app.get("/session")
    assert session.status == 200
    microvm_id = session.json()["microvm_id"]
    assert microvm_id.startswith("microvm-")


def test_run_without_id_gets_csprng_id(app) -> None:
    assert app.hook("run", b"{}").status == 200
    microvm_id = app.get("/session").json()["microvm_id"]
    assert microvm_id.startswith("microvm-local-")
    assert len(microvm_id) > len("microvm-local-") + 16


def test_run_payload_at_16_kib_accepted(app) -> None:
    assert app.run("microvm-big", payload="x" * 16384).status == 200


def test_run_payload_over_16_kib_gets_413(app) -> None:
    response = app.run("microvm-too-big", payload="x" * 16385)
    assert response.status == 413
    assert "16384" in response.json()["reason"]


def test_run_body_over_limit_gets_413(app) -> None:
    response = app.hook("run", b"{" + b" " * 200_000 + b"}")
    assert response.status == 413


def send_raw(port: int, data: bytes) -> bytes:
    """Send raw bytes to 127.0.0.1:port and return the start of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(data)
        return connection.recv(4096)


@pytest.mark.parametrize("hook", ["run", "suspend"])
@pytest.mark.parametrize(
    "framing",
    [
        pytest.param(b"Content-Length: ten\r\n\r\n", id="length-not-number"),
        pytest.param(b"Content-Length: -1\r\n\r\n", id="length-negative"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc", id="chunk-size-negative"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\n0x10\r\n", id="chunk-size-prefixed"),
    ],
)
def test_unreadable_body_still_answers_200(app, hook: str, framing: bytes) -> None:
    # A runtime hook that answers anything but 200 gets the VM terminated, so a body whose framing is
    # broken is handled as an empty one.
    reply = send_raw(app.hooks_port, f"POST {HOOK_PREFIX}{hook} HTTP/1.1\r\nHost: localhost\r\n".encode() + framing)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert app.hook("ready").status == 200


def test_run_chunked_body_accepted(app) -> None:
    body = json.dumps({"microvmId": "microvm-chunked"}).encode()
    with socket.create_connection(("127.0.0.1", app.hooks_port), timeout=5) as connection:
        connection.sendall(
            f"POST {HOOK_PREFIX}run HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
        reply = connection.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200")
    assert app.get("/session").json()["microvm_id"] == "microvm-chunked"


def test_run_repeated_without_id_keeps_identity(app) -> None:
    assert app.hook("run", b'{"runHookPayload": "same"}').status == 200
    first = app.get("/session").json()
    for body in (b'{"runHookPayload": "same"}', b"not json"):
        assert app.hook("run", body).status == 200
        assert app.get("/session").json() == first


def test_terminate_is_final(app) -> None:
    assert app.run("microvm-final").status == 200
    assert app.hook("terminate").status == 200
    for hook in ("suspend", "resume", "run"):
        assert app.hook(hook).status == 200, hook
    assert app.get("/session").status == 503


def test_unknown_hook_path_answers_200(app) -> None:
    response = app.hook("hibernate")
    assert response.status == 200
    assert response.json()["status"] == "ignored"


def test_path_outside_prefix_is_404(app) -> None:
    assert request(app.hooks_port, "POST", "/other").status == 404


def test_get_on_hook_path_is_405(app) -> None:
    assert request(app.hooks_port, "GET", HOOK_PREFIX + "run").status == 405


def test_resume_before_run_keeps_gate_closed(app) -> None:
    assert app.hook("resume").status == 200
    assert app.get("/session").status == 503


def test_suspend_then_resume_keeps_identity(app) -> None:
    assert app.run("microvm-keep").status == 200
    session = app.get("/session").json()["session_id"]
    assert app.hook("suspend").status == 200
    assert app.get("/session").status == 503
    assert app.hook("resume").status == 200
    assert app.get("/session").json()["session_id"] == session


def test_suspend_repeated_is_idempotent(app) -> None:
    assert app.run().status == 200
    assert app.hook("suspend").status == 200
    second = app.hook("suspend")
    assert second.status == 200
    assert second.json().get("repeated") is True


def test_concurrent_suspend_calls_all_answer_200(app) -> None:
    assert app.run().status == 200
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(app.hook("suspend").status)) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert statuses == [200] * 5


def test_terminate_repeated_answers_200(app) -> None:
    assert app.run().status == 200
    assert app.hook("terminate").status == 200
    assert app.hook("terminate").status == 200
    assert app.get("/session").status == 503


def test_suspend_waits_for_in_flight_requests(app) -> None:
    assert app.run().status == 200
    results = []
    slow = threading.Thread(target=lambda: results.append(app.get("/slow?seconds=1")))
    slow.start()
    time.sleep(0.2)
    started = time.monotonic()
    response = app.hook("suspend")
    elapsed = time.monotonic() - started
    slow.join(5)
    assert response.status == 200
    assert response.json()["unfinishedRequests"] == 0
    assert results[0].status == 200
    # /suspend waited for the slow request (about 0.8 s left) and stayed inside its 5 s timeout.
    assert 0.5 <= elapsed < 5


def test_suspend_answers_in_time_with_every_worker_busy(app) -> None:
    assert app.run().status == 200
    results: list[int] = []
    # More slow requests than the server has threads: every worker is busy and some wait in the queue.
    slow_requests = [
        threading.Thread(target=lambda: results.append(app.get("/slow?seconds=8", timeout=30).status))
        for _ in range(12)
    ]
    for thread in slow_requests:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    response = app.hook("suspend", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert response.json()["unfinishedRequests"] > 0
    assert elapsed < 5, f"/suspend took {elapsed:.2f} s, its timeout is 5 s"
    assert app.hook("resume").status == 200
    for thread in slow_requests:
        thread.join(40)
    # None was dropped: every slow request finished once the VM resumed.
    assert results == [200] * 12


def test_raising_callbacks_keep_runtime_hooks_200(start_app) -> None:
    app = start_app("--raise-on", "resume", "--raise-on", "suspend", "--raise-on", "terminate")
    app.wait_ready()
    assert app.run().status == 200
    for hook in ("suspend", "resume", "terminate"):
        assert app.hook(hook).status == 200, hook
    log = app.log()
    assert "on_suspend callback" in log
    assert "planted failure in on_resume" in log


def test_raising_run_callback_fails_closed(start_app) -> None:
    app = start_app("--raise-on", "run")
    app.wait_ready()
    response = app.run()
    assert response.status == 500
    assert "planted failure in on_run" in response.json()["reason"]
    assert app.get("/session").status == 503


def test_slow_suspend_callback_answers_within_timeout(start_app) -> None:
    app = start_app("--sleep-in", "suspend:30")
    app.wait_ready()
    assert app.run().status == 200
    started = time.monotonic()
    response = app.hook("suspend", timeout=10)
    assert response.status == 200
    assert time.monotonic() - started < 5


def test_hook_log_lines_name_vm_and_skip_payload(app) -> None:
    assert app.run("microvm-logged", payload="secret-payload-value").status == 200
    time.sleep(0.1)
    lines = [json.loads(line) for line in app.log().splitlines() if line.startswith("{")]
    run_lines = [line for line in lines if line.get("hook") == "run" and line.get("event") == "hook"]
    assert run_lines, app.log()
    assert run_lines[-1]["microvm_id"] == "microvm-logged"
    assert run_lines[-1]["status"] == 200
    assert "duration_ms" in run_lines[-1]
    assert "secret-payload-value" not in app.log()


def test_two_workers_share_identity_and_suspend(start_app) -> None:
    app = start_app(MICROVM_WORKERS="2")
    app.wait_ready()
    assert app.run("microvm-two-workers").status == 200
    seen: dict[int, dict[str, str]] = {}
    for _ in range(200):
        body = app.get("/pid").json()
        seen[body["pid"]] = body
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"only worker processes {sorted(seen)} answered"
    assert {body["session"] for body in seen.values()} == {"microvm-two-workers"}
    # Django signs with SECRET_KEY: every worker of one VM must hold the same key (None elsewhere).
    assert len({body["secret"] for body in seen.values()}) == 1
    assert app.hook("suspend").status == 200
    statuses = {app.get("/pid").status for _ in range(6)}
    assert statuses == {503}


def test_suspend_ends_stream_cleanly(app) -> None:
    assert app.run().status == 200
    connection = http.client.HTTPConnection("127.0.0.1", app.app_port, timeout=10)
    connection.request("GET", "/stream")
    response = connection.getresponse()
    assert response.status == 200
    first = response.read1(64)
    assert first.startswith(b"data: 0")
    started = time.monotonic()
    suspend = app.hook("suspend")
    assert suspend.status == 200
    assert suspend.json()["unfinishedRequests"] == 0
    # The stream ends with the chunked terminator: read() returns instead of raising IncompleteRead.
    rest = response.read()
    connection.close()
    assert time.monotonic() - started < 5
    assert rest.count(b"data: ") < 100
