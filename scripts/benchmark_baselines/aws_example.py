"""Baseline: the minimal two-server Flask app of the MicroVMs getting-started pattern.

The app and the lifecycle hooks are two Flask apps, each on Flask's development
server, in two threads of one process: the shape of AWS's getting-started
example, written here for the benchmark. Every hook returns 200 at once. There
is no request gate, so app requests are served before /run, and /suspend does
not wait for requests in flight. The servers keep the development server's
defaults, including one access-log line per request on stderr.

Environment: APP_PORT (default 8080), HOOKS_PORT (default 9000) and
MICROVM_HOST (default 127.0.0.1; in a MicroVM the example binds 0.0.0.0). The
benchmark adds GET /slow?seconds=S to keep requests in flight.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time

from flask import Flask, request

HOOK_PREFIX = "/aws/lambda-microvms/runtime/v1"

app = Flask("app")
hooks = Flask("hooks")

# Set by /run. Before /run the app still serves requests, with no identity.
vm_identity: dict[str, str | None] = {"microvm_id": None, "payload": None}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/session")
def session() -> dict[str, str | None]:
    return {"microvm_id": vm_identity["microvm_id"]}


@app.get("/token")
def token() -> dict[str, str]:
    return {"token": secrets.token_urlsafe(32)}


@app.get("/slow")
def slow() -> dict[str, bool]:
    time.sleep(min(float(request.args.get("seconds", "1")), 30.0))
    return {"slept": True}


@hooks.post(f"{HOOK_PREFIX}/ready")
def ready() -> dict[str, str]:
    return {"status": "ready"}


@hooks.post(f"{HOOK_PREFIX}/run")
def run() -> dict[str, str]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        body = {}
    vm_identity["microvm_id"] = body.get("microvmId")
    vm_identity["payload"] = body.get("runHookPayload")
    return {"status": "running"}


@hooks.post(f"{HOOK_PREFIX}/resume")
@hooks.post(f"{HOOK_PREFIX}/suspend")
@hooks.post(f"{HOOK_PREFIX}/terminate")
def other_hook() -> dict[str, str]:
    return {"status": "ok"}


def main() -> int:
    host = os.environ.get("MICROVM_HOST", "127.0.0.1")
    hooks_thread = threading.Thread(
        target=hooks.run,
        kwargs={"host": host, "port": int(os.environ.get("HOOKS_PORT", "9000")), "threaded": True},
        name="hooks",
        daemon=True,
    )
    hooks_thread.start()
    app.run(host=host, port=int(os.environ.get("APP_PORT", "8080")), threaded=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
