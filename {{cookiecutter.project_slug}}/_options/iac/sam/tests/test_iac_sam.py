"""Check infra/sam/template.yaml: cfn-lint, the image against microvm.toml, the IAM against infra/iam."""

from __future__ import annotations

import pytest

from iac_checks import (
    PROJECT_ROOT,
    STUB_FOR_RESOURCE,
    TRUST_STUB_FOR_ROLE,
    cfn_lint,
    decode_template,
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

TEMPLATE = PROJECT_ROOT / "infra" / "sam" / "template.yaml"
IMAGE_TYPE = "AWS::Serverless::MicrovmImage"


@pytest.fixture(scope="module")
def template() -> dict:
    return decode_template(TEMPLATE)


def test_cfn_lint_reports_nothing() -> None:
    """cfn-lint finds no error and no warning."""
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hooks_match_settings(template: dict) -> None:
    """The image's Hooks equal Settings.hooks_api_config() from microvm.toml, in PascalCase."""
    expected = pascal_case(load_settings().hooks_api_config())
    assert image_properties(template, IMAGE_TYPE)["Hooks"] == expected, (
        "the Hooks block and microvm.toml differ. Change both together."
    )


def test_memory_matches_settings(template: dict) -> None:
    """The image's memory size is [image] memory_mib from microvm.toml."""
    memory = load_settings().memory_mib
    assert image_properties(template, IMAGE_TYPE)["Resources"] == [{"MinimumMemoryInMiB": memory}]


def test_image_arm64_without_capabilities(template: dict) -> None:
    """The image targets ARM_64, the only supported architecture, and requests no additional OS capabilities."""
    properties = image_properties(template, IMAGE_TYPE)
    assert properties["CpuConfigurations"] == [{"Architecture": "ARM_64"}]
    assert properties["AdditionalOsCapabilities"] == []
    assert properties["EnvironmentVariables"] == {}


def test_image_name_defaults_to_slug(template: dict) -> None:
    """The ImageName parameter defaults to the name that the IAM stubs use."""
    assert template["Parameters"]["ImageName"]["Default"] == project_slug()


@pytest.mark.parametrize(("resource", "stub"), sorted(STUB_FOR_RESOURCE.items()))
def test_policy_matches_stub(template: dict, resource: str, stub: str) -> None:
    """Each role's and the deployer's permissions equal the JSON stub in infra/iam."""
    policy = stub_form(template_policies(template)[resource], project_slug())
    assert normalized_policy(policy) == normalized_policy(load_policy(stub)), (
        f"{resource} in the template and infra/iam/{stub} differ. Change both together."
    )


@pytest.mark.parametrize(("role", "stub"), sorted(TRUST_STUB_FOR_ROLE.items()))
def test_trust_policy_matches_stub(template: dict, role: str, stub: str) -> None:
    """Each role's trust policy equals the JSON stub in infra/iam."""
    trust = stub_form(template_trust_policies(template)[role], project_slug())
    assert normalized_policy(trust) == normalized_policy(load_policy(stub))


def test_artifact_bucket_is_private_and_tls_only(template: dict) -> None:
    """The artifact bucket is encrypted, versioned, blocks public access and denies plain HTTP."""
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    (statement,) = template["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_log_group_has_retention(template: dict) -> None:
    """The log group expires its events instead of keeping them forever."""
    assert "RetentionInDays" in template["Resources"]["ImageLogGroup"]["Properties"]
