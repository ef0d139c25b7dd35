#!/usr/bin/env python3
"""Measure what this app costs as a MicroVM: memory after /ready, /run latency and throughput.

    python scripts/benchmark.py            # 5 fresh starts, 3 s of load per concurrency level
    python scripts/benchmark.py --quick    # 2 starts, 1 s of load: a smoke run

Each start runs `python -m <package>` as the container's CMD does, on free
loopback ports, and stops it afterwards. Numbers depend on the machine and its
load, so compare runs on one machine. The template's docs/benchmarks.md compares
each framework with a bare app and with AWS's two-server example.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PACKAGE = "{{ cookiecutter.package_name }}"
HOOK_PREFIX = "/aws/lambda-microvms/runtime/v1/"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 10.0) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def process_tree(root: int) -> list[int]:
    """Return ``root`` and every descendant, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def memory_mib(root: int) -> tuple[float, float]:
    """Return RSS and USS in MiB summed over the process tree; USS is private clean plus private dirty."""
    rss = uss = 0
    for pid in process_tree(root):
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    uss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss / 2**20, uss / 2**20


class App:
    """One start of the app, stopped by stop()."""

    def __init__(self) -> None:
        self.app_port, self.hooks_port = free_port(), free_port()
        environ = {
            **os.environ,
            "APP_PORT": str(self.app_port),
            "HOOKS_PORT": str(self.hooks_port),
            "MICROVM_HOST": "127.0.0.1",
        }
        self.process = subprocess.Popen(  # noqa: S603 - runs this project's own package
            [sys.executable, "-m", PACKAGE], env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def hook(self, name: str, body: bytes | None = None) -> int:
        return request(self.hooks_port, "POST", HOOK_PREFIX + name, body)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.hook("ready") == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"/ready did not return 200 within {timeout:g} s; run python -m {PACKAGE} to see why")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def load(port: int, concurrency: int, seconds: float) -> tuple[float, float]:
    """Send GET /token on keep-alive connections for ``seconds``; return requests per second and p99 in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            connection.request("GET", "/token")
            connection.getresponse().read()
            mine.append(time.perf_counter() - started)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    return len(latencies) / seconds, percentile(latencies, 99) * 1000


def wait_for_session(port: int, served_at: list[float]) -> None:
    """Request /session (held at the gate until /run) and record when the response arrived."""
    request(port, "GET", "/session")
    served_at.append(time.perf_counter())


def percentile(values: list[float], rank: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * rank / 100))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 starts and 1 s of load per level: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    options = parser.parse_args(argv)
    starts, seconds = (2, 1.0) if options.quick else (5, 3.0)

    run_ms, first_request_ms, rss, uss = [], [], [], []
    for index in range(starts):
        app = App()
        try:
            app.wait_ready()
            resident, unique = memory_mib(app.process.pid)
            rss.append(resident)
            uss.append(unique)
            # A request that waits at the gate while /run arrives, as the first request after restore does.
            served_at: list[float] = []
            waiter = threading.Thread(target=wait_for_session, args=(app.app_port, served_at))
            waiter.start()
            time.sleep(0.05)
            body = json.dumps({"microvmId": f"microvm-benchmark-{index}", "runHookPayload": ""}).encode()
            started = time.perf_counter()
            status = app.hook("run", body)
            answered = time.perf_counter()
            waiter.join(15)
            if status != 200 or not served_at:
                raise RuntimeError(f"/run returned status {status}, or the request waiting at the gate got no response")
            run_ms.append((answered - started) * 1000)
            first_request_ms.append(max(0.0, served_at[0] - answered) * 1000)
            if index == starts - 1:
                throughput = {level: load(app.app_port, level, seconds) for level in (1, 16)}
                started = time.perf_counter()
                suspend_status = app.hook("suspend")
                suspend_ms = (time.perf_counter() - started) * 1000
        finally:
            app.stop()

    results = {
        "starts": starts,
        "memory_rss_mib": statistics.median(rss),
        "memory_uss_mib": statistics.median(uss),
        "run_ms_median": statistics.median(run_ms),
        "run_ms_max": max(run_ms),
        "first_request_ms_median": statistics.median(first_request_ms),
        "token_rps_c1": throughput[1][0],
        "token_p99_ms_c1": throughput[1][1],
        "token_rps_c16": throughput[16][0],
        "token_p99_ms_c16": throughput[16][1],
        "suspend_ms_after_load": suspend_ms,
        "suspend_status": suspend_status,
    }
    print(f"{PACKAGE} on Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {starts} starts")
    for key, value in results.items():
        print(f"  {key:<26} {value:10.2f}" if isinstance(value, float) else f"  {key:<26} {value:>10}")
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
