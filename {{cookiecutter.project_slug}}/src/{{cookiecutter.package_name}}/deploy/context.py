"""The context, project name, settings and output helpers that every ``microvm-deploy`` command shares."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from ..microvm.config import APP_PACKAGE, Settings, load_settings
from .client import AwsClients
from .endpoint import Opener


@dataclass
class Context:
    """The dependencies of a command besides its arguments; tests replace each one."""

    clients: AwsClients
    out: TextIO
    err: TextIO
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    opener: Opener
    environ: Mapping[str, str]
    json_output: bool = False


def project_name() -> str:
    """Return the project's distribution name, which also names the image, its log group and its S3 prefix.

    The name comes from the installed package metadata. Without it, the import name
    with "-" for "_" is used, which is the name the template derives by default.
    """
    distributions = importlib.metadata.packages_distributions().get(APP_PACKAGE, [])
    if len(distributions) == 1:
        return distributions[0]
    return APP_PACKAGE.replace("_", "-")


def project_settings() -> Settings:
    """Load microvm.toml without APP_PORT or HOOKS_PORT overrides from this shell.

    Those variables are for running the app locally; the image reads only the file.
    """
    return load_settings(environ={})


def show(context: Context, response: dict[str, Any], fields: tuple[str, ...]) -> int:
    if context.json_output:
        print_json(context, response)
    else:
        print_fields(context, response, fields)
    return 0


def print_fields(context: Context, response: dict[str, Any], fields: tuple[str, ...]) -> None:
    for field in fields:
        if response.get(field) is not None:
            print(f"{field}: {format_value(response[field])}", file=context.out)


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def without_metadata(response: Any) -> Any:
    if isinstance(response, dict):
        return {key: value for key, value in response.items() if key != "ResponseMetadata"}
    return response


def print_json(context: Context, value: Any) -> None:
    json.dump(without_metadata(value), context.out, indent=2, sort_keys=True, default=json_default)
    context.out.write("\n")


def json_default(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)
