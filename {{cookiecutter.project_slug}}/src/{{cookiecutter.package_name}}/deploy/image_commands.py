"""Commands that build the image: ``package``, ``upload``, ``create-image``, ``update-image`` and ``wait``.

Each function takes the parsed arguments and a :class:`Context`, prints results
to ``context.out`` and progress, warnings and next steps to ``context.err``, and
returns the exit status.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

from ..microvm.config import APP_PACKAGE
from .builds import WaitOptions, wait_for_version
from .client import check_image_arn
from .context import Context, print_json, project_name, project_settings
from .errors import UsageError
from .images import (
    ImageOptions,
    create_image_parameters,
    default_base_image_arn,
    internet_egress_connector_arn,
    parse_environment,
    parse_tags,
    update_image_parameters,
)
from .packaging import build_package, file_sha256

# Settings that only microvm.toml may set for the image. An --env override would make
# the image serve on ports that the hooks configuration and the tokens do not use.
SETTINGS_VARIABLES = ("APP_PORT", "HOOKS_PORT")
WAIT_BOUNDS = {"--timeout": (1.0, 86400.0), "--interval": (1.0, 3600.0)}


def package(args: argparse.Namespace, context: Context) -> int:
    if (args.root / "Dockerfile").is_file() and not (args.root / ".dockerignore").is_file():
        print(
            f"warning: no .dockerignore in {args.root}, so every file below it goes into the zip, "
            "including virtual environments and caches",
            file=context.err,
        )
    result = build_package(args.root, _zip_path(args))
    if context.json_output:
        print_json(
            context,
            {
                "path": str(result.path),
                "sha256": result.sha256,
                "sizeBytes": result.size_bytes,
                "entries": list(result.entries),
            },
        )
        return 0
    print(f"path: {result.path}", file=context.out)
    print(f"sha256: {result.sha256}", file=context.out)
    print(f"files: {len(result.entries)}, {result.size_bytes} bytes", file=context.out)
    if args.list:
        for entry in result.entries:
            print(f"  {entry}", file=context.out)
    return 0


def upload(args: argparse.Namespace, context: Context) -> int:
    path = _zip_path(args)
    if not path.is_file():
        raise UsageError(f"no zip at {path}; run `microvm-deploy package` first, or pass --output with the zip's path")
    digest = file_sha256(path)
    # A key per content keeps the zip of every image version; the IAM stubs grant the project-name prefix.
    key = args.key or f"{project_name()}/{digest[:16]}.zip"
    s3 = context.clients.client("s3")
    _check_bucket_region(s3, args.bucket, context)

    with path.open("rb") as body:
        response = s3.put_object(
            Bucket=args.bucket,
            Key=key,
            Body=body,
            ContentType="application/zip",
            # The image builder reads only objects in the Standard storage class.
            StorageClass="STANDARD",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode("ascii"),
        )
    uri = f"s3://{args.bucket}/{key}"
    if context.json_output:
        print_json(context, {"uri": uri, "sha256": digest, "versionId": response.get("VersionId")})
        return 0
    print(f"uri: {uri}", file=context.out)
    print(f"sha256: {digest}", file=context.out)
    if response.get("VersionId"):
        print(f"version id: {response['VersionId']}", file=context.out)
    print(f"next: microvm-deploy create-image --code-uri {uri} --build-role-arn ROLE_ARN", file=context.err)
    return 0


def _check_bucket_region(s3: Any, bucket: str, context: Context) -> None:
    """Raise UsageError when the bucket is in another region than the images."""
    from botocore.exceptions import ClientError

    region = context.clients.region
    try:
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("AccessDenied", "AccessDeniedException"):
            raise
        print(
            f"warning: cannot read the region of bucket {bucket} (s3:GetBucketLocation is denied); "
            f"the build fails with S3_CROSS_REGION_ACCESS_DENIED unless the bucket is in {region}",
            file=context.err,
        )
        return
    # S3 reports us-east-1 as no location, and the oldest eu-west-1 buckets as "EU".
    bucket_region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)
    if bucket_region != region:
        raise UsageError(
            f"bucket {bucket} is in {bucket_region}, but images are built in {region}, and the build reads only "
            f"a bucket in its own region; use a bucket in {region}, or pass --region {bucket_region}"
        )


def _zip_path(args: argparse.Namespace) -> Path:
    return args.output if args.output is not None else args.root / "dist" / f"{APP_PACKAGE}-image.zip"


def create_image(args: argparse.Namespace, context: Context) -> int:
    settings = project_settings()
    name = args.name or project_name()
    parameters = create_image_parameters(
        settings, _image_options(args, context), name, tags=parse_tags(args.tag), client_token=args.client_token
    )
    response = context.clients.microvms.create_microvm_image(**parameters)
    return _report_image(args, context, response, "created")


def update_image(args: argparse.Namespace, context: Context) -> int:
    settings = project_settings()
    image_arn = check_image_arn(args.image_arn, context.clients.region)
    parameters = update_image_parameters(settings, _image_options(args, context), image_arn, args.client_token)
    response = context.clients.microvms.update_microvm_image(**parameters)
    return _report_image(args, context, response, "updated")


def _image_options(args: argparse.Namespace, context: Context) -> ImageOptions:
    _check_wait_bounds(args)
    environment = parse_environment(args.env)
    for variable in SETTINGS_VARIABLES:
        if variable in environment:
            raise UsageError(
                f"--env {variable} is rejected: set the port in microvm.toml instead, the single source "
                "that the hooks configuration and the auth tokens are built from"
            )
    partition, region = context.clients.partition, context.clients.region
    if args.no_egress_connector:
        egress: tuple[str, ...] = ()
    else:
        egress = (args.egress_connector or internet_egress_connector_arn(partition, region),)
    return ImageOptions(
        build_role_arn=args.build_role_arn,
        code_uri=args.code_uri,
        base_image_arn=args.base_image_arn or default_base_image_arn(partition, region),
        base_image_version=args.base_image_version,
        description=args.description,
        log_group=args.log_group,
        logging_disabled=args.no_logging,
        egress_connectors=egress,
        environment=environment,
    )


def _report_image(args: argparse.Namespace, context: Context, response: dict[str, Any], verb: str) -> int:
    image_arn, version = response["imageArn"], response["imageVersion"]
    if context.json_output:
        print_json(context, response)
    else:
        print(f"image {verb}: {image_arn}", file=context.out)
        print(f"version: {version} ({response['state']})", file=context.out)
    if args.wait:
        return _wait(context, image_arn, version, args)
    print(f"next: microvm-deploy wait --image-arn {image_arn} --image-version {version}", file=context.err)
    return 0


def wait(args: argparse.Namespace, context: Context) -> int:
    image_arn = check_image_arn(args.image_arn, context.clients.region)
    _check_wait_bounds(args)
    return _wait(context, image_arn, args.image_version, args)


def _check_wait_bounds(args: argparse.Namespace) -> None:
    for option, value in (("--timeout", args.timeout), ("--interval", args.interval)):
        low, high = WAIT_BOUNDS[option]
        if not low <= value <= high:
            raise UsageError(f"{option} {value:g} is out of range; use {low:g} to {high:g} seconds")


def _wait(context: Context, image_arn: str, version: str, args: argparse.Namespace) -> int:
    options = WaitOptions(timeout_seconds=args.timeout, interval_seconds=args.interval)
    wait_for_version(
        context.clients.microvms,
        image_arn,
        version,
        context.clients.region,
        options,
        context.err,
        context.sleep,
        context.clock,
    )
    print(f"image version {version} is ready", file=context.out)
    print(f"next: microvm-deploy run --image-arn {image_arn} --image-version {version}", file=context.err)
    return 0
