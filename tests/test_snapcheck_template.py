"""microvm-check on baked projects: each framework's project scans clean, and planted snapshot bugs are caught.

The checker uses only the standard library, so these tests run it from the baked
source tree with this interpreter instead of installing the project.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FRAMEWORKS = ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp")


@dataclass(frozen=True)
class Planted:
    """A bug written into a baked project: the file it went into, its line, and the rule that must report it."""

    path: Path
    line: int
    rule: str


def package_dir(project: Path) -> Path:
    packages = [path.parent for path in (project / "src").glob("*/__init__.py")]
    assert len(packages) == 1, f"expected one package under {project / 'src'}, found {packages}"
    return packages[0]


def run_in_project(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run this interpreter in the project directory with the project's src/ as the import path.

    No bytecode is written, so the session's cached projects stay unchanged.
    """
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["PYTHONPATH"] = str(project / "src")
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_check(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <package>.microvm.snapcheck``, the code behind the microvm-check script."""
    return run_in_project(project, "-m", f"{package_dir(project).name}.microvm.snapcheck", *arguments)


def findings_of(completed: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert completed.returncode in (0, 1), f"exit status {completed.returncode}\n{completed.stderr}"
    return json.loads(completed.stdout)["findings"]


def append_code(path: Path, code: str, marker: str) -> int:
    """Append code to a module and return the number of the first appended line that contains ``marker``."""
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    first_line = text.count("\n") + 1
    block = textwrap.dedent(code).strip("\n") + "\n"
    path.write_text(text + "\n" + block, encoding="utf-8")
    offset = next(index for index, line in enumerate(block.splitlines()) if marker in line)
    return first_line + 1 + offset


def insert_before_last_statement(path: Path, function: str, lines: list[str]) -> int:
    """Insert lines before the last statement of a function (found by name), at its indentation.

    Returns the line number of the last inserted line. The function is located
    with ast, so the test does not depend on the exact text of the app.
    """
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    matches = [node for node in ast.walk(tree) if isinstance(node, functions) and node.name == function]
    assert matches, f"{path} has no function named {function}(); the planted bug needs one"
    last = matches[0].body[-1]
    indent = " " * last.col_offset
    source_lines = text.splitlines(keepends=True)
    insertion = [f"{indent}{line}\n" for line in lines]
    source_lines[last.lineno - 1 : last.lineno - 1] = insertion
    path.write_text("".join(source_lines), encoding="utf-8")
    return last.lineno - 1 + len(lines)


# Generic bugs, appended to the framework's app module. Each value: code, a marker on the line the finding must
# point at, and the rule.
APPENDED_BUGS = {
    "uuid-session-id": (
        """
        import uuid
        PLANTED_SESSION_ID = str(uuid.uuid4())
        """,
        "uuid.uuid4()",
        "MVM001",
    ),
    "random-seed-at-import": (
        """
        import random
        import time
        random.seed(int(time.time()))

        def planted_token() -> int:
            return random.getrandbits(64)
        """,
        "random.seed(",
        "MVM003",
    ),
    "urandom-key": (
        """
        import os
        _PLANTED_KEY = os.urandom(16)
        """,
        "os.urandom",
        "MVM002",
    ),
    "lru-cache-token-at-import": (
        """
        import functools
        import secrets

        @functools.lru_cache(maxsize=1)
        def planted_service_token() -> str:
            return secrets.token_urlsafe(32)

        PLANTED_TOKEN = planted_service_token()
        """,
        "secrets.token_urlsafe",
        "MVM007",
    ),
    "lru-cache-token-in-handler": (
        """
        import functools
        import secrets

        @functools.lru_cache(maxsize=1)
        def planted_service_token() -> str:
            return secrets.token_urlsafe(32)

        def planted_handler() -> dict[str, str]:
            return {"token": planted_service_token()}
        """,
        "secrets.token_urlsafe",
        "MVM007",
    ),
    "uuid-prefix-with-counter": (
        """
        import itertools
        from uuid import uuid4

        PLANTED_PREFIX = uuid4().hex[:8]
        PLANTED_COUNTER = itertools.count()

        def planted_request_id() -> str:
            return f"{PLANTED_PREFIX}-{next(PLANTED_COUNTER)}"
        """,
        "uuid4()",
        "MVM001",
    ),
}


def plant_appended(project: Path, bug: str) -> Planted:
    code, marker, rule = APPENDED_BUGS[bug]
    path = package_dir(project) / "app.py"
    return Planted(path, append_code(path, code, marker), rule)


def plant_instance_id_fastapi(project: Path) -> Planted:
    """Give the FastAPI app a lifespan function that makes an instance id at startup."""
    code = """
        import secrets
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def lifespan(app):
            app.state.instance_id = secrets.token_hex(8)
            yield

        api.router.lifespan_context = lifespan
        """
    path = package_dir(project) / "app.py"
    return Planted(path, append_code(path, code, "secrets.token_hex"), "MVM002")


def plant_instance_id_flask(project: Path) -> Planted:
    """Make an instance id in the Flask app factory, create_app()."""
    path = package_dir(project) / "app.py"
    line = insert_before_last_statement(
        path, "create_app", ["import secrets", 'flask_app.config["INSTANCE_ID"] = secrets.token_hex(8)']
    )
    return Planted(path, line, "MVM002")


def plant_instance_id_django(project: Path) -> Planted:
    """Make an instance id in Django's AppConfig.ready()."""
    path = package_dir(project) / "apps.py"
    line = insert_before_last_statement(path, "ready", ["import secrets", "self.instance_id = secrets.token_hex(8)"])
    return Planted(path, line, "MVM002")


def plant_instance_id_starlette(project: Path) -> Planted:
    """Give a Starlette app a lifespan function, passed as lifespan=, that makes an instance id."""
    code = """
        import secrets
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def planted_lifespan(app):
            app.state.instance_id = secrets.token_hex(8)
            yield

        planted_app = Starlette(lifespan=planted_lifespan)
        """
    path = package_dir(project) / "app.py"
    return Planted(path, append_code(path, code, "secrets.token_hex"), "MVM002")


def plant_instance_id_litestar(project: Path) -> Planted:
    """Give a Litestar app a list of lifespan functions, one of which makes an instance id."""
    code = """
        import secrets
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def planted_lifespan(app):
            app.state.instance_id = secrets.token_hex(8)
            yield

        planted_app = Litestar(route_handlers=[], lifespan=[planted_lifespan])
        """
    path = package_dir(project) / "app.py"
    return Planted(path, append_code(path, code, "secrets.token_hex"), "MVM002")


def plant_instance_id_aiohttp(project: Path) -> Planted:
    """Add an aiohttp on_startup handler that makes an instance id."""
    code = """
        import secrets

        async def planted_startup(application):
            application["instance_id"] = secrets.token_hex(8)

        app.on_startup.append(planted_startup)
        """
    path = package_dir(project) / "app.py"
    return Planted(path, append_code(path, code, "secrets.token_hex"), "MVM002")


def test_aiohttp_cleanup_ctx_instance_id_is_caught(bake_cached, tmp_path: Path) -> None:
    """The part of an aiohttp cleanup context before its yield runs at startup, before the snapshot."""
    project = planted_copy(bake_cached, tmp_path, "aiohttp")
    code = """
        import secrets

        async def planted_context(application):
            application["instance_id"] = secrets.token_hex(8)
            yield

        app.cleanup_ctx.extend([planted_context])
        """
    path = package_dir(project) / "app.py"
    assert_caught(project, Planted(path, append_code(path, code, "secrets.token_hex"), "MVM002"))


INSTANCE_ID_PLANTERS: dict[str, Callable[[Path], Planted]] = {
    "fastapi": plant_instance_id_fastapi,
    "flask": plant_instance_id_flask,
    "django": plant_instance_id_django,
    "litestar": plant_instance_id_litestar,
    "starlette": plant_instance_id_starlette,
    "aiohttp": plant_instance_id_aiohttp,
}


def planted_copy(bake_cached, tmp_path: Path, framework: str) -> Path:
    """Copy the cached baked project for a framework, so the test may change it."""
    project = tmp_path / "project"
    shutil.copytree(bake_cached(framework=framework), project)
    return project


def assert_caught(project: Path, planted: Planted) -> None:
    completed = run_check(project, "--format", "json")
    findings = findings_of(completed)
    relative = str(planted.path.relative_to(project))
    located = [(finding["rule"], finding["path"], finding["line"]) for finding in findings]
    assert completed.returncode == 1, f"expected findings, got {located}"
    assert (planted.rule, relative, planted.line) in located, f"{planted} not among {located}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_baked_package_scans_clean(bake_cached, framework: str) -> None:
    project = bake_cached(framework=framework)
    completed = run_check(project)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no findings" in completed.stdout


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("bug", sorted(APPENDED_BUGS))
def test_appended_bug_is_caught(bake_cached, tmp_path: Path, framework: str, bug: str) -> None:
    project = planted_copy(bake_cached, tmp_path, framework)
    assert_caught(project, plant_appended(project, bug))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_startup_instance_id_is_caught(bake_cached, tmp_path: Path, framework: str) -> None:
    project = planted_copy(bake_cached, tmp_path, framework)
    assert_caught(project, INSTANCE_ID_PLANTERS[framework](project))


def test_handler_getrandbits_is_clean(bake_cached, tmp_path: Path) -> None:
    project = planted_copy(bake_cached, tmp_path, "fastapi")
    append_code(
        package_dir(project) / "app.py",
        """
        import random

        @api.get("/planted-random")
        def planted_random() -> dict[str, int]:
            return {"value": random.getrandbits(64)}
        """,
        "getrandbits",
    )
    completed = run_check(project)
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_project_snapcheck_tests_pass(bake_cached, framework: str) -> None:
    project = bake_cached(framework=framework)
    completed = run_in_project(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_snapcheck.py")
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_self_check_fails_on_planted_bug(bake_cached, tmp_path: Path, framework: str) -> None:
    project = planted_copy(bake_cached, tmp_path, framework)
    plant_appended(project, "uuid-session-id")
    test_id = "tests/test_snapcheck.py::test_own_package_has_no_findings"
    completed = run_in_project(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_id)
    assert completed.returncode == 1, completed.stdout[-4000:]
    assert "MVM001" in completed.stdout
