"""Uniqueness of per-VM and per-request values across MicroVMs restored from one snapshot.

The harness in the ``microvm.clones`` package runs the app's build phase in a
fresh process: the import, the lifespan startup and the warm-up requests. Then
it forks clones as if each were a MicroVM restored from that snapshot, sends
/run to each, and compares the values of the paths listed in
``[tool.microvm.uniqueness]`` of pyproject.toml.

The first tests run it on this project's app. The others run it on small apps
that the tests write, each with one planted bug, to show that it finds the bug
and names the path. The last ones test the clone emulation itself.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.microvm import clones
from {{ cookiecutter.package_name }}.microvm.config import APP_PACKAGE, load_settings

PACKAGE = APP_PACKAGE
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A harness run imports the app and forks three clones; a cold import of Django or FastAPI takes a few seconds.
HARNESS_TIMEOUT_SECONDS = 180
PLANTED_MODULE = "planted_app"


def run_harness(*arguments: str, module_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the harness in a fresh interpreter from the project root; ``module_dir`` goes on its import path."""
    environ = dict(os.environ)
    if module_dir is not None:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(module_dir), environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.microvm.clones", *arguments],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=HARNESS_TIMEOUT_SECONDS,
        check=False,
    )


def json_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """Parse the harness's --json report; a run that printed none failed before checking anything."""
    assert result.returncode in (0, 1), f"the harness failed (exit {result.returncode}):\n{result.stderr}"
    return json.loads(result.stdout)


def problem_text(report: dict[str, Any]) -> str:
    return "\n".join(problem["message"] for problem in report["problems"])


# ---------------------------------------------------------------------------
# This project's app
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_report() -> dict[str, Any]:
    """The harness's JSON report on this project's app, with the lists of pyproject.toml."""
    return json_report(run_harness("--json", "--pyproject", str(PROJECT_ROOT / "pyproject.toml")))


def test_app_values_unique_in_every_clone(app_report: dict[str, Any]) -> None:
    """The app's per_vm and per_request paths differ in every clone and every request."""
    assert app_report["problems"] == [], problem_text(app_report)


def test_app_check_covers_pyproject_lists(app_report: dict[str, Any]) -> None:
    """The harness checked every path of pyproject.toml in three clones that all passed /run."""
    expected = clones.read_uniqueness_paths(PROJECT_ROOT / "pyproject.toml")
    assert app_report["per_vm"] == list(expected.per_vm)
    assert app_report["per_request"] == list(expected.per_request)
    assert len(app_report["clones"]) == clones.DEFAULT_CLONES
    for clone in app_report["clones"]:
        assert clone["error"] is None, clone["error"]
        assert clone["result"]["run"]["status"] == 200, clone["result"]["run"]
        assert sorted(clone["result"]["per_vm"]) == sorted(expected.per_vm)
        assert sorted(clone["result"]["per_request"]) == sorted(expected.per_request)


# ---------------------------------------------------------------------------
# The harness on apps with planted bugs
# ---------------------------------------------------------------------------

# A WSGI app on the lifecycle API. Its make_session() and make_token() are correct;
# a planted bug redefines one of them after the clean definitions. The app sources
# build dicts with dict(), because cookiecutter renders this file with Jinja, which
# would read two opening braces in a row as the start of an expression.
WSGI_APP = """
import functools
import itertools
import json
import os
import random
import secrets
import uuid

from PACKAGE.microvm import current_vm, per_vm, wsgi

SERVER = "waitress"
session_id = per_vm(lambda: secrets.token_urlsafe(16), name="session_id")


def make_session():
    return session_id.get()


def make_token():
    return secrets.token_urlsafe(32)

PLANTED_CODE

def routes(environ, start_response):
    try:
        if environ["PATH_INFO"] == "/session":
            document = dict(session_id=make_session(), microvm_id=current_vm().microvm_id)
        else:
            # Every other path, the warm-up paths of microvm.toml among them, returns a token.
            document = dict(token=make_token())
    except Exception as error:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [str(error).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(document).encode()]


app = wsgi(routes)
"""

