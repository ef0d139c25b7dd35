"""Unit tests of the cookiecutter hooks, rendered with Jinja as cookiecutter renders them.

Each test renders a hook with a chosen set of answers, imports the result as a
module and calls its functions directly. The module's ``main()`` only runs when
a test calls it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from baking import TEMPLATE_DIR, default_answers, load_hook, render_hook
from project_checks import snapshot, snapshot_differences


@pytest.fixture
def pre_gen(tmp_path: Path) -> ModuleType:
    return load_hook("pre_gen_project", default_answers(), tmp_path)


@pytest.fixture
def post_gen(tmp_path: Path) -> ModuleType:
    return load_hook("post_gen_project", default_answers(), tmp_path)


def answers_with(**changes: Any) -> dict[str, Any]:
    return {**default_answers(), **changes}


# ---------------------------------------------------------------------------
# Rendering: answers enter the hooks as data.

HOSTILE_TEXTS = [
    pytest.param('Zoë "Q" O\'Brien \\', id="quotes-and-trailing-backslash"),
    pytest.param('"""; import os; os._exit(3) #', id="triple-quote-injection"),
    pytest.param("''' + __import__('os').getcwd() + '''", id="single-triple-quote-injection"),
    pytest.param(r"\u0041 \N{BULLET} \x00 \n", id="escape-sequences-as-text"),
    pytest.param("</script><!-- & --> ]]>", id="markup"),
    pytest.param("🚀 Ünïcödé 中文 עברית", id="non-ascii"),
    pytest.param("{braces} $dollar `backticks` %percent", id="shell-and-format-characters"),
]


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_hook_receives_hostile_answer_unchanged(tmp_path: Path, hook: str, text: str) -> None:
    answers = answers_with(project_name=text, description=text, author_name=text)
    module = load_hook(hook, answers, tmp_path)
    assert module.ANSWERS == answers


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_rendered_hook_passes_ruff(tmp_path: Path, hook: str) -> None:
    path = render_hook(hook, default_answers(), tmp_path)
    result = subprocess.run(
        [
            sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--output-format=concise",
            "--target-version=py311", "--line-length=120", "--select=E,F,W,I,B,UP,S,RUF,SIM,PL",
            # The rendered ANSWERS line is as long as the answers, and its noqa for the unrendered file is unused.
            "--extend-ignore=E501,RUF100", str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_choices_match_cookiecutter_json(pre_gen: ModuleType) -> None:
    options = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))
    choice_questions = {key: tuple(value) for key, value in options.items() if isinstance(value, list)}
    choice_questions.pop("_copy_without_render", None)
    assert pre_gen.CHOICES == choice_questions


def test_required_questions_exist_in_cookiecutter_json(pre_gen: ModuleType) -> None:
    options = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))
    missing = [question for question in pre_gen.REQUIRED_QUESTIONS if question not in options]
    assert not missing


# ---------------------------------------------------------------------------
# pre_gen_project: one table per check. Each invalid row lists fragments that
# the message must contain: the value, and a valid example.


def test_default_answers_are_valid(pre_gen: ModuleType) -> None:
    assert pre_gen.find_errors(default_answers()) == []


@pytest.mark.parametrize(
    ("question", "value"),
    [
        ("project_name", "Billing API"),
        ("project_name", 'Zoë "Q" O\'Brien \\'),
        ("description", "Invoices — and payments, «quoted» 🚀"),
        ("author_name", "O'Brien, Zoë"),
    ],
)
def test_single_line_text_valid(pre_gen: ModuleType, question: str, value: str) -> None:
    assert pre_gen.check_single_line_texts(answers_with(**{question: value})) is None


@pytest.mark.parametrize(
    ("question", "value", "fragments"),
    [
        pytest.param("project_name", "", ["project_name ''", 'Example: project_name="Billing API"'], id="empty"),
        pytest.param("project_name", "   ", ["project_name '   '", "not blank"], id="blank"),
        pytest.param("description", "two\nlines", ["description 'two\\nlines'", "one line"], id="newline"),
        pytest.param("description", "tab\there", ["description 'tab\\there'", "control character"], id="tab"),
        pytest.param("author_name", "a\u2028b", ["author_name 'a\\u2028b'", "one line"], id="line-separator"),
        pytest.param("author_name", 42, ["author_name 42", "not blank"], id="number"),
    ],
)
def test_single_line_text_invalid(pre_gen: ModuleType, question: str, value: Any, fragments: list[str]) -> None:
    message = pre_gen.check_single_line_texts(answers_with(**{question: value}))
    assert message is not None
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("slug", ["billing", "billing-api", "a", "api2", "b2b-payments-v3", "a" * 45])
def test_project_slug_valid(pre_gen: ModuleType, slug: str) -> None:
    assert pre_gen.check_project_slug(answers_with(project_slug=slug)) is None


