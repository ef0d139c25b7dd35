"""Planted snapshot-uniqueness bugs make a generated project's own checks fail, for every framework.

Each framework's project is baked and installed once. Each test plants one bug
in the app code and runs two of the project's tests with the project's own
environment: the clone harness test (tests/test_uniqueness.py) and the static
check test (tests/test_snapcheck.py). Both must fail with messages that point
at the bug. The harness names the path and the clones that share a value, and
the static check names the rule and the file and line. Then the test restores
the files and asserts that both checks pass again.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import pytest
from baking import InstalledProject

pytestmark = pytest.mark.slow

FRAMEWORKS = ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp")
# A project name of its own, so that planting bugs never touches a project that other tests share.
PROJECT_NAME = "Planted Bugs"
# The project's tests that run the clone harness and the static check on the project's own package.
UNIQUENESS_TEST = "tests/test_uniqueness.py::test_app_values_unique_in_every_clone"
SNAPCHECK_TESTS = (
    "tests/test_snapcheck.py::test_own_package_has_no_findings",
    "tests/test_snapcheck.py::test_cli_default_path_is_own_package",
)
# The comment that marks the planted line the static check must report.
MARKER = "# planted bug"

# Text in the adapters that the bugs replace or follow; each must occur exactly once in its file.
IMPORT_ANCHOR = "import secrets\n"
# The /session handler's; the /events and /ws handlers also read session_id, but not before "microvm_id".
SESSION_ANCHOR = '"session_id": session_id.get(), "microvm_id"'
TOKEN_ANCHOR = "secrets.token_urlsafe(32)"
# The module that defines the /session and /token handlers.
ROUTES_FILE = {
    "fastapi": "app.py",
    "flask": "app.py",
    "django": "views.py",
    "litestar": "app.py",
    "starlette": "app.py",
    "aiohttp": "app.py",
}


@dataclass(frozen=True)
class Edit:
    """Replace ``anchor``, which must occur once in ``file`` (relative to the package), with ``replacement``."""

    file: str
    anchor: str
    replacement: str


@dataclass(frozen=True)
class Bug:
    """A planted bug: the edits, the rule the static check must report, and the path the harness must name."""

    id: str
    rule: str
    # None when the clone harness cannot see the bug; ``harness_reason`` gives the reason.
    path: str | None
    harness_reason: str = ""


BUGS = {
    bug.id: bug
    for bug in (
        Bug("module-uuid4-session", "MVM001", "/session"),
        Bug(
            "time-seeded-random-token",
            "MVM003",
            None,
            harness_reason=(
                "/run reseeds the global random generator from the OS (state.reseed_generators), so the tokens "
                "drawn after /run differ in every clone; the seed at import is still a bug, which the static "
                "check reports"
            ),
        ),
        Bug("urandom-key-counter-token", "MVM002", "/token"),
        Bug("build-phase-instance-id", "MVM002", "/session"),
        Bug("memoised-token", "MVM007", "/token"),
        Bug("uuid-prefix-counter-session", "MVM001", "/session"),
    )
}


def module_level_edits(framework: str, code: str, session: str | None = None, token: str | None = None) -> list[Edit]:
    """Insert module-level ``code`` after ``import secrets`` and serve ``session`` or ``token`` instead."""
    routes = ROUTES_FILE[framework]
    edits = []
    if session is not None:
        edits.append(Edit(routes, SESSION_ANCHOR, f'"session_id": {session}, "microvm_id"'))
    if token is not None:
        edits.append(Edit(routes, TOKEN_ANCHOR, token))
    # Last, because the inserted code may contain an anchor itself.
    edits.append(Edit(routes, IMPORT_ANCHOR, IMPORT_ANCHOR + code))
    return edits


def build_phase_edits(framework: str) -> list[Edit]:
    """Make an instance id with secrets in the framework's build phase and serve it as the session id."""
    lifespan = (
        "import contextlib\n\n"
        "PLANTED_STATE: dict[str, str] = {}\n\n\n"
        "@contextlib.asynccontextmanager\n"
        "async def planted_lifespan(app):\n"
        f'    PLANTED_STATE["instance_id"] = secrets.token_hex(16)  {MARKER}\n'
        "    yield\n"
    )
    # Where each ASGI framework takes a lifespan function: Litestar takes a list of them.
    lifespan_edits = {
        "fastapi": Edit("app.py", "FastAPI(title=", "FastAPI(lifespan=planted_lifespan, title="),
        "starlette": Edit("app.py", "= Starlette(", "= Starlette(lifespan=planted_lifespan, "),
        "litestar": Edit("app.py", "Litestar(route_handlers=", "Litestar(lifespan=[planted_lifespan], route_handlers="),
    }
    if framework in lifespan_edits:
        return [
            *module_level_edits(framework, lifespan, session='PLANTED_STATE["instance_id"]'),
            lifespan_edits[framework],
        ]
    if framework == "aiohttp":
        startup = (
            "PLANTED_STATE: dict[str, str] = {}\n\n\n"
            "async def planted_startup(app):\n"
            f'    PLANTED_STATE["instance_id"] = secrets.token_hex(16)  {MARKER}\n'
        )
        return_line = "    return application\n"
        return [
            *module_level_edits(framework, startup, session='PLANTED_STATE["instance_id"]'),
            Edit("app.py", return_line, "    application.on_startup.append(planted_startup)\n" + return_line),
        ]
    if framework == "flask":
        factory_line = "    flask_app = Flask(__name__)\n"
        return [
            Edit(
                "app.py",
                factory_line,
                factory_line + f'    flask_app.config["PLANTED_INSTANCE_ID"] = secrets.token_hex(16)  {MARKER}\n',
            ),
            Edit("app.py", SESSION_ANCHOR, '"session_id": flask_app.config["PLANTED_INSTANCE_ID"], "microvm_id"'),
        ]
    ready_line = "        on_run(set_secret_key_per_vm)\n"
    return [
        Edit(
            "apps.py",
            ready_line,
            ready_line + f"        settings.PLANTED_INSTANCE_ID = secrets.token_hex(16)  {MARKER}\n",
        ),
        *module_level_edits(framework, "from django.conf import settings\n", session="settings.PLANTED_INSTANCE_ID"),
    ]


