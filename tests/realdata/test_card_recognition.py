"""The card's evidence says how a finding or an order was recognised (issue 13, ADR 0005).

A drug, lesion or biopsy result that only text named carries "from the text '...'" (or "from the
report '...'") on its card line; one that a code named does not: a code always outranks text. The
card keeps its budget (issue 15: detail about 600 characters) with the note on it.
"""

from __future__ import annotations

from tests.realdata.helpers import example, post
from tests.realdata.test_sandbox_client import RXNORM, _confirmed_case_as_sandbox_patient

DETAIL_LIMIT = 600


def _vka_card(response) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    cards = [c for c in response.json()["cards"] if "arfarin" in c["summary"]]
    assert cards, [c["summary"] for c in response.json()["cards"]]
    return cards[0]


def test_brand_name_order_known_only_by_text_says_so_on_the_card() -> None:
    # The sandbox's draft shape, the drug named only as a brand (no RxNorm coding the service lists).
    body = _confirmed_case_as_sandbox_patient(
        {"system": RXNORM, "code": "999999990", "display": "Coumadin 5 MG Oral Tablet"}, "Coumadin 5 MG Oral Tablet"
    )
    card = _vka_card(post("calciphylaxis-order-sign", body))
    assert "Order recognised from the text 'coumadin'" in card["detail"], card["detail"]
    assert len(card["detail"]) <= DETAIL_LIMIT


def test_coded_branded_product_carries_no_text_note() -> None:
    # RxNorm 855334 is the SBD "Warfarin Sodium 5 MG Oral Tablet [Coumadin]" the sandbox's picker offers
    # (reviews/sandbox-client.md): recognised by its code, so the card does not say "from the text".
    body = _confirmed_case_as_sandbox_patient(
        {"system": RXNORM, "code": "855334", "display": "Warfarin Sodium 5 MG Oral Tablet [Coumadin]"},
        "Coumadin 5 MG Oral Tablet",
    )
    card = _vka_card(post("calciphylaxis-order-sign", body))
    assert "from the text" not in card["detail"], card["detail"]


def test_text_only_lesion_shows_its_text_on_the_evidence_line() -> None:
    body = example("realdata-text-only-lesion.patient-view.json")
    response = post("calciphylaxis-risk", body)
    assert response.status_code == 200, response.text
    card = next(c for c in response.json()["cards"] if c["indicator"] in ("warning", "critical"))
    lines = [line for line in card["detail"].splitlines() if line.startswith("- ")]
    assert any("from the text '" in line and "(" in line for line in lines), card["detail"]
    assert len(card["detail"]) <= DETAIL_LIMIT


def test_home_warfarin_coded_by_rxnorm_outranks_its_text() -> None:
    """The same home warfarin, once known only as "Coumadin 5 mg tablet" and once also coded RxNorm 855332
    (Warfarin Sodium 5 MG Oral Tablet, the SCD in reviews/sandbox-client.md): the finding is on the card
    both times, with the text note only when no code said it."""
    body = example("realdata-text-only-lesion.patient-view.json")

    def vka_lines(request: dict) -> list[str]:
        response = post("calciphylaxis-risk", request)
        assert response.status_code == 200, response.text
        details = [c["detail"] for c in response.json()["cards"]]
        return [line for d in details for line in d.splitlines() if "Vitamin K antagonist" in line]

    assert any("from the text 'coumadin'" in line for line in vka_lines(body))
    statement = body["prefetch"]["medstatements"]["entry"][0]["resource"]
    statement["medicationCodeableConcept"]["coding"] = [
        {"system": RXNORM, "code": "855332", "display": "Warfarin Sodium 5 MG Oral Tablet"}
    ]
    lines = vka_lines(body)
    assert lines and not any("from the text" in line for line in lines), lines


def test_biopsy_positive_only_in_pathology_text_is_evidence_not_a_recorded_diagnosis() -> None:
    """A pathology report "consistent with calcific uremic arteriolopathy" and no calciphylaxis diagnosis on the
    problem list: the rules' "confirmed" means a diagnosis recorded as confirmed (rules/rules/orders.yaml), and the
    service never turns its own reading of a text into a diagnosis. The warfarin order gets the suspected card
    (warning), whose evidence line names the report's words, never the confirmed (critical) one."""
    body = example("realdata-pathology-brand-order.order-sign.json")
    codings = [c for e in body["prefetch"]["conditions"]["entry"] for c in e["resource"]["code"]["coding"]]
    assert not any("calciphylaxis" in c.get("display", "").lower() for c in codings)  # no diagnosis is coded
    response = post("calciphylaxis-order-sign", body)
    card = _vka_card(response)
    assert card["indicator"] == "warning" and "suspected" in card["summary"], card["summary"]
    assert not any(c["indicator"] == "critical" for c in response.json()["cards"])
    biopsy = [line for line in card["detail"].splitlines() if "biopsy" in line.lower()]
    assert biopsy and "from the report '" in biopsy[0], card["detail"]
