"""Tests of the update path: a generated project follows a newer template.

Each test copies the template into a temporary git repository (commit "v1"),
generates a project from it and commits the project, then changes the template
in a second commit ("v2") and updates the project with cruft 2.16.0, which
regenerates the project from both commits with the kept answers and applies the
difference with `git apply -3`. A project made with plain cookiecutter keeps
its answers in `.cookiecutter.json`, which both `cookiecutter --replay-file`
and `cruft link --extra-context` accept.

Everything runs on local paths with HOME pointed at a temporary folder, so
neither the user's cookiecutter settings nor the network are involved.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR_NAME = "{{cookiecutter.project_slug}}"
# Copied only when the template folder is not a git work tree (git's own ignore rules apply otherwise).
UNTRACKED_NOISE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".cache", ".venv", "cdk.out"
)
TOOL_PACKAGES = {"cruft": "cruft==2.16.0", "cookiecutter": "cookiecutter==2.7.1", "git": "git (apt-get install git)"}

ANSWERS = {"project_name": "Update Probe", "framework": "flask", "iac": "cloudformation", "ci": "github"}
SLUG = "update-probe"
PROBE_FILE = "docs/template-update-probe.md"
WORKFLOW = ".github/workflows/ci.yml"
WORKFLOW_SOURCE = f"{PROJECT_DIR_NAME}/_options/ci/github/{WORKFLOW}"
WORKFLOW_PROBE_LINE = "# Template v2 changed this workflow."


def find_tool(name: str) -> str:
    candidates = [Path(sys.executable).parent, *map(Path, os.environ.get("PATH", "").split(os.pathsep))]
    found = shutil.which(name, path=os.pathsep.join(str(path) for path in candidates))
    if found is None:
        pytest.fail(f"{name} not found next to {sys.executable} or on PATH: install {TOOL_PACKAGES[name]}")
    return found


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Return an environment with a private HOME and a fixed git identity."""
    home = tmp_path / "home"
    home.mkdir()
    environment = dict(os.environ)
    environment.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Template Test",
        GIT_AUTHOR_EMAIL="template-test@example.com",
        GIT_COMMITTER_NAME="Template Test",
        GIT_COMMITTER_EMAIL="template-test@example.com",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    return environment


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command and fail the test with its output if it exits non-zero."""
    executable = find_tool(str(command[0]))
    result = subprocess.run(
        [executable, *map(str, command[1:])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def git(*args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    return run("git", *args, cwd=cwd, env=env).stdout.strip()


def template_files() -> list[Path]:
    """List the template's tracked files and its untracked files that git does not ignore, or none outside git."""
    if not (TEMPLATE_DIR / ".git").exists():
        return []
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [Path(name) for name in listing.split("\0") if name and (TEMPLATE_DIR / name).is_file()]


def commit_all(repo: Path, message: str, env: dict[str, str]) -> str:
    git("add", "-A", cwd=repo, env=env)
    git("commit", "--quiet", "--no-verify", "-m", message, cwd=repo, env=env)
    return git("rev-parse", "HEAD", cwd=repo, env=env)


@pytest.fixture
def template_repo(tmp_path: Path, env: dict[str, str]) -> tuple[Path, str]:
    """Copy the template into a new git repository and return its path and the commit of version 1."""
    repo = tmp_path / "template"
    files = template_files()
    if files:
        for relative in files:
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE_DIR / relative, repo / relative)
    else:
        shutil.copytree(TEMPLATE_DIR, repo, ignore=UNTRACKED_NOISE)
    git("init", "--quiet", "--initial-branch", "main", cwd=repo, env=env)
    return repo, commit_all(repo, "Template v1", env)


def change_template(repo: Path, env: dict[str, str]) -> str:
    """Commit version 2 of the template: a new rendered file and a changed answer-specific file."""
    probe = repo / PROJECT_DIR_NAME / PROBE_FILE
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("# {{ cookiecutter.project_name }}\n\nAdded by template v2.\n", encoding="utf-8")

    workflow = repo / WORKFLOW_SOURCE
    lines = workflow.read_text(encoding="utf-8").splitlines(keepends=True)
    name_line = next(index for index, line in enumerate(lines) if line.startswith("name:"))
    lines.insert(name_line, WORKFLOW_PROBE_LINE + "\n")
    workflow.write_text("".join(lines), encoding="utf-8")
    return commit_all(repo, "Template v2", env)


def init_project(project: Path, env: dict[str, str]) -> None:
    git("init", "--quiet", "--initial-branch", "main", cwd=project, env=env)
    commit_all(project, "Generate the project", env)


def edit_project(project: Path, env: dict[str, str]) -> None:
    """Make the kind of change a team makes after generating: a file of its own and an edited generated file."""
    (project / "NOTES.md").write_text("Our own notes.\n", encoding="utf-8")
    with (project / ".pre-commit-config.yaml").open("a", encoding="utf-8") as config:
        config.write("# Our own comment.\n")
    commit_all(project, "Project work", env)


