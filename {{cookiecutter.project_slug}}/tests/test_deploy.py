"""Tests of the deploy CLI, offline.

Every AWS call goes through a real boto3 client built from botocore's installed
lambda-microvms model, with ``botocore.stub.Stubber`` in front of it. The client
validates each request against the model, and ``expected_params`` pins every
parameter, so nothing here reaches AWS. ``call`` is tested against an HTTP
server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import io
import json
import os
import stat
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from botocore.stub import ANY, Stubber
from botocore.validate import ParamValidator

from {{ cookiecutter.package_name }}.deploy import builds, cli, packaging
from {{ cookiecutter.package_name }}.deploy.client import AwsClients, describe_botocore_error, describe_client_error
from {{ cookiecutter.package_name }}.deploy.dockerignore import DockerIgnore
from {{ cookiecutter.package_name }}.deploy.endpoint import default_opener
from {{ cookiecutter.package_name }}.microvm.config import load_settings

REGION = "us-east-1"
ACCOUNT = "123456789012"
IMAGE_NAME = "demo-image"
IMAGE_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:microvm-image:{IMAGE_NAME}"
BUILD_ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-build"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-execution"
CODE_URI = "s3://demo-bucket/microvm-images/demo.zip"
BASE_CONTAINER = "public.ecr.aws/lambda/microvms:al2023-minimal"
BASE_IMAGE = f"arn:aws:lambda:{REGION}:aws:microvm-image:al2023-1"
INTERNET_EGRESS = f"arn:aws:lambda:{REGION}:aws:network-connector:aws-network-connector:INTERNET_EGRESS"
MICROVM_ID = "microvm-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
ENDPOINT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.lambda-microvm.us-east-1.on.aws"
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_PACKAGE = "{{ cookiecutter.package_name }}"
# The image name, log group and S3 prefix that the IAM stubs and infrastructure templates use.
PROJECT_NAME = "{{ cookiecutter.project_slug }}"
SETTINGS = load_settings(environ={})


# Fixtures and helpers -------------------------------------------------------


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Give botocore fake credentials and a region, and keep it away from real config and instance metadata."""
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "MICROVM_AUTH_TOKEN", "APP_PORT", "HOOKS_PORT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def clients() -> AwsClients:
    return AwsClients(session=boto3.session.Session(region_name=REGION))


@pytest.fixture
def microvms(clients: AwsClients) -> Iterator[Stubber]:
    """A Stubber on the real lambda-microvms client; every queued response must be used."""
    with Stubber(clients.microvms) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def s3(clients: AwsClients) -> Iterator[Stubber]:
    with Stubber(clients.client("s3")) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


class Result:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status = status
        self.out = out
        self.err = err

    def __repr__(self) -> str:
        return f"Result(status={self.status}, out={self.out!r}, err={self.err!r})"


def run_cli(argv: list[str], clients: AwsClients | None = None, **overrides: Any) -> Result:
    out, err = io.StringIO(), io.StringIO()
    overrides.setdefault("sleep", lambda seconds: None)
    overrides.setdefault("environ", {})
    status = cli.main(argv, clients=clients, out=out, err=err, **overrides)
    return Result(status, out.getvalue(), err.getvalue())


def image_response(state: str = "CREATING", version: str = "1.0") -> dict[str, Any]:
    return {
        "imageArn": IMAGE_ARN,
        "name": IMAGE_NAME,
        "state": state,
        "createdAt": NOW,
        "updatedAt": NOW,
        "baseImageArn": BASE_IMAGE,
        "buildRoleArn": BUILD_ROLE,
        "codeArtifact": {"uri": CODE_URI},
        "imageVersion": version,
    }


def version_response(state: str, reason: str | None = None) -> dict[str, Any]:
    response = {
        "baseImageArn": BASE_IMAGE,
        "buildRoleArn": BUILD_ROLE,
        "codeArtifact": {"uri": CODE_URI},
        "imageArn": IMAGE_ARN,
        "imageVersion": "1.0",
        "state": state,
        "status": "ACTIVE" if state == "SUCCESSFUL" else "INACTIVE",
        "createdAt": NOW,
    }
    if reason is not None:
        response["stateReason"] = reason
    return response


def build_summary(state: str, reason: str | None = None) -> dict[str, Any]:
    summary = {
        "imageArn": IMAGE_ARN,
        "imageVersion": "1.0",
        "buildId": "build-1",
        "buildState": state,
        "architecture": "ARM_64",
        "chipset": "GRAVITON",
        "chipsetGeneration": "4",
        "createdAt": NOW,
    }
    if reason is not None:
        summary["stateReason"] = reason
    return summary


def microvm_response(state: str = "RUNNING") -> dict[str, Any]:
    return {
        "microvmId": MICROVM_ID,
        "state": state,
        "endpoint": ENDPOINT,
        "imageArn": IMAGE_ARN,
        "imageVersion": "1.0",
        "maximumDurationInSeconds": 28800,
        "startedAt": NOW,
    }


def image_request(**changes: Any) -> dict[str, Any]:
    """The parameters create-image sends with only the required options."""
    request = {
        "name": IMAGE_NAME,
        "baseImageArn": BASE_IMAGE,
        "buildRoleArn": BUILD_ROLE,
        "codeArtifact": {"uri": CODE_URI},
        "cpuConfigurations": [{"architecture": "ARM_64"}],
        "resources": [{"minimumMemoryInMiB": SETTINGS.memory_mib}],
        "hooks": SETTINGS.hooks_api_config(),
        "egressNetworkConnectors": [INTERNET_EGRESS],
    }
    request.update(changes)
    return request


IMAGE_ARGS = ["--code-uri", CODE_URI, "--build-role-arn", BUILD_ROLE]


# Packaging -----------------------------------------------------------------


