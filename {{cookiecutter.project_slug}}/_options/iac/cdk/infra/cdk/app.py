"""CDK app for the MicroVM image of {{ cookiecutter.project_slug }}.

Context values (``cdk deploy -c name=value``):

- ``imageName``: image name, also used for the roles, the log group and the artifact
  prefix (default ``{{ cookiecutter.project_slug }}``).
- ``codeArtifactZip``: file name of the uploaded deploy zip under
  ``s3://<ArtifactBucketName>/<imageName>/``. Without it the stack has no image yet.
- ``baseImageVersion``: version of the managed base image al2023-1 (default ``1``).
- ``logRetentionDays``: days that CloudWatch Logs keeps the logs (default ``30``).
"""

from __future__ import annotations

import aws_cdk as cdk
from microvm_stack import MicrovmStack

from {{ cookiecutter.package_name }}.microvm.config import load_settings

DEFAULT_IMAGE_NAME = "{{ cookiecutter.project_slug }}"
DEFAULT_BASE_IMAGE_VERSION = "1"
DEFAULT_LOG_RETENTION_DAYS = 30


def build_app(context: dict[str, str] | None = None, outdir: str | None = None) -> cdk.App:
    """Create the app with its one stack. Tests pass ``context`` and ``outdir`` in place of -c and cdk.json."""
    app = cdk.App(context=context, outdir=outdir)
    retention = app.node.try_get_context("logRetentionDays") or DEFAULT_LOG_RETENTION_DAYS
    try:
        retention_days = int(retention)
    except ValueError:
        raise ValueError(
            f"logRetentionDays={retention!r} is invalid; use a whole number of days, for example 30"
        ) from None
    MicrovmStack(
        app,
        "{{ cookiecutter.project_slug }}-microvm",
        settings=load_settings(),
        image_name=app.node.try_get_context("imageName") or DEFAULT_IMAGE_NAME,
        code_artifact_zip=app.node.try_get_context("codeArtifactZip") or None,
        base_image_version=app.node.try_get_context("baseImageVersion") or DEFAULT_BASE_IMAGE_VERSION,
        log_retention_days=retention_days,
    )
    return app


if __name__ == "__main__":
    build_app().synth()