def bug_edits(bug_id: str, framework: str) -> list[Edit]:
    if bug_id == "module-uuid4-session":
        code = f"import uuid\n\nPLANTED_SESSION_ID = str(uuid.uuid4())  {MARKER}\n"
        return module_level_edits(framework, code, session="PLANTED_SESSION_ID")
    if bug_id == "time-seeded-random-token":
        code = (
            "import random\nimport time\n\n"
            f"random.seed(int(time.time()))  {MARKER}\n\n\n"
            "def planted_token() -> str:\n"
            '    return format(random.getrandbits(128), "032x")\n'
        )
        return module_level_edits(framework, code, token="planted_token()")
    if bug_id == "urandom-key-counter-token":
        code = (
            "import hashlib\nimport itertools\nimport os\n\n"
            f"PLANTED_KEY = os.urandom(16)  {MARKER}\n"
            "PLANTED_COUNTER = itertools.count()\n\n\n"
            "def planted_token() -> str:\n"
            "    return hashlib.sha256(PLANTED_KEY + str(next(PLANTED_COUNTER)).encode()).hexdigest()\n"
        )
        return module_level_edits(framework, code, token="planted_token()")
    if bug_id == "build-phase-instance-id":
        return build_phase_edits(framework)
    if bug_id == "memoised-token":
        code = (
            "import functools\n\n\n"
            "@functools.lru_cache(maxsize=None)\n"
            "def planted_token() -> str:\n"
            f"    return secrets.token_urlsafe(32)  {MARKER}\n"
        )
        return module_level_edits(framework, code, token="planted_token()")
    if bug_id == "uuid-prefix-counter-session":
        code = (
            "import itertools\nimport uuid\n\n"
            f"PLANTED_PREFIX = uuid.uuid4().hex[:8]  {MARKER}\n"
            "PLANTED_COUNTER = itertools.count()\n"
        )
        return module_level_edits(framework, code, session='f"{PLANTED_PREFIX}-{next(PLANTED_COUNTER)}"')
    raise ValueError(f"unknown bug id {bug_id!r}")


@dataclass(frozen=True)
class MarkedLine:
    """Where the planted line that the static check must report ended up."""

    file: str
    line: int


def apply_edits(package: Path, edits: list[Edit], originals: dict[Path, str]) -> MarkedLine:
    """Apply ``edits`` under ``package`` in order and return the marked line.

    ``originals`` receives the text of each file before its first edit, also when an edit fails.
    """
    for edit in edits:
        path = package / edit.file
        text = path.read_text(encoding="utf-8")
        originals.setdefault(path, text)
        count = text.count(edit.anchor)
        assert count == 1, f"expected {edit.anchor!r} once in {path}, found it {count} times; update the bug table"
        path.write_text(text.replace(edit.anchor, edit.replacement), encoding="utf-8")
    marked = [
        MarkedLine(path.name, number)
        for path in originals
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if MARKER in line
    ]
    assert len(marked) == 1, f"expected one line marked {MARKER!r}, found {marked}"
    return marked[0]


@dataclass(frozen=True)
class CaseOutcome:
    """One test case of a JUnit XML report: passed, failed or skipped, and the failure text."""

    outcome: str
    text: str


