"""`cds rules diff` (issue 17 item 5): the outcome of every case under two rule sets, with the rules responsible."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from cds.cli import main
from cds.engine import outcomediff
from cds.engine.cli import run_diff
from tests.conftest import REPO, shared_data
from tests.engine.helpers import SAMPLE_RULES, copy_live_rules


def two_sample_sets(tmp_path):
    before = tmp_path / "before" / "rules"
    after = tmp_path / "after" / "rules"
    shutil.copytree(SAMPLE_RULES, before)
    shutil.copytree(SAMPLE_RULES, after)
    return before, after


def edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_identical_rule_sets_change_nothing(tmp_path):
    before, after = two_sample_sets(tmp_path)
    report = outcomediff.diff(before, after)
    assert report.inputs > 0 and not report.changed
    assert "No change in the outcome" in outcomediff.markdown(report)


def test_a_stronger_likelihood_ratio_adds_a_card_and_names_the_rule(tmp_path):
    before, after = two_sample_sets(tmp_path)
    # A negative bone scan speaks against calciphylaxis (LR < 1), so ESRD + ulcer + negative scan stays
    # below the card threshold. Mistype that ratio as a strong positive one: the case now gains the card.
    rules = after / "rules" / "imaging.yaml"
    text = rules.read_text()
    import re

    match = re.search(r"- id: bone-scan-no-soft-tissue-uptake.*?likelihood_ratio: ([0-9.]+)", text, re.DOTALL)
    assert match and float(match.group(1)) < 1
    start, end = match.span(1)
    rules.write_text(text[:start] + "400" + text[end:])
    report = outcomediff.diff(before, after)
    assert report.rules["edited"] == ["bone-scan-no-soft-tissue-uptake"]
    negative = report.cases["esrd-ulcer-negative-bone-scan"]
    added = {c["template"]: c for c in negative.get("cards_added", [])}
    assert "calciphylaxis-risk" in added, negative
    assert "bone-scan-no-soft-tissue-uptake" in added["calciphylaxis-risk"]["rules"]
    cause = next(c for c in negative["causes"] if c["hypothesis"] == "calciphylaxis")
    assert cause["after"]["posterior"] > cause["before"]["posterior"]
    assert cause["rules"] == ["bone-scan-no-soft-tissue-uptake"]
    text = outcomediff.markdown(report)
    assert "card **added** `calciphylaxis-risk`" in text and "`esrd-ulcer-negative-bone-scan`" in text


def test_changed_card_text_is_reported_as_a_change_of_that_card(tmp_path, capsys):
    before, after = two_sample_sets(tmp_path)
    edit(after / "cards.yaml", 'summary: "Calciphylaxis possible', 'summary: "EDITED Calciphylaxis possible')
    import argparse

    args = argparse.Namespace(
        rules=after,
        before=str(before),
        format="json",
        fail_on_change=True,
        population=None,
        service="calciphylaxis-risk",
        now=None,
        engine="reference",
    )
    assert run_diff(args) == 1  # --fail-on-change
    data = json.loads(capsys.readouterr().out)
    changed = [c for case in data["cases"].values() for c in case.get("cards_changed", [])]
    assert changed and all("summary" in c["fields"] and c["summary"]["after"].startswith("EDITED") for c in changed)


def test_a_git_revision_is_a_before(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(SAMPLE_RULES, repo / "rules")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "rules"], check=True)
    edit(repo / "rules" / "rules" / "risk-factors.yaml", "likelihood_ratio: 3.0", "likelihood_ratio: 30.0")
    with outcomediff.temporary_directory() as scratch:
        before = outcomediff.checkout_revision("HEAD", repo / "rules", tmp_path / scratch)
        report = outcomediff.diff(before, repo / "rules")
    assert report.rules["edited"] == ["warfarin-in-kidney-failure"]
    with pytest.raises(outcomediff.DiffError):
        outcomediff.checkout_revision("no-such-revision", repo / "rules", tmp_path / "x")


def test_a_broken_after_set_is_a_clear_error(tmp_path, capsys):
    before, after = two_sample_sets(tmp_path)
    edit(after / "rules" / "risk-factors.yaml", "likelihood_ratio: 3.0", "likelihood_ratio: .nan")
    assert main(["rules", "diff", str(before), "--rules", str(after)]) == 1
    err = capsys.readouterr().err
    assert "after rule set" in err and "E016" in err


def test_a_population_directory_of_requests_and_bundles(tmp_path):
    rules = copy_live_rules(tmp_path)
    population = tmp_path / "population"
    population.mkdir()
    request = REPO / "fhir_examples" / "requests" / "control-esrd-no-skin-findings.patient-view.json"
    (population / "control.json").symlink_to(request)
    bundle = shared_data("synthea", "esrd-dialysis-patient.bundle.json")
    (population / "synthea.json").symlink_to(bundle)
    from cds.hooks.services import load_services

    services = list(load_services(rules / "services.yaml"))
    from datetime import UTC, datetime

    (population / "capture.json").write_text('{"method": "POST", "path": "/cds-services/x"}')
    skipped: list[str] = []
    inputs = list(
        outcomediff.population_inputs(
            population, services, "calciphylaxis-risk", datetime(2026, 11, 21, tzinfo=UTC), skipped
        )
    )
    assert [i.id for i in inputs] == ["control.json", "synthea.json"]
    assert skipped == ["capture.json: neither a CDS Hooks request for a known hook nor a FHIR Bundle"]
    report = outcomediff.diff(rules, rules, lambda: inputs)
    assert report.inputs == 2 and not report.changed
