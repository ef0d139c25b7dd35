"""Long-lived connections across /suspend, /terminate and /resume: server-sent events{% if cookiecutter.framework not in ["flask", "django"] %} and WebSockets{% endif %}.

The platform keeps no connection open while a VM is suspended, so the app ends
each stream cleanly at /suspend and /terminate, and clients reconnect after /resume.
"""

from __future__ import annotations

import http.client
import json
import time

import pytest
{%- if cookiecutter.framework not in ["flask", "django"] %}

from websocket_client import OP_CLOSE, OP_TEXT, HandshakeRejected, WebSocketClient
{%- endif %}

# The suspend and terminate hooks' timeout in microvm.toml.
DRAIN_TIMEOUT_SECONDS = 5


def open_events(port: int) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/events")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("content-type", "").startswith("text/event-stream")
    return connection, response


def read_event(response: http.client.HTTPResponse) -> dict[str, object]:
    line = response.readline()
    assert line.startswith(b"data: "), line
    assert response.readline() == b"\n"
    return json.loads(line.removeprefix(b"data: "))


@pytest.mark.parametrize("hook", ["suspend", "terminate"])
def test_events_stream_ends_cleanly(app, hook: str) -> None:
    assert app.run().status == 200
    session_id = app.get("/session").json()["session_id"]
    connection, response = open_events(app.app_port)
    first = read_event(response)
    assert first == {"n": 0, "session_id": session_id}
    started = time.monotonic()
    answer = app.hook(hook)
    assert answer.status == 200
    assert answer.json()["unfinishedRequests"] == 0
    # The body ends with its terminator: read() returns instead of raising IncompleteRead.
    rest = response.read()
    connection.close()
    assert time.monotonic() - started < DRAIN_TIMEOUT_SECONDS
    assert rest.count(b"data: ") <= 3


def test_events_gated_until_run_and_reconnect_after_resume(app) -> None:
    assert app.get("/events").status == 503
    assert app.run().status == 200
    connection, response = open_events(app.app_port)
    session_id = read_event(response)["session_id"]
    assert app.hook("suspend").status == 200
    response.read()
    connection.close()
    assert app.hook("resume").status == 200
    connection, response = open_events(app.app_port)
    assert read_event(response) == {"n": 0, "session_id": session_id}
    connection.close()
{%- if cookiecutter.framework in ["flask", "django"] %}


def test_no_websocket_route(app) -> None:
    # waitress serves plain HTTP only, and the README states that this project has no WebSocket route.
    assert app.run().status == 200
    assert app.get("/ws").status == 404
{%- else %}


def connect(port: int) -> tuple[WebSocketClient, str]:
    """Open /ws and return the client and the session id the server greets it with."""
    client = WebSocketClient(port)
    greeting = client.receive()
    assert greeting.opcode == OP_TEXT
    return client, json.loads(greeting.text)["session_id"]


def test_websocket_greets_with_session_and_echoes(app) -> None:
    assert app.run().status == 200
    session_id = app.get("/session").json()["session_id"]
    client, greeted = connect(app.app_port)
    try:
        assert greeted == session_id
        for text in ("hello", "x" * 300, "ünïcode"):
            client.send_text(text)
            echo = client.receive()
            assert (echo.opcode, echo.text) == (OP_TEXT, text)
    finally:
        client.close()


def test_websocket_refused_before_run(app) -> None:
    with pytest.raises(HandshakeRejected) as rejected:
        WebSocketClient(app.app_port)
    assert rejected.value.status in (403, 503)


@pytest.mark.parametrize("hook", ["suspend", "terminate"])
def test_websocket_gets_notice_and_clean_close(app, hook: str) -> None:
    assert app.run().status == 200
    client, _ = connect(app.app_port)
    try:
        started = time.monotonic()
        answer = app.hook(hook)
        assert answer.status == 200
        assert answer.json()["unfinishedRequests"] == 0
        notice = client.receive()
        assert notice.opcode == OP_TEXT
        assert json.loads(notice.text)["event"] == hook
        closing = client.receive()
        assert closing.opcode == OP_CLOSE
        # 1001 is "Going Away": the client should reconnect later.
        assert closing.close_code == 1001
        client.close(1001)
        assert time.monotonic() - started < DRAIN_TIMEOUT_SECONDS
    finally:
        client.sock.close()


def test_websocket_silent_client_does_not_hold_suspend(app) -> None:
    assert app.run().status == 200
    client, _ = connect(app.app_port)
    try:
        started = time.monotonic()
        # The client never reads the notice nor answers the close frame.
        answer = app.hook("suspend")
        elapsed = time.monotonic() - started
        assert answer.status == 200
        assert answer.json()["unfinishedRequests"] == 0
        assert elapsed < 2.5, f"/suspend took {elapsed:.2f} s"
    finally:
        client.sock.close()


def test_websocket_reconnects_after_resume(app) -> None:
    assert app.run().status == 200
    client, before = connect(app.app_port)
    assert app.hook("suspend").status == 200
    assert json.loads(client.receive().text)["event"] == "suspend"
    assert client.receive().close_code == 1001
    client.close(1001)
    with pytest.raises(HandshakeRejected):
        WebSocketClient(app.app_port)
    assert app.hook("resume").status == 200
    client, after = connect(app.app_port)
    try:
        assert after == before
        client.send_text("back")
        assert client.receive().text == "back"
    finally:
        client.close()
{%- endif %}
