"""Weighing the differential: the model of docs/adr/0004-differential-model.md.

Three kinds of hypothesis (``Hypothesis.kind``):

- *causes* of the presenting lesion are mutually exclusive and normalised together with an explicit
  "other / not listed" cause whose prior is what the listed causes leave:
  ``P(c | E) = prior_c * L_c / (sum_j prior_j * L_j + prior_other)``, where ``L_c`` is the product of the
  group ratios for c (each ratio is P(finding | c) / P(finding | other));
- *explainers* of findings (renal-failure tracer clearance, ...) are weighed as yes/no questions; one that is
  more likely than not takes up the findings it explains, which then count for no cause;
- *coexisting* conditions (wound infection or sepsis) are weighed as yes/no questions too, never as rivals.

Evidence is combined per declared group (``EvidenceGroup.combine``) before it is multiplied. Every ratio has
an interval; the posterior's band is the interval arithmetic of the ends (the lowest a hypothesis can get is
its own ratios at their low ends and every rival's at their high ends). Everything here is plain, deterministic
arithmetic on the evidence list, so both engine backends give the same differential.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cds.engine.model import DiagnosticTest, EvidenceGroup, Hypothesis, Population

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
    log_odds = math.log(prior / (1 - prior)) + sum(math.log(lr) for lr in likelihood_ratios)
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


def _grouped(
    items: list[EvidenceItem], groups: Mapping[str, EvidenceGroup], group_of: Mapping[str, str]
) -> tuple[tuple[GroupResult, ...], float, float, float]:
    """Group results and the hypothesis's combined ratio (point, low, high)."""
    if not items:
        return (), 1.0, 1.0, 1.0
    by_group: dict[str, list[EvidenceItem]] = {}
    for e in items:
        by_group.setdefault(group_of.get(e.rule_id, e.rule_id), []).append(e)
    has_features = any(groups.get(g) is None or groups[g].combine != "fallback" for g in by_group)
    results = []
    point = low = high = 1.0
    for gid in sorted(by_group):
        members = by_group[gid]
        group = groups.get(gid)
        g_point = combine(group, [e.likelihood_ratio for e in members])
        g_low = combine(group, [e.interval[0] for e in members])
        g_high = combine(group, [e.interval[1] for e in members])
        counted = not (group is not None and group.combine == "fallback" and has_features)
        results.append(
            GroupResult(
                gid,
                group.combine if group else "independent",
                g_point,
                g_low,
                g_high,
                tuple(e.rule_id for e in members),
                counted,
            )
        )
        if counted:
            point, low, high = point * g_point, low * g_low, high * g_high
    return tuple(results), point, low, high


_GROUP_OF_CACHE: dict[int, tuple[Mapping[str, EvidenceGroup], dict[str, str]]] = {}


def _group_of(groups: Mapping[str, EvidenceGroup]) -> dict[str, str]:
    """rule id -> group id, computed once per loaded rule set (a rule set's groups never change)."""
    cached = _GROUP_OF_CACHE.get(id(groups))
    if cached is not None and cached[0] is groups:
        return cached[1]
    mapping = {rule: g.id for g in groups.values() for rule in g.members}
    if len(_GROUP_OF_CACHE) > 8:  # hot reloads: keep a handful
        _GROUP_OF_CACHE.clear()
    _GROUP_OF_CACHE[id(groups)] = (groups, mapping)
    return mapping


