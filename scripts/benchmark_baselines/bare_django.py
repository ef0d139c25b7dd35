"""Baseline: the template's Django routes on the same waitress settings, with no lifecycle layer.

One module contains the settings, the views and the URL configuration. The
settings match the generated project's (same middleware, no database, no
installed apps of its own), with no request gate, no hook server and no per-VM
state. The benchmark compares this app with the generated one to see what the
lifecycle layer costs.

Environment: APP_PORT (default 8080) and MICROVM_HOST (default 127.0.0.1).
"""

from __future__ import annotations

import os
import secrets
import socket
import time

import django
import waitress
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

# The template's WSGI servers run waitress with 8 threads per process.
WSGI_THREADS = 8

settings.configure(
    SECRET_KEY="",
    DEBUG=False,
    ALLOWED_HOSTS=["localhost", "127.0.0.1", "[::1]"],
    INSTALLED_APPS=[],
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    ],
    ROOT_URLCONF=__name__,
    DATABASES={},
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

session_id = secrets.token_urlsafe(16)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def session(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"session_id": session_id, "microvm_id": None})


def token(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"token": secrets.token_urlsafe(32)})


def slow(request: HttpRequest) -> JsonResponse:
    time.sleep(min(float(request.GET.get("seconds", "1")), 30.0))
    return JsonResponse({"slept": True})


urlpatterns = [
    path("healthz", healthz),
    path("session", session),
    path("token", token),
    path("slow", slow),
]

application = get_wsgi_application()


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen as the template's server does: TCP with SO_REUSEADDR and a backlog of 1024."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    return listener


def main() -> int:
    listener = bind(os.environ.get("MICROVM_HOST", "127.0.0.1"), int(os.environ.get("APP_PORT", "8080")))
    waitress.serve(application, sockets=[listener], threads=WSGI_THREADS, ident="", clear_untrusted_proxy_headers=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
