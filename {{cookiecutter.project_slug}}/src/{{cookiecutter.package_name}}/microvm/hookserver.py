"""The HTTP server for the lifecycle hooks, on its own port and its own threads.

It is independent of the app's server and worker pool, so a hook is answered
even when every app worker is busy.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .config import HOOK_PATH_PREFIX
from .lifecycle import MAX_HOOK_BODY_BYTES, HookResponse, Lifecycle

logger = logging.getLogger("microvm")


class BodyError(Exception):
    """The request body could not be read; carries the status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")


class HookServer(ThreadingHTTPServer):
    daemon_threads = True
    # The platform polls /ready while the app starts; a short backlog would refuse those polls.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, HookRequestHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A caller that hangs up mid-response is routine; log one line instead of a traceback on stderr.
        logger.warning("hook connection from %s failed: %s", client_address, sys.exc_info()[1])


class HookRequestHandler(BaseHTTPRequestHandler):
    server: HookServer
    protocol_version = "HTTP/1.1"
    server_version = "microvm-hooks"
    sys_version = ""
    # A caller that stops sending mid-request must not hold a thread for ever.
    timeout = 30

    def do_POST(self) -> None:  # the name http.server dispatches to
        if not self.path.startswith(HOOK_PATH_PREFIX):
            self._answer(HookResponse(404, {"error": "not found", "reason": f"no hook at {self.path}"}))
            return
        hook = self.path[len(HOOK_PATH_PREFIX) :].split("?", 1)[0].strip("/")
        started = time.monotonic()
        try:
            body = self._read_body()
        except BodyError as error:
            # The connection may hold unread bytes of this body, so it is not reused.
            self.close_connection = True
            if hook == "run" and error.status == 413:
                self._answer(HookResponse(413, {"error": "payload too large", "reason": error.reason}))
                log_hook(hook, 413, started, reason=error.reason)
                return
            # Only /run reads its body, and it treats an unreadable one as empty. Failing a runtime hook
            # over framing would make the platform terminate the VM.
            logger.warning("/%s body could not be read (%s); handling it as empty", hook, error.reason)
            body = b""
        try:
            response = self.server.lifecycle.handle(hook, body)
        except Exception as error:  # a runtime hook must answer, and 200 keeps the VM
            logger.exception("/%s raised; answering 200 so that the platform keeps the VM", hook)
            response = HookResponse(200, {"status": "error", "reason": f"{type(error).__name__}"})
        self._answer(response)
        vm = self.server.lifecycle.vm
        log_hook(
            hook,
            response.status,
            started,
            microvm_id=vm.microvm_id if vm else None,
            reason=response.body.get("reason"),
        )

    def do_GET(self) -> None:
        self._method_not_allowed()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _method_not_allowed(self) -> None:
        self._answer(HookResponse(405, {"error": "method not allowed", "reason": "lifecycle hooks take POST"}))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise BodyError(400, f"Content-Length {length_text!r} is not a number") from None
        if length < 0:
            raise BodyError(400, f"Content-Length {length} is negative")
        if length > MAX_HOOK_BODY_BYTES:
            self.close_connection = True
            raise BodyError(413, f"body of {length} bytes is larger than the {MAX_HOOK_BODY_BYTES}-byte maximum")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise BodyError(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self.rfile.readline(64)
            size_text = size_line.split(b";", 1)[0].strip()
            # Plain hex digits only: int(..., 16) would also take "-5", "+3", "0x10" and "1_0".
            if not _CHUNK_SIZE.fullmatch(size_text):
                self.close_connection = True
                raise BodyError(400, f"invalid chunk size line {size_line[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                # Skip trailer fields up to the empty line.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > MAX_HOOK_BODY_BYTES:
                self.close_connection = True
                raise BodyError(413, f"chunked body is larger than the {MAX_HOOK_BODY_BYTES}-byte maximum")
            body += self.rfile.read(size)
            self.rfile.readline(8)

    def _answer(self, response: HookResponse) -> None:
        payload = json.dumps(response.body).encode()
        self.send_response(response.status, HTTPStatus(response.status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # the base class's name
        # Hook calls are logged once each by log_hook, in the structured format.
        pass


def log_hook(hook: str, status: int, started: float, microvm_id: str | None = None, reason: str | None = None) -> None:
    """Log one line per hook call: the hook, the VM, the status and the duration. Never the payload."""
    duration_ms = round((time.monotonic() - started) * 1000, 2)
    if status == 200:
        result = "ok"
    elif status == 503:
        result = "not yet"
    else:
        result = "failed"
    level = logging.INFO if status in (200, 503) else logging.ERROR
    logger.log(
        level,
        "hook /%s answered %d in %.2f ms",
        hook,
        status,
        duration_ms,
        extra={
            "event": "hook",
            "hook": hook,
            "microvm_id": microvm_id,
            "status": status,
            "duration_ms": duration_ms,
            "result": result,
            "reason": reason,
        },
    )


def start_hook_server(lifecycle: Lifecycle, host: str, port: int) -> HookServer:
    """Bind the hook server and serve it from a daemon thread."""
    server = HookServer((host, port), lifecycle)
    thread = threading.Thread(target=server.serve_forever, name="microvm-hooks", daemon=True)
    thread.start()
    return server
