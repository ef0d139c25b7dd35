"""Tests of microvm-check, the static check for values made before the MicroVM snapshot.

The last tests scan this project's own package, so they fail when someone adds
a UUID, a token or a client made at import. Keep them passing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.microvm import snapcheck

# The module that `python -m` runs, the same code as the microvm-check console script.
CHECK_MODULE = snapcheck.__name__


def write_package(root: Path, files: dict[str, str]) -> Path:
    """Write a package named demo under root with the given modules, and return its directory."""
    package = root / "demo"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return package


def scan(root: Path, source: str) -> snapcheck.ScanResult:
    return snapcheck.scan_paths([write_package(root, {"app.py": source})])


def rules_of(result: snapcheck.ScanResult) -> list[str]:
    return sorted(finding.rule for finding in result.findings)


def run_check(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run microvm-check as a separate process, with this project's package importable."""
    environment = dict(os.environ)
    source_root = str(snapcheck.PACKAGE_DIR.parent)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, environment.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", CHECK_MODULE, *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Each case: module source and the sorted rule ids it must produce. An empty list means "no finding".
CASES = [
    # A session id made at import.
    pytest.param(
        """
        import uuid
        SESSION_ID = str(uuid.uuid4())
        """,
        ["MVM001"],
        id="uuid4-module-level",
    ),
    pytest.param(
        """
        from uuid import uuid4 as make_id
        REQUEST_PREFIX = make_id().hex
        """,
        ["MVM001"],
        id="uuid4-aliased-import",
    ),
    pytest.param(
        """
        import uuid as u
        NODE_ID = u.uuid1()
        """,
        ["MVM001"],
        id="uuid1-module-alias",
    ),
    pytest.param(
        """
        import uuid
        NAMESPACE_ID = uuid.uuid5(uuid.NAMESPACE_DNS, "example.com")
        """,
        [],
        id="uuid5-is-deterministic",
    ),
    pytest.param(
        """
        import secrets
        API_TOKEN = secrets.token_hex(16)
        """,
        ["MVM002"],
        id="secrets-token-module-level",
    ),
    pytest.param(
        """
        from secrets import choice
        LETTER = choice("abc")
        """,
        ["MVM002"],
        id="secrets-choice-from-import",
    ),
    # A key from os.urandom at import.
    pytest.param(
        """
        import os
        _KEY = os.urandom(16)
        """,
        ["MVM002"],
        id="os-urandom-module-level",
    ),
    pytest.param(
        """
        from django.core.management.utils import get_random_secret_key
        SECRET_KEY = get_random_secret_key()
        """,
        ["MVM002"],
        id="django-secret-key-generated-in-settings",
    ),
    pytest.param(
        """
        import random
        import secrets
        SYSTEM_RANDOM = random.SystemRandom()
        OTHER_SYSTEM_RANDOM = secrets.SystemRandom()
        """,
        [],
        id="system-random-instance-is-safe",
    ),
    # A seed set at import. The per-request getrandbits alone is fine, because /run reseeds the global generator.
    pytest.param(
        """
        import random
        import time
        random.seed(int(time.time()))

        def token():
            return random.getrandbits(64)
        """,
        ["MVM003"],
        id="random-seed-with-time-at-import",
    ),
    pytest.param(
        """
        import random

        def token():
            return random.getrandbits(64)
        """,
        [],
        id="random-getrandbits-in-handler",
    ),
    pytest.param(
        """
        import random
        RNG = random.Random(42)
        """,
        ["MVM003"],
        id="random-instance-module-level",
    ),
    pytest.param(
        """
        from random import random
        JITTER = random()
        """,
        ["MVM003"],
        id="random-draw-module-level",
    ),
    pytest.param(
        """
        import numpy as np
        GENERATOR = np.random.default_rng()
        """,
        ["MVM003"],
        id="numpy-generator-module-level",
    ),
    pytest.param(
        """
        import random
        import time
        RNG = random.Random(time.time_ns())
        """,
        ["MVM003"],
        id="nested-clock-reported-once",
    ),
    pytest.param(
        """
        import time
        STARTED_AT = time.time()
        """,
        ["MVM004"],
        id="time-time-module-level",
    ),
    pytest.param(
        """
        from datetime import datetime, timezone
        BUILD_ID = datetime.now(timezone.utc).isoformat()
        """,
        ["MVM004"],
        id="datetime-now-module-level",
    ),
    pytest.param(
        """
        import datetime
        STAMP = datetime.datetime.utcnow()
        """,
        ["MVM004"],
        id="datetime-utcnow-module-level",
    ),
    pytest.param(
        """
        import os
        WORKER_ID = os.getpid()
        """,
        ["MVM004"],
        id="getpid-module-level",
    ),
    pytest.param(
        """
        import tempfile
        WORK_DIR = tempfile.mkdtemp()
        """,
        ["MVM005"],
        id="tempfile-mkdtemp-module-level",
    ),
    pytest.param(
        """
        from tempfile import mkstemp
        HANDLE, PATH = mkstemp()
        """,
        ["MVM005"],
        id="tempfile-mkstemp-from-import",
    ),
    pytest.param(
        """
        import boto3
        S3 = boto3.client("s3")
        TABLE = boto3.resource("dynamodb").Table("items")
        SESSION = boto3.Session()
        """,
        ["MVM006", "MVM006", "MVM006"],
        id="boto3-clients-module-level",
    ),
    pytest.param(
        """
        import httpx
        import redis
        import requests
        import socket
        import sqlite3
        import psycopg
        HTTP = requests.Session()
        CLIENT = httpx.Client()
        CACHE = redis.Redis()
        DATABASE = sqlite3.connect("app.db")
        POSTGRES = psycopg.connect("dbname=app")
        UPSTREAM = socket.create_connection(("127.0.0.1", 5432))
        """,
        ["MVM006"] * 6,
        id="connections-module-level",
    ),
    pytest.param(
        """
        import secrets

        class Settings:
            token = secrets.token_hex(8)
        """,
        ["MVM002"],
        id="class-attribute",
    ),
    pytest.param(
        """
        import uuid
        from dataclasses import dataclass, field

        @dataclass
        class Config:
            instance_id: str = field(default=str(uuid.uuid4()))
        """,
        ["MVM001"],
        id="dataclass-field-default",
    ),
    pytest.param(
        """
        import secrets
        from dataclasses import dataclass

        @dataclass
        class Config:
            key: str = secrets.token_hex(16)
        """,
        ["MVM002"],
        id="dataclass-plain-default",
    ),
    pytest.param(
        """
        import uuid
        from dataclasses import dataclass, field

        @dataclass
        class Config:
            instance_id: uuid.UUID = field(default_factory=uuid.uuid4)

        CONFIG = Config()
        """,
        ["MVM001"],
        id="dataclass-default-factory-instantiated-at-import",
    ),
    pytest.param(
        """
        import uuid
        from dataclasses import dataclass, field

        @dataclass
        class Event:
            event_id: uuid.UUID = field(default_factory=uuid.uuid4)

        def handler():
            return Event()
        """,
        [],
        id="dataclass-default-factory-per-request",
    ),
    pytest.param(
        """
        import secrets
        from dataclasses import dataclass, field

        @dataclass
        class Config:
            key: str = field(default_factory=lambda: secrets.token_hex(16))

        CONFIG = Config()
        """,
        ["MVM002"],
        id="dataclass-lambda-factory-instantiated-at-import",
    ),
    pytest.param(
        """
        import uuid

        def handler(request_id=uuid.uuid4()):
            return request_id
        """,
        ["MVM001"],
        id="default-argument-value",
    ),
    pytest.param(
        """
        import boto3

        class Store:
            def __init__(self):
                self.client = boto3.client("dynamodb")

        STORE = Store()
        """,
        ["MVM006"],
        id="init-of-class-instantiated-at-import",
    ),
    pytest.param(
        """
        import boto3

        class Store:
            def __init__(self):
                self.client = boto3.client("dynamodb")

        def handler():
            return Store()
        """,
        [],
        id="init-of-class-instantiated-per-request",
    ),
    pytest.param(
        """
        import sqlite3

        class Store:
            def connect(self):
                self.connection = sqlite3.connect("app.db")

        STORE = Store()
        STORE.connect()
        """,
        ["MVM006"],
        id="method-called-on-module-instance",
    ),
    pytest.param(
        """
        import secrets

        def make_key():
            return secrets.token_bytes(32)

        KEY = make_key()
        """,
        ["MVM002"],
        id="helper-called-at-import",
    ),
    pytest.param(
        """
        import secrets

        def inner():
            return secrets.token_bytes(32)

        def outer():
            return inner()

        KEY = outer()
        """,
        ["MVM002"],
        id="helper-two-calls-deep",
    ),
    pytest.param(
        """
        import secrets

        def make_key():
            return secrets.token_bytes(32)
        """,
        [],
        id="helper-never-called",
    ),
    pytest.param(
        """
        import uuid

        def main():
            print(uuid.uuid4())

        if __name__ == "__main__":
            main()
        """,
        ["MVM001"],
        id="main-block-runs-before-snapshot",
    ),
    # Instance ids made while the app starts.
    pytest.param(
        """
        import secrets
        from contextlib import asynccontextmanager
        from fastapi import FastAPI

        @asynccontextmanager
        async def lifespan(app):
            app.state.instance_id = secrets.token_hex(8)
            yield

        app = FastAPI(lifespan=lifespan)
        """,
        ["MVM002"],
        id="fastapi-lifespan",
    ),
    pytest.param(
        """
        import secrets
        from fastapi import FastAPI

        async def start_and_stop(app):
            app.state.instance_id = secrets.token_hex(8)
            yield

        app = FastAPI(lifespan=start_and_stop)
        """,
        ["MVM002"],
        id="fastapi-lifespan-other-name",
    ),
    pytest.param(
        """
        import secrets
        from fastapi import FastAPI

        app = FastAPI()

        @app.on_event("startup")
        def remember_instance():
            app.state.instance_id = secrets.token_hex(8)
        """,
        ["MVM002"],
        id="fastapi-startup-event",
    ),
    pytest.param(
        """
        import secrets
        from starlette.applications import Starlette

        def remember_instance():
            pass

        def make_token():
            return secrets.token_hex(8)

        app = Starlette(on_startup=[make_token])
        app.add_event_handler("startup", remember_instance)
        """,
        ["MVM002"],
        id="starlette-startup-handlers",
    ),
    pytest.param(
        """
        import secrets
        from contextlib import asynccontextmanager
        from litestar import Litestar

        @asynccontextmanager
        async def open_pool(app):
            app.state.pool_id = secrets.token_hex(8)
            yield

        def remember_instance(app):
            app.state.instance_id = secrets.token_hex(8)

        app = Litestar(route_handlers=[], lifespan=[open_pool], on_startup=[remember_instance])
        """,
        ["MVM002", "MVM002"],
        id="litestar-lifespan-list-and-on-startup",
    ),
    pytest.param(
        """
        import secrets
        from aiohttp import web

        async def remember_instance(app):
            app["instance_id"] = secrets.token_hex(8)

        app = web.Application()
        app.on_startup.append(remember_instance)
        """,
        ["MVM002"],
        id="aiohttp-on-startup",
    ),
    pytest.param(
        """
        import secrets
        from aiohttp import web

        async def client_session(app):
            app["instance_id"] = secrets.token_hex(8)
            yield

        def build():
            application = web.Application()
            application.cleanup_ctx.extend([client_session])
            return application
        """,
        ["MVM002"],
        id="aiohttp-cleanup-ctx-in-builder",
    ),
    pytest.param(
        """
        import secrets
        from aiohttp import web

        async def close_pool(app):
            app["closed_by"] = secrets.token_hex(8)

        app = web.Application()
        app.on_shutdown.append(close_pool)
        """,
        [],
        id="aiohttp-shutdown-handler-is-not-startup",
    ),
    pytest.param(
        """
        import secrets
        from flask import Flask

        def create_app():
            app = Flask(__name__)
            app.config["INSTANCE_ID"] = secrets.token_hex(8)
            return app
        """,
        ["MVM002"],
        id="flask-create-app",
    ),
    pytest.param(
        """
        import secrets
        from flask import Flask

        def create_app():
            app = Flask(__name__)

            @app.get("/token")
            def token():
                return {"token": secrets.token_urlsafe(32)}

            return app
        """,
        [],
        id="flask-handler-inside-create-app",
    ),
    pytest.param(
        """
        import secrets
        from django.apps import AppConfig

        class DemoConfig(AppConfig):
            name = "demo"

            def ready(self):
                self.instance_id = secrets.token_hex(8)
        """,
        ["MVM002"],
        id="django-appconfig-ready",
    ),
    pytest.param(
        """
        import secrets
        from django.apps import AppConfig as BaseConfig

        from .microvm import on_run

        def new_key():
            return secrets.token_hex(8)

        class DemoConfig(BaseConfig):
            def ready(self):
                on_run(new_key)
        """,
        [],
        id="django-ready-registers-on-run",
    ),
    # Memoised tokens, called at import or only by handlers, which warm-up requests reach before the snapshot.
    pytest.param(
        """
        import functools
        import secrets

        @functools.lru_cache(maxsize=1)
        def service_token():
            return secrets.token_urlsafe(32)

        TOKEN = service_token()
        """,
        ["MVM007"],
        id="lru-cache-token-called-at-import",
    ),
    pytest.param(
        """
        from functools import lru_cache
        import secrets

        @lru_cache
        def service_token():
            return secrets.token_urlsafe(32)

        def handler():
            return {"token": service_token()}
        """,
        ["MVM007"],
        id="lru-cache-token-called-by-handler",
    ),
    pytest.param(
        """
        import functools
        import boto3

        @functools.cache
        def s3():
            return boto3.client("s3")
        """,
        ["MVM007"],
        id="cache-client-factory",
    ),
    pytest.param(
        """
        import functools
        import secrets

        from .microvm import on_run

        @functools.lru_cache
        def run_token():
            return secrets.token_urlsafe(32)

        @on_run
        def prepare():
            run_token()
        """,
        [],
        id="lru-cache-called-only-from-on-run",
    ),
    pytest.param(
        """
        import secrets

        _TOKEN = None

        def handler():
            global _TOKEN
            if _TOKEN is None:
                _TOKEN = secrets.token_hex(16)
            return _TOKEN
        """,
        ["MVM007"],
        id="lazy-global-in-handler",
    ),
    pytest.param(
        """
        import secrets

        CACHE = {}

        def handler():
            if "token" not in CACHE:
                CACHE["token"] = secrets.token_hex(16)
            return CACHE["token"]
        """,
        ["MVM007"],
        id="module-dict-filled-in-handler",
    ),
    pytest.param(
        """
        import time

        STARTED_AT = None

        def handler():
            global STARTED_AT
            if STARTED_AT is None:
                STARTED_AT = time.time()
            return STARTED_AT
        """,
        ["MVM007"],
        id="lazy-start-time-in-handler",
    ),
    pytest.param(
        """
        import secrets
        import time

        LAST_SEEN = 0.0
        STATS = {}

        def handler():
            global LAST_SEEN
            LAST_SEEN = time.time()
            STATS["last_token"] = secrets.token_hex(16)
            return STATS
        """,
        [],
        id="global-updated-every-request",
    ),
    pytest.param(
        """
        import secrets

        def handler(request):
            request.state.token = secrets.token_hex(16)
            cache = {}
            cache["token"] = secrets.token_hex(16)
            return cache
        """,
        [],
        id="request-and-local-state-in-handler",
    ),
    # A process-wide prefix joined with a counter.
    pytest.param(
        """
        import itertools
        from uuid import uuid4

        PREFIX = uuid4().hex[:8]
        COUNTER = itertools.count()

        def next_id():
            return f"{PREFIX}-{next(COUNTER)}"
        """,
        ["MVM001"],
        id="uuid-prefix-with-counter",
    ),
    pytest.param(
        """
        import secrets
        import uuid

        def handler():
            return {"id": str(uuid.uuid4()), "token": secrets.token_hex(16)}
        """,
        [],
        id="values-made-per-request",
    ),
    pytest.param(
        """
        import secrets
        import uuid

        from .microvm import on_resume, on_run, per_vm

        session_id = per_vm(lambda: secrets.token_urlsafe(16))
        node_id = per_vm(uuid.uuid4)

        @on_run
        def connect():
            global CLIENT
            import boto3
            CLIENT = boto3.client("s3")

        @on_run
        def remember_run():
            global RUN_TOKEN
            RUN_TOKEN = secrets.token_hex(16)

        def reconnect():
            global CONNECTION
            import socket
            CONNECTION = socket.create_connection(("127.0.0.1", 5432))

        on_resume(reconnect)
        """,
        [],
        id="lifecycle-api-relative-import",
    ),
    pytest.param(
        """
        import secrets

        import demo.microvm as lifecycle
        from demo.microvm import on_run

        session_id = lifecycle.per_vm(lambda: secrets.token_urlsafe(16))

        @lifecycle.on_run
        def first():
            global FIRST
            FIRST = secrets.token_hex()

        @on_run
        def second():
            global SECOND
            SECOND = secrets.token_hex()
        """,
        [],
        id="lifecycle-api-absolute-import",
    ),
    pytest.param(
        """
        import secrets

        from .microvm import on_run

        @on_run
        def reset():
            global TOKEN
            TOKEN = secrets.token_hex()

        reset()
        """,
        ["MVM002"],
        id="on-run-callback-also-called-at-import",
    ),
    pytest.param(
        """
        import boto3

        from .microvm import per_vm

        client = per_vm(boto3.client("s3"))
        """,
        ["MVM006"],
        id="per-vm-given-a-value-not-a-factory",
    ),
    pytest.param(
        """
        import uuid
        from fastapi import FastAPI

        app = FastAPI()

        @app.get(f"/{uuid.uuid4()}")
        def hidden():
            return {}
        """,
        ["MVM001"],
        id="decorator-argument",
    ),
    pytest.param(
        """
        import secrets

        REGISTRY = {}

        def register(function):
            REGISTRY[function.__name__] = secrets.token_hex(8)
            return function

        @register
        def handler():
            return {}
        """,
        ["MVM002"],
        id="project-decorator-applied-at-import",
    ),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_rule_table(tmp_path: Path, source: str, expected: list[str]) -> None:
    result = scan(tmp_path, source)
    messages = "\n".join(f"{f.location}: {f.rule} {f.message}" for f in result.findings)
    assert rules_of(result) == expected, messages


def test_cross_module_helper_at_import(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "tokens.py": """
                import secrets

                def make_token():
                    return secrets.token_hex(16)
            """,
            "app.py": """
                from .tokens import make_token

                TOKEN = make_token()
            """,
        },
    )
    result = snapcheck.scan_paths([package])
    assert rules_of(result) == ["MVM002"]
    assert result.findings[0].path.endswith("tokens.py")
    assert "called at import" in result.findings[0].message


