#!/usr/bin/env python3
"""Benchmark every generated app against two baselines and check the performance targets.

    python3 scripts/benchmark.py                      # full run, about 5 minutes on 2 CPUs
    python3 scripts/benchmark.py --quick              # smaller samples, about 2 minutes
    python3 scripts/benchmark.py --frameworks fastapi --dry-run   # bake and check, measure nothing

For each framework the script bakes the template and installs the runtime
dependencies into a fresh virtual environment with uv. It then measures three
apps in one run. The template app is the generated project. The bare app has
the same routes on the same server without the lifecycle layer. The AWS-style
example is a minimal two-server Flask app shaped like AWS's getting-started
example. docs/benchmarks.md explains each measurement and records a run.

This file contains the options and the order of the run. The package
``benchmarking`` next to it contains the parts, and ``benchmark_baselines``
contains the baseline apps that the run copies. Every server listens on
127.0.0.1 on a port the kernel picked. The script needs Linux (/proc),
cookiecutter and uv, which it looks for next to the running interpreter, then
on PATH, then in this repository's .venv.

Exit status: 0 when every target held, 1 when a target was missed, 2 when the
benchmark could not run (invalid option, missing tool, a server that failed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarking.common import AWS_EXAMPLE, FRAMEWORKS, ROOT, BenchmarkError, Plan
from benchmarking.environments import (
    AWS_EXAMPLE_REQUIREMENTS,
    Project,
    bake,
    copy_fixtures,
    copy_template,
    create_environment,
    install,
    site_packages,
    tree_size,
)
from benchmarking.measure import (
    SLOW_REQUESTS_IN_FLIGHT,
    measure_memory,
    measure_run,
    measure_suspend,
    measure_throughput,
)
from benchmarking.report import (
    DOCS_PAGE,
    command_line,
    evaluate_targets,
    machine_info,
    read_results,
    render_markdown,
    template_commit,
    update_docs_page,
)
from benchmarking.servers import App, ForkServer, aws_example_app, bare_app, forked_starter, fresh_starter, template_app

DEFAULT_WORK_DIR = ROOT / ".cache" / "benchmark"


def parse_frameworks(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FRAMEWORKS]
    if not names or unknown:
        invalid = ", ".join(unknown) if unknown else repr(text)
        raise argparse.ArgumentTypeError(
            f"invalid framework {invalid}; use a comma-separated list of {', '.join(FRAMEWORKS)}, "
            "for example --frameworks fastapi,flask"
        )
    return tuple(dict.fromkeys(names))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}; use a whole number of 1 or more, for example 50")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; use a number of seconds above 0, for example 2.5")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Sample counts default to the full run's values, or to --quick's when it is given.",
    )
    parser.add_argument(
        "--frameworks",
        type=parse_frameworks,
        default=FRAMEWORKS,
        help=f"comma-separated frameworks to bake and measure (default: {','.join(FRAMEWORKS)})",
    )
    parser.add_argument("--quick", action="store_true", help="smaller samples and shorter load runs")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="bake the projects, copy and compile the baselines, print the plan, and measure nothing",
    )

    samples = parser.add_argument_group("sample sizes")
    samples.add_argument("--run-samples", type=positive_int, help="/run samples from forked processes (full: 200)")
    samples.add_argument(
        "--fresh-run-samples", type=positive_int, help="/run samples from fresh interpreters (full: 20)"
    )
    samples.add_argument("--memory-samples", type=positive_int, help="fresh processes measured per app (full: 3)")
    samples.add_argument(
        "--load-seconds",
        type=positive_float,
        help="seconds of GET /token load per app and concurrency, split over the rounds (full: 6)",
    )
    samples.add_argument("--max-requests", type=positive_int, help="cap on requests per load run (full: 100000)")

    paths = parser.add_argument_group("paths")
    paths.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help=f"folder for projects, environments, logs and results (default: {DEFAULT_WORK_DIR.relative_to(ROOT)})",
    )
    paths.add_argument(
        "--python",
        type=Path,
        default=Path(sys.executable),
        help="interpreter for the benchmark environments (default: the one running this script)",
    )

    output = parser.add_argument_group("results")
    output.add_argument("--json", type=Path, help="write the raw results here (default: WORK_DIR/results.json)")
    output.add_argument("--markdown", type=Path, help="write the report here (default: WORK_DIR/results.md)")
    output.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: render the report of a results file written by an earlier run",
    )
    output.add_argument(
        "--update-docs",
        action="store_true",
        help=f"replace the recorded run in {DOCS_PAGE.relative_to(ROOT)} with this run's report",
    )
    return parser


def make_plan(options: argparse.Namespace) -> Plan:
    quick = options.quick
    return Plan(
        frameworks=options.frameworks,
        run_samples=options.run_samples or (30 if quick else 200),
        fresh_run_samples=options.fresh_run_samples or (3 if quick else 20),
        memory_samples=options.memory_samples or (1 if quick else 3),
        load_seconds=options.load_seconds or (1.5 if quick else 6.0),
        load_rounds=1 if quick else 5,
        max_requests=options.max_requests or (20_000 if quick else 100_000),
        suspend_outlasting_case=not quick,
    )


@dataclass
class Setup:
    """The apps of a run, with the baked projects, the baseline apps and their environments."""

    fixtures: Path
    projects: list[Project]
    aws_venv: Path
    aws_installed: list[str]
    apps: list[App]


def prepare(plan: Plan, work_dir: Path, python: Path, progress: Callable[[str], None]) -> Setup:
    """Copy the baselines, bake and install each framework's project, and build the list of apps."""
    fixtures = copy_fixtures(work_dir)
    template_copy = copy_template(work_dir)
    projects: list[Project] = []
    for framework in plan.frameworks:
        progress(f"baking and installing {framework}")
        project = bake(framework, template_copy, work_dir)
        install(project, python)
        projects.append(project)

    progress("installing the AWS-style example's environment")
    aws_venv = work_dir / "envs" / AWS_EXAMPLE
    aws_installed = create_environment(aws_venv, python, list(AWS_EXAMPLE_REQUIREMENTS), fixtures)

    apps: list[App] = []
    for project in projects:
        apps += [template_app(project), bare_app(project, fixtures)]
    apps.append(aws_example_app(aws_venv, fixtures))
    return Setup(fixtures, projects, aws_venv, aws_installed, apps)