def run_checks(project: InstalledProject, report: Path, *tests: str) -> dict[str, CaseOutcome]:
    """Run the given test files or node ids with the project's pytest; return the outcome of each test case."""
    # A planted and a restored file can have the same size and modification second, which
    # the bytecode cache does not tell apart: so the package's cached bytecode goes first.
    for cache in (project.path / "src").rglob("__pycache__"):
        shutil.rmtree(cache)
    result = project.run(
        project.python, "-m", "pytest", "-p", "no:cacheprovider", "--junitxml", report, *tests, check=False
    )
    assert report.is_file(), f"pytest wrote no report (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            outcomes[name] = CaseOutcome("failed", f"{failure.get('message', '')}\n{failure.text or ''}")
        elif case.find("skipped") is not None:
            outcomes[name] = CaseOutcome("skipped", "")
        else:
            outcomes[name] = CaseOutcome("passed", "")
    report.unlink()
    assert outcomes, f"pytest collected no tests from {tests}:\n{result.stdout}\n{result.stderr}"
    for test in tests:
        _, _, name = test.partition("::")
        ran = any(case.endswith(f"::{name}") for case in outcomes) if name else True
        assert ran, f"{test} did not run; it may have been renamed:\n{result.stdout}"
    return outcomes


def failures(outcomes: dict[str, CaseOutcome], module: str) -> dict[str, str]:
    return {
        name: outcome.text
        for name, outcome in outcomes.items()
        if name.startswith(module) and outcome.outcome == "failed"
    }


def uniqueness_outcome(outcomes: dict[str, CaseOutcome]) -> CaseOutcome:
    matches = [
        outcome for name, outcome in outcomes.items() if name.endswith("::test_app_values_unique_in_every_clone")
    ]
    assert len(matches) == 1, f"expected one result of {UNIQUENESS_TEST}, got {sorted(outcomes)}"
    return matches[0]


CASES = [pytest.param(framework, bug_id, id=f"{framework}-{bug_id}") for framework in FRAMEWORKS for bug_id in BUGS]


@pytest.mark.parametrize(("framework", "bug_id"), CASES)
def test_planted_bug_fails_checks(installed_project, tmp_path: Path, framework: str, bug_id: str) -> None:
    project = installed_project(framework, project_name=PROJECT_NAME)
    package = project.path / "src" / project.package_name
    bug = BUGS[bug_id]
    originals: dict[Path, str] = {}
    try:
        marked = apply_edits(package, bug_edits(bug_id, framework), originals)
        planted = run_checks(project, tmp_path / "planted.xml", UNIQUENESS_TEST, *SNAPCHECK_TESTS)
    finally:
        for path, text in originals.items():
            path.write_text(text, encoding="utf-8")
    for path, text in originals.items():
        assert path.read_text(encoding="utf-8") == text, f"{path} was not restored"

    harness = uniqueness_outcome(planted)
    if bug.path is None:
        assert harness.outcome == "passed", (
            f"expected the harness to pass because {bug.harness_reason}:\n{harness.text}"
        )
    else:
        assert harness.outcome == "failed", f"the clone harness missed {bug_id} in {framework}"
        assert f"GET {bug.path}: clones 1, 2 and 3" in harness.text, harness.text
        assert "Fix: " in harness.text, harness.text

    static = failures(planted, "tests.test_snapcheck")
    assert static, f"neither of {SNAPCHECK_TESTS} failed for {bug_id} in {framework}"
    static_text = "\n".join(static.values())
    assert f"{marked.file}:{marked.line}:" in static_text, f"expected {marked.file}:{marked.line} in:\n{static_text}"
    assert bug.rule in static_text, f"expected rule {bug.rule} in:\n{static_text}"

    restored = run_checks(project, tmp_path / "restored.xml", UNIQUENESS_TEST, *SNAPCHECK_TESTS)
    still_failing = {name: outcome.text for name, outcome in restored.items() if outcome.outcome == "failed"}
    assert still_failing == {}, f"the checks still fail after restoring the files: {still_failing}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_clean_project_passes_checks(installed_project, tmp_path: Path, framework: str) -> None:
    """Both test files pass in full, and both tools report zero findings on the unchanged project."""
    project = installed_project(framework, project_name=PROJECT_NAME)
    outcomes = run_checks(project, tmp_path / "clean.xml", "tests/test_uniqueness.py", "tests/test_snapcheck.py")
    failed = {name: outcome.text for name, outcome in outcomes.items() if outcome.outcome == "failed"}
    assert failed == {}
    assert uniqueness_outcome(outcomes).outcome == "passed"

    static = project.run("microvm-check", "--format", "json", check=False)
    assert static.returncode == 0, static.stdout + static.stderr
    assert json.loads(static.stdout)["findings"] == []

    harness = project.run("python", "-m", f"{project.package_name}.microvm.clones", "--json", check=False)
    assert harness.returncode == 0, harness.stdout + harness.stderr
    assert json.loads(harness.stdout)["problems"] == []
