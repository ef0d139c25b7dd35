"""Synthesize the CDK app in infra/cdk and check the template: cfn-lint, the image, the IAM against infra/iam.

The CDK libraries are not development dependencies of every project. Install them with
``pip install --require-hashes -r infra/cdk/requirements.txt``. They run on Node.js.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from iac_checks import (
    PROJECT_ROOT,
    STUB_FOR_RESOURCE,
    TRUST_STUB_FOR_ROLE,
    cfn_lint,
    image_properties,
    load_policy,
    load_settings,
    normalized_policy,
    pascal_case,
    project_slug,
    stub_form,
    template_policies,
    template_trust_policies,
)

CDK_DIRECTORY = PROJECT_ROOT / "infra" / "cdk"
IMAGE_TYPE = "AWS::Lambda::MicrovmImage"
CODE_ARTIFACT_ZIP = "0123456789abcdef.zip"


@pytest.fixture(scope="module")
def cdk_app() -> Iterator[ModuleType]:
    """Import infra/cdk/app.py, or skip with the command that installs what it needs."""
    if importlib.util.find_spec("aws_cdk") is None:
        pytest.skip("aws-cdk-lib is not installed: pip install --require-hashes -r infra/cdk/requirements.txt")
    if shutil.which("node") is None:
        pytest.skip("Node.js was not found on PATH. The CDK runs its construct library in it: install Node.js 22+")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(CDK_DIRECTORY))
        spec = importlib.util.spec_from_file_location("cdk_app", CDK_DIRECTORY / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
        sys.modules.pop("microvm_stack", None)


def synthesize(cdk_app: ModuleType, outdir: Path, context: dict[str, str]) -> tuple[Path, dict]:
    cdk_app.build_app(context=context, outdir=str(outdir)).synth()
    (template_path,) = outdir.glob("*.template.json")
    return template_path, json.loads(template_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def synthesized(cdk_app: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The template of a deployment that names an uploaded zip, so that it has the image."""
    return synthesize(cdk_app, tmp_path_factory.mktemp("cdk-out"), {"codeArtifactZip": CODE_ARTIFACT_ZIP})


def test_cfn_lint_reports_nothing(synthesized: tuple[Path, dict]) -> None:
    """cfn-lint finds no error and no warning in the synthesized template."""
    result = cfn_lint(synthesized[0])
    assert result.returncode == 0, result.stdout + result.stderr


def test_first_deployment_has_no_image(cdk_app: ModuleType, tmp_path: Path) -> None:
    """Without codeArtifactZip the stack creates the bucket and roles but no image, and still lints clean."""
    path, template = synthesize(cdk_app, tmp_path, {})
    assert not [r for r in template["Resources"].values() if r["Type"] == IMAGE_TYPE]
    result = cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hooks_match_settings(synthesized: tuple[Path, dict]) -> None:
    """The image's Hooks equal Settings.hooks_api_config() from microvm.toml, in PascalCase."""
    expected = pascal_case(load_settings().hooks_api_config())
    assert image_properties(synthesized[1], IMAGE_TYPE)["Hooks"] == expected


def test_memory_matches_settings(synthesized: tuple[Path, dict]) -> None:
    """The image's memory size is [image] memory_mib from microvm.toml."""
    memory = load_settings().memory_mib
    assert image_properties(synthesized[1], IMAGE_TYPE)["Resources"] == [{"MinimumMemoryInMiB": memory}]


def test_image_arm64_without_capabilities(synthesized: tuple[Path, dict]) -> None:
    """The image targets ARM_64, the only supported architecture, and requests no additional OS capabilities."""
    properties = image_properties(synthesized[1], IMAGE_TYPE)
    assert properties["CpuConfigurations"] == [{"Architecture": "ARM_64"}]
    assert properties["AdditionalOsCapabilities"] == []
    assert properties["Name"] == project_slug()


def test_code_artifact_under_project_prefix(synthesized: tuple[Path, dict]) -> None:
    """The image reads the zip from the project's prefix, the only one the build role may read."""
    uri = stub_form(image_properties(synthesized[1], IMAGE_TYPE)["CodeArtifact"]["Uri"], project_slug())
    assert uri == "s3://${ArtifactBucket}/" + project_slug() + "/" + CODE_ARTIFACT_ZIP


@pytest.mark.parametrize(("resource", "stub"), sorted(STUB_FOR_RESOURCE.items()))
def test_policy_matches_stub(synthesized: tuple[Path, dict], resource: str, stub: str) -> None:
    """Each role's and the deployer's permissions equal the JSON stub in infra/iam."""
    policy = stub_form(template_policies(synthesized[1])[resource], project_slug())
    assert normalized_policy(policy) == normalized_policy(load_policy(stub)), (
        f"{resource} in microvm_stack.py and infra/iam/{stub} differ. Change both together."
    )


@pytest.mark.parametrize(("role", "stub"), sorted(TRUST_STUB_FOR_ROLE.items()))
def test_trust_policy_matches_stub(synthesized: tuple[Path, dict], role: str, stub: str) -> None:
    """Each role's trust policy equals the JSON stub in infra/iam, apart from the Sid that the CDK omits."""
    trust = stub_form(template_trust_policies(synthesized[1])[role], project_slug())
    expected = normalized_policy(load_policy(stub), keep_sids=False)
    assert normalized_policy(trust, keep_sids=False) == expected


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"imageName": "my app"}, "imageName='my app' is invalid"),
        ({"codeArtifactZip": "../app.zip"}, "codeArtifactZip='../app.zip' is invalid"),
        ({"logRetentionDays": "10"}, "logRetentionDays=10 is invalid"),
        ({"logRetentionDays": "a month"}, "logRetentionDays='a month' is invalid"),
    ],
)
def test_invalid_context_rejected(cdk_app: ModuleType, tmp_path: Path, context: dict[str, str], message: str) -> None:
    """A bad -c value stops the synthesis with a message that names it."""
    with pytest.raises(ValueError, match=re.escape(message)):
        cdk_app.build_app(context=context, outdir=str(tmp_path))