def test_finding_location_is_one_based(tmp_path: Path) -> None:
    prefix = 'LABEL = "é"; import uuid; ID = '
    result = scan(tmp_path, prefix + "uuid.uuid4()\n")
    assert len(result.findings) == 1
    finding = result.findings[0]
    assert finding.line == 1
    # The column counts characters, not UTF-8 bytes: "é" is one character and two bytes.
    assert finding.column == len(prefix) + 1


def test_message_names_call_and_place(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import secrets

        def make_key():
            return secrets.token_bytes(32)

        KEY = make_key()
        """,
    )
    message = result.findings[0].message
    assert "secrets.token_bytes(32)" in message
    assert "make_key()" in message
    assert "called at import" in message
    assert "app.py:7" in message


# ---------------------------------------------------------------------------
# Suppressions
# ---------------------------------------------------------------------------


def test_suppression_with_reason_suppresses(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import random
        random.seed(42)  # microvm: ignore[MVM003] reason: a fixed seed for a reproducible demo
        """,
    )
    assert result.findings == []
    assert [finding.rule for finding in result.suppressed] == ["MVM003"]
    assert result.suppressed[0].reason == "a fixed seed for a reproducible demo"


def test_suppression_without_reason_is_reported(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import random
        random.seed(42)  # microvm: ignore[MVM003]
        """,
    )
    assert rules_of(result) == ["MVM003", "MVM008"]
    assert result.suppressed == []
    invalid = next(finding for finding in result.findings if finding.rule == "MVM008")
    assert "no reason" in invalid.message


def test_suppression_with_empty_reason_is_reported(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import random
        random.seed(42)  # microvm: ignore[MVM003] reason:
        """,
    )
    assert rules_of(result) == ["MVM003", "MVM008"]


