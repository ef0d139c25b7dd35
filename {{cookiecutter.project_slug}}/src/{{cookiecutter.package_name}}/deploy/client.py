"""AWS clients for the deploy CLI, ARN checks, and readable AWS errors.

boto3 is imported only when a command needs AWS, so ``package`` and the image's
own runtime work without it. Credentials and the region come from boto3's
standard chain (``--profile``, environment variables, ``~/.aws/config``, SSO);
this module never reads or stores a key itself.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .errors import UsageError

MICROVMS_SERVICE = "lambda-microvms"
IMAGE_ARN_PATTERN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"microvm-image:(?P<name>[A-Za-z0-9_-]{1,64})"
)
# The RoleArn pattern of the lambda-microvms service model (botocore 1.44.5). botocore
# checks only minimum lengths, so the CLI checks the pattern itself.
ROLE_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/?[A-Za-z0-9_+=,.@/-]+")
EXAMPLE_IMAGE_ARN = "arn:aws:lambda:us-east-1:123456789012:microvm-image:my-app"
EXAMPLE_ROLE_ARN = "arn:aws:iam::123456789012:role/my-app-build"

# Next steps for the error codes that the lambda-microvms and S3 operations return.
NEXT_STEPS = {
    "AccessDeniedException": (
        "grant the caller lambda:{operation} on the image or MicroVM ARN; RunMicrovm also needs iam:PassRole on "
        "the execution role and lambda:PassNetworkConnector on the network connectors (see infra/iam/)"
    ),
    "AccessDenied": "grant the caller the S3 permission for {operation} on the bucket and key (see infra/iam/)",
    "ResourceNotFoundException": (
        "check the ARN or MicroVM id and the region; list what exists with `microvm-deploy list` "
        "or `microvm-deploy list --images`"
    ),
    "ValidationException": "fix the value that the message names; `microvm-deploy <command> --help` lists each range",
    "ConflictException": (
        "the resource is in a state that does not allow {operation}; check it with `microvm-deploy status` and retry"
    ),
    "ThrottlingException": (
        "wait a few seconds and retry; the default quotas are per second (RunMicrovm 5, SuspendMicrovm 2)"
    ),
    "ServiceQuotaExceededException": (
        "terminate MicroVMs or delete image versions you no longer need, or request a higher quota in Service Quotas"
    ),
    "InsufficientCapacityException": "retry in a few minutes, or run the image in another region",
    "InternalServerException": "retry the command; if it fails again, contact AWS Support with the request id",
    "NoSuchBucket": "create the bucket in the image's region, or pass the name of an existing bucket with --bucket",
    "PermanentRedirect": "the bucket is in another region; use a bucket in the image's region",
    "AuthorizationHeaderMalformed": "the bucket is in another region; use a bucket in the image's region",
}
DEFAULT_NEXT_STEP = "fix what the message names and run the command again"


class AwsClients:
    """Creates each boto3 client once, for one region and profile."""

    def __init__(self, region: str | None = None, profile: str | None = None, session: Any = None) -> None:
        self._session = session
        self._region = region
        self._profile = profile
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> Any:
        if self._session is None:
            try:
                import boto3
            except ModuleNotFoundError:
                raise UsageError(
                    "boto3 is not installed; install the project's dev dependencies with `uv sync`, "
                    "which include boto3 1.44.5"
                ) from None
            # boto3 reads AWS_DEFAULT_REGION and the profile but not AWS_REGION, which the AWS CLI
            # and the other SDKs prefer, so AWS_REGION is passed here to keep that order.
            region = self._region or os.environ.get("AWS_REGION") or None
            try:
                self._session = boto3.session.Session(profile_name=self._profile, region_name=region)
            except Exception as error:  # botocore raises ProfileNotFound, which needs botocore to import.
                raise UsageError(f"cannot use AWS profile {self._profile!r}: {error}") from error
        return self._session

    @property
    def region(self) -> str:
        """Return the region from --region, AWS_REGION, AWS_DEFAULT_REGION or the profile, in that order."""
        region = self.session.region_name
        if not region:
            raise UsageError(
                "no AWS region is set; pass --region (for example --region us-east-1), "
                "set AWS_REGION, or set region in the profile in ~/.aws/config"
            )
        return region

    @property
    def partition(self) -> str:
        return self.session.get_partition_for_region(self.region)

    def client(self, service: str) -> Any:
        """Return the boto3 client for ``service`` in the selected region."""
        if service not in self._clients:
            from botocore.config import Config

            config = Config(retries={"mode": "standard"}, user_agent_extra="microvm-deploy")
            self._clients[service] = self.session.client(service, region_name=self.region, config=config)
        return self._clients[service]

    @property
    def microvms(self) -> Any:
        return self.client(MICROVMS_SERVICE)


def check_image_arn(value: str, region: str) -> str:
    """Return ``value`` if it is a MicroVM image ARN in ``region``; raise UsageError otherwise.

    The API rejects a plain image name wherever it takes ``imageIdentifier``.
    """
    match = IMAGE_ARN_PATTERN.fullmatch(value)
    if not match:
        raise UsageError(
            f"image {value!r} is not a MicroVM image ARN; the API accepts only the ARN, for example "
            f"{EXAMPLE_IMAGE_ARN}. `microvm-deploy list --images` prints the ARN of each image"
        )
    if match["region"] != region:
        raise UsageError(
            f"image {value} is in {match['region']}, but the command runs in {region}; pass --region {match['region']}"
        )
    return value


def image_name_from_arn(image_arn: str) -> str:
    match = IMAGE_ARN_PATTERN.fullmatch(image_arn)
    if not match:
        raise UsageError(f"image {image_arn!r} is not a MicroVM image ARN, for example {EXAMPLE_IMAGE_ARN}")
    return match["name"]


def check_role_arn(value: str, option: str) -> str:
    """Return ``value`` if it matches the service model's role ARN pattern; raise UsageError otherwise."""
    if len(value) < 20 or not ROLE_ARN_PATTERN.fullmatch(value):
        raise UsageError(f"{option} {value!r} is not an IAM role ARN; use the form {EXAMPLE_ROLE_ARN}")
    return value


def describe_client_error(error: Any, operation: str | None = None) -> str:
    """Format a botocore ClientError as the failed operation, code, message, request id and next step."""
    response = getattr(error, "response", {}) or {}
    details = response.get("Error", {})
    code = details.get("Code") or "UnknownError"
    message = details.get("Message") or "no message"
    metadata = response.get("ResponseMetadata", {})
    request_id = metadata.get("RequestId") or metadata.get("HTTPHeaders", {}).get("x-amz-request-id") or "none"
    operation = operation or getattr(error, "operation_name", None) or "the AWS call"
    next_step = NEXT_STEPS.get(code, DEFAULT_NEXT_STEP).format(operation=operation)
    return f"{operation} failed with {code}: {message}\nrequest id: {request_id}\nnext step: {next_step}"


def describe_botocore_error(error: Exception) -> str:
    """Format a BotoCoreError (no credentials, no connection, invalid parameter) with its next step."""
    name = type(error).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return (
            f"{error}; configure AWS credentials with `aws configure` or `aws sso login`, "
            "or select a profile with --profile or AWS_PROFILE"
        )
    if name == "NoRegionError":
        return f"{error}; pass --region or set AWS_REGION"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return f"{error}; check the network connection and the region name"
    return str(error)


def paginate(client: Any, operation: str, **params: Any) -> list[dict[str, Any]]:
    """Return the ``items`` of every page of a paginated lambda-microvms list operation."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page.get("items", []))
    return items
