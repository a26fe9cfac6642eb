"""Start-up cost: the commands import only what they use (issue 17 item 7, issue 20 item 3).

Each check runs in a fresh interpreter and reads ``sys.modules`` at the end, so it sees every
import the command made, however indirect. The positive controls (a case with a bone-scan report
does start medspaCy; ``cds feedback`` does import SQLAlchemy) show the checks can fail.
The time these imports cost is measured in benchmarks/bench_authoring.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO, RULES_DIR

REQUESTS = REPO / "fhir_examples" / "requests"
SMALL_CASE = REQUESTS / "control-esrd-no-skin-findings.patient-view.json"  # no report text
SOURCE_CASE = REQUESTS / "source-case.patient-view.json"  # a bone-scan report
HEAVY = ("medspacy", "spacy", "sqlalchemy", "alembic", "jwt", "httpx", "fastapi", "uvicorn", "durable", "dask")

PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
code = 0
if argv:
    from cds.cli import main
    code = main(argv)
else:
    import cds.cli
print(json.dumps({"code": code, "loaded": sorted(m for m in HEAVY if m in sys.modules)}), file=sys.stderr)
"""


def _run(*argv: str) -> tuple[int, set[str], str]:
    """Exit code of ``cds ARGV`` in a fresh interpreter, the heavy packages it imported, its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = f"HEAVY = {HEAVY!r}\n{PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(list(argv))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return report["code"], set(report["loaded"]), result.stdout


def test_importing_the_command_line_imports_no_heavy_package():
    code, loaded, _ = _run()
    assert code == 0
    assert loaded == set()


def test_evaluate_without_report_text_never_starts_the_text_pipeline_or_the_store():
    code, loaded, out = _run("evaluate", str(SMALL_CASE), "--rules", str(RULES_DIR))
    assert code == 0 and "card(s)" in out
    assert not loaded & {"medspacy", "spacy", "sqlalchemy", "alembic", "jwt", "httpx", "fastapi", "uvicorn", "dask"}, (
        loaded
    )


def test_evaluate_with_a_report_starts_the_text_pipeline_when_it_needs_it():
    code, loaded, out = _run("evaluate", str(SOURCE_CASE), "--rules", str(RULES_DIR))
    assert code == 0 and "card(s)" in out
    assert {"medspacy", "spacy"} <= loaded


def test_rule_tests_on_facts_alone_never_start_the_text_pipeline():
    code, loaded, out = _run(
        "rules", "test", "--engine", "reference", "--only", "^warfarin-window-is-anchored", "--rules", str(RULES_DIR)
    )
    assert code == 0 and "1 passed" in out
    assert not loaded & {"medspacy", "spacy", "sqlalchemy", "alembic"}, loaded


def test_the_store_is_imported_by_the_command_that_uses_it():
    code, loaded, out = _run("feedback", "report", "--database-url", "sqlite://", "--json")
    assert code == 0 and json.loads(out)
    assert "sqlalchemy" in loaded


def test_the_help_and_a_mistyped_command_still_list_every_command(capsys):
    from cds.cli import build_parser

    listed = build_parser([]).format_help()
    assert all(name in listed for name in ("evaluate", "rules", "feedback", "terminology", "screen", "studio"))
    mistyped = subprocess.run(
        [sys.executable, "-m", "cds.cli", "evalute"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert mistyped.returncode == 2 and "'feedback'" in mistyped.stderr and "'rules'" in mistyped.stderr


def test_the_text_pipelines_share_one_tokenizer_and_one_parse_lock():
    """Report text, the concept lexicon and the biopsy terms: one tokenizer built, not three; since
    they share it, they parse under one lock (a shared tokenizer is never used by two threads)."""
    from cds.fhir import Terminology
    from cds.findings.text import _parse_lock, get_pipeline

    terminology = Terminology.load(RULES_DIR)
    assert terminology.findings_knowledge is not None
    report = get_pipeline(terminology.findings_knowledge)
    lexicon = terminology._lexicon_matcher()
    biopsy = terminology.biopsy_matcher()
    assert lexicon is not None and biopsy is not None
    pipelines = [report, lexicon.pipeline(), biopsy.pipeline()]
    assert len({id(nlp.tokenizer) for nlp in pipelines}) == 1
    assert len({id(nlp.vocab) for nlp in pipelines}) == 1
    assert len({id(_parse_lock(nlp)) for nlp in pipelines}) == 1
    # the shared tokenizer is medspaCy's, not spaCy's English one (which keeps "BP:120/80" whole)
    assert [t.text for t in pipelines[1].tokenizer("BP:120/80")] == ["BP", ":", "120", "/", "80"]


def test_a_text_read_by_several_layers_is_parsed_once_and_each_reader_gets_its_own_copy(monkeypatch):
    import yaml

    from cds import yamlio

    text = (
        "valuesets:\n- id: x-test-once\n"
        "  codes: [{system: http://snomed.info/sct, code: '95324008'}]\n  at: 2026-01-02\n"
    )
    parses = []
    real_load = yaml.load
    monkeypatch.setattr(yaml, "load", lambda *a, **k: parses.append(1) or real_load(*a, **k))
    first = yamlio.load_yaml(text)
    first["valuesets"][0]["id"] = "changed by one reader"
    second = yamlio.load_yaml(text)
    assert len(parses) == 1
    assert second["valuesets"][0]["id"] == "x-test-once" and str(second["valuesets"][0]["at"]) == "2026-01-02"
    assert second is not first


def test_every_command_registered_elsewhere_is_found_when_asked_for_alone():
    from cds.cli import _REGISTERED_ELSEWHERE, build_parser

    full = build_parser([]).format_help()
    for added, _, _ in _REGISTERED_ELSEWHERE:
        for name in added:
            assert name in full
            alone = build_parser([name]).format_help()
            assert name in alone, f"`cds {name}` would not find its command"


HTTPX_PROBE = """
import json, sys
import cds.app
before = sorted(m for m in ("rich", "pygments", "httpx._main") if type(sys.modules.get(m)).__name__ == "module")
import httpx
from httpx._main import print_help  # any other read imports the real command line
after = sorted(m for m in ("rich", "pygments") if m in sys.modules)
print(json.dumps({"before": before, "after": after, "help": callable(print_help)}))
httpx.main(["--help"])
"""


def test_the_app_does_not_import_httpx_command_line_until_it_is_used():
    """httpx imports its command-line client (rich, pygments) at its top; the service stands in for it
    (cds.deferred_imports): the app never loads it, and httpx.main still runs the real one."""
    result = subprocess.run(
        [sys.executable, "-c", HTTPX_PROBE],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[0])
    assert report["before"] == [] and report["help"]
    assert report["after"] == ["pygments", "rich"]  # the positive control: the real module did load
    assert "Usage" in result.stdout  # the real command line answered --help
