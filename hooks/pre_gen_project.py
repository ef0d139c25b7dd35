"""Reject invalid answers before cookiecutter writes any file.

Cookiecutter runs this script from the new, still empty project directory and
deletes that directory when the script exits with a non-zero status. Every check
returns an error message (the value, the rule and a valid example) or None, and
all messages are printed together so that one run reports every invalid answer.

The script uses the standard library only, because it runs on whatever
interpreter runs cookiecutter.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

# The answers arrive as a JSON document inside a Python string literal, so quotes,
# backslashes and non-ASCII characters in an answer cannot change this source.
ANSWERS: dict[str, Any] = json.loads({{ cookiecutter | tojson | tojson }})  # noqa: F821 - Jinja fills this in

# The options of each choice question, in the order of cookiecutter.json. A test
# compares them with cookiecutter.json. Cookiecutter itself rejects an invalid
# choice given as extra context, but not one read from a replay file such as the
# project's .cookiecutter.json, which this check covers.
CHOICES: dict[str, tuple[str, ...]] = {
    "framework": ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp"),
    "python_version": ("3.12", "3.11", "3.13", "3.14"),
    "memory_mib": ("2048", "512", "1024", "4096", "8192"),
    "iac": ("sam", "cloudformation", "cdk", "none"),
    "ci": ("github", "gitlab", "none"),
    "license": ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"),
}

# Lowercase ASCII letters, digits and single hyphens, starting with a letter.
# The slug names the folder, the distribution, the container image tag (which
# must be lowercase) and the default MicroVM image name.
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
# IAM role names allow at most 64 characters, and the longest role name the project
# makes is "<slug>-microvm-execution" (18 more), so 45 leaves one spare.
SLUG_MAX_LENGTH = 45

# PEP 8 package names: lowercase ASCII letters, digits and underscores.
PACKAGE_PATTERN = re.compile(r"[a-z][a-z0-9_]*\Z")

# Standard-library modules added in Python 3.12-3.14, which the generated project
# may run on but sys.stdlib_module_names of an older interpreter does not list.
NEWER_STDLIB_MODULES = frozenset({"annotationlib", "compression"})

# Top-level modules of the generated project's runtime, development and CDK
# dependencies, and names the project itself uses. A package with one of these
# names would shadow the dependency, or be shadowed by it, in the same environment.
# A template test installs each framework's project and fails on any module missing here.
RESERVED_MODULES = frozenset(
    {
        # Runtime dependencies of FastAPI, Flask and Django.
        "annotated_doc", "annotated_types", "anyio", "asgiref", "blinker", "click", "django",
        "fastapi", "flask", "h11", "idna", "itsdangerous", "jinja2", "markupsafe", "pydantic",
        "pydantic_core", "sqlparse", "starlette", "typing_extensions", "typing_inspection",
        "uvicorn", "waitress", "werkzeug",
        # Runtime dependencies of Litestar, Starlette and aiohttp, and the WebSocket library of uvicorn.
        "aiohappyeyeballs", "aiohttp", "aiosignal", "certifi", "colorama", "faker", "frozenlist", "httpcore",
        "httpx", "litestar", "litestar_htmx", "markdown_it", "mdurl", "msgspec", "multidict", "multipart",
        "polyfactory", "propcache", "rich", "rich_click", "sniffio", "tzdata", "websockets", "yarl",
        # Development, deployment and CDK dependencies.
        "ast_serialize", "attr", "attrs", "aws_cdk", "boto3", "botocore", "cattr", "cattrs", "cfgv",
        "cfnlint", "constructs", "dateutil", "distlib", "filelock", "identify", "iniconfig", "isympy",
        "jmespath", "jsii", "jsonpatch", "jsonpatch_cli", "jsonpointer", "librt", "mpmath", "mypy",
        "mypy_extensions", "mypyc", "networkx", "nodeenv", "opentelemetry", "packaging", "pathspec",
        "pkg_resources", "platformdirs", "pluggy", "pre_commit", "publication", "py", "pygments",
        "pytest", "python_discovery", "regex", "ruff", "s3transfer", "setuptools", "six", "sympy",
        "typeguard", "urllib3", "virtualenv", "yaml",
        # Installers every virtual environment has: `python -m pip` would run the installer, not the app.
        "pip", "wheel", "_distutils_hack",
        # Names inside the generated project and common test-package names.
        "app", "microvm", "test", "tests",
    }
)

PORT_PATTERN = re.compile(r"[1-9][0-9]*\Z")
PORT_RANGE = (1024, 65535)
# The platform's shell ingress port: an app or hook listener there would clash.
SHELL_PORT = 8022

# A pragmatic address check: one @, no spaces, a dotted domain of letters, digits
# and hyphens. It rejects typos, not every address that RFC 5322 rejects.
EMAIL_PATTERN = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\Z"
)

# Answers that end up on one line: a README heading, a LICENSE copyright line,
# package metadata and template descriptions. Each maps to a valid example.
SINGLE_LINE_QUESTIONS = {
    "project_name": "Billing API",
    "description": "Invoices and payments for the shop.",
    "author_name": "Ada Lovelace",
}

REQUIRED_QUESTIONS = (
    *SINGLE_LINE_QUESTIONS,
    "project_slug",
    "package_name",
    "author_email",
    "app_port",
    "hooks_port",
    *CHOICES,
)


def check_single_line_texts(answers: Mapping[str, Any]) -> str | None:
    for question, example in SINGLE_LINE_QUESTIONS.items():
        value = answers[question]
        if not isinstance(value, str) or not value.strip():
            return f'Invalid {question} {value!r}. Use a text that is not blank. Example: {question}="{example}".'
        # Cc: control characters such as a line feed. Zl and Zp: the Unicode line and paragraph separators.
        if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in value):
            return (
                f"Invalid {question} {value!r}. It contains a line break or another control character, "
                f'but it must fit on one line. Example: {question}="{example}".'
            )
    return None


def check_project_slug(answers: Mapping[str, Any]) -> str | None:
    slug = answers["project_slug"]
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        return (
            f"Invalid project_slug {slug!r}. Use lowercase ASCII letters, digits and single hyphens, "
            "starting with a letter and ending with a letter or digit. Example: project_slug=billing-api."
        )
    if len(slug) > SLUG_MAX_LENGTH:
        return (
            f"Invalid project_slug {slug!r}. It has {len(slug)} characters, but the IAM role names made "
            f"from it allow at most {SLUG_MAX_LENGTH}. Example: project_slug=billing-api."
        )
    return None


def check_package_name(answers: Mapping[str, Any]) -> str | None:
    name = answers["package_name"]
    example = "Example: package_name=billing_api."
    if not isinstance(name, str) or not PACKAGE_PATTERN.match(name):
        return (
            f"Invalid package_name {name!r}. Use a Python identifier of lowercase ASCII letters, digits "
            f"and underscores that starts with a letter. {example}"
        )
    if keyword.iskeyword(name):
        return f"Invalid package_name {name!r}. It is a Python keyword, so it cannot be imported. {example}"
    if name in sys.stdlib_module_names or name in NEWER_STDLIB_MODULES:
        return (
            f"Invalid package_name {name!r}. It shadows the standard-library module {name!r}. "
            f"Choose a name that no installed module uses. {example}"
        )
    if name in RESERVED_MODULES:
        return (
            f"Invalid package_name {name!r}. It clashes with the module {name!r} that the generated "
            f"project installs or contains. Choose a name that no installed module uses. {example}"
        )
    return None


def parse_port(value: Any) -> int | None:
    """Return the port number for a decimal string or an int, or None if it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and PORT_PATTERN.match(value):
        return int(value)
    return None


