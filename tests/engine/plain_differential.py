"""The differential as it was weighed before the per-rule-set plan and memo of issue 20 (main at 9a1ed8b):
the plain definition that tests/engine/test_weigh_plan.py holds ``cds.engine.weighing.weigh`` to."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

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
    select_population,
)
from cds.engine.model import DiagnosticTest, EvidenceGroup, Hypothesis, Population
from cds.engine.weighing import _leave_one_out, _logsumexp


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


def weigh(
    hypotheses: Mapping[str, Hypothesis],
    populations: Iterable[Population],
    derived_names: set[str],
    evidence: Iterable[EvidenceItem],
    groups: Mapping[str, EvidenceGroup] | None = None,
) -> Differential:
    groups = groups or {}
    group_of = {rule: g.id for g in groups.values() for rule in g.members}
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
