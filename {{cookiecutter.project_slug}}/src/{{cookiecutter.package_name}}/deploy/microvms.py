"""Request parameters for RunMicrovm and CreateMicrovmAuthToken, with the checks the service model leaves out.

botocore validates only the minimum of each range, so the maximums here (payload
size, run duration, token lifetime) are checked before any request is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..microvm.config import Settings
from .client import check_role_arn
from .errors import UsageError

# The RunHookPayload shape in the service model (botocore 1.44.5) allows 4096
# characters, and a 4097-character payload was measured to fail with
# ValidationException. The model's own documentation and the user guide say 16 KiB,
# so the smaller limit applies. The payload is also held to 4096 UTF-8 bytes,
# in case the service counts bytes.
MAX_RUN_HOOK_PAYLOAD = 4096
MAX_DURATION_RANGE = (1, 28800)
# maxIdleDurationSeconds has a minimum of 60 in the model, and the documented maximum
# is 28800. suspendedDurationSeconds (0 terminates the MicroVM when it suspends) is
# capped at 28800 as well, because a MicroVM's lifetime, suspended time included,
# never exceeds 28800 seconds.
IDLE_SECONDS_RANGE = (60, 28800)
SUSPENDED_SECONDS_RANGE = (0, 28800)
TOKEN_MINUTES_RANGE = (1, 60)
PORT_RANGE = (1, 65535)
MAX_CONNECTORS = 10


@dataclass(frozen=True)
class IdleOptions:
    """The three idlePolicy fields as given on the command line; each may be missing."""

    max_idle_seconds: int | None = None
    suspended_seconds: int | None = None
    auto_resume: bool | None = None


def check_payload(payload: str) -> str:
    """Return ``payload`` if it fits RunMicrovm's runHookPayload limit; raise UsageError otherwise."""
    characters = len(payload)
    if characters > MAX_RUN_HOOK_PAYLOAD:
        raise UsageError(
            f"the run hook payload is {characters} characters, over the limit of {MAX_RUN_HOOK_PAYLOAD}; "
            "pass a reference (an id, a URL or a parameter name) and let the /run hook fetch the rest"
        )
    size = len(payload.encode("utf-8"))
    if size > MAX_RUN_HOOK_PAYLOAD:
        raise UsageError(
            f"the run hook payload is {characters} characters but {size} bytes in UTF-8, over the limit of "
            f"{MAX_RUN_HOOK_PAYLOAD} bytes; shorten it or pass a reference that the /run hook resolves"
        )
    return payload


def idle_policy(options: IdleOptions) -> dict[str, Any] | None:
    """Return the idlePolicy parameter, or None when no idle option is given.

    The API requires all three fields whenever idlePolicy is present.
    """
    values = {
        "--idle-max-seconds": options.max_idle_seconds,
        "--idle-suspended-seconds": options.suspended_seconds,
        "--idle-auto-resume/--no-idle-auto-resume": options.auto_resume,
    }
    missing = [name for name, value in values.items() if value is None]
    if len(missing) == len(values):
        return None
    if missing or options.max_idle_seconds is None or options.suspended_seconds is None:
        raise UsageError(
            f"an idle policy needs all three options, and {', '.join(missing)} is not given; pass all three, "
            "for example --idle-max-seconds 300 --idle-suspended-seconds 3600 --idle-auto-resume, or none"
        )
    return {
        "maxIdleDurationSeconds": check_range(options.max_idle_seconds, "--idle-max-seconds", IDLE_SECONDS_RANGE),
        "suspendedDurationSeconds": check_range(
            options.suspended_seconds, "--idle-suspended-seconds", SUSPENDED_SECONDS_RANGE
        ),
        "autoResumeEnabled": bool(options.auto_resume),
    }


def check_range(value: int, option: str, bounds: tuple[int, int], unit: str | None = "seconds") -> int:
    low, high = bounds
    if not low <= value <= high:
        suffix = f" {unit}" if unit else ""
        raise UsageError(f"{option} {value} is out of range; use {low} to {high}{suffix}")
    return value


def check_connectors(connectors: Sequence[str], option: str) -> list[str]:
    if len(connectors) > MAX_CONNECTORS:
        raise UsageError(f"{len(connectors)} values for {option} are given; a run takes at most {MAX_CONNECTORS}")
    return list(connectors)


