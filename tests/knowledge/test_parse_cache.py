"""The YAML parse results of rules/ kept between starts (cds.yamlio.cached_parses, ADR 0014).

A hit gives exactly what a fresh parse gives; a changed byte under rules/, a changed parser (this
code, PyYAML) or an untrusted file is a miss; a broken file is parsed and reported with its place
even when the cache holds the results of the files before the break."""

from __future__ import annotations

import os
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

import cds.yamlio as yamlio
from cds.knowledge import load_bundle, parse_cache_directory
from cds.settings import Settings
from cds.yamlio import cached_parses, load_positioned, load_yaml
from tests.conftest import RULES_DIR


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(RULES_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(autouse=True)
def fresh_memory():
    """Each load below parses (or reads the disk cache) instead of taking this process's own results."""
    yamlio._PARSED.clear()
    yield
    yamlio._PARSED.clear()


def load(rules: Path, cache_dir: Path | None):
    yamlio._PARSED.clear()
    with cached_parses(rules, cache_dir) as cache:
        result = load_bundle(rules)
    return result, cache


def comparable(result):
    """The bundle's content: everything but the objects' identities (the rule set as its rules, cards,
    tests and version; the terminology's value sets; the findings; services; every diagnostic)."""
    bundle = result.bundle
    assert bundle is not None
    ruleset = bundle.ruleset
    return (
        ruleset.version,
        repr(sorted((f.name, repr(getattr(ruleset, f.name))) for f in fields(ruleset) if f.name != "rules_dir")),
        repr([bundle.terminology.valuesets, bundle.terminology.body_sites, bundle.terminology.analytes]),
        repr(
            [bundle.terminology.synonyms, bundle.terminology.loinc_to_analyte, sorted(bundle.terminology.biopsy_terms)]
        ),
        repr(bundle.findings),
        repr(bundle.services),
        result.diagnostics,
        result.consequences,
    )


def test_a_hit_gives_the_bundle_a_fresh_parse_gives(rules, tmp_path):
    fresh, _ = load(rules, None)
    first, cold = load(rules, tmp_path / "cache")
    second, warm = load(rules, tmp_path / "cache")
    assert cold.hits == 0 and cold.misses > 30
    assert warm.misses == 0 and warm.hits == cold.misses  # every parse of the start came from the cache
    assert comparable(fresh) == comparable(first) == comparable(second)


def test_every_shipped_rules_file_round_trips_exactly(tmp_path):
    """Each YAML file under rules/, both ways it is read: the cached result equals the parse, types included."""
    files = sorted(RULES_DIR.rglob("*.yaml"))
    assert len(files) > 30
    with cached_parses(RULES_DIR, tmp_path):
        parsed = {
            f: (load_yaml(f.read_text(encoding="utf-8")), load_positioned(f.read_text(encoding="utf-8"))) for f in files
        }
    yamlio._PARSED.clear()
    with cached_parses(RULES_DIR, tmp_path) as cache:
        for f, (data, doc) in parsed.items():
            text = f.read_text(encoding="utf-8")
            again, doc_again = load_yaml(text), load_positioned(text)
            assert repr(again) == repr(data) and again == data, f
            assert doc_again.positions == doc.positions and list(doc_again.positions) == list(doc.positions), f
            assert repr(doc_again.data) == repr(doc.data) and doc_again.duplicate_keys == doc.duplicate_keys, f
    assert cache is not None and cache.misses == 0 and cache.hits == 2 * len(files)


def test_a_cached_result_is_a_copy_of_its_own(tmp_path):
    text = "a:\n  b: [1, 2]\n"
    with cached_parses(RULES_DIR, tmp_path):
        load_positioned(text).data["a"]["b"].append(3)
    with cached_parses(RULES_DIR, tmp_path) as cache:
        first = load_positioned(text)
        first.data["a"]["b"].append(4)
        assert load_positioned(text).data == {"a": {"b": [1, 2]}}
    assert cache is not None and cache.hits == 2


def test_any_changed_byte_under_rules_misses(rules, tmp_path):
    load(rules, tmp_path)
    # a byte in a file no parse reads (a case's JSON) still names another version of rules/
    case = next(rules.rglob("*.json"))
    case.write_bytes(case.read_bytes() + b"\n")
    _, after = load(rules, tmp_path)
    assert after.hits == 0 and after.misses > 30


def test_another_parser_code_or_library_version_misses(rules, tmp_path, monkeypatch):
    load(rules, tmp_path)
    _, again = load(rules, tmp_path)
    assert again.misses == 0
    monkeypatch.setattr(yaml, "__version__", yaml.__version__ + ".post1")
    monkeypatch.setattr(yamlio, "_IDENTITY", [])
    _, other_library = load(rules, tmp_path)
    assert other_library.hits == 0
    monkeypatch.undo()
    monkeypatch.setattr(yamlio, "_IDENTITY", [])
    real = Path.read_bytes

    def edited_code(path: Path) -> bytes:
        data = real(path)
        return data + b"\n# edited\n" if path == Path(yamlio.__file__) else data

    monkeypatch.setattr(Path, "read_bytes", edited_code)
    _, other_code = load(rules, tmp_path)
    assert other_code.hits == 0


def test_a_broken_file_with_a_warm_cache_fails_with_its_place(rules, tmp_path):
    good, _ = load(rules, tmp_path)
    assert good.bundle is not None
    (warm,) = tmp_path.glob("*.jsonl")
    target = rules / "findings" / "sites.yaml"
    text = target.read_text(encoding="utf-8")
    target.write_text(text + "\nbroken: [unclosed\n", encoding="utf-8")
    # the worst case: every result of the good start filed under the broken tree's name
    tree = yamlio.tree_digest(rules)
    header, *entries = warm.read_bytes().split(b"\n")
    header = header.replace(warm.stem.encode(), tree.encode())
    (tmp_path / f"{tree}.jsonl").write_bytes(b"\n".join([header, *entries]))
    os.chmod(tmp_path / f"{tree}.jsonl", 0o600)
    broken, cache = load(rules, tmp_path)
    assert cache is not None and cache.hits > 0  # the other files did come from the cache
    assert broken.bundle is None
    errors = [d for d in broken.errors if d.file.endswith("sites.yaml")]
    assert errors and errors[0].line > text.count("\n")  # the line of the break, not 1:1
    # the broken text is never stored: the next start parses (and reports) it again
    again, _ = load(rules, tmp_path)
    assert again.bundle is None and [d.line for d in again.errors] == [d.line for d in broken.errors]


def test_a_result_json_cannot_give_back_is_parsed_every_time(tmp_path):
    texts = [
        "when: 2024-01-31\n",
        "1: one\n",
        "x: .inf\n",
        "x: .nan\n",
        "big: 123456789012345678901234567890\n",
        "s: !!set {a, b}\n",
        "b: !!binary aGVsbG8=\n",
        "o: !!omap [a: 1, b: 2]\n",
    ]
    for text in texts:
        with cached_parses(RULES_DIR, tmp_path):
            first, first_doc = load_yaml(text), load_positioned(text)
        yamlio._PARSED.clear()
        with cached_parses(RULES_DIR, tmp_path) as cache:
            assert repr(load_yaml(text)) == repr(first)
        assert cache is not None and cache.hits == 0, text
        with cached_parses(RULES_DIR, tmp_path):  # (the positioned reading builds a !!set as a mapping: kept)
            again = load_positioned(text)
        assert repr(again.data) == repr(first_doc.data) and again.positions == first_doc.positions, text
    # the positive control: a plain text of the same shape is kept
    with cached_parses(RULES_DIR, tmp_path):
        load_yaml("when: '2024-01-31'\n")
    yamlio._PARSED.clear()
    with cached_parses(RULES_DIR, tmp_path) as cache:
        assert load_yaml("when: '2024-01-31'\n") == {"when": "2024-01-31"}
    assert cache is not None and cache.hits == 1


def test_a_file_someone_else_may_write_is_not_trusted(rules, tmp_path):
    load(rules, tmp_path)
    (stored,) = tmp_path.glob("*.jsonl")
    os.chmod(stored, 0o666)
    _, cache = load(rules, tmp_path)
    assert cache is not None and cache.hits == 0


def test_a_corrupt_file_means_parse(rules, tmp_path):
    load(rules, tmp_path)
    (stored,) = tmp_path.glob("*.jsonl")
    lines = stored.read_bytes().split(b"\n")
    stored.write_bytes(b"\n".join([lines[0], *(line[:-5] for line in lines[1:] if line)]) + b"\n")
    result, cache = load(rules, tmp_path)
    assert result.bundle is not None and cache is not None and cache.hits == 0


def test_the_cache_lives_beside_the_verdicts_and_can_be_turned_off(tmp_path):
    assert parse_cache_directory(Settings(rule_test_verdicts_dir=tmp_path)) == tmp_path / "parsed-rules"
    assert parse_cache_directory(Settings(rules_parse_cache_dir=tmp_path / "p")) == tmp_path / "p"
    assert parse_cache_directory(Settings(rules_parse_cache=False)) is None


def test_an_entry_of_another_shape_means_parse(tmp_path):
    text = "a: 1\n"
    with cached_parses(RULES_DIR, tmp_path):
        expected = load_positioned(text)
    (stored,) = tmp_path.glob("*.jsonl")
    header, *entries = stored.read_bytes().split(b"\n")
    entries = [e.split(b"\t")[0] + b'\t{"data": {"a": 2}}' for e in entries if e]
    stored.write_bytes(b"\n".join([header, *entries]) + b"\n")
    with cached_parses(RULES_DIR, tmp_path):
        again = load_positioned(text)
    assert again.data == expected.data == {"a": 1} and again.positions == expected.positions
