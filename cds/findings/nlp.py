"""The report-text pipeline (medspaCy: tokenizer, sentences, target rules, ConText, sections), built once per
findings knowledge and cached by its digest; the per-pipeline parse lock. cds.findings.text reads
report text with it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cds.findings.knowledge import FindingsKnowledge

COLD_START: dict[str, float] = {}  # seconds: "import" and "build", filled on first use


class _DeferredModule(types.ModuleType):
    """Stands in for a module that is imported but not used: the real one is imported on the first
    attribute read, and then answers every read (also through this object, which importers kept)."""

    def __init__(self, name: str, package: bool) -> None:
        super().__init__(name)
        self._cds_is_package = package  # a name no stood-in module has: reads of it are not forwarded

    def __getattr__(self, name: str) -> Any:
        if name == "__path__" and not self._cds_is_package:
            # `from m import x` asks a module whether it is a package first; answering would import it
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def _spacy_info(*args: Any, **kwargs: Any) -> Any:
    """``spacy.info`` when ``spacy.cli.info`` was stood in for at import: the real one, imported now."""
    if isinstance(sys.modules.get("spacy.cli.info"), _DeferredModule):
        del sys.modules["spacy.cli.info"]
    return importlib.import_module("spacy.cli.info").info(*args, **kwargs)


def _defer_unused_imports() -> None:
    """Imports that the report-text pipeline never uses, stood in for until something reads them
    (docs/adr/0014-cold-start.md):

    * medspaCy 1.3 imports QuickUMLS at its top (``medspacy.util``), and QuickUMLS imports NLTK and
      its corpus readers: ~0.3 s of CPU, 80% of importing medspaCy, for a component this service
      never adds (QuickUMLS calls NLTK only to read stop words when it is built);
    * ``import spacy`` runs ``from .cli.info import info``, which imports spaCy's whole command line
      (typer, requests, jinja2, the training loop): ~0.1 s. ``spacy.info`` stays callable;
    * ``spacy.util`` imports langcodes (its tables compile ~50 regular expressions) for language-name
      matching, which ``spacy.blank("en")`` does not do."""
    for name in ("nltk", "langcodes"):
        if name not in sys.modules and importlib.util.find_spec(name) is not None:
            sys.modules[name] = _DeferredModule(name, package=True)
    if "spacy" not in sys.modules and "spacy.cli.info" not in sys.modules:
        stand_in = _DeferredModule("spacy.cli.info", package=False)
        stand_in.info = _spacy_info  # type: ignore[attr-defined]
        sys.modules["spacy.cli.info"] = stand_in


# Before anything imports medspaCy: cds.findings.lexicon imports it as well, after this module.
_defer_unused_imports()


class TextExtractionUnavailable(RuntimeError):
    """medspaCy could not be imported or the pipeline could not be built."""


# Pipelines by knowledge digest, shared by every load of the same findings rules: a rule
# reload (or a test) that leaves rules/findings unchanged does not pay the ~1.5 s build again.
# Bounded, so a long run of edited reloads keeps at most a few pipelines alive.
_PIPELINES: dict[str, Any] = {}
_PIPELINES_MAX = 4
_PIPELINES_LOCK = threading.Lock()


def get_pipeline(knowledge: FindingsKnowledge) -> Any:
    """The medspaCy pipeline of this rule set, built on first use (thread-safe)."""
    box = knowledge._nlp_box
    if box:
        return box[0]
    with knowledge._nlp_lock:
        if not box:
            with _PIPELINES_LOCK:
                nlp = _PIPELINES.get(knowledge.digest)
            if nlp is None:
                nlp = _build_pipeline(knowledge)
                with _PIPELINES_LOCK:
                    while len(_PIPELINES) >= _PIPELINES_MAX:
                        _PIPELINES.pop(next(iter(_PIPELINES)))
                    _PIPELINES[knowledge.digest] = nlp
            box.append(nlp)
    return box[0]


_PARSE_LOCKS: dict[int, threading.Lock] = {}
_PARSE_LOCKS_GUARD = threading.Lock()


def _parse_lock(nlp: Any) -> threading.Lock:
    # One lock per vocabulary: the pipelines of ``blank_pipeline`` share theirs and their tokenizer,
    # so they parse one at a time. Keyed by id(): a Vocab is not hashable by value; a reused id
    # after one is freed only means two pipelines share a lock, which is still correct.
    with _PARSE_LOCKS_GUARD:
        return _PARSE_LOCKS.setdefault(id(nlp.vocab), threading.Lock())


_SHARED_TOKENIZER = "cds.shared_medspacy_tokenizer.v1"
_BLANK: list[Any] = []
_BLANK_LOCK = threading.Lock()


def blank_pipeline() -> Any:
    """A blank English pipeline with medspaCy's tokenizer, sharing its vocabulary and tokenizer with
    every other pipeline made here (report text, the concept lexicon, biopsy terms; every reload).

    Building spaCy's English tokenizer and then medspaCy's (each adds some 2,700 special cases)
    cost ~0.25 s of CPU a pipeline (benchmarks/startup_profile.py); the second and later
    pipelines now take ~0.02 s. Only medspaCy's is built: the first pipeline gets it from the
    tokenizer factory registered here, instead of spaCy's default one being built and replaced
    (~0.1 s of a cold start). Neither tokenizer depends on the rules."""
    import spacy

    config = {"nlp": {"tokenizer": {"@tokenizers": _SHARED_TOKENIZER}}}
    with _BLANK_LOCK:
        if not _BLANK:
            shared: list[Any] = []

            def shared_tokenizer(nlp: Any) -> Any:
                if not shared:  # the first pipeline's vocabulary; every later one is given the same
                    shared.append(_medspacy_tokenizer(nlp))
                return shared[0]

            spacy.util.registry.tokenizers.register(_SHARED_TOKENIZER, func=lambda: shared_tokenizer)
            first = spacy.blank("en", config=config)
            _BLANK.append(first.vocab)
            return first
        vocab = _BLANK[0]
    return spacy.blank("en", vocab=vocab, config=config)


def _medspacy_tokenizer(nlp: Any) -> Any:
    """``medspacy.custom_tokenizer.create_medspacy_tokenizer`` for a pipeline under construction.

    It reads the language defaults, the vocabulary and the default tokenizer's ``token_match`` (which
    is ``Defaults.token_match``); the pipeline has no tokenizer yet, so it is given those three."""
    from types import SimpleNamespace

    from medspacy.custom_tokenizer import create_medspacy_tokenizer

    defaults = type(nlp).Defaults
    return create_medspacy_tokenizer(
        SimpleNamespace(vocab=nlp.vocab, Defaults=defaults, tokenizer=SimpleNamespace(token_match=defaults.token_match))
    )


@contextmanager
def _quiet_matchers() -> Iterator[None]:
    # spaCy's Matcher warns (W036) on every call when a medspaCy rule set has only phrase rules,
    # which is normal here. Scoped rather than global so that no other warning is hidden; it
    # runs under the parse lock, so no second parse changes the filters meanwhile.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\[W036\]")
        yield


def _build_pipeline(knowledge: FindingsKnowledge) -> Any:
    with _quiet_matchers():
        return _build_pipeline_inner(knowledge)


def _build_pipeline_inner(knowledge: FindingsKnowledge) -> Any:
    t0 = time.perf_counter()
    try:
        import medspacy
        from loguru import logger as loguru_logger
        from medspacy.context import ConTextRule
        from medspacy.section_detection import SectionRule
        from medspacy.target_matcher import TargetRule
    except ImportError as exc:  # pragma: no cover - exercised only without medspaCy installed
        raise TextExtractionUnavailable(f"medspaCy is not importable: {exc}") from exc
    # PyRuSH logs every sentence boundary at DEBUG through loguru; that is slow and would put
    # report text into the logs.
    loguru_logger.disable("PyRuSH")
    t1 = time.perf_counter()
    COLD_START.setdefault("import_s", t1 - t0)

    _register_line_breaks()
    nlp = blank_pipeline()
    if knowledge.sentence_splitter == "pyrush":
        rush_rules = Path(medspacy.__file__).resolve().parents[1] / "resources" / "en" / "rush_rules.tsv"
        nlp.add_pipe("medspacy_pyrush", config={"rules_path": str(rush_rules)})
    elif knowledge.sentence_splitter == "pysbd":
        nlp.add_pipe("medspacy_pysbd")
    else:
        # Default: spaCy's rule sentencizer plus a break at every line end. PyRuSH (medspaCy's
        # default) is pure Python and took ~28 of 31 ms on a 2 kB bone-scan report here; this
        # takes ~1 ms and splits radiology reports (one statement per line or per full stop)
        # just as well on the corpus (ADR 0003).
        nlp.add_pipe("sentencizer", config={"punct_chars": [".", "!", "?"]})
        nlp.add_pipe("findings_line_breaks")

    targets = nlp.add_pipe("medspacy_target_matcher", name="findings_targets")
    rules = []
    for t in knowledge.targets:
        rules += [TargetRule(p, t.id) for p in t.phrases]
        rules += [TargetRule(f"{t.id}#{i}", t.id, pattern=pat) for i, pat in enumerate(t.patterns)]
    targets.add(rules)

    sites = nlp.add_pipe(
        "medspacy_target_matcher",
        name="findings_sites",
        config={"result_type": "group", "span_group_name": "findings_sites", "prune": True},
    )
    site_rules = []
    for s in knowledge.sites.values():
        site_rules += [TargetRule(p, f"site|{s.id}|single") for p in s.terms]
        site_rules += [TargetRule(p, f"site|{s.id}|plural") for p in s.plural]
    for lat, phrases in knowledge.laterality_phrases.items():
        site_rules += [TargetRule(p, f"lat|{lat}") for p in phrases]
    site_rules += [TargetRule(p, "nosite|-") for p in knowledge.not_site_phrases]
    sites.add(site_rules)

    quals = nlp.add_pipe(
        "medspacy_target_matcher",
        name="findings_qualifiers",
        config={"result_type": "group", "span_group_name": "findings_qualifiers", "prune": True},
    )
    quals.add([TargetRule(q.phrase, f"q|{q.group}|{q.value}|{q.attach}") for q in knowledge.qualifiers])

    # prune_on_target_overlap: a modifier word inside a target is part of it ("kidneys are not
    # visualised" is one finding, not a negated one).
    context = nlp.add_pipe(
        "medspacy_context", config={"rules": None, "span_attrs": None, "prune_on_target_overlap": True}
    )
    ctx_rules = []
    for category, by_dir in knowledge.modifiers.items():
        # Set per rule: ConText's global `terminating_types` config arrives as spent iterators
        # through spaCy's config system (medspaCy 1.3.1) and then terminates nothing.
        ends = set(knowledge.terminated_by.get(category, ()))
        scope = knowledge.modifier_max_scope.get(category)
        for direction, phrases in by_dir.items():
            ctx_rules += [
                ConTextRule(p, category, direction=direction, terminated_by=set(ends), max_scope=scope) for p in phrases
            ]
    context.add(ctx_rules)

    sectionizer = nlp.add_pipe("medspacy_sectionizer", config={"rules": None, "span_attrs": None})
    sectionizer.add(
        [SectionRule(p, category) for category, phrases in knowledge.section_phrases.items() for p in phrases]
    )
    COLD_START.setdefault("build_s", time.perf_counter() - t1)
    return nlp


def _register_line_breaks() -> None:
    from spacy.language import Language

    if "findings_line_breaks" in Language.factories:
        return

    @Language.component("findings_line_breaks")
    def line_breaks(doc: Any) -> Any:
        # A line break ends a sentence: report lines ("FINDINGS: ...", list items) often have no
        # full stop, and a negation must not run on into the next line.
        for token in doc[:-1]:
            if token.is_space and "\n" in token.text:
                doc[token.i + 1].is_sent_start = True
        return doc
