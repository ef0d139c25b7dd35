"""Start the app as `python -m <package>` does, with test-only additions.

Usage: lifecycle_server.py PACKAGE [--raise-on EVENT] [--sleep-in EVENT:SECONDS]

The additions live here, not in the app: a `/slow?seconds=S` route and a
`/pid` route, served inside the request gate, and lifecycle callbacks that
raise or sleep, so that the contract tests can drive the real servers through
the cases the platform can cause.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import json
import os
import sys
import time
from typing import Any
from urllib.parse import parse_qs


def slow_seconds(query: str) -> float:
    values = parse_qs(query).get("seconds", ["1"])
    return min(float(values[0]), 30.0)


class TestRoutesWSGI:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO")
        if path == "/slow":
            time.sleep(slow_seconds(environ.get("QUERY_STRING", "")))
            return self._json(start_response, {"slept": True, "pid": os.getpid()})
        if path == "/pid":
            return self._json(start_response, _pid_document())
        if path == "/stream":
            start_response("200 OK", [("Content-Type", "text/event-stream")])
            return self._ticks()
        return self.app(environ, start_response)

    @staticmethod
    def _ticks() -> Any:
        for index in range(STREAM_TICKS):
            yield f"data: {index}\n\n".encode()
            time.sleep(0.1)

    @staticmethod
    def _json(start_response: Any, document: dict[str, Any]) -> list[bytes]:
        body = json.dumps(document).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


# A /stream response sends one event every 0.1 s, this many at most (30 s).
STREAM_TICKS = 300


class TestRoutesASGI:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and path == "/stream":
            await self._stream(receive, send)
            return
        if scope["type"] == "http" and path in ("/slow", "/pid"):
            if path == "/slow":
                await asyncio.sleep(slow_seconds(scope.get("query_string", b"").decode()))
                document: dict[str, Any] = {"slept": True, "pid": os.getpid()}
            else:
                document = _pid_document()
            body = json.dumps(document).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


    @staticmethod
    async def _stream(receive: Any, send: Any) -> None:
        """Send events until the client (or the gate, at /suspend) disconnects."""
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for index in range(STREAM_TICKS):
            await send({"type": "http.response.body", "body": f"data: {index}\n\n".encode(), "more_body": True})
            try:
                message = await asyncio.wait_for(receive(), 0.1)
            except TimeoutError:
                continue
            if message["type"] == "http.disconnect":
                return
        await send({"type": "http.response.body", "body": b""})


def add_aiohttp_routes(application: Any, draining: Any) -> None:
    """Add the test routes to an aiohttp app, where its gate middleware covers them like app routes."""
    # Imported by name: aiohttp is installed only in projects that use it.
    web: Any = importlib.import_module("aiohttp.web")

    async def slow(request: Any) -> Any:
        await asyncio.sleep(slow_seconds(request.query_string))
        return web.json_response({"slept": True, "pid": os.getpid()})

    async def pid(request: Any) -> Any:
        return web.json_response(_pid_document())

    async def stream(request: Any) -> Any:
        # aiohttp's gate ends no HTTP stream itself: the handler stops once the VM drains.
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index in range(STREAM_TICKS):
            if draining():
                break
            await response.write(f"data: {index}\n\n".encode())
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response

    application.router.add_get("/slow", slow)
    application.router.add_get("/pid", pid)
    application.router.add_get("/stream", stream)


_PACKAGE = ""


def _session_or_none() -> str | None:
    state = importlib.import_module(f"{_PACKAGE}.microvm.state")
    try:
        return state.current_vm().microvm_id
    except state.VmNotStartedError:
        return None


def _pid_document() -> dict[str, Any]:
    """Describe the worker process that serves /pid: its pid, MicroVM id and SECRET_KEY digest."""
    return {"pid": os.getpid(), "session": _session_or_none(), "secret": _secret_digest()}


def _secret_digest() -> str | None:
    """Return a digest of Django's SECRET_KEY in this process, or None outside Django."""
    if "django.conf" not in sys.modules:
        return None
    from django.conf import settings

    return hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest()[:16]


def main() -> None:
    global _PACKAGE
    parser = argparse.ArgumentParser()
    parser.add_argument("package")
    parser.add_argument("--raise-on", action="append", default=[], metavar="EVENT")
    parser.add_argument("--sleep-in", action="append", default=[], metavar="EVENT:SECONDS")
    options = parser.parse_args()
    _PACKAGE = options.package

    microvm = importlib.import_module(f"{options.package}.microvm")
    gate = importlib.import_module(f"{options.package}.microvm.gate")
    serve = importlib.import_module(f"{options.package}.microvm.serve")
    app_module = importlib.import_module(f"{options.package}.app")

    for event in options.raise_on:

        def fail(event: str = event) -> None:
            raise RuntimeError(f"planted failure in on_{event}")

        getattr(microvm, f"on_{event}")(fail)
    for item in options.sleep_in:
        event, seconds = item.split(":")

        def sleep(seconds: float = float(seconds)) -> None:
            time.sleep(seconds)

        getattr(microvm, f"on_{event}")(sleep)

    # Put the test routes inside the gate, so they are gated and counted like app routes.
    if getattr(app_module, "SERVER", None) == "aiohttp":
        add_aiohttp_routes(app_module.app, microvm.draining)
        raise SystemExit(serve.serve(f"{options.package}.app"))
    gated = app_module.app if isinstance(app_module.app, (gate.GatedWSGI, gate.GatedASGI)) else app_module.app.wsgi_app
    gated.app = TestRoutesASGI(gated.app) if isinstance(gated, gate.GatedASGI) else TestRoutesWSGI(gated.app)

    # serve() imports the app module again by name and finds it in sys.modules with the routes added.
    raise SystemExit(serve.serve(f"{options.package}.app"))


if __name__ == "__main__":
    main()
