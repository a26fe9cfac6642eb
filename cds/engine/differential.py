"""Weighing the differential: prior odds x likelihood ratios -> posterior.

Each hypothesis is weighed on its own (they are not mutually exclusive, so the
posteriors are not normalised to sum to 1). Evidence items are assumed to be
conditionally independent given the hypothesis; cards state this.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cds.engine.model import DiagnosticTest, Hypothesis, Population

INDEPENDENCE_NOTE = (
    "Probabilities multiply the prior odds by each finding's likelihood ratio, assuming the findings are "
    "independent given the diagnosis; related findings can overstate certainty. This supports, and does not "
    "replace, clinical judgement."
)


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    rule_id: str
    rule_title: str
    hypothesis: str
    likelihood_ratio: float
    reference: str
    confidence: str
    test: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class NextTest:
    id: str
    title: str
    lr_positive: float
    lr_negative: float
    reference: str
    confidence: str


@dataclass(frozen=True, slots=True)
class HypothesisResult:
    id: str
    title: str
    prior: float
    posterior: float
    prior_reference: str
    evidence_for: tuple[EvidenceItem, ...]
    evidence_against: tuple[EvidenceItem, ...]
    next_test: NextTest | None
    # (cap id, product of the capped ratios, the ceiling) for each cap that lowered the posterior
    caps_applied: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Differential:
    population: str
    population_title: str
    hypotheses: tuple[HypothesisResult, ...]  # highest posterior first

    def get(self, hypothesis: str) -> HypothesisResult | None:
        return next((h for h in self.hypotheses if h.id == hypothesis), None)

    @property
    def top(self) -> HypothesisResult | None:
        return self.hypotheses[0] if self.hypotheses else None

    def as_list(self) -> list[dict[str, object]]:
        """Machine-readable form (response extension and trace)."""
        return [
            {
                "hypothesis": h.id,
                "prior": round(h.prior, 6),
                "posterior": round(h.posterior, 6),
                "evidence_for": [_evidence_dict(e) for e in h.evidence_for],
                "evidence_against": [_evidence_dict(e) for e in h.evidence_against],
                **({"next_test": h.next_test.id} if h.next_test else {}),
                **({"caps": [{"cap": c, "product": round(p, 4), "max": m} for c, p, m in h.caps_applied]}
                   if h.caps_applied else {}),
            }
            for h in self.hypotheses
        ]


def _evidence_dict(e: EvidenceItem) -> dict[str, object]:
    return {"rule": e.rule_id, "likelihood_ratio": e.likelihood_ratio, "reference": e.reference, "confidence": e.confidence}


def posterior_probability(prior: float, likelihood_ratios: Iterable[float]) -> float:
    """Bayes in odds form. Summing logs keeps long products of ratios finite."""
    if not 0 < prior < 1:
        raise ValueError(f"prior must be strictly between 0 and 1, got {prior}")
    log_odds = math.log(prior / (1 - prior)) + sum(math.log(lr) for lr in likelihood_ratios)
    if log_odds > 700:
        return 1.0
    odds = math.exp(log_odds)
    return odds / (1 + odds)


def select_population(populations: Iterable[Population], derived_names: set[str]) -> Population:
    default = None
    for population in populations:
        if population.default:
            default = population
        elif population.derived in derived_names:
            return population
    if default is None:
        raise ValueError("no default population")
    return default


def weigh(
    hypotheses: Mapping[str, Hypothesis],
    populations: Iterable[Population],
    derived_names: set[str],
    evidence: Iterable[EvidenceItem],
) -> Differential:
    population = select_population(populations, derived_names)
    by_hypothesis: dict[str, list[EvidenceItem]] = {}
    for item in evidence:
        by_hypothesis.setdefault(item.hypothesis, []).append(item)
    results = []
    for hyp in hypotheses.values():
        prior = next(p for p in hyp.priors if p.population == population.id)
        items = by_hypothesis.get(hyp.id, [])
        ratios = [e.likelihood_ratio for e in items]
        applied = []
        for cap in hyp.caps:
            product = math.prod(e.likelihood_ratio for e in items if e.rule_id in cap.rules)
            if product > cap.max_likelihood_ratio:
                ratios.append(cap.max_likelihood_ratio / product)  # brings the group's product down to the cap
                applied.append((cap.id, product, cap.max_likelihood_ratio))
        post = posterior_probability(prior.probability, ratios)
        done_tests = {e.test for e in items if e.test}
        results.append(
            HypothesisResult(
                id=hyp.id,
                title=hyp.title,
                prior=prior.probability,
                posterior=post,
                prior_reference=prior.reference or "",
                evidence_for=tuple(e for e in items if e.likelihood_ratio > 1),
                evidence_against=tuple(e for e in items if e.likelihood_ratio < 1),
                next_test=_next_test(hyp.tests, done_tests),
                caps_applied=tuple(applied),
            )
        )
    results.sort(key=lambda h: (-h.posterior, h.id))
    return Differential(population.id, population.title, tuple(results))


def _next_test(tests: Iterable[DiagnosticTest], done: set[str]) -> NextTest | None:
    """The declared test not yet done with the largest diagnostic odds ratio (LR+ / LR-)."""
    best = None
    for test in tests:
        if test.id in done:
            continue
        power = math.log(test.lr_positive / test.lr_negative)
        if best is None or power > best[0]:
            best = (power, test)
    if best is None:
        return None
    t = best[1]
    return NextTest(t.id, t.title, t.lr_positive, t.lr_negative, t.reference or "", t.confidence)