def test_suppression_of_other_rule_keeps_finding(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import random
        random.seed(42)  # microvm: ignore[MVM001] reason: not the rule that fires here
        """,
    )
    assert rules_of(result) == ["MVM003"]


def test_suppression_of_unknown_rule_is_reported(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import random
        random.seed(42)  # microvm: ignore[MVM999] reason: a fixed seed for a demo
        """,
    )
    assert rules_of(result) == ["MVM003", "MVM008"]
    invalid = next(finding for finding in result.findings if finding.rule == "MVM008")
    assert "MVM999" in invalid.message


def test_suppression_without_brackets_is_reported(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import random
        random.seed(42)  # microvm: ignore reason: a fixed seed for a demo
        """,
    )
    assert rules_of(result) == ["MVM003", "MVM008"]


def test_mvm008_cannot_be_suppressed(tmp_path: Path) -> None:
    result = scan(tmp_path, "X = 1  # microvm: ignore[MVM008] reason: hide the checker's own rule\n")
    assert rules_of(result) == ["MVM008"]


def test_suppression_lists_several_rules(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import random, time
        A, B = random.random(), time.time()  # microvm: ignore[MVM003, MVM004] reason: demo values shown once
        """,
    )
    assert result.findings == []
    assert sorted(finding.rule for finding in result.suppressed) == ["MVM003", "MVM004"]


