"""The Flask app, served by waitress behind the MicroVM request gate."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

from flask import Flask, Response

from .microvm import current_vm, draining, per_vm, wsgi

# The server that `python -m` starts for this app: "uvicorn" for ASGI, "waitress" for WSGI.
SERVER = "waitress"

# Computed at /run, once per MicroVM. A value computed at import would be in the
# snapshot and the same in every VM restored from it.
session_id = per_vm(lambda: secrets.token_urlsafe(16), name="session_id")

# /events sends one event every EVENT_INTERVAL_SECONDS, EVENT_COUNT at most.
EVENT_INTERVAL_SECONDS = 0.5
EVENT_COUNT = 120


def event_stream() -> Iterator[str]:
    """Yield server-sent events with this VM's session id until the VM suspends or terminates."""
    for number in range(EVENT_COUNT):
        # The gate also stops a streamed response after its current chunk once the VM drains.
        if draining():
            return
        yield f"data: {json.dumps({'n': number, 'session_id': session_id.get()})}\n\n"
        time.sleep(EVENT_INTERVAL_SECONDS)


def create_app() -> Flask:
    """Build the Flask app. It runs before the snapshot, so it must not make per-VM values."""
    flask_app = Flask(__name__)

    @flask_app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @flask_app.get("/session")
    def session() -> dict[str, str]:
        return {"session_id": session_id.get(), "microvm_id": current_vm().microvm_id}

    @flask_app.get("/token")
    def token() -> dict[str, str]:
        return {"token": secrets.token_urlsafe(32)}

    @flask_app.get("/events")
    def events() -> Response:
        # waitress has no WebSocket support, so this app has no /ws route; server-sent events work.
        return Response(event_stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})

    flask_app.wsgi_app = wsgi(flask_app.wsgi_app)  # type: ignore[method-assign]
    return flask_app


flask_app = create_app()
app = flask_app
