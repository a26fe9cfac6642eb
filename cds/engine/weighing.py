"""Weighing the differential (docs/adr/0004-differential-model.md; the data and arithmetic are
cds.engine.differential).

What does not depend on the patient is worked out once per rule set and population (``_WeighPlan``): each
hypothesis's prior and its log-odds, its next tests ranked, and the whole result of an explainer or coexisting
condition that no evidence weighs on. And the differential of an evaluation is a function of the rule set and of
the evidence items of the rules that fired, nothing else of the patient; few combinations occur, so each plan
keeps the differentials it weighed by their evidence (bounded). Both give exactly the floats of the plain
weighing: tests/engine/test_weigh_plan.py compares them on generated evidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from cds.engine.differential import (
    EXPLAINER_TAKES_FINDINGS_AT,
    OTHER_CAUSE,
    Differential,
    EvidenceItem,
    GroupResult,
    HypothesisResult,
    NextTest,
    combine,
    posterior_probability,
    probability_from_log_odds,
    select_population,
)
from cds.engine.model import EvidenceGroup, Hypothesis, Population

# Differentials kept per rule set and population, by their evidence (see _WeighPlan.weighed).
WEIGHED_MEMO_SIZE = 256  # about 8 KB each (tracemalloc, synthetic-100): 2 MB at most per plan


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
        intervals = [e.interval for e in members]
        g_point = combine(group, [e.likelihood_ratio for e in members])
        g_low = combine(group, [low for low, _ in intervals])
        g_high = combine(group, [high for _, high in intervals])
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


@dataclass(frozen=True, slots=True)
class _HypothesisPlan:
    """What weighing needs of one hypothesis in one population, none of which depends on the patient."""

    hyp: Hypothesis
    prior: float
    ref: str
    log_prior: float  # a cause's weight before evidence
    log_prior_odds: float  # posterior_probability's first term
    ranked_tests: tuple[tuple[str, NextTest], ...]  # by diagnostic odds ratio, highest first; ties as declared
    # The result when no evidence weighs on it (explainers and coexisting conditions: nothing else can move it).
    bare: HypothesisResult | None


@dataclass(frozen=True, slots=True)
class _WeighPlan:
    group_of: dict[str, str]  # rule id -> group id
    explainers: tuple[_HypothesisPlan, ...]
    others: tuple[_HypothesisPlan, ...]  # causes and coexisting conditions, in declared order
    other_prior: float
    log_other: float
    # The evidence of an evaluation -> its differential. The differential is a function of the rule set and of
    # which evidence rules fired (nothing of the patient but that), and few combinations occur; bounded.
    weighed: dict[tuple[EvidenceItem, ...], Differential] = field(default_factory=dict, compare=False)


# (id(hypotheses), id(groups), population) -> (hypotheses, groups, the plan). The mappings are kept so that their
# ids stay theirs; a rule set is loaded once per start or reload, so the few entries are dropped wholesale when full.
_PLANS: dict[tuple[int, int, str], tuple[Mapping[str, Hypothesis], Mapping[str, EvidenceGroup], _WeighPlan]] = {}


def _weigh_plan(
    hypotheses: Mapping[str, Hypothesis], groups: Mapping[str, EvidenceGroup], population: Population
) -> _WeighPlan:
    """Everything of a rule set's differential that does not depend on the patient, once per rule set and
    population (a loaded rule set never changes: its models are frozen)."""
    key = (id(hypotheses), id(groups), population.id)
    cached = _PLANS.get(key)
    if cached is not None and cached[0] is hypotheses and cached[1] is groups:
        return cached[2]
    pid = population.id
    explainers: list[_HypothesisPlan] = []
    others: list[_HypothesisPlan] = []
    for hyp in hypotheses.values():
        prior, ref = _prior_of(hyp, pid)
        ranked = sorted(hyp.tests, key=lambda t: -math.log(t.lr_positive / t.lr_negative))  # stable: ties as declared
        tests = tuple(
            (t.id, NextTest(t.id, t.title, t.lr_positive, t.lr_negative, t.reference or "", t.confidence))
            for t in ranked
        )
        hp = _HypothesisPlan(hyp, prior, ref, math.log(prior), math.log(prior / (1 - prior)), tests, None)
        if hyp.kind == "cause":
            others.append(hp)
            continue
        post = posterior_probability(prior, [1.0])
        bare = _result(hp, post, post, post, [], ())
        (explainers if hyp.kind == "explainer" else others).append(replace(hp, bare=bare))
    other_prior = 1.0 - sum(p.prior for p in others if p.hyp.kind == "cause")
    if other_prior <= 0:
        raise ValueError(f"the causes' priors in population {pid!r} leave nothing for 'other'")
    plan = _WeighPlan(
        {rule: g.id for g in groups.values() for rule in g.members},
        tuple(explainers),
        tuple(others),
        other_prior,
        math.log(other_prior),
    )
    if len(_PLANS) >= 16:
        _PLANS.clear()
    _PLANS[key] = (hypotheses, groups, plan)
    return plan


def forget_weighed() -> None:
    """Drop every kept differential, so that the next weighing of any evidence is a first one (benchmarks)."""
    for _, _, plan in list(_PLANS.values()):
        plan.weighed.clear()


def _prior_of(hyp: Hypothesis, pid: str) -> tuple[float, str]:
    for prior in hyp.priors:
        if prior.population == pid:
            return prior.probability, prior.reference or ""
    raise ValueError(f"{hyp.id}: no prior for population {pid!r}")  # the loader refuses this (E023)


_NO_GROUPS: Mapping[str, EvidenceGroup] = {}


def weigh(
    hypotheses: Mapping[str, Hypothesis],
    populations: Iterable[Population],
    derived_names: set[str],
    evidence: Iterable[EvidenceItem],
    groups: Mapping[str, EvidenceGroup] | None = None,
) -> Differential:
    groups = groups or _NO_GROUPS
    population = select_population(populations, derived_names)
    plan = _weigh_plan(hypotheses, groups, population)
    items = tuple(evidence)
    differential = plan.weighed.get(items)
    if differential is None:
        differential = _weigh(plan, population, groups, items)
        if len(plan.weighed) >= WEIGHED_MEMO_SIZE:
            plan.weighed.clear()
        plan.weighed[items] = differential
    return differential


def _weigh(
    plan: _WeighPlan, population: Population, groups: Mapping[str, EvidenceGroup], evidence: tuple[EvidenceItem, ...]
) -> Differential:
    group_of = plan.group_of
    by_hypothesis: dict[str, list[EvidenceItem]] = {}
    for item in evidence:
        by_hypothesis.setdefault(item.hypothesis, []).append(item)

    # 1. Explainers: yes/no; one more likely than not takes up the findings it explains.
    explainers: list[HypothesisResult] = []
    taken: dict[str, str] = {}
    weighing_rules = {e.rule_id for items in by_hypothesis.values() for e in items}
    for hp in plan.explainers:
        hyp = hp.hyp
        items = by_hypothesis.get(hyp.id, [])
        grouped, point, low, high = _grouped(items, groups, group_of)
        post = _posterior(hp.log_prior_odds, point)
        took = tuple(r for r in hyp.explains if post > EXPLAINER_TAKES_FINDINGS_AT and r in weighing_rules)
        for rule in took:
            taken.setdefault(rule, hyp.id)
        if not items and not took and hp.bare is not None:
            explainers.append(hp.bare)
            continue
        low_post, high_post = _posterior(hp.log_prior_odds, low), _posterior(hp.log_prior_odds, high)
        explainers.append(_result(hp, post, low_post, high_post, items, grouped, took=took))

    # 2. Causes and coexisting conditions, with the taken-up findings removed.
    causes: list[tuple[_HypothesisPlan, list[EvidenceItem], tuple[GroupResult, ...], tuple[tuple[str, str], ...]]]
    causes = []
    w_point, w_low, w_high = [], [], []
    coexisting = []
    for hp in plan.others:
        hyp = hp.hyp
        all_items = by_hypothesis.get(hyp.id)
        if not all_items:
            if hp.bare is not None:  # a coexisting condition nothing weighs on
                coexisting.append(hp.bare)
            else:  # a cause nothing weighs on: its weights are its prior's (log 1 = 0)
                causes.append((hp, [], (), ()))
                w_point.append(hp.log_prior)
                w_low.append(hp.log_prior)
                w_high.append(hp.log_prior)
            continue
        items, explained = _untaken(all_items or [], taken)
        grouped, point, low, high = _grouped(items, groups, group_of)
        if hyp.kind == "coexisting":
            log_odds = hp.log_prior_odds
            coexisting.append(
                _result(
                    hp,
                    _posterior(log_odds, point),
                    _posterior(log_odds, low),
                    _posterior(log_odds, high),
                    items,
                    grouped,
                    explained=explained,
                )
            )
        else:
            causes.append((hp, items, grouped, explained))
            # Log-space weights keep long products finite.
            w_point.append(hp.log_prior + math.log(point))
            w_low.append(hp.log_prior + math.log(low))
            w_high.append(hp.log_prior + math.log(high))

    log_other = plan.log_other
    point_total = _logsumexp([*w_point, log_other])
    high_total = _logsumexp([*w_high, log_other])
    low_total = _logsumexp([*w_low, log_other])
    # Lowest: own ratio low, every rival high; highest: own high, every rival low. The rivals' sums leave one
    # cause out; prefix and suffix sums give them all in one pass without subtracting (no cancellation).
    rivals_high, rivals_low = _leave_one_out(w_high, log_other), _leave_one_out(w_low, log_other)
    results = []
    for i, (hp, items, grouped, explained) in enumerate(causes):
        post = math.exp(w_point[i] - point_total)
        low = 1 / (1 + math.exp(min(rivals_high[i] - w_low[i], 700.0)))
        high = 1 / (1 + math.exp(min(rivals_low[i] - w_high[i], 700.0)))
        results.append(_result(hp, post, low, high, items, grouped, explained=explained))
    results.sort(key=lambda h: (-h.posterior, h.id))
    other_post = math.exp(log_other - point_total)
    other = HypothesisResult(
        id=OTHER_CAUSE,
        title="Another cause not listed",
        kind="cause",
        prior=plan.other_prior,
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


def _untaken(
    all_items: list[EvidenceItem], taken: Mapping[str, str]
) -> tuple[list[EvidenceItem], tuple[tuple[str, str], ...]]:
    """The items whose findings no explainer took up, and (rule, explainer) for those it did."""
    if not taken:
        return all_items, ()
    items = [e for e in all_items if e.rule_id not in taken]
    return items, tuple((e.rule_id, taken[e.rule_id]) for e in all_items if e.rule_id in taken)


def _posterior(log_prior_odds: float, likelihood_ratio: float) -> float:
    """``posterior_probability(prior, [likelihood_ratio])`` with the prior's log-odds computed once per rule set
    (the same operations in the same order, so the same float)."""
    return probability_from_log_odds(log_prior_odds + math.log(likelihood_ratio))


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
    hp: _HypothesisPlan,
    post: float,
    low: float,
    high: float,
    items: list[EvidenceItem],
    grouped: tuple[GroupResult, ...],
    took: tuple[str, ...] = (),
    explained: tuple[tuple[str, str], ...] = (),
) -> HypothesisResult:
    hyp = hp.hyp
    if items:
        done_tests = {e.test for e in items if e.test}
        next_test = next((test for tid, test in hp.ranked_tests if tid not in done_tests), None)
        evidence_for = tuple(e for e in items if e.likelihood_ratio > 1)
        evidence_against = tuple(e for e in items if e.likelihood_ratio < 1)
    else:
        next_test = hp.ranked_tests[0][1] if hp.ranked_tests else None
        evidence_for = evidence_against = ()
    return HypothesisResult(
        id=hyp.id,
        title=hyp.title,
        kind=hyp.kind,
        prior=hp.prior,
        posterior=post,
        low=min(low, post),
        high=max(high, post),
        prior_reference=hp.ref,
        evidence_for=evidence_for,
        evidence_against=evidence_against,
        next_test=next_test,
        groups=grouped,
        took=took,
        explained_by=explained,
        time_critical=hyp.time_critical,
    )