@pytest.mark.parametrize(
    ("slug", "fragment"),
    [
        pytest.param("My App", "lowercase ASCII letters", id="uppercase-and-space"),
        pytest.param("billing_api", "lowercase ASCII letters", id="underscore"),
        pytest.param("billing.api", "lowercase ASCII letters", id="dot"),
        pytest.param("-billing", "starting with a letter", id="leading-hyphen"),
        pytest.param("billing-", "ending with a letter or digit", id="trailing-hyphen"),
        pytest.param("billing--api", "single hyphens", id="double-hyphen"),
        pytest.param("2fa", "starting with a letter", id="leading-digit"),
        pytest.param("zoë", "ASCII", id="non-ascii"),
        pytest.param("my/app", "lowercase ASCII letters", id="slash"),
        pytest.param("..", "lowercase ASCII letters", id="parent-dir"),
        pytest.param("", "lowercase ASCII letters", id="empty"),
        pytest.param("a" * 46, "at most 45", id="too-long"),
    ],
)
def test_project_slug_invalid(pre_gen: ModuleType, slug: str, fragment: str) -> None:
    message = pre_gen.check_project_slug(answers_with(project_slug=slug))
    assert message is not None
    assert f"project_slug {slug!r}" in message
    assert fragment in message
    assert "Example: project_slug=billing-api." in message


@pytest.mark.parametrize("name", ["billing", "billing_api", "api2", "my_app_v3", "microvm_app"])
def test_package_name_valid(pre_gen: ModuleType, name: str) -> None:
    assert pre_gen.check_package_name(answers_with(package_name=name)) is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("billing-api", "Python identifier", id="hyphen"),
        pytest.param("Billing", "lowercase ASCII", id="uppercase"),
        pytest.param("2fa", "starts with a letter", id="leading-digit"),
        pytest.param("_private", "starts with a letter", id="leading-underscore"),
        pytest.param("zoë", "lowercase ASCII", id="non-ascii"),
        pytest.param("billing api", "Python identifier", id="space"),
        pytest.param("", "Python identifier", id="empty"),
        pytest.param("class", "Python keyword", id="keyword-class"),
        pytest.param("async", "Python keyword", id="keyword-async"),
        pytest.param("json", "standard-library module 'json'", id="stdlib-json"),
        pytest.param("email", "standard-library module 'email'", id="stdlib-email"),
        pytest.param("annotationlib", "standard-library module 'annotationlib'", id="stdlib-3.14-annotationlib"),
        pytest.param("compression", "standard-library module 'compression'", id="stdlib-3.14-compression"),
        *(
            pytest.param(name, f"module {name!r}", id=f"reserved-{name}")
            for name in (
                "flask", "django", "fastapi", "uvicorn", "waitress", "starlette", "pydantic", "litestar", "aiohttp",
                "boto3", "botocore", "app", "microvm", "test", "tests", "yaml", "pytest", "aws_cdk",
            )
        ),
    ],
)
def test_package_name_invalid(pre_gen: ModuleType, name: str, fragment: str) -> None:
    message = pre_gen.check_package_name(answers_with(package_name=name))
    assert message is not None
    assert f"package_name {name!r}" in message
    assert fragment in message
    assert "Example: package_name=billing_api." in message


@pytest.mark.parametrize("port", ["1024", "8080", "9000", "65535", 8080])
def test_port_valid(pre_gen: ModuleType, port: Any) -> None:
    assert pre_gen.check_port("app_port", 8080, port) is None


@pytest.mark.parametrize(
    ("port", "fragment"),
    [
        pytest.param("80", "from 1024 to 65535. Ports below 1024 need root", id="privileged"),
        pytest.param("1023", "from 1024 to 65535", id="just-below-range"),
        pytest.param("65536", "from 1024 to 65535.", id="above-range"),
        pytest.param("0", "digits only", id="zero"),
        pytest.param("08080", "no leading zeros", id="leading-zero"),
        pytest.param("8080.0", "digits only", id="decimal-point"),
        pytest.param("8_080", "digits only", id="underscore"),
        pytest.param(" 8080", "digits only", id="leading-space"),
        pytest.param("\uff18\uff10\uff18\uff10", "digits only", id="fullwidth-digits"),
        pytest.param("-8080", "digits only", id="negative"),
        pytest.param("http", "digits only", id="word"),
        pytest.param("", "digits only", id="empty"),
        pytest.param(True, "digits only", id="boolean"),
        pytest.param("8022", "shell ingress port", id="shell-port"),
    ],
)
def test_port_invalid(pre_gen: ModuleType, port: Any, fragment: str) -> None:
    message = pre_gen.check_port("hooks_port", 9000, port)
    assert message is not None
    assert f"hooks_port {port!r}" in message
    assert fragment in message
    assert "Example: hooks_port=9000." in message


