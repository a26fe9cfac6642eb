from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import fhir_server
from tests.conftest import shared_data

# The patient of the sandbox's order-sign capture (Synthea "Dirk Kuhlman"): 266 Observations, so searches page.
SANDBOX_PATIENT_BUNDLE = ("synthea", "Dirk_Kuhlman_1e503533-b8c2-42cb-a6d5-bbd7d70d07ad.json")
SANDBOX_PATIENT_ID = "948e608d-e408-4788-8cf2-8157c49c2940"


@pytest.fixture(scope="session")
def fhir() -> Iterator[fhir_server.RunningFhirServer]:
    server = fhir_server.start([str(shared_data(*SANDBOX_PATIENT_BUNDLE))])
    try:
        yield server
    finally:
        fhir_server.stop(server)
