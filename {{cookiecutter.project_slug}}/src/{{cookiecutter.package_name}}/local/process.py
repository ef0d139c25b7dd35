"""One app process, started as the container CMD starts it, in its own process group.

The emulator freezes a suspended MicroVM with SIGSTOP and thaws it with
SIGCONT. Signals go to the whole process group, so worker processes forked by
the app freeze and stop with it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .timeline import Timeline

# Lines of app output kept per process, printed when the process breaks a rule.
OUTPUT_TAIL_LINES = 40
# Bytes read from the app's output at a time; a longer line is split.
OUTPUT_CHUNK_BYTES = 64 * 1024


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now; another program may still take it before use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class LaunchConfig:
    """Settings for starting app processes and stopping them."""

    command: Sequence[str]
    # Seconds between two polls of /ready or /validate that returned 503.
    poll_interval_seconds: float = 0.2
    # Seconds a process gets to exit after SIGTERM before SIGKILL.
    stop_timeout_seconds: float = 5.0
    # True prints every line the app writes; False keeps only the last lines for failure reports.
    show_output: bool = False
    environment: Mapping[str, str] = field(default_factory=dict)


class AppProcess:
    """A running app process with its own ports on 127.0.0.1."""

    def __init__(self, label: str, launch: LaunchConfig, timeline: Timeline) -> None:
        self.label = label
        self.launch = launch
        self.timeline = timeline
        self.app_port = free_port()
        self.hooks_port = free_port()
        while self.hooks_port == self.app_port:
            self.hooks_port = free_port()
        self.output: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
        self._process: asyncio.subprocess.Process | None = None
        self._output_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the app process has not been started")
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def wait(self) -> int:
        """Wait for the app process to exit and return its exit code."""
        if self._process is None:
            raise RuntimeError("the app process has not been started")
        return await self._process.wait()

    async def start(self) -> None:
        environment = dict(os.environ)
        environment.update(self.launch.environment)
        environment.update(
            {
                "APP_PORT": str(self.app_port),
                "HOOKS_PORT": str(self.hooks_port),
                # The app binds all interfaces in a MicroVM; on a workstation it stays on loopback.
                "MICROVM_HOST": "127.0.0.1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self._process = await asyncio.create_subprocess_exec(
            *self.launch.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
        self._output_task = asyncio.create_task(self._relay_output(self._process.stdout))

    async def _relay_output(self, stream: asyncio.StreamReader | None) -> None:
        """Read the app's output until it ends, so that the app does not block on a full pipe."""
        if stream is None:
            return
        pending = b""
        while data := await stream.read(OUTPUT_CHUNK_BYTES):
            *lines, pending = (pending + data).split(b"\n")
            if len(pending) >= OUTPUT_CHUNK_BYTES:
                lines.append(pending)
                pending = b""
            for line in lines:
                self._keep_line(line)
        if pending:
            self._keep_line(pending)

    def _keep_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip()
        self.output.append(text)
        if self.launch.show_output:
            self.timeline.say(f"  {self.label} | {text}")

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def freeze(self) -> None:
        """Stop every process of the group (SIGSTOP), as a suspended MicroVM stops running."""
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        """Continue every process of the group (SIGCONT)."""
        self._signal_group(signal.SIGCONT)

    async def stop(self) -> str:
        """Stop the process group: SIGTERM, then SIGKILL after the stop timeout. Return how it ended."""
        if self._process is None:
            return "never started"
        if self._process.returncode is not None:
            outcome = f"had already {describe_exit(self._process.returncode)}"
        else:
            self._signal_group(signal.SIGTERM)
            # A stopped process handles SIGTERM only once it continues.
            self.thaw()
            try:
                code = await asyncio.wait_for(self._process.wait(), self.launch.stop_timeout_seconds)
                outcome = "ended by SIGTERM" if code == -signal.SIGTERM else f"{describe_exit(code)} after SIGTERM"
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
                await self._process.wait()
                outcome = f"killed with SIGKILL {self.launch.stop_timeout_seconds:g} s after SIGTERM"
        # Workers that outlived the app process would keep its ports.
        self._signal_group(signal.SIGKILL)
        if self._output_task is not None:
            try:
                await asyncio.wait_for(self._output_task, 1.0)
            except TimeoutError:
                # wait_for cancelled the relay: a process outside the group keeps the output pipe open.
                pass
        return outcome

    def output_tail(self) -> str:
        return "\n".join(f"  {self.label} | {line}" for line in self.output)


def describe_exit(code: int) -> str:
    """Describe an exit status; asyncio reports death by signal N as -N."""
    if code < 0:
        try:
            return f"ended by {signal.Signals(-code).name}"
        except ValueError:
            return f"ended by signal {-code}"
    return f"exited with code {code}"


def default_command(package: str) -> list[str]:
    """Return the container CMD's command line: ``python -m <package>`` with this interpreter."""
    return [sys.executable, "-m", package]
