"""Service definitions, declared in ``rules/services.yaml``.

A service is what discovery advertises: an id, the hook it answers, a title,
a description, its prefetch templates and usage requirements. The rule files
decide what it says; this module only knows its envelope.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from cds.hooks.models import ServiceDescriptor
from cds.yamlio import load_yaml

ServiceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-_.]+$", min_length=1)]


class ServiceDefinitionError(ValueError):
    """services.yaml is missing or invalid; the message starts with file:line."""


class ServiceDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ServiceId
    hook: Annotated[str, StringConstraints(min_length=1)]
    title: Annotated[str, StringConstraints(min_length=1)]
    description: Annotated[str, StringConstraints(min_length=1)]
    prefetch: dict[str, str] = Field(default_factory=dict)
    # Prefetch keys whose absence is tolerated (no 412): the service answers without them.
    optional_prefetch: frozenset[str] = frozenset()
    usage_requirements: str | None = None

    def descriptor(self) -> ServiceDescriptor:
        return ServiceDescriptor(
            hook=self.hook,
            title=self.title,
            description=self.description,
            id=self.id,
            prefetch=self.prefetch or None,
            usageRequirements=self.usage_requirements,
        )


class ServicesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    services: list[ServiceDefinition]


def load_services(path: Path, hook_namespace: str = "org.calciphylaxis-cds") -> tuple[ServiceDefinition, ...]:
    """Read services.yaml. ``{namespace}`` in a hook name is the configured reverse-domain namespace."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ServiceDefinitionError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ServiceDefinitionError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if isinstance(raw, dict) and isinstance(raw.get("services"), list):
        for entry in raw["services"]:
            if isinstance(entry, dict) and isinstance(entry.get("hook"), str):
                entry["hook"] = entry["hook"].replace("{namespace}", hook_namespace)
    try:
        parsed = ServicesFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ServiceDefinitionError(f"{path}: {loc}: {first['msg']}") from exc
    ids = [s.id for s in parsed.services]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ServiceDefinitionError(f"{path}: duplicate service id(s): {', '.join(duplicates)}")
    return tuple(parsed.services)
