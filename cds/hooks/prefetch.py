"""Prefetch: render templates and decide, per key, what the service has.

Each key of a service's prefetch is in one of four states in a request
(CDS Hooks 2.0 §prefetch): absent (fetch it from ``fhirServer`` or answer
412), ``null`` (no data: not missing), a resource or Bundle (use it), or an
OperationOutcome (the client failed: treat as missing).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cds.hooks.models import CDSRequest
from cds.hooks.services import ServiceDefinition

_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_TODAY = re.compile(r"^today\(\)\s*(?:([+-])\s*(\d+)\s*(days?|weeks?|months?|years?))?$")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
_DAYS_PER_UNIT = {"day": 1, "week": 7, "month": 30, "year": 365}


class PrefetchUnavailable(Exception):
    """Required data is neither prefetched nor fetchable: the service answers 412."""

    def __init__(self, keys: list[str], reason: str) -> None:
        super().__init__(reason)
        self.keys = keys
        self.reason = reason


class TemplateError(ValueError):
    """A prefetch template names a token the request cannot fill."""


def render_template(template: str, context: Mapping[str, Any], today: date) -> str:
    """Fill ``{{context.x}}``, the user tokens and ``{{today() - N days}}``."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("context."):
            value = context.get(token.removeprefix("context."))
            if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
                raise TemplateError(f"context has no primitive value for {token}")
            return str(value)
        if token in _USER_TOKENS:
            user = context.get("userId")
            prefix = f"{_USER_TOKENS[token]}/"
            if not isinstance(user, str) or not user.startswith(prefix):
                raise TemplateError(f"userId is not a {_USER_TOKENS[token]} reference")
            return user.removeprefix(prefix)
        relative = _TODAY.match(token)
        if relative:
            sign, amount, unit = relative.groups()
            days = 0 if amount is None else int(amount) * _DAYS_PER_UNIT[unit.rstrip("s")]
            return (today - timedelta(days=days) if sign == "-" else today + timedelta(days=days)).isoformat()
        raise TemplateError(f"unsupported prefetch token {{{{{token}}}}}")

    return _TOKEN.sub(substitute, template)


def is_operation_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


# fetch(query, request) -> resource or Bundle (or None when not found).
Fetcher = Callable[[str, CDSRequest], Awaitable[Any]]


@dataclass(frozen=True)
class PrefetchResult:
    data: dict[str, Any]  # key -> resource, Bundle or None
    fetched: tuple[str, ...] = ()  # keys the service fetched itself


async def complete_prefetch(
    service: ServiceDefinition,
    request: CDSRequest,
    today: date,
    fetch: Fetcher | None = None,
) -> PrefetchResult:
    """Every prefetch key of ``service``, from the request or fetched; 412 otherwise."""
    sent = request.prefetch or {}
    data: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for key, template in service.prefetch.items():
        if key in sent and not is_operation_outcome(sent[key]):
            data[key] = sent[key]
        else:
            missing[key] = template
    fetched: list[str] = []
    unavailable: list[str] = []
    for key, template in missing.items():
        if request.fhirServer is None or fetch is None:
            if key not in service.optional_prefetch:
                unavailable.append(key)
            continue
        try:
            query = render_template(template, request.context, today)
        except TemplateError:
            if key not in service.optional_prefetch:
                unavailable.append(key)
            continue
        data[key] = await fetch(query, request)
        fetched.append(key)
    if unavailable:
        reason = (
            "no fhirServer was given to fetch them"
            if request.fhirServer is None
            else "they could not be fetched from fhirServer"
        )
        raise PrefetchUnavailable(unavailable, f"required prefetch {', '.join(unavailable)} missing and {reason}")
    return PrefetchResult(data=data, fetched=tuple(fetched))
