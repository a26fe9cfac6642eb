"""The knowledge bundle (cds.knowledge, ADR 0011): one loader for every file kind under rules/.

A mistake planted in a copy of rules/ is reported by ``load_bundle`` (and so by ``cds rules
validate``, ``lint`` and a reload) as ``rules/<file>:<line>:<col>: CODE message``, at the line
where it was planted, with the stable code of its file kind.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cds.cli import main
from cds.diagnostics import CODES, KnowledgeError
from cds.knowledge import KnowledgeBundle, load_bundle, load_bundle_or_raise
from tests.conftest import RULES_DIR

# (file under rules/, text to find, what to put there, the code that must be reported there)
PLANTED = [
    ("ruleset.yaml", '  version: "0.2.0"', '  versoin: "0.2.0"', "E002"),
    ("hypotheses.yaml", "  - id: calciphylaxis\n", "  - id: calciphylaxis\n    colour: red\n", "E002"),
    ("references.yaml", "  - id: paul-2015\n", "  - id: paul-2015\n    colour: red\n", "E002"),
    ("cards.yaml", "  - id: calciphylaxis-risk\n", "  - id: calciphylaxis-risk\n    colour: red\n", "E002"),
    ("rules/risk-factors.yaml", "  - id: risk-female-sex\n", "  - id: risk-female-sex\n    colour: red\n", "E002"),
    (
        "rules/orders.tests.yaml",
        "- id: s8-ckd-4-by-egfr-is-in-the-service-population\n",
        "- id: s8-ckd-4-by-egfr-is-in-the-service-population\n  colour: red\n",
        "E002",
    ),
    ("cases/cases.tests.yaml", "- id: case-source-case\n", "- id: case-source-case\n  colour: red\n", "E002"),
    (
        "valuesets/kidney.yaml",
        'code: "N18.6", display: "End stage renal disease", confidence: V',
        'code: "N18.6", display: "End stage renal disease", confidence: X',
        "E050",
    ),
    ("valuesets/lexicon.yaml", "  - valueset: vitamin-k-antagonist\n", "  - valueset: no-such-value-set\n", "E050"),
    ("analytes.yaml", "factor: 4.008", "factor: -4.008", "E050"),
    ("findings/sites.yaml", "    parent: lower-leg\n", "    parent: no-such-site\n", "E051"),
    ("findings/targets.yaml", "    head: uptake\n", "    head: uptakes\n", "E051"),
    ("findings/modalities.yaml", "valuesets: [ct-imaging]", "valuesets: [ct-scan]", "E051"),
    ("findings/concepts.yaml", "site_class: [visceral]", "site_class: [viscera]", "E051"),
    ("findings/qualifiers.yaml", "      faint: [faint,", "      feint: [faint,", "E051"),
    ("services.yaml", "  - id: calciphylaxis-risk\n", "  - id: calciphylaxis risk\n", "E052"),
]


def _plant(tmp_path: Path, relative: str, old: str, new: str) -> tuple[Path, int]:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules, ignore=shutil.ignore_patterns("schema.json"))
    path = rules / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, (relative, old)
    at = text.index(old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    # the line of the first character that differs
    changed = at + next(i for i, (a, b) in enumerate(zip(old + "\0", new + "\0", strict=False)) if a != b)
    return rules, text[:changed].count("\n") + 1


@pytest.mark.parametrize(("relative", "old", "new", "code"), PLANTED, ids=[p[0] for p in PLANTED])
def test_every_file_kind_reports_a_planted_mistake_at_its_line_with_a_stable_code(
    tmp_path: Path, relative: str, old: str, new: str, code: str
) -> None:
    rules, line = _plant(tmp_path, relative, old, new)
    result = load_bundle(rules)
    assert result.bundle is None
    shown = f"rules/{relative}"
    here = [d for d in result.errors if d.file == shown and d.code == code]
    assert here, [str(d) for d in result.errors[:5]]
    assert any(d.line == line and d.column >= 1 for d in here), ([str(d) for d in here], line)
    first = next(d for d in here if d.line == line)
    assert re.fullmatch(rf"{re.escape(shown)}:{line}:\d+: {code} .+", str(first))
    assert code in CODES and CODES[code][0] == "error"
    with pytest.raises(KnowledgeError) as raised:
        load_bundle_or_raise(rules)
    assert first in raised.value.diagnostics


def test_the_served_rules_load_into_one_immutable_bundle() -> None:
    bundle = load_bundle_or_raise(RULES_DIR)
    assert isinstance(bundle, KnowledgeBundle)
    assert bundle.version == bundle.ruleset.version
    # the one body-site vocabulary: the FHIR layer's sites are the findings vocabulary's
    assert bundle.findings is not None and bundle.terminology.findings_knowledge is bundle.findings
    assert set(bundle.terminology.body_sites) == set(bundle.findings.sites)
    assert {s.id for s in bundle.services} >= {"calciphylaxis-risk"}
    with pytest.raises(AttributeError):
        bundle.ruleset = None  # type: ignore[misc]


def test_a_broken_findings_vocabulary_fails_rules_validate_and_lint(tmp_path: Path, capsys) -> None:
    rules, line = _plant(tmp_path, "findings/sites.yaml", "    parent: lower-leg\n", "    parent: no-such-site\n")
    assert main(["rules", "validate", "--rules", str(rules)]) != 0
    err = capsys.readouterr().err
    assert f"rules/findings/sites.yaml:{line}:" in err and "E051" in err and "no-such-site" in err
    assert main(["rules", "lint", "--rules", str(rules)]) != 0
    assert main(["rules", "validate", "--rules", str(RULES_DIR)]) == 0


def test_a_broken_findings_vocabulary_refuses_the_pipeline_naming_the_file(tmp_path: Path) -> None:
    from cds.pipeline import Pipeline, RulesetLoadError

    rules, line = _plant(tmp_path, "findings/sites.yaml", "    parent: lower-leg\n", "    parent: no-such-site\n")
    with pytest.raises(RulesetLoadError) as raised:
        Pipeline.load(rules, engine="reference", run_tests=False, warm=False)
    assert raised.value.lines and raised.value.lines[0].startswith(f"rules/findings/sites.yaml:{line}:")


def test_the_icd10cm_site_grammar_names_only_sites_of_the_one_vocabulary() -> None:
    """cds.fhir.conditions reads site and side out of ICD-10-CM ulcer codes (L97 non-pressure
    chronic ulcer of lower limb, L98.4 of other sites, I70.23/.24 atherosclerosis with ulceration,
    E11.621 diabetic foot ulcer); every site it names is a site of rules/findings/sites.yaml."""
    from cds.fhir.conditions import icd_site

    bundle = load_bundle_or_raise(RULES_DIR)
    assert bundle.findings is not None
    codes = [f"L97.{s}{side}{sev}" for s in "12345789" for side in "129" for sev in "129"]
    codes += [f"L98.4{s}{sev}" for s in "129" for sev in "129"]
    codes += [f"I70.{leg}{s}" for leg in ("23", "24") for s in "1234589"]
    codes += ["E11.621", "E10.621"]
    named = {icd_site(code).get("site") for code in codes} - {None}
    assert named >= {"thigh", "lower-leg", "ankle", "foot", "buttock"}
    assert named <= set(bundle.findings.sites), named - set(bundle.findings.sites)
