"""In-process HTTP callers: each request goes through the real app object, with no server except for aiohttp apps."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from .errors import HarnessError

# Host header of the in-process requests; Django's default ALLOWED_HOSTS accepts it.
REQUEST_HOST = "localhost"
# The "asgi" key of the scopes, as uvicorn 0.54 sets it for lifespan and HTTP scopes.
LIFESPAN_ASGI_VERSION = {"version": "3.0", "spec_version": "2.0"}
HTTP_ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


@dataclass(frozen=True)
class Response:
    """The status and the whole body of one response."""

    status: int
    body: bytes


def _split_target(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path, query


class WsgiCaller:
    """Call a WSGI app the way a WSGI server does, one request at a time."""

    def __init__(self, app: Callable[..., Iterable[bytes]], port: int) -> None:
        self.app = app
        self.port = port

    def request(self, method: str, target: str, headers: dict[str, str]) -> Response:
        path, query = _split_target(target)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            # PEP 3333: PATH_INFO contains the percent-decoded bytes as a latin-1 string.
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "CONTENT_LENGTH": "0",
            "SERVER_NAME": REQUEST_HOST,
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": REQUEST_HOST,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            # The production server, waitress, serves each process's requests from several threads.
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value

        status: list[int] = []
        chunks: list[bytes] = []

        def start_response(status_line: str, _headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # PEP 3333: an error response may replace the status until the body has started.
            if exc_info is not None and chunks:
                raise exc_info[1].with_traceback(exc_info[2])
            status[:] = [int(status_line.split(" ", 1)[0])]
            return chunks.append

        result = self.app(environ, start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not status:
            raise HarnessError(f"the WSGI app returned from {method} {target} without calling start_response")
        return Response(status[0], b"".join(chunks))

    def enter_clone(self) -> None:
        """Nothing to do: a WSGI app keeps no event loop."""

    def shutdown(self) -> None:
        """Nothing to do: WSGI has no shutdown event."""


class AsgiCaller:
    """Call an ASGI app the way an ASGI server does: lifespan events, then HTTP requests."""

    def __init__(self, app: Callable[..., Any], port: int, timeout_seconds: float) -> None:
        self.app = app
        self.port = port
        self.timeout_seconds = timeout_seconds
        self.loop = asyncio.new_event_loop()
        # The lifespan "state" extension: each request scope gets a copy of what the app stored here at startup.
        self.lifespan_state: dict[str, Any] = {}
        self.lifespan_supported = False
        self._lifespan_task: asyncio.Task[Any] | None = None
        self._lifespan_inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan_outbox: asyncio.Queue[dict[str, Any]] | None = None

    def _run(self, awaitable: Any, operation: str) -> Any:
        try:
            return self.loop.run_until_complete(asyncio.wait_for(awaitable, self.timeout_seconds))
        except TimeoutError:
            raise HarnessError(f"{operation} timed out after {self.timeout_seconds:g} s") from None

    def start_lifespan(self) -> None:
        """Send lifespan.startup and wait for the app's reply, as uvicorn does with lifespan="auto"."""
        self._run(self._start_lifespan(), "the ASGI lifespan startup")

    async def _start_lifespan(self) -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan_inbox, self._lifespan_outbox = inbox, outbox
        scope = {"type": "lifespan", "asgi": LIFESPAN_ASGI_VERSION, "state": self.lifespan_state}
        self._lifespan_task = asyncio.ensure_future(self.app(scope, inbox.get, outbox.put))
        await inbox.put({"type": "lifespan.startup"})
        message = await self._lifespan_reply()
        if message is None:
            # The app returned or raised without a reply: it does not support lifespan events.
            # uvicorn's lifespan="auto" then serves without them, and so does this harness.
            if not self._lifespan_task.cancelled():
                self._lifespan_task.exception()  # retrieved, so asyncio does not log it as never retrieved
            return
        if message["type"] == "lifespan.startup.failed":
            raise HarnessError(f"the app's lifespan startup failed: {message.get('message', '')}")
        if message["type"] != "lifespan.startup.complete":
            raise HarnessError(
                f"the app replied to lifespan.startup with {message['type']!r}; expected lifespan.startup.complete"
            )
        self.lifespan_supported = True

    async def _lifespan_reply(self) -> dict[str, Any] | None:
        """Return the app's next lifespan message, or None when its lifespan call returned first."""
        assert self._lifespan_task is not None and self._lifespan_outbox is not None
        reply = asyncio.ensure_future(self._lifespan_outbox.get())
        await asyncio.wait({reply, self._lifespan_task}, return_when=asyncio.FIRST_COMPLETED)
        if reply.done():
            return reply.result()
        reply.cancel()
        return None

    def request(self, method: str, target: str, headers: dict[str, str]) -> Response:
        return self._run(self._request(method, target, headers), f"{method} {target}")

    async def _request(self, method: str, target: str, headers: dict[str, str]) -> Response:
        path, query = _split_target(target)
        scope = {
            "type": "http",
            "asgi": HTTP_ASGI_VERSION,
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": [(b"host", REQUEST_HOST.encode())]
            + [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", self.port),
            "state": dict(self.lifespan_state),
        }
        status: list[int] = []
        chunks: list[bytes] = []
        finished = asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            # Like a server, report the disconnect only once the response is complete.
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    finished.set()

        try:
            await self.app(scope, receive, send)
        finally:
            finished.set()
        if not status:
            raise HarnessError(f"the ASGI app returned from {method} {target} without sending a response")
        return Response(status[0], b"".join(chunks))

    def enter_clone(self) -> None:
        """Serve the clone's requests on a new event loop.

        The parent's loop shares its epoll descriptor and wake-up socket with
        every clone, and the worker threads that ran its synchronous handlers
        (anyio's thread pool) do not exist in a forked child. So the clone gets
        a loop of its own and leaves the lifespan task suspended in the old one.
        """
        self.loop = asyncio.new_event_loop()

    def shutdown(self) -> None:
        """Send lifespan.shutdown to an app that supports lifespan events, then close the loop."""
        try:
            if self.lifespan_supported and self._lifespan_inbox is not None:
                self._run(self._shutdown_lifespan(), "the ASGI lifespan shutdown")
        finally:
            self.loop.close()

    async def _shutdown_lifespan(self) -> None:
        assert self._lifespan_inbox is not None
        await self._lifespan_inbox.put({"type": "lifespan.shutdown"})
        message = await self._lifespan_reply()
        if message is not None and message["type"] == "lifespan.shutdown.failed":
            raise HarnessError(f"the app's lifespan shutdown failed: {message.get('message', '')}")


class AiohttpCaller:
    """Serve an aiohttp Application as aiohttp's server does, and send it real HTTP requests on loopback.

    The build phase starts the app (its on_startup handlers and the start of its
    cleanup contexts run then, before the snapshot, as on the platform). Each clone
    serves the same started app on a new event loop and an ephemeral port of
    127.0.0.1, and requests go through aiohttp's client, its HTTP parser and the
    app's middlewares, the gate among them.
    """

    def __init__(self, app: Any, port: int, timeout_seconds: float) -> None:
        # Imported here: aiohttp is installed only in projects that use it.
        from aiohttp import web

        self.app = app
        self.port = port
        self.timeout_seconds = timeout_seconds
        self.loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self._server: Any = None
        self._listener: asyncio.Server | None = None
        self._started = False

    def _run(self, awaitable: Any, operation: str) -> Any:
        try:
            return self.loop.run_until_complete(asyncio.wait_for(awaitable, self.timeout_seconds))
        except TimeoutError:
            raise HarnessError(f"{operation} timed out after {self.timeout_seconds:g} s") from None

    def start(self) -> None:
        """Run the app's startup signals, as aiohttp's server does before it accepts connections."""
        self._run(self._runner.setup(), "the aiohttp app's startup")
        self._started = True
        self._server = self._runner.server

    def enter_clone(self) -> None:
        """Serve the started app on a new event loop, which shares nothing with the parent's."""
        from aiohttp import web

        self.loop = asyncio.new_event_loop()
        started = self._server
        if started is None:
            raise HarnessError("the aiohttp app was not started before the clone; call start() first")
        # The same handler and request factory that the parent's runner made, bound to this clone's loop.
        self._server = web.Server(
            started.request_handler, request_factory=started.request_factory, loop=self.loop, access_log=None
        )

        async def listen() -> asyncio.Server:
            return await self.loop.create_server(self._server, "127.0.0.1", 0)

        self._listener = self._run(listen(), "starting the aiohttp server in the clone")

    def request(self, method: str, target: str, headers: dict[str, str]) -> Response:
        return self._run(self._request(method, target, headers), f"{method} {target}")

    async def _request(self, method: str, target: str, headers: dict[str, str]) -> Response:
        import aiohttp

        if self._listener is None:
            # The build phase (warm-up requests) serves on the parent's loop.
            self._listener = await self.loop.create_server(self._server, "127.0.0.1", 0)
        port = self._listener.sockets[0].getsockname()[1]
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        async with (
            aiohttp.ClientSession(timeout=timeout) as client,
            client.request(method, f"http://127.0.0.1:{port}{target}", headers=headers) as response,
        ):
            return Response(response.status, await response.read())

    def shutdown(self) -> None:
        """Run the app's cleanup signals, then close the loop."""
        try:
            if self._listener is not None:
                self._listener.close()
            if self._started:
                self._run(self._runner.cleanup(), "the aiohttp app's cleanup")
        finally:
            self.loop.close()


Caller = WsgiCaller | AsgiCaller | AiohttpCaller
