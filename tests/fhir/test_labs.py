"""Labs: LOINC -> analyte, UCUM conversions, comparators, status, windows, summaries, derived analytes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.fhir import extract_facts
from tests.fhir.conftest import NOW, of_kind, one
from tests.fhir.resources import bundle, observation


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "analyte", "expected", "canonical"),
    [
        ("17861-6", 9.6, "mg/dL", "calcium-total", 9.6, "mg/dL"),
        ("49765-1", 9.6, "mg/dL", "calcium-total", 9.6, "mg/dL"),  # Synthea's calcium code
        ("2000-8", 2.4, "mmol/L", "calcium-total", 9.6192, "mg/dL"),
        ("1995-0", 1.2, "mmol/L", "calcium-ionized", 1.2, "mmol/L"),
        ("17864-0", 4.8, "mg/dL", "calcium-ionized", 1.1976, "mmol/L"),
        ("2777-1", 5.1, "mg/dL", "phosphate", 5.1, "mg/dL"),
        ("14879-1", 1.8, "mmol/L", "phosphate", 5.5746, "mg/dL"),
        ("2731-8", 480, "pg/mL", "pth-intact", 480.0, "pg/mL"),
        ("2731-8", 50.9, "pmol/L", "pth-intact", 479.987, "pg/mL"),
        ("2731-8", 480, "ng/L", "pth-intact", 480.0, "pg/mL"),
        ("1751-7", 32, "g/L", "albumin", 3.2, "g/dL"),
        ("1751-7", 3.2, "g/dL", "albumin", 3.2, "g/dL"),
        ("6768-6", 210, "U/L", "alkaline-phosphatase", 210.0, "U/L"),
        ("62292-8", 50, "nmol/L", "vitamin-d-25oh", 20.03, "ng/mL"),
        ("62292-8", 18, "ng/mL", "vitamin-d-25oh", 18.0, "ng/mL"),
        ("6301-6", 2.8, "{INR}", "inr", 2.8, "{INR}"),
        ("2157-6", 900, "U/L", "creatine-kinase", 900.0, "U/L"),
        ("38483-4", 6.2, "mg/dL", "creatinine", 6.2, "mg/dL"),  # Synthea's creatinine code
        ("2160-0", 548, "umol/L", "creatinine", 6.1979, "mg/dL"),
        ("33914-3", 9, "mL/min/{1.73_m2}", "egfr", 9.0, "mL/min/{1.73_m2}"),
        ("711-2", 0.9, "10*3/uL", "eosinophils", 0.9, "10*3/uL"),
        ("711-2", 900, "/uL", "eosinophils", 0.9, "10*3/uL"),
    ],
)
def test_every_analyte_and_conversion(run, loinc, value, unit, analyte, expected, canonical) -> None:
    facts = run(bundle(observation("o1", loinc, value, unit, "2026-02-20T08:00:00Z")))
    fact = one(facts, "lab", analyte=analyte)
    assert fact.attrs["value"] == pytest.approx(expected, rel=1e-3)
    assert fact.attrs["unit"] == canonical
    assert fact.attrs["date"] == "2026-02-20" and fact.attrs["days_ago"] == 9
    assert fact.attrs["source"] == "Observation/o1"
    assert facts.warnings == ()


def test_display_unit_without_ucum_system_is_matched_case_insensitively(run) -> None:
    facts = run(observation("o1", "2000-8", 2.5, "mmol/l", "2026-02-20", ucum=False))
    assert one(facts, "lab", analyte="calcium-total").attrs["value"] == pytest.approx(10.02)


def test_missing_unit_is_left_out_with_a_warning(run) -> None:
    facts = run(observation("o1", "17861-6", 9.9, None, "2026-02-20"))
    assert of_kind(facts, "lab") == []
    assert [(w.resource_type, w.resource_id) for w in facts.warnings] == [("Observation", "o1")]
    assert "no unit" in facts.warnings[0].message
    assert "9.9" not in facts.warnings[0].message


def test_unknown_unit_is_left_out_with_a_warning(run) -> None:
    facts = run(observation("o1", "2777-1", 5.0, "mEq/L", "2026-02-20"))
    assert of_kind(facts, "lab") == []
    assert "not declared" in facts.warnings[0].message


def test_inr_may_come_without_a_unit_because_it_is_declared_dimensionless(run) -> None:
    facts = run(observation("o1", "6301-6", 3.1, None, "2026-02-20"))
    assert one(facts, "lab", analyte="inr").attrs["value"] == 3.1


def test_censored_value_is_not_a_point_value(run) -> None:
    facts = run(observation("o1", "2731-8", 3, "pg/mL", "2026-02-20", comparator="<"))
    fact = one(facts, "lab", analyte="pth-intact")
    assert "value" not in fact.attrs  # so no rule threshold on value can be met by it
    assert fact.attrs["comparator"] == "<" and fact.attrs["limit"] == 3.0
    assert fact.attrs["censored_count"] == 1
    assert fact.attrs["count_below_low"] == 1  # "< 3" is known to be below the low limit of 15
    assert "min" not in fact.attrs and "trend" not in fact.attrs


def test_censored_values_count_against_limits_only_when_certain(run) -> None:
    facts = run(
        bundle(
            observation("o1", "2731-8", 2000, "pg/mL", "2026-02-25", comparator=">"),  # known above 65
            observation("o2", "2731-8", 100, "pg/mL", "2026-02-10", comparator="<"),  # may or may not be above
            observation("o3", "2731-8", 70, "pg/mL", "2026-01-10"),  # above
        )
    )
    fact = one(facts, "lab", analyte="pth-intact")
    assert fact.attrs["count_above_high"] == 2
    assert fact.attrs["max"] == 70.0 and fact.attrs["min"] == 70.0  # min/max over point values only
    assert fact.attrs["comparator"] == ">" and fact.attrs["limit"] == 2000.0


@pytest.mark.parametrize("status", ["preliminary", "registered", "cancelled", "entered-in-error", "unknown"])
def test_only_final_amended_corrected_results_count(run, status) -> None:
    facts = run(
        bundle(
            observation("o1", "17861-6", 11.0, "mg/dL", "2026-02-20", status=status),
            observation("o2", "17861-6", 9.0, "mg/dL", "2026-01-20", status="amended"),
        )
    )
    fact = one(facts, "lab", analyte="calcium-total")
    assert fact.attrs["value"] == 9.0 and fact.attrs["count"] == 1


def test_latest_in_window_with_trend_counts_and_range(run) -> None:
    facts = run(
        bundle(
            observation("o1", "2777-1", 4.0, "mg/dL", "2025-09-01"),
            observation("o2", "2777-1", 5.2, "mg/dL", "2025-12-01"),
            observation("o3", "2777-1", 6.8, "mg/dL", "2026-02-01"),
            observation("o4", "2777-1", 2.0, "mg/dL", "2024-01-01"),  # outside the 365-day window
        )
    )
    fact = one(facts, "lab", analyte="phosphate")
    assert fact.attrs["value"] == 6.8 and fact.attrs["source"] == "Observation/o3"
    assert fact.attrs["count"] == 3
    assert fact.attrs["count_above_high"] == 2 and fact.attrs["count_below_low"] == 0
    assert (fact.attrs["min"], fact.attrs["max"]) == (4.0, 6.8)
    assert fact.attrs["trend"] == "rising"
    assert (fact.attrs["previous_value"], fact.attrs["previous_date"]) == (5.2, "2025-12-01")


def test_no_fact_when_every_value_is_older_than_the_window(run) -> None:
    assert of_kind(run(observation("o1", "2777-1", 4.0, "mg/dL", "2023-09-01")), "lab") == []


def test_ca_x_p_product_from_same_day_pairs_only(run) -> None:
    facts = run(
        bundle(
            observation("ca1", "17861-6", 10.0, "mg/dL", "2026-02-10T07:00:00Z"),
            observation("p1", "2777-1", 2.25, "mmol/L", "2026-02-10T07:00:00Z"),  # 6.968 mg/dL
            observation("ca2", "17861-6", 9.0, "mg/dL", "2026-02-20T07:00:00Z"),  # no phosphate that day
        )
    )
    fact = one(facts, "lab", analyte="ca-x-p-product")
    assert fact.attrs["value"] == pytest.approx(69.68, abs=0.01)
    assert fact.attrs["unit"] == "mg2/dL2"
    assert fact.attrs["date"] == "2026-02-10"
    assert fact.attrs["source"] == "Observation/ca1,Observation/p1"
    assert fact.attrs["count_above_high"] == 0


def test_censored_calcium_is_not_paired(run) -> None:
    facts = run(
        bundle(
            observation("ca1", "17861-6", 5.0, "mg/dL", "2026-02-10", comparator="<"),
            observation("p1", "2777-1", 6.0, "mg/dL", "2026-02-10"),
        )
    )
    assert of_kind(facts, "lab", analyte="ca-x-p-product") == []


def test_albumin_corrected_calcium(run) -> None:
    facts = run(
        bundle(
            observation("ca1", "17861-6", 8.4, "mg/dL", "2026-02-10"),
            observation("alb1", "1751-7", 25, "g/L", "2026-02-10"),
        )
    )
    fact = one(facts, "lab", analyte="calcium-corrected")
    assert fact.attrs["value"] == pytest.approx(8.4 + 0.8 * (4.0 - 2.5))


def test_reported_corrected_calcium_is_used_as_reported(run) -> None:
    facts = run(observation("cc", "29265-6", 2.5, "mmol/L", "2026-02-10"))
    assert one(facts, "lab", analyte="calcium-corrected").attrs["value"] == pytest.approx(10.02)


def test_invalid_latest_result_is_skipped_and_the_previous_one_reported(run) -> None:
    bad = observation("o2", "17861-6", 12.0, "mg/dL", "2026-02-20")
    bad["subject"] = {"reference": 42}  # an element the lab extraction does not read, invalid in R4
    facts = run(bundle(observation("o1", "17861-6", 9.1, "mg/dL", "2026-01-20"), bad))
    fact = one(facts, "lab", analyte="calcium-total")
    assert fact.attrs["value"] == 9.1 and fact.attrs["count"] == 1
    assert [(w.resource_type, w.resource_id) for w in facts.warnings] == [("Observation", "o2")]
    assert "subject.reference" in facts.warnings[0].message


def test_invalid_value_is_rejected_by_the_lean_check(run) -> None:
    bad = observation("o1", "17861-6", 9.1, "mg/dL", "2026-01-20")
    bad["valueQuantity"]["value"] = "9.1"  # a string is not an R4 decimal in JSON
    facts = run(bad)
    assert of_kind(facts, "lab") == []
    assert facts.warnings[0].resource_id == "o1" and "valueQuantity.value" in facts.warnings[0].message


def test_unrelated_observations_are_ignored_without_warnings(run) -> None:
    facts = run(
        bundle(
            observation("o1", "72514-3", 4, "{score}", "2026-02-20"),
            observation("o2", "8867-4", 80, "/min", "2026-02-20"),
        )
    )
    assert of_kind(facts, "lab") == [] and facts.warnings == ()


# ---------------------------------------------------------------- property: honest summaries
_RESULT = st.tuples(
    st.integers(min_value=0, max_value=500),  # days before NOW
    st.floats(min_value=1, max_value=3000, allow_nan=False).map(lambda v: round(v, 1)),
    st.sampled_from([None, None, None, "<", "<=", ">", ">="]),
)


@settings(max_examples=150, deadline=None)
@given(results=st.lists(_RESULT, min_size=1, max_size=12, unique_by=lambda r: r[0]))
def test_pth_summary_is_honest_about_censored_values(terminology, results) -> None:
    observations = [
        observation(f"o{i}", "2731-8", value, "pg/mL", (NOW.date() - timedelta(days=days)).isoformat(), comparator=comp)
        for i, (days, value, comp) in enumerate(results)
    ]
    facts = extract_facts({}, {"b": bundle(*observations)}, NOW, terminology)
    window = [r for r in results if r[0] <= 365]
    labs = of_kind(facts, "lab", analyte="pth-intact")
    if not window:
        assert labs == []
        return
    (fact,) = labs
    latest = min(window, key=lambda r: r[0])
    assert fact.attrs["date"] == (NOW.date() - timedelta(days=latest[0])).isoformat()
    if latest[2] is None:
        assert fact.attrs["value"] == latest[1] and "comparator" not in fact.attrs
    else:
        assert "value" not in fact.attrs  # a censored latest result never poses as a point value
        assert (fact.attrs["comparator"], fact.attrs["limit"]) == (latest[2], latest[1])
    points = [v for _, v, c in window if c is None]
    assert fact.attrs.get("max") == (max(points) if points else None)
    assert fact.attrs.get("min") == (min(points) if points else None)
    high, low = 65, 15

    def surely_above(v: float, c: str | None) -> bool:
        return (c is None and v > high) or (c == ">" and v >= high) or (c == ">=" and v > high)

    def surely_below(v: float, c: str | None) -> bool:
        return (c is None and v < low) or (c == "<" and v <= low) or (c == "<=" and v < low)

    assert fact.attrs["count_above_high"] == sum(surely_above(v, c) for _, v, c in window)
    assert fact.attrs["count_below_low"] == sum(surely_below(v, c) for _, v, c in window)
    assert fact.attrs["count"] == len(window)
