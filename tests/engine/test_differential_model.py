"""The differential model of docs/adr/0004-differential-model.md (issue 12): exclusive causes with "other",
explainers, evidence groups, intervals and bands, the safety gate, and both backends running it alike."""

from __future__ import annotations

import copy
import math
import re
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.engine import durable_backend
from cds.engine.differential import (
    DISPLAY_CEILING,
    EvidenceItem,
    band_word,
    combine,
    display_band,
    judgement_range,
    lr_interval_from_counts,
    percent,
)
from cds.engine.model import EvidenceGroup, Hypothesis, Population
from cds.engine.prepare import facts_from_dicts
from cds.engine.runner import LoadedEngine
from cds.engine.weighing import weigh
from cds.hooks.models import CDSRequest
from tests.conftest import REPO, shipped_pipeline, shipped_ruleset

RULESET = shipped_ruleset()
CASES_NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # fhir_examples/README.md
NAMESPACE = "org.calciphylaxis-cds"
NSTI = REPO / "fhir_examples" / "requests" / "ddx-necrotizing-soft-tissue-infection.patient-view.json"
SOURCE = REPO / "fhir_examples" / "requests" / "source-case.patient-view.json"
LOINC_ALBUMIN = "1751-7"


# ---- arithmetic ------------------------------------------------------------------------------
def test_bone_scan_interval_from_paul_counts():
    """16/18 positive cases and 1/31 positive controls (Paul et al., counts inferred in the sheet): LR+ about 4-191."""
    point, low, high = lr_interval_from_counts(16, 2, 1, 30)
    assert point == pytest.approx((16 / 18) / (1 / 31))
    assert low == pytest.approx(4.0, abs=0.1) and high == pytest.approx(191, rel=0.02)
    point, low, high = lr_interval_from_counts(16, 2, 1, 30, positive=False)
    assert point == pytest.approx((2 / 18) / (30 / 31))
    assert low == pytest.approx(0.031, abs=0.002) and high == pytest.approx(0.42, abs=0.01)


def test_judgement_range_keeps_the_direction():
    assert judgement_range(4.0) == pytest.approx((2.0, 8.0))
    low, high = judgement_range(0.25)
    assert low == pytest.approx(0.125) and high == pytest.approx(0.5)


def _group(combine_rule: str, cap: float | None = None) -> EvidenceGroup:
    return EvidenceGroup(
        id="g",
        title="g",
        combine=combine_rule,
        max_likelihood_ratio=cap,
        members=["r"],
        confidence="R",
        reason="test",
        reference=None,
    )


def test_group_combination_rules():
    assert combine(_group("independent"), [2.0, 3.0]) == pytest.approx(6.0)
    assert combine(_group("max"), [29.7, 2.0, 3.0]) == pytest.approx(29.7)  # one deposit seen three ways
    assert combine(_group("max"), [26.0, 0.48]) == pytest.approx(26.0 * 0.48)  # a conflict is kept
    assert combine(_group("capped-product", 3.0), [1.6, 1.5, 2.0]) == pytest.approx(3.0)
    assert combine(_group("capped-product", 3.0), [0.2, 0.5]) == pytest.approx(1 / 3)


def _hyp(hid: str, prior: float, kind: str = "cause", **extra: object) -> Hypothesis:
    return Hypothesis.model_validate(
        {
            "id": hid,
            "title": hid,
            "kind": kind,
            "priors": [{"population": "p", "probability": prior, "confidence": "R", "reason": "test"}],
            **extra,
        }
    )


POPULATION = [Population(id="p", title="p", default=True)]


def _ev(rule: str, hypothesis: str, lr: float) -> EvidenceItem:
    return EvidenceItem(rule, rule, hypothesis, lr, "ref", "R")