def run_parameters(
    image_arn: str,
    *,
    logging: dict[str, Any],
    image_version: str | None = None,
    execution_role_arn: str | None = None,
    payload: str | None = None,
    max_duration_seconds: int | None = None,
    idle: IdleOptions | None = None,
    ingress_connectors: Sequence[str] = (),
    egress_connectors: Sequence[str] = (),
    client_token: str | None = None,
) -> dict[str, Any]:
    """Return the parameters of RunMicrovm.

    ``logging`` is required here because RunMicrovm does not inherit the image's
    logging configuration.
    """
    parameters: dict[str, Any] = {"imageIdentifier": image_arn, "logging": logging}
    if image_version is not None:
        parameters["imageVersion"] = image_version
    if execution_role_arn is not None:
        parameters["executionRoleArn"] = check_role_arn(execution_role_arn, "--execution-role-arn")
    if payload is not None:
        parameters["runHookPayload"] = check_payload(payload)
    if max_duration_seconds is not None:
        parameters["maximumDurationInSeconds"] = check_range(
            max_duration_seconds, "--max-duration-seconds", MAX_DURATION_RANGE
        )
    policy = idle_policy(idle or IdleOptions())
    if policy is not None:
        parameters["idlePolicy"] = policy
    if ingress_connectors:
        parameters["ingressNetworkConnectors"] = check_connectors(ingress_connectors, "--ingress-connector")
    if egress_connectors:
        parameters["egressNetworkConnectors"] = check_connectors(egress_connectors, "--egress-connector")
    if client_token is not None:
        parameters["clientToken"] = client_token
    return parameters


def parse_port_range(text: str) -> tuple[int, int]:
    """Parse ``START-END`` into a pair of ports."""
    start_text, separator, end_text = text.partition("-")
    try:
        start, end = int(start_text), int(end_text)
    except ValueError:
        start = end = 0
    if not separator or not (PORT_RANGE[0] <= start <= end <= PORT_RANGE[1]):
        raise UsageError(
            f"--port-range {text!r} is invalid; use START-END with 1 <= START <= END <= 65535, for example 8080-8081"
        )
    return start, end


def allowed_ports(
    settings: Settings, ports: Sequence[int], ranges: Sequence[tuple[int, int]], all_ports: bool
) -> list[dict[str, Any]]:
    """Return the allowedPorts parameter of CreateMicrovmAuthToken, defaulting to the app port.

    Raises UsageError for any choice that includes the hooks port. The endpoint proxy
    runs inside the MicroVM, so a token that allows the hooks port lets anyone who
    has it call /run, /suspend and the other lifecycle hooks from outside.
    """
    hooks_port = settings.hooks_port
    hooks_risk = (
        "would let anyone who holds the token call the lifecycle hooks (/run, /suspend, /terminate) "
        f"on port {hooks_port} from outside the MicroVM"
    )
    if all_ports:
        raise UsageError(
            f"--all-ports is rejected: it includes the hooks port and {hooks_risk}; pass --port {settings.app_port}"
        )
    specifications: list[dict[str, Any]] = []
    for port in ports or ([] if ranges else [settings.app_port]):
        check_range(port, "--port", PORT_RANGE, unit=None)
        if port == hooks_port:
            raise UsageError(f"--port {port} is rejected: it is the hooks port, and a token for it {hooks_risk}")
        specifications.append({"port": port})
    for start, end in ranges:
        if start <= hooks_port <= end:
            raise UsageError(
                f"--port-range {start}-{end} is rejected: it covers the hooks port {hooks_port}, "
                f"and a token for it {hooks_risk}; split the range around {hooks_port}"
            )
        specifications.append({"range": {"startPort": start, "endPort": end}})
    return specifications


def token_parameters(microvm_id: str, expiration_minutes: int, ports: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the parameters of CreateMicrovmAuthToken."""
    return {
        "microvmIdentifier": microvm_id,
        "expirationInMinutes": check_range(expiration_minutes, "--expiration-minutes", TOKEN_MINUTES_RANGE, "minutes"),
        "allowedPorts": ports,
    }
