"""The wire models reject any response that would break a CDS Hooks 2.0.1 invariant."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from cds.hooks.models import (
    Action,
    Card,
    CDSRequest,
    CDSResponse,
    DiscoveryResponse,
    Feedback,
    Link,
    Source,
    Suggestion,
)

SOURCE = Source(label="Calciphylaxis CDS")
SERVICE_REQUEST = {"resourceType": "ServiceRequest", "status": "draft", "intent": "proposal"}


def card(**fields):
    base = {"summary": "Consider calciphylaxis", "indicator": "warning", "source": SOURCE}
    return Card(**{**base, **fields})


def suggestion(**fields):
    base = {
        "label": "Order a whole-body bone scan",
        "actions": [Action(type="create", description="Order", resource=SERVICE_REQUEST)],
    }
    return Suggestion(**{**base, **fields})


def test_a_valid_card_serialises_without_nulls_or_empty_values():
    wire = card(suggestions=[suggestion()], selectionBehavior="at-most-one").to_wire()
    assert set(wire) == {"uuid", "summary", "indicator", "source", "suggestions", "selectionBehavior"}
    assert uuid.UUID(wire["uuid"]) and uuid.UUID(wire["suggestions"][0]["uuid"])
    assert "isRecommended" not in wire["suggestions"][0]


@pytest.mark.parametrize("length, ok", [(139, True), (140, False), (0, False)])
def test_summary_must_be_under_140_characters(length, ok):
    if ok:
        assert len(card(summary="x" * length).summary) == length
    else:
        with pytest.raises(ValidationError):
            card(summary="x" * length)


def test_indicator_is_an_enum():
    with pytest.raises(ValidationError):
        card(indicator="hard-stop")


def test_suggestions_require_selection_behavior():  # cds-resp-6
    with pytest.raises(ValidationError, match="cds-resp-6"):
        card(suggestions=[suggestion()])


def test_at_most_one_recommended_suggestion():  # cds-resp-1
    two = [suggestion(isRecommended=True), suggestion(isRecommended=True)]
    with pytest.raises(ValidationError, match="cds-resp-1"):
        card(suggestions=two, selectionBehavior="at-most-one")
    assert card(suggestions=two, selectionBehavior="any").selectionBehavior == "any"


def test_override_reasons_need_a_display():  # cds-resp-4
    with pytest.raises(ValidationError):
        card(overrideReasons=[{"system": "http://example.org/reasons", "code": "not-relevant"}])
    ok = card(overrideReasons=[{"system": "http://example.org/reasons", "code": "x", "display": "Not relevant"}])
    assert ok.overrideReasons[0].display == "Not relevant"


def test_every_action_needs_a_description():  # cds-resp-5
    with pytest.raises(ValidationError):
        Action(type="create", resource=SERVICE_REQUEST)
    with pytest.raises(ValidationError):
        Action(type="create", description="", resource=SERVICE_REQUEST)


def test_delete_names_resource_id_and_carries_no_resource():  # cds-resp-2
    with pytest.raises(ValidationError, match="cds-resp-2"):
        Action(type="delete", description="Remove the order", resource=SERVICE_REQUEST)
    assert Action(type="delete", description="Remove", resourceId="MedicationRequest/1").to_wire() == {
        "type": "delete",
        "description": "Remove",
        "resourceId": "MedicationRequest/1",
    }


def test_create_and_update_carry_a_fhir_resource():
    with pytest.raises(ValidationError):
        Action(type="update", description="Update")
    with pytest.raises(ValidationError):
        Action(type="create", description="Create", resource={"status": "draft"})


def test_app_context_only_on_smart_links():  # cds-resp-3
    with pytest.raises(ValidationError, match="cds-resp-3"):
        Link(label="App", url="https://app.example.org", type="absolute", appContext="x")
    assert Link(label="App", url="https://app.example.org", type="smart", appContext="x").appContext == "x"


def test_links_need_absolute_urls_and_a_known_type():
    with pytest.raises(ValidationError):
        Link(label="Guide", url="/relative", type="absolute")
    with pytest.raises(ValidationError):
        Link(label="Guide", url="https://example.org", type="web")


@pytest.mark.parametrize(
    "field, value",
    [("detail", ""), ("links", []), ("suggestions", []), ("overrideReasons", []), ("extension", {})],
)
def test_empty_optional_values_are_rejected(field, value):
    with pytest.raises(ValidationError):
        card(**{field: value})


def test_empty_cards_and_services_are_present():
    assert CDSResponse().to_wire() == {"cards": []}
    assert DiscoveryResponse().to_wire() == {"services": []}


def test_empty_system_actions_are_rejected():
    with pytest.raises(ValidationError):
        CDSResponse(systemActions=[])


def test_duplicate_card_uuids_are_rejected():
    one = card()
    with pytest.raises(ValidationError):
        CDSResponse(cards=[one, card(uuid=one.uuid)])


# ---------------------------------------------------------------- request invariants

REQUEST = {
    "hook": "patient-view",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {"userId": "Practitioner/1", "patientId": "p1"},
}


def test_fhir_authorization_requires_fhir_server():  # cds-r-1
    auth = {
        "access_token": "secret-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds",
    }
    with pytest.raises(ValidationError, match="cds-r-1"):
        CDSRequest.model_validate({**REQUEST, "fhirAuthorization": auth})
    ok = CDSRequest.model_validate({**REQUEST, "fhirAuthorization": auth, "fhirServer": "https://ehr.example.org/fhir"})
    assert "secret-token" not in repr(ok)


def test_unknown_extension_content_is_accepted():
    parsed = CDSRequest.model_validate({**REQUEST, "extension": {"com.example.anything": {"nested": [1, 2]}}})
    assert parsed.extension == {"com.example.anything": {"nested": [1, 2]}}


def test_hook_instance_must_be_a_uuid():
    with pytest.raises(ValidationError):
        CDSRequest.model_validate({**REQUEST, "hookInstance": "not-a-uuid"})


FEEDBACK = {"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcomeTimestamp": "2026-11-21T10:05:31Z"}


def test_feedback_outcome_is_an_enum():  # cds-fb-1
    with pytest.raises(ValidationError):
        Feedback.model_validate({**FEEDBACK, "outcome": "ignored"})


def test_accepted_feedback_names_the_suggestions():  # cds-fb-2
    with pytest.raises(ValidationError, match="cds-fb-2"):
        Feedback.model_validate({**FEEDBACK, "outcome": "accepted"})
    ok = Feedback.model_validate(
        {**FEEDBACK, "outcome": "accepted", "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}]}
    )
    assert len(ok.acceptedSuggestions) == 1


def test_override_reason_needs_a_reason_or_a_comment():  # cds-fb-3
    with pytest.raises(ValidationError, match="cds-fb-3"):
        Feedback.model_validate({**FEEDBACK, "outcome": "overridden", "overrideReason": {}})
    # The sandbox sends a reason coding without display: accepted.
    ok = Feedback.model_validate(
        {**FEEDBACK, "outcome": "overridden", "overrideReason": {"reason": {"system": "http://x.org", "code": "no"}}}
    )
    assert ok.overrideReason.reason.code == "no"


def test_feedback_timestamp_must_carry_a_timezone():
    with pytest.raises(ValidationError):
        Feedback.model_validate({**FEEDBACK, "outcomeTimestamp": "2026-11-21T10:05:31", "outcome": "overridden"})
