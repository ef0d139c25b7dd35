"""Commands that run and reach MicroVMs: ``run``, ``token``, ``call``, the lifecycle ones, ``list``, ``status``.

Each function takes the parsed arguments and a :class:`Context`, prints results
to ``context.out`` and progress, warnings and next steps to ``context.err``, and
returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .builds import default_log_group
from .client import check_image_arn, paginate
from .context import Context, format_value, print_fields, print_json, project_settings, show, without_metadata
from .endpoint import (
    AUTH_HEADER,
    PROXY_STATUS_HINTS,
    build_request,
    check_endpoint,
    check_path,
    load_token,
    parse_headers,
    send,
)
from .errors import UsageError
from .images import check_log_group
from .microvms import IdleOptions, allowed_ports, parse_port_range, run_parameters, token_parameters

CALL_TOKEN_MINUTES = 5


def run(args: argparse.Namespace, context: Context) -> int:
    image_arn = check_image_arn(args.image_arn, context.clients.region)
    if args.no_logging:
        logging: dict[str, Any] = {"disabled": {}}
    else:
        log_group = check_log_group(args.log_group or default_log_group(image_arn))
        logging = {"cloudWatch": {"logGroup": log_group}}
    parameters = run_parameters(
        image_arn,
        logging=logging,
        image_version=args.image_version,
        execution_role_arn=args.execution_role_arn,
        payload=_read_payload(args),
        max_duration_seconds=args.max_duration_seconds,
        idle=IdleOptions(args.idle_max_seconds, args.idle_suspended_seconds, args.idle_auto_resume),
        ingress_connectors=args.ingress_connector,
        egress_connectors=args.egress_connector,
        client_token=args.client_token,
    )
    if args.execution_role_arn is None:
        print(
            "warning: no --execution-role-arn, so the MicroVM gets no AWS credentials and writes no runtime logs",
            file=context.err,
        )
    response = context.clients.microvms.run_microvm(**parameters)
    if context.json_output:
        print_json(context, response)
    else:
        print_fields(
            context,
            response,
            ("microvmId", "state", "endpoint", "imageArn", "imageVersion", "maximumDurationInSeconds"),
        )
    print(f"next: microvm-deploy call --microvm-id {response['microvmId']} /healthz", file=context.err)
    return 0


def _read_payload(args: argparse.Namespace) -> str | None:
    if args.payload_file is None:
        return args.payload
    try:
        return args.payload_file.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read --payload-file {args.payload_file}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise UsageError(f"--payload-file {args.payload_file} is not UTF-8 text: {error.reason}") from error


def token(args: argparse.Namespace, context: Context) -> int:
    settings = project_settings()
    ranges = [parse_port_range(text) for text in args.port_range]
    ports = allowed_ports(settings, args.port, ranges, args.all_ports)
    parameters = token_parameters(args.microvm_id, args.expiration_minutes, ports)
    auth_token = context.clients.microvms.create_microvm_auth_token(**parameters)["authToken"]
    text = json.dumps(auth_token, indent=2, sort_keys=True) + "\n"
    if args.output_file is not None:
        _write_private_file(args.output_file, text)
        print(f"token written to {args.output_file}", file=context.err)
    else:
        context.out.write(text)
    print(
        f"the token allows {_describe_ports(ports)} and expires in {args.expiration_minutes} minutes; "
        "treat it as a password",
        file=context.err,
    )
    return 0


def _write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, replacing the file if it exists."""
    try:
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise UsageError(f"cannot write --output-file {path}: {error.strerror}") from error
    with os.fdopen(descriptor, "w", encoding="utf-8") as writer:
        writer.write(text)


def _describe_ports(ports: list[dict[str, Any]]) -> str:
    parts = [
        f"port {spec['port']}" if "port" in spec else f"ports {spec['range']['startPort']}-{spec['range']['endPort']}"
        for spec in ports
    ]
    return ", ".join(parts)


def call(args: argparse.Namespace, context: Context) -> int:
    settings = project_settings()
    check_path(args.path)
    if args.endpoint is not None:
        check_endpoint(args.endpoint)
    headers = parse_headers(args.header)
    body = _read_body(args.data)
    if args.endpoint is None and args.microvm_id is None:
        raise UsageError("pass --microvm-id, or --endpoint with --token-file or $MICROVM_AUTH_TOKEN")
    token_headers = load_token(args.token_file, context.environ)
    if token_headers is None and args.microvm_id is None:
        raise UsageError("no token: pass --token-file, set $MICROVM_AUTH_TOKEN, or pass --microvm-id to mint one")

    endpoint = args.endpoint
    if endpoint is None:
        endpoint = context.clients.microvms.get_microvm(microvmIdentifier=args.microvm_id)["endpoint"]
    if token_headers is None:
        parameters = token_parameters(args.microvm_id, CALL_TOKEN_MINUTES, [{"port": settings.app_port}])
        token_headers = context.clients.microvms.create_microvm_auth_token(**parameters)["authToken"]
        if AUTH_HEADER not in token_headers:
            print(f"warning: the new token has no {AUTH_HEADER} entry; the proxy will reject it", file=context.err)

    request = build_request(
        endpoint,
        args.path,
        method=args.method,
        token_headers=token_headers,
        port=settings.app_port,
        headers=headers,
        body=body,
    )
    response = send(request, context.opener, args.timeout)
    print(f"HTTP {response.status} {response.reason}", file=context.err)
    context.out.write(response.text)
    if response.text and not response.text.endswith("\n"):
        context.out.write("\n")
    if response.status >= 400:
        hint = PROXY_STATUS_HINTS.get(response.status)
        if hint:
            print(f"hint: {hint}", file=context.err)
        return 1
    return 0