PLANTED_WSGI_BUGS = {
    "module_uuid_session": """
SHARED_SESSION = str(uuid.uuid4())


def make_session():
    return SHARED_SESSION
""",
    "seeded_random_token": """
TOKEN_GENERATOR = random.Random(20240101)


def make_token():
    return format(TOKEN_GENERATOR.getrandbits(128), "032x")
""",
    "urandom_key_and_counter_token": """
TOKEN_KEY = os.urandom(16).hex()
TOKEN_COUNTER = itertools.count()


def make_token():
    return f"{TOKEN_KEY}-{next(TOKEN_COUNTER)}"
""",
    "memoised_token": """
@functools.lru_cache(maxsize=None)
def make_token():
    return secrets.token_urlsafe(32)
""",
    "pid_session": """
def make_session():
    # Made after /run, but a restored MicroVM keeps the snapshot's process id.
    return f"session-{os.getpid()}"
""",
}


def write_wsgi_app(directory: Path, planted: str = "") -> Path:
    source = WSGI_APP.replace("PACKAGE", PACKAGE).replace("PLANTED_CODE", planted)
    (directory / f"{PLANTED_MODULE}.py").write_text(source, encoding="utf-8")
    return directory


def run_on_planted_app(directory: Path) -> dict[str, Any]:
    arguments = ["--json", "--app", PLANTED_MODULE, "--per-vm", "/session", "--per-request", "/token"]
    return json_report(run_harness(*arguments, module_dir=directory))


def problems_of_kind(report: dict[str, Any], kind: str, path: str) -> list[dict[str, Any]]:
    return [problem for problem in report["problems"] if problem["kind"] == kind and problem["path"] == path]


def test_clean_wsgi_app_passes(tmp_path: Path) -> None:
    report = run_on_planted_app(write_wsgi_app(tmp_path))
    assert report["problems"] == [], problem_text(report)


def test_per_vm_factory_using_random_is_unique(tmp_path: Path) -> None:
    # /run reseeds `random` before it calls the per_vm factories, so this factory
    # must not replay the snapshot's generator state in every clone.
    planted = """
random_session = per_vm(lambda: format(random.getrandbits(64), "016x"), name="random_session")


def make_session():
    return random_session.get()
"""
    report = run_on_planted_app(write_wsgi_app(tmp_path, planted))
    assert report["problems"] == [], problem_text(report)


def test_module_uuid_session_found(tmp_path: Path) -> None:
    report = run_on_planted_app(write_wsgi_app(tmp_path, PLANTED_WSGI_BUGS["module_uuid_session"]))
    shared = problems_of_kind(report, "shared-across-clones", "/session")
    assert len(shared) == 1, problem_text(report)
    assert shared[0]["clones"] == [1, 2, 3]
    assert "GET /session: clones 1, 2 and 3 got the same value" in shared[0]["message"]
    assert "per_vm(" in shared[0]["message"]


def test_seeded_random_token_found(tmp_path: Path) -> None:
    report = run_on_planted_app(write_wsgi_app(tmp_path, PLANTED_WSGI_BUGS["seeded_random_token"]))
    shared = problems_of_kind(report, "shared-across-clones", "/token")
    # Each clone draws the same two tokens from the generator seeded at import.
    assert len(shared) == 2, problem_text(report)
    assert all(problem["clones"] == [1, 2, 3] for problem in shared)
    assert "secrets.token_urlsafe(32)" in shared[0]["message"]


def test_urandom_key_and_counter_token_found(tmp_path: Path) -> None:
    report = run_on_planted_app(write_wsgi_app(tmp_path, PLANTED_WSGI_BUGS["urandom_key_and_counter_token"]))
    shared = problems_of_kind(report, "shared-across-clones", "/token")
    assert shared, problem_text(report)
    assert problems_of_kind(report, "repeated-within-clone", "/token") == []


