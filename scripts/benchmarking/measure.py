"""The measurements: memory, /run latency, GET /token throughput and /suspend under load."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .common import LOOPBACK, TEMPLATE, BenchmarkError, Plan
from .load import LoadResult, run_load
from .memory import memory_usage
from .servers import (
    App,
    Server,
    ServerStarter,
    call_hook,
    fresh_starter,
    http_request,
    run_body,
    start_ready,
    started,
)
from .stats import summary_ms

# Requests in flight while /suspend is measured: the template's waitress runs 8
# threads per worker, so 8 slow requests keep every WSGI thread busy.
SLOW_REQUESTS_IN_FLIGHT = 8

# Seconds each slow request sleeps: one case that drains within the /suspend
# timeout, one that outlasts it.
SLOW_SECONDS_DRAINED = 1.0
SLOW_SECONDS_OUTLASTING = 20.0

# How long a request sent before /run waits before /run is sent, so that it is
# surely waiting at the gate.
GATE_SETTLE_SECONDS = 0.02

# Time after readiness before memory is read, so that the warm-up's threads have exited.
MEMORY_SETTLE_SECONDS = 0.3


def measure_memory(app: App, samples: int, log_dir: Path) -> dict[str, Any]:
    """Measure RSS, USS and PSS of fresh processes of ``app`` once they are ready, before /run.

    The template app is measured after POST /ready returns 200, which it does once its
    own warm-up requests (GET /healthz, GET /token) are served. The baselines get
    the same two requests first, so that each has served the same routes.
    """
    measured: list[dict[str, Any]] = []
    start = fresh_starter(app, app.arguments, log_dir, f"{app.name}-memory")
    for _ in range(samples):
        began = time.perf_counter()
        with started(app, start) as server:
            ready_seconds = time.perf_counter() - began
            if not app.warms_itself:
                for path in ("/healthz", "/token"):
                    status, body = http_request(server.ports.app, "GET", path)
                    if status != 200:
                        raise BenchmarkError(
                            f"{app.name}: GET {path} returned status {status} {body[:200]!r}; see {server.log_path}"
                        )
            time.sleep(MEMORY_SETTLE_SECONDS)
            usage = memory_usage(server.pid)
        measured.append({**asdict(usage), "ready_seconds": round(ready_seconds, 3)})
    return {
        "samples": measured,
        "rss": statistics.median(sample["rss"] for sample in measured),
        "uss": statistics.median(sample["uss"] for sample in measured),
        "pss": statistics.median(sample["pss"] for sample in measured),
        "processes": measured[-1]["processes"],
        "ready_seconds": statistics.median(sample["ready_seconds"] for sample in measured),
    }


@dataclass
class RunSample:
    """One /run call on a server that has seen no /run before."""

    run_seconds: float
    # When the request sent before /run got its response, relative to when /run's response arrived.
    first_request_seconds: float | None
    served_before_run: bool
    identity_matches: bool
    problem: str | None = None


def run_sample(app: App, server: Server) -> RunSample:
    """Send GET /session, let it wait at the gate, then POST /run; time both responses."""
    microvm_id = f"microvm-{uuid.uuid4()}"
    sent = threading.Event()
    outcome: dict[str, Any] = {}

    def request_before_run() -> None:
        connection = http.client.HTTPConnection(LOOPBACK, server.ports.app, timeout=30)
        try:
            connection.request("GET", "/session")
            sent.set()
            response = connection.getresponse()
            body = response.read()
            outcome.update(done=time.perf_counter(), status=response.status, body=body)
        except (OSError, http.client.HTTPException) as error:
            outcome["error"] = f"{type(error).__name__}: {error}"
        finally:
            sent.set()
            connection.close()

    waiter = threading.Thread(target=request_before_run, daemon=True)
    waiter.start()
    sent.wait(10)
    time.sleep(GATE_SETTLE_SECONDS)
    before_run = time.perf_counter()
    try:
        status, body = call_hook(server.ports, "run", run_body(microvm_id))
    except (OSError, http.client.HTTPException) as error:
        return RunSample(0.0, None, False, False, problem=f"/run failed: {type(error).__name__}: {error}")
    run_returned = time.perf_counter()
    waiter.join(30)

    problem = None
    if status != 200:
        problem = f"/run returned status {status} {body[:200]!r}"
    elif "error" in outcome or "done" not in outcome:
        problem = f"GET /session sent before /run failed: {outcome.get('error', 'no response within 30 s')}"
    elif outcome["status"] != 200:
        problem = f"GET /session sent before /run returned status {outcome['status']} {outcome['body'][:200]!r}"
    if problem:
        return RunSample(run_returned - before_run, None, False, False, problem=problem)
    try:
        seen_id = json.loads(outcome["body"]).get("microvm_id")
    except ValueError:
        seen_id = None
    identity_matches = seen_id == microvm_id
    if app.kind == TEMPLATE and not identity_matches:
        problem = f"GET /session sent before /run saw microvm_id {seen_id!r}, expected {microvm_id!r}"
    return RunSample(
        run_seconds=run_returned - before_run,
        first_request_seconds=outcome["done"] - run_returned,
        served_before_run=outcome["done"] < before_run,
        identity_matches=identity_matches,
        problem=problem,
    )


def measure_run(app: App, start: ServerStarter, count: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Take ``count`` /run samples, each on a new server that is past /ready."""
    samples: list[RunSample] = []
    log_paths: set[Path] = set()
    for index in range(count):
        with started(app, start) as server:
            samples.append(run_sample(app, server))
            log_paths.add(server.log_path)
        if (index + 1) % 50 == 0:
            progress(f"{app.name}: {index + 1}/{count} samples")

    good = [sample for sample in samples if sample.problem is None]
    result: dict[str, Any] = {
        "count": count,
        "run": summary_ms([sample.run_seconds for sample in good]),
        "first_request": summary_ms(
            [sample.first_request_seconds for sample in good if sample.first_request_seconds is not None]
        ),
        "served_before_run": sum(sample.served_before_run for sample in good),
        "identity_matches": sum(sample.identity_matches for sample in good),
        "problems": [sample.problem for sample in samples if sample.problem][:10],
        "problem_count": sum(1 for sample in samples if sample.problem),
    }
    if app.kind == TEMPLATE:
        result["run_in_app"] = summary_ms([seconds for path in log_paths for seconds in logged_run_durations(path)])
    return result


