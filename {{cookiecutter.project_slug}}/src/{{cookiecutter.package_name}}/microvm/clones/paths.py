"""The paths whose values the harness checks, from ``[tool.microvm.uniqueness]`` in pyproject.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HarnessError

DEFAULT_PER_VM = ("/session",)
DEFAULT_PER_REQUEST = ("/token",)


@dataclass(frozen=True)
class UniquenessPaths:
    """The paths whose values must be unique per MicroVM and per request."""

    per_vm: tuple[str, ...] = DEFAULT_PER_VM
    per_request: tuple[str, ...] = DEFAULT_PER_REQUEST


def read_uniqueness_paths(pyproject: Path) -> UniquenessPaths:
    """Read ``[tool.microvm.uniqueness]`` from ``pyproject``; a missing table or list gets its default."""
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{pyproject} not found; run from the project root or pass --pyproject PATH") from None
    except tomllib.TOMLDecodeError as error:
        raise HarnessError(f"{pyproject} is not valid TOML: {error}") from error

    table: Any = document
    for key in ("tool", "microvm", "uniqueness"):
        table = table.get(key, {}) if isinstance(table, dict) else None
    if not isinstance(table, dict):
        raise HarnessError(
            f"[tool.microvm.uniqueness] in {pyproject} is not a table; give it per_vm and per_request lists"
        )
    label = f"[tool.microvm.uniqueness] {{}} ({pyproject})"
    per_vm = path_list(table.get("per_vm", list(DEFAULT_PER_VM)), label.format("per_vm"))
    per_request = path_list(table.get("per_request", list(DEFAULT_PER_REQUEST)), label.format("per_request"))
    return UniquenessPaths(per_vm, per_request)


def path_list(value: Any, label: str) -> tuple[str, ...]:
    """Return ``value`` as a tuple, or raise HarnessError naming ``label`` unless it lists absolute paths."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.startswith("/") for item in value):
        raise HarnessError(f'{label} = {value!r} is invalid; use a list of absolute paths, for example ["/session"]')
    return tuple(value)
