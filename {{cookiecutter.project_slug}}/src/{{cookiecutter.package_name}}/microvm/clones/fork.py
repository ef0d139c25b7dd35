"""Fork a clone of this process that looks restored from a snapshot, run a job in it, and collect the result."""

from __future__ import annotations

import json
import math
import os
import random
import select
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

from .errors import CloneTimeoutError, HarnessError


def run_in_clone(job: Callable[[], Any], timeout_seconds: float) -> Any:
    """Fork a clone of this process, make it look restored from a snapshot, and return ``job()``'s result.

    The clone sends the result back as JSON through a pipe, where a value that
    JSON cannot encode arrives as its repr(). It ends with os._exit, so it never
    runs the parent's exit handlers or flushes the parent's buffers. A clone
    still running after ``timeout_seconds`` is killed, and the clone is reaped
    before this function returns or raises. Raise HarnessError when the platform
    cannot fork, or when the job raised in the clone or sent no result.
    """
    if not hasattr(os, "fork"):
        raise HarnessError("the clone harness needs os.fork, which this platform lacks; run it on Linux or macOS")
    parent_pid = os.getpid()
    random_state = random.getstate()
    read_end, write_end = os.pipe()
    # Output still buffered here would be written again by the clone.
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock the child. The
        # harness emulates a snapshot of such a process, so the warning is expected here, and
        # the timeout below bounds a clone that does deadlock.
        warnings.filterwarnings(
            "ignore", message=r"This process \(pid=\d+\) is multi-threaded", category=DeprecationWarning
        )
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the clone, which reports through the pipe
        os.close(read_end)
        _run_clone(job, write_end, parent_pid, random_state, timeout_seconds)

    os.close(write_end)
    deadline = time.monotonic() + timeout_seconds
    try:
        data = _read_until_eof(read_end, deadline)
    except TimeoutError:
        _kill_and_reap(pid)
        raise CloneTimeoutError(
            f"clone process {pid} did not report within {timeout_seconds:g} s and was killed", pid
        ) from None
    except BaseException:
        # Interrupted (KeyboardInterrupt, a signal handler's exception): never leave the clone running.
        _kill_and_reap(pid)
        raise
    finally:
        os.close(read_end)
    exit_code = _reap(pid, deadline)
    if not data:
        raise HarnessError(f"clone process {pid} exited with status {exit_code} without reporting a result")
    document = json.loads(data)
    if not document["ok"]:
        raise HarnessError(f"the job raised in clone process {pid}: {document['error']}\n{document['traceback']}")
    return document["result"]


def _run_clone(
    job: Callable[[], Any], write_end: int, parent_pid: int, random_state: Any, timeout_seconds: float
) -> NoReturn:
    exit_code = 0
    try:
        # A backstop for a parent that dies before it can kill this clone: SIGALRM's default
        # action ends the process one second after the parent would have killed it.
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(math.ceil(timeout_seconds) + 1)
        emulate_restore(parent_pid, random_state)
        try:
            document = {"ok": True, "result": job()}
        except BaseException as error:  # reported to the parent, never lost
            document = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        data = json.dumps(document, default=repr).encode()
        view = memoryview(data)
        while view:
            written = os.write(write_end, view)
            view = view[written:]
    except BaseException:  # the parent reports the missing result with the exit status
        exit_code = 1
    finally:
        os._exit(exit_code)


def emulate_restore(parent_pid: int, random_state: Any) -> None:
    """Undo, in a forked child, the differences from a restored snapshot that CPython makes.

    CPython reseeds the global ``random`` generator in every forked child
    (``os.register_at_fork`` in random.py), but a restored MicroVM continues
    from the snapshot's generator state. And a restored MicroVM keeps its
    process id, which ``tempfile``'s name generator and code keyed on the pid
    compare with the pid they saw before. The other at-fork handlers of
    Python 3.11's standard library (threading, logging, concurrent.futures) and
    the asyncio one that Python 3.12 adds reinitialise locks and the running
    event loop and reseed nothing. docs/uniqueness.md lists what stays different.
    """
    random.setstate(random_state)

    def snapshot_pid() -> int:
        return parent_pid

    os.getpid = snapshot_pid


def _read_until_eof(descriptor: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        readable, _, _ = select.select([descriptor], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(descriptor, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int, deadline: float) -> int:
    """Wait for the clone to exit after it closed its pipe; kill it if it lingers past the deadline."""
    while True:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return _kill_and_reap(pid)
        time.sleep(0.005)


def _kill_and_reap(pid: int) -> int:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
