"""Load the MicroVM settings from the package's ``microvm.toml``.

This module is the single reader of that file: the hook server, the deploy CLI
and the tests that compare the infrastructure templates with it all call
:func:`load_settings`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

HOOK_PATH_PREFIX = "/aws/lambda-microvms/runtime/v1/"
BUILD_HOOKS = ("ready", "validate")
RUNTIME_HOOKS = ("run", "resume", "suspend", "terminate")
ALL_HOOKS = BUILD_HOOKS + RUNTIME_HOOKS

# Timeout ranges from the lambda-microvms service model (botocore 1.44.5).
BUILD_HOOK_TIMEOUT_RANGE = (1, 3600)
RUNTIME_HOOK_TIMEOUT_RANGE = (1, 60)
PORT_RANGE = (1024, 65535)
# The platform's shell ingress port: an app or hook listener there would clash.
SHELL_PORT = 8022
MEMORY_SIZES_MIB = (512, 1024, 2048, 4096, 8192)

# The package that contains this lifecycle package, e.g. "my_app".
APP_PACKAGE = __package__.rpartition(".")[0]


class SettingsError(ValueError):
    """A value in microvm.toml or in an override variable is invalid."""


@dataclass(frozen=True)
class HookSettings:
    """One lifecycle hook: whether the platform calls it, and its timeout in seconds."""

    name: str
    enabled: bool
    timeout_seconds: int


@dataclass(frozen=True)
class WarmupRequest:
    """A request that /ready and /validate send through the app, and the status it must get."""

    method: str
    path: str
    status: int


@dataclass(frozen=True)
class Settings:
    """The validated contents of microvm.toml, with environment overrides applied."""

    app_port: int
    hooks_port: int
    workers: int
    request_gate_timeout_seconds: float
    ungated_paths: tuple[str, ...]
    memory_mib: int
    hooks: Mapping[str, HookSettings]
    warmup: tuple[WarmupRequest, ...]

    def hook(self, name: str) -> HookSettings:
        return self.hooks[name]

    def hooks_api_config(self) -> dict[str, Any]:
        """Return the ``hooks`` parameter of CreateMicrovmImage in the API's camelCase shape."""

        def state(name: str) -> str:
            return "ENABLED" if self.hooks[name].enabled else "DISABLED"

        image_hooks: dict[str, Any] = {}
        for name in BUILD_HOOKS:
            image_hooks[name] = state(name)
            image_hooks[f"{name}TimeoutInSeconds"] = self.hooks[name].timeout_seconds
        vm_hooks: dict[str, Any] = {}
        for name in RUNTIME_HOOKS:
            vm_hooks[name] = state(name)
            vm_hooks[f"{name}TimeoutInSeconds"] = self.hooks[name].timeout_seconds
        return {
            "port": self.hooks_port,
            "microvmImageHooks": image_hooks,
            "microvmHooks": vm_hooks,
        }


