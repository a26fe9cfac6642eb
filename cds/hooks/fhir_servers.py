"""Which ``fhirServer`` a request may make this service call (the SSRF guard).

A ``fhirServer`` is a URL the *caller* chooses, and the service sends it GETs
carrying the caller's bearer token. Without a check, any client could point the
service at an internal address (an admin port, a cloud metadata endpoint) and
read the answers back through the 412 diagnostics. So (ADR 0008):

* with authentication on, the trusted client that signed the JWT declares the
  FHIR server base URLs it may send (``fhir_servers`` in the trusted-clients
  file); the request's ``fhirServer`` must be one of them or lie under one;
  in the production profile only ``https`` ones are accepted;
* with authentication off (a loopback demo) only a loopback ``fhirServer`` is
  fetched from;
* a URL with credentials (``user:pw@``) is never used: httpx would send them
  instead of the bearer token.

Paths are compared after percent-decoding and with dot segments refused, so
``/fhir/%2e%2e/admin`` is not "under" ``/fhir``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal; ``127.1`` or ``0.0.0.0`` are not."""
    host = host.lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalised_path(path: str) -> str | None:
    """The percent-decoded path, or None when it has dot segments (literal or encoded) or backslashes."""
    decoded = unquote(path)
    if "\\" in decoded or any(segment in {".", ".."} for segment in decoded.split("/")):
        return None
    return decoded


def origin_and_path(url: str) -> tuple[str, str, int | None, str | None]:
    """(scheme, host, port, normalised path) of ``url``; the path is None when it is unsafe."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        return scheme, "", None, None
    return scheme, (parts.hostname or "").lower(), port, normalised_path(parts.path)


def is_under(url: str, base: str) -> bool:
    """True when ``url`` is on ``base``'s origin and under its path, both normalised."""
    scheme, host, port, path = origin_and_path(url)
    b_scheme, b_host, b_port, b_path = origin_and_path(base)
    if path is None or b_path is None or not host:
        return False
    prefix = b_path.rstrip("/") + "/"
    return (scheme, host, port) == (b_scheme, b_host, b_port) and (path.rstrip("/") + "/").startswith(prefix)


def check_declared_base(url: str, profile: str) -> str | None:
    """Why a base URL may not be declared in the trusted-clients file, or None when it may."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if normalised_path(parts.path) is None:
        return "must not have dot segments"
    if scheme == "http":
        if profile == "production":
            return "must be https in the production profile"
        if not is_loopback_host(parts.hostname):
            return "may be plain http only on loopback (demo profile)"
    return None


def refusal(fhir_server: str, *, auth_required: bool, profile: str, allowed: Iterable[str]) -> str | None:
    """Why this request's ``fhirServer`` may not be fetched from, or None when it may.

    The reason is for the client: it names the rule, never what was found at the address.
    """
    parts = urlsplit(fhir_server)
    if parts.username is not None or parts.password is not None:
        return "fhirServer must not carry credentials"
    scheme, host, _port, path = origin_and_path(fhir_server)
    if path is None or not host:
        return "fhirServer is not a plain base URL"
    if not auth_required:
        # A demo without authentication: nobody is trusted, so only this machine is fetched from.
        return None if is_loopback_host(host) else "with authentication off only a loopback fhirServer is used"
    if profile == "production" and scheme != "https":
        return "fhirServer must be https in the production profile"
    if any(is_under(fhir_server, base) for base in allowed):
        return None
    return "fhirServer is not one the authenticated client declared"
