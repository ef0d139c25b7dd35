"""Wait for an image version to build, and explain why a build failed.

A version moves PENDING -> IN_PROGRESS -> SUCCESSFUL or FAILED. Each version has
one build per CPU kind (architecture, chipset, generation); a failed build's
``stateReason`` starts with one of the error codes in :data:`BUILD_ERROR_FIXES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from .client import image_name_from_arn, paginate
from .errors import DeployError

# The fix for each error code that a failed build reports in stateReason.
BUILD_ERROR_FIXES = {
    "S3_ACCESS_DENIED": (
        "the build role cannot read the code artifact; grant it s3:GetObject on the object "
        "(and kms:Decrypt when the bucket uses a KMS key), then run update-image"
    ),
    "S3_NO_SUCH_KEY": (
        "no object exists at the code URI; run `microvm-deploy upload` and pass the URI it prints to update-image"
    ),
    "S3_NO_SUCH_BUCKET": (
        "the bucket in the code URI does not exist; check its name, or create it in the image's region and upload again"
    ),
    "S3_INVALID_OBJECT": (
        "the object cannot be read as a zip in the Standard storage class; upload the output of "
        "`microvm-deploy package` again with `microvm-deploy upload`, which stores it in STANDARD"
    ),
    "S3_CROSS_REGION_ACCESS_DENIED": (
        "the bucket is in another region than the image; upload the zip to a bucket in {region} "
        "and run update-image with the new URI"
    ),
    "ARCHIVE_DOCKERFILE_NOT_FOUND": (
        "the zip has no Dockerfile at its root; build it with `microvm-deploy package`, "
        "which puts the project's Dockerfile at the root"
    ),
    "ARCHIVE_INVALID": (
        "the zip cannot be unpacked; build it again with `microvm-deploy package`, upload it, "
        "and compare the SHA-256 that both commands print"
    ),
    "CONTAINER_BUILD_FAILED": (
        "a Dockerfile step or the app start failed; read the build log in CloudWatch log group {log_group}. "
        "A build that downloads packages needs the INTERNET_EGRESS connector (the create-image default)"
    ),
    "DISK_STORAGE_FULL": (
        "the build ran out of disk; make the image smaller, or raise [image] memory_mib in microvm.toml, "
        "which also raises the disk (8 GB up to 2048 MiB, 16 GB at 4096, 32 GB at 8192)"
    ),
    "INTERNAL_PLATFORM_ERROR": (
        "the service failed, not the project; run update-image again to start a new build, "
        "and contact AWS Support with the image ARN and version if it fails again"
    ),
}
HOOK_FAILURE_FIX = (
    "a build hook failed; /ready and /validate must answer 503 while not ready and 200 when done, "
    "within [hooks.ready] and [hooks.validate] timeout_seconds in microvm.toml. "
    "Run `microvm-local` to test them, and read the build log in CloudWatch log group {log_group}"
)
UNKNOWN_FAILURE_FIX = "read the build log in CloudWatch log group {log_group}"
FINAL_STATES = ("SUCCESSFUL", "FAILED", "DELETING", "DELETED", "DELETE_FAILED")
_HOOK_FAILURE = re.compile(r"\b(ready|validate)\b.*\bhook\b|\bhook\b.*\b(ready|validate)\b", re.IGNORECASE)


@dataclass(frozen=True)
class WaitOptions:
    """Bounds of one wait: the total time and the pause between polls, in seconds."""

    timeout_seconds: float
    interval_seconds: float


def build_failure_fixes(reason: str | None, region: str, image_arn: str) -> list[str]:
    """Return the fix for each known error code or hook failure in a build's ``stateReason``."""
    text = reason or ""
    values = {"region": region, "log_group": default_log_group(image_arn)}
    fixes = [
        f"{code}: {fix.format(**values)}" for code, fix in BUILD_ERROR_FIXES.items() if re.search(rf"\b{code}\b", text)
    ]
    if not fixes and _HOOK_FAILURE.search(text):
        fixes.append(HOOK_FAILURE_FIX.format(**values))
    if not fixes:
        fixes.append(UNKNOWN_FAILURE_FIX.format(**values))
    return fixes


