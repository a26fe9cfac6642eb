"""The stages after the wire: FHIR resources -> facts -> rules -> differential -> cards.

The web layer hands a validated request and its completed prefetch to
``Pipeline.evaluate`` and gets a validated ``CDSResponse`` back. Nothing here
knows about HTTP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cds.hooks.models import CDSRequest, CDSResponse
from cds.hooks.services import ServiceDefinition, load_services


@dataclass(frozen=True)
class Evaluation:
    response: CDSResponse
    trace: dict[str, Any] | None = None
    rules_fired: tuple[str, ...] = ()
    # card uuid (str) -> ids of the rules that raised it, for the audit record.
    card_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class Pipeline:
    rules_dir: Path
    services: tuple[ServiceDefinition, ...]
    version: str
    backend: str = "none"
    load_errors: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, rules_dir: Path, hook_namespace: str = "org.calciphylaxis-cds") -> Pipeline:
        services_file = rules_dir / "services.yaml"
        services = load_services(services_file, hook_namespace)
        digest = hashlib.sha256(services_file.read_bytes()).hexdigest()[:12]
        return cls(rules_dir=rules_dir, services=services, version=f"sha256:{digest}")

    def service(self, service_id: str) -> ServiceDefinition | None:
        return next((s for s in self.services if s.id == service_id), None)

    def evaluate(
        self,
        service: ServiceDefinition,
        request: CDSRequest,
        prefetch: Mapping[str, Any],
        now: datetime,
        want_trace: bool = False,
    ) -> Evaluation:
        # The rules engine plugs in here; until it does, no guidance is given.
        return Evaluation(response=CDSResponse(cards=[]))

    def status(self) -> dict[str, Any]:
        return {"version": self.version, "engine": self.backend, "errors": list(self.load_errors)}
