"""Serial comparison of bone scans: response to treatment or progression.

Paul et al. aimed bone scintigraphy at treatment monitoring, and the interview in the
sources reports an interval decrease in uptake with response (knowledge sheet §6). No
validated quantitative threshold exists, so the comparison is qualitative: per body site,
soft-tissue uptake present before and absent now is "resolved", weaker now is "decreased",
stronger "increased", only now "new". A change the radiologist states in the later report
("interval decrease in the calf uptake") counts as well, so a single follow-up report is
enough when it compares itself with an earlier scan the EHR did not send.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from cds.facts import Fact
from cds.findings.knowledge import FindingsKnowledge
from cds.findings.model import Mention

_DECREASES = {"decreased", "resolved"}
_PROGRESSION = {"increased", "new"}


def compare_bone_scans(
    per_report: list[tuple[Any, list[Mention]]],
    knowledge: FindingsKnowledge,
    medications: Iterable[Fact],
) -> tuple[list[tuple[Any, list[Mention]]], list[Fact]]:
    """Mark changes on the latest bone scan's findings and derive response/progression facts."""
    scans = sorted(
        ((info, ms) for info, ms in per_report if info.modality in knowledge.bone_scan_modalities and info.date),
        key=lambda pair: (pair[0].date, pair[0].ref),
    )
    if not scans:
        return per_report, []
    latest_info, latest = scans[-1]
    prior = next(((i, ms) for i, ms in reversed(scans[:-1]) if i.date < latest_info.date), None)
    compare = knowledge.compare_concepts
    order = knowledge.intensity_order

    computed = (
        _site_changes(_positives(prior[1], compare, order), _positives(latest, compare, order))
        if prior is not None
        else {}
    )

    updated: list[Mention] = []
    for m in latest:
        if m.concept in compare and m.change is None and (m.site or "-") in computed:
            change = computed[m.site or "-"]
            # A denied finding can only be "resolved"; a present one anything but.
            if (change == "resolved") == m.negated:
                m = replace(m, change=change)
        updated.append(m)
    changes = {m.change for m in updated if m.concept in compare and m.change} | set(computed.values())

    per_report = [(info, updated if info.ref == latest_info.ref else ms) for info, ms in per_report]
    treated = any(
        f.kind == "medication"
        and f.get("drug_class") in knowledge.response_treatments
        and isinstance(f.get("start"), str)
        and str(f.get("start"))[:10] <= latest_info.date
        for f in medications
    )
    interval = None
    if prior is not None:
        from datetime import date

        interval = (date.fromisoformat(latest_info.date) - date.fromisoformat(prior[0].date)).days

    derived: list[Fact] = []

    def emit(name: str, text: str) -> None:
        attrs: dict[str, Any] = {
            "name": name,
            "text": text,
            "flag": treated,
            "source": latest_info.ref,
            "date": latest_info.date,
        }
        if interval is not None:
            attrs["value"] = interval
        derived.append(Fact(kind="derived", id=f"derived:{name}:{latest_info.ref}", attrs=attrs))

    if changes & _PROGRESSION:
        emit("bone-scan-progression", "new" if "new" in changes and "increased" not in changes else "increased")
    if changes & _DECREASES:
        text = "resolved" if changes & _DECREASES == {"resolved"} else "decreased"
        emit("bone-scan-response" if treated else "bone-scan-change", text)
    if changes and changes <= {"stable"}:
        emit("bone-scan-change", "stable")
    return per_report, derived


def _positives(ms: list[Mention], compare: frozenset[str], order: tuple[str, ...]) -> dict[str, int | None]:
    """Site ("-" for none) -> the strongest intensity rank of the asserted compared findings there."""
    out: dict[str, int | None] = {}
    for m in ms:
        if m.concept in compare and not m.negated and m.certainty in ("definite", "probable"):
            rank = order.index(m.intensity) if m.intensity in order else None
            site = m.site or "-"
            out[site] = rank if out.get(site) is None else max(out[site] or 0, rank or 0)
    return out


def _site_changes(before: dict[str, int | None], now: dict[str, int | None]) -> dict[str, str]:
    """Site -> resolved | decreased | increased | stable | new, from the prior scan to the latest."""
    computed: dict[str, str] = {}
    for site, rank in before.items():
        if site not in now:
            # Uptake without a site ("decreased uptake at all previously involved sites")
            # cannot be matched to a place: it is compared only with uptake without a site.
            if site != "-":
                computed[site] = "resolved"
        elif rank is not None and (current := now[site]) is not None and current != rank:
            computed[site] = "decreased" if current < rank else "increased"
        else:
            computed[site] = "stable"
    for site in now:
        if site not in before and site != "-":
            computed[site] = "new"
    return computed
