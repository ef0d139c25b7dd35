"""A small blocking WebSocket client (RFC 6455) for the tests: handshake, masked frames, close codes."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from dataclasses import dataclass

# The GUID that RFC 6455 section 1.3 appends to the key to compute Sec-WebSocket-Accept.
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class HandshakeRejected(Exception):
    """The server responded to the upgrade request with a status other than 101."""

    def __init__(self, head: bytes) -> None:
        super().__init__(head.decode("latin-1", "replace").split("\r\n", 1)[0])
        self.head = head
        self.status = int(head.split(b" ", 2)[1])


@dataclass
class Frame:
    opcode: int
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


class WebSocketClient:
    """One client connection to ws://127.0.0.1:port/path."""

    def __init__(self, port: int, path: str = "/ws", timeout: float = 10.0, headers: dict[str, str] | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_head()
        if not head.startswith(b"HTTP/1.1 101"):
            self.sock.close()
            raise HandshakeRejected(head)
        # RFC 6455 specifies SHA-1 here; it proves the server read the key, nothing more.
        expected = base64.b64encode(hashlib.sha1(key.encode() + ACCEPT_GUID).digest())
        if b"sec-websocket-accept: " + expected.lower() not in head.lower():
            self.sock.close()
            raise AssertionError(f"wrong or missing Sec-WebSocket-Accept in {head!r}")
        self.head = head

    def _read_head(self) -> bytes:
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"connection closed during the handshake after {self._buffer!r}")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        return head

    def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed in the middle of a frame")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """Send one final frame, masked as RFC 6455 requires of clients."""
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode())

    def receive(self) -> Frame:
        """Return the next data or close frame, replying to pings on the way."""
        while True:
            first, second = self._read_exactly(2)
            if not first & 0x80:
                raise AssertionError("fragmented frames are not expected from these servers")
            if second & 0x80:
                raise AssertionError("the server masked a frame, which RFC 6455 forbids")
            length = second & 0x7F
            if length == 126:
                length = int(struct.unpack("!H", self._read_exactly(2))[0])
            elif length == 127:
                length = int(struct.unpack("!Q", self._read_exactly(8))[0])
            frame = Frame(first & 0x0F, self._read_exactly(length))
            if frame.opcode == OP_PING:
                self.send_frame(OP_PONG, frame.payload)
                continue
            return frame

    def close(self, code: int = 1000) -> None:
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code))
        except OSError:
            pass
        self.sock.close()

    def at_eof(self) -> bool:
        """Tell whether the server has closed the TCP connection (waits up to the socket timeout)."""
        if self._buffer:
            return False
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True