def test_evidence_for_one_cause_lowers_the_others_and_other_keeps_its_share():
    hyps = {h.id: h for h in (_hyp("a", 0.2), _hyp("b", 0.3))}
    before = weigh(hyps, POPULATION, set(), [])
    after = weigh(hyps, POPULATION, set(), [_ev("r1", "a", 10.0)])
    assert before.get("a").posterior == pytest.approx(0.2) and before.other.posterior == pytest.approx(0.5)
    assert after.get("a").posterior == pytest.approx(2.0 / 2.8)
    assert after.get("b").posterior == pytest.approx(0.3 / 2.8)
    assert after.get("b").posterior < before.get("b").posterior
    assert after.other.posterior == pytest.approx(0.5 / 2.8)


def test_fallback_group_counts_only_without_feature_evidence():
    hyps = {"a": _hyp("a", 0.1)}
    groups = {
        "judgement": EvidenceGroup(
            id="judgement", title="j", combine="fallback", members=["suspected"], confidence="R", reason="t"
        ),
        "features": EvidenceGroup(
            id="features", title="f", combine="independent", members=["purpura"], confidence="R", reason="t"
        ),
    }
    alone = weigh(hyps, POPULATION, set(), [_ev("suspected", "a", 3.0)], groups)
    both = weigh(hyps, POPULATION, set(), [_ev("suspected", "a", 3.0), _ev("purpura", "a", 2.0)], groups)
    assert alone.get("a").posterior == pytest.approx(0.3 / 1.2)
    assert both.get("a").posterior == pytest.approx(0.2 / 1.1)
    assert [g.counted for g in both.get("a").groups] == [True, False]


def test_an_explainer_takes_up_its_findings_and_competes_with_no_cause():
    hyps = {h.id: h for h in (_hyp("a", 0.2), _hyp("x", 0.5, kind="explainer", explains=["diffuse"]))}
    evidence = [_ev("diffuse", "x", 8.0), _ev("diffuse", "a", 0.3)]
    diff = weigh(hyps, POPULATION, set(), evidence)
    assert [h.id for h in diff.hypotheses] == ["a"] and diff.get("x").took == ("diffuse",)
    assert diff.get("a").posterior == pytest.approx(0.2)  # the explained finding no longer counts against it
    assert diff.get("a").explained_by == (("diffuse", "x"),)


def test_band_words_cannot_contradict_the_number():
    for p in [i / 200 for i in range(1, 200)] + [0.0001, 0.9999]:
        band = display_band(p, p / 2, min(1.0, p * 1.5))
        assert within_display(band.low) and band.high <= DISPLAY_CEILING and band.point <= DISPLAY_CEILING
        shown = int(percent(p).strip("<%"))
        word = band_word(p)
        assert word == band_word(shown / 100 if shown > 1 else 0.005), (p, word)


def within_display(value: float) -> bool:
    return 0.01 <= value <= DISPLAY_CEILING


# ---- every shipped case ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def case_results(live_rule_results):
    return {test_id: r for test_id, r in live_rule_results("reference").items() if r.outcome is not None}


def test_causes_and_other_sum_to_one_in_every_rule_test(case_results):
    assert len(case_results) > 40
    for test_id, result in case_results.items():
        diff = result.outcome.differential
        total = sum(h.posterior for h in diff.hypotheses) + diff.other.posterior
        assert total == pytest.approx(1.0, abs=1e-9), test_id
        for h in (*diff.hypotheses, diff.other, *diff.explainers, *diff.coexisting):
            assert 0 <= h.low <= h.posterior <= h.high <= 1, (test_id, h.id)


def test_every_number_keeps_its_reference_and_tag_and_has_an_interval():
    for rule in RULESET.compiled.rules:
        for e in rule.evidence:
            assert e.reference and e.confidence in {"V", "S", "R", "D"}, rule.id
            item = EvidenceItem(
                rule.id, rule.title, e.hypothesis, e.likelihood_ratio, e.reference, e.confidence, low=e.low, high=e.high
            )
            low, high = item.interval
            assert low <= e.likelihood_ratio <= high, rule.id


