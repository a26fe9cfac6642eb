"""The four prefetch states, completed from a real FHIR server process."""

from __future__ import annotations

import asyncio
import time
from datetime import date

import pytest

from cds.hooks.fhir_client import FetchLimits, FhirClient
from cds.hooks.prefetch import PrefetchUnavailable, TemplateError, complete_prefetch, render_template
from cds.hooks.services import ServiceDefinition
from tests.prefetch.conftest import SANDBOX_PATIENT_ID
from tests.prefetch.helpers import access_token, cds_request, tag

SERVICE = ServiceDefinition(
    id="test-service",
    hook="patient-view",
    title="Test",
    description="Prefetch states",
    prefetch={
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}&_count=5",
        "labs": "Observation?patient={{context.patientId}}&date=ge{{today() - 3650 days}}&_count=100",
        "reports": "DiagnosticReport?patient={{context.patientId}}",
    },
    optional_prefetch=frozenset({"reports"}),
)
TODAY = date(2026, 11, 21)


def complete(request, limits: FetchLimits | None = None, service: ServiceDefinition = SERVICE):
    async def go():
        client = FhirClient(limits)
        try:
            return await complete_prefetch(service, request, TODAY, client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def paths(fhir, t):
    return [r["path"].split("/fhir/", 1)[1].split("?", 1)[0] for r in fhir.requests(t)]


def test_absent_keys_are_fetched_with_the_token(fhir):
    t, token = tag(), access_token()
    result = complete(cds_request(fhir.base("ok", t), token, prefetch={}))
    assert set(result.fetched) == {"patient", "conditions", "labs", "reports"}
    assert result.data["patient"]["id"] == SANDBOX_PATIENT_ID
    assert len(result.data["conditions"]["entry"]) == result.data["conditions"]["total"] == 18  # 4 pages of 5
    assert result.data["reports"]["total"] == 23
    assert {r["authorization"] for r in fhir.requests(t)} == {f"Bearer {token}"}


def test_null_is_no_data_and_is_not_fetched(fhir):
    t = tag()
    result = complete(cds_request(fhir.base("ok", t), prefetch={"patient": None, "conditions": None, "labs": None}))
    assert result.data["patient"] is None and result.data["conditions"] is None
    assert result.fetched == ("reports",)
    assert paths(fhir, t) == ["DiagnosticReport"]


def test_a_sent_bundle_is_used_as_is(fhir):
    t = tag()
    sent = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    result = complete(
        cds_request(fhir.base("ok", t), prefetch={"patient": None, "conditions": sent, "labs": sent, "reports": sent})
    )
    assert result.data["conditions"] is sent and result.fetched == ()
    assert fhir.requests(t) == []


def test_a_sent_bundle_with_a_next_link_on_fhir_server_is_completed(fhir):
    t, token = tag(), access_token()
    first_page = complete(
        cds_request(fhir.base("ok"), prefetch={"patient": None, "conditions": None, "reports": None}),
        FetchLimits(max_pages=1000),
        ServiceDefinition(
            **{**SERVICE.model_dump(), "prefetch": {"labs": "Observation?patient={{context.patientId}}&_count=100"}}
        ),
    )
    assert first_page.data["labs"]["total"] == 266
    # A client-paged Bundle: only the first page and its next link.
    paged = asyncio.run(_first_page(fhir.base("ok", t), "Observation", 100))
    result = complete(
        cds_request(
            fhir.base("ok", t), token, prefetch={"patient": None, "conditions": None, "reports": None, "labs": paged}
        )
    )
    assert len(result.data["labs"]["entry"]) == 266
    assert {r["authorization"] for r in fhir.requests(t)[1:]} == {f"Bearer {token}"}


async def _first_page(base: str, resource_type: str, count: int) -> dict:
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/{resource_type}?patient={SANDBOX_PATIENT_ID}&_count={count}")
        return response.json()


def test_a_sent_bundle_whose_next_link_leaves_fhir_server_is_missing(fhir):
    t, token = tag(), access_token()
    paged = asyncio.run(_first_page(fhir.base("foreign", t), "Observation", 100))
    assert "localhost" in [link for link in paged["link"] if link["relation"] == "next"][0]["url"]
    with pytest.raises(PrefetchUnavailable) as caught:
        complete(
            cds_request(
                fhir.base("ok", t),
                token,
                prefetch={"patient": None, "conditions": None, "reports": None, "labs": paged},
            )
        )
    assert caught.value.keys == ["labs"]
    assert not [r for r in fhir.requests() if r["host"].startswith("localhost")]


def test_an_operation_outcome_is_missing_and_refetched(fhir):
    t = tag()
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    result = complete(
        cds_request(
            fhir.base("ok", t), prefetch={"patient": None, "conditions": outcome, "labs": None, "reports": None}
        )
    )
    assert result.fetched == ("conditions",) and result.data["conditions"]["total"] == 18


def test_no_fhir_server_means_412_for_required_keys_only():
    with pytest.raises(PrefetchUnavailable) as caught:
        complete(cds_request(None, prefetch={"patient": None}))
    assert caught.value.keys == ["conditions", "labs"]
    result = complete(cds_request(None, prefetch={"patient": None, "conditions": None, "labs": None}))
    assert "reports" not in result.data


def test_a_slow_server_hits_the_total_deadline(fhir):
    started = time.monotonic()
    with pytest.raises(PrefetchUnavailable, match="did not answer in time") as caught:
        complete(cds_request(fhir.base("slow-3"), prefetch={}), FetchLimits(request_timeout=5, total_timeout=0.5))
    assert time.monotonic() - started < 1.2
    assert caught.value.keys == ["patient", "conditions", "labs"]


@pytest.mark.parametrize("mode", ["fail", "garbage", "outcome", "loop"])
def test_a_failing_server_is_412_without_phi_or_token(fhir, mode):
    token = access_token()
    with pytest.raises(PrefetchUnavailable) as caught:
        complete(cds_request(fhir.base(mode), token, prefetch={"patient": None}))
    assert caught.value.keys[:1] == ["conditions"] or caught.value.keys == ["labs"]
    assert SANDBOX_PATIENT_ID not in caught.value.reason and token not in caught.value.reason


def test_an_optional_key_that_fails_is_left_out(fhir):
    async def go():
        client = FhirClient()
        try:
            ok = cds_request(fhir.base("fail"), prefetch={"patient": None, "conditions": None, "labs": None})
            return await complete_prefetch(SERVICE, ok, TODAY, client)
        finally:
            await client.aclose()

    result = asyncio.run(go())
    assert "reports" not in result.data and result.fetched == ()


def test_requests_do_not_share_data(fhir):
    """Two hook calls for different patients at once: each gets its own patient's data."""

    async def go():
        client = FhirClient()
        try:
            return await asyncio.gather(
                complete_prefetch(SERVICE, cds_request(fhir.base(), access_token(), prefetch={}), TODAY, client),
                complete_prefetch(
                    SERVICE,
                    cds_request(fhir.base(), access_token(), prefetch={}, patient_id="someone-else"),
                    TODAY,
                    client,
                ),
            )
        finally:
            await client.aclose()

    mine, theirs = asyncio.run(go())
    assert mine.data["conditions"]["total"] == 18 and mine.data["patient"]["id"] == SANDBOX_PATIENT_ID
    assert theirs.data["conditions"]["total"] == 0 and theirs.data["patient"] is None


# ------------------------------------------------------------------ templates


def test_templates_fill_context_user_tokens_and_relative_dates():
    context = {"patientId": "p-1", "userId": "PractitionerRole/r.9", "encounterId": "e1"}
    assert render_template("Patient/{{context.patientId}}", context, TODAY) == "Patient/p-1"
    assert render_template("Encounter/{{ context.encounterId }}", context, TODAY) == "Encounter/e1"
    assert render_template("PractitionerRole/{{userPractitionerRoleId}}", context, TODAY) == "PractitionerRole/r.9"
    assert (
        render_template("Observation?date=ge{{today() - 90 days}}", context, TODAY) == "Observation?date=ge2026-08-23"
    )
    assert render_template("Observation?date=le{{today()}}", context, TODAY) == "Observation?date=le2026-11-21"
    assert render_template("X?date=lt{{today() + 2 weeks}}", context, TODAY) == "X?date=lt2026-12-05"


def test_context_values_cannot_inject_parameters_or_paths():
    context = {"patientId": "1&_include=*", "userId": "Practitioner/../../x"}
    assert render_template("Condition?patient={{context.patientId}}", context, TODAY) == (
        "Condition?patient=1%26_include%3D%2A"
    )
    assert render_template("Practitioner/{{userPractitionerId}}", context, TODAY) == "Practitioner/..%2F..%2Fx"


@pytest.mark.parametrize(
    "template, context",
    [
        ("Patient/{{context.patientId}}", {}),
        ("Patient/{{context.draftOrders}}", {"draftOrders": {"resourceType": "Bundle"}}),
        ("PractitionerRole/{{userPractitionerRoleId}}", {"userId": "Practitioner/1"}),
        ("Patient/{{context.patientId.id}}", {"patientId": "1"}),
        ("Patient/{{now()}}", {}),
    ],
)
def test_unfillable_templates_are_errors(template, context):
    with pytest.raises(TemplateError):
        render_template(template, context, TODAY)


def test_cancelling_the_hook_call_cancels_its_fetches(fhir):
    """The app's request deadline cancels answer_hook: no fetch may outlive the call."""
    t = tag()

    async def go():
        client = FhirClient(FetchLimits(request_timeout=5, total_timeout=5))
        try:
            call = asyncio.ensure_future(
                complete_prefetch(SERVICE, cds_request(fhir.base("slow-1", t), prefetch={}), TODAY, client)
            )
            await asyncio.sleep(0.3)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await asyncio.sleep(
                0.1
            )  # cancelled fetches finish cancelling; uncancelled ones would still wait on the server
            return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        finally:
            await client.aclose()

    assert asyncio.run(go()) == []
