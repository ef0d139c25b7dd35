"""HTTP/1.1 message heads, body framing and a small client, on asyncio streams.

The emulator's proxy must forward requests byte for byte, tunnel WebSocket
upgrades and rewrite a few headers, which ``http.client`` and ``http.server``
cannot do on one connection. This module parses and writes message heads and
copies bodies according to their framing (RFC 9112, section 6), and nothing more.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

# Largest request or response head accepted, in bytes. Larger heads get 431.
MAX_HEAD_BYTES = 64 * 1024
# Largest chunk-size line accepted in a chunked body, in bytes.
MAX_CHUNK_LINE_BYTES = 1024
# Bytes read from a socket at a time when copying bodies and tunnels.
COPY_BUFFER_BYTES = 64 * 1024
# Interim (1xx) responses skipped before the final response, at most.
MAX_INTERIM_RESPONSES = 8

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

Headers = list[tuple[str, str]]
Progress = Callable[[int], Awaitable[None]]

CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HttpError(Exception):
    """A malformed HTTP message; ``status`` is the status to respond with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class RequestHead:
    method: str
    target: str
    version: str
    headers: Headers


@dataclass
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: Headers


@dataclass(frozen=True)
class Framing:
    """The framing of a message body: ``none``, ``length`` (Content-Length), ``chunked`` or ``close`` (at EOF)."""

    kind: str
    length: int = 0


NO_BODY = Framing("none")


@dataclass
class Response:
    status: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        values = header_values(self.headers, name)
        return values[0] if values else None


def header_values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    """Return every value of the header ``name`` (case-insensitive), in order."""
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


def header_list(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    """Return the comma-separated elements of every ``name`` header, stripped, without empty ones."""
    elements: list[str] = []
    for value in header_values(headers, name):
        elements.extend(part.strip() for part in value.split(","))
    return [element for element in elements if element]


def without_headers(headers: Iterable[tuple[str, str]], names: Iterable[str]) -> Headers:
    """Return ``headers`` minus every header whose name is in ``names`` (case-insensitive)."""
    dropped = {name.lower() for name in names}
    return [(key, value) for key, value in headers if key.lower() not in dropped]


def _parse_header_lines(lines: list[str]) -> Headers:
    headers: Headers = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            raise HttpError(400, "obsolete line folding in a header is not accepted")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name):
            raise HttpError(400, f"invalid header line {line[:60]!r}")
        headers.append((name, value.strip(" \t")))
    return headers


def _split_head(data: bytes) -> list[str]:
    if not data.endswith(b"\r\n\r\n"):
        raise HttpError(400, "the message head does not end with an empty line")
    # ISO-8859-1 maps every byte to one character, so any header value survives a round trip.
    return data[:-4].decode("latin-1").split("\r\n")


