"""Check the IAM policy stubs in infra/iam against the least-privilege rules that infra/README.md states."""

from __future__ import annotations

import re
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from conftest import PACKAGE
from iac_checks import (
    IAM_DIRECTORY,
    INFRA_README,
    PLACEHOLDER,
    PLACEHOLDERS,
    PROJECT_ROOT,
    UNSCOPED_ACTIONS,
    as_list,
    load_policy,
    project_slug,
)

TRUST_POLICIES = ("build-role-trust-policy.json", "execution-role-trust-policy.json")
PERMISSION_POLICIES = ("build-role-policy.json", "execution-role-policy.json", "deployer-policy.json")
ALL_POLICIES = TRUST_POLICIES + PERMISSION_POLICIES
# An action that IAM checks but that no API operation of the service model has.
PERMISSION_ONLY_ACTIONS = frozenset({"lambda:PassNetworkConnector"})
MANAGED_CONNECTOR_PREFIX = "arn:aws:lambda:${Region}:aws:network-connector:aws-network-connector:"
# The IAM action that each S3 operation the deploy CLI may call needs (not always its own name).
S3_ACTION_FOR_OPERATION = {
    "PutObject": "s3:PutObject",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "GetBucketLocation": "s3:GetBucketLocation",
    "HeadBucket": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
}
LOG_ACTIONS = frozenset({"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"})


def statements(name: str) -> list[dict]:
    return load_policy(name)["Statement"]


def log_group_arns() -> list[str]:
    group = "arn:aws:logs:${Region}:${AccountId}:log-group:/aws/lambda-microvms/" + project_slug()
    return [group, f"{group}:*"]


def test_iam_directory_contents() -> None:
    """infra/iam contains exactly the five documented policy documents."""
    assert sorted(path.name for path in IAM_DIRECTORY.glob("*.json")) == sorted(ALL_POLICIES)


@pytest.mark.parametrize("name", ALL_POLICIES)
def test_policy_document_shape(name: str) -> None:
    """Each stub is a 2012-10-17 document of Allow statements with unique Sids and named actions."""
    document = load_policy(name)
    assert document["Version"] == "2012-10-17"
    sids = [statement.get("Sid") for statement in document["Statement"]]
    assert all(sids), f"{name}: every statement needs a Sid, so that the templates can be compared with it"
    assert len(set(sids)) == len(sids), f"{name}: duplicate Sid in {sids}"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow", f"{name}: {statement['Sid']} is not an Allow statement"
        actions = as_list(statement["Action"])
        assert actions, f"{name}: {statement['Sid']} has no actions"
        assert not [action for action in actions if "*" in action], f"{name}: {statement['Sid']} has a wildcard action"


@pytest.mark.parametrize("name", ALL_POLICIES)
def test_placeholders_are_documented(name: str) -> None:
    """A stub uses only the placeholders that infra/README.md explains."""
    text = (IAM_DIRECTORY / name).read_text(encoding="utf-8")
    readme = INFRA_README.read_text(encoding="utf-8")
    for placeholder in set(PLACEHOLDER.findall(text)):
        written = "${" + placeholder + "}"
        assert placeholder in PLACEHOLDERS, f"{name}: unknown placeholder {written}"
        assert written in readme, f"infra/README.md does not explain {written}"


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_wildcard_only_for_unscoped_actions(name: str) -> None:
    """Only the list actions whose requests name no resource are granted on "*"."""
    for statement in statements(name):
        resources = as_list(statement["Resource"])
        if any("*" == resource for resource in resources):
            extra = set(as_list(statement["Action"])) - UNSCOPED_ACTIONS
            assert not extra, f"{name}: {statement['Sid']} grants {sorted(extra)} on every resource"


def test_unscoped_actions_are_documented() -> None:
    """infra/README.md gives the reason for each action granted on "*"."""
    readme = INFRA_README.read_text(encoding="utf-8")
    for action in UNSCOPED_ACTIONS:
        assert action in readme, f'infra/README.md does not explain why {action} uses Resource "*"'


def test_lambda_actions_in_service_model() -> None:
    """Every lambda: action is an operation of the lambda-microvms service model, or PassNetworkConnector."""
    model = botocore.session.get_session().get_service_model("lambda-microvms")
    known = {f"lambda:{operation}" for operation in model.operation_names} | PERMISSION_ONLY_ACTIONS
    for name in PERMISSION_POLICIES:
        for statement in statements(name):
            for action in as_list(statement["Action"]):
                if action.startswith("lambda:"):
                    assert action in known, f"{name}: {action} is not an operation of lambda-microvms"


def deploy_sources() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in (PROJECT_ROOT / "src" / PACKAGE / "deploy").glob("*.py")
    )


def called_operations(service: str, source: str) -> set[str]:
    """Return the operations of ``service`` whose snake_case method name appears in ``source``."""
    model = botocore.session.get_session().get_service_model(service)
    return {op for op in model.operation_names if re.search(rf"\b{xform_name(op)}\b", source)}


def deployer_actions() -> set[str]:
    return {action for statement in statements("deployer-policy.json") for action in as_list(statement["Action"])}


def test_deployer_allows_cli_microvm_calls() -> None:
    """The deployer policy allows every lambda-microvms operation that the deploy CLI calls."""
    called = called_operations("lambda-microvms", deploy_sources())
    assert called, "found no lambda-microvms operation in the deploy package"
    missing = sorted(f"lambda:{op}" for op in called if f"lambda:{op}" not in deployer_actions())
    assert not missing, f"the deploy CLI calls {missing}, which infra/iam/deployer-policy.json does not allow"


