"""Bake the template, render its hooks and install baked projects, as the template's tests do."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context
from uv import find_uv_bin

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
COOKIECUTTER_JSON = TEMPLATE_DIR / "cookiecutter.json"
HOOKS_DIR = TEMPLATE_DIR / "hooks"
UV_CACHE_DIR = Path(os.environ.get("UV_CACHE_DIR") or TEMPLATE_DIR / ".cache" / "uv")
# A fresh environment resolves and downloads a few hundred packages on a cold cache.
INSTALL_TIMEOUT_SECONDS = 900


def default_answers(**extra_context: Any) -> dict[str, Any]:
    """Return the answers that ``cookiecutter --no-input`` gives for this extra context.

    Cookiecutter's own functions compute them, so that the expectation follows
    cookiecutter.json without a second copy of its defaults.
    """
    context = generate_context(context_file=str(COOKIECUTTER_JSON), extra_context=extra_context)
    answers = prompt_for_config(context, no_input=True)
    return {key: value for key, value in answers.items() if not key.startswith("_")}


def bake_project(
    output_dir: Path,
    config_file: Path,
    extra_context: dict[str, Any] | None = None,
    replay_file: Path | None = None,
) -> Path:
    """Bake the template into output_dir and return the project path. Cookiecutter's exceptions propagate."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if replay_file is not None:
        # Cookiecutter rejects no_input and extra_context together with a replay file.
        result = cookiecutter(
            str(TEMPLATE_DIR), replay=str(replay_file), output_dir=str(output_dir), config_file=str(config_file)
        )
    else:
        result = cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context=extra_context or {},
            output_dir=str(output_dir),
            config_file=str(config_file),
        )
    return Path(result)


_module_numbers = itertools.count()


def render_hook(name: str, answers: dict[str, Any], directory: Path) -> Path:
    """Render hooks/<name>.py with cookiecutter's Jinja environment and write it into directory."""
    context = {"cookiecutter": answers}
    source = (HOOKS_DIR / f"{name}.py").read_text(encoding="utf-8")
    rendered = create_env_with_context(context).from_string(source).render(**context)
    path = directory / f"{name}_{next(_module_numbers)}.py"
    path.write_text(rendered, encoding="utf-8")
    return path


def load_hook(name: str, answers: dict[str, Any], directory: Path) -> ModuleType:
    path = render_hook(name, answers, directory)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class InstalledProject:
    """A baked project with its own virtual environment in ``<path>/.venv``."""

    path: Path
    venv: Path
    answers: dict[str, Any] = field(default_factory=dict)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def package_name(self) -> str:
        return self.answers["package_name"]

    def environment(self) -> dict[str, str]:
        """Return os.environ with the project's virtual environment activated."""
        environ = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
        environ["VIRTUAL_ENV"] = str(self.venv)
        environ["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
        return environ

    def run(self, *command: str | Path, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command in the project directory with the virtual environment first on PATH.

        Output is captured as text. With check=True a non-zero exit status fails
        the test with the command's output.
        """
        kwargs.setdefault("cwd", self.path)
        kwargs.setdefault("env", self.environment())
        kwargs.setdefault("timeout", 600)
        result = subprocess.run(
            [str(part) for part in command], capture_output=True, text=True, check=False, **kwargs
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"command {[str(part) for part in command]} exited with status {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
                pytrace=False,
            )
        return result


def run_uv(*arguments: str | Path, cwd: Path) -> None:
    """Run uv with the shared cache, and never let it download an interpreter."""
    environ = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    environ.update(UV_CACHE_DIR=str(UV_CACHE_DIR), UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    command = [find_uv_bin(), *(str(argument) for argument in arguments)]
    result = subprocess.run(
        command, cwd=cwd, env=environ, capture_output=True, text=True, check=False, timeout=INSTALL_TIMEOUT_SECONDS
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with status {result.returncode}\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


def install_project(project: Path, answers: dict[str, Any]) -> InstalledProject:
    """Create ``project/.venv`` with uv and install the project with its development dependencies.

    With a ``requirements-dev.txt`` lock file the pinned, hashed requirements are
    installed first and the project after them without dependencies, as a user
    does. Without one, the ``dev`` dependency group from pyproject.toml is used.
    """
    venv = project / ".venv"
    run_uv("venv", "--quiet", "--python", sys.executable, venv, cwd=project)
    target = ("--python", venv / "bin" / "python")
    if (project / "requirements-dev.txt").is_file():
        run_uv("pip", "install", *target, "--require-hashes", "-r", "requirements-dev.txt", cwd=project)
        run_uv("pip", "install", *target, "--no-deps", "-e", ".", cwd=project)
        # The CDK answer adds its own lock file, constrained to the versions of requirements-dev.txt.
        if (project / "infra" / "cdk" / "requirements.txt").is_file():
            run_uv("pip", "install", *target, "--require-hashes", "-r", "infra/cdk/requirements.txt", cwd=project)
    else:
        run_uv("pip", "install", *target, "--group", "dev", "-e", ".", cwd=project)
    return InstalledProject(path=project, venv=venv, answers=answers)