def parse_request_head(data: bytes) -> RequestHead:
    """Parse a request line and its header fields; raise HttpError(400) when malformed."""
    lines = _split_head(data)
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
        raise HttpError(400, f"invalid request line {lines[0][:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, f"HTTP version {version[:20]!r} is not supported; use HTTP/1.1")
    return RequestHead(method, target, version, _parse_header_lines(lines[1:]))


def parse_response_head(data: bytes) -> ResponseHead:
    """Parse a status line and its header fields; raise HttpError(502) when malformed."""
    lines = _split_head(data)
    version, _, rest = lines[0].partition(" ")
    status_text, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(status_text) != 3 or not status_text.isdigit():
        raise HttpError(502, f"invalid status line {lines[0][:80]!r}")
    try:
        headers = _parse_header_lines(lines[1:])
    except HttpError as error:
        raise HttpError(502, error.reason) from None
    return ResponseHead(version, int(status_text), reason, headers)


def serialize_request_head(head: RequestHead) -> bytes:
    lines = [f"{head.method} {head.target} {head.version}"]
    lines.extend(f"{name}: {value}" for name, value in head.headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def serialize_response_head(head: ResponseHead) -> bytes:
    lines = [f"{head.version} {head.status} {head.reason}".rstrip()]
    lines.extend(f"{name}: {value}" for name, value in head.headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _content_length(headers: Headers, status: int) -> int | None:
    values = header_list(headers, "Content-Length")
    if not values:
        return None
    if len(set(values)) != 1 or not values[0].isdigit():
        raise HttpError(status, f"invalid Content-Length {', '.join(values)[:40]!r}")
    return int(values[0])


def request_body_framing(headers: Headers) -> Framing:
    """Return how a request body ends; reject the ambiguous framings used for request smuggling."""
    codings = [coding.lower() for coding in header_list(headers, "Transfer-Encoding")]
    length = _content_length(headers, 400)
    if codings:
        if length is not None:
            raise HttpError(400, "a request must not have both Transfer-Encoding and Content-Length")
        if codings[-1] != "chunked":
            raise HttpError(400, f"Transfer-Encoding {', '.join(codings)!r} does not end with chunked")
        return Framing("chunked")
    if length:
        return Framing("length", length)
    return NO_BODY


def response_body_framing(status: int, request_method: str, headers: Headers) -> Framing:
    """Return how a response body ends, given its status and the method of its request."""
    if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return NO_BODY
    codings = [coding.lower() for coding in header_list(headers, "Transfer-Encoding")]
    if codings:
        return Framing("chunked") if codings[-1] == "chunked" else Framing("close")
    length = _content_length(headers, 502)
    if length is not None:
        return Framing("length", length) if length else NO_BODY
    return Framing("close")


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Read one message head up to and including the empty line.

    Raises HttpError(431) when it exceeds MAX_HEAD_BYTES, and IncompleteReadError
    when the peer closes first.
    """
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"the message head is larger than {MAX_HEAD_BYTES} bytes") from None


async def _no_progress(_size: int) -> None:
    return None


async def copy_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    framing: Framing,
    progress: Progress = _no_progress,
) -> None:
    """Copy one body from ``reader`` to ``writer`` unchanged, stopping where its framing ends it.

    ``progress`` is awaited with the size of every piece before it is written.
    Raises IncompleteReadError when the body ends early.
    """
    if framing.kind == "length":
        remaining = framing.length
        while remaining:
            data = await reader.read(min(COPY_BUFFER_BYTES, remaining))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            await progress(len(data))
            writer.write(data)
            await writer.drain()
    elif framing.kind == "chunked":
        await _copy_chunked(reader, writer, progress)
    elif framing.kind == "close":
        while data := await reader.read(COPY_BUFFER_BYTES):
            await progress(len(data))
            writer.write(data)
            await writer.drain()


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, progress: Progress) -> None:
    while True:
        line = await _read_line(reader)
        size_text = line.split(b";", 1)[0].strip()
        # Plain hex digits only: int(..., 16) would also take "-5", "+3", "0x10" and "1_0".
        if not CHUNK_SIZE.fullmatch(size_text):
            raise HttpError(400, f"invalid chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        await progress(len(line))
        writer.write(line)
        if size == 0:
            # Trailer fields, then the empty line that ends the body.
            while True:
                trailer = await _read_line(reader)
                writer.write(trailer)
                if trailer == b"\r\n":
                    await writer.drain()
                    return
        data = await reader.readexactly(size + 2)
        if not data.endswith(b"\r\n"):
            raise HttpError(400, "a chunk does not end with CRLF")
        await progress(len(data))
        writer.write(data)
        await writer.drain()


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readuntil(b"\r\n")
    if len(line) > MAX_CHUNK_LINE_BYTES:
        raise HttpError(400, f"a chunk-size or trailer line is longer than {MAX_CHUNK_LINE_BYTES} bytes")
    return line


class _Collector:
    """A stand-in for StreamWriter that keeps what is written, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data
        if len(self.data) > self.limit:
            raise HttpError(502, f"the response body is larger than {self.limit} bytes")

    async def drain(self) -> None:
        return None


def _decode_chunked(raw: bytes) -> bytes:
    body = bytearray()
    position = 0
    while True:
        end = raw.index(b"\r\n", position)
        size = int(raw[position:end].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(body)
        body += raw[end + 2 : end + 2 + size]
        position = end + 2 + size + 2


async def request(
    port: int,
    method: str,
    path: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    timeout: float,
    host_header: str | None = None,
    max_body_bytes: int = 1024 * 1024,
) -> Response:
    """Send one request to 127.0.0.1:``port`` on a new connection and return the whole response.

    The whole exchange, connecting included, must finish within ``timeout``
    seconds, else TimeoutError. OSError means the connection failed (for
    example, refused because nothing listens on the port).
    """
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=MAX_HEAD_BYTES)
        try:
            request_headers = [("Host", host_header or f"127.0.0.1:{port}"), *headers]
            if body or method in ("POST", "PUT", "PATCH"):
                request_headers.append(("Content-Length", str(len(body))))
            request_headers.append(("Connection", "close"))
            writer.write(serialize_request_head(RequestHead(method, path, "HTTP/1.1", request_headers)) + body)
            await writer.drain()
            for _ in range(MAX_INTERIM_RESPONSES + 1):
                head = parse_response_head(await read_head(reader))
                if not 100 <= head.status < 200:
                    break
            else:
                raise HttpError(502, f"more than {MAX_INTERIM_RESPONSES} interim responses")
            framing = response_body_framing(head.status, method, head.headers)
            collector = _Collector(max_body_bytes)
            await copy_body(reader, collector, framing)  # type: ignore[arg-type]
            data = bytes(collector.data)
            if framing.kind == "chunked":
                data = _decode_chunked(data)
            return Response(head.status, head.headers, data)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
