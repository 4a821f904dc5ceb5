"""The dashboard's access rules, as pure functions and one small signer (no HTTP library here).

- **Who may look**: on a loopback address anyone on this machine (the default); on any other
  address, or whenever a token is configured, only a browser that presented the token once as
  ``?token=`` and got the session cookie in return. :func:`check_bind` refuses to start a
  non-loopback dashboard without a token.
- **DNS rebinding**: without a token the ``Host`` header must name a loopback host
  (:func:`loopback_host_header`), so a web page whose name was re-pointed at 127.0.0.1 cannot
  read the dashboard or send commands with it.
- **Cross-site requests**: commands are POSTs with a JSON body that carry the session's CSRF token
  in a header (:meth:`Signer.csrf_token`) and come from the same origin
  (:func:`same_origin`, ``Sec-Fetch-Site`` or ``Origin``).
- **Files** are addressed by session id only (:func:`valid_session_id`); the id must also exist.

The session cookie is ``<nonce>.<HMAC-SHA256(key, nonce)>``; the CSRF token is another HMAC of the
same nonce, so nothing is stored on the server. With a token the key is derived from it (cookies
survive a restart of the dashboard, and change when the token does); without one the key is random
per process.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from typing import Final
from urllib.parse import urlsplit

from sensorhub.errors import ConfigError

__all__ = [
    "CSRF_HEADER",
    "MIN_TOKEN_CHARS",
    "TOKEN_ENV",
    "Signer",
    "check_bind",
    "is_loopback",
    "loopback_host_header",
    "same_origin",
    "valid_session_id",
]

#: Environment variable read for the token when ``--token`` is not given.
TOKEN_ENV: Final = "SENSORHUB_DASHBOARD_TOKEN"
#: Header that carries the CSRF token of a command.
CSRF_HEADER: Final = "X-CSRF-Token"
#: Shortest token accepted: ~96 bits in URL-safe base64 (``secrets.token_urlsafe(16)`` gives 22).
MIN_TOKEN_CHARS: Final = 16

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost"})
# Session ids are "YYYYMMDDTHHMMSSZ-xxxxxx"; this admits any id of that alphabet, never "/", "\" or "..".
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name is this machine only (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse settings that would expose the dashboard without a token, or with a weak one.

    Raises:
        ConfigError: a non-loopback ``host`` without a token, or a token shorter than
            :data:`MIN_TOKEN_CHARS`.
    """
    advice = (
        f'pass --token or set {TOKEN_ENV}; make one with: python3 -c "import secrets; print(secrets.token_urlsafe(24))"'
    )
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"dashboard: the token must have at least {MIN_TOKEN_CHARS} characters", advice=advice)
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"dashboard: --host {host} is reachable from other machines, so a token is required", advice=advice
        )


def loopback_host_header(host_header: str | None) -> bool:
    """Whether a ``Host`` header names a loopback host (any port)."""
    if not host_header:
        return False
    return is_loopback(_host_of(host_header))


def _host_of(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def same_origin(sec_fetch_site: str | None, origin: str | None, host_header: str | None) -> bool:
    """Whether a request comes from the dashboard's own pages.

    ``Sec-Fetch-Site`` (Fetch Metadata, sent by current browsers and set by the browser alone)
    decides when present: only ``same-origin``. Otherwise ``Origin`` must name the host the
    request was sent to. A request with neither header is refused: browsers send at least one
    with every cross-site POST, and a script (curl) can add ``Origin`` itself.
    """
    if sec_fetch_site is not None:
        return sec_fetch_site == "same-origin"
    if origin is None or host_header is None or origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()


def valid_session_id(session_id: str) -> bool:
    """Whether a string can be a session id at all (letters, digits, ``-``, ``_``; no path)."""
    return _SESSION_ID.fullmatch(session_id) is not None


class Signer:
    """Issues and checks session cookies and CSRF tokens (HMAC-SHA256, nothing stored).

    Args:
        token: the access token, or None (loopback without a token).
    """

    def __init__(self, token: str | None) -> None:
        self.token = token
        if token is None:
            self._key = secrets.token_bytes(32)
        else:
            self._key = hashlib.sha256(b"sensorhub-dashboard-session\0" + token.encode()).digest()

    def __repr__(self) -> str:
        return f"Signer(token={'set' if self.token is not None else None})"

    def _mac(self, purpose: str, nonce: str) -> str:
        return hmac.new(self._key, f"{purpose}\0{nonce}".encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        """A new session cookie value."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac('session', nonce)}"

    def session_nonce(self, cookie: str | None) -> str | None:
        """The nonce of a valid session cookie, or None."""
        if not cookie or cookie.count(".") != 1:
            return None
        nonce, mac = cookie.split(".")
        return nonce if hmac.compare_digest(mac.encode(), self._mac("session", nonce).encode()) else None

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token of a session."""
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str, header: str | None) -> bool:
        """Whether a request's CSRF header belongs to its session."""
        return header is not None and hmac.compare_digest(header.encode(), self.csrf_token(nonce).encode())

    def token_ok(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the access token (constant time)."""
        if self.token is None or candidate is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())
