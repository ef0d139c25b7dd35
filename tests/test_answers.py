"""Bake with invalid and hostile answers through cookiecutter itself.

Invalid answers must stop the bake with a message that names the value and
leave no output directory. Hostile but valid answers must reach every file
intact, so that each file still parses and gives the value back.
"""

from __future__ import annotations

import email.policy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from baking import COOKIECUTTER_JSON, bake_project, default_answers
from cookiecutter.exceptions import FailedHookException
from project_checks import (
    json_errors,
    python_compile_errors,
    read_answers_file,
    toml_errors,
    unrendered_jinja,
    yaml_errors,
)

# Each row: the extra context, then fragments that the hook's output must contain.
INVALID_ANSWERS = [
    pytest.param({"project_slug": "My App", "package_name": "my_app"}, ["project_slug 'My App'"], id="slug-space"),
    pytest.param({"project_slug": "-app", "package_name": "app_one"}, ["project_slug '-app'"], id="slug-hyphen"),
    pytest.param({"project_slug": "a" * 46, "package_name": "app_one"}, ["at most 45"], id="slug-too-long"),
    pytest.param(
        {"project_name": "2048 Game"}, ["Invalid project_slug", "Invalid package_name"], id="slug-from-name"
    ),
    pytest.param({"package_name": "billing-api"}, ["package_name 'billing-api'"], id="package-hyphen"),
    pytest.param({"package_name": "class"}, ["package_name 'class'", "Python keyword"], id="package-keyword"),
    pytest.param({"package_name": "json"}, ["package_name 'json'", "standard-library"], id="package-stdlib"),
    pytest.param({"package_name": "flask"}, ["package_name 'flask'", "clashes"], id="package-flask"),
    pytest.param({"package_name": "microvm"}, ["package_name 'microvm'", "clashes"], id="package-microvm"),
    pytest.param({"app_port": "80"}, ["app_port '80'", "from 1024 to 65535"], id="app-port-privileged"),
    pytest.param({"app_port": "65536"}, ["app_port '65536'", "from 1024 to 65535"], id="app-port-too-high"),
    pytest.param({"app_port": "8080.5"}, ["app_port '8080.5'", "digits only"], id="app-port-decimal"),
    pytest.param({"hooks_port": "http"}, ["hooks_port 'http'", "digits only"], id="hooks-port-word"),
    pytest.param({"hooks_port": "8022"}, ["hooks_port '8022'", "shell ingress port"], id="hooks-port-shell"),
    pytest.param({"app_port": "8022"}, ["app_port '8022'", "shell ingress port"], id="app-port-shell"),
    pytest.param({"app_port": "9000", "hooks_port": "9000"}, ["hooks_port '9000'", "equals app_port"], id="same-ports"),
    pytest.param({"author_email": "you@localhost"}, ["author_email 'you@localhost'"], id="email-no-dot"),
    pytest.param({"author_email": "you example.com"}, ["author_email 'you example.com'"], id="email-no-at"),
    pytest.param(
        {"project_name": "   ", "project_slug": "blank", "package_name": "blank"},
        ["project_name '   '", "not blank"],
        id="name-blank",
    ),
    pytest.param({"description": "one\ntwo"}, ["description 'one\\ntwo'", "one line"], id="description-newline"),
]


@pytest.mark.parametrize(("extra_context", "fragments"), INVALID_ANSWERS)
def test_invalid_answer_rejected(
    tmp_path: Path, cookiecutter_config: Path, capfd, extra_context: dict[str, Any], fragments: list[str]
) -> None:
    output_dir = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake_project(output_dir, cookiecutter_config, extra_context)
    errors = capfd.readouterr().err
    for fragment in fragments:
        assert fragment in errors
    assert "Example: " in errors
    assert "Nothing was generated." in errors
    assert list(output_dir.iterdir()) == []


