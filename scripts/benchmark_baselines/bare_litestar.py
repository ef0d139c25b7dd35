"""Baseline: the template's Litestar routes on the same uvicorn settings, with no lifecycle layer.

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
from litestar import Litestar, get

session_id = secrets.token_urlsafe(16)


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/session")
async def session() -> dict[str, str | None]:
    return {"session_id": session_id, "microvm_id": None}


@get("/token")
async def token() -> dict[str, str]:
    return {"token": secrets.token_urlsafe(32)}


@get("/slow")
async def slow(seconds: float = 1.0) -> dict[str, bool]:
    await asyncio.sleep(min(seconds, 30.0))
    return {"slept": True}


# The same options as the template's app: Litestar's own logging setup off.
app = Litestar(route_handlers=[healthz, session, token, slow], logging_config=None)


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
