"""Example views: health check, per-VM session id, per-request token."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse

from .microvm import current_vm, draining, per_vm

# Computed at /run, once per MicroVM. A value computed at import would be in the
# snapshot and the same in every VM restored from it.
session_id = per_vm(lambda: secrets.token_urlsafe(16), name="session_id")

# /events sends one event every EVENT_INTERVAL_SECONDS, EVENT_COUNT at most.
EVENT_INTERVAL_SECONDS = 0.5
EVENT_COUNT = 120


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer health checks; served before /run too."""
    return JsonResponse({"status": "ok"})


def session(request: HttpRequest) -> JsonResponse:
    """Return this MicroVM's session id, which differs in every VM."""
    return JsonResponse({"session_id": session_id.get(), "microvm_id": current_vm().microvm_id})


def token(request: HttpRequest) -> JsonResponse:
    """Return a fresh token from the OS CSPRNG, different in every request."""
    return JsonResponse({"token": secrets.token_urlsafe(32)})


def _event_stream() -> Iterator[str]:
    for number in range(EVENT_COUNT):
        # The gate also stops a streamed response after its current chunk once the VM drains.
        if draining():
            return
        yield f"data: {json.dumps({'n': number, 'session_id': session_id.get()})}\n\n"
        time.sleep(EVENT_INTERVAL_SECONDS)


def events(request: HttpRequest) -> StreamingHttpResponse:
    """Stream server-sent events with this VM's session id; the stream ends when the VM suspends.

    waitress has no WebSocket support, so this project has no /ws route.
    """
    response = StreamingHttpResponse(_event_stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response
