"""Hot reload: validated and tested off to the side, swapped atomically, refused when broken."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from datetime import UTC, datetime

import pytest

from cds.engine import durable_backend
from cds.engine.prepare import facts_from_dicts
from cds.hooks.models import CDSRequest
from cds.pipeline import Pipeline, RulesetLoadError, install_reload_signal
from tests.engine.helpers import copy_rules
from tests.engine.test_pipeline import ESRD_ULCER_SCAN, request
from tests.engine.test_soak import rss_kib

ENGINE = "durable" if durable_backend.AVAILABLE else "reference"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stand_in(context, prefetch, now):
    """Test-only stand-in for cds.fhir.extract_facts: the same facts for every request."""
    return facts_from_dicts(ESRD_ULCER_SCAN)


@pytest.fixture(autouse=True)
def fixed_facts(monkeypatch):
    # Every rule set the pipeline builds (at load and on each reload) uses the stand-in.
    monkeypatch.setattr("cds.pipeline.default_extractor", lambda rules_dir, **_: stand_in)


def loaded(rules_dir):
    return Pipeline.load(rules_dir, engine=ENGINE)


def evaluate(pipeline):
    return pipeline.evaluate(pipeline.service("calciphylaxis-risk"), CDSRequest.model_validate(request()), {}, NOW)


@pytest.fixture
def rules(tmp_path):
    return copy_rules(tmp_path)


def test_broken_rule_file_is_refused_and_old_rules_keep_serving(rules, caplog):
    pipeline = loaded(rules)
    version = pipeline.version
    assert len(evaluate(pipeline).response.cards) == 1
    imaging = rules / "rules" / "imaging.yaml"
    imaging.write_text(imaging.read_text().replace("likelihood_ratio: 29.7", "likelihood_ratio: -29.7"))
    assert pipeline.reload() is False
    status = pipeline.status()
    assert status["version"] == version
    assert any(line.startswith("rules/rules/imaging.yaml:") and " E016 " in line for line in status["errors"]), status
    assert status["last_reload"]["result"] == "refused"
    assert any("reload refused" in r.getMessage() and " E016 " in r.getMessage() for r in caplog.records)
    assert len(evaluate(pipeline).response.cards) == 1  # still the old rules


def test_yaml_syntax_error_is_refused(rules):
    pipeline = loaded(rules)
    (rules / "cards.yaml").write_text("cards: [\n")
    assert pipeline.reload() is False
    assert any("rules/cards.yaml:" in line and " E001 " in line for line in pipeline.status()["errors"])


def test_set_whose_rule_tests_fail_is_refused(rules):
    pipeline = loaded(rules)
    version = pipeline.version
    imaging = rules / "rules" / "imaging.yaml"
    imaging.write_text(imaging.read_text().replace("likelihood_ratio: 29.7", "likelihood_ratio: 2.97"))
    assert pipeline.reload() is False
    assert pipeline.version == version
    assert any("rule test esrd-ulcer-positive-bone-scan" in line for line in pipeline.status()["errors"])


def test_valid_change_is_swapped_in_and_errors_clear(rules):
    pipeline = loaded(rules)
    version = pipeline.version
    (rules / "cards.yaml").write_text((rules / "cards.yaml").read_text())  # same content: same version
    broken = (rules / "references.yaml").read_text()
    (rules / "references.yaml").write_text(broken.replace("id: weenig-2007", "id: weenig-2007-typo"))
    assert pipeline.reload() is False
    (rules / "references.yaml").write_text(broken)
    (rules / "ruleset.yaml").write_text((rules / "ruleset.yaml").read_text().replace('"0.1.0"', '"0.1.1"'))
    assert pipeline.reload() is True
    assert pipeline.version != version and pipeline.version.startswith("0.1.1+")
    assert pipeline.status()["errors"] == []


def test_startup_with_broken_rules_raises_with_positions(rules):
    (rules / "hypotheses.yaml").write_text(
        (rules / "hypotheses.yaml").read_text().replace("probability: 0.10", "probability: 1.5")
    )
    with pytest.raises(RulesetLoadError) as caught:
        Pipeline.load(rules, engine=ENGINE)
    assert any(line.startswith("rules/hypotheses.yaml:") and "E003" in line for line in caught.value.lines)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads(rules):
    pipeline = loaded(rules)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        assert install_reload_signal(pipeline)
        (rules / "ruleset.yaml").write_text((rules / "ruleset.yaml").read_text().replace('"0.1.0"', '"0.2.0"'))
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 20
        while not pipeline.version.startswith("0.2.0+") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pipeline.version.startswith("0.2.0+")
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_no_request_is_dropped_while_reloading(rules):
    pipeline = loaded(rules)
    errors: list[str] = []
    counts = [0] * 4
    stop = threading.Event()

    def serve(n: int) -> None:
        while not stop.is_set():
            try:
                cards = evaluate(pipeline).response.cards
                if len(cards) != 1:
                    errors.append(f"{len(cards)} cards")
                counts[n] += 1
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(10):
            text = (rules / "ruleset.yaml").read_text()
            (rules / "ruleset.yaml").write_text(text.replace("title:", f"# reload {i}\n  title:", 1))
            assert pipeline.reload() is True
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert min(counts) > 0


def test_memory_stays_bounded_across_100_reloads(rules):
    pipeline = loaded(rules)
    for _ in range(5):
        pipeline.reload()
        evaluate(pipeline)
    gc.collect()
    before = rss_kib()
    created_before = dict(durable_backend.RULESET_COUNTS)
    for i in range(100):
        # a real change each time: a new content hash, a new compiled durable ruleset
        (rules / "ruleset.yaml").write_text(f'ruleset:\n  version: "0.1.{i}"\n  title: Reload {i}\n')
        assert pipeline.reload() is True
        evaluate(pipeline)
    gc.collect()
    growth_mib = (rss_kib() - before) / 1024
    print(f"\n100 reloads ({pipeline.backend}): RSS growth {growth_mib:.2f} MiB")
    assert growth_mib < 10
    if pipeline.backend == "durable":
        created = durable_backend.RULESET_COUNTS["created"] - created_before["created"]
        deleted = durable_backend.RULESET_COUNTS["deleted"] - created_before["deleted"]
        assert created == 100 and deleted >= 99  # old rulesets are freed, not accumulated
