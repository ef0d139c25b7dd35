"""The request gate: app requests wait until /run has finished and stop at /suspend.

The platform's documentation says traffic arrives only after /run returns 200,
but a request has been measured reaching the app before /run. So every app
request passes this gate, which is closed until /run has set the per-VM state,
closes again while the VM suspends or terminates, and counts the requests in
flight so that /suspend can let them finish. Paths listed as ungated (by
default ``/healthz``) always pass.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

# Header that lets the hook server's warm-up requests through before /run. The
# value is a random token made when the server starts and is ignored once /run
# has arrived, so it cannot open the gate in a running VM.
WARMUP_HEADER = "x-microvm-warmup"

logger = logging.getLogger("microvm")

BUILD = "build"
OPEN = "open"
SUSPENDED = "suspended"
TERMINATING = "terminating"


class StreamHandle(Protocol):
    """A connection that can be asked, from any thread, to end cleanly."""

    def stop(self, event: str) -> None: ...


class Gate:
    """Admission control and in-flight counting for one serving process."""

    def __init__(self, timeout_seconds: float = 10.0, ungated_paths: Iterable[str] = ("/healthz",)) -> None:
        self.timeout_seconds = timeout_seconds
        self.ungated_paths = frozenset(ungated_paths)
        self.warmup_token: str | None = None
        self._state = BUILD
        self._in_flight = 0
        self._condition = threading.Condition()
        # Open WebSocket connections and streaming responses, which /suspend and /terminate end.
        self._streams: set[StreamHandle] = set()

    @property
    def state(self) -> str:
        return self._state

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def set_state(self, state: str) -> None:
        with self._condition:
            self._state = state
            self._condition.notify_all()

    def is_ungated(self, path: str) -> bool:
        return path in self.ungated_paths

    def is_warmup(self, header_value: str | None) -> bool:
        token = self.warmup_token
        if self._state != BUILD or token is None or not header_value:
            return False
        return hmac.compare_digest(header_value.encode("latin-1", "replace"), token.encode())

    def admit(self) -> bool:
        """Wait, blocking, until the gate opens; count the request in flight. False on timeout."""
        deadline = time.monotonic() + self.timeout_seconds
        with self._condition:
            while self._state != OPEN:
                remaining = deadline - time.monotonic()
                if self._state == TERMINATING or remaining <= 0:
                    return False
                self._condition.wait(remaining)
            self._in_flight += 1
            return True

    async def admit_async(self) -> bool:
        """Wait for the gate as :meth:`admit` does, without blocking the event loop."""
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            with self._condition:
                if self._state == OPEN:
                    self._in_flight += 1
                    return True
                if self._state == TERMINATING:
                    return False
            if time.monotonic() >= deadline:
                return False
            # Polling keeps this free of any event loop reference; 5 ms adds at most that to a gated request.
            await asyncio.sleep(0.005)

    def enter_unchecked(self) -> None:
        """Count a request in flight without waiting (ungated paths and warm-up requests)."""
        with self._condition:
            self._in_flight += 1

    def leave(self) -> None:
        with self._condition:
            self._in_flight -= 1
            self._condition.notify_all()

    @property
    def draining(self) -> bool:
        """True while the VM suspends or terminates: long-lived streams should end now."""
        return self._state in (SUSPENDED, TERMINATING)

    def add_stream(self, stream: StreamHandle) -> None:
        with self._condition:
            self._streams.add(stream)

    def remove_stream(self, stream: StreamHandle) -> None:
        with self._condition:
            self._streams.discard(stream)

    def stop_streams(self, event: str) -> int:
        """Ask every open stream to end cleanly because of ``event``; return how many were asked."""
        with self._condition:
            streams = list(self._streams)
        for stream in streams:
            stream.stop(event)
        return len(streams)

    def drain(self, deadline: float) -> int:
        """Wait until no request is in flight or ``deadline`` (monotonic) passes; return how many remain."""
        with self._condition:
            while self._in_flight > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return self._in_flight


_gate: Gate | None = None
_gate_lock = threading.Lock()


def get_gate() -> Gate:
    """Return this process's gate, creating it from microvm.toml on first use."""
    global _gate
    with _gate_lock:
        if _gate is None:
            from .config import load_settings

            settings = load_settings()
            _gate = Gate(settings.request_gate_timeout_seconds, settings.ungated_paths)
        return _gate


def draining() -> bool:
    """Return True while this MicroVM suspends or terminates; a streaming handler should end its stream."""
    return get_gate().draining


def set_gate(gate: Gate) -> None:
    """Replace this process's gate (the server and the tests configure it before serving)."""
    global _gate
    with _gate_lock:
        _gate = gate


def rejection_body(gate: Gate) -> bytes:
    if gate.state == TERMINATING:
        reason = "this MicroVM is terminating"
    elif gate.state == SUSPENDED:
        reason = "this MicroVM is suspending"
    else:
        reason = "this MicroVM has not finished its /run hook yet"
    return json.dumps({"error": "service unavailable", "reason": reason}).encode()


RETRY_AFTER_SECONDS = "1"


