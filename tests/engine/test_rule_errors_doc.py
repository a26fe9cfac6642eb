"""docs/rule-errors.md (issue 17 item 9): one section per diagnostic code, with a wrong and a right example,
kept in step with the code table; messages link to their section."""

from __future__ import annotations

import re

from cds.cli import main
from cds.engine.diagnostics import CODES, Diagnostic
from tests.conftest import REPO
from tests.engine.helpers import copy_rules

PAGE = REPO / "docs" / "rule-errors.md"


def sections() -> dict[str, str]:
    text = PAGE.read_text(encoding="utf-8")
    parts = re.split(r"^## ([EWN]\d{3})\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_code_has_a_section_and_every_section_a_code():
    assert list(sections()) == list(CODES)


def test_each_section_says_what_it_means_and_shows_a_wrong_and_a_right_example():
    for code, body in sections().items():
        assert CODES[code][1] in body, code
        assert "Wrong:" in body and "Right:" in body and body.count("```yaml") == 2, code


def test_the_page_itself_has_no_invisible_or_bidirectional_characters():
    from cds.engine.safety import scan_characters

    assert scan_characters(PAGE.read_text(encoding="utf-8")) == []


def test_messages_link_to_their_section(tmp_path, capsys):
    assert Diagnostic("rules/x.yaml", 3, 5, "E016", "bad").with_link().endswith("[docs/rule-errors.md#e016]")
    rules = copy_rules(tmp_path)
    path = rules / "rules" / "risk-factors.yaml"
    path.write_text(path.read_text().replace("likelihood_ratio: 3.0", "likelihood_ratio: .nan", 1))
    assert main(["rules", "validate", "--rules", str(rules)]) == 1
    err = capsys.readouterr().err
    assert "E016" in err and "[docs/rule-errors.md#e016]" in err
