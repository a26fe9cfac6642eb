"""Rule tests (``rules/tests/*.yaml``): run them and report pass/fail.

A test gives inline facts or a CDS Hooks request from ``fhir_examples/``
(turned into facts by ``cds.fhir.extract_facts`` when that layer is present;
otherwise the test is reported as skipped, never as passed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cds.engine.beside import unexpected_firings
from cds.engine.model import RuleTest
from cds.engine.paths import case_path
from cds.engine.prepare import facts_from_dicts
from cds.engine.runner import LoadedEngine, Outcome
from cds.facts import FactSet

DEFAULT_NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
# (context, prefetch, now) -> FactSet, for `case:` tests
CaseExtractor = Callable[[dict[str, Any], dict[str, Any], datetime], FactSet]


@dataclass
class TestResult:
    id: str
    passed: bool
    skipped: bool = False
    failures: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    gap: bool = False  # a declared known gap that still reproduces: passes, reported as GAP

    @property
    def status(self) -> str:
        if self.skipped:
            return "SKIP"
        if self.gap:
            return "GAP "
        return "PASS" if self.passed else "FAIL"


def _firing_and_card_failures(test: RuleTest, outcome: Outcome) -> list[str]:
    """The rules that should (not) have fired and the cards that should (not) have been raised."""
    failures = []
    fired = set(outcome.rules_fired)
    raised = {c.template for c in outcome.cards}
    expect = test.expect
    for rule in expect.fired:
        if rule not in fired:
            failures.append(f"rule {rule} did not fire (fired: {', '.join(sorted(fired)) or 'none'})")
    for rule in expect.not_fired:
        if rule in fired:
            failures.append(f"rule {rule} fired but should not")
    for card in expect.cards:
        if card not in raised:
            failures.append(f"card {card} not raised (raised: {', '.join(sorted(raised)) or 'none'})")
    for card in expect.not_cards:
        if card in raised:
            failures.append(f"card {card} raised but should not be")
    if expect.no_cards and raised:
        failures.append(f"expected no cards, got {', '.join(sorted(raised))}")
    return failures


def check(test: RuleTest, outcome: Outcome) -> list[str]:
    """What is wrong with ``outcome`` for ``test`` (empty when it passes); names the values seen."""
    expect = test.expect
    failures = _firing_and_card_failures(test, outcome)
    diff = outcome.differential
    expected_top = diff.get(expect.top) if expect.top is not None else None
    if expected_top is not None and expected_top.kind == "explainer":
        # An explainer is no rival cause: "first" means the leading explainer, and one that takes up its findings.
        lead = diff.explainers[0] if diff.explainers else None
        if lead is None or lead.id != expect.top or not lead.took:
            ranking = ", ".join(f"{h.id} {h.posterior:.3f}" for h in diff.explainers[:4])
            failures.append(
                f"leading explainer is {lead.id if lead else 'none'} (took {list(lead.took) if lead else []}), "
                f"expected {expect.top} to lead and take up its findings ({ranking})"
            )
    elif expect.top is not None and (diff.top is None or diff.top.id != expect.top):
        top = diff.top
        ranking = ", ".join(f"{h.id} {h.posterior:.3f}" for h in diff.hypotheses[:4])
        failures.append(f"top of the differential is {top.id if top else 'empty'}, expected {expect.top} ({ranking})")
    for hypothesis, bounds in expect.posterior.items():
        result = outcome.differential.get(hypothesis)
        value = result.posterior if result else float("nan")
        if bounds.at_least is not None and not value >= bounds.at_least:
            failures.append(f"posterior of {hypothesis} is {value:.4f}, expected at least {bounds.at_least}")
        if bounds.at_most is not None and not value <= bounds.at_most:
            failures.append(f"posterior of {hypothesis} is {value:.4f}, expected at most {bounds.at_most}")
    return failures


def run_rule_tests(
    engine: LoadedEngine,
    extractor: CaseExtractor | None = None,
    only: Callable[[str], object] | None = None,
    extracted: dict[tuple[Path, datetime], FactSet] | None = None,
) -> list[TestResult]:
    """Run the rule set's tests (those whose id ``only`` accepts, when given).

    Several tests may read the same case at the same time (a whole-case test and the silent cases
    beside the rules): its facts are extracted once, in ``extracted`` (pass one dict to share it
    between the runs on both backends; facts do not depend on the backend)."""
    results = []
    rules_dir = engine.ruleset.rules_dir
    extracted = {} if extracted is None else extracted
    for test in engine.ruleset.tests:
        if only is not None and not only(test.id):
            continue
        now = datetime.fromisoformat(test.now) if test.now else DEFAULT_NOW
        if test.facts is not None:
            factset = facts_from_dicts(test.facts)
        else:
            if extractor is None:
                results.append(TestResult(test.id, passed=False, skipped=True, failures=["cds.fhir is not available"]))
                continue
            declaring = engine.ruleset.test_files.get(test.id, rules_dir / "tests" / "cases.yaml")
            path = case_path(rules_dir, declaring, str(test.case))
            if path is None:
                results.append(TestResult(test.id, passed=False, failures=[f"case file {test.case!r} not found"]))
                continue
            if (path, now) not in extracted:
                request = orjson.loads(path.read_bytes())
                extracted[(path, now)] = extractor(request.get("context", {}), request.get("prefetch") or {}, now)
            factset = extracted[(path, now)]
        try:
            outcome = engine.evaluate(factset, test.service)
        except Exception as exc:  # a crash is a failure of this test, reported with the others
            results.append(
                TestResult(test.id, passed=False, failures=[f"evaluation raised {type(exc).__name__}: {exc}"])
            )
            continue
        failures = check(test, outcome)
        if not test.expect.allow_other_firings:
            extra = unexpected_firings(
                engine.ruleset.test_files.get(test.id),
                engine.ruleset.rule_files,
                test.expect.fired,
                outcome.rules_fired,
            )
            if extra:
                failures.append(
                    f"rule(s) of the file beside this test fired unexpectedly: {', '.join(extra)} "
                    "(list them in `fired`, or say `allow_other_firings: true`)"
                )
        if test.known_gap is not None:
            # Like semgrep's todoruleid: the gap is documented and does not fail the build, but a gap
            # that no longer reproduces must be cleaned up, so that the list of gaps stays true.
            if failures:
                results.append(
                    TestResult(
                        test.id,
                        passed=True,
                        failures=[f"known gap: {test.known_gap.strip()}", *failures],
                        outcome=outcome,
                        gap=True,
                    )
                )
            else:
                results.append(
                    TestResult(
                        test.id,
                        passed=False,
                        outcome=outcome,
                        failures=["the known gap no longer reproduces: remove `known_gap` from this test"],
                    )
                )
            continue
        results.append(TestResult(test.id, passed=not failures, failures=failures, outcome=outcome))
    return results


def default_extractor(rules_dir: Path, warm: bool = True, terminology: Any = None) -> CaseExtractor:
    """The FHIR layer's extractor (``cds.fhir.extractor.default_extractor``) for this rule set.

    ``terminology`` is the knowledge bundle's (``cds.knowledge``); without it, it is loaded from
    ``rules_dir``. Imported when called, so loading the rule engine does not load the FHIR layer."""
    from cds.fhir.extractor import default_extractor as fhir_extractor

    return fhir_extractor(rules_dir, warm, terminology)


def format_report(results: list[TestResult], backend: str, where: Callable[[str], str] | None = None) -> str:
    """One line per test (a failing one with ``where(test id)``, its file:line), then the totals."""
    lines = []
    for r in results:
        place = f"  ({where(r.id)})" if where is not None and not r.passed and not r.skipped else ""
        lines.append(f"{r.status}  {r.id}{place}")
        for failure in r.failures:
            lines.append(f"      - {failure}")
    passed = sum(r.passed and not r.gap for r in results)
    failed = sum(not r.passed and not r.skipped for r in results)
    skipped = sum(r.skipped for r in results)
    gaps = sum(r.gap for r in results)
    known = f", {gaps} known gap(s)" if gaps else ""
    lines.append(f"{passed} passed, {failed} failed, {skipped} skipped{known} ({backend})")
    return "\n".join(lines)
