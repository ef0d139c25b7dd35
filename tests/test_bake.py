"""Bake a table of answer combinations and check every generated project.

Each check runs on every case, so that a failure names the file, the line and
the answers that produced it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from baking import default_answers
from project_checks import (
    crlf_line_endings,
    iter_files,
    json_errors,
    python_compile_errors,
    read_answers_file,
    snapshot,
    snapshot_differences,
    toml_errors,
    unrendered_jinja,
    yaml_errors,
)

FRAMEWORKS = ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp")
IAC_TOOLS = ("sam", "cloudformation", "cdk", "none")
CI_SERVICES = ("github", "gitlab", "none")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary")
PYTHON_VERSIONS = ("3.11", "3.12", "3.13", "3.14")

# Every answer of every choice question appears at least once, and the mixed
# rows pair answers that no single-answer row combines.
CASES = [
    pytest.param({}, id="default"),
    *(pytest.param({"framework": name}, id=f"framework-{name}") for name in FRAMEWORKS),
    *(pytest.param({"iac": name}, id=f"iac-{name}") for name in IAC_TOOLS),
    *(pytest.param({"ci": name}, id=f"ci-{name}") for name in CI_SERVICES),
    *(pytest.param({"license": name}, id=f"license-{name}") for name in LICENSES),
    *(pytest.param({"python_version": version}, id=f"python-{version}") for version in PYTHON_VERSIONS),
    pytest.param({"app_port": "8000", "hooks_port": "9100", "memory_mib": "512"}, id="ports-8000-9100-512mib"),
    pytest.param({"app_port": "65535", "hooks_port": "1024", "memory_mib": "8192"}, id="ports-edges-8192mib"),
    pytest.param({"memory_mib": "1024"}, id="memory-1024"),
    pytest.param({"memory_mib": "4096"}, id="memory-4096"),
    pytest.param(
        {"framework": "django", "iac": "cdk", "ci": "gitlab", "license": "Apache-2.0", "python_version": "3.13"},
        id="django-cdk-gitlab-apache-3.13",
    ),
    pytest.param(
        {
            "framework": "flask",
            "iac": "cloudformation",
            "ci": "none",
            "license": "BSD-3-Clause",
            "python_version": "3.14",
        },
        id="flask-cloudformation-noci-bsd-3.14",
    ),
    pytest.param(
        {"framework": "fastapi", "iac": "none", "ci": "github", "license": "Proprietary", "python_version": "3.11"},
        id="fastapi-noiac-github-proprietary-3.11",
    ),
    pytest.param(
        {"project_name": "Billing API", "project_slug": "billing", "package_name": "billing_core"},
        id="custom-names",
    ),
]


def problems_text(problems: list[str]) -> str:
    return "\n".join(problems)


@pytest.mark.parametrize("extra_context", CASES)
def test_no_unrendered_jinja(bake_cached, extra_context: dict[str, Any]) -> None:
    problems = unrendered_jinja(bake_cached(**extra_context))
    assert not problems, problems_text(problems)


@pytest.mark.parametrize("extra_context", CASES)
def test_no_options_dir_left(bake_cached, extra_context: dict[str, Any]) -> None:
    project = bake_cached(**extra_context)
    leftovers = [str(path.relative_to(project)) for path in project.rglob("_options")]
    assert not leftovers, leftovers


@pytest.mark.parametrize("extra_context", CASES)
def test_python_files_compile(bake_cached, extra_context: dict[str, Any]) -> None:
    problems = python_compile_errors(bake_cached(**extra_context))
    assert not problems, problems_text(problems)


@pytest.mark.parametrize("extra_context", CASES)
def test_toml_files_parse(bake_cached, extra_context: dict[str, Any]) -> None:
    problems = toml_errors(bake_cached(**extra_context))
    assert not problems, problems_text(problems)


@pytest.mark.parametrize("extra_context", CASES)
def test_yaml_files_parse(bake_cached, extra_context: dict[str, Any]) -> None:
    problems = yaml_errors(bake_cached(**extra_context))
    assert not problems, problems_text(problems)


@pytest.mark.parametrize("extra_context", CASES)
def test_json_files_parse(bake_cached, extra_context: dict[str, Any]) -> None:
    problems = json_errors(bake_cached(**extra_context))
    assert not problems, problems_text(problems)


@pytest.mark.parametrize("extra_context", CASES)
def test_text_files_use_lf(bake_cached, extra_context: dict[str, Any]) -> None:
    problems = crlf_line_endings(bake_cached(**extra_context))
    assert not problems, problems_text(problems)


@pytest.mark.parametrize("extra_context", CASES)
def test_answers_file_matches_answers(bake_cached, extra_context: dict[str, Any]) -> None:
    assert read_answers_file(bake_cached(**extra_context)) == default_answers(**extra_context)


@pytest.mark.parametrize("extra_context", CASES)
def test_replay_reproduces_project(bake, bake_from_replay, extra_context: dict[str, Any]) -> None:
    """Baking again from the kept answers file gives the same files, byte for byte."""
    project = bake(**extra_context)
    replayed = bake_from_replay(project / ".cookiecutter.json")
    assert replayed.name == project.name
    problems = snapshot_differences(snapshot(project), snapshot(replayed))
    assert not problems, problems_text(problems)


@pytest.mark.parametrize("extra_context", CASES)
def test_ruff_check_passes(bake_cached, extra_context: dict[str, Any]) -> None:
    project = bake_cached(**extra_context)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("extra_context", CASES)
def test_scripts_are_executable(bake_cached, extra_context: dict[str, Any]) -> None:
    project = bake_cached(**extra_context)
    not_executable = []
    for path in iter_files(project):
        relative = path.relative_to(project)
        with path.open("rb") as file:
            has_shebang = file.read(2) == b"#!"
        if (relative.parts[0] == "scripts" or has_shebang) and not path.stat().st_mode & stat.S_IXUSR:
            not_executable.append(str(relative))
    assert not not_executable, not_executable


@pytest.mark.parametrize("extra_context", CASES)
def test_settings_match_answers(bake_cached, extra_context: dict[str, Any]) -> None:
    answers = default_answers(**extra_context)
    project = bake_cached(**extra_context)
    settings_file = project / "src" / answers["package_name"] / "microvm.toml"
    settings = tomllib.loads(settings_file.read_text(encoding="utf-8"))
    assert settings["app"]["port"] == int(answers["app_port"])
    assert settings["hooks"]["port"] == int(answers["hooks_port"])
    assert settings["image"]["memory_mib"] == int(answers["memory_mib"])


@pytest.mark.parametrize("extra_context", CASES)
def test_pyproject_matches_answers(bake_cached, extra_context: dict[str, Any]) -> None:
    answers = default_answers(**extra_context)
    project = bake_cached(**extra_context)
    assert project.name == answers["project_slug"]
    metadata = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert metadata["name"] == answers["project_slug"]
    assert metadata["description"] == answers["description"]
    assert metadata["authors"] == [{"name": answers["author_name"], "email": answers["author_email"]}]
    assert (project / "src" / answers["package_name"] / "__init__.py").is_file()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_framework_dependencies(bake_cached, framework: str) -> None:
    project = bake_cached(framework=framework)
    dependencies = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    names = {requirement.split("==")[0].lower() for requirement in dependencies}
    assert framework in names
    for other in set(FRAMEWORKS) - {framework}:
        assert other not in names


# Frameworks whose production server, waitress, has no WebSocket support.
WITHOUT_WEBSOCKETS = ("flask", "django")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_websocket_example_matches_server(bake_cached, framework: str) -> None:
    project = bake_cached(framework=framework)
    readme = (project / "README.md").read_text(encoding="utf-8")
    streams_test = (project / "tests" / "test_streams.py").read_text(encoding="utf-8")
    assert "`GET /events` streams" in readme
    if framework in WITHOUT_WEBSOCKETS:
        assert "This project has no WebSocket route" in readme
        assert "def test_no_websocket_route" in streams_test
        assert "websocket_client" not in streams_test
    else:
        assert "`/ws` is a WebSocket" in readme
        assert "def test_websocket_gets_notice_and_clean_close" in streams_test
        assert "test_websocket_through_proxy_reconnects_after_idle_suspend" in (
            project / "tests" / "test_local.py"
        ).read_text(encoding="utf-8")


@pytest.mark.parametrize("iac", IAC_TOOLS)
def test_iac_files(bake_cached, iac: str) -> None:
    infra = bake_cached(iac=iac) / "infra"
    assert any((infra / "iam").glob("*.json")), "infra/iam/ has no IAM JSON stubs"
    for tool in set(IAC_TOOLS) - {"none", iac}:
        assert not (infra / tool).exists(), f"infra/{tool}/ exists although iac={iac}"
    if iac != "none":
        assert any(path.is_file() for path in (infra / iac).rglob("*")), f"infra/{iac}/ is missing or empty"


@pytest.mark.parametrize("ci", CI_SERVICES)
def test_ci_files(bake_cached, ci: str) -> None:
    project = bake_cached(ci=ci)
    github_workflows = sorted((project / ".github" / "workflows").glob("*.yml"))
    gitlab_file = project / ".gitlab-ci.yml"
    assert bool(github_workflows) == (ci == "github"), github_workflows
    assert gitlab_file.is_file() == (ci == "gitlab")


LICENSE_MARKERS = {
    "MIT": "Permission is hereby granted, free of charge",
    "Apache-2.0": "Apache License\n                           Version 2.0, January 2004",
    "BSD-3-Clause": "Redistribution and use in source and binary forms",
    "Proprietary": "All rights reserved.",
}


@pytest.mark.parametrize("license_name", LICENSES)
def test_license_file(bake_cached, license_name: str) -> None:
    project = bake_cached(license=license_name)
    text = (project / "LICENSE").read_text(encoding="utf-8")
    assert LICENSE_MARKERS[license_name] in text
    for other, marker in LICENSE_MARKERS.items():
        if other != license_name:
            assert marker not in text, f"LICENSE for {license_name} contains the {other} text"


@pytest.mark.parametrize("license_name", ["MIT", "BSD-3-Clause", "Proprietary"])
def test_license_names_author(bake_cached, license_name: str) -> None:
    text = (bake_cached(license=license_name, author_name="Ada Lovelace") / "LICENSE").read_text(encoding="utf-8")
    copyright_lines = [line for line in text.splitlines() if line.startswith("Copyright (c) ")]
    assert len(copyright_lines) == 1, copyright_lines
    assert "Ada Lovelace" in copyright_lines[0]


@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_dockerfile_installs_chosen_python(bake_cached, version: str) -> None:
    dockerfile = bake_cached(python_version=version) / "Dockerfile"
    assert dockerfile.is_file(), "the project has no Dockerfile"
    assert f"python{version}" in dockerfile.read_text(encoding="utf-8")


def test_gitattributes_force_lf(bake_cached, tmp_path: Path) -> None:
    """Git checks out Python, shell and unknown text files with LF, whatever core.autocrlf is set to."""
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is not installed. Install git, because the test reads .gitattributes through git check-attr.")
    project = tmp_path / "project"
    shutil.copytree(bake_cached(), project)
    environ = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run([git, "init", "--quiet"], cwd=project, check=True, env=environ)
    result = subprocess.run(
        [git, "check-attr", "eol", "--", "pyproject.toml", "scripts/anything", "notes.unknown"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    )
    lines = result.stdout.splitlines()
    assert lines == [f"{name}: eol: lf" for name in ("pyproject.toml", "scripts/anything", "notes.unknown")]


def test_gitignore_covers_tool_output(bake_cached) -> None:
    patterns = set((bake_cached() / ".gitignore").read_text(encoding="utf-8").splitlines())
    for expected in (".venv/", "__pycache__/", ".aws-sam/", "cdk.out/", "dist/"):
        assert expected in patterns


def test_next_steps_printed(bake, capfd) -> None:
    bake(project_slug="billing", package_name="billing_core", python_version="3.13")
    output = capfd.readouterr().out
    assert "  cd billing\n" in output
    assert "  python3.13 -m venv .venv && " in output
    assert "  .venv/bin/microvm-local demo\n" in output
    assert ".venv/bin/python -m billing_core" in output