# ---- what the cards say ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline():
    return shipped_pipeline("reference")


def _respond(pipeline, raw: dict, service: str = "calciphylaxis-risk"):
    request = CDSRequest.model_validate(raw)
    return pipeline.evaluate(pipeline.service(service), request, raw.get("prefetch") or {}, CASES_NOW).response


def _nsti_variant(female: bool, albumin: float | None) -> dict:
    raw = copy.deepcopy(orjson.loads(NSTI.read_bytes()))
    if female:
        raw["prefetch"]["patient"]["gender"] = "female"
    if albumin is not None:
        (obs,) = [
            e["resource"]
            for e in raw["prefetch"]["labs"]["entry"]
            if any(c.get("code") == LOINC_ALBUMIN for c in e["resource"]["code"].get("coding", []))
        ]
        obs["valueQuantity"]["value"] = albumin
    return raw


@pytest.mark.parametrize(("female", "albumin"), [(False, None), (True, None), (False, 2.8), (True, 2.8)])
def test_necrotising_infection_gets_the_time_critical_card_and_no_elective_scan(pipeline, female, albumin):
    """Clinical review S-1: the female and albumin-2.8 copies got 'Calciphylaxis possible (42%)' and a scan order."""
    response = _respond(pipeline, _nsti_variant(female, albumin))
    topics = [c.source.topic.code for c in response.cards]
    assert "calciphylaxis-risk" not in topics and "calciphylaxis-risk-after-bone-scan" not in topics
    codes = [
        a.resource.get("code", {}).get("coding", [{}])[0].get("code")
        for c in response.cards
        for s in c.suggestions or []
        for a in s.actions
        if a.resource
    ]
    assert "78306" not in codes
    (urgent,) = [c for c in response.cards if c.source.topic.code == "time-critical-condition"]
    assert urgent.summary.startswith("Time-critical: Necrotizing soft-tissue infection")
    assert urgent.indicator == "critical"
    extension = response.extension[f"{NAMESPACE}.differential"]
    assert extension["causes"][0]["hypothesis"] == "necrotizing-soft-tissue-infection"
    assert "necrotizing-soft-tissue-infection" in extension["time_critical"]


def test_source_case_card_shows_a_band_within_95_percent_and_renal_clearance_as_an_explainer(pipeline):
    response = _respond(pipeline, orjson.loads(SOURCE.read_bytes()))
    (card,) = [c for c in response.cards if c.source.topic.code.startswith("calciphylaxis-risk")]
    shown = [int(m) for m in re.findall(r"(\d+)%", card.summary + card.detail)]
    assert shown and max(shown) <= 95  # no point or interval end above the display ceiling
    assert re.search(r"\d+-\d+%", card.summary), card.summary  # the band, not only a point
    # Renal-failure clearance explains the diffuse background: never offered as the card's alternative.
    assert "renal-failure" not in card.detail.lower() and "renal failure" not in card.detail.lower()
    model = response.extension[f"{NAMESPACE}.differential"]
    causes = model["causes"]
    assert causes[0]["hypothesis"] == "calciphylaxis" and causes[0]["band"][1] <= 1.0
    assert "renal-failure-soft-tissue-clearance" not in {c["hypothesis"] for c in causes}
    (clearance,) = [h for h in model["explainers"] if h["hypothesis"] == "renal-failure-soft-tissue-clearance"]
    assert clearance["kind"] == "explainer"


