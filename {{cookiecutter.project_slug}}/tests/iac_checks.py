"""Helpers for the infrastructure tests: the IAM policy stubs, cfn-lint, and the expected image settings."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conftest import PACKAGE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IAM_DIRECTORY = PROJECT_ROOT / "infra" / "iam"
INFRA_README = PROJECT_ROOT / "infra" / "README.md"
# Placeholders for the values that only the account owner has. infra/README.md explains each one.
PLACEHOLDERS = ("AccountId", "Region", "ArtifactBucket")
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# The CDK names resources "<construct id><8 hexadecimal digits>".
CDK_HASH_SUFFIX = re.compile(r"[0-9A-F]{8}$")
# The only actions granted on "*": their requests name no resource, so IAM cannot scope them.
UNSCOPED_ACTIONS = frozenset({"lambda:ListMicrovms", "lambda:ListMicrovmImages", "lambda:ListManagedMicrovmImages"})
# The policy stub that each role or managed policy of the templates must equal.
STUB_FOR_RESOURCE = {
    "BuildRole": "build-role-policy.json",
    "ExecutionRole": "execution-role-policy.json",
    "DeployerPolicy": "deployer-policy.json",
}
TRUST_STUB_FOR_ROLE = {
    "BuildRole": "build-role-trust-policy.json",
    "ExecutionRole": "execution-role-trust-policy.json",
}


def project_slug() -> str:
    """Return the distribution name, which also names the image, its roles, its log group and its S3 prefix."""
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["name"]


def load_policy(name: str) -> dict[str, Any]:
    """Parse one JSON policy document from infra/iam."""
    return json.loads((IAM_DIRECTORY / name).read_text(encoding="utf-8"))


def as_list(value: Any) -> list[Any]:
    """Return an IAM field that may be a single value or a list as a list."""
    return value if isinstance(value, list) else [value]


def load_settings() -> Any:
    """Load microvm.toml through the package's own reader, ignoring APP_PORT and the other overrides."""
    config = importlib.import_module(f"{PACKAGE}.microvm.config")
    return config.load_settings(environ={})


def pascal_case(value: Any) -> Any:
    """Rename the keys of the API's camelCase shape to CloudFormation's PascalCase, at every depth."""
    if isinstance(value, dict):
        return {key[:1].upper() + key[1:]: pascal_case(item) for key, item in value.items()}
    if isinstance(value, list):
        return [pascal_case(item) for item in value]
    return value


