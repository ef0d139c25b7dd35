"""Tests of scripts/benchmark.py itself: its options, its HTTP client, its memory and target arithmetic.

The benchmark is not run here, because speed is measured by benchmarks and
not by timed tests. These tests show that its parts measure what they claim,
against real servers and processes on loopback, in a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
SCRIPTS_DIR = TEMPLATE_DIR / "scripts"
SCRIPT = SCRIPTS_DIR / "benchmark.py"

# The benchmark is a script with a package beside it, both imported from scripts/.
sys.path.insert(0, str(SCRIPTS_DIR))
import benchmark  # noqa: E402
from benchmarking import load, measure, memory, report, stats  # noqa: E402
from benchmarking.common import BenchmarkError  # noqa: E402


class FramingHandler(BaseHTTPRequestHandler):
    """Respond with each body framing that the benchmark's client must read."""

    protocol_version = "HTTP/1.1"
    server: FramingServer

    def handle(self) -> None:
        # Called once per connection; do_GET once per request on it.
        self.server.count_connection()
        super().handle()

    def do_GET(self) -> None:
        self.server.count_request()
        body = b'{"token": "x"}'
        if self.path == "/length":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(
                b"5\r\n" + body[:5] + b"\r\n" + f"{len(body) - 5:x}\r\n".encode() + body[5:] + b"\r\n0\r\n\r\n"
            )
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        elif self.path == "/no-content":
            self.send_response(204)
            self.end_headers()
        else:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FramingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FramingHandler)
        self.connections = 0
        self.requests = 0
        self._lock = threading.Lock()

    def count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1


