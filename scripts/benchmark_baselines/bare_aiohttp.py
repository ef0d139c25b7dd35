"""Baseline: the template's aiohttp routes on the same aiohttp server settings, with no lifecycle layer.

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

from aiohttp import web

session_id = secrets.token_urlsafe(16)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def session(request: web.Request) -> web.Response:
    return web.json_response({"session_id": session_id, "microvm_id": None})


async def token(request: web.Request) -> web.Response:
    return web.json_response({"token": secrets.token_urlsafe(32)})


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(min(float(request.query.get("seconds", "1")), 30.0))
    return web.json_response({"slept": True})


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen as the template's server does: TCP with SO_REUSEADDR and a backlog of 1024."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    return listener


def main() -> int:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/session", session)
    app.router.add_get("/token", token)
    app.router.add_get("/slow", slow)
    listener = bind(os.environ.get("MICROVM_HOST", "127.0.0.1"), int(os.environ.get("APP_PORT", "8080")))
    # The same run_app options as the template's server, so that only the lifecycle layer differs.
    web.run_app(app, sock=listener, print=None, handle_signals=True, access_log=None, shutdown_timeout=5.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
