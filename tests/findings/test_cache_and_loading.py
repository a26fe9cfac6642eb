"""Per-report parse cache, lazy medspaCy import, and the checks on rules/findings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cds.findings import FindingsKnowledge, FindingsRulesError, extract_findings
from cds.findings.cache import LRUCache
from tests.conftest import REPO, RULES_DIR
from tests.findings import fixtures as fx


def test_a_report_is_parsed_once_per_version(knowledge, now, monkeypatch) -> None:
    import cds.findings.text as text_module

    calls: list[str] = []
    real = text_module.extract_text_mentions

    def counting(text, k):
        calls.append(text)
        return real(text, k)

    monkeypatch.setattr(text_module, "extract_text_mentions", counting)
    knowledge.text_cache.clear()
    rep = fx.report("cache-1", fx.BONE_SCAN_CODE, text="FINDINGS: Soft tissue uptake in the right calf.")
    first = extract_findings([rep], {}, now, [], knowledge)
    for _ in range(3):
        again = extract_findings([rep], {}, now, [("calf", "right")], knowledge)
    assert len(calls) == 1
    assert first.facts[0].attrs["at_lesion_site"] is False and again.facts[0].attrs["at_lesion_site"] is True
    assert first.facts[1].attrs["flag"] is False and again.facts[1].attrs["flag"] is True  # scan summary
    # a new version with new text is parsed again; so is an edited draft that kept its version
    v2 = fx.report("cache-1", fx.BONE_SCAN_CODE, version="2", text="FINDINGS: No soft tissue uptake.")
    draft = fx.report("cache-1", fx.BONE_SCAN_CODE, text="FINDINGS: Soft tissue uptake in the left calf.")
    extract_findings([v2, draft], {}, now, [], knowledge)
    assert len(calls) == 3


def test_lru_cache_is_bounded() -> None:
    cache = LRUCache(maxsize=2)
    for key in ("a", "b", "a", "c"):
        cache.get_or_compute(key, lambda k=key: k.upper())
    assert len(cache) == 2
    assert cache.hits == 1 and cache.misses == 3
    assert cache.get_or_compute("b", lambda: "recomputed") == "recomputed"  # evicted: least recently used
    with pytest.raises(ValueError):
        LRUCache(0)


def test_import_and_knowledge_loading_do_not_import_spacy() -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from cds.findings import FindingsKnowledge, extract_findings\n"
        f"FindingsKnowledge.load(Path({str(RULES_DIR)!r}))\n"
        "assert 'spacy' not in sys.modules and 'medspacy' not in sys.modules, 'eager import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=60)


def test_coded_only_reports_do_not_need_medspacy(knowledge, now) -> None:
    rep, resources = fx.source_ct_coded()
    assert len(extract_findings([rep], resources, now, [], knowledge).facts) == 2


def test_value_sets_carry_confidence_and_references(knowledge) -> None:
    doc = yaml.safe_load((RULES_DIR / "valuesets" / "imaging.yaml").read_text())
    verified_by_sheet = {"78306", "78315", "46297-8", "39813-1", "90312-0", "237900002"}
    for vs in doc["valuesets"]:
        assert vs["references"], vs["id"]
        for code in vs["codes"]:
            if code["system"] == "urn:calciphylaxis-cds:codesystem:imaging-finding":
                continue
            # only codes the knowledge sheet verified may claim V; everything recalled says R
            assert code["confidence"] == ("V" if code["code"] in verified_by_sheet else "R"), code


def copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR / "findings", target / "findings")
    shutil.copytree(RULES_DIR / "valuesets", target / "valuesets")
    return target


@pytest.mark.parametrize(
    "file, old, new, message",
    [
        ("context.yaml", '["no", not,', "[no, not,", "read as a boolean"),
        ("targets.yaml", "concept: phlebolith", "concept: phleboliths", "has no finding value set"),
        ("sites.yaml", "    parent: foot\n", "    parent: feet\n", "unknown parent 'feet'"),
        ("concepts.yaml", "site_class: [visceral]", "site_class: [viscera]", "unknown site_class"),
        ("qualifiers.yaml", "      faint: [faint,", "      feint: [faint,", "intensity: unknown value 'feint'"),
        ("targets.yaml", "    head: uptake\n", "    head: uptakes\n", "unknown head 'uptakes'"),
        ("modalities.yaml", "valuesets: [ct-imaging]", "valuesets: [ct-scan]", "unknown value set 'ct-scan'"),
    ],
)
def test_rule_mistakes_are_reported_with_file_and_entry(tmp_path, file, old, new, message) -> None:
    rules = copy_rules(tmp_path)
    path = rules / "findings" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(FindingsRulesError) as err:
        FindingsKnowledge.load(rules)
    assert file in str(err.value) and message in str(err.value)


def test_recalled_code_without_confidence_is_rejected(tmp_path) -> None:
    rules = copy_rules(tmp_path)
    path = rules / "valuesets" / "imaging.yaml"
    path.write_text(path.read_text().replace("    confidence: R\n", "", 1))
    with pytest.raises(FindingsRulesError, match="confidence must be V, S or R"):
        FindingsKnowledge.load(rules)


def test_informaticist_can_extend_wording_without_code(tmp_path, now) -> None:
    rules = copy_rules(tmp_path)
    path = rules / "findings" / "targets.yaml"
    path.write_text(path.read_text().replace("phrases: [uptake, uptakes,", "phrases: [hyperfixation, uptake, uptakes,"))
    extended = FindingsKnowledge.load(rules)
    rep = fx.report("x1", fx.BONE_SCAN_CODE, text="FINDINGS: Subcutaneous hyperfixation in the left calf.")
    facts = [f for f in extract_findings([rep], {}, now, [], extended).facts if f.kind == "finding"]
    assert [(f.attrs["concept"], f.attrs["site"], f.attrs["laterality"]) for f in facts] == [
        ("soft-tissue-uptake", "calf", "left")
    ]


def test_cited_references_exist() -> None:
    known = {r["id"] for r in yaml.safe_load((RULES_DIR / "references.yaml").read_text())["references"]}
    cited = set(yaml.safe_load((RULES_DIR / "findings" / "serial.yaml").read_text())["references"])
    for vs in yaml.safe_load((RULES_DIR / "valuesets" / "imaging.yaml").read_text())["valuesets"]:
        cited |= set(vs["references"])
    assert cited and cited <= known, cited - known


@pytest.mark.parametrize("splitter", ["pyrush", "pysbd"])
def test_medspacy_sentence_splitters_give_the_same_source_case_facts(tmp_path, now, knowledge, splitter) -> None:
    rules = copy_rules(tmp_path)
    path = rules / "findings" / "sections.yaml"
    path.write_text(path.read_text().replace("sentence_splitter: sentencizer", f"sentence_splitter: {splitter}"))
    other = FindingsKnowledge.load(rules)
    assert other.sentence_splitter == splitter
    reports = [fx.source_bone_scan_text_only(), fx.source_ct_text_only()]
    lesions = [("calf", "left")]

    def ids(k):
        return sorted(f.id for f in extract_findings(reports, {}, now, lesions, k).facts)

    assert ids(other) == ids(knowledge)


def test_concurrent_extraction_gives_the_same_facts(knowledge, now) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [
        f"FINDINGS: Heterogeneous subcutaneous uptake in the {side} {site}; no uptake in the {other}."
        for side in ("left", "right")
        for site in ("calf", "thigh", "buttock")
        for other in ("arms", "abdominal wall")
    ]
    reports = [fx.report(f"t{i}", fx.BONE_SCAN_CODE, text=t) for i, t in enumerate(texts)]
    expected = [extract_findings([r], {}, now, [], knowledge).facts for r in reports]
    knowledge.text_cache.clear()
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda r: extract_findings([r], {}, now, [], knowledge).facts, reports * 3))
    assert got == expected * 3


def test_another_layers_value_set_mistake_does_not_stop_findings(tmp_path) -> None:
    rules = copy_rules(tmp_path)
    (rules / "valuesets" / "other.yaml").write_text(
        "valuesets:\n  - id: some-drug-class\n    fact_kind: medication\n    codes:\n      - {code: '1'}\n"
    )
    assert FindingsKnowledge.load(rules).finding_valuesets  # loads; the other loader reports it
