"""A stand-in app for the emulator's tests: standard library only, with switchable faults.

Run as ``python local_fake_app.py``. It listens on 127.0.0.1:$APP_PORT and
127.0.0.1:$HOOKS_PORT like ``python -m <package>`` does, and $FAKE_APP_MODE
selects a fault:

- ``ok``: every hook follows the contract, and the first /ready returns 503.
- ``run_500`` / ``suspend_500`` / ``resume_500``: that hook returns 500.
- ``run_slow``: /run responds after 3 s.
- ``ready_404``: /ready returns 404. ``ready_never``: /ready always returns 503.
- ``exit_early``: the process exits with code 3 before listening.
- ``no_app``: only the hook server listens.
- ``static_session``: the session id is made at import, so every process shares it.

App routes: GET /session, GET /headers (the request headers as a JSON list),
GET /hooks (every hook call received), POST /echo (the body back), and a
WebSocket-style upgrade on /ws that returns 101 and then echoes raw bytes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODE = os.environ.get("FAKE_APP_MODE", "ok")
HOOK_PREFIX = "/aws/lambda-microvms/runtime/v1/"
# Deliberately computed at import in static_session mode: the snapshot bug the demo must catch.
STATIC_SESSION = "same-in-every-vm"

state: dict[str, Any] = {"microvm_id": None, "session_id": None, "ready_calls": 0}
hook_calls: list[dict[str, object]] = []
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send_json(self, status: int, document: object, extra_headers: dict[str, str] | None = None) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class HookHandler(Handler):
    def do_POST(self) -> None:
        body = self._read_body()
        hook = self.path[len(HOOK_PREFIX) :] if self.path.startswith(HOOK_PREFIX) else self.path
        with lock:
            hook_calls.append(
                {
                    "hook": hook,
                    "host": self.headers.get("Host"),
                    "user_agent": self.headers.get("User-Agent"),
                    "content_type": self.headers.get("Content-Type"),
                    "body": body.decode(),
                }
            )
        if hook == "ready":
            state["ready_calls"] += 1
            if MODE == "ready_404":
                self._send_json(404, {"reason": "no such hook"})
            elif MODE == "ready_never" or state["ready_calls"] == 1:
                self._send_json(503, {"status": "warming up"})
            else:
                self._send_json(200, {"status": "ready"})
            return
        if hook == "run":
            if MODE == "run_500":
                self._send_json(500, {"reason": "per-VM setup failed"})
                return
            if MODE == "run_slow":
                time.sleep(3)
            document = json.loads(body)
            state["microvm_id"] = document["microvmId"]
            state["session_id"] = STATIC_SESSION if MODE == "static_session" else os.urandom(8).hex()
        if MODE == f"{hook}_500":
            self._send_json(500, {"reason": f"{hook} failed"})
            return
        self._send_json(200, {"server": "hooks", "hook": hook})


class AppHandler(Handler):
    def do_GET(self) -> None:
        if self.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self._upgrade()
        elif self.path == "/session":
            self._send_json(200, {"session_id": state["session_id"], "microvm_id": state["microvm_id"]})
        elif self.path == "/headers":
            self._send_json(200, [[name, value] for name, value in self.headers.items()])
        elif self.path == "/hooks":
            with lock:
                self._send_json(200, hook_calls)
        else:
            self._send_json(404, {"path": self.path})

    def do_POST(self) -> None:
        body = self._read_body()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _upgrade(self) -> None:
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("X-Seen-Subprotocols", self.headers.get("Sec-WebSocket-Protocol", ""))
        self.send_header(
            "X-Seen-Proxy-Headers", ",".join(n for n in self.headers if n.lower().startswith("x-aws-proxy-"))
        )
        self.end_headers()
        self.wfile.flush()
        while data := self.connection.recv(65536):
            self.connection.sendall(data)
        self.close_connection = True


def serve(port: int, handler: type[Handler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    if MODE == "exit_early":
        return 3
    serve(int(os.environ["HOOKS_PORT"]), HookHandler)
    if MODE != "no_app":
        serve(int(os.environ["APP_PORT"]), AppHandler)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