def test_suppression_on_last_line_of_statement(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import uuid
        NAMES = [
            str(uuid.uuid4()),
        ]  # microvm: ignore[MVM001] reason: a demo id that is shown, never trusted
        """,
    )
    assert result.findings == []
    assert len(result.suppressed) == 1


def test_suppression_covers_own_statement(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import uuid
        A = uuid.uuid4()  # microvm: ignore[MVM001] reason: a demo id that is shown, never trusted
        B = uuid.uuid4()
        """,
    )
    assert [finding.line for finding in result.findings] == [4]


def test_prose_comment_is_not_suppression(tmp_path: Path) -> None:
    result = scan(tmp_path, "X = 1  # see how microvm: ignore[...] comments work in the README\n")
    assert result.findings == []


# ---------------------------------------------------------------------------
# Report and command line
# ---------------------------------------------------------------------------


def test_json_report_shape(tmp_path: Path) -> None:
    result = scan(
        tmp_path,
        """
        import os
        import random
        KEY = os.urandom(16)
        random.seed(1)  # microvm: ignore[MVM003] reason: a fixed seed for a reproducible demo
        """,
    )
    report = result.to_json()
    assert report["tool"] == "microvm-check"
    assert report["schema_version"] == 1
    assert report["files_scanned"] == 2
    assert report["finding_count"] == 1
    finding = report["findings"][0]
    assert set(finding) == {"rule", "name", "path", "line", "column", "message", "why", "fix"}
    assert finding["rule"] == "MVM002"
    assert finding["name"] == "entropy-before-snapshot"
    assert finding["line"] == 4
    assert finding["column"] == 7
    assert finding["path"].endswith("app.py")
    suppressed = report["suppressed"][0]
    assert suppressed["rule"] == "MVM003"
    assert suppressed["reason"] == "a fixed seed for a reproducible demo"


