"""Paths, names and the options of a run, shared by every part of the benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The template repository, and the baseline apps that the benchmark copies into its work folder.
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "scripts" / "benchmark_baselines"

FRAMEWORKS = ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp")
FRAMEWORK_TITLES = {
    "fastapi": "FastAPI on uvicorn (ASGI)",
    "flask": "Flask on waitress (WSGI)",
    "django": "Django on waitress (WSGI)",
    "litestar": "Litestar on uvicorn (ASGI)",
    "starlette": "Starlette on uvicorn (ASGI)",
    "aiohttp": "aiohttp on its own server",
}

HOOK_PREFIX = "/aws/lambda-microvms/runtime/v1/"
LOOPBACK = "127.0.0.1"

# Kinds of app measured.
TEMPLATE = "template"
BARE = "bare"
AWS_EXAMPLE = "aws-example"


class BenchmarkError(Exception):
    """An error that stops the benchmark; the message states what failed and what to do."""


@dataclass(frozen=True)
class Plan:
    """How much to measure in this run."""

    frameworks: tuple[str, ...]
    run_samples: int
    fresh_run_samples: int
    memory_samples: int
    load_seconds: float
    load_rounds: int
    max_requests: int
    concurrencies: tuple[int, ...] = (1, 16)
    suspend_outlasting_case: bool = True
