"""Sensitivity of each shipped case to the interval of every ratio it uses (docs/adr/0004-differential-model.md).

For every rule test that names a case (``case-*`` in rules/tests/cases.yaml), the expected first cause is
re-weighed with one ratio at a time set to the low and to the high end of its interval; the table shows the
posterior at the point and the range of those one-at-a-time posteriors, and the ratio that moves it most.
``cds rules sensitivity`` prints the table; the ADR embeds it.
"""

from __future__ import annotations

import dataclasses

from cds.engine.differential import Differential, EvidenceItem
from cds.engine.ruletests import TestResult, default_extractor, run_rule_tests
from cds.engine.runner import LoadedEngine
from cds.engine.weighing import weigh


def _posterior(engine: LoadedEngine, result: TestResult, evidence: list[EvidenceItem], hypothesis: str) -> float:
    rs, outcome = engine.ruleset, result.outcome
    assert outcome is not None
    derived = {f.attrs["name"] for f in outcome.derived}
    diff: Differential = weigh(rs.hypotheses, rs.populations, derived, evidence, rs.evidence_groups)  # type: ignore[arg-type]
    h = diff.get(hypothesis)
    return h.posterior if h else float("nan")


@dataclasses.dataclass(frozen=True)
class SensitivityRow:
    case: str
    subject: str
    kind: str
    point: float
    band: tuple[float, float]
    one_at_a_time: tuple[float, float]
    most_sensitive: str


def sensitivity_rows(engine: LoadedEngine) -> list[SensitivityRow]:
    rs = engine.ruleset
    tests = {t.id: t for t in rs.tests}
    rows: list[SensitivityRow] = []
    for result in run_rule_tests(engine, default_extractor(rs.rules_dir)):
        test = tests[result.id]
        if not result.id.startswith("case-") or result.outcome is None or test.expect.top is None:
            continue
        subject = test.expect.top
        outcome = result.outcome
        evidence = list(outcome.evidence)
        h = outcome.differential.get(subject)
        if h is None:
            continue
        lows, highs, swing = [], [], ("none", 0.0)
        for index, item in enumerate(evidence):
            low, high = item.interval
            values = []
            for end in (low, high):
                changed = evidence.copy()
                changed[index] = dataclasses.replace(item, likelihood_ratio=end)
                values.append(_posterior(engine, result, changed, subject))
            lows.append(min(values))
            highs.append(max(values))
            if max(values) - min(values) > swing[1]:
                swing = (item.rule_id, max(values) - min(values))
        rows.append(
            SensitivityRow(
                result.id.removeprefix("case-"),
                subject,
                h.kind,
                h.posterior,
                (h.low, h.high),
                (min(lows, default=h.posterior), max(highs, default=h.posterior)),
                swing[0],
            )
        )
    return rows


def sensitivity_markdown(engine: LoadedEngine) -> str:
    lines = [
        "| Case | Expected first | Posterior | Band (all intervals at once) | One interval end at a time "
        "| Most sensitive to |",
        "|---|---|---|---|---|---|",
    ]
    for r in sensitivity_rows(engine):
        (lo, hi), (olo, ohi) = r.band, r.one_at_a_time
        subject = f"{r.subject} ({r.kind})" if r.kind != "cause" else r.subject
        lines.append(
            f"| {r.case} | {subject} | {r.point:.3f} | {lo:.3f}-{hi:.3f} | {olo:.3f}-{ohi:.3f} | `{r.most_sensitive}` |"
        )
    return "\n".join(lines) + "\n"
