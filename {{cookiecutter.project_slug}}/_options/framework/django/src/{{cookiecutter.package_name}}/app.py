"""The Django WSGI application, served by waitress behind the MicroVM request gate."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from .microvm import wsgi

# The server that `python -m` starts for this app: "uvicorn" for ASGI, "waitress" for WSGI.
SERVER = "waitress"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{__package__}.settings")
application = get_wsgi_application()
# Import the URL configuration and the views now, not at the first request: their
# per_vm() values must be registered before /run, and with several workers before they fork.
get_resolver().url_patterns  # noqa: B018
app = wsgi(application)
