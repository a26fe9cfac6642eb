"""Long runs, threads and engine limits: no crash, no growth, no mixing of patients."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest

from cds.engine import durable_backend
from cds.engine.loader import load_or_raise
from cds.engine.prepare import MAX_FACTS, facts_from_dicts, prepare_facts
from cds.engine.runner import LoadedEngine
from cds.facts import Fact, FactSet
from tests.engine.helpers import SAMPLE_RULES as RULES_DIR

pytestmark = pytest.mark.skipif(not durable_backend.AVAILABLE, reason="durable-rules not importable")
PROBE_RULES = Path(__file__).parent / "fixtures" / "equivalence" / "rules"


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fact_sets() -> list[FactSet]:
    """The sample pack's rule-test facts plus variants: quiet, firing, derived chains, absences."""
    ruleset = load_or_raise(RULES_DIR)
    sets = [facts_from_dicts(t.facts) for t in ruleset.tests if t.facts is not None]
    for value in (60.0, 70.5, 88.25, 1e-5, 0.0):
        sets.append(
            facts_from_dicts(
                [
                    {"kind": "condition", "id": "condition:Condition/e:esrd", "concept": "esrd", "status": "active"},
                    {"kind": "lab", "id": "lab:cxp", "analyte": "ca-x-p-product", "unit": "mg2/dL2", "value": value},
                ]
            )
        )
    sets.append(FactSet(facts=()))
    return sets


@pytest.mark.slow
def test_100k_durable_evaluations_do_not_crash_or_grow():
    """100,000 durable-rules evaluations in one process: no crash, no growth (ADR 0001).

    What could crash or leak across evaluations is the C engine, cycled once per evaluation: a
    session, its facts asserted, its actions run, its state deleted (``executor.match``). All
    100,000 cycles run, each checked against the first result of its fact set. Every tenth pass over
    the fact sets is whole ``evaluate`` calls (preparation, matching, differential, cards), so 10,000
    of them also cover the Python around the engine, each compared with the first outcome; the other
    passes go straight to the engine with the facts ``evaluate`` prepares, at a quarter to a third of
    the cost (measured on these fact sets: 170-290 us against 800-850 us, in the same run)."""
    ruleset = load_or_raise(RULES_DIR)
    engine = LoadedEngine(ruleset, "durable")
    sets = fact_sets()
    prepared = [prepare_facts(s, ruleset.compiled)[0] for s in sets]
    expected = [engine.evaluate(s, "calciphylaxis-risk").comparable() for s in sets]
    expected_matches = [engine.executor.match(facts) for facts in prepared]
    assert sum(1 for matches in expected_matches if matches) >= len(sets) // 2, "most sets fire rules"
    for i in range(2000):  # allocator warm-up, as in the knowledge file's harness
        engine.evaluate(sets[i % len(sets)], "calciphylaxis-risk")
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()
    total = 100_000
    for i in range(total):
        index = i % len(sets)
        if (i // len(sets)) % 10 == 0:
            assert engine.evaluate(sets[index], "calciphylaxis-risk").comparable() == expected[index]
        else:
            assert engine.executor.match(prepared[index]) == expected_matches[index]
    elapsed = time.perf_counter() - started
    gc.collect()
    growth_mib = (rss_kib() - before) / 1024
    print(
        f"\n100k durable evaluations (10k whole): {elapsed:.1f} s ({elapsed / total * 1e6:.0f} us each),"
        f" RSS growth {growth_mib:.2f} MiB"
    )
    assert growth_mib < 20


def test_eight_threads_never_see_each_others_facts():
    ruleset = load_or_raise(RULES_DIR)
    engine = LoadedEngine(ruleset, "durable")
    errors: list[str] = []

    def patient_facts(n: int) -> FactSet:
        # thread n: its own ids; even threads have a positive scan (card), odd ones do not
        facts = [
            {"kind": "condition", "id": f"condition:Condition/t{n}-esrd:esrd", "concept": "esrd", "status": "active"},
            {
                "kind": "condition",
                "id": f"condition:Condition/t{n}-ulcer:ulcer",
                "concept": "lower-limb-ulcer",
                "status": "active",
            },
        ]
        if n % 2 == 0:
            facts.append(
                {
                    "kind": "finding",
                    "id": f"finding:DiagnosticReport/t{n}:1",
                    "concept": "soft-tissue-uptake",
                    "modality": "NM",
                    "distribution": "focal",
                    "negated": False,
                }
            )
        return facts_from_dicts(facts)

    expected = {n: engine.evaluate(patient_facts(n), "calciphylaxis-risk").comparable() for n in range(8)}
    assert expected[0] != expected[1]
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        facts = patient_facts(n)
        barrier.wait()
        for _ in range(400):
            outcome = engine.evaluate(facts, "calciphylaxis-risk")
            matched = {fid for firing in outcome.fired for match in firing.matches for fid in match}
            foreign = {fid for fid in matched if "/t" in fid and f"/t{n}" not in fid}
            if foreign or outcome.comparable() != expected[n]:
                errors.append(f"thread {n}: foreign facts {sorted(foreign)} or a different result")
                return

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_largest_working_memory_has_no_fact_id_collisions():
    """MAX_FACTS facts in one session: every one is asserted and matched (engine ids never collide
    under durable-rules' 32-bit fact hash in this range)."""
    ruleset = load_or_raise(PROBE_RULES)
    engine = LoadedEngine(ruleset, "durable")
    facts = FactSet(
        facts=tuple(Fact("lab", f"lab:{i}", {"analyte": "phosphate", "value": 5.0}) for i in range(MAX_FACTS + 10))
    )
    outcome = engine.evaluate(facts, "probe-service")
    (firing,) = [f for f in outcome.fired if f.rule_id == "numeric-range"]
    assert len(firing.matches) == MAX_FACTS
    assert any("more than" in w for w in outcome.fact_warnings)


def test_exponent_notation_numbers_do_not_reach_the_engine_parser():
    """1e-05 written as JSON crashed durable-rules' parser (measured); the adapter writes fixed-point."""
    assert (
        durable_backend.dumps([{"value": 1e-05, "tiny": 5e-324, "n": 3, "s": 'a"b'}])
        == '[{"value":0.00001,"tiny":0.0,"n":3,"s":"a\\"b"}]'
    )
    ruleset = load_or_raise(PROBE_RULES)
    engine, reference = LoadedEngine(ruleset, "durable"), LoadedEngine(ruleset, "reference")
    facts = FactSet(
        facts=(
            Fact("lab", "lab:tiny", {"analyte": "phosphate", "value": 1e-05}),
            Fact("condition", "c", {"concept": "ckd"}),
        )
    )
    assert (
        engine.evaluate(facts, "probe-service").comparable() == reference.evaluate(facts, "probe-service").comparable()
    )