@pytest.fixture
def framing_server() -> Iterator[FramingServer]:
    server = FramingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def raw_get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def run_script(*arguments: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_dry_run_bakes_and_plans(tmp_path: Path) -> None:
    result = run_script("--frameworks", "fastapi,flask", "--quick", "--dry-run", "--work-dir", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for framework in ("fastapi", "flask"):
        project = tmp_path / "projects" / framework / "microvm-app"
        assert (project / "src" / "microvm_app" / "microvm.toml").is_file(), framework
    assert "python -m microvm_app" in result.stdout
    assert "bare_fastapi.py" in result.stdout
    assert "aws_example.py" in result.stdout
    bare = [f"bare_{framework}.py" for framework in ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp")]
    for fixture in ("aws_example.py", *bare, "forkserver.py"):
        assert (tmp_path / "fixtures" / fixture).is_file(), fixture


@pytest.mark.parametrize(
    ("arguments", "named_value"),
    [
        pytest.param(["--frameworks", "rails"], "rails", id="unknown-framework"),
        pytest.param(["--frameworks", "fastapi,"], None, id="trailing-comma-accepted"),
        pytest.param(["--run-samples", "0"], "'0'", id="zero-samples"),
        pytest.param(["--load-seconds", "-1"], "'-1'", id="negative-duration"),
        pytest.param(["--load-seconds", "inf"], "'inf'", id="infinite-duration"),
    ],
)
def test_options_validated(arguments: list[str], named_value: str | None) -> None:
    parser = benchmark.build_parser()
    if named_value is None:
        assert parser.parse_args(arguments).frameworks == ("fastapi",)
        return
    result = run_script(*arguments, "--dry-run", timeout=30)
    assert result.returncode == 2
    assert named_value in result.stderr
    assert "for example" in result.stderr


def test_work_dir_that_is_a_file_rejected(tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.write_text("")
    result = run_script("--dry-run", "--work-dir", occupied, timeout=30)
    assert result.returncode == 2
    assert str(occupied) in result.stderr


@pytest.mark.parametrize("path", ["/length", "/chunked", "/no-content"])
def test_client_reuses_connection(framing_server: FramingServer, path: str) -> None:
    port = framing_server.server_address[1]
    client = load.KeepAliveConnection(port)
    statuses = [client.request(raw_get(port, path)) for _ in range(5)]
    client.close()
    assert set(statuses) == ({204} if path == "/no-content" else {200})
    assert framing_server.requests == 5
    assert framing_server.connections == 1


def test_client_reconnects_after_close(framing_server: FramingServer) -> None:
    port = framing_server.server_address[1]
    client = load.KeepAliveConnection(port)
    statuses = [client.request(raw_get(port, "/close")) for _ in range(3)]
    client.close()
    assert statuses == [200, 200, 200]
    assert framing_server.connections == 3


def test_load_stops_at_request_cap(framing_server: FramingServer) -> None:
    result = load.run_load(framing_server.server_address[1], "/length", 4, 50, 30.0)
    assert result.succeeded == 50
    assert result.failed == 0
    assert len(result.latencies) == 50
    assert result.requests_per_second > 0


def test_load_stops_at_time_limit(framing_server: FramingServer) -> None:
    started = time.perf_counter()
    result = load.run_load(framing_server.server_address[1], "/length", 2, 10**9, 0.3)
    assert time.perf_counter() - started < 5
    assert result.succeeded > 0
    assert 0.3 <= result.elapsed_seconds < 5


def test_load_counts_errors_as_failed(framing_server: FramingServer) -> None:
    result = load.run_load(framing_server.server_address[1], "/error", 2, 20, 30.0)
    assert result.succeeded == 0
    assert result.failed == 20
    assert result.failures[0] == "status 500"


def test_memory_sums_process_tree() -> None:
    # The child starts a grandchild, and each of them writes 30 MB of private memory.
    grandchild = "import time; block = bytearray(30_000_000); print('ready', flush=True); time.sleep(60)"
    child = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}], stdout=subprocess.PIPE)\n"
        "p.stdout.readline()\n"
        "block = bytearray(30_000_000)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        usage = memory.memory_usage(process.pid)
        tree = memory.process_tree(process.pid)
    finally:
        for pid in reversed(memory.process_tree(process.pid)):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        process.wait(10)
    assert usage.processes == 2
    assert len(tree) == 2
    assert usage.uss >= 60_000_000
    assert usage.rss >= usage.uss
    assert usage.pss >= usage.uss


def test_logged_run_durations_parsed(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    lines = [
        json.dumps({"event": "hook", "hook": "run", "status": 200, "duration_ms": 1.5}),
        json.dumps({"event": "hook", "hook": "ready", "status": 200, "duration_ms": 9.0}),
        json.dumps({"event": "hook", "hook": "run", "status": 500, "duration_ms": 7.0}),
        "INFO:     Started server process [1]",
        json.dumps({"event": "hook", "hook": "run", "status": 200, "duration_ms": 2.5}),
        '{"event": "hook", "hook": "run", "sta',
    ]
    log.write_text("\n".join(lines) + "\n")
    assert measure.logged_run_durations(log) == [0.0015, 0.0025]


def test_percentile_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert stats.percentile(values, 50) == 50
    assert stats.percentile(values, 99) == 99
    assert stats.percentile(values, 100) == 100
    assert stats.percentile([7.0], 99) == 7
    with pytest.raises(ValueError):
        stats.percentile([], 50)


def make_document(template_uss: int, template_rate: float, run_p99: float, suspend_ms: float) -> dict[str, Any]:
    """Build a results document with one framework, in the shape measure_all returns."""
    mib = 2**20

    def app(kind: str, uss: int, rate: float) -> dict[str, Any]:
        return {
            "kind": kind,
            "memory": {"rss": uss + 10 * mib, "uss": uss, "pss": uss},
            "throughput": {"1": {"requests_per_second": rate}, "16": {"requests_per_second": rate}},
        }

    template = app("template", template_uss, template_rate)
    template["run_forked"] = {
        "count": 200,
        "problem_count": 0,
        "run": {"count": 200, "p50": 1.0, "p99": run_p99},
        "first_request": {"count": 200, "p50": 1.0, "p99": 2.0},
    }
    template["suspend"] = [
        {"slow_seconds": 1.0, "in_flight": 8, "status": 200, "milliseconds": suspend_ms, "timeout_seconds": 5}
    ]
    return {
        "environments": {"flask": {}, "aws-example": {}},
        "apps": {
            "flask": template,
            "flask-bare": app("bare", 100 * mib, 3000.0),
            "aws-example": app("aws-example", 50 * mib, 1000.0),
        },
    }


def target_results(document: dict[str, Any]) -> dict[str, bool]:
    return {row["target"]: row["held"] for row in report.evaluate_targets(document)}


def test_targets_hold_within_limits() -> None:
    results = target_results(make_document(105 * 2**20, 2500.0, 5.0, 900.0))
    assert all(results.values()), results


def test_targets_missed_beyond_limits() -> None:
    # 100 MiB bare app: the allowance is 10 MiB, so 12 MiB more misses; 1.5x misses the 2x throughput target.
    results = target_results(make_document(112 * 2**20, 1500.0, 25.0, 5200.0))
    assert results["memory added to the bare app (USS)"] is False
    assert results["GET /token at concurrency 16, compared with the AWS-style example"] is False
    assert results["/run p99"] is False
    assert results["/suspend with 8 requests of 1 s in flight"] is False
    assert results["first request after /run, p99"] is True


def test_update_docs_replaces_block(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(f"intro\n{report.RESULTS_START}\nold run\n{report.RESULTS_END}\nanalysis\n")
    report.update_docs_page("new run\n", page)
    assert page.read_text() == f"intro\n{report.RESULTS_START}\nnew run\n{report.RESULTS_END}\nanalysis\n"


def test_update_docs_without_markers_fails(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text("no markers here\n")
    with pytest.raises(BenchmarkError, match="benchmark-results:start"):
        report.update_docs_page("new run\n", page)


def test_recorded_run_renders() -> None:
    """The run recorded in docs/benchmarks.md came from this script's JSON, which must still render."""
    recorded = TEMPLATE_DIR / "docs" / "benchmarks.json"
    document = json.loads(recorded.read_text(encoding="utf-8"))
    markdown = report.render_markdown(document)
    page = (TEMPLATE_DIR / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert markdown in page, (
        "docs/benchmarks.md does not match its recorded results; "
        "run: python3 scripts/benchmark.py --render docs/benchmarks.json --update-docs"
    )