def make_context(root: Path, dockerfile: str | None = None, dockerignore: str | None = None) -> Path:
    """Write a small build context: a Dockerfile, app sources, and files that should stay out."""
    files = {
        "Dockerfile": dockerfile or f"FROM {BASE_CONTAINER}\nCOPY app /app\nCOPY run.sh /\n",
        "app/main.py": "print('hello')\n",
        "app/data/table.csv": "a,b\n1,2\n",
        "run.sh": "#!/bin/sh\nexec python3 /app/main.py\n",
        "notes/todo.md": "later\n",
        ".venv/lib/site.py": "# a virtual environment\n",
        "app/__pycache__/main.cpython-311.pyc": "compiled",
        ".git/HEAD": "ref: refs/heads/main\n",
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "run.sh").chmod(0o755)
    if dockerignore is not None:
        (root / ".dockerignore").write_text(dockerignore)
    return root


DEFAULT_IGNORE = "# build context\n.venv\n**/__pycache__\nnotes/\n"


def test_zip_layout_and_order(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project", dockerignore=DEFAULT_IGNORE)
    result = packaging.build_package(root, tmp_path / "out" / "image.zip")
    with zipfile.ZipFile(result.path) as archive:
        names = archive.namelist()
    assert names == [".dockerignore", "Dockerfile", "app/data/table.csv", "app/main.py", "run.sh"]
    assert names == sorted(names)
    assert "Dockerfile" in names


def test_zip_is_byte_identical_across_runs(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project", dockerignore=DEFAULT_IGNORE)
    first = packaging.build_package(root, tmp_path / "first.zip")
    # Timestamps and group/other permission bits differ between checkouts; the zip must not.
    os.utime(root / "app" / "main.py", (1_700_000_000, 1_700_000_000))
    (root / "app" / "main.py").chmod(0o664)
    second = packaging.build_package(root, tmp_path / "second.zip")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()


def test_zip_entries_have_fixed_time_and_mode(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project", dockerignore=DEFAULT_IGNORE)
    result = packaging.build_package(root, tmp_path / "image.zip")
    with zipfile.ZipFile(result.path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    for info in infos.values():
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        assert info.create_system == 3, info.filename
    assert stat.S_IMODE(infos["app/main.py"].external_attr >> 16) == 0o644
    assert stat.S_IMODE(infos["run.sh"].external_attr >> 16) == 0o755


def test_zip_keeps_dockerfile_listed_in_dockerignore(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project", dockerignore=DEFAULT_IGNORE + "Dockerfile\n.dockerignore\n")
    result = packaging.build_package(root, tmp_path / "image.zip")
    assert "Dockerfile" in result.entries
    assert ".dockerignore" in result.entries


def test_zip_skips_git_and_earlier_zips(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project", dockerignore=DEFAULT_IGNORE)
    first = packaging.build_package(root, root / "dist" / "image.zip")
    second = packaging.build_package(root, root / "dist" / "image.zip")
    assert not any(entry.startswith((".git/", "dist/")) for entry in second.entries)
    assert first.sha256 == second.sha256


def test_package_rejects_symbolic_link(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project", dockerignore=DEFAULT_IGNORE)
    (root / "app" / "link.py").symlink_to(root / "app" / "main.py")
    with pytest.raises(packaging.DeployError, match=r"app/link\.py is a symbolic link"):
        packaging.build_package(root, tmp_path / "image.zip")


def test_package_rejects_copy_source_left_out(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project", dockerignore=DEFAULT_IGNORE + "run.sh\n")
    with pytest.raises(packaging.DeployError, match=r"copies run\.sh"):
        packaging.build_package(root, tmp_path / "image.zip")


def test_package_prints_path_and_sha256(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project", dockerignore=DEFAULT_IGNORE)
    output = tmp_path / "image.zip"
    result = run_cli(["package", "--root", str(root), "--output", str(output)])
    assert result.status == 0, result
    assert f"path: {output}" in result.out
    assert f"sha256: {hashlib.sha256(output.read_bytes()).hexdigest()}" in result.out


def test_package_without_dockerfile_exits_2(tmp_path: Path) -> None:
    result = run_cli(["package", "--root", str(tmp_path)])
    assert result.status == 2
    assert f"no Dockerfile in {tmp_path}" in result.err


def test_package_warns_without_dockerignore(tmp_path: Path) -> None:
    root = make_context(tmp_path / "project")
    result = run_cli(["package", "--root", str(root), "--output", str(tmp_path / "image.zip")])
    assert result.status == 0, result
    assert "no .dockerignore" in result.err


def test_package_of_this_project(tmp_path: Path) -> None:
    """The project's own Dockerfile and .dockerignore give a zip with the app and without local clutter."""
    result = packaging.build_package(PROJECT_ROOT, tmp_path / "image.zip")
    package_dir = f"src/{SETTINGS_PACKAGE}/"
    assert "Dockerfile" in result.entries
    assert f"{package_dir}microvm.toml" in result.entries
    assert f"{package_dir}__main__.py" in result.entries
    assert not any(entry.startswith((".git/", ".venv/")) for entry in result.entries)
    assert not any("__pycache__/" in entry for entry in result.entries)


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.pyc"], "main.pyc", True),
        (["*.pyc"], "app/main.pyc", False),
        (["**/*.pyc"], "app/deep/main.pyc", True),
        (["**/*.pyc"], "main.pyc", True),
        (["**/__pycache__"], "src/pkg/__pycache__/notes.txt", True),
        (["*", "!src", "**/__pycache__"], "src/pkg/__pycache__/notes.txt", True),
        (["*", "!src", "**/__pycache__"], "src/pkg/main.py", False),
        (["*", "!src"], "tests/test_x.py", True),
        (["app"], "app/main.py", True),
        (["/app/"], "app/main.py", True),
        (["./app//data"], "app/data/table.csv", True),
        (["app/*.py"], "app/sub/main.py", False),
        (["app/**"], "app/sub/main.py", True),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[a-c]x"], "bx", True),
        (["[!a-c]x"], "bx", False),
        (["docs", "!docs/keep.md"], "docs/keep.md", False),
        (["docs", "!docs/keep.md"], "docs/drop.md", True),
        (["!docs/keep.md", "docs"], "docs/keep.md", True),
        (["# comment", ""], "# comment", False),
        ([r"\#name"], "#name", True),
        (["  spaced.txt  "], "spaced.txt", True),
    ],
    ids=lambda value: repr(value),
)
def test_dockerignore_patterns(patterns: list[str], path: str, excluded: bool) -> None:
    assert DockerIgnore(patterns).is_excluded(path) is excluded


def test_dockerignore_descends_only_for_exceptions() -> None:
    ignore = DockerIgnore(["docs", "!docs/keep.md", ".venv"])
    assert ignore.may_include_below("docs")
    assert not ignore.may_include_below(".venv")


@pytest.mark.parametrize(
    ("dockerfile", "sources"),
    [
        ("COPY app /app\n", ["app"]),
        ('COPY ["app", "run.sh", "/srv/"]\n', ["app", "run.sh"]),
        ("COPY --chown=1000:1000 --chmod=755 ./run.sh /\n", ["run.sh"]),
        ("COPY --from=builder /venv /venv\n", []),
        ("ADD https://example.com/x.tar.gz /tmp/\n", []),
        ("COPY $APP_DIR /app\n", []),
        ("COPY app \\\n  # a comment inside the instruction\n  run.sh /srv/\n", ["app", "run.sh"]),
        ("RUN <<EOF\ncopy nothing /here\nEOF\nCOPY app /app\n", ["app"]),
        ("COPY <<EOF /etc/config\nkey = value\nEOF\n", []),
        ("# escape=`\nCOPY app `\n  /app\n", ["app"]),
        ("copy src/*.py /app/\n", ["src/*.py"]),
        ("COPY . /app\n", []),
    ],
    ids=[
        "plain",
        "json",
        "flags",
        "from-stage",
        "url",
        "variable",
        "continuation",
        "heredoc-run",
        "heredoc-copy",
        "escape-directive",
        "lowercase-glob",
        "whole-context",
    ],
)
def test_copy_sources(dockerfile: str, sources: list[str]) -> None:
    assert packaging.copy_sources(dockerfile) == sources


def test_copy_source_glob_matches_entries() -> None:
    assert packaging.missing_copy_sources(["src/*.py", "app"], ["src/main.py", "app/x/y.txt"]) == []
    assert packaging.missing_copy_sources(["src/*.txt"], ["src/main.py"]) == ["src/*.txt"]


# Upload --------------------------------------------------------------------


def test_upload_standard_object_with_checksum(tmp_path: Path, clients: AwsClients, s3: Stubber) -> None:
    archive = tmp_path / "image.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    digest = hashlib.sha256(archive.read_bytes()).digest()
    key = f"{PROJECT_NAME}/{digest.hex()[:16]}.zip"
    s3.add_response("get_bucket_location", {}, {"Bucket": "demo-bucket"})
    s3.add_response(
        "put_object",
        {"ETag": '"etag"', "VersionId": "v1"},
        {
            "Bucket": "demo-bucket",
            "Key": key,
            "Body": ANY,
            "ContentType": "application/zip",
            "StorageClass": "STANDARD",
            "ChecksumSHA256": base64.b64encode(digest).decode(),
        },
    )
    result = run_cli(["upload", "--output", str(archive), "--bucket", "demo-bucket"], clients)
    assert result.status == 0, result
    assert f"uri: s3://demo-bucket/{key}" in result.out
    assert f"sha256: {digest.hex()}" in result.out


def test_upload_rejects_bucket_in_other_region(tmp_path: Path, clients: AwsClients, s3: Stubber) -> None:
    archive = tmp_path / "image.zip"
    archive.write_bytes(b"zip")
    s3.add_response("get_bucket_location", {"LocationConstraint": "eu-west-1"}, {"Bucket": "demo-bucket"})
    result = run_cli(["upload", "--output", str(archive), "--bucket", "demo-bucket", "--key", "k.zip"], clients)
    assert result.status == 2
    assert "bucket demo-bucket is in eu-west-1, but images are built in us-east-1" in result.err


def test_upload_without_zip_exits_2(tmp_path: Path, clients: AwsClients) -> None:
    result = run_cli(["upload", "--output", str(tmp_path / "missing.zip"), "--bucket", "demo-bucket"], clients)
    assert result.status == 2
    assert "run `microvm-deploy package` first" in result.err


# Images ----------------------------------------------------------------------


def test_client_uses_installed_service_model(clients: AwsClients) -> None:
    model = clients.microvms.meta.service_model
    assert model.api_version == "2025-09-09"
    assert "CreateMicrovmImage" in model.operation_names


def test_hooks_config_valid_for_model(clients: AwsClients) -> None:
    hooks_shape = clients.microvms.meta.service_model.operation_model("CreateMicrovmImage").input_shape.members["hooks"]
    report = ParamValidator().validate(SETTINGS.hooks_api_config(), hooks_shape)
    assert not report.has_errors(), report.generate_report()


def test_param_validator_catches_broken_hooks(clients: AwsClients) -> None:
    hooks_shape = clients.microvms.meta.service_model.operation_model("CreateMicrovmImage").input_shape.members["hooks"]
    broken = SETTINGS.hooks_api_config()
    broken["port"] = 0
    broken["microvmHooks"]["runTimeoutInSeconds"] = "2"
    report = ParamValidator().validate(broken, hooks_shape).generate_report()
    assert "Invalid value for parameter port" in report
    assert "microvmHooks.runTimeoutInSeconds" in report


def test_hooks_config_matches_settings() -> None:
    config = SETTINGS.hooks_api_config()
    assert config["port"] == SETTINGS.hooks_port
    assert config["port"] != SETTINGS.app_port
    assert config["microvmHooks"]["runTimeoutInSeconds"] == SETTINGS.hooks["run"].timeout_seconds
    assert config["microvmImageHooks"]["readyTimeoutInSeconds"] == SETTINGS.hooks["ready"].timeout_seconds


def test_create_image_sends_settings(clients: AwsClients, microvms: Stubber) -> None:
    microvms.add_response("create_microvm_image", image_response(), image_request())
    result = run_cli(["create-image", "--name", IMAGE_NAME, *IMAGE_ARGS], clients)
    assert result.status == 0, result
    assert f"image created: {IMAGE_ARN}" in result.out
    assert f"microvm-deploy wait --image-arn {IMAGE_ARN} --image-version 1.0" in result.err


def test_create_image_defaults_to_project_name(clients: AwsClients, microvms: Stubber) -> None:
    microvms.add_response("create_microvm_image", image_response(), image_request(name=PROJECT_NAME))
    result = run_cli(["create-image", *IMAGE_ARGS], clients)
    assert result.status == 0, result


def test_create_image_options(clients: AwsClients, microvms: Stubber) -> None:
    other_base = f"arn:aws:lambda:{REGION}:aws:microvm-image:al2023-2"
    expected = image_request(
        baseImageArn=other_base,
        baseImageVersion="0",
        description="demo",
        logging={"cloudWatch": {"logGroup": "/demo/build"}},
        environmentVariables={"LOG_LEVEL": "info", "FEATURE": "a=b"},
        tags={"team": "web"},
        clientToken="retry-1",
    )
    del expected["egressNetworkConnectors"]
    microvms.add_response("create_microvm_image", image_response(), expected)
    result = run_cli(
        [
            "create-image",
            "--name",
            IMAGE_NAME,
            *IMAGE_ARGS,
            "--base-image-arn",
            other_base,
            "--base-image-version",
            "0",
            "--description",
            "demo",
            "--log-group",
            "/demo/build",
            "--no-egress-connector",
            "--env",
            "LOG_LEVEL=info",
            "--env",
            "FEATURE=a=b",
            "--tag",
            "team=web",
            "--client-token",
            "retry-1",
        ],
        clients,
    )
    assert result.status == 0, result


def test_create_request_passes_validator(clients: AwsClients) -> None:
    from {{ cookiecutter.package_name }}.deploy.images import ImageOptions, create_image_parameters

    options = ImageOptions(
        build_role_arn=BUILD_ROLE,
        code_uri=CODE_URI,
        base_image_arn=BASE_IMAGE,
        egress_connectors=(INTERNET_EGRESS,),
        environment={"A": "1"},
    )
    parameters = create_image_parameters(SETTINGS, options, IMAGE_NAME)
    shape = clients.microvms.meta.service_model.operation_model("CreateMicrovmImage").input_shape
    report = ParamValidator().validate(parameters, shape)
    assert not report.has_errors(), report.generate_report()


def test_update_image_sends_required_members(clients: AwsClients, microvms: Stubber) -> None:
    expected = image_request(imageIdentifier=IMAGE_ARN)
    del expected["name"]
    microvms.add_response("update_microvm_image", image_response("UPDATING", "2.0"), expected)
    result = run_cli(["update-image", "--image-arn", IMAGE_ARN, *IMAGE_ARGS], clients)
    assert result.status == 0, result
    assert "version: 2.0 (UPDATING)" in result.out


def test_update_image_rejects_name(clients: AwsClients) -> None:
    result = run_cli(["update-image", "--image-arn", IMAGE_NAME, *IMAGE_ARGS], clients)
    assert result.status == 2
    assert f"image {IMAGE_NAME!r} is not a MicroVM image ARN" in result.err


def test_image_arn_in_other_region_rejected(clients: AwsClients) -> None:
    other = IMAGE_ARN.replace(REGION, "eu-west-1")
    result = run_cli(["wait", "--image-arn", other, "--image-version", "1.0"], clients)
    assert result.status == 2
    assert "pass --region eu-west-1" in result.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--env", "HOOKS_PORT=9100"], "--env HOOKS_PORT is rejected"),
        (["--env", "AWS_REGION=eu-west-1"], "--env AWS_REGION is set by the platform"),
        (["--env", "NOVALUE"], "--env 'NOVALUE' is invalid"),
        (["--name", "bad name"], "image name 'bad name' is invalid"),
        (["--log-group", "bad group!"], "log group 'bad group!' is invalid"),
        (["--timeout", "0"], "--timeout 0 is out of range"),
    ],
    ids=["port-override", "reserved-variable", "no-equals", "image-name", "log-group", "timeout"],
)
def test_create_image_rejects_invalid_values(clients: AwsClients, extra: list[str], message: str) -> None:
    result = run_cli(["create-image", *IMAGE_ARGS, *extra], clients)
    assert result.status == 2
    assert message in result.err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--build-role-arn", "demo-build", "--build-role-arn 'demo-build' is not an IAM role ARN"),
        ("--code-uri", "https://demo-bucket/x.zip", "code URI 'https://demo-bucket/x.zip' is invalid"),
    ],
)
def test_create_image_rejects_invalid_arns(clients: AwsClients, option: str, value: str, message: str) -> None:
    arguments = dict(zip(IMAGE_ARGS[::2], IMAGE_ARGS[1::2], strict=True))
    arguments[option] = value
    result = run_cli(["create-image", *[item for pair in arguments.items() for item in pair]], clients)
    assert result.status == 2
    assert message in result.err


# Wait ------------------------------------------------------------------------


def queue_poll(stubber: Stubber, state: str, build_state: str, reason: str | None = None) -> None:
    version_params = {"imageIdentifier": IMAGE_ARN, "imageVersion": "1.0"}
    stubber.add_response("get_microvm_image_version", version_response(state, reason), version_params)
    stubber.add_response("list_microvm_image_builds", {"items": [build_summary(build_state, reason)]}, version_params)


def test_wait_polls_until_successful(clients: AwsClients, microvms: Stubber) -> None:
    queue_poll(microvms, "PENDING", "PENDING")
    queue_poll(microvms, "IN_PROGRESS", "IN_PROGRESS")
    queue_poll(microvms, "SUCCESSFUL", "SUCCESSFUL")
    build = {key: value for key, value in build_summary("SUCCESSFUL").items() if key != "stateReason"}
    build["snapshotBuild"] = {
        "memorySnapshotSizeInBytes": 300 * 1024 * 1024,
        "codeInstallSizeInBytes": 1024 * 1024,
        "diskSnapshotSizeInBytes": 2 * 1024 * 1024,
    }
    microvms.add_response(
        "get_microvm_image_build", build, {"imageIdentifier": IMAGE_ARN, "imageVersion": "1.0", "buildId": "build-1"}
    )
    sleeps: list[float] = []
    result = run_cli(
        ["wait", "--image-arn", IMAGE_ARN, "--image-version", "1.0", "--interval", "7"], clients, sleep=sleeps.append
    )
    assert result.status == 0, result
    assert sleeps == [7.0, 7.0]
    assert "image version 1.0 is ready" in result.out
    assert "memory 300.0 MiB" in result.err


BUILD_ERROR_EXPECTATIONS = {
    "S3_ACCESS_DENIED": "s3:GetObject",
    "S3_NO_SUCH_KEY": "microvm-deploy upload",
    "S3_NO_SUCH_BUCKET": "bucket in the code URI does not exist",
    "S3_INVALID_OBJECT": "Standard storage class",
    "S3_CROSS_REGION_ACCESS_DENIED": f"a bucket in {REGION}",
    "ARCHIVE_DOCKERFILE_NOT_FOUND": "puts the project's Dockerfile at the root",
    "ARCHIVE_INVALID": "compare the SHA-256",
    "CONTAINER_BUILD_FAILED": f"/aws/lambda-microvms/{IMAGE_NAME}",
    "DISK_STORAGE_FULL": "memory_mib",
    "INTERNAL_PLATFORM_ERROR": "contact AWS Support",
}


def test_every_known_build_error_has_a_fix() -> None:
    assert set(builds.BUILD_ERROR_FIXES) == set(BUILD_ERROR_EXPECTATIONS)


@pytest.mark.parametrize(("code", "fix"), sorted(BUILD_ERROR_EXPECTATIONS.items()))
def test_wait_explains_build_error(clients: AwsClients, microvms: Stubber, code: str, fix: str) -> None:
    reason = f"{code}: the build stopped"
    queue_poll(microvms, "FAILED", "FAILED", reason)
    result = run_cli(["wait", "--image-arn", IMAGE_ARN, "--image-version", "1.0"], clients)
    assert result.status == 1, result
    assert f"build build-1 (ARM_64 GRAVITON generation 4): {reason}" in result.err
    assert f"fix: {code}:" in result.err
    assert fix in result.err
    other_codes = [other for other in BUILD_ERROR_EXPECTATIONS if other != code]
    assert not any(f"fix: {other}:" in result.err for other in other_codes)


def test_wait_timeout_bounds_sleeps(clients: AwsClients, microvms: Stubber) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    for _ in range(4):
        queue_poll(microvms, "IN_PROGRESS", "IN_PROGRESS")
    result = run_cli(
        ["wait", "--image-arn", IMAGE_ARN, "--image-version", "1.0", "--timeout", "25", "--interval", "10"],
        clients,
        sleep=fake_sleep,
        clock=lambda: now[0],
    )
    assert result.status == 1, result
    assert sleeps == [10.0, 10.0, 5.0]
    assert "still IN_PROGRESS after 25 s" in result.err


def test_wait_interrupted_exits_130(clients: AwsClients, microvms: Stubber) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    queue_poll(microvms, "IN_PROGRESS", "IN_PROGRESS")
    result = run_cli(["wait", "--image-arn", IMAGE_ARN, "--image-version", "1.0"], clients, sleep=interrupt)
    assert result.status == 130
    assert "interrupted" in result.err


def test_fixes_for_hook_and_unknown_reasons() -> None:
    hook = builds.build_failure_fixes("Validate hook invocation timed out after PT10M", REGION, IMAGE_ARN)
    unknown = builds.build_failure_fixes("something new", REGION, IMAGE_ARN)
    assert "[hooks.validate] timeout_seconds" in hook[0]
    assert unknown == [f"read the build log in CloudWatch log group /aws/lambda-microvms/{IMAGE_NAME}"]


# Run -------------------------------------------------------------------------


RUN_ARGS = ["run", "--image-arn", IMAGE_ARN, "--execution-role-arn", EXECUTION_ROLE]
DEFAULT_LOGGING = {"cloudWatch": {"logGroup": f"/aws/lambda-microvms/{IMAGE_NAME}"}}


def test_run_sends_logging_idle_policy_and_role(clients: AwsClients, microvms: Stubber) -> None:
    expected = {
        "imageIdentifier": IMAGE_ARN,
        "imageVersion": "1.0",
        "executionRoleArn": EXECUTION_ROLE,
        "logging": DEFAULT_LOGGING,
        "runHookPayload": '{"tenant": "tenant-secret-42"}',
        "maximumDurationInSeconds": 3600,
        "idlePolicy": {"maxIdleDurationSeconds": 300, "suspendedDurationSeconds": 0, "autoResumeEnabled": False},
    }
    microvms.add_response("run_microvm", microvm_response("PENDING"), expected)
    result = run_cli(
        [
            *RUN_ARGS,
            "--image-version",
            "1.0",
            "--payload",
            '{"tenant": "tenant-secret-42"}',
            "--max-duration-seconds",
            "3600",
            "--idle-max-seconds",
            "300",
            "--idle-suspended-seconds",
            "0",
            "--no-idle-auto-resume",
        ],
        clients,
    )
    assert result.status == 0, result
    assert f"endpoint: {ENDPOINT}" in result.out
    assert "tenant-secret-42" not in result.out + result.err


def test_run_without_role_warns_and_sends_no_role(clients: AwsClients, microvms: Stubber) -> None:
    expected = {"imageIdentifier": IMAGE_ARN, "logging": {"disabled": {}}}
    microvms.add_response("run_microvm", microvm_response(), expected)
    result = run_cli(["run", "--image-arn", IMAGE_ARN, "--no-logging"], clients)
    assert result.status == 0, result
    assert "no AWS credentials and writes no runtime logs" in result.err


def test_run_payload_of_4096_characters_passes(clients: AwsClients, microvms: Stubber) -> None:
    payload = "x" * 4096
    expected = {
        "imageIdentifier": IMAGE_ARN,
        "executionRoleArn": EXECUTION_ROLE,
        "logging": DEFAULT_LOGGING,
        "runHookPayload": payload,
    }
    microvms.add_response("run_microvm", microvm_response(), expected)
    result = run_cli([*RUN_ARGS, "--payload", payload], clients)
    assert result.status == 0, result


def test_run_payload_of_4097_characters_rejected(clients: AwsClients, microvms: Stubber) -> None:
    result = run_cli([*RUN_ARGS, "--payload", "x" * 4097], clients)
    assert result.status == 2
    assert "the run hook payload is 4097 characters, over the limit of 4096" in result.err


def test_run_payload_utf8_bytes_rejected(clients: AwsClients, microvms: Stubber, tmp_path: Path) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_text("é" * 2049, encoding="utf-8")
    result = run_cli([*RUN_ARGS, "--payload-file", str(payload_file)], clients)
    assert result.status == 2
    assert "2049 characters but 4098 bytes in UTF-8" in result.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--idle-max-seconds", "300"], "--idle-suspended-seconds, --idle-auto-resume/--no-idle-auto-resume is not"),
        (["--idle-max-seconds", "59", "--idle-suspended-seconds", "0", "--idle-auto-resume"], "--idle-max-seconds 59"),
        (
            ["--idle-max-seconds", "60", "--idle-suspended-seconds", "28801", "--idle-auto-resume"],
            "--idle-suspended-seconds 28801",
        ),
        (
            ["--idle-max-seconds", "60", "--idle-suspended-seconds", "-1", "--idle-auto-resume"],
            "--idle-suspended-seconds -1",
        ),
        (["--max-duration-seconds", "0"], "--max-duration-seconds 0 is out of range; use 1 to 28800 seconds"),
        (["--max-duration-seconds", "28801"], "--max-duration-seconds 28801 is out of range"),
        (["--ingress-connector", "a"] * 11, "11 values for --ingress-connector"),
    ],
    ids=[
        "partial-idle",
        "idle-too-short",
        "suspended-too-long",
        "suspended-negative",
        "duration-zero",
        "duration-too-long",
        "too-many-connectors",
    ],
)
def test_run_rejects_invalid_values(clients: AwsClients, microvms: Stubber, extra: list[str], message: str) -> None:
    result = run_cli([*RUN_ARGS, *extra], clients)
    assert result.status == 2, result
    assert message in result.err


def test_run_request_passes_validator(clients: AwsClients) -> None:
    from {{ cookiecutter.package_name }}.deploy.microvms import IdleOptions, run_parameters

    parameters = run_parameters(
        IMAGE_ARN,
        logging=DEFAULT_LOGGING,
        payload="x" * 4096,
        max_duration_seconds=28800,
        idle=IdleOptions(60, 28800, True),
        execution_role_arn=EXECUTION_ROLE,
    )
    shape = clients.microvms.meta.service_model.operation_model("RunMicrovm").input_shape
    report = ParamValidator().validate(parameters, shape)
    assert not report.has_errors(), report.generate_report()


# Token -----------------------------------------------------------------------


def test_token_defaults_to_app_port(clients: AwsClients, microvms: Stubber) -> None:
    expected = {
        "microvmIdentifier": MICROVM_ID,
        "expirationInMinutes": 15,
        "allowedPorts": [{"port": SETTINGS.app_port}],
    }
    microvms.add_response("create_microvm_auth_token", {"authToken": {"X-aws-proxy-auth": "jwe-value"}}, expected)
    result = run_cli(["token", MICROVM_ID], clients)
    assert result.status == 0, result
    assert json.loads(result.out) == {"X-aws-proxy-auth": "jwe-value"}
    assert f"allows port {SETTINGS.app_port}" in result.err


def test_token_accepts_range_below_hooks_port(clients: AwsClients, microvms: Stubber) -> None:
    start, end = SETTINGS.hooks_port - 10, SETTINGS.hooks_port - 1
    expected = {
        "microvmIdentifier": MICROVM_ID,
        "expirationInMinutes": 60,
        "allowedPorts": [{"range": {"startPort": start, "endPort": end}}],
    }
    microvms.add_response("create_microvm_auth_token", {"authToken": {"X-aws-proxy-auth": "jwe"}}, expected)
    result = run_cli(["token", MICROVM_ID, "--port-range", f"{start}-{end}", "--expiration-minutes", "60"], clients)
    assert result.status == 0, result


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--port", str(SETTINGS.hooks_port)], f"--port {SETTINGS.hooks_port} is rejected: it is the hooks port"),
        (["--port-range", f"1024-{SETTINGS.hooks_port}"], f"covers the hooks port {SETTINGS.hooks_port}"),
        (["--port-range", f"{SETTINGS.hooks_port}-{SETTINGS.hooks_port}"], "covers the hooks port"),
        (["--port", str(SETTINGS.app_port), "--all-ports"], "--all-ports is rejected"),
    ],
    ids=["hooks-port", "range-covering", "range-exact", "all-ports"],
)
def test_token_rejects_hooks_port(clients: AwsClients, microvms: Stubber, extra: list[str], message: str) -> None:
    result = run_cli(["token", MICROVM_ID, *extra], clients)
    assert result.status == 2, result
    assert message in result.err
    assert "call the lifecycle hooks" in result.err


