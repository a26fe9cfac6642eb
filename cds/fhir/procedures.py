"""Procedures -> one procedure fact per concept: the latest occurrence plus first date and count.

One fact per concept rather than per resource: a dialysis patient has hundreds of
dialysis sessions, and rules ask "ever", "how recently" and "since when"
(dialysis vintage), not about each session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from cds.facts import Fact
from cds.fhir.conditions import body_site
from cds.fhir.dates import parse_date, years_between
from cds.fhir.intake import Intake, iter_codings, reference_key
from cds.fhir.terminology import CodeMatch, Terminology, canonical_system, recognition_attrs

COUNTED_STATUSES = frozenset({"completed", "in-progress"})


def performed(resource: Mapping[str, Any]) -> tuple[date | None, str]:
    """The day a procedure was performed (period end, else start) and a sort key."""
    raw = resource.get("performedDateTime")
    period = resource.get("performedPeriod")
    if raw is None and isinstance(period, (dict, Mapping)):
        raw = period.get("end") or period.get("start")
    if not isinstance(raw, str):
        return None, ""
    return parse_date(raw), raw


def procedure_facts(
    resources: Sequence[Mapping[str, Any]], term: Terminology, intake: Intake, today: date
) -> list[Fact]:
    # concept -> [(day, sort_key, resource, code, system, match)]
    by_concept: dict[str, list[tuple[date, str, Mapping[str, Any], str, str, CodeMatch]]] = {}
    for resource in resources:
        matches, withheld = term.recognise([resource.get("code")], ("procedure",), intake.gaps, "Procedure")
        for note in withheld:
            intake.warn(resource, note)
        # Lean check here; the full R4B model runs on the rows a fact reports (below),
        # as for Observations: hundreds of dialysis sessions would otherwise cost ~0.2 ms each.
        if not matches or not intake.validate_procedure_lean(resource):
            continue
        if resource.get("status") not in COUNTED_STATUSES:
            continue
        day, sort_key = performed(resource)
        if day is None or day > today:
            continue
        codings = list(iter_codings(resource.get("code")))
        for vs_id, match in matches.items():
            coding = next(
                (c for c in codings if any(m.valueset == vs_id for m in term.match(c.get("system"), c.get("code")))),
                {},
            )
            by_concept.setdefault(vs_id, []).append(
                (
                    day,
                    sort_key,
                    resource,
                    str(coding.get("code", "")),
                    canonical_system(coding.get("system")) or "",
                    match,
                )
            )
    facts = []
    for vs_id in sorted(by_concept):
        rows = sorted(by_concept[vs_id], key=lambda r: (r[0], r[1]))
        # The latest row is the fact's source and the earliest gives first_date (dialysis
        # vintage): both must pass the full model; an invalid one is dropped for the next.
        while rows and not intake.validate_full(rows[-1][2]):
            rows.pop()
        while rows and not intake.validate_full(rows[0][2]):
            rows.pop(0)
        if not rows:
            continue
        first_day = rows[0][0]
        day, _, resource, code, system, match = rows[-1]
        ref = reference_key(resource, "Procedure")
        attrs: dict[str, Any] = {
            "concept": vs_id,
            "status": resource["status"],
            "date": day.isoformat(),
            "days_ago": (today - day).days,
            "first_date": first_day.isoformat(),
            "years_since_first": years_between(first_day, today),
            "count": len(rows),
            "code_confidence": match.confidence,
            "source": ref,
            **recognition_attrs(match),
        }
        if code:
            attrs["code"] = code
            attrs["system"] = system
        outcome = resource.get("outcome")
        if isinstance(outcome, (dict, Mapping)):
            text = outcome.get("text") or next(
                (c.get("display") for c in iter_codings(outcome) if c.get("display")), None
            )
            if isinstance(text, str):
                attrs["outcome"] = text.lower()
        attrs.update(body_site(resource.get("bodySite"), term))
        facts.append(Fact("procedure", f"procedure:{vs_id}", attrs))
    return facts
