"""Verifying the JWT an EHR sends with every CDS Hooks call (CDS Hooks 2.0 §Trusting CDS Clients).

Checks, in order; the first that fails refuses the token:

``header``    three base64url parts, a JSON header; no ``crit`` extensions
``alg``       in the allow-list (asymmetric only: ``none`` and HMAC never), and
              in the client's own list and its key's ``alg`` when those are set
``typ``       ``JWT``
``kid``       present
``iss``       a trusted client
``jku``       when the header has one and the client lists ``jku`` URLs, one of them
              (a ``jku`` is never fetched unless listed)
``key``       the client has a key with that ``kid`` (a ``jku`` set is refetched once for an unknown kid)
``signature`` verifies with that key and algorithm
``claims``    ``iss aud exp iat jti`` present and well typed (``sub`` is not required)
``exp``/``iat``/``nbf``  against the injected clock, with a small skew
``lifetime``  ``exp - iat`` at most ``max_lifetime`` (the replay store keeps jtis that long)
``aud``       the URL invoked, under the configured external base URL
``tenant``    in the client's tenant allow-list, when it has one
``replay``    the ``jti`` was not seen before within the token's lifetime

Errors (the web layer maps them to an OperationOutcome, cds.web.problems)::

    AuthError
    ├── MissingCredentials    no bearer token                         -> 401
    ├── AuthFailure           a token refused; ``check`` names why     -> 401, only "authentication failed"
    └── AuthUnavailable       the replay store cannot be reached      -> 503

The log line names the check, ``iss`` and ``jti`` — never the token.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from starlette.requests import Request

from cds.auth.clients import DEFAULT_ALGORITHMS, TrustedClient, check_algorithms
from cds.auth.keys import KeyRing, KeysUnavailable
from cds.auth.replay import MemoryReplayStore, ReplayStore, ReplayStoreUnavailable
from cds.observability import metrics

log = logging.getLogger("cds.auth")

_LOGGABLE = re.compile(r"[^A-Za-z0-9._:/@+~=-]")
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
# JWS algorithm family (first two letters) -> the JWK key type it needs.
KEY_TYPE_OF_ALG = {"ES": "EC", "RS": "RSA", "PS": "RSA", "Ed": "OKP"}


class AuthError(Exception):
    """Base of the errors of authentication; nothing here knows HTTP."""


class MissingCredentials(AuthError):
    """The call has no ``Authorization: Bearer`` token."""


class AuthUnavailable(AuthError):
    """The token could not be checked now (the JWT replay store is unavailable)."""


class AuthFailure(AuthError):
    """A refused token; ``check`` names the failed check (for the log only, never for the client)."""

    def __init__(self, check: str, iss: Any = None, jti: Any = None) -> None:
        super().__init__(check)
        self.check = check
        self.iss = iss
        self.jti = jti


@dataclass(frozen=True)
class VerifiedToken:
    iss: str
    jti: str
    tenant: str | None
    expires_at: float
    fhir_servers: tuple[str, ...] = ()


def loggable(value: Any) -> str:
    """A client-supplied value made safe for a log line: short, plain characters, never token-shaped."""
    if not isinstance(value, str) or not value:
        return "-"
    if value.startswith("eyJ") or _JWT_SHAPE.match(value):
        return "(token-like value withheld)"
    return _LOGGABLE.sub("?", value[:96])


def _number(value: Any) -> bool:
    """An integer NumericDate (RFC 7519 allows fractions; CDS Hooks EHRs send integers).

    NaN and the infinities are refused: every comparison with NaN is false, so a NaN ``exp``
    would pass the expiry check and never expire from the replay store (issue 16).
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