def check_port(question: str, example: int, value: Any) -> str | None:
    port = parse_port(value)
    low, high = PORT_RANGE
    if port is None:
        return (
            f"Invalid {question} {value!r}. Use a whole number written with digits only and no leading zeros. "
            f"Example: {question}={example}."
        )
    if not low <= port <= high:
        reason = f" Ports below {low} need root privileges when the app runs locally." if port < low else ""
        return f"Invalid {question} {value!r}. Use a port from {low} to {high}.{reason} Example: {question}={example}."
    if port == SHELL_PORT:
        return (
            f"Invalid {question} {value!r}. Port {SHELL_PORT} is the platform's shell ingress port. "
            f"Example: {question}={example}."
        )
    return None


def check_app_port(answers: Mapping[str, Any]) -> str | None:
    return check_port("app_port", 8080, answers["app_port"])


def check_hooks_port(answers: Mapping[str, Any]) -> str | None:
    return check_port("hooks_port", 9000, answers["hooks_port"])


def check_ports_differ(answers: Mapping[str, Any]) -> str | None:
    app_port = parse_port(answers["app_port"])
    if app_port is not None and app_port == parse_port(answers["hooks_port"]):
        return (
            f"Invalid hooks_port {answers['hooks_port']!r}. It equals app_port, but the lifecycle hooks need "
            "their own port so that an auth token for the app port cannot call them. "
            "Example: app_port=8080 hooks_port=9000."
        )
    return None


def check_author_email(answers: Mapping[str, Any]) -> str | None:
    email = answers["author_email"]
    if not isinstance(email, str) or not EMAIL_PATTERN.match(email):
        return (
            f"Invalid author_email {email!r}. Use an address of the form local-part@domain.tld "
            "with no spaces. Example: author_email=you@example.com."
        )
    return None


def check_choice(question: str, value: Any, options: tuple[str, ...]) -> str | None:
    is_text_or_number = isinstance(value, (str, int)) and not isinstance(value, bool)
    if is_text_or_number and str(value) in options:
        return None
    return f"Invalid {question} {value!r}. Use one of: {', '.join(options)}. Example: {question}={options[0]}."


CHECKS: tuple[Callable[[Mapping[str, Any]], str | None], ...] = (
    check_single_line_texts,
    check_project_slug,
    check_package_name,
    check_app_port,
    check_hooks_port,
    check_ports_differ,
    check_author_email,
)


def find_errors(answers: Mapping[str, Any]) -> list[str]:
    """Run every check on the answers and return the error messages."""
    missing = [question for question in REQUIRED_QUESTIONS if question not in answers]
    if missing:
        return [f"Missing answers: {', '.join(missing)}. Run cookiecutter with this template's cookiecutter.json."]
    errors = [message for check in CHECKS if (message := check(answers))]
    for question, options in CHOICES.items():
        message = check_choice(question, answers[question], options)
        if message:
            errors.append(message)
    return errors


def main() -> int:
    errors = find_errors(ANSWERS)
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr)
    if errors:
        print("Nothing was generated. Run cookiecutter again with valid answers.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
