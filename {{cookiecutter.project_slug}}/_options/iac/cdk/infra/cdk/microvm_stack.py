"""The MicroVM image of the app, with its artifact bucket, roles, log group and deployer policy.

The stack reads the hooks and the memory size from the package's microvm.toml through
``load_settings()``, the same reader the hook server and the deploy CLI use, so the
image cannot drift from the app.
"""

from __future__ import annotations

import re
from typing import Any, cast

from aws_cdk import Aws, CfnOutput, CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from {{ cookiecutter.package_name }}.microvm.config import Settings

BASE_IMAGE_NAME = "al2023-1"
# IAM role names allow 64 characters, and the longest suffix below is 18.
IMAGE_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,45}")
CODE_ARTIFACT_ZIP_PATTERN = re.compile(r"[a-zA-Z0-9._-]+\.zip")
# The retention periods that CloudWatch Logs accepts, in days.
# fmt: off
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
# fmt: on
# The requests of these list calls name no resource, so IAM cannot scope them.
UNSCOPED_LIST_ACTIONS = ["lambda:ListMicrovms", "lambda:ListMicrovmImages", "lambda:ListManagedMicrovmImages"]


class MicrovmStack(Stack):
    """Artifact bucket, build and execution roles, log group, deployer policy and, once a zip is uploaded, the image."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        image_name: str,
        code_artifact_zip: str | None,
        base_image_version: str,
        log_retention_days: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if not IMAGE_NAME_PATTERN.fullmatch(image_name):
            raise ValueError(
                f"imageName={image_name!r} is invalid; use 1-45 letters, digits, hyphens or underscores, "
                "for example -c imageName=my-app"
            )
        if code_artifact_zip is not None and not CODE_ARTIFACT_ZIP_PATTERN.fullmatch(code_artifact_zip):
            raise ValueError(
                f"codeArtifactZip={code_artifact_zip!r} is invalid; use the file name of the uploaded zip, "
                "for example -c codeArtifactZip=app-3f2a9c.zip"
            )
        if log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"logRetentionDays={log_retention_days} is invalid; use one of "
                f"{', '.join(map(str, LOG_RETENTION_DAYS))}, for example -c logRetentionDays=30"
            )

        bucket = s3.Bucket(
            self,
            "ArtifactBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireReplacedZips",
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
        _skip_checkov(
            cast(s3.CfnBucket, bucket.node.default_child),
            "CKV_AWS_18",
            "Server access logging needs a second bucket to receive the logs. CloudTrail data events cover "
            "object access when an account requires an audit trail.",
        )
        artifacts = bucket.arn_for_objects(f"{image_name}/*")

        # The image's build logs and the MicroVMs' stdout and stderr share this group, the
        # platform's default group for the image name.
        log_group = logs.CfnLogGroup(
            self,
            "ImageLogGroup",
            log_group_name=f"/aws/lambda-microvms/{image_name}",
            retention_in_days=log_retention_days,
        )
        _skip_checkov(
            log_group,
            "CKV_AWS_158",
            "CloudWatch Logs encrypts log data at rest with a service-owned key. A customer managed key adds a "
            "key policy that the log group and both roles depend on.",
        )
        log_group_arn = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:{log_group.ref}"

        def log_writer(sid: str) -> iam.PolicyStatement:
            return iam.PolicyStatement(
                sid=sid,
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group_arn, f"{log_group_arn}:*"],
            )

        build_role = iam.Role(
            self,
            "BuildRole",
            role_name=f"{image_name}-microvm-build",
            description="Assumed by Lambda MicroVMs while it builds the image.",
            assumed_by=iam.ServicePrincipal(
                "lambda.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:microvm-image:*"
                    },
                },
            ).with_session_tags(),
            inline_policies={
                "build": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(sid="ReadCodeArtifacts", actions=["s3:GetObject"], resources=[artifacts]),
                        log_writer("WriteBuildLogs"),
                    ]
                )
            },
        )

        # The trust policy checks aws:SourceAccount only, because it is not documented whether
        # RunMicrovm sets aws:SourceArn when it assumes the execution role.
        execution_role = iam.Role(
            self,
            "ExecutionRole",
            role_name=f"{image_name}-microvm-execution",
            description="Assumed by the running MicroVMs. Every process in a MicroVM can read its credentials.",
            assumed_by=iam.ServicePrincipal(
                "lambda.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ).with_session_tags(),
            inline_policies={
                "runtime": iam.PolicyDocument(
                    statements=[
                        log_writer("WriteRuntimeLogs"),
                        # App permissions: add the statements that the app's own code needs here.
                    ]
                )
            },
        )

        image_arns = [
            f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:microvm-image:{image_name}",
            f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:microvm-image:{image_name}:*",
        ]
        deployer_policy = iam.ManagedPolicy(
            self,
            "DeployerPolicy",
            managed_policy_name=f"{image_name}-microvm-deployer",
            description="Lets a person or CI job upload code, build the image and operate its MicroVMs.",
            statements=[
                iam.PolicyStatement(sid="UploadCodeArtifacts", actions=["s3:PutObject"], resources=[artifacts]),
                iam.PolicyStatement(
                    sid="CheckArtifactBucketRegion", actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]
                ),
                iam.PolicyStatement(
                    sid="ManageImage",
                    actions=[
                        "lambda:CreateMicrovmImage",
                        "lambda:UpdateMicrovmImage",
                        "lambda:GetMicrovmImage",
                        "lambda:GetMicrovmImageVersion",
                        "lambda:ListMicrovmImageVersions",
                        "lambda:UpdateMicrovmImageVersion",
                        "lambda:GetMicrovmImageBuild",
                        "lambda:ListMicrovmImageBuilds",
                    ],
                    resources=image_arns,
                ),
                iam.PolicyStatement(
                    sid="OperateMicrovms",
                    actions=[
                        "lambda:RunMicrovm",
                        "lambda:GetMicrovm",
                        "lambda:SuspendMicrovm",
                        "lambda:ResumeMicrovm",
                        "lambda:TerminateMicrovm",
                        "lambda:CreateMicrovmAuthToken",
                    ],
                    resources=image_arns,
                ),
                iam.PolicyStatement(sid="ListAccountResources", actions=UNSCOPED_LIST_ACTIONS, resources=["*"]),
                iam.PolicyStatement(
                    sid="ReadManagedBaseImages",
                    actions=["lambda:ListManagedMicrovmImageVersions"],
                    resources=[f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:aws:microvm-image:*"],
                ),
                iam.PolicyStatement(
                    sid="PassMicrovmRoles",
                    actions=["iam:PassRole"],
                    resources=[build_role.role_arn, execution_role.role_arn],
                ),
                iam.PolicyStatement(
                    sid="PassManagedNetworkConnectors",
                    actions=["lambda:PassNetworkConnector"],
                    resources=[
                        f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:aws:network-connector:aws-network-connector:*"
                    ],
                ),
                iam.PolicyStatement(
                    sid="ReadImageLogs",
                    actions=["logs:FilterLogEvents", "logs:GetLogEvents"],
                    resources=[f"{log_group_arn}:*"],
                ),
            ],
        )

        CfnOutput(
            self, "ArtifactBucketName", value=bucket.bucket_name, description="Upload the zips under <imageName>/."
        )
        CfnOutput(self, "BuildRoleArn", value=build_role.role_arn)
        CfnOutput(self, "ExecutionRoleArn", value=execution_role.role_arn, description="RunMicrovm executionRoleArn.")
        CfnOutput(
            self,
            "LogGroupName",
            value=log_group.ref,
            description="Pass it to RunMicrovm as logging.cloudWatch.logGroup: it is not inherited from the image.",
        )
        CfnOutput(self, "DeployerPolicyArn", value=deployer_policy.managed_policy_arn)

        # The image build reads the zip from the bucket above, so the image exists only
        # once a deploy names an uploaded zip with -c codeArtifactZip=<file name>.
        if code_artifact_zip is None:
            return
        image = lambda_.CfnMicrovmImage(
            self,
            "Image",
            name=image_name,
            description=f"{image_name} web app",
            base_image_arn=f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:aws:microvm-image:{BASE_IMAGE_NAME}",
            base_image_version=base_image_version,
            build_role_arn=build_role.role_arn,
            code_artifact=lambda_.CfnMicrovmImage.CodeArtifactProperty(
                uri=f"s3://{bucket.bucket_name}/{image_name}/{code_artifact_zip}"
            ),
            logging=lambda_.CfnMicrovmImage.LoggingProperty(
                cloud_watch=lambda_.CfnMicrovmImage.CloudWatchLoggingProperty(log_group=log_group.ref)
            ),
            # The Dockerfile installs packages with dnf and pip while the image builds.
            egress_network_connectors=[
                f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:aws:network-connector:aws-network-connector:INTERNET_EGRESS"
            ],
            cpu_configurations=[lambda_.CfnMicrovmImage.CpuConfigurationProperty(architecture="ARM_64")],
            resources=[lambda_.CfnMicrovmImage.ResourcesProperty(minimum_memory_in_mib=settings.memory_mib)],
            # Empty: the app runs with the platform's reduced capability set.
            additional_os_capabilities=[],
            hooks=hooks_property(settings),
            # Image-level variables are frozen into the snapshot and equal in every MicroVM.
            # Never put secrets or per-VM values here.
            environment_variables=[],
        )
        CfnOutput(self, "ImageArn", value=image.attr_image_arn)


def hooks_property(settings: Settings) -> lambda_.CfnMicrovmImage.HooksProperty:
    """Convert ``Settings.hooks_api_config()`` (the API's camelCase shape) into the L1 hooks property."""
    config = settings.hooks_api_config()
    return lambda_.CfnMicrovmImage.HooksProperty(
        port=config["port"],
        microvm_image_hooks=lambda_.CfnMicrovmImage.MicrovmImageHooksProperty(
            **_snake_case_keys(config["microvmImageHooks"])
        ),
        microvm_hooks=lambda_.CfnMicrovmImage.MicrovmHooksProperty(**_snake_case_keys(config["microvmHooks"])),
    )


def _snake_case_keys(camel: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in camel.items()}


def _skip_checkov(resource: CfnResource, check_id: str, reason: str) -> None:
    """Record a checkov suppression, with its reason, in the resource's template metadata."""
    resource.add_metadata("checkov", {"skip": [{"id": check_id, "comment": reason}]})