def test_app_and_hooks_ports_checked(pre_gen: ModuleType) -> None:
    assert "app_port '80'" in pre_gen.check_app_port(answers_with(app_port="80"))
    assert "hooks_port '8022'" in pre_gen.check_hooks_port(answers_with(hooks_port="8022"))


@pytest.mark.parametrize(
    ("app_port", "hooks_port"),
    [("9000", "9000"), ("8080", "8080"), ("8080", 8080)],
)
def test_equal_ports_invalid(pre_gen: ModuleType, app_port: Any, hooks_port: Any) -> None:
    message = pre_gen.check_ports_differ(answers_with(app_port=app_port, hooks_port=hooks_port))
    assert message is not None
    assert f"hooks_port {hooks_port!r}" in message
    assert "equals app_port" in message
    assert "Example: app_port=8080 hooks_port=9000." in message


def test_different_ports_valid(pre_gen: ModuleType) -> None:
    assert pre_gen.check_ports_differ(answers_with(app_port="8080", hooks_port="9000")) is None


@pytest.mark.parametrize(
    "email", ["you@example.com", "first.last+tag@mail.example.co.uk", "o'brien@example.org", "a@b-c.io"]
)
def test_author_email_valid(pre_gen: ModuleType, email: str) -> None:
    assert pre_gen.check_author_email(answers_with(author_email=email)) is None


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "you@localhost",
        "you @example.com",
        "you@@example.com",
        "you@example..com",
        ".you@example.com",
        "you.@example.com",
        "you@-example.com",
        "you@example.com\n",
        "Zoë <you@example.com>",
        "",
    ],
)
def test_author_email_invalid(pre_gen: ModuleType, email: str) -> None:
    message = pre_gen.check_author_email(answers_with(author_email=email))
    assert message is not None
    assert f"author_email {email!r}" in message
    assert "Example: author_email=you@example.com." in message


@pytest.mark.parametrize(
    ("question", "value"),
    [("framework", "django"), ("memory_mib", "512"), ("memory_mib", 4096), ("license", "Proprietary")],
)
def test_choice_valid(pre_gen: ModuleType, question: str, value: Any) -> None:
    assert pre_gen.check_choice(question, value, pre_gen.CHOICES[question]) is None


@pytest.mark.parametrize(
    ("question", "value"),
    [
        ("framework", "pyramid"),
        ("framework", "Flask"),
        ("python_version", "3.10"),
        ("python_version", 3.12),
        ("memory_mib", "3000"),
        ("memory_mib", True),
        ("iac", "terraform"),
        ("ci", "jenkins"),
        ("license", "GPL-3.0"),
        ("license", None),
    ],
)
def test_choice_invalid(pre_gen: ModuleType, question: str, value: Any) -> None:
    options = pre_gen.CHOICES[question]
    message = pre_gen.check_choice(question, value, options)
    assert message is not None
    assert f"{question} {value!r}" in message
    assert f"Use one of: {', '.join(options)}." in message


def test_find_errors_reports_every_invalid_answer(pre_gen: ModuleType) -> None:
    answers = answers_with(project_slug="My App", app_port="80", author_email="nope", iac="terraform")
    errors = pre_gen.find_errors(answers)
    assert len(errors) == 4, errors
    assert [error.split()[1] for error in errors] == ["project_slug", "app_port", "author_email", "iac"]


def test_find_errors_names_missing_answers(pre_gen: ModuleType) -> None:
    answers = default_answers()
    del answers["hooks_port"]
    del answers["ci"]
    assert pre_gen.find_errors(answers) == [
        "Missing answers: hooks_port, ci. Run cookiecutter with this template's cookiecutter.json."
    ]


def test_pre_gen_main_rejects_invalid_answers(tmp_path: Path, capsys) -> None:
    module = load_hook("pre_gen_project", answers_with(package_name="json"), tmp_path)
    assert module.main() == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "ERROR: Invalid package_name 'json'." in captured.err
    assert "Nothing was generated." in captured.err


def test_pre_gen_main_accepts_valid_answers(pre_gen: ModuleType, capsys) -> None:
    assert pre_gen.main() == 0
    assert capsys.readouterr().err == ""


