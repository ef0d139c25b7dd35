"""Send an HTTPS request to a MicroVM's endpoint through the platform's proxy.

The proxy admits a request only with an ``X-aws-proxy-auth`` token from
CreateMicrovmAuthToken, and forwards it to the port in ``X-aws-proxy-port``
(8080 when the header is missing), which the token must allow.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import DeployError, UsageError

AUTH_HEADER = "X-aws-proxy-auth"
PORT_HEADER = "X-aws-proxy-port"
# The proxy reserves this header namespace; the CLI sets the headers it needs itself.
RESERVED_HEADER_PREFIX = "x-aws-proxy-"
TOKEN_ENVIRONMENT_VARIABLE = "MICROVM_AUTH_TOKEN"  # noqa: S105 (the name of a variable, not a secret)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
EXAMPLE_ENDPOINT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.lambda-microvm.us-east-1.on.aws"

# Likely causes of the statuses that the proxy itself returns.
PROXY_STATUS_HINTS = {
    403: (
        "the proxy rejected the token: it expired, belongs to another MicroVM, or does not allow the port; "
        "mint a new one with `microvm-deploy token`"
    ),
    429: "the MicroVM's request rate limit was reached; retry more slowly",
    502: (
        "the proxy reached no app: the MicroVM may still be starting or resuming, or the app is not listening "
        "on the port; retry in a few seconds and check `microvm-deploy status`"
    ),
    503: "the app is not serving yet, usually because /run has not finished; retry in a few seconds",
}


class Opener(Protocol):
    """The part of ``urllib.request.OpenerDirector`` that the CLI uses."""

    def open(self, fullurl: urllib.request.Request, data: bytes | None = None, timeout: float = ...) -> Any: ...


@dataclass(frozen=True)
class Response:
    """Status, headers and body of one endpoint response."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        charset = "utf-8"
        content_type = self.headers.get("Content-Type", "")
        match = re.search(r"charset=([\w.-]+)", content_type)
        if match:
            charset = match.group(1)
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an error, because urllib would resend the auth token to the new host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def default_opener() -> Opener:
    """Return an opener that verifies TLS certificates and never follows redirects."""
    return urllib.request.build_opener(_NoRedirect())


def check_endpoint(endpoint: str) -> str:
    """Return ``endpoint`` if it is a bare hostname, as RunMicrovm and GetMicrovm return it."""
    if not HOSTNAME_PATTERN.fullmatch(endpoint) or len(endpoint) > 253:
        raise UsageError(
            f"endpoint {endpoint!r} is not a hostname; pass the endpoint without scheme, port or path, "
            f"for example {EXAMPLE_ENDPOINT}"
        )
    return endpoint


def check_path(path: str) -> str:
    if not path.startswith("/") or any(character in path for character in "\r\n #"):
        raise UsageError(f"path {path!r} is invalid; use an absolute path with an optional query, for example /healthz")
    return path


def parse_headers(values: Sequence[str]) -> dict[str, str]:
    """Parse ``Name: value`` strings, rejecting the proxy's reserved header names."""
    headers: dict[str, str] = {}
    for text in values:
        name, separator, value = text.partition(":")
        name = name.strip()
        if not separator or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or "\n" in value or "\r" in value:
            raise UsageError(f"header {text!r} is invalid; use 'Name: value', for example 'Accept: application/json'")
        if name.lower().startswith(RESERVED_HEADER_PREFIX):
            raise UsageError(
                f"header {name} is in the proxy's reserved x-aws-proxy-* namespace; the CLI sets "
                f"{AUTH_HEADER} and {PORT_HEADER} itself, so remove it"
            )
        headers[name] = value.strip()
    return headers


def load_token(token_file: Path | None, environ: Mapping[str, str]) -> dict[str, str] | None:
    """Return the token headers from ``--token-file`` or MICROVM_AUTH_TOKEN, or None when neither is set.

    The token file is the JSON object that ``microvm-deploy token`` prints: header
    names mapped to values.
    """
    if token_file is not None:
        try:
            parsed = json.loads(token_file.read_text(encoding="utf-8"))
        except OSError as error:
            raise UsageError(f"cannot read --token-file {token_file}: {error.strerror}") from error
        except json.JSONDecodeError as error:
            raise UsageError(
                f"--token-file {token_file} is not JSON ({error.msg}); write it with `microvm-deploy token > FILE`"
            ) from error
        if not isinstance(parsed, dict) or not all(isinstance(value, str) for value in parsed.values()):
            raise UsageError(f"--token-file {token_file} must contain a JSON object of header names and string values")
        if AUTH_HEADER not in parsed:
            raise UsageError(
                f"--token-file {token_file} has no {AUTH_HEADER} entry; write it with `microvm-deploy token`"
            )
        return dict(parsed)
    value = environ.get(TOKEN_ENVIRONMENT_VARIABLE)
    if value:
        return {AUTH_HEADER: value}
    return None


def build_request(
    endpoint: str,
    path: str,
    *,
    method: str,
    token_headers: Mapping[str, str],
    port: int,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> urllib.request.Request:
    """Return the HTTPS request for ``path`` on the MicroVM at ``endpoint``."""
    url = f"https://{check_endpoint(endpoint)}{check_path(path)}"
    request = urllib.request.Request(url, data=body, method=method.upper())
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    for name, value in token_headers.items():
        request.add_header(name, value)
    request.add_header(PORT_HEADER, str(port))
    return request


def send(request: urllib.request.Request, opener: Opener, timeout_seconds: float) -> Response:
    """Send ``request`` and return the response, also for 4xx and 5xx statuses.

    Raises DeployError when no response arrives (DNS, TLS, connection or timeout).
    """
    try:
        with opener.open(request, timeout=timeout_seconds) as reply:
            return Response(reply.status, reply.reason, dict(reply.headers.items()), reply.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, str(error.reason), dict(error.headers.items()), error.read())
    except urllib.error.URLError as error:
        raise DeployError(
            f"request to {request.full_url} failed: {error.reason}; check the endpoint and the network"
        ) from error
    except TimeoutError as error:
        raise DeployError(
            f"request to {request.full_url} timed out after {timeout_seconds:g} s; raise --timeout or retry"
        ) from error
