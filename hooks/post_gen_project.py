"""Apply the answer-specific files and print the first commands to run.

Files that exist for one answer only live in ``_options/<question>/<answer>/``
with the project's own layout below. This script copies the chosen answer's tree
onto the project root, replacing files of the same path, then deletes
``_options/``. Running it again on a finished project changes nothing.

The script uses the standard library only, because it runs on whatever
interpreter runs cookiecutter.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

# The answers arrive as a JSON document inside a Python string literal, so quotes,
# backslashes and non-ASCII characters in an answer cannot change this source.
ANSWERS: dict[str, Any] = json.loads({{ cookiecutter | tojson | tojson }})  # noqa: F821 - Jinja fills this in

OPTIONS_DIR = "_options"
OPTION_QUESTIONS = ("framework", "iac", "ci", "license")
# Directories whose contents the project does not own, skipped when setting modes.
SKIPPED_DIRS = frozenset({".git", ".venv", "node_modules", "__pycache__"})


def apply_options(root: Path, answers: dict[str, Any]) -> None:
    """Copy ``_options/<question>/<answer>/`` onto the root for each question, then delete ``_options/``."""
    options = root / OPTIONS_DIR
    if not options.is_dir():
        return
    for question in OPTION_QUESTIONS:
        chosen = options / question / str(answers[question])
        # An answer such as ci=none may have no files of its own.
        if chosen.is_dir():
            shutil.copytree(chosen, root, dirs_exist_ok=True)
    shutil.rmtree(options)


def has_shebang(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(2) == b"#!"


def make_scripts_executable(root: Path) -> None:
    """Add execute permission, where read permission is set, to files under scripts/ and files with a shebang."""
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if name not in SKIPPED_DIRS)
        in_scripts = Path(directory).relative_to(root).parts[:1] == ("scripts",)
        for name in files:
            path = Path(directory, name)
            if path.is_symlink() or not (in_scripts or has_shebang(path)):
                continue
            mode = path.stat().st_mode
            # Each read bit (0o444) shifted right by two places is the matching execute bit (0o111).
            path.chmod(mode | (stat.S_IMODE(mode) & 0o444) >> 2)


def install_command(root: Path, python_version: str) -> str:
    """Return the shell command that creates .venv and installs the project with its development tools."""
    steps = [f"python{python_version} -m venv .venv"]
    if (root / "requirements-dev.txt").is_file():
        steps.append(".venv/bin/pip install --require-hashes -r requirements-dev.txt")
        steps.append(".venv/bin/pip install --no-deps -e .")
    else:
        # pip learned --group in 25.1, later than the pip that venv bundles with Python 3.11.
        steps.append(".venv/bin/python -m pip install --upgrade pip")
        steps.append(".venv/bin/pip install --group dev -e .")
    return " && ".join(steps)


def print_next_steps(root: Path, answers: dict[str, Any]) -> None:
    print(
        f"\nCreated {answers['project_slug']}. Next steps:\n"
        f"  cd {answers['project_slug']}\n"
        f"  {install_command(root, answers['python_version'])}\n"
        "  .venv/bin/microvm-local demo\n"
        f"To start only the server: .venv/bin/python -m {answers['package_name']}"
    )


def main() -> int:
    root = Path.cwd()
    apply_options(root, ANSWERS)
    make_scripts_executable(root)
    print_next_steps(root, ANSWERS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