def test_memoised_token_found(tmp_path: Path) -> None:
    if not load_settings().warmup:
        pytest.skip("microvm.toml lists no [[warmup]] request, so no value is made during warm-up")
    report = run_on_planted_app(write_wsgi_app(tmp_path, PLANTED_WSGI_BUGS["memoised_token"]))
    before = problems_of_kind(report, "made-before-snapshot", "/token")
    assert len(before) == 1, problem_text(report)
    assert "got before the snapshot" in before[0]["message"]
    assert problems_of_kind(report, "repeated-within-clone", "/token"), problem_text(report)
    assert problems_of_kind(report, "shared-across-clones", "/token"), problem_text(report)


def test_process_id_session_found(tmp_path: Path) -> None:
    """A value derived from the process id repeats, because each clone keeps the snapshot's pid."""
    report = run_on_planted_app(write_wsgi_app(tmp_path, PLANTED_WSGI_BUGS["pid_session"]))
    shared = problems_of_kind(report, "shared-across-clones", "/session")
    assert len(shared) == 1, problem_text(report)
    assert "session-" in shared[0]["value"]


def test_failing_path_reported(tmp_path: Path) -> None:
    planted = """
def make_session():
    raise RuntimeError("planted failure")
"""
    report = run_on_planted_app(write_wsgi_app(tmp_path, planted))
    failed = problems_of_kind(report, "request-failed", "/session")
    assert [problem["clones"] for problem in failed] == [[1], [2], [3]], problem_text(report)
    assert "GET /session returned 500 in clone 1, after /run: 'planted failure'" in failed[0]["message"]


# An ASGI app that handles lifespan events itself; PLANTED_LIFESPAN makes an
# instance id at startup, before the snapshot, and serves it as the session.
ASGI_APP = """
import json
import secrets

from PACKAGE.microvm import asgi, current_vm, per_vm

SERVER = "uvicorn"
session_id = per_vm(lambda: secrets.token_urlsafe(16), name="session_id")
INSTANCE = dict()
PLANTED_LIFESPAN = PLANTED_FLAG


async def routes(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if PLANTED_LIFESPAN:
                    INSTANCE["id"] = secrets.token_hex(16)
                await send(dict(type="lifespan.startup.complete"))
            elif message["type"] == "lifespan.shutdown":
                await send(dict(type="lifespan.shutdown.complete"))
                return
    if scope["path"] == "/session":
        session = INSTANCE["id"] if PLANTED_LIFESPAN else session_id.get()
        document = dict(session_id=session, microvm_id=current_vm().microvm_id)
    else:
        document = dict(token=secrets.token_urlsafe(32))
    headers = [(b"content-type", b"application/json")]
    await send(dict(type="http.response.start", status=200, headers=headers))
    await send(dict(type="http.response.body", body=json.dumps(document).encode()))


app = asgi(routes)
"""


def write_asgi_app(directory: Path, planted: bool) -> Path:
    source = ASGI_APP.replace("PACKAGE", PACKAGE).replace("PLANTED_FLAG", str(planted))
    (directory / f"{PLANTED_MODULE}.py").write_text(source, encoding="utf-8")
    return directory


def test_clean_asgi_app_passes(tmp_path: Path) -> None:
    report = run_on_planted_app(write_asgi_app(tmp_path, planted=False))
    assert report["problems"] == [], problem_text(report)


def test_asgi_lifespan_instance_id_found(tmp_path: Path) -> None:
    report = run_on_planted_app(write_asgi_app(tmp_path, planted=True))
    shared = problems_of_kind(report, "shared-across-clones", "/session")
    assert len(shared) == 1, problem_text(report)
    assert shared[0]["clones"] == [1, 2, 3]


