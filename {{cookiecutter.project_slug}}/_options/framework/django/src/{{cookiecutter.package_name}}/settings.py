"""Django settings for the {{ cookiecutter.package_name }} project.

Nothing here may differ between MicroVMs: this module is imported before the
image snapshot, so every VM restored from it shares these values.
"""

from __future__ import annotations

import os

# Without DJANGO_SECRET_KEY, an on_run callback (see apps.py) gives each VM its
# own key at /run, which is enough while one endpoint maps to one VM. A key
# generated here would be in the snapshot and shared by every VM. Image
# environment variables are frozen into the snapshot and readable in the image
# configuration, so a key shared across VMs belongs in a secret store, read in
# an on_run callback, rather than in DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")

DEBUG = False

# The platform's proxy sends the endpoint host name, <id>.lambda-microvm.<region>.on.aws.
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", ".on.aws,localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "{{ cookiecutter.package_name }}.apps.AppConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "{{ cookiecutter.package_name }}.urls"
WSGI_APPLICATION = "{{ cookiecutter.package_name }}.app.app"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
LOGGING_CONFIG = None
