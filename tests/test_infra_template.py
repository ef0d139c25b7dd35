"""Bake each iac choice and run the infrastructure checks on the result.

Every baked project runs its own infrastructure tests (tests/test_infra.py,
tests/test_dockerfile.py and tests/test_iac_<tool>.py) in its own environment.
This module adds what a project does not install: ``sam validate --lint``
(aws-sam-cli pins an older boto3), checkov (its pins pull back an older cfn-lint),
and a run of the Dockerfile's pip steps and CMD on this machine, since there is
no Docker daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from baking import run_uv

pytestmark = pytest.mark.slow

FRAMEWORKS = ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp")
INFRA_TESTS = ("tests/test_infra.py", "tests/test_dockerfile.py")
# The IaC templates do not depend on the framework, but the container does.
CASES = [
    pytest.param({"framework": "fastapi", "iac": "sam"}, id="sam"),
    pytest.param({"framework": "fastapi", "iac": "cloudformation"}, id="cloudformation"),
    pytest.param({"framework": "fastapi", "iac": "cdk"}, id="cdk"),
    *(pytest.param({"framework": name, "iac": "none"}, id=f"none-{name}") for name in FRAMEWORKS),
    pytest.param(
        {
            "framework": "flask",
            "iac": "cloudformation",
            "python_version": "3.14",
            "memory_mib": "8192",
            "app_port": "8081",
            "hooks_port": "9001",
        },
        id="cloudformation-nondefault",
    ),
]
TEMPLATE_FOR_IAC = {"sam": "infra/sam/template.yaml", "cloudformation": "infra/cloudformation/template.yaml"}
SAM_INSTALL = (
    "aws-sam-cli is not installed. It pins an older boto3, so give it its own environment: "
    "python3 -m venv /tmp/sam && /tmp/sam/bin/pip install aws-sam-cli==1.170.0, then set SAM_CLI=/tmp/sam/bin/sam"
)
CHECKOV_INSTALL = (
    "checkov is not installed. Its pins pull back cfn-lint, so give it its own environment: "
    "python3 -m venv /tmp/checkov && /tmp/checkov/bin/pip install checkov==3.3.30, "
    "then set CHECKOV=/tmp/checkov/bin/checkov"
)
APP_START_SECONDS = 60


def install(installed_project: Any, extra_context: dict[str, Any]) -> Any:
    """Bake and install the project, and with iac=cdk also the CDK app's hashed lock file."""
    context = dict(extra_context)
    project = installed_project(context.pop("framework"), **context)
    if extra_context["iac"] == "cdk":
        lock_file = "infra/cdk/requirements.txt"
        run_uv("pip", "install", "--python", project.python, "--require-hashes", "-r", lock_file, cwd=project.path)
    return project


def external_tool(variable: str, name: str, install_hint: str) -> str:
    """Return the command named by ``variable`` or found on PATH, or skip the test with the install command."""
    command = os.environ.get(variable) or shutil.which(name)
    if not command:
        pytest.skip(install_hint)
    return command


@pytest.mark.parametrize("extra_context", CASES)
def test_project_infra_tests_pass(installed_project, extra_context: dict[str, Any]) -> None:
    """The baked project's infrastructure tests pass in its own environment, and none of them is skipped."""
    project = install(installed_project, extra_context)
    tests = [*INFRA_TESTS]
    if extra_context["iac"] != "none":
        tests.append(f"tests/test_iac_{extra_context['iac']}.py")
    for test in tests:
        assert (project.path / test).is_file(), f"the project has no {test}"
    result = project.run(project.python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests)
    summary = result.stdout.strip().splitlines()[-1]
    assert "skipped" not in summary, result.stdout


@pytest.mark.parametrize("iac", ["sam", "cloudformation"])
def test_iac_tests_only_for_their_choice(bake_cached, iac: str) -> None:
    """Each IaC test file is generated only when iac selects its tool."""
    project = bake_cached(iac=iac)
    tests = {path.name for path in (project / "tests").glob("test_iac_*.py")}
    assert tests == {f"test_iac_{iac}.py"}


def test_sam_validate_lint(bake_cached) -> None:
    """``sam validate --lint`` accepts the SAM template (aws-sam-cli 1.170.0 supports AWS::Serverless::MicrovmImage)."""
    sam = external_tool("SAM_CLI", "sam", SAM_INSTALL)
    project = bake_cached(iac="sam")
    # Telemetry off: the test sends nothing over the network.
    environ = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [sam, "validate", "--lint", "--template-file", TEMPLATE_FOR_IAC["sam"]],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


