#!/usr/bin/env python3
"""Regenerate the hashed requirement lock files that the template copies into projects.

    python3 scripts/lock.py             # update every lock file to match pyproject.toml
    python3 scripts/lock.py --upgrade   # also move every unpinned dependency to its newest version
    python3 scripts/lock.py --check     # exit 1 if a lock file does not match pyproject.toml

For each framework the script renders the template's pyproject.toml with the
cookiecutter defaults, then resolves with uv (pinned below) into:

- ``_options/framework/<framework>/requirements.txt``: the runtime dependencies and
  the build backend that the Dockerfile installs with ``pip --require-hashes``;
- ``_options/framework/<framework>/requirements-dev.txt``: the same plus the ``dev``
  dependency group, for the project's own environment;

and resolves ``_options/iac/cdk/infra/cdk/requirements.in`` into the
``requirements.txt`` beside it, constrained to the versions of the dev lock files so
that both files install into one environment.

Every file is universal (one file for every platform and for Python 3.11 and newer).
uv keeps the versions already in a lock file unless pyproject.toml needs others or
``--upgrade`` is given, so that ``--check`` fails on a change of pyproject.toml and not
on every new release of a transitive dependency.
The runtime files are also checked to install from wheels alone on the MicroVM's
platform (aarch64, glibc 2.34) for every Python version the template offers.
Needs uv 0.13.8 and cookiecutter on PATH or in this interpreter, and the package index.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

ROOT = Path(__file__).resolve().parent.parent
PROJECT_TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
OPTIONS = PROJECT_TEMPLATE / "_options"
CDK_DIRECTORY = OPTIONS / "iac" / "cdk" / "infra" / "cdk"
UV_VERSION = "0.13.8"
# The oldest Python the projects support; --universal covers every newer one.
LOCK_PYTHON = "3.11"
# Amazon Linux 2023, the MicroVM base, ships glibc 2.34 on aarch64.
CONTAINER_PLATFORM = "aarch64-manylinux_2_34"
COMPILE_COMMAND = "python3 scripts/lock.py (in the microvm-template repository)"
REQUIREMENT_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="report stale lock files instead of writing")
    mode.add_argument("--upgrade", action="store_true", help="resolve every dependency to its newest allowed version")
    options = parser.parse_args(argv)

    uv = find_uv()
    cookiecutter_json = ROOT / "cookiecutter.json"
    frameworks = choices(cookiecutter_json, "framework")
    python_versions = choices(cookiecutter_json, "python_version")

    with tempfile.TemporaryDirectory(prefix="microvm-lock-") as scratch_name:
        scratch = Path(scratch_name)
        fresh: dict[Path, str] = {}
        for framework in frameworks:
            workdir = scratch / framework
            workdir.mkdir()
            render_pyproject(framework, workdir)
            target = OPTIONS / "framework" / framework
            upgrade = ("--upgrade",) if options.upgrade else ()
            runtime = compile_lock(uv, workdir, target / "requirements.txt", *upgrade)
            check_container_wheels(uv, workdir / "requirements.txt", python_versions)
            fresh[target / "requirements.txt"] = runtime
            dev = compile_lock(uv, workdir, target / "requirements-dev.txt", "--group", "dev", *upgrade)
            fresh[target / "requirements-dev.txt"] = dev

        dev_locks = {path: text for path, text in fresh.items() if path.name == "requirements-dev.txt"}
        fresh[CDK_DIRECTORY / "requirements.txt"] = compile_cdk_lock(uv, scratch, dev_locks, options.upgrade)

        if options.check:
            return report_stale(fresh)
        for path, text in fresh.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


def find_uv() -> str:
    """Return the path of uv, and fail unless it is the pinned version.

    Other uv versions may resolve or format the files differently.
    """
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    try:
        output = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"error: uv was not found; install it with: python3 -m pip install uv=={UV_VERSION}") from None
    version = output.split()[1] if len(output.split()) > 1 else output.strip()
    if version != UV_VERSION:
        raise SystemExit(
            f"error: {uv} is uv {version}, but the lock files are made with uv {UV_VERSION}; "
            f"install it with: python3 -m pip install uv=={UV_VERSION}"
        )
    return uv


def choices(cookiecutter_json: Path, question: str) -> list[str]:
    """Return the options of a choice question in cookiecutter.json."""
    options = json.loads(cookiecutter_json.read_text(encoding="utf-8"))[question]
    if not isinstance(options, list):
        raise SystemExit(f"error: {question} in {cookiecutter_json} is not a choice list")
    return options


def render_pyproject(framework: str, workdir: Path) -> None:
    """Render the template's pyproject.toml for ``framework`` with the other defaults, plus the build requirements."""
    context = generate_context(context_file=str(ROOT / "cookiecutter.json"), extra_context={"framework": framework})
    answers = prompt_for_config(context, no_input=True)
    environment = StrictEnvironment(context={"cookiecutter": answers}, keep_trailing_newline=True)
    source = (PROJECT_TEMPLATE / "pyproject.toml").read_text(encoding="utf-8")
    rendered = environment.from_string(source).render(cookiecutter=answers)
    (workdir / "pyproject.toml").write_text(rendered, encoding="utf-8")

    # The Dockerfile installs the project with --no-build-isolation, so the build
    # backend must be in the hashed runtime lock as well.
    build_requires = tomllib.loads(rendered)["build-system"]["requires"]
    (workdir / "build-requirements.in").write_text("".join(f"{line}\n" for line in build_requires), encoding="utf-8")


