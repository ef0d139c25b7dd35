"""The Litestar app, served by uvicorn behind the MicroVM request gate."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

from litestar import Litestar, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.response import Stream

from .microvm import asgi, current_vm, draining, per_vm

# The server that `python -m` starts for this app: "uvicorn" for ASGI, "waitress" for WSGI.
SERVER = "uvicorn"

# Computed at /run, once per MicroVM. A value computed at import would be in the
# snapshot and the same in every VM restored from it.
session_id = per_vm(lambda: secrets.token_urlsafe(16), name="session_id")

# /events sends one event every EVENT_INTERVAL_SECONDS, EVENT_COUNT at most.
EVENT_INTERVAL_SECONDS = 0.5
EVENT_COUNT = 120


@get("/healthz")
async def healthz() -> dict[str, str]:
    """Report that the app is up; served before /run too."""
    return {"status": "ok"}


@get("/session")
async def session() -> dict[str, str]:
    """Return this MicroVM's session id, which differs in every VM."""
    return {"session_id": session_id.get(), "microvm_id": current_vm().microvm_id}


@get("/token")
async def token() -> dict[str, str]:
    """Return a fresh token from the OS CSPRNG, different in every request."""
    return {"token": secrets.token_urlsafe(32)}


async def _event_stream() -> AsyncIterator[str]:
    for number in range(EVENT_COUNT):
        # At /suspend the gate also ends the response; stopping here ends it at an event boundary.
        if draining():
            return
        yield f"data: {json.dumps({'n': number, 'session_id': session_id.get()})}\n\n"
        await asyncio.sleep(EVENT_INTERVAL_SECONDS)


@get("/events")
async def events() -> Stream:
    """Stream server-sent events with this VM's session id; the stream ends when the VM suspends."""
    return Stream(_event_stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@websocket("/ws")
async def echo(socket: WebSocket) -> None:
    """Send this VM's session id, then echo each text message.

    At /suspend and /terminate the gate sends the client a JSON notice, closes the
    socket with code 1001, and the next receive raises WebSocketDisconnect.
    """
    await socket.accept()
    await socket.send_json({"session_id": session_id.get()})
    try:
        while True:
            await socket.send_text(await socket.receive_text())
    except WebSocketDisconnect:
        return


# logging_config=None: Litestar would otherwise install its own handlers over the JSON log.
litestar_app = Litestar(route_handlers=[healthz, session, token, events, echo], logging_config=None)

app = asgi(litestar_app)