def weigh(
    hypotheses: Mapping[str, Hypothesis],
    populations: Iterable[Population],
    derived_names: set[str],
    evidence: Iterable[EvidenceItem],
    groups: Mapping[str, EvidenceGroup] | None = None,
) -> Differential:
    groups = groups or {}
    group_of = _group_of(groups)
    population = select_population(populations, derived_names)
    by_hypothesis: dict[str, list[EvidenceItem]] = {}
    for item in evidence:
        by_hypothesis.setdefault(item.hypothesis, []).append(item)

    pid = population.id

    def prior_of(hyp: Hypothesis) -> tuple[float, str]:
        for prior in hyp.priors:
            if prior.population == pid:
                return prior.probability, prior.reference or ""
        raise ValueError(f"{hyp.id}: no prior for population {pid!r}")  # the loader refuses this (E023)

    # 1. Explainers: yes/no; one more likely than not takes up the findings it explains.
    explainers: list[HypothesisResult] = []
    taken: dict[str, str] = {}
    weighing_rules = {e.rule_id for items in by_hypothesis.values() for e in items}
    for hyp in hypotheses.values():
        if hyp.kind != "explainer":
            continue
        prior, ref = prior_of(hyp)
        items = by_hypothesis.get(hyp.id, [])
        grouped, point, low, high = _grouped(items, groups, group_of)
        post = posterior_probability(prior, [point])
        took = tuple(r for r in hyp.explains if post > EXPLAINER_TAKES_FINDINGS_AT and r in weighing_rules)
        for rule in took:
            taken.setdefault(rule, hyp.id)
        explainers.append(
            _result(
                hyp,
                prior,
                ref,
                post,
                posterior_probability(prior, [low]),
                posterior_probability(prior, [high]),
                items,
                grouped,
                took=took,
            )
        )

    # 2. Causes and coexisting conditions, with the taken-up findings removed.
    causes: list[
        tuple[
            Hypothesis,
            float,
            str,
            list[EvidenceItem],
            tuple[GroupResult, ...],
            float,
            float,
            float,
            tuple[tuple[str, str], ...],
        ]
    ] = []
    coexisting = []
    for hyp in hypotheses.values():
        if hyp.kind == "explainer":
            continue
        prior, ref = prior_of(hyp)
        all_items = by_hypothesis.get(hyp.id, [])
        items = [e for e in all_items if e.rule_id not in taken]
        explained = tuple((e.rule_id, taken[e.rule_id]) for e in all_items if e.rule_id in taken)
        grouped, point, low, high = _grouped(items, groups, group_of)
        if hyp.kind == "coexisting":
            coexisting.append(
                _result(
                    hyp,
                    prior,
                    ref,
                    posterior_probability(prior, [point]),
                    posterior_probability(prior, [low]),
                    posterior_probability(prior, [high]),
                    items,
                    grouped,
                    explained=explained,
                )
            )
        else:
            causes.append((hyp, prior, ref, items, grouped, point, low, high, explained))

    other_prior = 1.0 - sum(c[1] for c in causes)
    if other_prior <= 0:
        raise ValueError(f"the causes' priors in population {population.id!r} leave nothing for 'other'")
    # Log-space weights keep long products finite.
    w_point = [math.log(c[1]) + math.log(c[5]) for c in causes]
    w_low = [math.log(c[1]) + math.log(c[6]) for c in causes]
    w_high = [math.log(c[1]) + math.log(c[7]) for c in causes]
    log_other = math.log(other_prior)
    point_total = _logsumexp([*w_point, log_other])
    high_total = _logsumexp([*w_high, log_other])
    low_total = _logsumexp([*w_low, log_other])
    # Lowest: own ratio low, every rival high; highest: own high, every rival low. The rivals' sums leave one
    # cause out; prefix and suffix sums give them all in one pass without subtracting (no cancellation).
    rivals_high, rivals_low = _leave_one_out(w_high, log_other), _leave_one_out(w_low, log_other)
    results = []
    for i, (hyp, prior, ref, items, grouped, _p, _l, _h, explained) in enumerate(causes):
        post = math.exp(w_point[i] - point_total)
        low = 1 / (1 + math.exp(min(rivals_high[i] - w_low[i], 700.0)))
        high = 1 / (1 + math.exp(min(rivals_low[i] - w_high[i], 700.0)))
        results.append(_result(hyp, prior, ref, post, low, high, items, grouped, explained=explained))
    results.sort(key=lambda h: (-h.posterior, h.id))
    other_post = math.exp(log_other - point_total)
    other = HypothesisResult(
        id=OTHER_CAUSE,
        title="Another cause not listed",
        kind="cause",
        prior=other_prior,
        posterior=other_post,
        low=math.exp(log_other - high_total),
        high=math.exp(log_other - low_total),
        prior_reference="",
        evidence_for=(),
        evidence_against=(),
        next_test=None,
    )
    coexisting.sort(key=lambda h: (-h.posterior, h.id))
    explainers.sort(key=lambda h: (-h.posterior, h.id))
    return Differential(
        population.id,
        population.title,
        tuple(results),
        other,
        tuple(explainers),
        tuple(coexisting),
        in_population=population.default is False,
    )


def _leave_one_out(logs: list[float], log_other: float) -> list[float]:
    """log(sum of exp(logs) without element i, plus exp(log_other)) for every i."""
    top = max([*logs, log_other])
    terms = [math.exp(v - top) for v in logs]
    prefix = [0.0]
    for t in terms:
        prefix.append(prefix[-1] + t)
    suffix = [0.0]
    for t in reversed(terms):
        suffix.append(suffix[-1] + t)
    suffix.reverse()
    other = math.exp(log_other - top)
    return [top + math.log(prefix[i] + suffix[i + 1] + other) for i in range(len(terms))]


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _result(
    hyp: Hypothesis,
    prior: float,
    ref: str,
    post: float,
    low: float,
    high: float,
    items: list[EvidenceItem],
    grouped: tuple[GroupResult, ...],
    took: tuple[str, ...] = (),
    explained: tuple[tuple[str, str], ...] = (),
) -> HypothesisResult:
    done_tests = {e.test for e in items if e.test}
    return HypothesisResult(
        id=hyp.id,
        title=hyp.title,
        kind=hyp.kind,
        prior=prior,
        posterior=post,
        low=min(low, post),
        high=max(high, post),
        prior_reference=ref,
        evidence_for=tuple(e for e in items if e.likelihood_ratio > 1),
        evidence_against=tuple(e for e in items if e.likelihood_ratio < 1),
        next_test=_next_test(hyp.tests, done_tests),
        groups=grouped,
        took=took,
        explained_by=explained,
        time_critical=hyp.time_critical,
    )


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
