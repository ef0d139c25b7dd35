"""Checks that every baked project must pass, shared by the template's test modules.

Each function returns a list of problems, one line each, so that a test can
assert the list is empty and show every problem at once.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

# Directories that tools create inside a project; their files are not the template's output.
SKIPPED_DIRS = frozenset(
    {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "node_modules", "cdk.out"}
)

# Jinja that rendering should have consumed: a reference to a cookiecutter
# variable, or a Jinja statement tag. Braces alone are not flagged, because
# Python f-strings (``f"{{}}"``) and GitHub Actions expressions (``${{ ... }}``)
# legitimately contain them. NOTE: a Django template in the generated project
# would match the statement pattern and need an exemption here.
UNRENDERED_JINJA = re.compile(
    r"\{\{-?\s*cookiecutter\b"
    r"|\{%-?\s*(?:if|elif|else|endif|for|endfor|set|endset|raw|endraw|now|macro|endmacro|include|import|filter)\b"
)

YAML_SUFFIXES = (".yml", ".yaml")


def iter_files(root: Path) -> Iterator[Path]:
    """Yield every file under root, sorted, except those in tool-created directories."""
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if name not in SKIPPED_DIRS)
        for name in sorted(files):
            yield Path(directory, name)


def read_text(path: Path) -> str | None:
    """Return the file's UTF-8 text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unrendered_jinja(root: Path) -> list[str]:
    problems = []
    for path in iter_files(root):
        relative = path.relative_to(root)
        if UNRENDERED_JINJA.search(str(relative)):
            problems.append(f"{relative}: the file name contains a Jinja marker")
        text = read_text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if UNRENDERED_JINJA.search(line):
                problems.append(f"{relative}:{number}: {line.strip()}")
    return problems


def crlf_line_endings(root: Path) -> list[str]:
    problems = []
    for path in iter_files(root):
        text = read_text(path)
        if text is not None and "\r" in text:
            problems.append(f"{path.relative_to(root)}: contains a carriage return")
    return problems


def python_compile_errors(root: Path) -> list[str]:
    problems = []
    for path in iter_files(root):
        if path.suffix != ".py":
            continue
        try:
            compile(path.read_text(encoding="utf-8"), str(path), "exec", dont_inherit=True)
        except (SyntaxError, UnicodeDecodeError, ValueError) as error:
            problems.append(f"{path.relative_to(root)}: {error}")
    return problems


def toml_errors(root: Path) -> list[str]:
    problems = []
    for path in iter_files(root):
        if path.suffix != ".toml":
            continue
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            problems.append(f"{path.relative_to(root)}: {error}")
    return problems


class AnyTagLoader(yaml.SafeLoader):
    """A safe YAML loader that reads local tags such as CloudFormation's ``!Ref`` as plain values."""


def _construct_tagged(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


AnyTagLoader.add_multi_constructor("!", _construct_tagged)


def load_yaml_documents(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=AnyTagLoader))


def yaml_errors(root: Path) -> list[str]:
    problems = []
    for path in iter_files(root):
        if path.suffix not in YAML_SUFFIXES:
            continue
        try:
            load_yaml_documents(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            problems.append(f"{path.relative_to(root)}: {error}")
    return problems


def json_errors(root: Path) -> list[str]:
    problems = []
    for path in iter_files(root):
        if path.suffix != ".json":
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            problems.append(f"{path.relative_to(root)}: {error}")
    return problems


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Map each file's relative path to its permission bits and contents."""
    return {
        str(path.relative_to(root)): (path.stat().st_mode & 0o777, path.read_bytes()) for path in iter_files(root)
    }


def snapshot_differences(before: dict[str, tuple[int, bytes]], after: dict[str, tuple[int, bytes]]) -> list[str]:
    problems = [f"{name}: missing" for name in sorted(before.keys() - after.keys())]
    problems += [f"{name}: added" for name in sorted(after.keys() - before.keys())]
    for name in sorted(before.keys() & after.keys()):
        (mode_before, data_before), (mode_after, data_after) = before[name], after[name]
        if mode_before != mode_after:
            problems.append(f"{name}: mode {mode_before:o} became {mode_after:o}")
        if data_before != data_after:
            problems.append(f"{name}: contents differ")
    return problems


def read_answers_file(project: Path) -> dict[str, Any]:
    """Return the answers stored in the project's .cookiecutter.json."""
    document = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    return document["cookiecutter"]
