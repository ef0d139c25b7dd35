"""Command-line parser and error handling of ``microvm-deploy``.

Exit statuses: 0 on success, 1 when AWS, a build or an HTTP call fails, 2 for
invalid command-line values or project settings, and 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from ..microvm.config import SettingsError
from . import image_commands, microvm_commands
from .client import AwsClients, describe_botocore_error, describe_client_error
from .context import Context
from .endpoint import TOKEN_ENVIRONMENT_VARIABLE, Opener, default_opener
from .errors import DeployError, UsageError
from .microvms import MAX_RUN_HOOK_PAYLOAD

PROG = "microvm-deploy"
# The shell's status for a process stopped by SIGINT (128 + 2).
INTERRUPTED_EXIT_STATUS = 130


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Package this project, build it as a Lambda MicroVM image, and run and call MicroVMs.",
    )
    _add_common_options(parser, argparse_default=None)
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, handler: Callable[..., int]) -> argparse.ArgumentParser:
        subparser = subcommands.add_parser(name, help=help_text, description=help_text)
        # Repeating the common options here lets them follow the subcommand as well.
        _add_common_options(subparser, argparse_default=argparse.SUPPRESS)
        subparser.set_defaults(handler=handler)
        return subparser

    package = add(
        "package", "Write the build context as a deterministic zip and print its SHA-256.", image_commands.package
    )
    _add_package_options(package)
    package.add_argument("--list", action="store_true", help="also print every file in the zip")

    upload = add("upload", "Upload the zip to S3 in the Standard storage class.", image_commands.upload)
    _add_package_options(upload)
    upload.add_argument("--bucket", required=True, help="S3 bucket in the same region as the image")
    upload.add_argument("--key", help="object key (default: <project name>/<first 16 hex digits of the SHA-256>.zip)")

    create = add(
        "create-image", "Create the MicroVM image and start building version 1.0.", image_commands.create_image
    )
    create.add_argument("--name", help="image name, 1-64 letters, digits, '-' or '_' (default: the project name)")
    _add_image_options(create)
    create.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="image tag; repeatable")

    update = add("update-image", "Build a new version of the image from a new zip.", image_commands.update_image)
    update.add_argument("--image-arn", required=True, help="image ARN (the API does not accept the name)")
    _add_image_options(update)

    wait = add("wait", "Wait until an image version has built, and explain a failed build.", image_commands.wait)
    wait.add_argument("--image-arn", required=True, help="image ARN")
    wait.add_argument("--image-version", required=True, help="version that create-image or update-image printed")
    _add_wait_options(wait)

    run = add("run", "Start a MicroVM from an image version.", microvm_commands.run)
    _add_run_options(run)

    token = add(
        "token",
        "Create an auth token for the app port and print it as JSON header names and values.",
        microvm_commands.token,
    )
    token.add_argument("microvm_id", metavar="MICROVM_ID")
    token.add_argument("--expiration-minutes", type=int, default=15, help="token lifetime, 1-60 minutes (default: 15)")
    token.add_argument(
        "--port",
        type=int,
        action="append",
        default=[],
        help="port the token allows (default: the app port); repeatable",
    )
    token.add_argument("--port-range", action="append", default=[], metavar="START-END", help="port range; repeatable")
    token.add_argument(
        "--all-ports",
        action="store_true",
        help="rejected: a token for all ports would also allow the lifecycle hooks port",
    )
    token.add_argument("--output-file", type=Path, help="write the token to this file, readable only by you")

    call = add("call", "Send an HTTPS request to a MicroVM's app through the endpoint proxy.", microvm_commands.call)
    call.add_argument("path", metavar="PATH", help="request path with optional query, for example /healthz")
    call.add_argument(
        "--microvm-id", help="MicroVM to call; the CLI looks up its endpoint and, without a token, mints one"
    )
    call.add_argument("--endpoint", help="endpoint hostname without scheme, as run and status print it")
    call.add_argument(
        "--token-file",
        type=Path,
        help=f"token JSON from `{PROG} token` (default: ${TOKEN_ENVIRONMENT_VARIABLE}, else a new 5-minute token)",
    )
    call.add_argument("-X", "--method", default="GET", help="HTTP method (default: GET)")
    call.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'", help="request header; repeatable"
    )
    call.add_argument("-d", "--data", help="request body; @FILE reads it from a file")
    call.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the response (default: 30)")

    for name, help_text, handler in (
        ("suspend", "Suspend a running MicroVM (the /suspend hook runs first).", microvm_commands.suspend),
        ("resume", "Resume a suspended MicroVM (the /resume hook runs after).", microvm_commands.resume),
        ("terminate", "Terminate a MicroVM (the /terminate hook runs first).", microvm_commands.terminate),
    ):
        lifecycle = add(name, help_text, handler)
        lifecycle.add_argument("microvm_id", metavar="MICROVM_ID")

    listing = add("list", "List MicroVMs, or images with --images.", microvm_commands.list_resources)
    listing.add_argument("--images", action="store_true", help="list images instead of MicroVMs")
    listing.add_argument("--image-arn", help="list only MicroVMs of this image")
    listing.add_argument("--image-version", help="list only MicroVMs of this image version")

    status = add("status", "Show a MicroVM, or an image and its builds with --image-arn.", microvm_commands.status)
    status.add_argument("microvm_id", nargs="?", metavar="MICROVM_ID")
    status.add_argument("--image-arn", help="show this image instead of a MicroVM")
    status.add_argument("--image-version", help="with --image-arn: show this version and its builds")
    return parser


def _add_common_options(parser: argparse.ArgumentParser, argparse_default: object) -> None:
    parser.add_argument("--region", default=argparse_default, help="AWS region (default: AWS_REGION or the profile's)")
    parser.add_argument("--profile", default=argparse_default, help="AWS profile (default: AWS_PROFILE or default)")
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if argparse_default is None else argparse_default,
        help="print the API response as JSON",
    )


def _add_package_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path(), help="folder that contains the Dockerfile (default: .)")
    parser.add_argument("--output", type=Path, help="zip path (default: <root>/dist/<package>-image.zip)")


def _add_image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--code-uri", required=True, help="s3://bucket/key of the zip, as upload prints it")
    parser.add_argument("--build-role-arn", required=True, help="IAM role the build runs under")
    parser.add_argument(
        "--base-image-arn", help="base image ARN (default: arn:aws:lambda:<region>:aws:microvm-image:al2023-1)"
    )
    parser.add_argument("--base-image-version", help="base image version (default: the service's choice)")
    parser.add_argument("--description", help="image description")

    logging_group = parser.add_mutually_exclusive_group()
    logging_group.add_argument(
        "--log-group", help="CloudWatch log group for build logs (default: /aws/lambda-microvms/<name>)"
    )
    logging_group.add_argument("--no-logging", action="store_true", help="turn off build logs")

    egress_group = parser.add_mutually_exclusive_group()
    egress_group.add_argument(
        "--egress-connector",
        help="network connector for the build's outbound traffic (default: the managed INTERNET_EGRESS)",
    )
    egress_group.add_argument(
        "--no-egress-connector", action="store_true", help="build without the INTERNET_EGRESS connector"
    )

    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable frozen into the snapshot, the same in every MicroVM; never a secret; repeatable",
    )
    parser.add_argument("--client-token", help="idempotency token, to retry the same request safely")
    parser.add_argument("--wait", action="store_true", help="wait for the build to finish")
    _add_wait_options(parser)


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait in total (default: 1800)")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between polls (default: 15)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-arn", required=True, help="image ARN")
    parser.add_argument("--image-version", help="image version (default: the service chooses when this is omitted)")
    parser.add_argument(
        "--execution-role-arn",
        help="IAM role the MicroVM runs under; without it the MicroVM has no AWS credentials and no runtime logs",
    )
    payload = parser.add_mutually_exclusive_group()
    payload.add_argument("--payload", help=f"string passed to the /run hook, at most {MAX_RUN_HOOK_PAYLOAD} characters")
    payload.add_argument("--payload-file", type=Path, help="read the /run hook payload from this UTF-8 file")
    parser.add_argument("--max-duration-seconds", type=int, help="lifetime, running plus suspended, 1-28800 s")
    parser.add_argument("--idle-max-seconds", type=int, help="idle seconds before the MicroVM suspends, 60-28800")
    parser.add_argument(
        "--idle-suspended-seconds", type=int, help="seconds a suspended MicroVM is kept, 0-28800 (0 terminates it)"
    )
    parser.add_argument(
        "--idle-auto-resume",
        action=argparse.BooleanOptionalAction,
        help="resume a suspended MicroVM when a request arrives",
    )
    logging_group = parser.add_mutually_exclusive_group()
    logging_group.add_argument("--log-group", help="CloudWatch log group (default: /aws/lambda-microvms/<image name>)")
    logging_group.add_argument("--no-logging", action="store_true", help="turn off runtime logs")
    for direction in ("ingress", "egress"):
        parser.add_argument(
            f"--{direction}-connector", action="append", default=[], help=f"{direction} connector ARN; up to 10"
        )
    parser.add_argument("--client-token", help="idempotency token, to retry the same request safely")


def main(
    argv: Sequence[str] | None = None,
    *,
    clients: AwsClients | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    opener: Opener | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one command and return its exit status.

    The keyword arguments replace the AWS clients, output streams, sleep, clock,
    HTTP opener and environment, so that tests run without network or delays.
    ``clients`` replaces --region and --profile as well.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return exit_request.code if isinstance(exit_request.code, int) else 2

    context = Context(
        clients=clients or AwsClients(region=args.region, profile=args.profile),
        out=out,
        err=err,
        sleep=sleep,
        clock=clock,
        opener=opener or default_opener(),
        environ=os.environ if environ is None else environ,
        json_output=args.json,
    )
    prefix = f"{PROG} {args.command}: error:"
    try:
        return args.handler(args, context)
    except UsageError as error:
        print(f"{prefix} {error}", file=err)
        return UsageError.exit_status
    except SettingsError as error:
        print(f"{prefix} invalid microvm.toml: {error}", file=err)
        return UsageError.exit_status
    except DeployError as error:
        print(f"{prefix} {error}", file=err)
        return DeployError.exit_status
    except KeyboardInterrupt:
        # Requests already sent go on: an image build continues after `wait` stops.
        print(f"{prefix} interrupted; check what was started with `{PROG} status`", file=err)
        return INTERRUPTED_EXIT_STATUS
    except Exception as error:
        status = _report_aws_error(error, prefix, err)
        if status is None:
            raise
        return status


def _report_aws_error(error: Exception, prefix: str, err: TextIO) -> int | None:
    """Print a botocore error and return its exit status, or return None for any other exception."""
    try:
        from botocore import exceptions
    except ModuleNotFoundError:
        return None
    if isinstance(error, exceptions.ClientError):
        print(f"{prefix} {describe_client_error(error)}", file=err)
        return DeployError.exit_status
    if isinstance(error, exceptions.ParamValidationError | exceptions.NoRegionError):
        print(f"{prefix} {describe_botocore_error(error)}", file=err)
        return UsageError.exit_status
    if isinstance(error, exceptions.BotoCoreError):
        print(f"{prefix} {describe_botocore_error(error)}", file=err)
        return DeployError.exit_status
    return None
