"""Bake the template, create the virtual environments and measure what they install."""

from __future__ import annotations

import json
import os
import py_compile
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .common import FIXTURES, ROOT, BenchmarkError

# Used only when a baked project has no requirements.txt lock file. The same pins
# as the template's pyproject.toml.
FALLBACK_REQUIREMENTS = {
    "fastapi": ["fastapi==0.163.2", "uvicorn==0.54.0", "websockets==17.4"],
    "flask": ["flask==3.1.3", "waitress==3.0.2"],
    "django": ["django==5.2.19", "waitress==3.0.2"],
    "litestar": ["litestar==2.25.0", "uvicorn==0.54.0", "websockets==17.4"],
    "starlette": ["starlette==1.10.0", "uvicorn==0.54.0", "websockets==17.4"],
    "aiohttp": ["aiohttp==3.14.5"],
}
# The AWS-style example needs Flask only, at the template's version.
AWS_EXAMPLE_REQUIREMENTS = ["flask==3.1.3"]


def find_tool(name: str) -> Path:
    """Find a tool next to the running interpreter, on PATH, or in this repository's .venv."""
    candidates = [Path(sys.executable).parent / name]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    candidates.append(ROOT / ".venv" / "bin" / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise BenchmarkError(
        f"{name} was not found next to {sys.executable}, on PATH, or in {ROOT / '.venv' / 'bin'}; "
        "install the template's tools with `python3 -m venv .venv && "
        ".venv/bin/pip install --require-hashes -r requirements/dev.txt` and run this script again"
    )


def tool_environment() -> dict[str, str]:
    """Return the environment for cookiecutter and uv: shared uv cache, no interpreter downloads."""
    environ = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environ.setdefault("UV_CACHE_DIR", str(ROOT / ".cache" / "uv"))
    environ["UV_PYTHON_DOWNLOADS"] = "never"
    environ["UV_NO_PROGRESS"] = "1"
    return environ


def run_tool(command: list[str | Path], cwd: Path | None = None) -> str:
    """Run a tool; on failure raise BenchmarkError with the command and its output."""
    printable = [str(part) for part in command]
    result = subprocess.run(printable, cwd=cwd, env=tool_environment(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchmarkError(
            f"`{shlex.join(printable)}` exited with status {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result.stdout


@dataclass
class Project:
    """One baked project and the environment that contains its runtime dependencies."""

    framework: str
    path: Path
    package: str
    venv: Path
    requirements: str  # the lock file installed, or the fallback pins
    suspend_timeout_seconds: int = 0
    dependencies_bytes: int = 0
    package_bytes: int = 0
    installed: list[str] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


# Caches and environments that tools leave in a working copy; a clone has none of them.
WORKING_COPY_LEFTOVERS = (".git", ".venv", ".cache", ".ruff_cache", ".pytest_cache", ".mypy_cache", "__pycache__")


def copy_template(work_dir: Path) -> Path:
    """Copy the template into WORK_DIR/template without tool caches, which cookiecutter would try to render."""
    target = work_dir / "template"
    if target.exists():
        shutil.rmtree(target)
    leftovers = shutil.ignore_patterns(*WORKING_COPY_LEFTOVERS)

    def ignore(directory: str, names: list[str]) -> set[str]:
        # A work folder inside the repository must not be copied into itself.
        inside = {name for name in names if Path(directory, name).resolve() == work_dir}
        return set(leftovers(directory, names)) | inside

    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def bake(framework: str, template: Path, work_dir: Path) -> Project:
    """Bake ``template`` with the default answers and the given framework into WORK_DIR/projects/<framework>."""
    output = work_dir / "projects" / framework
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)

    run_tool([find_tool("cookiecutter"), template, "--no-input", "--output-dir", output, f"framework={framework}"])
    baked = [child for child in output.iterdir() if child.is_dir()]
    if len(baked) != 1:
        raise BenchmarkError(f"expected one project folder in {output} after baking, found {len(baked)}")
    path = baked[0]

    answers = json.loads((path / ".cookiecutter.json").read_text(encoding="utf-8"))["cookiecutter"]
    package = answers["package_name"]
    for needed in (
        path / "src" / package / "__main__.py",
        path / "src" / package / "microvm.toml",
        path / "tests" / "lifecycle_server.py",
    ):
        if not needed.is_file():
            raise BenchmarkError(
                f"the baked {framework} project has no {needed.relative_to(path)}; the benchmark needs it"
            )

    settings = tomllib.loads((path / "src" / package / "microvm.toml").read_text(encoding="utf-8"))
    lock_file = path / "requirements.txt"
    return Project(
        framework=framework,
        path=path,
        package=package,
        venv=work_dir / "envs" / framework,
        requirements="requirements.txt" if lock_file.is_file() else " ".join(FALLBACK_REQUIREMENTS[framework]),
        suspend_timeout_seconds=int(settings["hooks"]["suspend"]["timeout_seconds"]),
    )


def create_environment(venv: Path, python: Path, install_arguments: list[str | Path], cwd: Path) -> list[str]:
    """Create ``venv`` afresh with uv, install into it with bytecode compiled, as pip in the image does.

    Return the installed distributions as ``name==version`` lines.
    """
    if venv.exists():
        shutil.rmtree(venv)
    uv = find_tool("uv")
    run_tool([uv, "venv", "--quiet", "--python", python, venv], cwd=cwd)
    target = ["--python", venv / "bin" / "python"]
    run_tool([uv, "pip", "install", "--quiet", *target, "--compile-bytecode", *install_arguments], cwd=cwd)
    return run_tool([uv, "pip", "freeze", *target], cwd=cwd).split()


def install(project: Project, python: Path) -> None:
    """Install the project's runtime dependencies, measure them, and compile the project's sources."""
    if project.requirements == "requirements.txt":
        arguments: list[str | Path] = ["--require-hashes", "-r", project.path / "requirements.txt"]
    else:
        arguments = list(FALLBACK_REQUIREMENTS[project.framework])
    project.installed = create_environment(project.venv, python, arguments, project.path)
    project.dependencies_bytes = tree_size(site_packages(project.venv))
    project.package_bytes = tree_size(project.path / "src" / project.package)
    # Compile now, so that no measured start spends time writing bytecode.
    run_tool([project.python, "-m", "compileall", "-q", project.path / "src", project.path / "tests"])


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if len(found) != 1:
        raise BenchmarkError(f"expected one site-packages folder in {venv}, found {len(found)}")
    return found[0]


def tree_size(folder: Path) -> int:
    """Return the apparent size in bytes of the regular files under ``folder``, symlinks not followed."""
    total = 0
    for directory, _subdirectories, files in os.walk(folder):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def copy_fixtures(work_dir: Path) -> Path:
    """Copy the baseline apps and the fork server into WORK_DIR/fixtures and check that they compile."""
    target = work_dir / "fixtures"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for source in sorted(FIXTURES.glob("*.py")):
        copied = Path(shutil.copy2(source, target))
        try:
            py_compile.compile(str(copied), doraise=True)
        except py_compile.PyCompileError as error:
            raise BenchmarkError(f"the baseline fixture {source} does not compile: {error.msg}") from error
    return target
