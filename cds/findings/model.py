"""Plain data of the findings stage.

A ``Mention`` is one finding or impression read from one report, coded or from
text, before it is tied to a patient's evaluation (lesion sites, "now"). It is
what the per-report cache holds; ``cds.findings.extract`` turns mentions into
``finding`` facts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CERTAINTY_RANK = {"definite": 3, "probable": 2, "possible": 1, "unlikely": 0}


@dataclass(frozen=True, slots=True)
class Mention:
    concept: str  # finding value-set id (rules/valuesets/imaging.yaml)
    kind: str = "finding"  # finding | impression
    hypothesis: str | None = None  # impressions: the hypothesis id the radiologist names
    site: str | None = None
    laterality: str | None = None
    site_class: str | None = None
    distribution: str | None = None
    symmetry: str | None = None
    intensity: str | None = None
    layer: str | None = None
    pattern: str | None = None
    negated: bool = False
    certainty: str = "definite"
    historical: bool = False
    change: str | None = None
    attributed_to: str | None = None
    section: str | None = None
    extraction: str = "text"  # text | coded
    # Character span in the parsed text (text mentions only): for tests and traces.
    start: int = -1
    end: int = -1

    def key(self) -> tuple[object, ...]:
        """Identity within one report: the same finding read twice (FINDINGS and IMPRESSION,
        or coded and text) collapses to one fact."""
        return (self.concept, self.site, self.laterality, self.negated)

    def merged_with(self, other: Mention) -> Mention:
        """Combine two readings of the same finding. Coded values win over text; otherwise
        the first reading wins and the second fills what it left open. Certainty keeps the
        more certain reading (a finding stated plainly in FINDINGS and hedged in IMPRESSION
        was still seen)."""
        first, second = (other, self) if other.extraction == "coded" and self.extraction != "coded" else (self, other)
        filled = {
            name: getattr(second, name)
            for name in (
                "hypothesis",
                "site_class",
                "distribution",
                "symmetry",
                "intensity",
                "layer",
                "pattern",
                "change",
                "attributed_to",
                "section",
            )
            if getattr(first, name) is None and getattr(second, name) is not None
        }
        if first.extraction != "coded" and CERTAINTY_RANK[second.certainty] > CERTAINTY_RANK[first.certainty]:
            filled["certainty"] = second.certainty
        if first.historical and not second.historical:
            filled["historical"] = False
        return replace(first, **filled) if filled else first