class JwtVerifier:
    def __init__(
        self,
        clients: Mapping[str, TrustedClient],
        keys: KeyRing,
        replay: ReplayStore | None = None,
        algorithms: tuple[str, ...] | list[str] = DEFAULT_ALGORITHMS,
        clock_skew_seconds: float = 30,
        max_lifetime_seconds: float = 3600,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.clients = dict(clients)
        self.keys = keys
        self.replay = replay if replay is not None else MemoryReplayStore()  # an empty store is falsy (__len__)
        self.algorithms = frozenset(check_algorithms(list(algorithms)))
        self.skew = clock_skew_seconds
        self.max_lifetime = max_lifetime_seconds
        self.clock = clock

    async def verify(self, token: str, audience: str) -> VerifiedToken:
        header, iss, jti = _read_header(token)

        def fail(check: str) -> AuthFailure:
            return AuthFailure(check, iss, jti)

        alg, kid = self._check_header(header, fail)
        client = self.clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise fail("iss")
        key = await self._client_key(client, header, alg, kid, fail)
        claims = _verified_claims(token, key, alg, fail)
        exp, now = self._check_claims(claims, audience, client, fail)
        if not await self.replay.remember(client.iss, claims["jti"], float(exp) + self.skew, now):
            raise fail("replay")
        tenant = claims.get("tenant")
        return VerifiedToken(
            iss=client.iss,
            jti=claims["jti"],
            tenant=tenant if isinstance(tenant, str) else None,
            expires_at=float(exp),
            fhir_servers=client.fhir_servers,
        )

    def _check_header(self, header: dict[str, Any], fail: Callable[[str], AuthFailure]) -> tuple[str, str]:
        """``alg`` in the allow-list, ``typ`` JWT and a ``kid``: (alg, kid)."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise fail("alg")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise fail("typ")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise fail("kid")
        return alg, kid

    async def _client_key(
        self, client: TrustedClient, header: dict[str, Any], alg: str, kid: str, fail: Callable[[str], AuthFailure]
    ) -> Any:
        """The client's key for ``kid``, checked against the client's algorithms and ``jku`` list."""
        if client.algorithms is not None and alg not in client.algorithms:
            raise fail("alg")
        jku = header.get("jku")
        if jku is not None and (not isinstance(jku, str) or (client.jku and jku not in client.jku)):
            raise fail("jku")
        try:
            key = await self.keys.key(client, kid, jku if client.jku else None)
        except KeysUnavailable:
            log.error("JWK Set of trusted client %s is unavailable", loggable(client.iss))
            raise fail("key") from None
        if key is None:
            raise fail("key")
        if (key.alg is not None and key.alg != alg) or KEY_TYPE_OF_ALG.get(alg[:2]) != key.kty:
            raise fail("alg")
        return key

    def _check_claims(
        self, claims: dict[str, Any], audience: str, client: TrustedClient, fail: Callable[[str], AuthFailure]
    ) -> tuple[Any, float]:
        """Claims present and well typed, times against the clock, audience and tenant: (``exp``, now)."""
        if any(name not in claims for name in REQUIRED_CLAIMS):
            raise fail("claims")
        exp, iat, nbf, aud = claims["exp"], claims["iat"], claims.get("nbf"), claims["aud"]
        if not (_number(exp) and _number(iat) and (nbf is None or _number(nbf))):
            raise fail("claims")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise fail("claims")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) for a in audiences):
            raise fail("claims")
        now = self.clock().timestamp()
        if now > exp + self.skew:
            raise fail("exp")
        if iat > now + self.skew:
            raise fail("iat")
        if nbf is not None and nbf > now + self.skew:
            raise fail("nbf")
        if exp - iat > self.max_lifetime or exp < iat:
            raise fail("lifetime")
        if audience.rstrip("/") not in {a.rstrip("/") for a in audiences}:
            raise fail("aud")
        if client.tenants is not None and claims.get("tenant") not in client.tenants:
            raise fail("tenant")
        return exp, now


def _read_header(token: str) -> tuple[dict[str, Any], Any, Any]:
    """The unverified header, ``iss`` and ``jti`` (for the checks and the log line)."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthFailure("header") from None
    if not isinstance(header, dict) or "crit" in header:
        raise AuthFailure("header")
    return header, unverified.get("iss"), unverified.get("jti")


def _verified_claims(token: str, key: Any, alg: str, fail: Callable[[str], AuthFailure]) -> dict[str, Any]:
    """The claims once the signature verifies; the time and audience checks are ours (injected clock)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            options={
                "verify_signature": True,
                "verify_exp": False,  # checked in _check_claims against the injected clock
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except Exception:  # whatever the library raises on a bad signature or key, the token is refused
        raise fail("signature") from None
    return claims


class BearerAuthenticator:
    """``authenticate(request, audience_url)`` for ``cds.app.create_app``: raises an ``AuthError``."""

    def __init__(self, verifier: JwtVerifier) -> None:
        self.verifier = verifier

    async def __call__(self, request: Request, audience: str) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        path = request.url.path
        if scheme.lower() != "bearer" or not token:
            log.warning("JWT refused: check=missing path=%s", path)
            metrics.AUTH_FAILURES.inc()
            raise MissingCredentials
        try:
            verified = await self.verifier.verify(token, audience)
        except AuthFailure as failure:
            metrics.AUTH_FAILURES.inc()
            log.warning(
                "JWT refused: check=%s iss=%s jti=%s path=%s",
                failure.check,
                loggable(failure.iss),
                loggable(failure.jti),
                path,
            )
            raise
        except ReplayStoreUnavailable as exc:
            log.error("JWT not checked: the replay store is unavailable (%s)", exc)
            metrics.AUTH_FAILURES.inc()
            raise AuthUnavailable from None
        request.state.client_iss = verified.iss
        request.state.fhir_servers = verified.fhir_servers
        log.debug("JWT accepted: iss=%s jti=%s path=%s", loggable(verified.iss), loggable(verified.jti), path)
