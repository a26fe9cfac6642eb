"""Authentication of CDS clients (EHRs) by the JWT of CDS Hooks 2.0 §security."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cds.auth.clients import TrustedClient, TrustedClientsError, load_trusted_clients

if TYPE_CHECKING:
    from cds.auth.keys import KeyRing
    from cds.auth.replay import MemoryReplayStore, ReplayStore, SqlReplayStore
    from cds.auth.verify import (
        AuthError,
        AuthFailure,
        AuthUnavailable,
        BearerAuthenticator,
        JwtVerifier,
        MissingCredentials,
        VerifiedToken,
    )
    from cds.settings import Settings

# Imported on first use: the settings check JWT algorithms with cds.auth.clients, and importing
# this package must not cost PyJWT, cryptography and SQLAlchemy (~0.15 s) to `cds evaluate`.
_LAZY = {
    "KeyRing": "cds.auth.keys",
    "KeysUnavailable": "cds.auth.keys",
    "MemoryReplayStore": "cds.auth.replay",
    "ReplayStore": "cds.auth.replay",
    "SqlReplayStore": "cds.auth.replay",
    "AuthError": "cds.auth.verify",
    "AuthFailure": "cds.auth.verify",
    "AuthUnavailable": "cds.auth.verify",
    "MissingCredentials": "cds.auth.verify",
    "BearerAuthenticator": "cds.auth.verify",
    "JwtVerifier": "cds.auth.verify",
    "VerifiedToken": "cds.auth.verify",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AuthError",
    "AuthFailure",
    "AuthUnavailable",
    "BearerAuthenticator",
    "JwtVerifier",
    "KeyRing",
    "MemoryReplayStore",
    "MissingCredentials",
    "ReplayStore",
    "SqlReplayStore",
    "TrustedClient",
    "TrustedClientsError",
    "VerifiedToken",
    "build_authenticator",
    "load_trusted_clients",
]

log = logging.getLogger("cds.auth")


def check_fhir_servers(clients: dict[str, TrustedClient], profile: str) -> None:
    """Refuse declared fhirServers the profile forbids (plain http in production, non-loopback http anywhere)."""
    from cds.hooks.fhir_servers import check_declared_base

    for client in clients.values():
        for url in client.fhir_servers:
            problem = check_declared_base(url, profile)
            if problem is not None:
                raise TrustedClientsError(f"trusted client {client.iss!r}: fhir_servers entry {url!r} {problem}")


def build_authenticator(
    settings: Settings, clock: Callable[[], datetime], replay: ReplayStore | None = None
) -> BearerAuthenticator:
    """The authenticator the settings describe; with no trusted clients every call is refused."""
    from cds.auth.keys import KeyRing, KeysUnavailable
    from cds.auth.verify import BearerAuthenticator, JwtVerifier

    clients = load_trusted_clients(settings.trusted_clients_file) if settings.trusted_clients_file else {}
    check_fhir_servers(clients, settings.profile)
    if not clients:
        log.warning(
            "authentication is on and no trusted client is configured (CDS_TRUSTED_CLIENTS_FILE): "
            "every call will be refused"
        )
    if replay is None and settings.workers > 1:
        log.warning(
            "CDS_WORKERS=%d with the in-memory JWT replay store: a token replayed to another worker is not "
            "caught; set CDS_JWT_REPLAY_STORE=database",
            settings.workers,
        )
    keys = KeyRing(cache_seconds=settings.jwks_cache_seconds, min_refresh_seconds=settings.jwks_min_refresh_seconds)
    for client in clients.values():
        if client.jwks_file is not None:
            try:
                keys.load_file(client)
            except KeysUnavailable as exc:
                raise TrustedClientsError(f"trusted client {client.iss!r}: {exc}") from exc
    verifier = JwtVerifier(
        clients,
        keys,
        replay=replay,
        algorithms=settings.jwt_algorithms,
        clock_skew_seconds=settings.jwt_clock_skew_seconds,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        clock=clock,
    )
    return BearerAuthenticator(verifier)