def test_rule_table_is_complete() -> None:
    for rule_id, rule in snapcheck.RULES.items():
        assert rule.id == rule_id
        assert rule.id.startswith("MVM")
        assert rule.name
        assert rule.why.endswith(".")
        assert rule.fix.endswith(".")
    for rule_id in [*snapcheck.EXACT_CALLS.values(), *snapcheck.PREFIX_CALLS.values()]:
        assert rule_id in snapcheck.RULES


def test_cli_exit_zero_without_findings(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"app.py": "import uuid\n\ndef handler():\n    return uuid.uuid4()\n"})
    completed = run_check(str(package), cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no findings" in completed.stdout


def test_cli_exit_one_with_findings(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"app.py": "import uuid\nSESSION_ID = str(uuid.uuid4())\n"})
    completed = run_check(str(package), cwd=tmp_path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "demo/app.py:2:18: MVM001" in completed.stdout
    assert "fix:" in completed.stdout


def test_cli_json_format_and_report_file(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"app.py": "import uuid\nSESSION_ID = str(uuid.uuid4())\n"})
    report_path = tmp_path / "report.json"
    completed = run_check(str(package), "--format", "json", "--json", str(report_path), cwd=tmp_path)
    assert completed.returncode == 1, completed.stderr
    printed = json.loads(completed.stdout)
    written = json.loads(report_path.read_text(encoding="utf-8"))
    assert printed == written
    assert [finding["rule"] for finding in written["findings"]] == ["MVM001"]


