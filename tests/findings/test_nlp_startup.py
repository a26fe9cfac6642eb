"""What the report-text pipeline loads at start (docs/adr/0014-cold-start.md): the same tokens as
medspaCy's own tokenizer, built once; NLTK (imported by QuickUMLS, never used here) left unimported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cds.findings.nlp import blank_pipeline

REPO = Path(__file__).resolve().parents[2]


def fresh_interpreter(probe: str) -> list[str]:
    """The lines ``probe`` prints in a new interpreter: what a process imports depends on what ran before."""
    return (
        subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=300)
        .stdout.strip()
        .splitlines()
    )


TEXTS = [
    "Patient c/o chf+cp, 1.5 mg daily. Tc-99m MDP bone scan: see http://example.org/x?y=1.",
    "IMPRESSION:\n1. Heterogeneous soft-tissue uptake in the L thigh (e.g. calcinosis); Dr. Smith's note.\n",
    "No abnormal uptake.  Kidneys aren't visualised; BUN/Cr 3.2/8.1 -- don't rule out calciphylaxis!",
    "Bilateral calves: linear (vascular?) calcification > 2cm, s/p parathyroidectomy 2019-03-04.",
]


def test_the_shared_tokenizer_splits_as_medspacys_own():
    spacy = pytest.importorskip("spacy")
    from medspacy.custom_tokenizer import create_medspacy_tokenizer

    reference = spacy.blank("en")
    reference.tokenizer = create_medspacy_tokenizer(reference)  # what medspacy.load() does
    nlp = blank_pipeline()
    for text in TEXTS:
        assert [t.text for t in nlp.make_doc(text)] == [t.text for t in reference.make_doc(text)]


def test_later_pipelines_share_the_vocabulary_and_the_tokenizer():
    first, second = blank_pipeline(), blank_pipeline()
    assert first.vocab is second.vocab and first.tokenizer is second.tokenizer


def test_building_the_text_pipelines_imports_neither_nltk_nor_spacys_command_line():
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cds.knowledge import load_bundle\n"
        "from cds.fhir import warm_up\n"
        "warm_up(load_bundle(Path('rules')).raise_for_errors().terminology)\n"
        "import medspacy, quickumls\n"
        "print(sorted(m for m in sys.modules if m.startswith(('nltk', 'langcodes'))))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('spacy.cli', 'typer', 'requests', 'weasel'))))\n"
    )
    nltk, command_line = fresh_interpreter(probe)[-2:]
    assert nltk == "['langcodes', 'nltk']"  # only the stand-ins (cds.findings.nlp)
    assert command_line == "['spacy.cli.info']"  # only the stand-in


def test_nltk_and_langcodes_still_work_when_something_uses_them():
    probe = (
        "import sys, cds.findings.nlp, medspacy\n"
        "import nltk\n"
        "from nltk.tokenize import wordpunct_tokenize\n"
        "print(nltk.__version__ != '', wordpunct_tokenize('a-b'), type(sys.modules['nltk']).__name__)\n"
        "from spacy.util import find_matching_language\n"
        "print(find_matching_language('en-US'), type(sys.modules['langcodes']).__name__)\n"
    )
    assert fresh_interpreter(probe) == ["True ['a', '-', 'b'] module", "en module"]


def test_spacys_info_and_command_line_still_work():
    probe = (
        "import cds.findings.nlp, spacy\n"
        "print(sorted(spacy.info(silent=True))[:2])\n"
        "from spacy.cli.info import info_cli\n"
        "import spacy.cli\n"
        "print(callable(info_cli), callable(spacy.cli.setup_cli))\n"
    )
    assert fresh_interpreter(probe) == ["['location', 'pipelines']", "True True"]
