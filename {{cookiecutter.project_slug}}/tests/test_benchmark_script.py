"""Check that scripts/benchmark.py runs and reports every number; it asserts no speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"


def test_benchmark_quick_run_reports_results(tmp_path: Path) -> None:
    report = tmp_path / "benchmark.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(report.read_text())
    assert results["starts"] == 2
    assert results["suspend_status"] == 200
    for key in ("memory_rss_mib", "memory_uss_mib", "run_ms_median", "token_rps_c1", "token_rps_c16"):
        assert results[key] > 0, key
    assert "token_rps_c16" in completed.stdout