def measure_apps(setup: Setup, plan: Plan, log_dir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    """Run every measurement on every app; return the results by app name."""
    results: dict[str, dict[str, Any]] = {
        app.name: {"kind": app.kind, "framework": app.name.split("-")[0] if app.kind != AWS_EXAMPLE else None}
        for app in setup.apps
    }
    hooked_apps = [app for app in setup.apps if app.has_hooks]

    for app in setup.apps:
        progress(f"memory: {app.name}")
        results[app.name]["memory"] = measure_memory(app, plan.memory_samples, log_dir)

    for app in hooked_apps:
        progress(f"/run from forked processes: {app.name}")
        forkserver = ForkServer(app, setup.fixtures, log_dir)
        try:
            results[app.name]["run_forked"] = measure_run(app, forked_starter(forkserver), plan.run_samples, progress)
            results[app.name]["run_forked"]["preload_seconds"] = forkserver.preload_seconds
        finally:
            forkserver.close()
        progress(f"/run from fresh interpreters: {app.name}")
        start = fresh_starter(app, app.arguments, log_dir, f"{app.name}-fresh")
        results[app.name]["run_fresh"] = measure_run(app, start, plan.fresh_run_samples, progress)

    progress("GET /token throughput")
    for name, measured in measure_throughput(setup.apps, plan, log_dir, progress).items():
        results[name]["throughput"] = measured

    timeouts = {project.framework: project.suspend_timeout_seconds for project in setup.projects}
    for app in hooked_apps:
        progress(f"/suspend under load: {app.name}")
        results[app.name]["suspend"] = measure_suspend(app, timeouts.get(app.name), plan, log_dir)
    return results


def describe_environments(setup: Setup) -> dict[str, Any]:
    """Return what each environment installed and how large it is, by framework and for the AWS-style example."""
    environments: dict[str, Any] = {
        project.framework: {
            "requirements": project.requirements,
            "installed": project.installed,
            "dependencies_bytes": project.dependencies_bytes,
            "package_bytes": project.package_bytes,
            "suspend_timeout_seconds": project.suspend_timeout_seconds,
        }
        for project in setup.projects
    }
    environments[AWS_EXAMPLE] = {
        "requirements": " ".join(AWS_EXAMPLE_REQUIREMENTS),
        "installed": setup.aws_installed,
        "dependencies_bytes": tree_size(site_packages(setup.aws_venv)),
        "package_bytes": (setup.fixtures / "aws_example.py").stat().st_size,
    }
    return environments


def measure_all(plan: Plan, work_dir: Path, python: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    """Bake, install and measure every app of the plan; return the results document."""
    started_at = datetime.datetime.now(datetime.UTC)
    clock = time.perf_counter()
    load_start = os.getloadavg()
    log_dir = work_dir / "logs"
    if log_dir.exists():
        shutil.rmtree(log_dir)
    log_dir.mkdir(parents=True)

    setup = prepare(plan, work_dir, python, progress)
    results = measure_apps(setup, plan, log_dir, progress)

    document: dict[str, Any] = {
        "machine": machine_info(python),
        "run": {
            "command": command_line(),
            "started_utc": started_at.strftime("%Y-%m-%d %H:%M UTC"),
            "duration_seconds": round(time.perf_counter() - clock, 1),
            "load_average_start": [round(value, 2) for value in load_start],
            "load_average_end": [round(value, 2) for value in os.getloadavg()],
            "template_commit": template_commit(),
            "plan": asdict(plan),
        },
        "environments": describe_environments(setup),
        "apps": results,
    }
    document["targets"] = evaluate_targets(document)
    return document


def dry_run(plan: Plan, work_dir: Path, python: Path) -> None:
    """Bake every project and copy the baselines, then print what a run would start; start nothing."""
    fixtures = copy_fixtures(work_dir)
    print(f"Baselines copied to {fixtures} and compiled.")
    template_copy = copy_template(work_dir)
    for framework in plan.frameworks:
        project = bake(framework, template_copy, work_dir)
        template = template_app(project)
        bare = bare_app(project, fixtures)
        assert template.suspend_arguments is not None
        print(f"\n{framework}: baked {project.path}")
        print(f"  environment {project.venv}: uv pip install {project.requirements}")
        print(f"  template app: python {shlex.join(template.arguments)}  (cwd {template.cwd})")
        print(f"  template app for /suspend: python {shlex.join(template.suspend_arguments)}")
        print(f"  bare app: python {shlex.join(bare.arguments)}")
        print(f"  /suspend timeout from microvm.toml: {project.suspend_timeout_seconds} s")

    aws = aws_example_app(work_dir / "envs" / AWS_EXAMPLE, fixtures)
    print(f"\n{AWS_EXAMPLE}: uv pip install {' '.join(AWS_EXAMPLE_REQUIREMENTS)}; python {shlex.join(aws.arguments)}")
    print(
        f"\nPlan: {plan.memory_samples} memory sample(s) per app; {plan.run_samples} forked and "
        f"{plan.fresh_run_samples} fresh /run samples per app with hooks; GET /token at concurrency "
        f"{' and '.join(map(str, plan.concurrencies))} for {plan.load_seconds:g} s each in {plan.load_rounds} "
        f"round(s); /suspend with {SLOW_REQUESTS_IN_FLIGHT} requests in flight "
        f"({'two cases' if plan.suspend_outlasting_case else 'the draining case only'}). Interpreter: {python}"
    )


def check_options(options: argparse.Namespace) -> str | None:
    """Return why the run cannot start, or None when the machine and the options allow it."""
    if not Path("/proc/self/smaps_rollup").is_file():
        return "/proc/self/smaps_rollup is missing; the benchmark needs Linux 4.14 or newer"
    if not options.python.is_file():
        return f"--python {options.python} is not a file; give the path of a Python 3.11+ interpreter"
    if options.work_dir.exists() and not options.work_dir.is_dir():
        return f"--work-dir {options.work_dir.resolve()} is a file; give a folder path"
    return None


def report_missed_targets(document: dict[str, Any]) -> int:
    """Print each missed target on stderr; return the exit status, 1 when any target was missed."""
    missed = [row for row in document["targets"] if not row["held"]]
    for row in missed:
        print(
            f"target missed: {row['framework']}: {row['target']}: {row['measured']} ({row['limit']})", file=sys.stderr
        )
    return 1 if missed else 0


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    problem = check_options(options)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    plan = make_plan(options)
    work_dir = options.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - clock:6.1f} s] {message}", file=sys.stderr, flush=True)

    try:
        if options.dry_run:
            dry_run(plan, work_dir, options.python)
            return 0
        if options.render:
            document = read_results(options.render)
            # Targets are derived from the measurements, so they follow this script's current rules.
            document["targets"] = evaluate_targets(document)
        else:
            document = measure_all(plan, work_dir, options.python, progress)
            json_path = options.json or work_dir / "results.json"
            json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        markdown = render_markdown(document)
        if not options.render:
            markdown_path = options.markdown or work_dir / "results.md"
            markdown_path.write_text(markdown, encoding="utf-8")
            progress(f"results written to {json_path} and {markdown_path}")
        if options.update_docs:
            update_docs_page(markdown)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown, end="")
    return report_missed_targets(document)


if __name__ == "__main__":
    raise SystemExit(main())
