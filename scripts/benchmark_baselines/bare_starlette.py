"""Baseline: the template's Starlette routes on the same uvicorn settings, with no lifecycle layer.

No request gate, no hook server, no per-VM state: the session id is made at
import, as an app unaware of snapshots would make it. The benchmark
compares this app with the generated one to see what the lifecycle layer costs.

Environment: APP_PORT (default 8080) and MICROVM_HOST (default 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

session_id = secrets.token_urlsafe(16)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def session(request: Request) -> JSONResponse:
    return JSONResponse({"session_id": session_id, "microvm_id": None})


async def token(request: Request) -> JSONResponse:
    return JSONResponse({"token": secrets.token_urlsafe(32)})


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(min(float(request.query_params.get("seconds", "1")), 30.0))
    return JSONResponse({"slept": True})


app = Starlette(
    routes=[Route("/healthz", healthz), Route("/session", session), Route("/token", token), Route("/slow", slow)]
)


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen as the template's server does: TCP with SO_REUSEADDR and a backlog of 1024."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    return listener


def main() -> int:
    listener = bind(os.environ.get("MICROVM_HOST", "127.0.0.1"), int(os.environ.get("APP_PORT", "8080")))
    # The same uvicorn options as the template's server, so that only the lifecycle layer differs.
    config = uvicorn.Config(
        app, lifespan="auto", log_config=None, access_log=False, server_header=False, proxy_headers=False
    )
    uvicorn.Server(config).run(sockets=[listener])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