def read_settings_file() -> dict[str, Any]:
    """Parse the package's microvm.toml into a plain dictionary."""
    text = resources.files(APP_PACKAGE).joinpath("microvm.toml").read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{APP_PACKAGE}/microvm.toml is not valid TOML: {error}") from error


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read microvm.toml, apply the override variables, and validate.

    Overrides: APP_PORT, HOOKS_PORT, MICROVM_WORKERS and MICROVM_REQUEST_GATE_TIMEOUT_SECONDS.
    """
    environ = os.environ if environ is None else environ
    raw = read_settings_file()
    app = raw.get("app", {})
    hooks_raw = raw.get("hooks", {})

    app_port = _port(_override(environ, "APP_PORT", app.get("port")), "APP_PORT or [app] port")
    hooks_port = _port(_override(environ, "HOOKS_PORT", hooks_raw.get("port")), "HOOKS_PORT or [hooks] port")
    if app_port == hooks_port:
        raise SettingsError(
            f"the app port and the hooks port are both {app_port}; "
            "set HOOKS_PORT or [hooks] port to a different port, so that app tokens cannot reach the hooks"
        )
    workers = _int_in_range(
        _override(environ, "MICROVM_WORKERS", app.get("workers", 1)), "MICROVM_WORKERS or [app] workers", (1, 64)
    )

    gate_timeout = app.get("request_gate_timeout_seconds", 10.0)
    gate_label = "[app] request_gate_timeout_seconds"
    gate_override = environ.get("MICROVM_REQUEST_GATE_TIMEOUT_SECONDS")
    if gate_override:
        gate_label = "MICROVM_REQUEST_GATE_TIMEOUT_SECONDS"
        try:
            gate_timeout = float(gate_override)
        except ValueError:
            raise SettingsError(
                f"MICROVM_REQUEST_GATE_TIMEOUT_SECONDS={gate_override!r} is invalid; "
                "use a number of seconds, for example 10"
            ) from None
    if not isinstance(gate_timeout, (int, float)) or isinstance(gate_timeout, bool) or not 0 <= gate_timeout <= 300:
        raise SettingsError(
            f"{gate_label} = {gate_timeout!r} is invalid; "
            "use a number of seconds from 0 to 300, for example 10"
        )
    ungated = app.get("ungated_paths", ["/healthz"])
    if not isinstance(ungated, list) or not all(isinstance(p, str) and p.startswith("/") for p in ungated):
        raise SettingsError(
            f'[app] ungated_paths = {ungated!r} is invalid; use a list of paths, for example ["/healthz"]'
        )

    memory = raw.get("image", {}).get("memory_mib", 2048)
    if memory not in MEMORY_SIZES_MIB:
        raise SettingsError(
            f"[image] memory_mib = {memory!r} is invalid; use one of {', '.join(map(str, MEMORY_SIZES_MIB))}"
        )

    hooks = {name: _hook(name, hooks_raw.get(name, {})) for name in ALL_HOOKS}
    if any(hooks[name].enabled for name in RUNTIME_HOOKS) and not hooks["ready"].enabled:
        raise SettingsError(
            "[hooks.ready] is disabled but a runtime hook is enabled; "
            "the platform requires /ready when any runtime hook is used, so enable it"
        )

    warmup = tuple(_warmup(index, entry) for index, entry in enumerate(raw.get("warmup", [])))
    return Settings(
        app_port=app_port,
        hooks_port=hooks_port,
        workers=workers,
        request_gate_timeout_seconds=float(gate_timeout),
        ungated_paths=tuple(ungated),
        memory_mib=memory,
        hooks=hooks,
        warmup=warmup,
    )


def _override(environ: Mapping[str, str], variable: str, default: Any) -> Any:
    value = environ.get(variable)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{variable}={value!r} is invalid; use a whole number, for example {default}") from None


def _int_in_range(value: Any, label: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SettingsError(f"{label} = {value!r} is invalid; use a whole number from {low} to {high}")
    return value


def _port(value: Any, label: str) -> int:
    port = _int_in_range(value, label, PORT_RANGE)
    if port == SHELL_PORT:
        raise SettingsError(
            f"{label} = {port} is the platform's shell port; choose another port, for example 8080 or 9000"
        )
    return port


def _hook(name: str, raw: Mapping[str, Any]) -> HookSettings:
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SettingsError(f"[hooks.{name}] enabled = {enabled!r} is invalid; use true or false")
    bounds = BUILD_HOOK_TIMEOUT_RANGE if name in BUILD_HOOKS else RUNTIME_HOOK_TIMEOUT_RANGE
    timeout = _int_in_range(raw.get("timeout_seconds"), f"[hooks.{name}] timeout_seconds", bounds)
    return HookSettings(name=name, enabled=enabled, timeout_seconds=timeout)


def _warmup(index: int, raw: Mapping[str, Any]) -> WarmupRequest:
    method = raw.get("method", "GET")
    path = raw.get("path")
    status = raw.get("status", 200)
    if not isinstance(method, str) or not method.isalpha():
        raise SettingsError(f"[[warmup]] entry {index}: method = {method!r} is invalid; use an HTTP method such as GET")
    if not isinstance(path, str) or not path.startswith("/"):
        raise SettingsError(
            f'[[warmup]] entry {index}: path = {path!r} is invalid; use an absolute path such as "/healthz"'
        )
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise SettingsError(f"[[warmup]] entry {index}: status = {status!r} is invalid; use an HTTP status such as 200")
    return WarmupRequest(method=method.upper(), path=path, status=status)
