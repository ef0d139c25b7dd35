"""Import an app once, then fork a fresh server process from that state on request.

The benchmark needs hundreds of server processes whose /run hook is the first
/run they see. Starting an interpreter and importing the framework each time
takes most of a second. So this process imports the modules once, starts no
thread, and forks one child per sample. Each child starts the servers and the
hook handling from scratch, as a VM restored from a snapshot taken right after
the imports would.

Usage: forkserver.py --preload MODULE [--preload MODULE ...] --target MODULE:FUNCTION [ARG ...]

Commands arrive on stdin as one JSON object per line, and each reply is one
JSON line on stdout:

    {"spawn": {"env": {"APP_PORT": "..."}, "log": "/path/to/child.log"}}  ->  {"pid": 1234}
    {"stop": 1234}                                                       ->  {"stopped": 1234}

At end of input every child still running is killed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any


def spawn(target: str, arguments: list[str], env: dict[str, str], log_path: str) -> int:
    """Fork a child that calls ``target(*arguments)`` with ``env`` applied; return its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.environ.update(env)
        module_name, _, function_name = target.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(*arguments)
        status = result if isinstance(result, int) else 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def stop(pid: int) -> None:
    """Kill a child and reap it; the benchmark measures nothing after this."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def reply(document: dict[str, Any]) -> None:
    """Write one reply line to the benchmark and flush it, because the benchmark waits for it."""
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preload", action="append", default=[], metavar="MODULE", help="module to import once")
    parser.add_argument("--target", required=True, metavar="MODULE:FUNCTION", help="function each child calls")
    parser.add_argument("arguments", nargs="*", help="string arguments passed to the target function")
    options = parser.parse_args()

    started = time.perf_counter()
    for module in options.preload:
        importlib.import_module(module)
    reply({"ready": True, "preload_seconds": round(time.perf_counter() - started, 3)})

    children: set[int] = set()
    for line in sys.stdin:
        command = json.loads(line)
        if "spawn" in command:
            request = command["spawn"]
            pid = spawn(options.target, options.arguments, request.get("env", {}), request["log"])
            children.add(pid)
            reply({"pid": pid})
        elif "stop" in command:
            pid = int(command["stop"])
            if pid in children:
                stop(pid)
                children.discard(pid)
            reply({"stopped": pid})
        else:
            reply({"error": f"unknown command {line.strip()!r}; use spawn or stop"})
    for pid in children:
        stop(pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
