"""Weighing the differential: the model of docs/adr/0004-differential-model.md.

Three kinds of hypothesis (``Hypothesis.kind``):

- *causes* of the presenting lesion are mutually exclusive and normalised together with an explicit
  "other / not listed" cause whose prior is what the listed causes leave:
  ``P(c | E) = prior_c * L_c / (sum_j prior_j * L_j + prior_other)``, where ``L_c`` is the product of the
  group ratios for c (each ratio is P(finding | c) / P(finding | other));
- *explainers* of findings (renal-failure tracer clearance, ...) are weighed as yes/no questions; one that is
  more likely than not takes up the findings it explains, which then count for no cause;
- *coexisting* conditions (wound infection or sepsis) are weighed as yes/no questions too, never as rivals.

The weighing itself is cds.engine.weighing (``weigh``); this module holds its data, arithmetic and display.
Evidence is combined per declared group (``EvidenceGroup.combine``) before it is multiplied. Every ratio has
an interval; the posterior's band is the interval arithmetic of the ends (the lowest a hypothesis can get is
its own ratios at their low ends and every rival's at their high ends). Everything here is plain, deterministic
arithmetic on the evidence list, so both engine backends give the same differential.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from cds.engine.model import EvidenceGroup, Population

EXTENSION_VERSION = "2"
OTHER_CAUSE = "other"
# An explainer more likely than this takes up the findings it explains.
EXPLAINER_TAKES_FINDINGS_AT = 0.5
# Cards never show a point or band end above this or below DISPLAY_FLOOR (issue 12: uncalibrated estimates).
DISPLAY_CEILING = 0.95
DISPLAY_FLOOR = 0.01
# Band words by the displayed point; the same number decides word and figure, so they cannot contradict.
BAND_WORDS: tuple[tuple[float, str], ...] = (
    (0.05, "unlikely"),
    (0.2, "low"),
    (0.5, "possible"),
    (0.8, "probable"),
    (2.0, "high"),
)
# Judgement range for a ratio with neither `interval` nor `counts`: LR^0.5 .. LR^1.5 (half to one and a half times
# its log-weight). Stated in the ADR; a weight that is a judgement is treated as uncertain by half its own size.
JUDGEMENT_EXPONENTS = (0.5, 1.5)
Z_95 = 1.959963984540054

INDEPENDENCE_NOTE = (
    "Estimates compare the listed causes of this lesion with each other and with causes not listed; related "
    "findings are combined in groups, and the range shows the uncertainty of each weight. Figures are "
    "uncalibrated. Infection can coexist and is flagged separately. This supports, and does not replace, "
    "clinical judgement."
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
    low: float | None = None  # interval of the ratio; None: the judgement range
    high: float | None = None

    @property
    def interval(self) -> tuple[float, float]:
        if self.low is not None and self.high is not None:
            return self.low, self.high
        return judgement_range(self.likelihood_ratio)


@dataclass(frozen=True, slots=True)
class NextTest:
    id: str
    title: str
    lr_positive: float
    lr_negative: float
    reference: str
    confidence: str


@dataclass(frozen=True, slots=True)
class GroupResult:
    """What one evidence group contributed to one hypothesis."""

    group: str
    combine: str
    likelihood_ratio: float
    low: float
    high: float
    rules: tuple[str, ...]
    counted: bool = True  # False: a fallback group left out because feature evidence exists


@dataclass(frozen=True, slots=True)
class Band:
    """Plain data for the card layer: the point, the band and one word, all already clamped for display."""

    point: float
    low: float
    high: float
    word: str


@dataclass(frozen=True, slots=True)
class HypothesisResult:
    id: str
    title: str
    kind: str
    prior: float
    posterior: float
    low: float
    high: float
    prior_reference: str
    evidence_for: tuple[EvidenceItem, ...]
    evidence_against: tuple[EvidenceItem, ...]
    next_test: NextTest | None
    groups: tuple[GroupResult, ...] = ()
    took: tuple[str, ...] = ()  # explainers: the rules whose findings this explainer took up
    explained_by: tuple[tuple[str, str], ...] = ()  # (rule, explainer) findings not counted for this hypothesis
    time_critical: float | None = None

    @property
    def band(self) -> Band:
        return display_band(self.posterior, self.low, self.high)

    @property
    def gate_open(self) -> bool:
        """A time-critical hypothesis at or above its safety threshold."""
        return self.time_critical is not None and self.posterior >= self.time_critical


@dataclass(frozen=True, slots=True)
class Differential:
    population: str
    population_title: str
    hypotheses: tuple[HypothesisResult, ...]  # the causes, highest posterior first
    other: HypothesisResult | None = None
    explainers: tuple[HypothesisResult, ...] = ()
    coexisting: tuple[HypothesisResult, ...] = ()
    in_population: bool = True
    _index: dict[str, HypothesisResult] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for h in (*self.hypotheses, *self.explainers, *self.coexisting):
            self._index[h.id] = h

    def get(self, hypothesis: str) -> HypothesisResult | None:
        return self._index.get(hypothesis)

    @property
    def top(self) -> HypothesisResult | None:
        return self.hypotheses[0] if self.hypotheses else None

    def best_other_than(self, hypothesis: str | None) -> HypothesisResult | None:
        """The best cause other than `hypothesis` (a card's subject): what "alternative" means on a card."""
        return next((h for h in self.hypotheses if h.id != hypothesis), None)

    @property
    def time_critical(self) -> tuple[HypothesisResult, ...]:
        """Time-critical causes and coexisting conditions at or above their threshold, highest first."""
        causes = [h for h in self.hypotheses if h.gate_open]
        coexisting = sorted((h for h in self.coexisting if h.gate_open), key=lambda h: (-h.posterior, h.id))
        return (*causes, *coexisting)  # a cause of the lesion first, then what may coexist with it

    def as_list(self) -> list[dict[str, object]]:
        """The ranked causes (kept for readers of the version-1 shape, e.g. traces)."""
        return [_result_dict(h) for h in self.hypotheses]

    def as_extension(self) -> dict[str, object]:
        """Machine-readable form for the response extension; `version` tells an EHR the shape."""
        return {
            "version": EXTENSION_VERSION,
            "population": self.population,
            "in_population": self.in_population,
            "causes": [_result_dict(h) for h in self.hypotheses],
            "other": _result_dict(self.other) if self.other else None,
            "explainers": [_result_dict(h) for h in self.explainers],
            "coexisting": [_result_dict(h) for h in self.coexisting],
            "time_critical": [h.id for h in self.time_critical],
        }


def _result_dict(h: HypothesisResult) -> dict[str, object]:
    out: dict[str, object] = {
        "hypothesis": h.id,
        "kind": h.kind,
        "prior": round(h.prior, 6),
        "posterior": round(h.posterior, 6),
        "band": [round(h.low, 6), round(h.high, 6)],
        "evidence_for": [_evidence_dict(e) for e in h.evidence_for],
        "evidence_against": [_evidence_dict(e) for e in h.evidence_against],
    }
    if h.groups:
        out["groups"] = [
            {
                "group": g.group,
                "combine": g.combine,
                "likelihood_ratio": round(g.likelihood_ratio, 4),
                "interval": [round(g.low, 4), round(g.high, 4)],
                "rules": list(g.rules),
                "counted": g.counted,
            }
            for g in h.groups
        ]
    if h.next_test:
        out["next_test"] = h.next_test.id
    if h.took:
        out["explains_findings"] = list(h.took)
    if h.explained_by:
        out["findings_explained_elsewhere"] = [{"rule": r, "explainer": x} for r, x in h.explained_by]
    if h.time_critical is not None:
        out["time_critical_threshold"] = h.time_critical
    return out


def _evidence_dict(e: EvidenceItem) -> dict[str, object]:
    low, high = e.interval
    return {
        "rule": e.rule_id,
        "likelihood_ratio": e.likelihood_ratio,
        "interval": [round(low, 4), round(high, 4)],
        "reference": e.reference,
        "confidence": e.confidence,
    }


# ---------------------------------------------------------------------- intervals
@functools.lru_cache(maxsize=4096)  # a rule set has a few dozen ratios; two powers each, per evidence item
def judgement_range(lr: float) -> tuple[float, float]:
    a, b = (lr ** JUDGEMENT_EXPONENTS[0], lr ** JUDGEMENT_EXPONENTS[1])
    return (min(a, b), max(a, b))


def lr_interval_from_counts(tp: int, fn: int, fp: int, tn: int, positive: bool = True) -> tuple[float, float, float]:
    """(point, low, high) of LR+ (or LR- when ``positive`` is False) with its 95% interval by the log method
    (Simel, Samsa & Matchar 1991). A zero cell gets 0.5 added to every cell (Haldane), as is usual."""
    if 0 in (tp, fn, fp, tn):
        tp, fn, fp, tn = tp + 0.5, fn + 0.5, fp + 0.5, tn + 0.5  # type: ignore[assignment]
    diseased, healthy = tp + fn, fp + tn
    if positive:
        a, n1, b, n2 = tp, diseased, fp, healthy
    else:
        a, n1, b, n2 = fn, diseased, tn, healthy
    point = (a / n1) / (b / n2)
    se = math.sqrt(1 / a - 1 / n1 + 1 / b - 1 / n2)
    return point, point * math.exp(-Z_95 * se), point * math.exp(Z_95 * se)


# ---------------------------------------------------------------------- display
def clamp_display(p: float) -> float:
    return min(max(p, DISPLAY_FLOOR), DISPLAY_CEILING)


def band_word(p: float) -> str:
    """The word for the number as shown (rounded to whole percent), so the two cannot disagree."""
    shown = round(clamp_display(p) * 100) / 100
    return next(word for limit, word in BAND_WORDS if shown < limit)


def display_band(point: float, low: float, high: float) -> Band:
    return Band(clamp_display(point), clamp_display(low), clamp_display(high), band_word(point))


def percent(p: float) -> str:
    """A probability as a card shows it: never above 95% nor below 1%."""
    if p < DISPLAY_FLOOR:
        return "<1%"
    if p > DISPLAY_CEILING:
        return "95%"
    return f"{p * 100:.0f}%"


# ---------------------------------------------------------------------- arithmetic
def posterior_probability(prior: float, likelihood_ratios: Iterable[float]) -> float:
    """Bayes in odds form for one yes/no question. Summing logs keeps long products of ratios finite."""
    if not 0 < prior < 1:
        raise ValueError(f"prior must be strictly between 0 and 1, got {prior}")
    return probability_from_log_odds(math.log(prior / (1 - prior)) + sum(math.log(lr) for lr in likelihood_ratios))


def probability_from_log_odds(log_odds: float) -> float:
    """The probability whose log-odds these are; 0 or 1 past +-700, where exp would overflow."""
    if log_odds > 700:
        return 1.0
    if log_odds < -700:
        return 0.0
    odds = math.exp(log_odds)
    return odds / (1 + odds)


def combine(group: EvidenceGroup | None, ratios: list[float]) -> float:
    """One group's ratio from its members' ratios (the rule the group states)."""
    if group is None or group.combine in ("independent", "fallback"):
        return math.prod(ratios)
    if group.combine == "max":
        up = max((r for r in ratios if r > 1), default=1.0)
        down = min((r for r in ratios if r < 1), default=1.0)
        return up * down
    cap = group.max_likelihood_ratio or 1.0  # capped-product
    return min(max(math.prod(ratios), 1 / cap), cap)


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