def assert_updated(project: Path, new_commit: str) -> None:
    """Check that the v2 changes arrived, the project's own changes survived and nothing was left half-applied."""
    probe = project / PROBE_FILE
    assert probe.is_file(), f"{PROBE_FILE} from template v2 is missing"
    assert probe.read_text(encoding="utf-8").startswith(f"# {ANSWERS['project_name']}\n"), "probe not rendered"
    assert WORKFLOW_PROBE_LINE in (project / WORKFLOW).read_text(encoding="utf-8")
    assert (project / "NOTES.md").read_text(encoding="utf-8") == "Our own notes.\n"
    assert (project / ".pre-commit-config.yaml").read_text(encoding="utf-8").endswith("# Our own comment.\n")
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["commit"] == new_commit
    leftovers = [path for path in project.rglob("*") if path.suffix in {".rej", ".orig"} or path.name == "_options"]
    assert leftovers == [], f"update left {leftovers}"


def cruft_create(repo: Path, tmp_path: Path, env: dict[str, str]) -> Path:
    """Generate the project from ``repo`` with `cruft create` into tmp_path/out and return its path."""
    out = tmp_path / "out"
    run(
        "cruft",
        "create",
        repo,
        "--no-input",
        "--output-dir",
        out,
        "--extra-context",
        json.dumps(ANSWERS),
        cwd=tmp_path,
        env=env,
    )
    return out / SLUG


def test_cruft_update_applies_template_change(tmp_path: Path, env: dict[str, str], template_repo) -> None:
    """A project made with `cruft create` takes a later template commit with `cruft update`."""
    repo, _ = template_repo
    project = cruft_create(repo, tmp_path, env)
    init_project(project, env)
    edit_project(project, env)

    new_commit = change_template(repo, env)
    run("cruft", "update", "--skip-apply-ask", "--project-dir", project, cwd=tmp_path, env=env)

    assert_updated(project, new_commit)
    run("cruft", "check", "--project-dir", project, cwd=tmp_path, env=env)


def test_cruft_update_twice_changes_nothing(tmp_path: Path, env: dict[str, str], template_repo) -> None:
    """A second update from the same template commit leaves the work tree as the first one did."""
    repo, _ = template_repo
    project = cruft_create(repo, tmp_path, env)
    init_project(project, env)
    change_template(repo, env)
    run("cruft", "update", "--skip-apply-ask", "--project-dir", project, cwd=tmp_path, env=env)
    commit_all(project, "Take template v2", env)

    run("cruft", "update", "--skip-apply-ask", "--project-dir", project, cwd=tmp_path, env=env)

    assert git("status", "--porcelain", cwd=project, env=env) == ""


def test_replay_file_regenerates_project(tmp_path: Path, env: dict[str, str], template_repo) -> None:
    """`cookiecutter --replay-file .cookiecutter.json` regenerates the project file for file."""
    repo, _ = template_repo
    hostile = {
        **ANSWERS,
        "author_name": 'Zoë "Q" O\'Brien \\',
        "description": "Quotes ' \" and a backslash \\ in one line",
    }
    first = tmp_path / "first"
    second = tmp_path / "second"
    extra = [f"{key}={value}" for key, value in hostile.items()]
    run("cookiecutter", "--no-input", "--output-dir", first, repo, *extra, cwd=tmp_path, env=env)
    answers_file = first / SLUG / ".cookiecutter.json"
    assert answers_file.is_file(), "the generated project keeps no .cookiecutter.json"

    run("cookiecutter", "--replay-file", answers_file, "--output-dir", second, repo, cwd=tmp_path, env=env)

    comparison = filecmp.dircmp(first / SLUG, second / SLUG)
    differences = collect_differences(comparison)
    assert differences == [], f"replayed project differs: {differences}"
    kept_answers = json.loads(answers_file.read_text(encoding="utf-8"))["cookiecutter"]
    assert kept_answers["author_name"] == hostile["author_name"]


def collect_differences(comparison: filecmp.dircmp[str], prefix: str = "") -> list[str]:
    differences = [f"{prefix}{name} (only in one)" for name in comparison.left_only + comparison.right_only]
    differences += [f"{prefix}{name}" for name in comparison.diff_files + comparison.funny_files]
    for name, sub in comparison.subdirs.items():
        differences += collect_differences(sub, f"{prefix}{name}/")
    return differences


def test_cruft_link_then_update(tmp_path: Path, env: dict[str, str], template_repo) -> None:
    """A project made with plain cookiecutter links to the template with its kept answers, then updates."""
    repo, first_commit = template_repo
    out = tmp_path / "out"
    extra = [f"{key}={value}" for key, value in ANSWERS.items()]
    run("cookiecutter", "--no-input", "--output-dir", out, repo, *extra, cwd=tmp_path, env=env)
    project = out / SLUG
    init_project(project, env)
    new_commit = change_template(repo, env)

    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))["cookiecutter"]
    run(
        "cruft", "link", repo, "--project-dir", project, "--checkout", first_commit, "--no-input",
        "--extra-context", json.dumps(answers),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    commit_all(project, "Link to the template", env)
    run("cruft", "update", "--skip-apply-ask", "--checkout", "main", "--project-dir", project, cwd=tmp_path, env=env)

    assert (project / PROBE_FILE).is_file(), f"{PROBE_FILE} from template v2 is missing"
    assert WORKFLOW_PROBE_LINE in (project / WORKFLOW).read_text(encoding="utf-8")
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["commit"] == new_commit