def logged_run_durations(log_path: Path) -> list[float]:
    """Return the durations, in seconds, of the /run calls that returned 200, from a template app's JSON log.

    The hook server logs each call after sending its response, so a server
    stopped right after its /run may not have logged it, and the list can be
    shorter than the number of samples.
    """
    durations = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # uvicorn's and waitress's own lines, and a line cut off by a kill
        if isinstance(entry, dict) and entry.get("hook") == "run" and entry.get("status") == 200:
            durations.append(float(entry["duration_ms"]) / 1000)
    return durations


def measure_throughput(
    apps: list[App], plan: Plan, log_dir: Path, progress: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Measure GET /token at each concurrency, on one fresh server per app, past /run.

    The apps are measured in turns, each round giving every app and concurrency
    ``load_seconds / load_rounds``, so that a burst of load from other jobs on
    the machine spreads over all apps instead of hitting one. The rate reported
    is the median of the rounds' rates; the latency percentiles cover every
    request of every round.
    """
    servers: dict[str, Server] = {}
    try:
        for app in apps:
            server = start_ready(app, fresh_starter(app, app.arguments, log_dir, f"{app.name}-load"))
            servers[app.name] = server
            if app.has_hooks:
                status, body = call_hook(server.ports, "run", run_body(f"microvm-{uuid.uuid4()}"))
                if status != 200:
                    raise BenchmarkError(
                        f"{app.name}: /run returned status {status} {body[:200]!r}; see {server.log_path}"
                    )
            status, body = http_request(server.ports.app, "GET", "/token")
            if status != 200:
                raise BenchmarkError(
                    f"{app.name}: GET /token returned status {status} {body[:200]!r} after /run; see {server.log_path}"
                )
            # Warm-up, not recorded: connection setup, first calls into each code path.
            run_load(server.ports.app, "/token", max(plan.concurrencies), plan.max_requests, 0.5)
        totals = {app.name: {c: LoadResult(c) for c in plan.concurrencies} for app in apps}
        round_rates: dict[str, dict[int, list[float]]] = {app.name: {c: [] for c in plan.concurrencies} for app in apps}
        per_round = plan.load_seconds / plan.load_rounds
        for round_index in range(plan.load_rounds):
            for app in apps:
                for concurrency in plan.concurrencies:
                    result = run_load(servers[app.name].ports.app, "/token", concurrency, plan.max_requests, per_round)
                    totals[app.name][concurrency].merge(result)
                    round_rates[app.name][concurrency].append(result.requests_per_second)
            progress(f"load round {round_index + 1}/{plan.load_rounds} done")
    finally:
        for server in servers.values():
            server.stop()
    return {
        name: {
            str(concurrency): {
                # The median of the rounds, so that one round slowed by another job does not set the result.
                "requests_per_second": round(statistics.median(round_rates[name][concurrency]), 1),
                "rounds_requests_per_second": [round(rate, 1) for rate in round_rates[name][concurrency]],
                "succeeded": result.succeeded,
                "failed": result.failed,
                "seconds": round(result.elapsed_seconds, 3),
                "latency": summary_ms(result.latencies),
                "failures": result.failures,
            }
            for concurrency, result in by_concurrency.items()
        }
        for name, by_concurrency in totals.items()
    }


def send_slow_requests(port: int, seconds: float, count: int) -> tuple[list[threading.Thread], list[dict[str, Any]]]:
    """Start ``count`` GET /slow requests in threads; return once every request is sent."""
    outcomes: list[dict[str, Any]] = [{} for _ in range(count)]
    sent = [threading.Event() for _ in range(count)]

    def slow_request(index: int) -> None:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=seconds + 30)
        try:
            connection.request("GET", f"/slow?seconds={seconds:g}")
            sent[index].set()
            response = connection.getresponse()
            response.read()
            outcomes[index]["status"] = response.status
        except (OSError, http.client.HTTPException) as error:
            outcomes[index]["error"] = f"{type(error).__name__}: {error}"
        finally:
            sent[index].set()
            connection.close()

    threads = [threading.Thread(target=slow_request, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for event in sent:
        event.wait(10)
    return threads, outcomes


def measure_suspend(app: App, timeout_seconds: int | None, plan: Plan, log_dir: Path) -> list[dict[str, Any]]:
    """Time POST /suspend while every WSGI thread is busy with a slow request.

    Two cases: slow requests that end within the hook's time, which /suspend
    should wait for, and slow requests that outlast it, where /suspend must stop
    waiting and still return 200 in time. The template app is started through
    its tests' lifecycle_server.py, which adds GET /slow inside the request gate.
    """
    assert app.suspend_arguments is not None
    cases = [SLOW_SECONDS_DRAINED] + ([SLOW_SECONDS_OUTLASTING] if plan.suspend_outlasting_case else [])
    results: list[dict[str, Any]] = []
    start = fresh_starter(app, app.suspend_arguments, log_dir, f"{app.name}-suspend")
    with started(app, start) as server:
        status, body = call_hook(server.ports, "run", run_body(f"microvm-{uuid.uuid4()}"))
        if status != 200:
            raise BenchmarkError(f"{app.name}: /run returned status {status} {body[:200]!r}; see {server.log_path}")
        for slow_seconds in cases:
            threads, outcomes = send_slow_requests(server.ports.app, slow_seconds, SLOW_REQUESTS_IN_FLIGHT)
            # Let every request reach its handler before /suspend arrives.
            time.sleep(0.2)
            hook_timeout = (timeout_seconds or 60) + 10
            began = time.perf_counter()
            status, body = call_hook(server.ports, "suspend", timeout=hook_timeout)
            suspend_seconds = time.perf_counter() - began
            try:
                response_body = json.loads(body)
            except ValueError:
                response_body = {}
            case: dict[str, Any] = {
                "slow_seconds": slow_seconds,
                "in_flight": SLOW_REQUESTS_IN_FLIGHT,
                "status": status,
                "milliseconds": round(suspend_seconds * 1000, 1),
                "unfinished_requests": response_body.get("unfinishedRequests"),
                "timeout_seconds": timeout_seconds,
            }
            if slow_seconds == SLOW_SECONDS_DRAINED:
                for thread in threads:
                    thread.join(slow_seconds + 30)
                case["slow_requests_succeeded"] = sum(1 for outcome in outcomes if outcome.get("status") == 200)
                resume_status, _ = call_hook(server.ports, "resume")
                token_status, _ = http_request(server.ports.app, "GET", "/token")
                case["resume_status"] = resume_status
                case["token_status_after_resume"] = token_status
            results.append(case)
    return results
