"""Tests of microvm.toml loading: defaults, overrides and the errors for invalid values."""

from __future__ import annotations

import copy
import re

import pytest

from conftest import PACKAGE

config = pytest.importorskip(f"{PACKAGE}.microvm.config")


def test_defaults_enable_every_hook() -> None:
    settings = config.load_settings({})
    assert all(settings.hook(name).enabled for name in config.ALL_HOOKS)
    assert settings.hook("run").timeout_seconds == 2
    assert settings.hook("suspend").timeout_seconds == 5
    assert settings.hook("ready").timeout_seconds == 60


def test_hooks_api_config_shape() -> None:
    hooks = config.load_settings({}).hooks_api_config()
    assert hooks["microvmImageHooks"]["ready"] == "ENABLED"
    assert hooks["microvmImageHooks"]["validateTimeoutInSeconds"] == 60
    assert hooks["microvmHooks"]["runTimeoutInSeconds"] == 2
    assert set(hooks) == {"port", "microvmImageHooks", "microvmHooks"}


def test_port_overrides_apply() -> None:
    settings = config.load_settings({"APP_PORT": "18080", "HOOKS_PORT": "19000", "MICROVM_WORKERS": "2"})
    assert (settings.app_port, settings.hooks_port, settings.workers) == (18080, 19000, 2)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({"APP_PORT": "http"}, "APP_PORT='http' is invalid", id="port-not-number"),
        pytest.param({"APP_PORT": "80"}, "from 1024 to 65535", id="port-privileged"),
        pytest.param({"HOOKS_PORT": "70000"}, "from 1024 to 65535", id="port-too-large"),
        pytest.param({"HOOKS_PORT": "8022"}, "shell port", id="port-shell"),
        pytest.param({"APP_PORT": "9100", "HOOKS_PORT": "9100"}, "both 9100", id="ports-equal"),
        pytest.param({"MICROVM_WORKERS": "0"}, "from 1 to 64", id="workers-zero"),
        pytest.param({"MICROVM_REQUEST_GATE_TIMEOUT_SECONDS": "soon"}, "'soon' is invalid", id="gate-not-number"),
        pytest.param(
            {"MICROVM_REQUEST_GATE_TIMEOUT_SECONDS": "-1"},
            "MICROVM_REQUEST_GATE_TIMEOUT_SECONDS = -1.0 is invalid",
            id="gate-negative",
        ),
    ],
)
def test_invalid_override_rejected(environ: dict[str, str], message: str) -> None:
    with pytest.raises(config.SettingsError, match=re.escape(message)):
        config.load_settings(environ)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(lambda raw: raw["hooks"]["run"].update(timeout_seconds=61), "from 1 to 60", id="run-timeout"),
        pytest.param(lambda raw: raw["hooks"]["ready"].update(timeout_seconds=0), "from 1 to 3600", id="ready-zero"),
        pytest.param(lambda raw: raw["hooks"]["ready"].update(enabled=False), "requires /ready", id="ready-off"),
        pytest.param(lambda raw: raw["hooks"]["resume"].update(enabled="yes"), "use true or false", id="enabled-text"),
        pytest.param(lambda raw: raw["image"].update(memory_mib=3000), "memory_mib = 3000", id="memory"),
        pytest.param(lambda raw: raw["warmup"].append({"path": "healthz"}), "absolute path", id="warmup-path"),
        pytest.param(lambda raw: raw["app"].update(ungated_paths="/healthz"), "list of paths", id="ungated-str"),
    ],
)
def test_invalid_settings_file_rejected(monkeypatch: pytest.MonkeyPatch, edit, message: str) -> None:
    raw = copy.deepcopy(config.read_settings_file())
    edit(raw)
    monkeypatch.setattr(config, "read_settings_file", lambda: raw)
    with pytest.raises(config.SettingsError, match=re.escape(message)):
        config.load_settings({})
