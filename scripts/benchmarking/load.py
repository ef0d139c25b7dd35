"""A threaded HTTP/1.1 load generator with keep-alive connections, on the standard library only."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from dataclasses import dataclass, field

from .common import LOOPBACK


class KeepAliveConnection:
    """One HTTP/1.1 connection reused for many requests, parsing just enough of each response.

    Lighter than http.client, so that a client thread costs less CPU than the
    server it measures. Handles Content-Length, chunked and close-delimited bodies.
    """

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.socket: socket.socket | None = None
        self.buffer = bytearray()

    def connect(self) -> None:
        self.close()
        self.socket = socket.create_connection((LOOPBACK, self.port), timeout=self.timeout)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        self.buffer.clear()

    def request(self, raw_request: bytes) -> int:
        """Send a complete request and read the whole response; return its status."""
        if self.socket is None:
            self.connect()
        assert self.socket is not None
        self.socket.sendall(raw_request)
        status, keep_alive = self._read_response()
        if not keep_alive:
            self.close()
        return status

    def _fill(self) -> bool:
        assert self.socket is not None
        data = self.socket.recv(65536)
        self.buffer += data
        return bool(data)

    def _take_until(self, marker: bytes) -> bytes:
        while True:
            index = self.buffer.find(marker)
            if index >= 0:
                end = index + len(marker)
                consumed = bytes(self.buffer[:end])
                del self.buffer[:end]
                return consumed
            if not self._fill():
                raise ConnectionError("the server closed the connection mid-response")

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ConnectionError("the server closed the connection mid-body")
        consumed = bytes(self.buffer[:size])
        del self.buffer[:size]
        return consumed

    def _read_response(self) -> tuple[int, bool]:
        head = self._take_until(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].split(b"\r\n")
        version, status_text = status_line.split(b" ", 2)[:2]
        status = int(status_text)
        headers: dict[bytes, bytes] = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        connection = headers.get(b"connection", b"")
        keep_alive = connection != b"close" if version == b"HTTP/1.1" else connection == b"keep-alive"
        if 100 <= status < 200 or status in (204, 304):
            return status, keep_alive
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            while True:
                size = int(self._take_until(b"\r\n").split(b";", 1)[0], 16)
                if size == 0:
                    # Trailer fields, if any, end with an empty line.
                    while self._take_until(b"\r\n") != b"\r\n":
                        pass
                    return status, keep_alive
                self._take(size + 2)
        if b"content-length" in headers:
            self._take(int(headers[b"content-length"]))
            return status, keep_alive
        while self._fill():
            pass
        return status, False


@dataclass
class LoadResult:
    """The outcome of one load run at one concurrency."""

    concurrency: int
    succeeded: int = 0
    failed: int = 0
    elapsed_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    failures: list[str] = field(default_factory=list)  # the first few, for the report

    @property
    def requests_per_second(self) -> float:
        return self.succeeded / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def merge(self, other: LoadResult) -> None:
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.elapsed_seconds += other.elapsed_seconds
        self.latencies += other.latencies
        self.failures += other.failures[: max(0, 5 - len(self.failures))]


def run_load(port: int, path: str, concurrency: int, max_requests: int, max_seconds: float) -> LoadResult:
    """Send GET ``path`` from ``concurrency`` keep-alive connections until ``max_requests`` or ``max_seconds``.

    Only responses with status 200 count as successful; the rate is successful requests per second of wall time.
    """
    raw_request = (
        f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nUser-Agent: microvm-benchmark\r\nAccept: */*\r\n\r\n"
    ).encode()
    tickets = itertools.count()
    barrier = threading.Barrier(concurrency + 1)
    results = [LoadResult(concurrency) for _ in range(concurrency)]
    finished = [0.0] * concurrency
    timing: dict[str, float] = {}

    def worker(index: int) -> None:
        result = results[index]
        connection = KeepAliveConnection(port)
        try:
            connection.connect()
        except OSError as error:
            result.failures.append(f"connect: {error}")
        barrier.wait()
        deadline = timing["deadline"]
        while next(tickets) < max_requests:
            started = time.perf_counter()
            if started >= deadline:
                break
            try:
                status = connection.request(raw_request)
            except (OSError, ValueError) as error:
                result.failed += 1
                if len(result.failures) < 5:
                    result.failures.append(f"{type(error).__name__}: {error}")
                connection.close()
                continue
            if status == 200:
                result.succeeded += 1
                result.latencies.append(time.perf_counter() - started)
            else:
                result.failed += 1
                if len(result.failures) < 5:
                    result.failures.append(f"status {status}")
        finished[index] = time.perf_counter()
        connection.close()

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    timing["start"] = time.perf_counter()
    timing["deadline"] = timing["start"] + max_seconds
    barrier.wait()
    for thread in threads:
        thread.join(max_seconds + 30)
    total = LoadResult(concurrency)
    for result in results:
        total.merge(result)
    total.elapsed_seconds = max(finished) - timing["start"]
    return total