def test_pre_gen_script_exit_status(tmp_path: Path) -> None:
    """Run as cookiecutter runs it: a separate interpreter, exit status 1 on an invalid answer."""
    valid = render_hook("pre_gen_project", default_answers(), tmp_path)
    invalid = render_hook("pre_gen_project", answers_with(hooks_port="8080"), tmp_path)
    valid_run = subprocess.run([sys.executable, valid], capture_output=True, text=True, check=False)
    invalid_run = subprocess.run([sys.executable, invalid], capture_output=True, text=True, check=False)
    assert valid_run.returncode == 0, valid_run.stderr
    assert invalid_run.returncode == 1
    assert "ERROR: Invalid hooks_port '8080'. It equals app_port" in invalid_run.stderr


# ---------------------------------------------------------------------------
# post_gen_project


def write(path: Path, text: str = "", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def make_options_tree(root: Path) -> None:
    write(root / "_options/framework/flask/src/pkg/app.py", "flask app\n")
    write(root / "_options/framework/django/src/pkg/app.py", "django app\n")
    write(root / "_options/framework/django/src/pkg/settings.py", "django settings\n")
    write(root / "_options/iac/sam/infra/sam/template.yaml", "sam\n")
    write(root / "_options/ci/github/.github/workflows/ci.yml", "github\n")
    write(root / "_options/license/MIT/LICENSE", "mit\n")
    write(root / "src/pkg/app.py", "base app\n")


def option_answers(**changes: str) -> dict[str, str]:
    return {"framework": "flask", "iac": "sam", "ci": "none", "license": "MIT", **changes}


def test_apply_options_copies_chosen_answers(post_gen: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "project"
    make_options_tree(root)
    post_gen.apply_options(root, option_answers())
    assert (root / "src/pkg/app.py").read_text() == "flask app\n"
    assert (root / "infra/sam/template.yaml").read_text() == "sam\n"
    assert (root / "LICENSE").read_text() == "mit\n"
    assert not (root / "src/pkg/settings.py").exists()
    assert not (root / ".github").exists()
    assert not (root / "_options").exists()


def test_apply_options_twice_is_harmless(post_gen: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "project"
    make_options_tree(root)
    post_gen.apply_options(root, option_answers(framework="django", ci="github"))
    before = snapshot(root)
    post_gen.apply_options(root, option_answers(framework="django", ci="github"))
    assert snapshot_differences(before, snapshot(root)) == []
    assert (root / "src/pkg/settings.py").read_text() == "django settings\n"
    assert (root / ".github/workflows/ci.yml").read_text() == "github\n"


def test_apply_options_keeps_file_modes(post_gen: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "project"
    write(root / "_options/iac/cdk/infra/cdk/synth.sh", "#!/bin/sh\n", mode=0o755)
    post_gen.apply_options(root, {"framework": "flask", "iac": "cdk", "ci": "none", "license": "MIT"})
    assert (root / "infra/cdk/synth.sh").stat().st_mode & 0o777 == 0o755


def test_make_scripts_executable(post_gen: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "project"
    script = write(root / "scripts/release", "echo release\n", mode=0o644)
    tool = write(root / "tools/check.py", "#!/usr/bin/env python3\n", mode=0o640)
    module = write(root / "src/pkg/module.py", "x = 1\n", mode=0o644)
    in_venv = write(root / ".venv/bin/activate-tool", "#!/bin/sh\n", mode=0o644)
    post_gen.make_scripts_executable(root)
    assert script.stat().st_mode & 0o777 == 0o755
    assert tool.stat().st_mode & 0o777 == 0o750
    assert module.stat().st_mode & 0o777 == 0o644
    assert in_venv.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("has_lock_file", [True, False], ids=["lock-file", "no-lock-file"])
def test_install_command(post_gen: ModuleType, tmp_path: Path, has_lock_file: bool) -> None:
    if has_lock_file:
        write(tmp_path / "requirements-dev.txt", "")
    command = post_gen.install_command(tmp_path, "3.13")
    assert command.startswith("python3.13 -m venv .venv && ")
    if has_lock_file:
        assert "pip install --require-hashes -r requirements-dev.txt && .venv/bin/pip install --no-deps -e ." in command
    else:
        assert command.endswith(".venv/bin/pip install --group dev -e .")


def test_post_gen_twice_on_baked_project(bake, tmp_path: Path) -> None:
    """Running the rendered post-generation hook again on a finished project changes no file."""
    answers = answers_with(framework="django", iac="cdk", ci="gitlab", license="Apache-2.0")
    project = bake(**{key: answers[key] for key in ("framework", "iac", "ci", "license")})
    script = render_hook("post_gen_project", answers, tmp_path)
    before = snapshot(project)
    result = subprocess.run(
        [sys.executable, script], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert snapshot_differences(before, snapshot(project)) == []
    assert f"  cd {answers['project_slug']}\n" in result.stdout