def compile_lock(uv: str, workdir: Path, lock_file: Path, *extra: str) -> str:
    """Resolve pyproject.toml and the build requirements in ``workdir`` into a hashed, universal lock file.

    The current ``lock_file``, if any, is the starting point, so its versions are kept where they still fit.
    """
    output = lock_file.name
    if lock_file.is_file():
        shutil.copyfile(lock_file, workdir / output)
    run(
        [
            uv,
            "pip",
            "compile",
            "pyproject.toml",
            "build-requirements.in",
            *extra,
            "--universal",
            "--generate-hashes",
            "--python-version",
            LOCK_PYTHON,
            "--custom-compile-command",
            COMPILE_COMMAND,
            "--quiet",
            "--output-file",
            output,
        ],
        workdir,
    )
    return (workdir / output).read_text(encoding="utf-8")


def check_container_wheels(uv: str, lock_file: Path, python_versions: list[str]) -> None:
    """Fail unless every pinned package has a wheel for the MicroVM platform and each offered Python.

    Without one, pip would build from source during the image build, which needs compilers that the Dockerfile
    does not install.
    """
    for version in python_versions:
        run(
            [
                uv,
                "pip",
                "compile",
                lock_file.name,
                "--no-deps",
                "--only-binary",
                ":all:",
                "--python-platform",
                CONTAINER_PLATFORM,
                "--python-version",
                version,
                "--quiet",
                "--output-file",
                "/dev/null",
            ],
            lock_file.parent,
            f"{lock_file.parent.name}: a runtime dependency has no {CONTAINER_PLATFORM} wheel for Python {version}; "
            "pin a version that ships one, or drop that Python version from cookiecutter.json",
        )


def compile_cdk_lock(uv: str, scratch: Path, dev_locks: dict[Path, str], upgrade: bool) -> str:
    """Resolve the CDK requirements, constrained to the versions that every dev lock file pins."""
    pins: dict[str, tuple[str, Path]] = {}
    for path, text in dev_locks.items():
        for name, version in pinned_versions(text).items():
            if name in pins and pins[name][0] != version:
                raise SystemExit(
                    f"error: {path.parent.name} pins {name}=={version} but {pins[name][1].parent.name} pins "
                    f"{name}=={pins[name][0]}; the CDK lock needs one version, so align the framework pins"
                )
            pins[name] = (version, path)

    workdir = scratch / "cdk"
    workdir.mkdir()
    shutil.copyfile(CDK_DIRECTORY / "requirements.in", workdir / "requirements.in")
    if (CDK_DIRECTORY / "requirements.txt").is_file() and not upgrade:
        shutil.copyfile(CDK_DIRECTORY / "requirements.txt", workdir / "requirements.txt")
    (workdir / "constraints.txt").write_text(
        "".join(f"{name}=={version}\n" for name, (version, _) in sorted(pins.items())), encoding="utf-8"
    )

    run(
        [
            uv,
            "pip",
            "compile",
            "requirements.in",
            "--constraint",
            "constraints.txt",
            "--universal",
            "--generate-hashes",
            "--python-version",
            LOCK_PYTHON,
            "--custom-compile-command",
            COMPILE_COMMAND,
            "--quiet",
            "--output-file",
            "requirements.txt",
        ],
        workdir,
    )
    # The constraints file exists only in the scratch directory, so the lock's "via" notes must not name it.
    text = (workdir / "requirements.txt").read_text(encoding="utf-8")
    return re.sub(r"\n\s+#\s+-c constraints\.txt", "", text)


def pinned_versions(lock_text: str) -> dict[str, str]:
    """Return ``{normalized name: version}`` for the unconditional pins of a lock file.

    A package pinned twice under different environment markers is skipped, because
    one constraint line cannot express both versions.
    """
    versions: dict[str, set[str]] = {}
    for line in lock_text.splitlines():
        match = REQUIREMENT_LINE.match(line)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            versions.setdefault(name, set()).add(match.group(2))
    return {name: found.pop() for name, found in versions.items() if len(found) == 1}


def report_stale(fresh: dict[Path, str]) -> int:
    """Print a diff for each lock file that differs from ``fresh`` and return the exit status."""
    stale = 0
    for path, text in fresh.items():
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            stale += 1
            relative = str(path.relative_to(ROOT))
            diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), relative, "fresh resolution")
            sys.stdout.writelines(list(diff)[:40])
    if stale:
        print(f"{stale} lock file(s) are stale; regenerate them with: python3 scripts/lock.py", file=sys.stderr)
        return 1
    print(f"all {len(fresh)} lock files match pyproject.toml")
    return 0


def run(command: list[str], cwd: Path, hint: str | None = None) -> None:
    """Run ``command`` in ``cwd``. On failure, print its output and ``hint``, and exit with status 1."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"error: {' '.join(command)} failed in {cwd}" + (f"\n{hint}" if hint else ""))


if __name__ == "__main__":
    raise SystemExit(main())
