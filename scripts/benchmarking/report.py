"""Check the targets and render the results as Markdown for docs/benchmarks.md."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import AWS_EXAMPLE, BARE, FRAMEWORK_TITLES, ROOT, TEMPLATE, BenchmarkError

DOCS_PAGE = ROOT / "docs" / "benchmarks.md"

# Targets. The memory allowance reads "8 MB" as 8,000,000 bytes, the stricter reading.
MEMORY_ALLOWANCE_FRACTION = 0.10
MEMORY_ALLOWANCE_BYTES = 8_000_000
RUN_P99_LIMIT_MS = 20.0
FIRST_REQUEST_P99_LIMIT_MS = 20.0
THROUGHPUT_RATIO_TARGETS = {
    "fastapi": 3.0,
    "flask": 2.0,
    "django": 2.0,
    "litestar": 3.0,
    "starlette": 3.0,
    "aiohttp": 3.0,
}

KIND_LABELS = {
    TEMPLATE: "Template app",
    BARE: "Bare app (no lifecycle layer)",
    AWS_EXAMPLE: "AWS-style example",
}


def target_row(
    framework: str, target: str, measured: str, limit: str, ratio: float | None, held: bool
) -> dict[str, Any]:
    """Return one checked target: what was measured, the limit, the ratio of the two and whether it held."""
    return {
        "framework": framework,
        "target": target,
        "measured": measured,
        "limit": limit,
        "ratio": None if ratio is None else round(ratio, 3),
        "held": held,
    }


def memory_targets(framework: str, template: dict[str, Any], bare: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for metric in ("rss", "uss"):
        extra = template["memory"][metric] - bare["memory"][metric]
        allowance = max(MEMORY_ALLOWANCE_FRACTION * bare["memory"][metric], MEMORY_ALLOWANCE_BYTES)
        rows.append(
            target_row(
                framework,
                f"memory added to the bare app ({metric.upper()})",
                f"{extra / 2**20:+.1f} MiB",
                f"≤ {allowance / 2**20:.1f} MiB (10 % or 8 MB)",
                extra / allowance,
                extra <= allowance,
            )
        )
    return rows


def run_targets(framework: str, template: dict[str, Any]) -> list[dict[str, Any]]:
    forked = template["run_forked"]
    good = forked["count"] - forked["problem_count"]
    rows = [
        target_row(
            framework,
            "every /run sample served the waiting request with the new identity",
            f"{good} of {forked['count']}",
            f"{forked['count']} of {forked['count']}",
            None,
            forked["problem_count"] == 0,
        )
    ]
    if forked["run"]["count"]:
        p99 = forked["run"]["p99"]
        rows.append(
            target_row(
                framework,
                "/run p99",
                f"{p99:.2f} ms",
                f"< {RUN_P99_LIMIT_MS:g} ms",
                p99 / RUN_P99_LIMIT_MS,
                p99 < RUN_P99_LIMIT_MS,
            )
        )
    if forked["first_request"]["count"]:
        p99 = forked["first_request"]["p99"]
        rows.append(
            target_row(
                framework,
                "first request after /run, p99",
                f"{p99:.2f} ms",
                f"≤ {FIRST_REQUEST_P99_LIMIT_MS:g} ms",
                p99 / FIRST_REQUEST_P99_LIMIT_MS,
                p99 <= FIRST_REQUEST_P99_LIMIT_MS,
            )
        )
    return rows


def throughput_target(framework: str, template: dict[str, Any], aws: dict[str, Any]) -> dict[str, Any]:
    template_rate = template["throughput"]["16"]["requests_per_second"]
    aws_rate = aws["throughput"]["16"]["requests_per_second"]
    required_ratio = THROUGHPUT_RATIO_TARGETS[framework]
    ratio = template_rate / aws_rate if aws_rate else math.inf
    return target_row(
        framework,
        "GET /token at concurrency 16, compared with the AWS-style example",
        f"{ratio:.2f} times ({template_rate:.0f} vs {aws_rate:.0f} req/s)",
        f"≥ {required_ratio:g} times",
        ratio / required_ratio,
        ratio >= required_ratio,
    )


def suspend_targets(framework: str, template: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for case in template["suspend"]:
        limit_ms = case["timeout_seconds"] * 1000
        rows.append(
            target_row(
                framework,
                f"/suspend with {case['in_flight']} requests of {case['slow_seconds']:g} s in flight",
                f"{case['milliseconds']:.0f} ms, status {case['status']}",
                f"200 within {case['timeout_seconds']} s",
                case["milliseconds"] / limit_ms,
                case["status"] == 200 and case["milliseconds"] < limit_ms,
            )
        )
    return rows


def evaluate_targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Check each framework's template app against the targets; return one row per check."""
    apps = document["apps"]
    rows: list[dict[str, Any]] = []
    for framework in (name for name in document["environments"] if name != AWS_EXAMPLE):
        template = apps[framework]
        rows += memory_targets(framework, template, apps[f"{framework}-bare"])
        rows += run_targets(framework, template)
        rows.append(throughput_target(framework, template, apps[AWS_EXAMPLE]))
        rows += suspend_targets(framework, template)
    return rows


