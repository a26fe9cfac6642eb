"""The hand-written fixtures are valid R4 (fhir.resources R4B), so tests exercise real-shaped data."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from tests.fhir.resources import (
    CPT,
    ICD,
    RXNORM,
    SCT,
    bundle,
    coding,
    condition,
    medication,
    medication_request,
    observation,
    patient,
    procedure,
    service_request,
)

FIXTURES: list[dict[str, Any]] = [
    patient(),
    condition("c1", coding(ICD, "L97.222"), body_site=[coding(SCT, "53840002"), coding(SCT, "7771000")]),
    condition("c2", coding(SCT, "46177005"), clinical="resolved", verification="refuted", abatement="2025-01-01"),
    observation("o1", "2000-8", 2.4, "mmol/L", "2026-02-20T08:00:00Z"),
    observation("o2", "2731-8", 3, "pg/mL", "2026-02-20", comparator="<"),
    observation("o3", "17861-6", 9.9, None, "2026-02-20"),
    medication_request(
        "m1", reference="#med", contained=[medication("med", coding(RXNORM, "1"), ingredient=coding(RXNORM, "11289"))]
    ),
    medication_request("m2", coding(RXNORM, "855332"), route="oral"),
    procedure("p1", coding(CPT, "90935"), "2020-01-15T09:00:00Z", outcome="Positive"),
    service_request("s1", coding(CPT, "78306")),
    bundle(patient(), observation("o4", "49765-1", 9.1, "mg/dL", "2026-01-01"), urn=True, btype="collection"),
]


@pytest.mark.parametrize("resource", FIXTURES, ids=lambda r: f"{r['resourceType']}-{r.get('id', '')}")
def test_fixture_validates_with_r4b(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
