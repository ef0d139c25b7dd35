"""Endpoint tokens for the emulated proxy: the local stand-in for CreateMicrovmAuthToken.

The platform's token is an opaque JWE in the ``X-aws-proxy-auth`` header. The
emulator's token is ``mvl1.<claims>.<signature>``: base64url JSON claims
(allowed ports, expiry, optionally one MicroVM id) signed with HMAC-SHA256
under a key that only the local user can read. Like the platform, it allows
at most 60 minutes and a list of ports, and the proxy checks it when a
connection opens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Names, not secrets.
TOKEN_HEADER = "X-aws-proxy-auth"  # noqa: S105
TOKEN_PREFIX = "mvl1"  # noqa: S105
# CreateMicrovmAuthToken accepts expirationInMinutes from 1 to 60.
MAX_EXPIRATION_MINUTES = 60
KEY_FILE_NAME = "proxy-token.key"
KEY_BYTES = 32
STATE_DIR_VARIABLE = "MICROVM_LOCAL_STATE_DIR"


class TokenError(ValueError):
    """A token is missing, malformed, forged, expired, or grants something else than asked."""


class KeyFileError(RuntimeError):
    """The signing key file cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class PortRange:
    """An inclusive port range; a single port has ``start == end``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (1 <= self.start <= 65535 and 1 <= self.end <= 65535):
            raise ValueError(f"port range {self.start}-{self.end} is invalid; ports go from 1 to 65535")
        if self.start > self.end:
            raise ValueError(f"port range {self.start}-{self.end} is invalid; write the lower port first")

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port <= self.end

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"


def parse_port_spec(text: str) -> PortRange:
    """Parse ``8080`` or ``8000-8100`` into a PortRange; raise ValueError naming the text otherwise."""
    start_text, dash, end_text = text.strip().partition("-")
    if not start_text.isdigit() or (dash and not end_text.isdigit()):
        raise ValueError(f"port {text!r} is invalid; use a port such as 8080 or a range such as 8000-8100")
    start = int(start_text)
    return PortRange(start, int(end_text) if dash else start)


@dataclass(frozen=True)
class TokenClaims:
    """The grant of a valid token. ``allowed_ports`` of None means every port."""

    issued_at: int
    expires_at: int
    allowed_ports: tuple[PortRange, ...] | None
    microvm_id: str | None

    def allows_port(self, port: int) -> bool:
        return self.allowed_ports is None or any(port in allowed for allowed in self.allowed_ports)

    def describe_ports(self) -> str:
        if self.allowed_ports is None:
            return "all ports"
        return ", ".join(str(allowed) for allowed in self.allowed_ports)


def default_state_dir(package: str) -> Path:
    """Return the directory for the signing key: $MICROVM_LOCAL_STATE_DIR, else under $XDG_STATE_HOME."""
    override = os.environ.get(STATE_DIR_VARIABLE)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "microvm-local" / package


def load_or_create_key(state_dir: Path) -> bytes:
    """Return the signing key from ``state_dir``, creating the directory (0700) and key file (0600) if missing.

    Raises KeyFileError when the file is readable by other users or is too short.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / KEY_FILE_NAME
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(secrets.token_bytes(KEY_BYTES))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"the token signing key {path} has mode {mode:04o}, so other users can read it; "
            f"run `chmod 600 {path}` or delete it to create a new key"
        )
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise KeyFileError(
            f"the token signing key {path} contains {len(key)} bytes, fewer than {KEY_BYTES}; "
            "delete it so that a new key is created (tokens minted with it stop working)"
        )
    return key


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, signed_part: str) -> str:
    return _encode(hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).digest())


def mint_token(
    key: bytes,
    *,
    allowed_ports: Iterable[PortRange] | None,
    expiration_minutes: int,
    microvm_id: str | None = None,
    now: float | None = None,
) -> str:
    """Return a signed token. ``allowed_ports`` of None allows every port, as ``allPorts`` does.

    Raises ValueError for an expiry outside 1-60 minutes or an empty port list,
    the same limits that CreateMicrovmAuthToken enforces.
    """
    if not 1 <= expiration_minutes <= MAX_EXPIRATION_MINUTES:
        raise ValueError(
            f"expiration of {expiration_minutes} minutes is invalid; use 1 to {MAX_EXPIRATION_MINUTES} minutes"
        )
    ports = None if allowed_ports is None else [[allowed.start, allowed.end] for allowed in allowed_ports]
    if ports == []:
        raise ValueError("a token must allow at least one port; pass a port such as 8080")
    issued_at = int(time.time() if now is None else now)
    claims = {
        "iat": issued_at,
        "exp": issued_at + expiration_minutes * 60,
        "ports": "all" if ports is None else ports,
        "microvm": microvm_id,
    }
    signed_part = f"{TOKEN_PREFIX}.{_encode(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{signed_part}.{_sign(key, signed_part)}"


def verify_token(key: bytes, token: str, *, now: float | None = None) -> TokenClaims:
    """Return the claims of a valid token; raise TokenError saying why it is not valid."""
    parts = token.split(".")
    # Tokens are base64url text; anything else (non-ASCII bytes among them) is malformed.
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not token.isascii():
        raise TokenError("the token is malformed; mint one with `microvm-local token`")
    signed_part = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(key, signed_part), parts[2]):
        raise TokenError("the token signature is invalid: it was changed, or minted with another state directory's key")
    try:
        claims = json.loads(_decode(parts[1]))
        issued_at = int(claims["iat"])
        expires_at = int(claims["exp"])
        ports_claim = claims["ports"]
        allowed_ports = (
            None if ports_claim == "all" else tuple(PortRange(int(start), int(end)) for start, end in ports_claim)
        )
        microvm_id = claims.get("microvm")
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise TokenError("the token's claims are malformed; mint a new one with `microvm-local token`") from None
    if expires_at - issued_at > MAX_EXPIRATION_MINUTES * 60:
        raise TokenError(f"the token is valid for more than {MAX_EXPIRATION_MINUTES} minutes, the maximum")
    current = time.time() if now is None else now
    if current >= expires_at:
        expired = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires_at))
        raise TokenError(f"the token expired at {expired}; mint a new one with `microvm-local token`")
    return TokenClaims(issued_at, expires_at, allowed_ports, microvm_id if isinstance(microvm_id, str) else None)