def test_cli_exit_two_on_syntax_error(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"app.py": "import uuid\nSESSION_ID = (\n"})
    completed = run_check(str(package), cwd=tmp_path)
    assert completed.returncode == 2
    assert "demo/app.py:2" in completed.stderr
    assert "does not parse" in completed.stderr


def test_cli_exit_two_on_missing_path(tmp_path: Path) -> None:
    completed = run_check(str(tmp_path / "missing"), cwd=tmp_path)
    assert completed.returncode == 2
    assert "missing" in completed.stderr
    assert "no such file or directory" in completed.stderr


def test_cli_exit_two_on_non_python_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not Python\n", encoding="utf-8")
    completed = run_check(str(notes), cwd=tmp_path)
    assert completed.returncode == 2
    assert "notes.txt" in completed.stderr


@pytest.mark.parametrize("arguments", [["--format", "xml"], ["--no-such-option"]], ids=["bad-format", "bad-option"])
def test_cli_exit_two_on_usage_error(tmp_path: Path, arguments: list[str]) -> None:
    completed = run_check(*arguments, cwd=tmp_path)
    assert completed.returncode == 2
    assert "usage: microvm-check" in completed.stderr


def test_cli_exit_two_without_python_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    completed = run_check(str(empty), cwd=tmp_path)
    assert completed.returncode == 2
    assert "no Python files found" in completed.stderr


def test_cli_exit_two_on_unwritable_report(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"app.py": "X = 1\n"})
    completed = run_check(str(package), "--json", str(tmp_path / "missing-dir" / "report.json"), cwd=tmp_path)
    assert completed.returncode == 2
    assert "cannot write the JSON report" in completed.stderr


# ---------------------------------------------------------------------------
# This project's own package
# ---------------------------------------------------------------------------


def test_directory_scan_skips_subpackages() -> None:
    files = snapcheck.collect_files([snapcheck.PACKAGE_DIR])
    for name in snapcheck.SKIPPED_SUBPACKAGES:
        skipped = (snapcheck.PACKAGE_DIR / name).resolve()
        assert not any(skipped in path.parents for path in files), name
    assert (snapcheck.PACKAGE_DIR / "__init__.py").resolve() in files


def test_own_package_has_no_findings() -> None:
    result = snapcheck.scan_paths([snapcheck.PACKAGE_DIR])
    assert result.files_scanned > 0
    assert result.findings == [], snapcheck.format_text(result)


def test_cli_default_path_is_own_package(tmp_path: Path) -> None:
    completed = run_check("--format", "json", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert report["files_scanned"] > 0
    assert report["findings"] == []