@pytest.mark.xfail(
    strict=True,
    reason="cookiecutter creates the parent 'my/' of the project directory 'my/app' before the pre-generation "
    "hook runs, and deletes only 'my/app' when the hook fails",
)
def test_slug_with_slash_leaves_no_directory(tmp_path: Path, cookiecutter_config: Path, capfd) -> None:
    output_dir = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake_project(output_dir, cookiecutter_config, {"project_slug": "my/app", "package_name": "my_app"})
    assert "project_slug 'my/app'" in capfd.readouterr().err
    assert list(output_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("question", "value"),
    [
        ("framework", "pyramid"),
        ("python_version", "3.10"),
        ("memory_mib", "3000"),
        ("iac", "terraform"),
        ("ci", "jenkins"),
        ("license", "GPL-3.0"),
    ],
)
def test_invalid_choice_in_extra_context_rejected(
    tmp_path: Path, cookiecutter_config: Path, question: str, value: str
) -> None:
    """Cookiecutter itself rejects an unknown choice given as extra context, before any hook runs."""
    output_dir = tmp_path / "out"
    options = json.loads(COOKIECUTTER_JSON.read_text(encoding="utf-8"))[question]
    with pytest.raises(ValueError, match=f"{value} provided for choice variable {question}") as raised:
        bake_project(output_dir, cookiecutter_config, {question: value})
    for option in options:
        assert repr(option) in str(raised.value)
    assert not output_dir.exists() or list(output_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("question", "value", "options"),
    [
        ("framework", "pyramid", "fastapi, flask, django, litestar, starlette, aiohttp"),
        ("python_version", "3.10", "3.12, 3.11, 3.13, 3.14"),
        ("memory_mib", "3000", "2048, 512, 1024, 4096, 8192"),
        ("iac", "terraform", "sam, cloudformation, cdk, none"),
        ("ci", "jenkins", "github, gitlab, none"),
        ("license", "GPL-3.0", "MIT, Apache-2.0, BSD-3-Clause, Proprietary"),
    ],
)
def test_invalid_choice_in_replay_file_rejected(
    tmp_path: Path, cookiecutter_config: Path, capfd, question: str, value: str, options: str
) -> None:
    """A replay file skips cookiecutter's choice check, so the pre-generation hook must catch the value."""
    replay_file = tmp_path / "answers.json"
    replay_file.write_text(json.dumps({"cookiecutter": {**default_answers(), question: value}}), encoding="utf-8")
    output_dir = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake_project(output_dir, cookiecutter_config, replay_file=replay_file)
    errors = capfd.readouterr().err
    assert f"ERROR: Invalid {question} {value!r}. Use one of: {options}." in errors
    assert list(output_dir.iterdir()) == []


HOSTILE_TEXT = 'Zoë "Q" O\'Brien \\'
HOSTILE_ANSWERS = [
    pytest.param(
        {"project_name": HOSTILE_TEXT, "description": HOSTILE_TEXT, "author_name": HOSTILE_TEXT},
        id="quotes-and-backslash",
    ),
    pytest.param(
        {
            "project_name": "Billing 'API' \"v2\"",
            "description": '""" \'\'\' </script> ${HOME} $(id) `id` %s {0} & ümlaut — ✓ 🚀',
            "author_name": "O'Brien, \\Zoë\\ «Q»",
        },
        id="injection-shaped",
    ),
    pytest.param(
        {"project_name": "#not a comment", "description": "key: value # yaml? - [list]", "author_name": "- Dash"},
        id="yaml-and-toml-syntax",
    ),
]


@pytest.mark.parametrize("hostile", HOSTILE_ANSWERS)
def test_hostile_answers_keep_files_valid(bake, hostile: dict[str, str]) -> None:
    project = bake(project_slug="hostile", package_name="hostile_app", **hostile)
    problems = (
        unrendered_jinja(project)
        + python_compile_errors(project)
        + toml_errors(project)
        + yaml_errors(project)
        + json_errors(project)
    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("hostile", HOSTILE_ANSWERS)
def test_hostile_answers_round_trip(bake, hostile: dict[str, str]) -> None:
    project = bake(project_slug="hostile", package_name="hostile_app", **hostile)
    metadata = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert metadata["description"] == hostile["description"]
    assert metadata["authors"][0]["name"] == hostile["author_name"]
    answers = read_answers_file(project)
    for question, value in hostile.items():
        assert answers[question] == value
    license_text = (project / "LICENSE").read_text(encoding="utf-8")
    assert "Copyright (c) " in license_text
    assert hostile["author_name"] in license_text
    readme_lines = (project / "README.md").read_text(encoding="utf-8").splitlines()
    assert readme_lines[0] == f"# {hostile['project_name']}"
    assert hostile["description"] in readme_lines


@pytest.mark.slow
def test_hostile_answers_in_installed_metadata(installed_project) -> None:
    """The installed distribution's metadata gives the hostile author name and description back."""
    project = installed_project(
        "fastapi",
        project_slug="hostile",
        package_name="hostile_app",
        project_name=HOSTILE_TEXT,
        description=HOSTILE_TEXT,
        author_name=HOSTILE_TEXT,
    )
    script = (
        "import json, importlib.metadata as m\n"
        "meta = m.metadata('hostile')\n"
        "print(json.dumps({'summary': meta['Summary'], 'author_email': meta['Author-email']}))\n"
    )
    result = project.run("python", "-c", script)
    metadata = json.loads(result.stdout)
    assert metadata["summary"] == HOSTILE_TEXT
    # Core metadata stores the author as an RFC 5322 address with a quoted display name.
    parsed = email.policy.default.header_factory("To", metadata["author_email"])
    assert [(address.display_name, address.addr_spec) for address in parsed.addresses] == [
        (HOSTILE_TEXT, "you@example.com")
    ]


@pytest.mark.parametrize(
    ("project_name", "slug"),
    [
        pytest.param('Zoë "Q" O\'Brien \\', "zoe-q-o-brien", id="quotes-and-accents"),
        pytest.param("R&D Portal", "r-d-portal", id="ampersand"),
        pytest.param("App  2.0", "app-2-0", id="spaces-and-dots"),
    ],
)
def test_slug_derived_from_project_name(bake, project_name: str, slug: str) -> None:
    project = bake(project_name=project_name)
    assert project.name == slug
    assert (project / "src" / slug.replace("-", "_")).is_dir()