def _read_body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data.startswith("@"):
        path = Path(data[1:])
        try:
            return path.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read --data file {path}: {error.strerror}") from error
    return data.encode("utf-8")


def suspend(args: argparse.Namespace, context: Context) -> int:
    context.clients.microvms.suspend_microvm(microvmIdentifier=args.microvm_id)
    print(f"suspend requested for {args.microvm_id}", file=context.out)
    return 0


def resume(args: argparse.Namespace, context: Context) -> int:
    context.clients.microvms.resume_microvm(microvmIdentifier=args.microvm_id)
    print(f"resume requested for {args.microvm_id}", file=context.out)
    return 0


def terminate(args: argparse.Namespace, context: Context) -> int:
    context.clients.microvms.terminate_microvm(microvmIdentifier=args.microvm_id)
    print(f"termination requested for {args.microvm_id}", file=context.out)
    return 0


def list_resources(args: argparse.Namespace, context: Context) -> int:
    client = context.clients.microvms
    if args.images:
        if args.image_arn or args.image_version:
            raise UsageError("--images lists every image; remove --image-arn and --image-version")
        items = paginate(client, "list_microvm_images")
        columns: tuple[str, ...] = ("name", "state", "latestActiveImageVersion", "imageArn")
    else:
        filters: dict[str, str] = {}
        if args.image_arn:
            filters["imageIdentifier"] = check_image_arn(args.image_arn, context.clients.region)
        if args.image_version:
            if not args.image_arn:
                raise UsageError("--image-version needs --image-arn")
            filters["imageVersion"] = args.image_version
        items = paginate(client, "list_microvms", **filters)
        columns = ("microvmId", "state", "imageVersion", "startedAt", "imageArn")
    if context.json_output:
        print_json(context, items)
        return 0
    print("\t".join(columns), file=context.out)
    for item in items:
        print("\t".join(format_value(item.get(column)) for column in columns), file=context.out)
    return 0


def status(args: argparse.Namespace, context: Context) -> int:
    client = context.clients.microvms
    if (args.microvm_id is None) == (args.image_arn is None):
        raise UsageError("pass either a MicroVM id or --image-arn")
    if args.microvm_id is not None:
        if args.image_version:
            raise UsageError("--image-version works only with --image-arn")
        response = client.get_microvm(microvmIdentifier=args.microvm_id)
        fields: tuple[str, ...] = (
            "microvmId",
            "state",
            "stateReason",
            "endpoint",
            "imageArn",
            "imageVersion",
            "executionRoleArn",
            "idlePolicy",
            "maximumDurationInSeconds",
            "startedAt",
            "terminatedAt",
        )
        return show(context, response, fields)

    image_arn = check_image_arn(args.image_arn, context.clients.region)
    if args.image_version is None:
        response = client.get_microvm_image(imageIdentifier=image_arn)
        fields = (
            "name",
            "imageArn",
            "state",
            "latestActiveImageVersion",
            "latestFailedImageVersion",
            "createdAt",
            "updatedAt",
        )
        return show(context, response, fields)
    version = client.get_microvm_image_version(imageIdentifier=image_arn, imageVersion=args.image_version)
    builds = paginate(client, "list_microvm_image_builds", imageIdentifier=image_arn, imageVersion=args.image_version)
    if context.json_output:
        print_json(context, {**without_metadata(version), "builds": builds})
        return 0
    print_fields(
        context,
        version,
        (
            "imageArn",
            "imageVersion",
            "state",
            "status",
            "stateReason",
            "codeArtifact",
            "resources",
            "hooks",
            "createdAt",
            "updatedAt",
        ),
    )
    for build in builds:
        reason = f" ({build['stateReason']})" if build.get("stateReason") else ""
        print(
            f"build {build['buildId']}: {build['buildState']} on {build['architecture']} {build['chipset']} "
            f"generation {build['chipsetGeneration']}{reason}",
            file=context.out,
        )
    return 0
