"""The alert burden of a rule edit: one population screened under two rule sets, card by card.

``compare_rule_sets(export, base_rules, other_rules)`` is what ``cds screen --compare-rules``
prints and what the workbench's ``cds rules diff --population`` can call: per card family,
cards per 1,000 patients under each set and the delta; and the patients whose cards changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds.screen.run import ScreenResult, screen


@dataclass(frozen=True)
class FamilyDelta:
    family: str
    base_cards: int
    other_cards: int
    base_per_1000: float
    other_per_1000: float

    @property
    def delta_per_1000(self) -> float:
        return self.other_per_1000 - self.base_per_1000


@dataclass(frozen=True)
class ChangedPatient:
    patient_id: str
    added: tuple[str, ...]  # "family (indicator)" raised only under the other rule set
    removed: tuple[str, ...]  # raised only under the base rule set


@dataclass(frozen=True)
class Comparison:
    patients: int
    base_version: str
    other_version: str
    families: tuple[FamilyDelta, ...]
    changed: tuple[ChangedPatient, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "patients": self.patients,
            "base_version": self.base_version,
            "other_version": self.other_version,
            "families": [
                {
                    "family": f.family,
                    "base_cards": f.base_cards,
                    "other_cards": f.other_cards,
                    "base_per_1000": round(f.base_per_1000, 3),
                    "other_per_1000": round(f.other_per_1000, 3),
                    "delta_per_1000": round(f.delta_per_1000, 3),
                }
                for f in self.families
            ],
            "patients_changed": len(self.changed),
        }

    def table(self) -> str:
        lines = [
            f"{self.patients:,} patients; base {self.base_version}, other {self.other_version}",
            f"{'card family':48} {'base/1000':>10} {'other/1000':>10} {'delta/1000':>10}",
        ]
        for f in self.families:
            lines.append(f"{f.family:48} {f.base_per_1000:10.1f} {f.other_per_1000:10.1f} {f.delta_per_1000:+10.1f}")
        if not self.families:
            lines.append("(no cards under either rule set)")
        lines.append(f"{len(self.changed):,} patient(s) whose cards changed")
        return "\n".join(lines)


def _signature(row: dict[str, Any]) -> Counter[str]:
    return Counter(f"{card['family']} ({card['indicator']})" for card in row["cards"])


def comparison_from(result: ScreenResult) -> Comparison:
    """The comparison of a screen run with two rule sets (``screen(..., [base, other])``)."""
    if len(result.rows) != 2:
        raise ValueError("a comparison needs a run under exactly two rule sets")
    base_rows, other_rows = result.rows
    patients = len(base_rows)
    base_families = Counter(c["family"] for row in base_rows for c in row["cards"])
    other_families = Counter(c["family"] for row in other_rows for c in row["cards"])
    families = []
    for family in sorted(set(base_families) | set(other_families)):
        b, o = base_families[family], other_families[family]
        scale = 1000.0 / patients if patients else 0.0
        families.append(FamilyDelta(family, b, o, b * scale, o * scale))
    families.sort(key=lambda f: (-abs(f.delta_per_1000), f.family))
    changed = []
    for base, other in zip(base_rows, other_rows, strict=True):
        before, after = _signature(base), _signature(other)
        if before != after or base["error"] != other["error"]:
            changed.append(
                ChangedPatient(
                    base["patient_id"],
                    tuple(sorted((after - before).elements())),
                    tuple(sorted((before - after).elements())),
                )
            )
    changed.sort(key=lambda c: c.patient_id)
    return Comparison(patients, result.rule_versions[0], result.rule_versions[1], tuple(families), tuple(changed))


def compare_rule_sets(export: Path, base_rules: Path, other_rules: Path, **screen_options: Any) -> Comparison:
    """Screen ``export`` under both rule sets in one run (each patient read and shuffled once)."""
    return comparison_from(screen(export, [base_rules, other_rules], **screen_options))
