"""Service definitions, declared in ``rules/services.yaml``.

A service is what discovery advertises: an id, the hook it answers, a title,
a description, its prefetch templates and usage requirements. The rule files
decide what it says; this module only knows its envelope.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from cds.hooks.models import ServiceDescriptor
from cds.yamlio import SafeLoader, load_yaml

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
    # Further service ids (URL path segments) under which this service is also offered for its
    # hook. CDS Hooks 2.0.1 §Discovery: "a CDS server can host multiple entries of CDS service
    # with the same id for different hooks", so an EHR that called `calciphylaxis-order-select`
    # at order-select calls the same id at order-sign and replaces the earlier cards instead of
    # showing the same warning twice ("update stale guidance"). The rules still see this
    # service's own ``id``; audit and feedback use the id the EHR called.
    also_at: tuple[ServiceId, ...] = ()

    def descriptor(self, service_id: str | None = None) -> ServiceDescriptor:
        return ServiceDescriptor(
            hook=self.hook,
            title=self.title,
            description=self.description,
            id=service_id or self.id,
            prefetch=self.prefetch or None,
            usageRequirements=self.usage_requirements,
        )

    def descriptors(self) -> list[ServiceDescriptor]:
        """Discovery entries: one under its own id, one under each ``also_at`` id."""
        return [self.descriptor(), *(self.descriptor(alias) for alias in self.also_at)]

    def offered_at(self, service_id: str) -> bool:
        return service_id == self.id or service_id in self.also_at


def find_service(
    services: tuple[ServiceDefinition, ...] | list[ServiceDefinition], service_id: str, hook: object = None
) -> ServiceDefinition | None:
    """The service a POST to ``/cds-services/{service_id}`` for ``hook`` reaches.

    With one service at that id it is that one (the caller then checks the hook and answers 400
    for another); with several (one per hook), the one for ``hook``.
    """
    offered = [s for s in services if s.offered_at(service_id)]
    if len(offered) <= 1:
        return offered[0] if offered else None
    return next((s for s in offered if s.hook == hook), next((s for s in offered if s.id == service_id), offered[0]))


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
    offered = [(alias, s.hook) for s in parsed.services for alias in (s.id, *s.also_at)]
    clashes = sorted({f"{i} ({hook})" for i, hook in offered if offered.count((i, hook)) > 1})
    if clashes:
        raise ServiceDefinitionError(
            f"{path}: one id offers the same hook twice: {', '.join(clashes)} (ids may be shared only across hooks)"
        )
    problems = prefetch_token_problems(path, text, parsed.services)
    if problems:
        raise ServiceDefinitionError("\n".join(problems))
    return tuple(parsed.services)


# CDS Hooks 2.0.1 §Prefetch tokens: the four user tokens and {{context.<field>}} for the hook's
# context fields whose "Prefetch Token" is Yes (HL7/cds-hooks-library). Anything else (a nested
# field, or the 3.0 STU's {{today() - N days}}) is not a 2.0 token: a 2.0 EHR cannot fill it.
USER_TOKENS = frozenset({"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"})
_COMMON_CONTEXT_TOKENS = frozenset({"userId", "patientId", "encounterId"})
CONTEXT_TOKENS_BY_HOOK = {
    "patient-view": _COMMON_CONTEXT_TOKENS,
    "encounter-start": _COMMON_CONTEXT_TOKENS,
    "order-select": _COMMON_CONTEXT_TOKENS,  # selections and draftOrders are not primitives
    "order-sign": _COMMON_CONTEXT_TOKENS,
}
REPORT_REVIEW_CONTEXT_TOKENS = _COMMON_CONTEXT_TOKENS | {"diagnosticReportId"}
_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def allowed_tokens(hook: str) -> frozenset[str]:
    if hook.endswith(".diagnosticreport-review"):
        context = REPORT_REVIEW_CONTEXT_TOKENS
    else:
        context = CONTEXT_TOKENS_BY_HOOK.get(hook, _COMMON_CONTEXT_TOKENS)
    return USER_TOKENS | {f"context.{name}" for name in context}


def prefetch_token_problems(path: Path, text: str, services: list[ServiceDefinition]) -> list[str]:
    """One ``file:line:col: message`` per prefetch token that CDS Hooks 2.0 does not define for the hook."""
    marks = _template_marks(text)
    problems = []
    for index, service in enumerate(services):
        allowed = allowed_tokens(service.hook)
        for key, template in service.prefetch.items():
            for match in _TOKEN.finditer(template):
                if match.group(1) in allowed:
                    continue
                line, column = marks.get((index, key), (0, 0))
                if line and column:
                    column += match.start()  # the token's own column in a plain one-line scalar
                where = f"{path}:{line}:{column}" if line else str(path)
                problems.append(
                    f"{where}: service {service.id!r} prefetch {key!r}: {match.group(0)} is not a CDS Hooks 2.0 "
                    f"prefetch token for {service.hook!r} (allowed: "
                    + ", ".join(f"{{{{{t}}}}}" for t in sorted(allowed))
                    + "); date-bounded data belongs in an optional key or a _count/_sort bound"
                )
    return problems


def _template_marks(text: str) -> dict[tuple[int, str], tuple[int, int]]:
    """(service index, prefetch key) -> (line, column), 1-based, of the template's scalar in the YAML."""
    marks: dict[tuple[int, str], tuple[int, int]] = {}
    try:
        root = yaml.compose(text, Loader=SafeLoader)  # libyaml where built: the same marks, 36 ms -> 0.2 ms
    except yaml.YAMLError:
        return marks
    if not isinstance(root, yaml.MappingNode):
        return marks
    for key_node, value_node in root.value:
        if key_node.value != "services" or not isinstance(value_node, yaml.SequenceNode):
            continue
        for index, service_node in enumerate(value_node.value):
            if not isinstance(service_node, yaml.MappingNode):
                continue
            for field_node, field_value in service_node.value:
                if field_node.value != "prefetch" or not isinstance(field_value, yaml.MappingNode):
                    continue
                for entry_key, entry_value in _merged_items(field_value):
                    mark = entry_value.start_mark
                    marks[(index, entry_key.value)] = (mark.line + 1, mark.column + 1)
    return marks


def _merged_items(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """A mapping's items with YAML merge keys (``<<: *anchor``) followed, as the loader sees them."""
    items: list[tuple[yaml.Node, yaml.Node]] = []
    for key, value in node.value:
        if key.tag == "tag:yaml.org,2002:merge" and isinstance(value, yaml.MappingNode):
            items.extend(_merged_items(value))
        else:
            items.append((key, value))
    return items