def machine_info(python: Path) -> dict[str, Any]:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.partition(":")[2].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    python_version = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": python_version or "unknown",
    }


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join(["python3", str(shown), *sys.argv[1:]])


def template_commit() -> str:
    def git(*arguments: str) -> str:
        result = subprocess.run(["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    return commit + (" with uncommitted changes" if git("status", "--porcelain") else "")


def counted(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def mib(size: float) -> str:
    return f"{size / 2**20:.1f}"


def p50_p99(summary: dict[str, Any]) -> str:
    if not summary.get("count"):
        return "no samples"
    return f"{summary['p50']:.2f} / {summary['p99']:.2f}"


NOT_APPLICABLE = "n/a"


def memory_cells(columns: list[dict[str, Any]], metric: str) -> list[str]:
    return [mib(app["memory"][metric]) for app in columns]


def installed_cells(environments: dict[str, Any], framework: str) -> list[str]:
    template_env = environments[framework]
    dependencies = mib(template_env["dependencies_bytes"])
    return [
        f"{dependencies} + {template_env['package_bytes'] / 1024:.0f} KiB package",
        f"{dependencies} (same environment)",
        mib(environments[AWS_EXAMPLE]["dependencies_bytes"]),
    ]


def run_cells(columns: list[dict[str, Any]], key: str) -> list[str]:
    return [p50_p99(app[key]["run"]) if key in app else NOT_APPLICABLE for app in columns]


def run_in_app_cells(columns: list[dict[str, Any]]) -> list[str]:
    """Render the /run durations that the template app's forked servers logged themselves."""
    cells = []
    for app in columns:
        logged = app.get("run_forked", {}).get("run_in_app")
        cells.append(f"{p50_p99(logged)} ({logged.get('count', 0)} logged)" if logged else NOT_APPLICABLE)
    return cells


def first_request_cells(columns: list[dict[str, Any]]) -> list[str]:
    cells = []
    for app in columns:
        if "run_forked" not in app:
            cells.append(f"{NOT_APPLICABLE} (no hooks)")
        elif app["kind"] == TEMPLATE:
            cells.append(p50_p99(app["run_forked"]["first_request"]))
        else:
            forked = app["run_forked"]
            total = forked["count"] - forked["problem_count"]
            without_identity = total - forked["identity_matches"]
            cells.append(
                f"no gate: {forked['served_before_run']} of {total} served before /run, "
                f"{without_identity} without the VM's id"
            )
    return cells


def throughput_cells(columns: list[dict[str, Any]], concurrency: str) -> list[str]:
    cells = []
    for app in columns:
        measured = app["throughput"][concurrency]
        failed = f", {measured['failed']} failed" if measured["failed"] else ""
        p99 = measured["latency"].get("p99", 0)
        cells.append(f"{measured['requests_per_second']:.0f} req/s, p99 {p99:.2f} ms{failed}")
    return cells


def suspend_cells(columns: list[dict[str, Any]], index: int) -> list[str]:
    cells = []
    for app in columns:
        if "suspend" not in app:
            cells.append(f"{NOT_APPLICABLE} (no hooks)")
            continue
        case = app["suspend"][index]
        unfinished = case["unfinished_requests"]
        detail = f"{unfinished} unfinished" if unfinished is not None else "does not wait"
        cells.append(f"{case['milliseconds']:.0f} ms, status {case['status']}, {detail}")
    return cells


def render_framework_table(document: dict[str, Any], framework: str) -> list[str]:
    """Render one framework's measurements as a Markdown table with a column per app."""
    apps = document["apps"]
    columns = [apps[framework], apps[f"{framework}-bare"], apps[AWS_EXAMPLE]]
    template = columns[0]
    rows = [
        ("Memory after /ready, RSS (MiB)", memory_cells(columns, "rss")),
        ("Memory after /ready, USS (MiB)", memory_cells(columns, "uss")),
        ("Installed runtime dependencies (MiB)", installed_cells(document["environments"], framework)),
        (f"/run p50 / p99 (ms), {template['run_forked']['count']} forked servers", run_cells(columns, "run_forked")),
        (f"/run p50 / p99 (ms), {template['run_fresh']['count']} fresh interpreters", run_cells(columns, "run_fresh")),
        ("/run inside the app, from its hook log, forked servers, p50 / p99 (ms)", run_in_app_cells(columns)),
        ("Request sent before /run: served after /run's response, p50 / p99 (ms)", first_request_cells(columns)),
        ("GET /token, 1 connection", throughput_cells(columns, "1")),
        ("GET /token, 16 connections", throughput_cells(columns, "16")),
    ]
    for index, case in enumerate(template.get("suspend", [])):
        label = f"/suspend, {case['in_flight']} requests of {case['slow_seconds']:g} s in flight"
        rows.append((label, suspend_cells(columns, index)))

    lines = [
        f"### {FRAMEWORK_TITLES[framework]}",
        "",
        "| Measure | " + " | ".join(KIND_LABELS[kind] for kind in (TEMPLATE, BARE, AWS_EXAMPLE)) + " |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return lines


def render_run_summary(document: dict[str, Any]) -> list[str]:
    """Render when, where and how the run was measured."""
    machine = document["machine"]
    run = document["run"]
    plan = run["plan"]
    load_start = " ".join(f"{value:.2f}" for value in run["load_average_start"])
    load_end = " ".join(f"{value:.2f}" for value in run["load_average_end"])
    return [
        f"Recorded {run['started_utc']}; the run took {run['duration_seconds']:.0f} s.",
        "",
        f"- Command: `{run['command']}`",
        f"- Template commit: {run['template_commit']}",
        f"- Machine: {machine['nproc']} CPUs (`nproc`), {machine['cpu_model']}, {machine['memory_gib']} GiB memory, "
        f"Linux {machine['kernel']}, Python {machine['python']}",
        f"- Load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end. Other jobs share this "
        "machine, so throughput and tail latencies vary between runs.",
        f"- Samples per app: /run on {counted(plan['run_samples'], 'forked server')} and "
        f"{counted(plan['fresh_run_samples'], 'fresh interpreter')}; memory of "
        f"{counted(plan['memory_samples'], 'fresh process', 'fresh processes')} (median shown); "
        f"{plan['load_seconds']:g} s of load per concurrency over {counted(plan['load_rounds'], 'round')}, "
        f"at most {plan['max_requests']} requests per load run.",
    ]


def render_targets(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "### Targets",
        "",
        "| Framework | Target | Measured | Limit | Ratio to limit | Held |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        held = "yes" if row["held"] else "**no**"
        lines.append(
            f"| {row['framework']} | {row['target']} | {row['measured']} | {row['limit']} | {ratio} | {held} |"
        )
    return lines


def render_problems(document: dict[str, Any]) -> list[str]:
    problems = [
        f"- {name}: {problem}"
        for name, app in document["apps"].items()
        for key in ("run_forked", "run_fresh")
        for problem in app.get(key, {}).get("problems", [])
    ]
    return ["", "Problems seen in /run samples:", "", *problems] if problems else []


def render_markdown(document: dict[str, Any]) -> str:
    """Render the results document as the Markdown block that docs/benchmarks.md records."""
    lines = [*render_run_summary(document), ""]
    for framework in (name for name in document["environments"] if name != AWS_EXAMPLE):
        lines += [*render_framework_table(document, framework), ""]
    lines += render_targets(document["targets"])
    lines += render_problems(document)
    return "\n".join(lines) + "\n"


def read_results(path: Path) -> dict[str, Any]:
    """Read a results file that an earlier run wrote with --json."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BenchmarkError(f"cannot read the results file {path}: {error}; give a file written by --json") from error
    if not isinstance(document, dict) or not {"machine", "run", "environments", "apps", "targets"} <= document.keys():
        raise BenchmarkError(f"{path} is not a results file of this script; give a file written by --json")
    return document


RESULTS_START = "<!-- benchmark-results:start -->"


RESULTS_END = "<!-- benchmark-results:end -->"


def update_docs_page(markdown: str, page: Path = DOCS_PAGE) -> None:
    """Replace the text between the result markers of the docs page with ``markdown``."""
    text = page.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(RESULTS_START) + r".*?" + re.escape(RESULTS_END), re.DOTALL)
    if not pattern.search(text):
        raise BenchmarkError(
            f"{page} has no {RESULTS_START} ... {RESULTS_END} block; add the two markers where the run belongs"
        )
    page.write_text(pattern.sub(lambda _: f"{RESULTS_START}\n{markdown}{RESULTS_END}", text, count=1), encoding="utf-8")
