"""Fixtures shared by the template's tests: baking projects and installing them.

Projects are baked with cookiecutter's API from this repository, with a private
cookiecutter configuration so that a run never reads or writes the user's
~/.cookiecutterrc or ~/.cookiecutter_replay. Installed projects get a virtual
environment made by uv, with downloads cached in UV_CACHE_DIR (default
``.cache/uv`` in this repository) so that repeated runs are fast.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from baking import InstalledProject, bake_project, default_answers, install_project

Bake = Callable[..., Path]


@pytest.fixture(scope="session", autouse=True)
def private_tempdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``tempfile`` at a session directory, because cookiecutter leaves each rendered hook script there."""
    directory = tmp_path_factory.mktemp("tempfile")
    previous = tempfile.tempdir
    tempfile.tempdir = str(directory)
    yield directory
    tempfile.tempdir = previous


@pytest.fixture(scope="session")
def cookiecutter_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a cookiecutter user configuration that keeps clones and replay files in a session directory."""
    directory = tmp_path_factory.mktemp("cookiecutter-config")
    config_file = directory / "config.yaml"
    # JSON strings are valid YAML scalars, which keeps unusual temporary paths intact.
    config_file.write_text(
        f"cookiecutters_dir: {json.dumps(str(directory / 'templates'))}\n"
        f"replay_dir: {json.dumps(str(directory / 'replay'))}\n",
        encoding="utf-8",
    )
    return config_file


@pytest.fixture
def bake(tmp_path: Path, cookiecutter_config: Path) -> Bake:
    """Return ``bake(**extra_context) -> Path``, which bakes into the test's tmp_path and fails the test on error."""
    counter = iter(range(1_000_000))

    def bake_in_tmp_path(**extra_context: Any) -> Path:
        output_dir = tmp_path / f"bake-{next(counter)}"
        try:
            project = bake_project(output_dir, cookiecutter_config, extra_context)
        except Exception as error:
            raise AssertionError(f"baking with extra context {extra_context!r} failed: {error!r}") from error
        assert project.is_dir(), f"cookiecutter returned {project}, which is not a directory"
        return project

    return bake_in_tmp_path


@pytest.fixture
def bake_from_replay(tmp_path: Path, cookiecutter_config: Path) -> Callable[[Path], Path]:
    """Return ``bake_from_replay(replay_file) -> Path``, which bakes from a replay file such as .cookiecutter.json."""
    counter = iter(range(1_000_000))

    def bake_in_tmp_path(replay_file: Path) -> Path:
        output_dir = tmp_path / f"replay-{next(counter)}"
        try:
            return bake_project(output_dir, cookiecutter_config, replay_file=replay_file)
        except Exception as error:
            raise AssertionError(f"baking from the replay file {replay_file} failed: {error!r}") from error

    return bake_in_tmp_path


@pytest.fixture(scope="session")
def bake_cached(tmp_path_factory: pytest.TempPathFactory, cookiecutter_config: Path) -> Bake:
    """Return ``bake_cached(**extra_context) -> Path``, which bakes each distinct answer set once per session.

    Tests must not modify the returned project; copy it first.
    """
    projects: dict[str, Path] = {}
    failures: dict[str, BaseException] = {}

    def bake_once(**extra_context: Any) -> Path:
        key = json.dumps(extra_context, sort_keys=True)
        if key in failures:
            raise AssertionError(f"baking with extra context {extra_context!r} failed earlier: {failures[key]!r}")
        if key not in projects:
            output_dir = tmp_path_factory.mktemp("baked")
            try:
                projects[key] = bake_project(output_dir, cookiecutter_config, extra_context)
            except Exception as error:
                failures[key] = error
                raise AssertionError(f"baking with extra context {extra_context!r} failed: {error!r}") from error
        return projects[key]

    return bake_once


@pytest.fixture(scope="session")
def installed_project(
    tmp_path_factory: pytest.TempPathFactory, cookiecutter_config: Path
) -> Callable[..., InstalledProject]:
    """Return ``installed_project(framework, **answers) -> InstalledProject``, cached per answer set.

    Each distinct answer set is baked and installed once per session. Tests may
    run commands in the project but must not change its files.
    """
    projects: dict[str, InstalledProject] = {}
    # A failed bake or install is not retried, so every later test of it fails at once.
    failures: dict[str, str] = {}

    def get(framework: str, **answers: Any) -> InstalledProject:
        extra_context = {"framework": framework, **answers}
        key = json.dumps(extra_context, sort_keys=True)
        if key in failures:
            pytest.fail(f"installing the project for {extra_context!r} failed earlier:\n{failures[key]}", pytrace=False)
        if key not in projects:
            output_dir = tmp_path_factory.mktemp(f"installed-{framework}")
            try:
                project = bake_project(output_dir, cookiecutter_config, extra_context)
                projects[key] = install_project(project, default_answers(**extra_context))
            except (Exception, pytest.fail.Exception) as error:
                failures[key] = str(error) or repr(error)
                raise
        return projects[key]

    return get
