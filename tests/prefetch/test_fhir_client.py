"""The FHIR fetcher against a real HTTP FHIR server process on loopback."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from cds.hooks.fhir_client import FetchLimits, FhirClient, FhirFetchError, is_under
from tests.prefetch.conftest import SANDBOX_PATIENT_ID
from tests.prefetch.helpers import access_token, cds_request, tag


def run(coro):
    return asyncio.run(coro)


async def fetch(query, request, limits: FetchLimits | None = None):
    client = FhirClient(limits)
    try:
        return await client(query, request)
    finally:
        await client.aclose()


def test_read_sends_the_bearer_token_to_fhir_server_only(fhir):
    t, token = tag(), access_token()
    patient = run(fetch(f"Patient/{SANDBOX_PATIENT_ID}", cds_request(fhir.base("ok", t), token)))
    assert patient["resourceType"] == "Patient" and patient["id"] == SANDBOX_PATIENT_ID
    [seen] = fhir.requests(t)
    assert seen["authorization"] == f"Bearer {token}"
    assert seen["host"] == f"127.0.0.1:{fhir.port}"


def test_no_fhir_authorization_means_no_authorization_header(fhir):
    t = tag()
    run(fetch(f"Patient/{SANDBOX_PATIENT_ID}", cds_request(fhir.base("ok", t))))
    [seen] = fhir.requests(t)
    assert seen["authorization"] is None


def test_read_of_a_missing_resource_is_none(fhir):
    assert run(fetch("Patient/no-such-patient", cds_request(fhir.base()))) is None


def test_search_follows_every_next_page_with_the_same_token(fhir):
    t, token = tag(), access_token()
    bundle = run(fetch(f"Observation?patient={SANDBOX_PATIENT_ID}&_count=50", cds_request(fhir.base("ok", t), token)))
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == 266
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert len(ids) == 266 == len(set(ids))
    assert not any(link["relation"] == "next" for link in bundle.get("link", []))
    seen = fhir.requests(t)
    assert len(seen) == 6  # ceil(266 / 50)
    assert {r["authorization"] for r in seen} == {f"Bearer {token}"}


def test_search_by_code_date_and_sort(fhir):
    query = (
        f"Observation?patient={SANDBOX_PATIENT_ID}&code=http://loinc.org|8302-2&date=ge2015-01-01&_sort=-date&_count=3"
    )
    bundle = run(fetch(query, cds_request(fhir.base())))
    resources = [e["resource"] for e in bundle["entry"]]
    assert resources and len(resources) == bundle["total"]
    assert all(r["code"]["coding"][0]["code"] == "8302-2" for r in resources)
    dates = [r["effectiveDateTime"] for r in resources]
    assert dates == sorted(dates, reverse=True) and min(dates) >= "2015-01-01"


def test_a_next_link_to_another_origin_is_refused_and_gets_no_token(fhir):
    t, token = tag(), access_token()
    with pytest.raises(FhirFetchError, match="outside fhirServer"):
        run(fetch(f"Observation?patient={SANDBOX_PATIENT_ID}&_count=50", cds_request(fhir.base("foreign", t), token)))
    seen = fhir.requests(t)
    assert len(seen) == 1 and seen[0]["host"] == f"127.0.0.1:{fhir.port}"
    assert not [r for r in fhir.requests() if r["host"].startswith("localhost")]


def test_a_redirect_is_not_followed_so_the_token_stays_on_fhir_server(fhir):
    t, token = tag(), access_token()
    with pytest.raises(FhirFetchError, match="HTTP 302"):
        run(fetch(f"Patient/{SANDBOX_PATIENT_ID}", cds_request(fhir.base("redirect", t), token)))
    assert len(fhir.requests(t)) == 1
    assert not [r for r in fhir.requests() if r["host"].startswith("localhost")]


def test_looping_next_links_stop(fhir):
    t = tag()
    with pytest.raises(FhirFetchError, match="loop"):
        run(fetch(f"Observation?patient={SANDBOX_PATIENT_ID}&_count=10", cds_request(fhir.base("loop", t))))
    assert len(fhir.requests(t)) == 2


def test_page_limit(fhir):
    t = tag()
    with pytest.raises(FhirFetchError, match="more than 3 pages"):
        run(
            fetch(
                f"Observation?patient={SANDBOX_PATIENT_ID}&_count=10",
                cds_request(fhir.base("ok", t)),
                FetchLimits(max_pages=3),
            )
        )
    assert len(fhir.requests(t)) == 3


@pytest.mark.parametrize(
    "mode, message",
    [("fail", "HTTP 500"), ("outcome", "OperationOutcome"), ("garbage", "not JSON"), ("token-other", "HTTP 401")],
)
def test_unusable_answers_are_errors(fhir, mode, message):
    with pytest.raises(FhirFetchError, match=message) as caught:
        run(fetch(f"Condition?patient={SANDBOX_PATIENT_ID}", cds_request(fhir.base(mode), access_token())))
    assert SANDBOX_PATIENT_ID not in str(caught.value)


def test_per_request_timeout(fhir):
    started = time.monotonic()
    with pytest.raises(FhirFetchError, match="timed out"):
        run(fetch(f"Patient/{SANDBOX_PATIENT_ID}", cds_request(fhir.base("slow-2")), FetchLimits(request_timeout=0.3)))
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_an_error_naming_no_patient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FhirFetchError, match="ConnectError") as caught:
        run(fetch(f"Patient/{SANDBOX_PATIENT_ID}", cds_request(f"http://127.0.0.1:{port}/fhir")))
    assert SANDBOX_PATIENT_ID not in str(caught.value)


def test_concurrent_requests_keep_their_own_tokens_on_one_pool(fhir):
    """Two hook calls at once on one client: each server sees only its own request's token."""
    token_a, token_b = access_token("a"), access_token("b")
    ta, tb = tag(), tag()

    async def both():
        client = FhirClient()
        try:
            return await asyncio.gather(
                client(f"Patient/{SANDBOX_PATIENT_ID}", cds_request(fhir.base(f"token-{token_a}", ta), token_a)),
                client(f"Patient/{SANDBOX_PATIENT_ID}", cds_request(fhir.base(f"token-{token_b}", tb), token_b)),
                client(f"Condition?patient={SANDBOX_PATIENT_ID}", cds_request(fhir.base("ok", ta))),
            )
        finally:
            await client.aclose()

    a, b, conditions = run(both())
    assert a["id"] == b["id"] == SANDBOX_PATIENT_ID and conditions["total"] == 18
    assert {r["authorization"] for r in fhir.requests(ta)} == {f"Bearer {token_a}", None}
    assert {r["authorization"] for r in fhir.requests(tb)} == {f"Bearer {token_b}"}


@pytest.mark.parametrize(
    "url, inside",
    [
        ("http://127.0.0.1:8081/fhir/Patient/1", True),
        ("http://127.0.0.1:8081/fhir", True),
        ("http://127.0.0.1:8081/fhirx/Patient/1", False),
        ("http://127.0.0.1:8081/other/Patient/1", False),
        ("http://127.0.0.1:8081/fhir/../admin", False),
        ("https://127.0.0.1:8081/fhir/Patient/1", False),
        ("http://localhost:8081/fhir/Patient/1", False),
        ("http://127.0.0.1:8082/fhir/Patient/1", False),
        ("http://127.0.0.1:8081@evil.example/fhir/Patient/1", False),
    ],
)
def test_is_under_fhir_server(url, inside):
    assert is_under(url, "http://127.0.0.1:8081/fhir") is inside