class GatedWSGI:
    """WSGI middleware that passes every request through the process's gate."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        gate = get_gate()
        path = environ.get("PATH_INFO", "")
        if gate.is_ungated(path) or gate.is_warmup(environ.get("HTTP_X_MICROVM_WARMUP")):
            gate.enter_unchecked()
        elif not gate.admit():
            body = rejection_body(gate)
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", RETRY_AFTER_SECONDS),
                ],
            )
            return [body]
        response_headers: list[tuple[str, str]] = []

        def recording_start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            response_headers[:] = headers
            return start_response(status, headers, *args)

        try:
            result = self.app(environ, recording_start_response)
        except BaseException:
            gate.leave()
            raise
        return _LeaveWhenClosed(result, gate, response_headers)


class _LeaveWhenClosed:
    """Wrap a WSGI response so the request stays in flight until the server closes it.

    A streamed response (one without Content-Length) stops after its current
    chunk once the VM suspends or terminates, which ends the chunked body cleanly.
    """

    def __init__(self, result: Iterable[bytes], gate: Gate, headers: list[tuple[str, str]]) -> None:
        self._result = result
        self._gate = gate
        self._headers = headers
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            yield chunk
            if self._gate.draining and self._is_streamed():
                return

    def _is_streamed(self) -> bool:
        return not any(name.lower() == "content-length" for name, _ in self._headers)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._gate.leave()


class GatedASGI:
    """ASGI middleware that passes every HTTP and WebSocket connection through the gate.

    At /suspend and /terminate it ends long-lived connections cleanly: an open
    WebSocket gets a JSON notice ``{"event": "suspend"}`` and a close frame with
    code 1001 (going away), and the app's next ``receive()`` returns a disconnect; a
    streaming response that has started gets ``http.disconnect`` and, if the app
    stops without finishing the body, the final empty chunk.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        gate = get_gate()
        warmup_value = None
        for name, value in scope.get("headers", ()):
            if name == WARMUP_HEADER.encode():
                warmup_value = value.decode("latin-1")
                break
        if gate.is_ungated(scope.get("path", "")) or gate.is_warmup(warmup_value):
            gate.enter_unchecked()
        elif not await gate.admit_async():
            await _reject_asgi(scope, send, gate)
            return
        connection = _AsgiConnection(scope["type"], receive, send)
        gate.add_stream(connection)
        try:
            await self.app(scope, connection.receive, connection.send)
            await connection.finish()
        finally:
            gate.remove_stream(connection)
            gate.leave()


class _AsgiConnection:
    """One connection through GatedASGI, which another thread can ask to end cleanly."""

    def __init__(self, kind: str, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        self.kind = kind
        self.loop = asyncio.get_running_loop()
        self.stop_requested = asyncio.Event()
        self.event = "suspend"
        self._receive = receive
        self._send = send
        self.accepted = False
        self.closed = False
        self.response_started = False
        self.response_finished = False

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if self.closed and kind.startswith("websocket."):
            # The middleware closed the socket for the app; later sends would fail in the server.
            return
        if kind == "websocket.accept":
            self.accepted = True
        elif kind == "websocket.close":
            self.closed = True
        elif kind == "http.response.start":
            self.response_started = True
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.response_finished = True
        await self._send(message)

    async def receive(self) -> dict[str, Any]:
        if self.stop_requested.is_set():
            return self._disconnect_message()
        receiving = asyncio.ensure_future(self._receive())
        stopping = asyncio.ensure_future(self.stop_requested.wait())
        try:
            done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            receiving.cancel()
            stopping.cancel()
            raise
        if receiving in done:
            stopping.cancel()
            return receiving.result()
        receiving.cancel()
        return self._disconnect_message()

    def _disconnect_message(self) -> dict[str, Any]:
        if self.kind == "websocket":
            return {"type": "websocket.disconnect", "code": 1001}
        return {"type": "http.disconnect"}

    def stop(self, event: str) -> None:
        self.loop.call_soon_threadsafe(self._begin_stop, event)

    def _begin_stop(self, event: str) -> None:
        # A plain request that has not started its response is left to finish; only streams end early.
        if self.kind == "http" and not self.response_started:
            return
        self.event = event
        self.stop_requested.set()
        if self.kind == "websocket" and self.accepted and not self.closed:
            self.loop.create_task(self._close_websocket(event))

    async def _close_websocket(self, event: str) -> None:
        self.closed = True
        notice = json.dumps({"event": event, "reason": f"the MicroVM is handling /{event}; reconnect later"})
        try:
            await self._send({"type": "websocket.send", "text": notice})
            # 1001 is "Going Away" in the WebSocket close code registry.
            await self._send({"type": "websocket.close", "code": 1001, "reason": f"MicroVM {event}"})
        except Exception as error:  # the client may already be gone
            logger.info("closing a WebSocket for /%s failed: %s", event, error)

    async def finish(self) -> None:
        """End a streaming response that the app left open after a stop request."""
        if self.kind == "http" and self.stop_requested.is_set() and self.response_started:
            if not self.response_finished:
                self.response_finished = True
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})


async def _reject_asgi(scope: dict[str, Any], send: Callable[..., Any], gate: Gate) -> None:
    if scope["type"] == "websocket":
        # 1013 is "Try Again Later" in the WebSocket close code registry.
        await send({"type": "websocket.close", "code": 1013})
        return
    body = rejection_body(gate)
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", RETRY_AFTER_SECONDS.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