def synthesize_cdk(project: Any, outdir: Path) -> Path:
    """Synthesize the project's CDK app with an uploaded zip named, and return the template path."""
    script = (
        "import sys; sys.path.insert(0, 'infra/cdk'); import app; "
        f"app.build_app(context={{'codeArtifactZip': 'app.zip'}}, outdir={str(outdir)!r}).synth()"
    )
    project.run(project.python, "-c", script, timeout=300)
    (template,) = outdir.glob("*.template.json")
    return template


@pytest.mark.parametrize("target", ["sam", "cloudformation", "cdk", "dockerfile"])
def test_checkov_finds_nothing(installed_project, target: str, tmp_path: Path) -> None:
    """checkov passes every check on the template or Dockerfile, or skips it with a reason recorded in the file."""
    checkov = external_tool("CHECKOV", "checkov", CHECKOV_INSTALL)
    framework = "cloudformation"
    if target == "cdk":
        path = synthesize_cdk(install(installed_project, {"framework": "fastapi", "iac": "cdk"}), tmp_path)
    elif target == "dockerfile":
        framework = "dockerfile"
        path = install(installed_project, {"framework": "fastapi", "iac": "none"}).path / "Dockerfile"
    else:
        path = install(installed_project, {"framework": "fastapi", "iac": target}).path / TEMPLATE_FOR_IAC[target]
    # --skip-download keeps checkov from calling the Prisma Cloud API for guidelines.
    result = subprocess.run(
        [checkov, "--file", str(path), "--framework", framework, "--skip-download", "--compact"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout, result.stdout
    skipped = result.stdout.count("SKIPPED for resource")
    assert result.stdout.count("Suppress comment:") == skipped, "every checkov skip needs a comment"


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """Return (keyword, arguments) per instruction, with continued lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        keyword, _, arguments = " ".join([*pending, line]).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = []
    return instructions


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen[str]) -> int:
    """Poll ``url`` until it responds and return the status. Fail if the process exits or time runs out."""
    deadline = time.monotonic() + APP_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with status {process.returncode}:\n{process.communicate()[0]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {APP_START_SECONDS} s")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dockerfile_steps_run_the_app(bake_cached, framework: str, tmp_path: Path) -> None:
    """The Dockerfile's COPY and pip steps, run with this machine's Python, give an app that serves /healthz.

    This checks that requirements.txt contains every runtime dependency, that the
    project installs from it without build isolation, and that CMD starts the
    app, on this machine's platform instead of the MicroVM's aarch64.
    """
    project = bake_cached(framework=framework, iac="none")
    instructions = parse_dockerfile(project / "Dockerfile")
    command = json.loads(next(arguments for keyword, arguments in instructions if keyword == "CMD"))
    interpreter = command[0]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    workdir = tmp_path / "workdir"
    workdir.mkdir()

    for keyword, arguments in instructions:
        if keyword == "COPY":
            *sources, destination = arguments.split()
            # Every COPY in the Dockerfile copies a directory onto a directory, or files into one.
            assert destination.endswith("/"), f"COPY {arguments}: expected a directory destination"
            for source in sources:
                if (project / source).is_dir():
                    shutil.copytree(project / source, workdir / destination, dirs_exist_ok=True)
                else:
                    shutil.copy2(project / source, workdir / destination / Path(source).name)
        elif keyword == "RUN" and "pip install" in arguments:
            # Docker runs the shell form of RUN with /bin/sh -c as well.
            result = subprocess.run(
                arguments.replace(interpreter, python),
                shell=True,
                cwd=workdir,
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            assert result.returncode == 0, f"RUN {arguments}\n{result.stdout}\n{result.stderr}"
    assert not (workdir / "build").exists(), "the project install left build/ in the image"

    app_port, hooks_port = free_port(), free_port()
    environ = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    environ.update(MICROVM_HOST="127.0.0.1", APP_PORT=str(app_port), HOOKS_PORT=str(hooks_port))
    process = subprocess.Popen(
        [python, *command[1:]], cwd=workdir, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert wait_for_health(f"http://127.0.0.1:{app_port}/healthz", process) == 200
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
