"""Trusted CDS clients (EHRs), configured by ``iss`` in a YAML file.

```yaml
clients:
  - iss: https://sandbox.cds-hooks.org
    jwks_file: sandbox-jwks.json          # keys exchanged out of band (relative to this file)
  - iss: https://ehr.example.org
    jku:                                  # allow-listed JWK Set URLs; no other jku is ever fetched
      - https://ehr.example.org/.well-known/jwks.json
    tenants: [hospital-a, hospital-b]     # optional: only these `tenant` claims
    algorithms: [ES384]                   # optional: narrows CDS_JWT_ALGORITHMS for this client
    fhir_servers:                         # the fhirServer base URLs this client may send (https in production)
      - https://ehr.example.org/fhir
```

A request whose ``fhirServer`` is not one of the client's ``fhir_servers`` (or
under one) is never fetched from (``cds.hooks.fhir_servers``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from cds.hooks.fhir_servers import is_loopback_host
from cds.settings import ASYMMETRIC_ALGORITHMS, DEFAULT_ALGORITHMS, check_algorithms
from cds.yamlio import load_yaml

__all__ = ["ASYMMETRIC_ALGORITHMS", "DEFAULT_ALGORITHMS", "TrustedClient", "TrustedClientsError", "check_algorithms"]


class TrustedClientsError(ValueError):
    """The trusted-clients file is missing or invalid; the message names the file and the entry."""


class TrustedClient(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: Annotated[str, StringConstraints(min_length=1)]
    jwks_file: Path | None = None
    jku: tuple[str, ...] = ()
    tenants: frozenset[str] | None = None
    algorithms: tuple[str, ...] | None = None
    fhir_servers: tuple[str, ...] = ()

    @field_validator("fhir_servers")
    @classmethod
    def _plain_bases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from cds.hooks.fhir_servers import check_declared_base

        for url in value:
            # The profile-specific rule (https in production) is checked when the service starts.
            problem = check_declared_base(url, "demo")
            if problem is not None:
                raise ValueError(f"fhir_servers entry {url!r} {problem}")
        return value

    @field_validator("jku")
    @classmethod
    def _https(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            parts = urlsplit(url)
            # Keys fetched over plain HTTP could be swapped in transit; loopback is for tests and demos.
            if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname or "")):
                raise ValueError(f"jku {url!r} must be an https URL")
        return value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(check_algorithms(value))

    @model_validator(mode="after")
    def _has_keys(self) -> TrustedClient:
        if self.jwks_file is None and not self.jku:
            raise ValueError("a trusted client needs jwks_file or jku")
        return self


class TrustedClientsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: list[TrustedClient] = Field(default_factory=list)


def load_trusted_clients(path: Path) -> dict[str, TrustedClient]:
    """The trusted clients by ``iss``; relative ``jwks_file`` paths are resolved against ``path``'s folder."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise TrustedClientsError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise TrustedClientsError(f"{path}: invalid YAML: {exc}") from exc
    try:
        parsed = TrustedClientsFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise TrustedClientsError(f"{path}: {loc}: {first['msg']}") from None
    clients: dict[str, TrustedClient] = {}
    for client in parsed.clients:
        if client.iss in clients:
            raise TrustedClientsError(f"{path}: iss {client.iss!r} is listed twice")
        if client.jwks_file is not None and not client.jwks_file.is_absolute():
            client = client.model_copy(update={"jwks_file": path.parent / client.jwks_file})
        clients[client.iss] = client
    return clients
