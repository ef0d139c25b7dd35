"""Django app configuration: gives each MicroVM its SECRET_KEY at /run."""

from __future__ import annotations

import os
import secrets

from django.apps import AppConfig as BaseAppConfig
from django.conf import settings

from .microvm import on_run, per_vm

# One key per VM, made at /run. per_vm computes it once and sends it to every
# worker process, so that all workers of a VM sign and check with the same key.
secret_key = per_vm(lambda: secrets.token_urlsafe(50), name="django_secret_key")


class AppConfig(BaseAppConfig):
    name = "{{ cookiecutter.package_name }}"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # ready() runs before the snapshot: register work for /run here, never make per-VM values.
        on_run(set_secret_key_per_vm)


def set_secret_key_per_vm() -> None:
    """Install this VM's SECRET_KEY unless DJANGO_SECRET_KEY provides a shared one."""
    if not os.environ.get("DJANGO_SECRET_KEY"):
        settings.SECRET_KEY = secret_key.get()
