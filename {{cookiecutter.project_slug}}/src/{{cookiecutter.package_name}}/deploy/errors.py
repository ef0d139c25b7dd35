"""The two kinds of failure the deploy CLI reports, and their exit statuses."""

from __future__ import annotations


class UsageError(Exception):
    """A command-line value or a project file is invalid; the CLI exits with status 2."""

    exit_status = 2


class DeployError(Exception):
    """A step failed after the input was accepted (AWS, a build, an HTTP call); the CLI exits with status 1."""

    exit_status = 1
