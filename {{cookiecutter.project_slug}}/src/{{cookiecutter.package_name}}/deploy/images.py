"""Request parameters for CreateMicrovmImage and UpdateMicrovmImage.

Hooks and memory come from microvm.toml through :func:`..microvm.config.load_settings`,
the same source the hook server and the infrastructure templates read, so the image
always calls the hooks the app serves, on the port it serves them on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..microvm.config import Settings
from .client import check_role_arn
from .errors import UsageError

BASE_IMAGE_NAME = "al2023-1"
# The only architecture the service runs, although the API enum also lists X86_64.
ARCHITECTURE = "ARM_64"
IMAGE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The documented limit is 50 variables; the API model allows 100, so the stricter one applies.
MAX_ENVIRONMENT_VARIABLES = 50
MAX_ENVIRONMENT_KEY_LENGTH = 256
MAX_ENVIRONMENT_VALUE_LENGTH = 4096
# The platform sets these inside every MicroVM; an image variable of the same name would hide them.
RESERVED_ENVIRONMENT_KEYS = ("AWS_REGION",)
RESERVED_ENVIRONMENT_PREFIXES = ("AWS_LAMBDA_MICROVM_",)
LOG_GROUP_PATTERN = re.compile(r"[A-Za-z0-9_\-/.#]{1,512}")
S3_URI_PATTERN = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)")


@dataclass(frozen=True)
class ImageOptions:
    """Command-line choices shared by create-image and update-image."""

    build_role_arn: str
    code_uri: str
    base_image_arn: str
    base_image_version: str | None = None
    description: str | None = None
    log_group: str | None = None
    logging_disabled: bool = False
    egress_connectors: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)


def default_base_image_arn(partition: str, region: str) -> str:
    """Return the ARN of the managed Amazon Linux 2023 base image in ``region``."""
    return f"arn:{partition}:lambda:{region}:aws:microvm-image:{BASE_IMAGE_NAME}"


def internet_egress_connector_arn(partition: str, region: str) -> str:
    """Return the ARN of the managed connector that gives the build internet access."""
    return f"arn:{partition}:lambda:{region}:aws:network-connector:aws-network-connector:INTERNET_EGRESS"


def check_image_name(name: str) -> str:
    if not IMAGE_NAME_PATTERN.fullmatch(name):
        raise UsageError(f"image name {name!r} is invalid; use 1 to 64 letters, digits, '-' or '_', for example my-app")
    return name


def check_code_uri(uri: str) -> str:
    """Return ``uri`` if it names an S3 object; raise UsageError otherwise."""
    if not S3_URI_PATTERN.fullmatch(uri):
        raise UsageError(
            f"code URI {uri!r} is invalid; use the s3://bucket/key form that `microvm-deploy upload` prints, "
            "for example s3://my-bucket/my-app/image.zip"
        )
    return uri


def check_log_group(name: str) -> str:
    if not LOG_GROUP_PATTERN.fullmatch(name):
        raise UsageError(
            f"log group {name!r} is invalid; use 1 to 512 letters, digits and _-/.#, "
            "for example /aws/lambda-microvms/my-app"
        )
    return name


def parse_environment(pairs: Sequence[str]) -> dict[str, str]:
    """Parse ``KEY=VALUE`` strings into the image's environment variables."""
    environment: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key or re.search(r"\s", key):
            raise UsageError(
                f"--env {pair!r} is invalid; use KEY=VALUE with no spaces in KEY, for example LOG_LEVEL=info"
            )
        if len(key) > MAX_ENVIRONMENT_KEY_LENGTH:
            raise UsageError(
                f"--env key {key[:40]!r}... is {len(key)} characters; the limit is {MAX_ENVIRONMENT_KEY_LENGTH}"
            )
        if len(value) > MAX_ENVIRONMENT_VALUE_LENGTH:
            raise UsageError(
                f"--env {key} has a {len(value)}-character value; the limit is {MAX_ENVIRONMENT_VALUE_LENGTH}"
            )
        if key in RESERVED_ENVIRONMENT_KEYS or key.startswith(RESERVED_ENVIRONMENT_PREFIXES):
            raise UsageError(f"--env {key} is set by the platform in every MicroVM; choose another name")
        if key in environment:
            raise UsageError(f"--env {key} is given twice; pass each variable once")
        environment[key] = value
    if len(environment) > MAX_ENVIRONMENT_VARIABLES:
        raise UsageError(
            f"{len(environment)} environment variables are given; an image takes at most {MAX_ENVIRONMENT_VARIABLES}"
        )
    return environment


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key or len(key) > 128 or len(value) > 256:
            raise UsageError(
                f"--tag {pair!r} is invalid; use KEY=VALUE with a key of 1 to 128 characters "
                "and a value of at most 256, for example team=web"
            )
        tags[key] = value
    return tags


def image_parameters(settings: Settings, options: ImageOptions) -> dict[str, Any]:
    """Return the parameters that CreateMicrovmImage and UpdateMicrovmImage share."""
    parameters: dict[str, Any] = {
        "baseImageArn": options.base_image_arn,
        "buildRoleArn": check_role_arn(options.build_role_arn, "--build-role-arn"),
        "codeArtifact": {"uri": check_code_uri(options.code_uri)},
        "cpuConfigurations": [{"architecture": ARCHITECTURE}],
        "resources": [{"minimumMemoryInMiB": settings.memory_mib}],
        "hooks": settings.hooks_api_config(),
    }
    if options.base_image_version is not None:
        parameters["baseImageVersion"] = options.base_image_version
    if options.description is not None:
        parameters["description"] = options.description
    if options.logging_disabled:
        parameters["logging"] = {"disabled": {}}
    elif options.log_group is not None:
        parameters["logging"] = {"cloudWatch": {"logGroup": check_log_group(options.log_group)}}
    if options.egress_connectors:
        if len(options.egress_connectors) > 1:
            raise UsageError(
                f"{len(options.egress_connectors)} egress connectors are given; an image build takes at most 1"
            )
        parameters["egressNetworkConnectors"] = list(options.egress_connectors)
    if options.environment:
        parameters["environmentVariables"] = dict(options.environment)
    return parameters


def create_image_parameters(
    settings: Settings,
    options: ImageOptions,
    name: str,
    tags: dict[str, str] | None = None,
    client_token: str | None = None,
) -> dict[str, Any]:
    """Return the parameters of CreateMicrovmImage."""
    parameters = {"name": check_image_name(name), **image_parameters(settings, options)}
    if tags:
        parameters["tags"] = tags
    if client_token is not None:
        parameters["clientToken"] = client_token
    return parameters


def update_image_parameters(
    settings: Settings, options: ImageOptions, image_arn: str, client_token: str | None = None
) -> dict[str, Any]:
    """Return the parameters of UpdateMicrovmImage, which builds a new version of the image.

    The API requires codeArtifact, baseImageArn and buildRoleArn on every update,
    and imageIdentifier must be the image ARN.
    """
    parameters = {"imageIdentifier": image_arn, **image_parameters(settings, options)}
    if client_token is not None:
        parameters["clientToken"] = client_token
    return parameters
