"""The emulated MicroVM endpoint: an authenticating proxy in front of one app process.

Like the platform's ingress proxy, it
- requires a token in ``X-aws-proxy-auth`` (or, for a WebSocket, in the
  ``lambda-microvms.authentication.<token>`` subprotocol) and responds with 403 to a
  missing, invalid or expired token or for a port the token does not allow;
- picks the port from ``X-aws-proxy-port``, then the ``lambda-microvms.port.<n>``
  subprotocol, then the app port;
- removes every ``x-aws-proxy-*`` header and the platform's subprotocols,
  adds ``x-amzn-requestid`` and no ``X-Forwarded-For``;
- responds with 502 when nothing listens on the port or the MicroVM cannot resume;
- counts the bytes of accepted requests and tunnels as activity for the idle
  policy, and resumes a suspended MicroVM before forwarding them.

Ports inside the MicroVM map to the process's local ports: the app port and the
hooks port, nothing else. Each HTTP request gets its own upstream connection
and the client connection closes after the response, so the token is checked
for every request. A WebSocket upgrade turns the connection into a byte tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from http import HTTPStatus

from ..microvm.config import Settings
from . import httpwire
from .httpwire import HttpError, RequestHead, ResponseHead
from .timeline import Timeline
from .tokens import TOKEN_HEADER, TokenClaims, TokenError, verify_token
from .vm import EmulatedMicrovm, MicrovmUnavailable

PORT_HEADER = "X-aws-proxy-port"
REQUEST_ID_HEADER = "x-amzn-requestid"
PROXY_HEADER_PREFIX = "x-aws-proxy-"
SUBPROTOCOL = "lambda-microvms"
AUTH_SUBPROTOCOL_PREFIX = "lambda-microvms.authentication."
PORT_SUBPROTOCOL_PREFIX = "lambda-microvms.port."
# Seconds a client gets to send a complete request head.
HEAD_TIMEOUT_SECONDS = 30.0
# Hop-by-hop headers that a proxy must not forward (RFC 9110, section 7.6.1). Transfer-Encoding is
# hop-by-hop too, but stays, because the proxy forwards the body with its framing unchanged.
HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "te", "upgrade")


@dataclass
class Route:
    """The destination of one accepted request: the port inside the MicroVM and the local port behind it."""

    microvm_port: int
    local_port: int
    websocket: bool
    subprotocols: list[str]


class ProxyRejection(Exception):
    """A request that the proxy responds to itself, with ``status`` and a plain-text reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Endpoint:
    """The local endpoint of one emulated MicroVM, on 127.0.0.1."""

    def __init__(self, vm: EmulatedMicrovm, settings: Settings, token_key: bytes, timeline: Timeline) -> None:
        self.vm = vm
        self.settings = settings
        self.token_key = token_key
        self.timeline = timeline
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:``port`` (0 picks a free port) and return the port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port, limit=httpwire.MAX_HEAD_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening and close every open connection, tunnels included."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # -- one request --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_id = str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_SECONDS):
                raw_head = await httpwire.read_head(reader)
        except HttpError as error:
            await self._reject(writer, request_id, error.status, error.reason)
            return
        head: RequestHead | None = None
        try:
            head = httpwire.parse_request_head(raw_head)
            claims = self._authenticate(head)
            route = self._route(head, claims)
            framing = httpwire.request_body_framing(head.headers)
            # Only accepted requests count as traffic, so unauthenticated clients cannot keep a MicroVM awake.
            self.vm.touch()
            try:
                await self.vm.ensure_running()
            except MicrovmUnavailable as error:
                raise ProxyRejection(502, str(error)) from None
            if "100-continue" in (value.lower() for value in httpwire.header_list(head.headers, "Expect")):
                # The proxy accepts the body itself, so the client need not wait for the app's interim response.
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    "127.0.0.1", route.local_port, limit=httpwire.MAX_HEAD_BYTES
                )
            except OSError:
                raise ProxyRejection(
                    502, f"nothing is listening on port {route.microvm_port} in {self.vm.id}"
                ) from None
        except (HttpError, ProxyRejection) as error:
            status = error.status
            await self._reject(writer, request_id, status, error.reason)
            self._log(head, status, loop.time() - started, f"rejected: {error.reason}")
            return

        try:
            status = await self._forward(
                head, route, framing, request_id, reader, writer, upstream_reader, upstream_writer
            )
        finally:
            upstream_writer.close()
            with contextlib.suppress(OSError):
                await upstream_writer.wait_closed()
        self._log(head, status, loop.time() - started, f"port {route.microvm_port}")

    def _log(self, head: RequestHead | None, status: int, duration: float, note: str) -> None:
        # The path without its query string: query parameters may carry secrets.
        request = "invalid request" if head is None else f"{head.method} {head.target.split('?', 1)[0]}"
        self.timeline.event(self.vm.id, "request", status=status, duration=duration, note=f"{request}  {note}")

    def _authenticate(self, head: RequestHead) -> TokenClaims:
        tokens = httpwire.header_values(head.headers, TOKEN_HEADER)
        if not tokens:
            tokens = [
                protocol[len(AUTH_SUBPROTOCOL_PREFIX) :]
                for protocol in httpwire.header_list(head.headers, "Sec-WebSocket-Protocol")
                if protocol.startswith(AUTH_SUBPROTOCOL_PREFIX)
            ]
        if not tokens:
            raise ProxyRejection(
                403,
                f"missing token: send it in the {TOKEN_HEADER} header (WebSocket clients may use the "
                f"{AUTH_SUBPROTOCOL_PREFIX}<token> subprotocol); mint one with `microvm-local token`",
            )
        if len(tokens) > 1:
            raise ProxyRejection(403, f"the request contains {len(tokens)} tokens; send exactly one")
        try:
            claims = verify_token(self.token_key, tokens[0])
        except TokenError as error:
            raise ProxyRejection(403, str(error)) from None
        if claims.microvm_id is not None and claims.microvm_id != self.vm.id:
            raise ProxyRejection(
                403, f"the token was minted for {claims.microvm_id}, not for this MicroVM ({self.vm.id})"
            )
        return claims

    def _requested_port(self, head: RequestHead, subprotocols: list[str]) -> int:
        """Return the port from X-aws-proxy-port, else from the port subprotocol, else the app port."""
        values = httpwire.header_values(head.headers, PORT_HEADER)
        source = PORT_HEADER
        if not values:
            values = [p[len(PORT_SUBPROTOCOL_PREFIX) :] for p in subprotocols if p.startswith(PORT_SUBPROTOCOL_PREFIX)]
            source = f"the {PORT_SUBPROTOCOL_PREFIX}<n> subprotocol"
        if not values:
            return self.settings.app_port
        if len(values) > 1:
            raise ProxyRejection(400, f"{source} appears {len(values)} times; send one port")

        text = values[0].strip()
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ProxyRejection(400, f"{source} {text[:20]!r} is invalid; use a port from 1 to 65535")
        return int(text)

    def _route(self, head: RequestHead, claims: TokenClaims) -> Route:
        websocket = "websocket" in (value.lower() for value in httpwire.header_list(head.headers, "Upgrade"))
        subprotocols = httpwire.header_list(head.headers, "Sec-WebSocket-Protocol") if websocket else []
        port = self._requested_port(head, subprotocols)

        if not claims.allows_port(port):
            raise ProxyRejection(
                403,
                f"port {port} is not allowed by this token (it allows {claims.describe_ports()}); "
                f"mint a token with `microvm-local token --port {port}`",
            )

        local_ports = {
            self.settings.app_port: self.vm.process.app_port,
            self.settings.hooks_port: self.vm.process.hooks_port,
        }
        if port not in local_ports:
            raise ProxyRejection(
                502,
                f"nothing is listening on port {port} in {self.vm.id}: the emulator forwards only the app port "
                f"({self.settings.app_port}) and the hooks port ({self.settings.hooks_port})",
            )
        return Route(port, local_ports[port], websocket, subprotocols)

    # -- forwarding ---------------------------------------------------------------------------------

    def _upstream_head(self, head: RequestHead, route: Route, request_id: str) -> RequestHead:
        """Return the request head for the app: proxy and hop-by-hop headers removed, request id added."""
        named_hop_by_hop = [name.lower() for name in httpwire.header_list(head.headers, "Connection")]
        headers = [
            (name, value)
            for name, value in head.headers
            if not name.lower().startswith(PROXY_HEADER_PREFIX)
            and name.lower() not in HOP_BY_HOP
            and name.lower() not in named_hop_by_hop
            # The platform adds its own request id; one sent by the client would be forged.
            and name.lower() != REQUEST_ID_HEADER
            and name.lower() not in ("sec-websocket-protocol", "expect")
        ]
        if route.websocket:
            app_subprotocols = [
                protocol
                for protocol in route.subprotocols
                if protocol != SUBPROTOCOL
                and not protocol.startswith(AUTH_SUBPROTOCOL_PREFIX)
                and not protocol.startswith(PORT_SUBPROTOCOL_PREFIX)
            ]
            if app_subprotocols:
                headers.append(("Sec-WebSocket-Protocol", ", ".join(app_subprotocols)))
            headers += [("Connection", "Upgrade"), ("Upgrade", "websocket")]
        else:
            headers.append(("Connection", "close"))
        headers.append((REQUEST_ID_HEADER, request_id))
        return RequestHead(head.method, head.target, head.version, headers)

    async def _progress(self, _size: int) -> None:
        self.vm.touch()
        await self.vm.ensure_running()

    async def _forward(
        self,
        head: RequestHead,
        route: Route,
        framing: httpwire.Framing,
        request_id: str,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> int:
        """Forward one request and its response; return the response status, or the status of the error sent."""
        upstream_writer.write(httpwire.serialize_request_head(self._upstream_head(head, route, request_id)))
        await upstream_writer.drain()

        try:
            await httpwire.copy_body(client_reader, upstream_writer, framing, self._progress)
            response = await self._read_response(upstream_reader, client_writer)
            response_framing = httpwire.response_body_framing(response.status, head.method, response.headers)
        except MicrovmUnavailable as error:
            await self._reject(client_writer, request_id, 502, str(error))
            return 502
        except HttpError as error:
            # 400 for a malformed request body, 502 for a malformed response.
            await self._reject(client_writer, request_id, error.status, error.reason)
            return error.status
        except (asyncio.IncompleteReadError, ConnectionError):
            await self._reject(client_writer, request_id, 502, "the connection closed before the app sent a response")
            return 502
        self.vm.touch()

        if response.status == 101 and route.websocket:
            client_writer.write(httpwire.serialize_response_head(response))
            await client_writer.drain()
            await self._tunnel(client_reader, client_writer, upstream_reader, upstream_writer)
            return 101

        headers = httpwire.without_headers(response.headers, ("Connection", "Keep-Alive"))
        headers.append(("Connection", "close"))
        client_writer.write(
            httpwire.serialize_response_head(ResponseHead(response.version, response.status, response.reason, headers))
        )
        await client_writer.drain()
        # The status line is sent, so a body cut short can only end the connection.
        with contextlib.suppress(HttpError, asyncio.IncompleteReadError, ConnectionError):
            await httpwire.copy_body(upstream_reader, client_writer, response_framing, self._touch_progress)
        return response.status

    async def _touch_progress(self, _size: int) -> None:
        self.vm.touch()

    async def _read_response(
        self, upstream_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> ResponseHead:
        """Read the final response head, passing interim 1xx responses (except 101) to the client."""
        for _ in range(httpwire.MAX_INTERIM_RESPONSES + 1):
            response = httpwire.parse_response_head(await httpwire.read_head(upstream_reader))
            if response.status == 101 or not 100 <= response.status < 200:
                return response
            client_writer.write(httpwire.serialize_response_head(response))
            await client_writer.drain()
        raise HttpError(502, f"the app sent more than {httpwire.MAX_INTERIM_RESPONSES} interim responses")

    async def _tunnel(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        """Copy bytes both ways until either side closes; bytes from the client resume a suspended MicroVM."""

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to_app: bool) -> None:
            while data := await reader.read(httpwire.COPY_BUFFER_BYTES):
                self.vm.touch()
                if to_app:
                    await self.vm.ensure_running()
                writer.write(data)
                await writer.drain()

        pumps = [
            asyncio.create_task(pump(client_reader, upstream_writer, to_app=True)),
            asyncio.create_task(pump(upstream_reader, client_writer, to_app=False)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _reject(self, writer: asyncio.StreamWriter, request_id: str, status: int, reason: str) -> None:
        body = (reason + "\n").encode("utf-8")
        head = ResponseHead(
            "HTTP/1.1",
            status,
            HTTPStatus(status).phrase,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                (REQUEST_ID_HEADER, request_id),
                ("Connection", "close"),
            ],
        )
        with contextlib.suppress(ConnectionError):
            writer.write(httpwire.serialize_response_head(head) + body)
            await writer.drain()