@pytest.mark.parametrize("minutes", ["0", "61"])
def test_token_rejects_expiration_out_of_range(clients: AwsClients, microvms: Stubber, minutes: str) -> None:
    result = run_cli(["token", MICROVM_ID, "--expiration-minutes", minutes], clients)
    assert result.status == 2
    assert f"--expiration-minutes {minutes} is out of range; use 1 to 60 minutes" in result.err


def test_token_output_file_is_private(clients: AwsClients, microvms: Stubber, tmp_path: Path) -> None:
    microvms.add_response("create_microvm_auth_token", {"authToken": {"X-aws-proxy-auth": "jwe"}}, None)
    target = tmp_path / "token.json"
    target.write_text("old")
    target.chmod(0o644)
    result = run_cli(["token", MICROVM_ID, "--output-file", str(target)], clients)
    assert result.status == 0, result
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text()) == {"X-aws-proxy-auth": "jwe"}
    assert "jwe" not in result.out + result.err


# Call ------------------------------------------------------------------------


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Request handler that replies with the status in ``server.status`` and records each request."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.requests.append(  # type: ignore[attr-defined]
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": self.rfile.read(length),
            }
        )
        status = self.server.status  # type: ignore[attr-defined]
        body = json.dumps({"ok": status == 200}).encode()
        self.send_response(status)
        if status in (301, 302):
            self.send_header("Location", self.server.location)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def local_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.requests = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    server.location = "/"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class LoopbackOpener:
    """Sends each HTTPS request to the local server over plain HTTP, keeping the path, headers and Host."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.urls: list[str] = []

    def open(self, request: urllib.request.Request, data: bytes | None = None, timeout: float = 10) -> Any:
        self.urls.append(request.full_url)
        local = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{request.selector}", data=request.data, method=request.get_method()
        )
        for name, value in request.header_items():
            local.add_header(name, value)
        local.add_header("Host", request.host)
        return default_opener().open(local, timeout=timeout)


def test_call_sends_token_and_port_headers(clients: AwsClients, local_server: Any) -> None:
    opener = LoopbackOpener(local_server.server_address[1])
    result = run_cli(
        [
            "call",
            "--endpoint",
            ENDPOINT,
            "-X",
            "POST",
            "-d",
            '{"a": 1}',
            "-H",
            "Content-Type: application/json",
            "/items?x=1",
        ],
        clients,
        opener=opener,
        environ={"MICROVM_AUTH_TOKEN": "jwe-from-env"},
    )
    assert result.status == 0, result
    assert opener.urls == [f"https://{ENDPOINT}/items?x=1"]
    received = local_server.requests[0]
    assert received["method"] == "POST"
    assert received["path"] == "/items?x=1"
    assert received["headers"]["X-Aws-Proxy-Auth"] == "jwe-from-env"
    assert received["headers"]["X-Aws-Proxy-Port"] == str(SETTINGS.app_port)
    assert received["headers"]["Host"] == ENDPOINT
    assert received["body"] == b'{"a": 1}'
    assert json.loads(result.out) == {"ok": True}


def test_call_mints_token_for_app_port(clients: AwsClients, microvms: Stubber, local_server: Any) -> None:
    microvms.add_response("get_microvm", microvm_response(), {"microvmIdentifier": MICROVM_ID})
    expected = {
        "microvmIdentifier": MICROVM_ID,
        "expirationInMinutes": 5,
        "allowedPorts": [{"port": SETTINGS.app_port}],
    }
    microvms.add_response("create_microvm_auth_token", {"authToken": {"X-aws-proxy-auth": "minted"}}, expected)
    opener = LoopbackOpener(local_server.server_address[1])
    result = run_cli(["call", "--microvm-id", MICROVM_ID, "/healthz"], clients, opener=opener)
    assert result.status == 0, result
    assert local_server.requests[0]["headers"]["X-Aws-Proxy-Auth"] == "minted"


def test_call_reads_token_file(clients: AwsClients, local_server: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token.json"
    token_file.write_text(json.dumps({"X-aws-proxy-auth": "from-file"}))
    opener = LoopbackOpener(local_server.server_address[1])
    result = run_cli(["call", "--endpoint", ENDPOINT, "--token-file", str(token_file), "/"], clients, opener=opener)
    assert result.status == 0, result
    assert local_server.requests[0]["headers"]["X-Aws-Proxy-Auth"] == "from-file"


def test_call_error_status_exits_1_with_hint(clients: AwsClients, local_server: Any) -> None:
    local_server.status = 403
    opener = LoopbackOpener(local_server.server_address[1])
    result = run_cli(["call", "--endpoint", ENDPOINT, "/"], clients, opener=opener, environ={"MICROVM_AUTH_TOKEN": "t"})
    assert result.status == 1, result
    assert "HTTP 403" in result.err
    assert "mint a new one with `microvm-deploy token`" in result.err


def test_default_opener_does_not_follow_redirects(local_server: Any) -> None:
    local_server.status = 302
    local_server.location = "/elsewhere"
    request = urllib.request.Request(f"http://127.0.0.1:{local_server.server_address[1]}/start")
    request.add_header("X-aws-proxy-auth", "secret")
    with pytest.raises(urllib.error.HTTPError) as raised:
        default_opener().open(request, timeout=10)
    raised.value.close()
    assert raised.value.code == 302
    assert [item["path"] for item in local_server.requests] == ["/start"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--endpoint", f"https://{ENDPOINT}", "/"], "is not a hostname"),
        (["--endpoint", f"{ENDPOINT}/path", "/"], "is not a hostname"),
        (["--endpoint", ENDPOINT, "healthz"], "path 'healthz' is invalid"),
        (["--endpoint", ENDPOINT, "-H", "X-aws-proxy-port: 9000", "/"], "reserved x-aws-proxy-* namespace"),
        (["--endpoint", ENDPOINT, "-H", "no colon", "/"], "header 'no colon' is invalid"),
        (["/"], "pass --microvm-id, or --endpoint"),
    ],
    ids=["scheme", "path-in-endpoint", "relative-path", "reserved-header", "bad-header", "no-target"],
)
def test_call_rejects_invalid_values(clients: AwsClients, argv: list[str], message: str) -> None:
    result = run_cli(["call", *argv], clients, environ={"MICROVM_AUTH_TOKEN": "t"})
    assert result.status == 2, result
    assert message in result.err


def test_call_checks_endpoint_before_token(clients: AwsClients) -> None:
    result = run_cli(["call", "--endpoint", f"https://{ENDPOINT}", "/"], clients)
    assert result.status == 2
    assert "is not a hostname" in result.err


def test_call_without_token_exits_2(clients: AwsClients) -> None:
    result = run_cli(["call", "--endpoint", ENDPOINT, "/"], clients)
    assert result.status == 2
    assert "no token" in result.err


# Lifecycle, list and status ---------------------------------------------------


@pytest.mark.parametrize(
    ("command", "method", "message"),
    [
        ("suspend", "suspend_microvm", "suspend requested"),
        ("resume", "resume_microvm", "resume requested"),
        ("terminate", "terminate_microvm", "termination requested"),
    ],
)
def test_lifecycle_commands(clients: AwsClients, microvms: Stubber, command: str, method: str, message: str) -> None:
    microvms.add_response(method, {}, {"microvmIdentifier": MICROVM_ID})
    result = run_cli([command, MICROVM_ID], clients)
    assert result.status == 0, result
    assert f"{message} for {MICROVM_ID}" in result.out


def test_list_microvms_reads_every_page(clients: AwsClients, microvms: Stubber) -> None:
    item = {key: microvm_response()[key] for key in ("microvmId", "state", "imageArn", "imageVersion", "startedAt")}
    second = {**item, "microvmId": "microvm-second", "state": "SUSPENDED"}
    microvms.add_response("list_microvms", {"items": [item], "nextToken": "page-2"}, {"imageIdentifier": IMAGE_ARN})
    microvms.add_response("list_microvms", {"items": [second]}, {"imageIdentifier": IMAGE_ARN, "nextToken": "page-2"})
    result = run_cli(["list", "--image-arn", IMAGE_ARN], clients)
    assert result.status == 0, result
    lines = result.out.splitlines()
    assert lines[0].split("\t") == ["microvmId", "state", "imageVersion", "startedAt", "imageArn"]
    assert [line.split("\t")[0] for line in lines[1:]] == [MICROVM_ID, "microvm-second"]


def test_list_images_as_json(clients: AwsClients, microvms: Stubber) -> None:
    image = {
        "imageArn": IMAGE_ARN,
        "name": IMAGE_NAME,
        "state": "CREATED",
        "createdAt": NOW,
        "latestActiveImageVersion": "1.0",
    }
    microvms.add_response("list_microvm_images", {"items": [image]}, {})
    result = run_cli(["list", "--images", "--json"], clients)
    assert result.status == 0, result
    assert json.loads(result.out)[0]["imageArn"] == IMAGE_ARN


def test_status_of_microvm(clients: AwsClients, microvms: Stubber) -> None:
    microvms.add_response("get_microvm", {**microvm_response("SUSPENDED")}, {"microvmIdentifier": MICROVM_ID})
    result = run_cli(["status", MICROVM_ID, "--region", REGION], clients)
    assert result.status == 0, result
    assert "state: SUSPENDED" in result.out
    assert f"endpoint: {ENDPOINT}" in result.out


def test_status_of_image_version_lists_builds(clients: AwsClients, microvms: Stubber) -> None:
    queue_poll(microvms, "FAILED", "FAILED", "DISK_STORAGE_FULL: no space left")
    result = run_cli(["status", "--image-arn", IMAGE_ARN, "--image-version", "1.0"], clients)
    assert result.status == 0, result
    assert "state: FAILED" in result.out
    assert "build build-1: FAILED on ARM_64 GRAVITON generation 4 (DISK_STORAGE_FULL: no space left)" in result.out


def test_status_needs_exactly_one_target(clients: AwsClients) -> None:
    result = run_cli(["status"], clients)
    assert result.status == 2
    assert "pass either a MicroVM id or --image-arn" in result.err


# Errors ------------------------------------------------------------------------


def test_client_error_message_parts(clients: AwsClients, microvms: Stubber) -> None:
    microvms.add_client_error(
        "run_microvm",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=429,
        response_meta={"RequestId": "req-1234"},
    )
    result = run_cli(RUN_ARGS, clients)
    assert result.status == 1
    assert "RunMicrovm failed with ThrottlingException: Rate exceeded" in result.err
    assert "request id: req-1234" in result.err
    assert "next step: wait a few seconds and retry" in result.err


def test_access_denied_names_pass_role(clients: AwsClients, microvms: Stubber) -> None:
    microvms.add_client_error("run_microvm", "AccessDeniedException", "not authorized", 403)
    result = run_cli(RUN_ARGS, clients)
    assert result.status == 1
    assert "lambda:RunMicrovm" in result.err
    assert "iam:PassRole" in result.err


def test_client_error_without_request_id() -> None:
    error = ClientError({"Error": {"Code": "SomethingNew", "Message": "odd"}}, "GetMicrovm")
    text = describe_client_error(error)
    assert text.splitlines() == [
        "GetMicrovm failed with SomethingNew: odd",
        "request id: none",
        "next step: fix what the message names and run the command again",
    ]


def test_no_credentials_message_names_the_fix() -> None:
    assert "aws sso login" in describe_botocore_error(NoCredentialsError())


def test_missing_region_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = run_cli(["status", MICROVM_ID], AwsClients(session=boto3.session.Session()))
    assert result.status == 2
    assert "no AWS region is set; pass --region" in result.err


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "eu-central-1"}, "eu-central-1"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-central-1"}, "eu-west-1"),
    ],
    ids=["aws-region", "aws-default-region", "aws-region-first"],
)
def test_region_from_environment(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert AwsClients().region == expected


def test_region_option_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert AwsClients(region="ap-south-1").region == "ap-south-1"


def test_argparse_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run"]) == 2
    assert "--image-arn" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "create-image" in capsys.readouterr().out
