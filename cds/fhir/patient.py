"""Patient (+ vital-sign Observations) -> the patient fact: age, sex, BMI, weight change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, cast

from cds.facts import Fact
from cds.fhir.dates import parse_date, whole_years
from cds.fhir.intake import Intake
from cds.fhir.labs import LabValue, latest_valid_window
from cds.fhir.terminology import Terminology

WEIGHT_CHANGE_DAYS = 90


def choose_patient(patients: Sequence[Mapping[str, Any]], patient_id: Any) -> Mapping[str, Any] | None:
    """The Patient of context.patientId; never another one (without a patientId: the only one sent)."""
    for patient in patients:
        if patient.get("id") == patient_id:
            return patient
    if patient_id is None and len(patients) == 1:
        return patients[0]
    return None


def foreign_patient_keys(prefetch: Mapping[str, Any], patient_id: Any) -> list[str]:
    """Prefetch keys holding a Patient resource that is not context.patientId (the request is then refused)."""
    return sorted(
        str(key)
        for key, value in prefetch.items()
        if isinstance(value, Mapping) and value.get("resourceType") == "Patient" and value.get("id") != patient_id
    )


def patient_fact(
    patient: Mapping[str, Any] | None,
    series: Mapping[str, list[LabValue]],
    term: Terminology,
    intake: Intake,
    today: date,
) -> Fact | None:
    attrs: dict[str, Any] = {}
    if patient is not None and intake.validate_full(patient):
        # A partial birth date ("1956") counts from its last possible day: age is never overstated.
        birth = parse_date(patient.get("birthDate"), end=True)
        if birth is not None and birth <= today:
            attrs["age_years"] = whole_years(birth, today)
        gender = patient.get("gender")
        if isinstance(gender, str):
            attrs["sex"] = gender
    bmi = _latest_point(series, "bmi", term, intake, today)
    weight_window = _window(series, "body-weight", term, intake, today)
    weight = next((v for v in weight_window if v.is_point), None)
    if bmi is not None:
        attrs["bmi"] = round(bmi.value, 1)
        attrs["bmi_date"] = bmi.day.isoformat()
    elif weight is not None:
        # Height changes little in adults: the latest height on record, at any date.
        height = _latest_any(series.get("body-height", ()), intake)
        if height is not None and height.value > 0:
            attrs["bmi"] = round(weight.value / (height.value / 100.0) ** 2, 1)
            attrs["bmi_date"] = weight.day.isoformat()
    if weight is not None:
        earlier = [
            v
            for v in weight_window
            if v.is_point and weight.day - timedelta(days=WEIGHT_CHANGE_DAYS) <= v.day < weight.day
        ]
        if earlier:
            oldest = min(earlier, key=lambda v: v.day)
            if oldest.value > 0:
                attrs["weight_change_percent_90d"] = round((weight.value - oldest.value) / oldest.value * 100.0, 1)
    if not attrs:
        return None
    return Fact("patient", "patient", attrs)


def _window(
    series: Mapping[str, list[LabValue]], analyte_id: str, term: Terminology, intake: Intake, today: date
) -> list[LabValue]:
    analyte = term.analytes.get(analyte_id)
    values = series.get(analyte_id)
    if analyte is None or not values:
        return []
    return latest_valid_window(values, analyte, term, intake, today)


def _latest_point(
    series: Mapping[str, list[LabValue]], analyte_id: str, term: Terminology, intake: Intake, today: date
) -> LabValue | None:
    window = _window(series, analyte_id, term, intake, today)
    return window[0] if window and window[0].is_point else None


def _latest_any(values: Any, intake: Intake) -> LabValue | None:
    for value in sorted((v for v in values if v.is_point), key=lambda v: (v.day, v.sort_key), reverse=True):
        if all(intake.validate_full(s) for s in value.sources):
            return cast(LabValue, value)
    return None
