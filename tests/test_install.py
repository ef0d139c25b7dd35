"""Install baked projects into their own virtual environments and run them.

These tests download the project's dependencies on a cold uv cache, so the
first run takes minutes. Later runs reuse UV_CACHE_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from baking import load_hook, run_uv

pytestmark = pytest.mark.slow

FRAMEWORKS = ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary")

# Prints {"distribution": ["module", ...]} for every distribution in the
# environment except the project: the top-level packages (directories) and
# single-file modules (.py, or extension modules such as _yaml.cpython-311-*.so)
# that each one installs into site-packages.
LIST_TOP_LEVEL_MODULES = """
import importlib.metadata, json, sys
project = sys.argv[1]
found = {}
for distribution in importlib.metadata.distributions():
    name = distribution.metadata["Name"]
    if name is None or name.lower() == project:
        continue
    modules = set()
    for path in distribution.files or []:
        top = path.parts[0]
        if len(path.parts) > 1:
            modules.add(top)
        elif top.endswith((".py", ".so", ".pyd")):
            modules.add(top.split(".")[0])
    found[name] = sorted(module for module in modules if module.isidentifier())
print(json.dumps(found))
"""


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_project_imports(installed_project, framework: str) -> None:
    project = installed_project(framework)
    package = project.package_name
    project.run("python", "-c", f"import {package}, {package}.app, {package}.microvm.config")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_generated_test_suite_passes(installed_project, framework: str) -> None:
    project = installed_project(framework)
    result = project.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=line", "-rfE", check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_reserved_names_cover_installed_modules(installed_project, framework: str, tmp_path: Path) -> None:
    """Every top-level module that the project's environment installs is a rejected package_name."""
    project = installed_project(framework)
    pre_gen = load_hook("pre_gen_project", project.answers, tmp_path)
    result = project.run("python", "-c", LIST_TOP_LEVEL_MODULES, project.answers["project_slug"])
    installed = json.loads(result.stdout)
    unreserved = {
        f"{module} (from {distribution})"
        for distribution, modules in installed.items()
        for module in modules
        if not module.startswith("_")
        and module not in pre_gen.RESERVED_MODULES
        and module not in sys.stdlib_module_names
    }
    assert not unreserved, f"add these to RESERVED_MODULES in hooks/pre_gen_project.py: {sorted(unreserved)}"


@pytest.mark.parametrize("license_name", LICENSES)
def test_license_metadata_builds(bake, tmp_path: Path, license_name: str) -> None:
    """The project builds with setuptools for every license answer, and its metadata names the license."""
    project = bake(license=license_name)
    venv = tmp_path / "venv"
    run_uv("venv", "--quiet", "--python", sys.executable, venv, cwd=tmp_path)
    run_uv("pip", "install", "--python", venv / "bin" / "python", "--no-deps", project, cwd=tmp_path)
    metadata_files = list(venv.glob(f"lib/python*/site-packages/{project.name.replace('-', '_')}-*.dist-info/METADATA"))
    assert len(metadata_files) == 1, metadata_files
    fields = metadata_files[0].read_text(encoding="utf-8").split("\n\n")[0].splitlines()
    assert "License-File: LICENSE" in fields
    if license_name != "Proprietary":
        assert f"License-Expression: {license_name}" in fields