def plain(value: Any) -> Any:
    """Copy a value that cfn-lint decoded (dict and list subclasses with line numbers) into plain containers."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def tool(name: str, package: str) -> str:
    """Return the path of a command from the project's environment, or fail with the command that installs it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} was not found next to {sys.executable} or on PATH; it is a development dependency: "
            f"pip install --require-hashes -r requirements-dev.txt (it provides {package})",
            pytrace=False,
        )
    return found


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    """Run cfn-lint on ``template``. Exit status 0 means no errors and no warnings."""
    return subprocess.run(
        [tool("cfn-lint", "cfn-lint"), "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def decode_template(template: Path) -> dict[str, Any]:
    """Parse a CloudFormation template, YAML with short-form intrinsics or JSON, into plain containers."""
    # cfn-lint ships no type information.
    from cfnlint.decode import decode  # type: ignore[import-untyped]

    document, problems = decode(str(template))
    assert not problems, f"{template} does not parse: {problems}"
    return plain(document)


def image_properties(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    """Return the Properties of the one resource of ``resource_type`` in ``template``."""
    images = [r for r in template["Resources"].values() if r["Type"] == resource_type]
    assert len(images) == 1, f"expected one {resource_type} resource, found {len(images)}"
    return images[0]["Properties"]


def normalized_policy(document: dict[str, Any], keep_sids: bool = True) -> dict[str, Any]:
    """Return a policy document with Action and Resource as sorted lists, for comparisons."""
    statements = []
    for statement in document["Statement"]:
        copy = {key: value for key, value in statement.items() if keep_sids or key != "Sid"}
        for key in ("Action", "Resource"):
            if key in copy:
                copy[key] = sorted(as_list(copy[key]))
        statements.append(copy)
    statements.sort(key=lambda item: json.dumps(item, sort_keys=True))
    return {"Version": document["Version"], "Statement": statements}


def stub_form(value: Any, slug: str) -> Any:
    """Rewrite the intrinsic functions of a template's policies into the placeholders of the JSON stubs.

    The templates name the same ARNs as the stubs in infra/iam, with
    ``${AWS::AccountId}`` for ``${AccountId}``, the bucket resource for
    ``${ArtifactBucket}`` and the image name (default: the project slug) for the
    rendered names. After this rewrite a template's policy must equal its stub.
    Logical IDs may carry the 8-character hash suffix that the CDK appends.
    """
    log_group = "/aws/lambda-microvms/" + slug
    references = {
        "AWS::Partition": "aws",
        "AWS::AccountId": "${AccountId}",
        "AWS::Region": "${Region}",
        "ArtifactBucket": "${ArtifactBucket}",
        "ImageName": slug,
        "ImageLogGroup": log_group,
    }
    arns = {
        "ArtifactBucket": "arn:aws:s3:::${ArtifactBucket}",
        "BuildRole": "arn:aws:iam::${AccountId}:role/" + slug + "-microvm-build",
        "ExecutionRole": "arn:aws:iam::${AccountId}:role/" + slug + "-microvm-execution",
    }
    substitutions = {
        "${AWS::Partition}": "aws",
        "${AWS::Region}": "${Region}",
        "${AWS::AccountId}": "${AccountId}",
        "${ArtifactBucket.Arn}": arns["ArtifactBucket"],
        "${ImageName}": slug,
        "${ImageLogGroup}": log_group,
    }
    if isinstance(value, list):
        return [stub_form(item, slug) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        name = CDK_HASH_SUFFIX.sub("", value["Ref"])
        assert name in references, f"no stub placeholder for Ref {value['Ref']}"
        return references[name]
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        name, attribute = target if isinstance(target, list) else target.split(".", 1)
        name = CDK_HASH_SUFFIX.sub("", name)
        assert attribute == "Arn", f"no stub placeholder for GetAtt {name}.{attribute}"
        assert name in arns, f"no stub placeholder for GetAtt {name}.{attribute}"
        return arns[name]
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(stub_form(part, slug) for part in parts)
    if set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        assert isinstance(text, str), f"only the one-argument form of Fn::Sub is rewritten, not {text!r}"
        for variable, replacement in substitutions.items():
            text = text.replace(variable, replacement)
        leftover = [name for name in PLACEHOLDER.findall(text) if name not in PLACEHOLDERS]
        assert not leftover, f"no stub placeholder for the variable {leftover[0]} in {value['Fn::Sub']!r}"
        return text
    return {key: stub_form(item, slug) for key, item in value.items()}


def template_policies(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Map BuildRole, ExecutionRole and DeployerPolicy of a template to their permission policy documents."""
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in template["Resources"].items():
        name = CDK_HASH_SUFFIX.sub("", logical_id)
        if name not in STUB_FOR_RESOURCE:
            continue
        properties = resource["Properties"]
        if resource["Type"] == "AWS::IAM::Role":
            (policy,) = properties["Policies"]
            found[name] = policy["PolicyDocument"]
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            found[name] = properties["PolicyDocument"]
    return found


def template_trust_policies(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Map BuildRole and ExecutionRole of a template to their trust policy documents."""
    return {
        CDK_HASH_SUFFIX.sub("", logical_id): resource["Properties"]["AssumeRolePolicyDocument"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role" and CDK_HASH_SUFFIX.sub("", logical_id) in TRUST_STUB_FOR_ROLE
    }