def default_log_group(image_arn: str) -> str:
    """Return the log group the platform uses when an image or run sets none."""
    return f"/aws/lambda-microvms/{image_name_from_arn(image_arn)}"


def wait_for_version(
    client: Any,
    image_arn: str,
    image_version: str,
    region: str,
    options: WaitOptions,
    out: TextIO,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Poll the image version and its builds until the version is final or the timeout passes.

    Prints each state change once. Returns the version on success; raises DeployError
    with the fix for each failed build, or when the timeout passes first.
    """
    deadline = clock() + options.timeout_seconds
    reported: dict[str, str] = {}
    while True:
        version = client.get_microvm_image_version(imageIdentifier=image_arn, imageVersion=image_version)
        builds = paginate(client, "list_microvm_image_builds", imageIdentifier=image_arn, imageVersion=image_version)
        _report_changes(version, builds, reported, out)

        state = version["state"]
        if state == "SUCCESSFUL":
            _report_snapshot_sizes(client, image_arn, image_version, builds, out)
            return version
        if state == "FAILED":
            raise DeployError(_failure_message(version, builds, region, image_arn))
        if state in FINAL_STATES:
            raise DeployError(
                f"image version {image_version} is {state} and will not finish building; "
                "start a new version with `microvm-deploy update-image`"
            )

        remaining = deadline - clock()
        if remaining <= 0:
            raise DeployError(
                f"image version {image_version} is still {state} after {options.timeout_seconds:g} s; the build "
                f"continues, so run `microvm-deploy wait --image-arn {image_arn} --image-version {image_version}` again"
            )
        sleep(min(options.interval_seconds, remaining))


def _report_changes(
    version: dict[str, Any], builds: list[dict[str, Any]], reported: dict[str, str], out: TextIO
) -> None:
    key = "version"
    if reported.get(key) != version["state"]:
        reported[key] = version["state"]
        print(f"image version {version['imageVersion']}: {version['state']}", file=out)
    for build in builds:
        key = f"build {build['buildId']}"
        if reported.get(key) != build["buildState"]:
            reported[key] = build["buildState"]
            print(f"  {key} ({_cpu_kind(build)}): {build['buildState']}", file=out)


def _cpu_kind(build: dict[str, Any]) -> str:
    return f"{build['architecture']} {build['chipset']} generation {build['chipsetGeneration']}"


def _report_snapshot_sizes(
    client: Any, image_arn: str, image_version: str, builds: list[dict[str, Any]], out: TextIO
) -> None:
    for summary in builds:
        build = client.get_microvm_image_build(
            imageIdentifier=image_arn, imageVersion=image_version, buildId=summary["buildId"]
        )
        sizes = build.get("snapshotBuild") or {}
        if not sizes:
            continue
        print(
            f"  build {summary['buildId']} snapshot: memory {_mebibytes(sizes.get('memorySnapshotSizeInBytes'))}, "
            f"installed code {_mebibytes(sizes.get('codeInstallSizeInBytes'))}, "
            f"disk written at start {_mebibytes(sizes.get('diskSnapshotSizeInBytes'))}",
            file=out,
        )


def _mebibytes(size: int | None) -> str:
    return "unknown" if size is None else f"{size / (1024 * 1024):.1f} MiB"


def _failure_message(version: dict[str, Any], builds: list[dict[str, Any]], region: str, image_arn: str) -> str:
    lines = [f"image version {version['imageVersion']} failed to build"]
    failed = [build for build in builds if build["buildState"] == "FAILED"]
    reasons = [(f"build {build['buildId']} ({_cpu_kind(build)})", build.get("stateReason")) for build in failed]
    if version.get("stateReason") and not any(reason == version["stateReason"] for _, reason in reasons):
        reasons.insert(0, ("version", version["stateReason"]))
    if not reasons:
        reasons.append(("version", None))
    for source, reason in reasons:
        lines.append(f"{source}: {reason or 'no reason given'}")
        lines.extend(f"  fix: {fix}" for fix in build_failure_fixes(reason, region, image_arn))
    return "\n".join(lines)
