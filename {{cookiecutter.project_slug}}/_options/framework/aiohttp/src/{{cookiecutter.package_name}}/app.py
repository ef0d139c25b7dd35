"""The aiohttp app, served by aiohttp's own server behind the MicroVM request gate.

aiohttp is neither WSGI nor ASGI, so the gate that the other frameworks get from
``microvm.wsgi`` or ``microvm.asgi`` is the middleware below: it admits each
request through the process's gate, returns 503 with Retry-After while the VM
has not run or is suspending, and ends open WebSockets at /suspend and /terminate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import WSMsgType, web

from .microvm import current_vm, draining, per_vm
from .microvm.gate import RETRY_AFTER_SECONDS, WARMUP_HEADER, get_gate, rejection_body

logger = logging.getLogger("microvm")

# The server that `python -m` starts for this app: aiohttp's own.
SERVER = "aiohttp"

# Computed at /run, once per MicroVM. A value computed at import would be in the
# snapshot and the same in every VM restored from it.
session_id = per_vm(lambda: secrets.token_urlsafe(16), name="session_id")

# /events sends one event every EVENT_INTERVAL_SECONDS, EVENT_COUNT at most.
EVENT_INTERVAL_SECONDS = 0.5
EVENT_COUNT = 120
# 1001 is "Going Away" in the WebSocket close code registry.
GOING_AWAY = 1001
# Seconds that closing a WebSocket waits for the client's close frame (aiohttp's default is 10 s).
# A silent client then holds /suspend, whose timeout is 5 s by default, for at most this long.
WEBSOCKET_CLOSE_TIMEOUT_SECONDS = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def microvm_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pass every request through the gate and keep it counted in flight until its handler returns."""
    gate = get_gate()
    if gate.is_ungated(request.path) or gate.is_warmup(request.headers.get(WARMUP_HEADER)):
        gate.enter_unchecked()
    elif not await gate.admit_async():
        return web.Response(
            status=503,
            body=rejection_body(gate),
            content_type="application/json",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    try:
        return await handler(request)
    finally:
        gate.leave()


class _WebSocketStop:
    """A handle through which the hook server's thread ends one open WebSocket with a notice and a clean close."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket = socket
        self.loop = asyncio.get_running_loop()

    def stop(self, event: str) -> None:
        asyncio.run_coroutine_threadsafe(self._close(event), self.loop)

    async def _close(self, event: str) -> None:
        if self.socket.closed:
            return
        notice = {"event": event, "reason": f"the MicroVM is handling /{event}; reconnect later"}
        try:
            await self.socket.send_str(json.dumps(notice))
            await self.socket.close(code=GOING_AWAY, message=f"MicroVM {event}".encode())
        except Exception as error:  # the client may have disconnected already
            logger.info("closing a WebSocket for /%s failed: %s", event, error)


@asynccontextmanager
async def gated_websocket(request: web.Request) -> AsyncIterator[web.WebSocketResponse]:
    """Open a WebSocket that /suspend and /terminate close cleanly; use it as ``async with``."""
    socket = web.WebSocketResponse(timeout=WEBSOCKET_CLOSE_TIMEOUT_SECONDS)
    await socket.prepare(request)
    stopper = _WebSocketStop(socket)
    gate = get_gate()
    gate.add_stream(stopper)
    try:
        yield socket
    finally:
        gate.remove_stream(stopper)
        await socket.close()


async def healthz(request: web.Request) -> web.Response:
    """Report that the app is up; served before /run too."""
    return web.json_response({"status": "ok"})


async def session(request: web.Request) -> web.Response:
    """Return this MicroVM's session id, which differs in every VM."""
    return web.json_response({"session_id": session_id.get(), "microvm_id": current_vm().microvm_id})


async def token(request: web.Request) -> web.Response:
    """Return a fresh token from the OS CSPRNG, different in every request."""
    return web.json_response({"token": secrets.token_urlsafe(32)})


async def events(request: web.Request) -> web.StreamResponse:
    """Stream server-sent events with this VM's session id; end the stream when the VM suspends."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for number in range(EVENT_COUNT):
        if draining():
            break
        event = json.dumps({"n": number, "session_id": session_id.get()})
        await response.write(f"data: {event}\n\n".encode())
        await asyncio.sleep(EVENT_INTERVAL_SECONDS)
    await response.write_eof()
    return response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Send this VM's session id, then echo each text message until the client or the VM ends the socket."""
    async with gated_websocket(request) as socket:
        await socket.send_json({"session_id": session_id.get()})
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                await socket.send_str(message.data)
        return socket


def create_app() -> web.Application:
    """Build the aiohttp app. It runs before the snapshot, so it must not make per-VM values."""
    application = web.Application(middlewares=[microvm_gate])
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/session", session)
    application.router.add_get("/token", token)
    application.router.add_get("/events", events)
    application.router.add_get("/ws", websocket)
    return application


app = create_app()
