"""Public keys of trusted clients: JWKS files and allow-listed ``jku`` URLs, cached.

A ``jku`` JWK Set is fetched with httpx, cached for ``cache_seconds`` and
refetched early when a token names a ``kid`` it does not hold (key rotation),
at most once per ``min_refresh_seconds`` so that tokens with made-up kids
cannot make the service hammer the EHR. Only URLs listed in the trusted-client
configuration are ever fetched. Symmetric (``oct``) keys are dropped: a
shared-secret key must never verify a CDS Hooks JWT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import orjson

from cds.auth.clients import TrustedClient

log = logging.getLogger("cds.auth.keys")

MAX_JWKS_BYTES = 256 * 1024


class KeysUnavailable(Exception):
    """The client's key set could not be read or fetched."""


@dataclass(frozen=True)
class SigningKey:
    key: Any  # a cryptography public key
    kty: str  # EC, RSA or OKP
    alg: str | None  # the JWK's own "alg", when it declares one


def parse_jwks(document: Any) -> dict[str, SigningKey]:
    """Usable signing keys of a JWK Set by ``kid``; symmetric and kid-less keys are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeysUnavailable("not a JWK Set")
    keys: dict[str, SigningKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") == "oct" or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(jwk)
            keys[jwk["kid"]] = SigningKey(key=parsed.key, kty=str(jwk["kty"]), alg=jwk.get("alg"))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            log.warning("JWK with kid %r is unusable and ignored", jwk["kid"][:64])
    return keys


@dataclass
class _Cached:
    keys: dict[str, SigningKey]
    fetched_at: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class KeyRing:
    def __init__(
        self,
        cache_seconds: float = 3600,
        min_refresh_seconds: float = 30,
        timeout_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.cache_seconds = cache_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self.timeout_seconds = timeout_seconds
        self._monotonic = monotonic
        self._transport = transport
        self._files: dict[str, dict[str, SigningKey]] = {}
        self._jku: dict[str, _Cached] = {}

    def load_file(self, client: TrustedClient) -> None:
        """Read a client's JWKS file now (at start) so a broken file stops the service early."""
        assert client.jwks_file is not None
        try:
            document = orjson.loads(client.jwks_file.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise KeysUnavailable(f"{client.jwks_file}: {exc}") from exc
        keys = parse_jwks(document)
        if not keys:
            raise KeysUnavailable(f"{client.jwks_file}: no usable signing key")
        self._files[client.iss] = keys

    async def key(self, client: TrustedClient, kid: str, jku: str | None) -> SigningKey | None:
        """The key ``kid`` of ``client`` (``jku`` must already be allow-listed); None when unknown."""
        if jku is None:
            found = self._files.get(client.iss, {}).get(kid)
            if found is not None or not client.jku:
                return found
            jku = client.jku[0]
        if jku not in client.jku:  # defence in depth: the verifier checks this first
            return None
        cached = self._jku.get(jku)
        now = self._monotonic()
        if cached is None:
            cached = self._jku.setdefault(jku, _Cached(keys={}, fetched_at=float("-inf")))
        async with cached.lock:
            age = now - cached.fetched_at
            stale = age > self.cache_seconds
            unknown = kid not in cached.keys and age > self.min_refresh_seconds
            if stale or unknown:
                try:
                    cached.keys = await self._fetch(jku)
                except KeysUnavailable:
                    if not cached.keys:
                        raise
                    log.warning("JWK Set refresh failed; keeping the cached keys")
                cached.fetched_at = self._monotonic()
        return cached.keys.get(kid)

    async def _fetch(self, url: str) -> dict[str, SigningKey]:
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout_seconds, follow_redirects=False, trust_env=False, transport=self._transport
            ) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KeysUnavailable(f"fetching {url}: {type(exc).__name__}") from None
        if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
            raise KeysUnavailable(f"fetching {url}: HTTP {response.status_code}")
        try:
            return parse_jwks(orjson.loads(response.content))
        except orjson.JSONDecodeError:
            raise KeysUnavailable(f"fetching {url}: not JSON") from None
