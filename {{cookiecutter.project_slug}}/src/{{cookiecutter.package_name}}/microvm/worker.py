"""Apply a lifecycle event inside one serving process, and relay events to worker processes.

The hook server decides what a hook means for the VM. This module does the
part that every process serving the app must do itself. It installs the per-VM
values, reseeds generators, runs the registered callbacks, opens or closes the
request gate and lets requests in flight finish.
"""

from __future__ import annotations

import logging
import pickle
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import state
from .gate import OPEN, SUSPENDED, TERMINATING, get_gate

logger = logging.getLogger("microvm")


@dataclass
class EventResult:
    """The outcome of one event in one process."""

    ok: bool = True
    errors: list[str] = field(default_factory=list)
    # Requests still in flight when /suspend or /terminate stopped waiting for them.
    unfinished_requests: int = 0


def run_callbacks(event: str, deadline: float) -> list[str]:
    """Run the callbacks registered for ``event`` in order, each in its own thread so that
    one that hangs cannot hold the hook past ``deadline`` (monotonic). Return the errors."""
    errors: list[str] = []
    for callback in state.callbacks(event):
        name = getattr(callback, "__qualname__", repr(callback))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            errors.append(f"on_{event} callback {name} was not started: the hook's time ran out")
            continue
        failure: list[BaseException] = []

        def call(callback: Any = callback, failure: list[BaseException] = failure) -> None:
            try:
                callback()
            except BaseException as error:  # reported to the hook, never lost
                failure.append(error)

        thread = threading.Thread(target=call, name=f"microvm-{event}-{name}", daemon=True)
        thread.start()
        thread.join(remaining)
        if thread.is_alive():
            errors.append(f"on_{event} callback {name} did not finish within the hook's timeout")
        elif failure:
            errors.append(f"on_{event} callback {name} raised {type(failure[0]).__name__}: {failure[0]}")
    for message in errors:
        logger.error(message, extra={"event": event})
    return errors


def apply_event(event: str, data: dict[str, Any], deadline: float) -> EventResult:
    """Apply ``event`` in this process; ``deadline`` is a time.monotonic() value."""
    gate = get_gate()
    result = EventResult()
    if event == "run":
        try:
            state.install_vm(data["vm"], data["values"])
            state.reseed_generators()
        except Exception as error:  # fail closed and report the reason
            result.ok = False
            result.errors.append(f"per-VM state could not be installed: {type(error).__name__}: {error}")
            return result
        result.errors = run_callbacks("run", deadline)
        # A failed on_run callback means the app could not set up its per-VM state: fail closed.
        result.ok = not result.errors
        if result.ok:
            gate.set_state(OPEN)
    elif event == "resume":
        state.reseed_generators()
        result.errors = run_callbacks("resume", deadline)
        if data.get("has_vm"):
            gate.set_state(OPEN)
    elif event in ("suspend", "terminate"):
        gate.set_state(SUSPENDED if event == "suspend" else TERMINATING)
        # The platform keeps no connection open across a suspend: end WebSockets and streams cleanly now.
        gate.stop_streams(event)
        result.unfinished_requests = gate.drain(data["drain_deadline"])
        result.errors = run_callbacks(event, deadline)
        if event == "terminate":
            for handler in logging.getLogger().handlers + logger.handlers:
                handler.flush()
    else:
        raise ValueError(f"unknown lifecycle event {event!r}")
    return result


class LocalDispatcher:
    """Deliver events to the one serving process, which is this process."""

    def broadcast(self, event: str, data: dict[str, Any], deadline: float) -> list[EventResult]:
        return [apply_event(event, data, deadline)]

    def close(self) -> None:
        pass


# Frames on the supervisor-worker channel: a 4-byte big-endian length, then a pickle.
# Both ends are processes of this app forked from one parent, so pickle is safe here.
_HEADER = struct.Struct(">I")


def send_frame(connection: socket.socket, message: Any) -> None:
    body = pickle.dumps(message)
    connection.sendall(_HEADER.pack(len(body)) + body)


def receive_frame(connection: socket.socket) -> Any:
    header = _receive_exactly(connection, _HEADER.size)
    (length,) = _HEADER.unpack(header)
    return pickle.loads(_receive_exactly(connection, length))  # noqa: S301 - own forked process only


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the supervisor-worker channel was closed")
        chunks += chunk
    return bytes(chunks)


class ProcessDispatcher:
    """Deliver events to forked worker processes over one socket pair each."""

    def __init__(self, connections: list[socket.socket]) -> None:
        self.connections = connections
        self._lock = threading.Lock()

    def broadcast(self, event: str, data: dict[str, Any], deadline: float) -> list[EventResult]:
        with self._lock:
            pending: dict[socket.socket, int] = {}
            results: list[EventResult | None] = [None] * len(self.connections)
            for index, connection in enumerate(self.connections):
                try:
                    send_frame(connection, (event, data, deadline))
                    pending[connection] = index
                except OSError as error:
                    results[index] = EventResult(ok=False, errors=[f"worker {index} is unreachable: {error}"])
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                readable, _, _ = select.select(list(pending), [], [], remaining)
                for connection in readable:
                    index = pending.pop(connection)
                    try:
                        results[index] = receive_frame(connection)
                    except (OSError, EOFError, pickle.UnpicklingError) as error:
                        results[index] = EventResult(ok=False, errors=[f"worker {index} failed: {error}"])
            for connection, index in pending.items():
                results[index] = EventResult(ok=False, errors=[f"worker {index} did not answer in time"])
                # A late reply would be read as the reply to the next event, so this channel is closed
                # for good: every later send to this worker fails and is reported as unreachable.
                connection.close()
            return [result for result in results if result is not None]

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


def serve_worker_channel(connection: socket.socket) -> None:
    """In a worker process: apply each event the supervisor sends and reply with its result."""
    while True:
        try:
            event, data, deadline = receive_frame(connection)
        except (EOFError, OSError):
            return
        try:
            result = apply_event(event, data, deadline)
        except Exception as error:  # the supervisor must get a reply
            result = EventResult(ok=False, errors=[f"{type(error).__name__}: {error}"])
        try:
            send_frame(connection, result)
        except OSError:
            return