def test_deployer_allows_cli_s3_calls() -> None:
    """The deployer policy allows the IAM action behind every S3 operation that the deploy CLI calls."""
    called = called_operations("s3", deploy_sources())
    unknown = sorted(called - set(S3_ACTION_FOR_OPERATION))
    assert not unknown, f"add the IAM action of S3 operation(s) {unknown} to S3_ACTION_FOR_OPERATION"
    missing = sorted(
        S3_ACTION_FOR_OPERATION[op] for op in called if S3_ACTION_FOR_OPERATION[op] not in deployer_actions()
    )
    assert not missing, f"the deploy CLI needs {missing}, which infra/iam/deployer-policy.json does not allow"


@pytest.mark.parametrize("name", TRUST_POLICIES)
def test_trust_admits_only_lambda(name: str) -> None:
    """Only lambda.amazonaws.com may assume the role, and only for this account (confused-deputy guard)."""
    for statement in statements(name):
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert "sts:AssumeRole" in as_list(statement["Action"])
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "${AccountId}"


def test_build_trust_limits_source_to_images() -> None:
    """The build role may be assumed only on behalf of a MicroVM image of this account and region."""
    (statement,) = statements("build-role-trust-policy.json")
    expected = "arn:aws:lambda:${Region}:${AccountId}:microvm-image:*"
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == expected


def test_execution_trust_omits_source_arn() -> None:
    """The execution role checks the account only: aws:SourceArn at RunMicrovm is undocumented (see infra/README.md)."""
    (statement,) = statements("execution-role-trust-policy.json")
    assert set(statement["Condition"]) == {"StringEquals"}
    assert "aws:SourceArn" in INFRA_README.read_text(encoding="utf-8")


def test_build_role_reads_only_artifact_prefix() -> None:
    """The build role's S3 access is GetObject under the project's prefix of the artifact bucket."""
    s3_statements = [s for s in statements("build-role-policy.json") if as_list(s["Action"])[0].startswith("s3:")]
    assert len(s3_statements) == 1
    assert as_list(s3_statements[0]["Action"]) == ["s3:GetObject"]
    assert as_list(s3_statements[0]["Resource"]) == ["arn:aws:s3:::${ArtifactBucket}/" + project_slug() + "/*"]


@pytest.mark.parametrize("name", ["build-role-policy.json", "execution-role-policy.json"])
def test_role_writes_only_its_log_group(name: str) -> None:
    """A role writes logs to the image's log group and nowhere else."""
    log_statements = [s for s in statements(name) if set(as_list(s["Action"])) & LOG_ACTIONS]
    assert log_statements, f"{name}: without log permissions the platform drops the logs"
    for statement in log_statements:
        assert set(as_list(statement["Action"])) == LOG_ACTIONS
        assert as_list(statement["Resource"]) == log_group_arns()


def test_execution_role_grants_only_logs() -> None:
    """Out of the box the execution role can only write logs. App permissions are added by hand."""
    actions = {action for s in statements("execution-role-policy.json") for action in as_list(s["Action"])}
    assert actions == LOG_ACTIONS


def test_pass_role_limited_to_microvm_roles() -> None:
    """iam:PassRole appears only in the deployer policy, on exactly the build and execution roles."""
    slug = project_slug()
    expected = {
        "arn:aws:iam::${AccountId}:role/" + slug + "-microvm-build",
        "arn:aws:iam::${AccountId}:role/" + slug + "-microvm-execution",
    }
    for name in PERMISSION_POLICIES:
        for statement in statements(name):
            if "iam:PassRole" not in as_list(statement["Action"]):
                continue
            assert name == "deployer-policy.json", f"{name} must not pass roles"
            assert as_list(statement["Action"]) == ["iam:PassRole"]
            assert set(as_list(statement["Resource"])) == expected


def test_pass_network_connector_scope() -> None:
    """lambda:PassNetworkConnector is granted on the AWS-managed connectors only."""
    granted = [s for s in statements("deployer-policy.json") if "lambda:PassNetworkConnector" in as_list(s["Action"])]
    assert len(granted) == 1
    for resource in as_list(granted[0]["Resource"]):
        assert resource.startswith(MANAGED_CONNECTOR_PREFIX), resource


def test_deployer_scoped_to_image() -> None:
    """Image and MicroVM calls are allowed on this project's image ARN and its versions only."""
    slug = project_slug()
    image = "arn:aws:lambda:${Region}:${AccountId}:microvm-image:" + slug
    for statement in statements("deployer-policy.json"):
        if statement["Sid"] in ("ManageImage", "OperateMicrovms"):
            assert as_list(statement["Resource"]) == [image, f"{image}:*"]


def test_readme_names_each_stub() -> None:
    """infra/README.md describes every stub file."""
    readme = INFRA_README.read_text(encoding="utf-8")
    for name in ALL_POLICIES:
        assert name in readme, f"infra/README.md does not mention {name}"


def test_stubs_fully_rendered() -> None:
    """The project slug is rendered into the stubs, and no template syntax is left behind."""
    for path in Path(IAM_DIRECTORY).glob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert "cookiecutter" not in text, f"{path.name} still holds a template expression"
