#!/usr/bin/env python3
"""Set up the template's tools and run its two jobs: the lifecycle demo and the tests.

    python3 scripts/dev.py demo    # generate a project and run it through the MicroVM lifecycle
    python3 scripts/dev.py test    # run the template's test suite (extra arguments go to pytest)

Needs only Python 3.11 or newer and the package index. The tools go into
``.venv`` in this repository, installed from ``requirements/dev.txt`` with hash
checking; they are installed again only when that file changes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements" / "dev.txt"
# Records the hash of the requirements file the environment was installed from.
STAMP = VENV / "requirements.sha256"
CACHE = ROOT / ".cache"
MINIMUM_PYTHON = (3, 11)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="bake the default project and run it through the MicroVM lifecycle")
    demo.add_argument(
        "--framework",
        choices=["fastapi", "flask", "django", "litestar", "starlette", "aiohttp"],
        default="fastapi",
        help="web framework to bake",
    )
    demo.add_argument("--output", type=Path, help="folder to bake into (default: a new folder under .cache/demo)")
    test = commands.add_parser("test", help="run the template's tests; further arguments go to pytest")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments passed to pytest")
    options, unknown = parser.parse_known_args(argv)
    if options.command == "test":
        options.pytest_args = [*unknown, *options.pytest_args]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")

    if sys.version_info < MINIMUM_PYTHON:
        found = ".".join(map(str, sys.version_info[:3]))
        print(f"error: Python {found} is too old; run this script with Python 3.11 or newer", file=sys.stderr)
        return 2
    ensure_tools()
    if options.command == "demo":
        return run_demo(options.framework, options.output)
    return run_tests(options.pytest_args)


def ensure_tools() -> None:
    """Create .venv and install requirements/dev.txt, unless it is installed from the same file already."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text().strip() == wanted and venv_python().is_file():
        return
    print(f"Installing the template's tools into {VENV} ...", flush=True)
    if not venv_python().is_file():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    run([venv_python(), "-m", "pip", "install", "--quiet", "--require-hashes", "-r", REQUIREMENTS])
    STAMP.write_text(wanted + "\n")


# Tools whose pins conflict with the template's own (checkov pins old cfn-lint; SAM CLI pins its
# own boto3), each in an environment of its own, installed from requirements/<name>.txt.
SEPARATE_TOOLS = ("checkov", "sam")
TOOLS_DIRECTORY = CACHE / "tools"


def ensure_separate_tools() -> dict[str, str]:
    """Install checkov and the SAM CLI in their own environments; return the variables that name them."""
    uv = VENV / "bin" / "uv"
    for name in SEPARATE_TOOLS:
        requirements = ROOT / "requirements" / f"{name}.txt"
        environment = TOOLS_DIRECTORY / name
        stamp = environment / "requirements.sha256"
        wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
        if stamp.is_file() and stamp.read_text().strip() == wanted:
            continue
        print(f"Installing {name} into {environment} ...", flush=True)
        environ = {**tool_environment(), "VIRTUAL_ENV": str(environment)}
        run([uv, "venv", "--quiet", "--python", sys.executable, environment], env=environ)
        run([uv, "pip", "install", "--quiet", "-r", requirements], env=environ)
        stamp.write_text(wanted + "\n")
    checkov = str(TOOLS_DIRECTORY / "checkov" / "bin" / "checkov")
    return {"CHECKOV_BIN": checkov, "CHECKOV": checkov, "SAM_CLI": str(TOOLS_DIRECTORY / "sam" / "bin" / "sam")}


def venv_python() -> Path:
    return VENV / "bin" / "python"


def tool_environment() -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environ["PATH"] = f"{VENV / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
    environ.setdefault("UV_CACHE_DIR", str(CACHE / "uv"))
    environ["UV_PYTHON_DOWNLOADS"] = "never"
    return environ


def run(command: list[str | Path], **kwargs: object) -> None:
    """Run a command; on failure exit with its status after saying which command failed."""
    result = subprocess.run([str(part) for part in command], check=False, **kwargs)
    if result.returncode != 0:
        print(f"error: {' '.join(map(str, command))} exited with status {result.returncode}", file=sys.stderr)
        raise SystemExit(result.returncode)


def run_demo(framework: str, output: Path | None) -> int:
    """Bake a project, install it in its own environment and run `microvm-local demo` in it."""
    environ = tool_environment()
    if output is None:
        (CACHE / "demo").mkdir(parents=True, exist_ok=True)
        output = Path(tempfile.mkdtemp(prefix=f"{framework}-", dir=CACHE / "demo"))
    output = output.resolve()
    project = output / "microvm-app"
    if project.exists():
        print(f"error: {project} exists already; choose another --output folder or remove it", file=sys.stderr)
        return 2
    print(f"Baking the {framework} project into {project} ...", flush=True)
    run(
        [VENV / "bin" / "cookiecutter", ROOT, "--no-input", "--output-dir", output, f"framework={framework}"],
        env=environ,
    )
    uv = shutil.which("uv", path=environ["PATH"]) or "uv"
    print("Installing it with its locked dependencies ...", flush=True)
    run([uv, "venv", "--quiet", "--python", sys.executable, project / ".venv"], env=environ)
    project_environ = {**environ, "VIRTUAL_ENV": str(project / ".venv")}
    run([uv, "pip", "install", "--quiet", "-r", project / "requirements-dev.txt"], env=project_environ)
    run([uv, "pip", "install", "--quiet", "--no-deps", "-e", project], env=project_environ)
    print("Running the MicroVM lifecycle locally ...", flush=True)
    result = subprocess.run([str(project / ".venv" / "bin" / "microvm-local"), "demo"], cwd=project, check=False)
    print(f"\nThe project is in {project}; `cd` there and read its README.md.")
    return result.returncode


def run_tests(pytest_args: list[str]) -> int:
    """Run pytest on the template's tests with the tools' environment."""
    environ = {**tool_environment(), **ensure_separate_tools()}
    command = [str(venv_python()), "-m", "pytest", *(pytest_args or ["tests"])]
    return subprocess.run(command, cwd=ROOT, env=environ, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