# ---- both backends on generated fact sets of the live knowledge base -----------------------------
LIVE_FACTS = st.lists(
    st.sampled_from(
        [
            {"kind": "condition", "concept": "esrd", "status": "active"},
            {
                "kind": "condition",
                "concept": "lower-limb-ulcer",
                "status": "active",
                "site": "calf",
                "site_class": "distal",
            },
            {
                "kind": "condition",
                "concept": "retiform-purpura",
                "status": "active",
                "site": "thigh",
                "site_class": "central",
            },
            {"kind": "condition", "concept": "calciphylaxis", "verification": "provisional", "status": "active"},
            {"kind": "condition", "concept": "necrotizing-fasciitis", "status": "active"},
            {"kind": "condition", "concept": "sepsis-or-fever", "status": "active"},
            {"kind": "condition", "concept": "cellulitis-lower-limb", "status": "active"},
            {"kind": "condition", "concept": "diabetes", "status": "active"},
            {"kind": "condition", "concept": "venous-insufficiency", "status": "active"},
            {"kind": "patient", "sex": "female", "bmi": 34.0},
            {"kind": "lab", "analyte": "albumin", "value": 2.8, "unit": "g/dL"},
            {
                "kind": "medication",
                "drug_class": "vitamin-k-antagonist",
                "status": "active",
                "days_since_first_start": 400,
            },
            {
                "kind": "finding",
                "concept": "soft-tissue-uptake",
                "modality": "NM",
                "distribution": "heterogeneous",
                "site": "thigh",
                "site_class": "central",
                "at_lesion_site": True,
                "negated": False,
            },
            {
                "kind": "finding",
                "concept": "soft-tissue-uptake",
                "modality": "NM",
                "distribution": "diffuse",
                "site": "lower-leg",
                "site_class": "distal",
                "negated": False,
            },
            {"kind": "finding", "concept": "soft-tissue-uptake", "modality": "NM", "negated": True},
            {
                "kind": "finding",
                "concept": "vascular-calcification",
                "modality": "CT",
                "pattern": "net-like",
                "negated": False,
            },
        ]
    ),
    max_size=8,
    unique_by=lambda f: orjson.dumps(f, option=orjson.OPT_SORT_KEYS),
)


@pytest.fixture(scope="module")
def live_engines():
    if not durable_backend.AVAILABLE:
        pytest.skip("durable-rules not importable")
    reference, durable = LoadedEngine(RULESET, "reference"), LoadedEngine(RULESET, "durable")
    yield reference, durable
    durable.close()


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(facts=LIVE_FACTS)
def test_backends_run_the_model_identically_on_generated_fact_sets(live_engines, facts):
    reference, durable = live_engines
    factset = facts_from_dicts(
        [{**f, "id": f"{f['kind']}:{i}" if f["kind"] != "patient" else "patient"} for i, f in enumerate(facts)]
    )
    ref = reference.evaluate(factset, "calciphylaxis-risk")
    dur = durable.evaluate(factset, "calciphylaxis-risk")
    assert ref.comparable() == dur.comparable()
    diff = ref.differential
    assert math.isclose(sum(h.posterior for h in diff.hypotheses) + diff.other.posterior, 1.0, abs_tol=1e-9)
    if diff.time_critical:
        assert not {c.template for c in ref.cards} & {"calciphylaxis-risk", "biopsy-advice"}
        assert "time-critical-condition" in {c.template for c in ref.cards}


def test_adr_sensitivity_table_is_current():
    """The ADR's table is generated (`cds rules sensitivity --write docs/adr/0004-differential-model.md`)."""
    from cds.engine.cli import SENSITIVITY_BEGIN, SENSITIVITY_END
    from cds.engine.sensitivity import sensitivity_markdown

    text = (REPO / "docs" / "adr" / "0004-differential-model.md").read_text(encoding="utf-8")
    block = text[text.index(SENSITIVITY_BEGIN) + len(SENSITIVITY_BEGIN) : text.index(SENSITIVITY_END)].strip("\n")
    engine = LoadedEngine(RULESET, "reference")
    assert block == sensitivity_markdown(engine).strip("\n"), "regenerate: cds rules sensitivity --write docs/adr/..."
    rows = [line for line in block.splitlines()[2:]]
    source = next(r for r in rows if r.startswith("| source-case |"))
    assert "| calciphylaxis |" in source
