"""Example views: health check, per-VM session id, per-request token."""

from __future__ import annotations

import secrets

from django.http import HttpRequest, JsonResponse

from .microvm import current_vm, per_vm

# Computed at /run, once per MicroVM. A value computed at import would be in the
# snapshot and the same in every VM restored from it.
session_id = per_vm(lambda: secrets.token_urlsafe(16), name="session_id")


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer health checks; served before /run too."""
    return JsonResponse({"status": "ok"})


def session(request: HttpRequest) -> JsonResponse:
    """Return this MicroVM's session id, which differs in every VM."""
    return JsonResponse({"session_id": session_id.get(), "microvm_id": current_vm().microvm_id})


def token(request: HttpRequest) -> JsonResponse:
    """Return a fresh token from the OS CSPRNG, different in every request."""
    return JsonResponse({"token": secrets.token_urlsafe(32)})
