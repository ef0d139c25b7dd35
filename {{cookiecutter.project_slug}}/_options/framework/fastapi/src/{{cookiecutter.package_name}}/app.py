"""The FastAPI app, served by uvicorn behind the MicroVM request gate."""

from __future__ import annotations

import secrets

from fastapi import FastAPI

from .microvm import asgi, current_vm, per_vm

# The server that `python -m` starts for this app: "uvicorn" for ASGI, "waitress" for WSGI.
SERVER = "uvicorn"

# Computed at /run, once per MicroVM. A value computed at import would be in the
# snapshot and the same in every VM restored from it.
session_id = per_vm(lambda: secrets.token_urlsafe(16), name="session_id")

api = FastAPI(title="{{ cookiecutter.project_slug }}")


@api.get("/healthz")
async def healthz() -> dict[str, str]:
    """Answer health checks; served before /run too."""
    return {"status": "ok"}


@api.get("/session")
async def session() -> dict[str, str]:
    """Return this MicroVM's session id, which differs in every VM."""
    return {"session_id": session_id.get(), "microvm_id": current_vm().microvm_id}


@api.get("/token")
async def token() -> dict[str, str]:
    """Return a fresh token from the OS CSPRNG, different in every request."""
    return {"token": secrets.token_urlsafe(32)}


app = asgi(api)
