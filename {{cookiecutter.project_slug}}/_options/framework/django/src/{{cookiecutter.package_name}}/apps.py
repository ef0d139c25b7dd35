"""Django app configuration: registers the per-VM secret key at /run."""

from __future__ import annotations

import os
import secrets

from django.apps import AppConfig as BaseAppConfig
from django.conf import settings

from .microvm import on_run


class AppConfig(BaseAppConfig):
    name = "{{ cookiecutter.package_name }}"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # ready() runs before the snapshot: register work for /run here, never make per-VM values.
        on_run(set_secret_key_per_vm)


def set_secret_key_per_vm() -> None:
    """Give this VM its own SECRET_KEY when DJANGO_SECRET_KEY is not set."""
    if not os.environ.get("DJANGO_SECRET_KEY"):
        settings.SECRET_KEY = secrets.token_urlsafe(50)