def test_missing_app_module_is_usage_error(tmp_path: Path) -> None:
    result = run_harness("--app", "no_such_module_here", module_dir=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'no_such_module_here' not found" in result.stderr


def test_app_import_error_is_build_error(tmp_path: Path) -> None:
    (tmp_path / f"{PLANTED_MODULE}.py").write_text('raise RuntimeError("planted import failure")\n', encoding="utf-8")
    result = run_harness("--app", PLANTED_MODULE, module_dir=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "RuntimeError: planted import failure" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["--per-vm", "session"], "--per-vm 'session' is invalid", id="relative-path"),
        pytest.param(["--clones", "1"], "clone count 1 is too small", id="one-clone"),
        pytest.param(["--clone-timeout", "0"], "clone timeout 0 s is invalid", id="zero-timeout"),
        pytest.param(
            ["--per-vm", "/a", "--per-request", "/a"], "in both per_vm and per_request: /a", id="path-in-both"
        ),
    ],
)
def test_invalid_option_is_usage_error(arguments: list[str], message: str) -> None:
    result = run_harness(*arguments)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_failed_warmup_is_build_error(tmp_path: Path) -> None:
    if not load_settings().warmup:
        pytest.skip("microvm.toml lists no [[warmup]] request")
    source = f"""
from {PACKAGE}.microvm import wsgi

SERVER = "waitress"


def routes(environ, start_response):
    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
    return [b"planted warm-up failure"]


app = wsgi(routes)
"""
    (tmp_path / f"{PLANTED_MODULE}.py").write_text(source, encoding="utf-8")
    result = run_harness("--app", PLANTED_MODULE, module_dir=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "got status 500" in result.stderr
    assert "planted warm-up failure" in result.stderr


# ---------------------------------------------------------------------------
# The clone emulation and the settings, in this process
# ---------------------------------------------------------------------------


def test_clone_keeps_snapshot_pid() -> None:
    # Looked up in the clone: a reference to os.getpid taken before the fork still gives the clone's own pid.
    assert clones.run_in_clone(lambda: os.getpid(), timeout_seconds=10) == os.getpid()


def test_clone_keeps_snapshot_random_state() -> None:
    """CPython reseeds random in a forked child; the clone continues from the parent's state instead."""
    saved = random.getstate()
    drawn_in_clone = clones.run_in_clone(random.random, timeout_seconds=10)
    random.setstate(saved)
    assert drawn_in_clone == random.random()


def test_clones_repeat_tempfile_names() -> None:
    """tempfile's name generator, used before the snapshot, gives every restored VM the same names."""
    tempfile.mktemp()  # starts the name generator in this process, as a build phase could
    first = clones.run_in_clone(tempfile.mktemp, timeout_seconds=10)
    second = clones.run_in_clone(tempfile.mktemp, timeout_seconds=10)
    assert first == second


def test_clone_killed_and_reaped_after_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(clones.CloneTimeoutError) as caught:
        clones.run_in_clone(lambda: time.sleep(60), timeout_seconds=0.5)
    assert time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):
        os.waitpid(caught.value.pid, os.WNOHANG)


def test_clone_exception_reported() -> None:
    def fail() -> None:
        raise ValueError("planted failure in a clone")

    with pytest.raises(clones.HarnessError, match="ValueError: planted failure in a clone"):
        clones.run_in_clone(fail, timeout_seconds=10)


def test_uniqueness_table_defaults(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n', encoding="utf-8")
    paths = clones.read_uniqueness_paths(pyproject)
    assert paths.per_vm == ("/session",)
    assert paths.per_request == ("/token",)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param('"/session"', id="string-not-list"),
        pytest.param('["session"]', id="relative-path"),
        pytest.param("[1]", id="number"),
    ],
)
def test_uniqueness_table_invalid_list(tmp_path: Path, value: str) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"[tool.microvm.uniqueness]\nper_vm = {value}\n", encoding="utf-8")
    with pytest.raises(
        clones.HarnessError, match=r"per_vm \(.*pyproject.toml\) = .* is invalid; use a list of absolute paths"
    ):
        clones.read_uniqueness_paths(pyproject)


def test_uniqueness_missing_pyproject(tmp_path: Path) -> None:
    with pytest.raises(clones.HarnessError, match="not found; run from the project root"):
        clones.read_uniqueness_paths(tmp_path / "pyproject.toml")
