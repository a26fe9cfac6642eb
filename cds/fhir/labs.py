"""Observations -> lab facts: canonical units, honest comparators, per-analyte summaries.

This is the hot path (a long-term dialysis patient has thousands of
Observations), so it works on plain dicts after the pre-filter and lean
validation in ``intake``; only the Observations whose values are reported as a
fact's value are validated with the full R4B model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cds.facts import Fact
from cds.fhir.dates import parse_date
from cds.fhir.intake import Intake, reference_key
from cds.fhir.terminology import LOINC, SYSTEM_ALIASES, UCUM, Analyte, Terminology, normalise_unit

COUNTED_STATUSES = frozenset({"final", "amended", "corrected"})
CA_X_P = "ca-x-p-product"
CORRECTED_CA = "calcium-corrected"


@dataclass(slots=True)
class LabValue:
    analyte: str
    value: float  # canonical unit; the censoring limit when ``comparator`` is set
    comparator: str | None  # "<", "<=", ">", ">=" for a censored result
    day: date
    sort_key: str  # effective time as recorded, for ordering within a day
    code: str
    sources: tuple[Mapping[str, Any], ...]  # the Observation(s) this value comes from

    @property
    def is_point(self) -> bool:
        return self.comparator is None


def read_observations(
    observations: Iterable[Mapping[str, Any]], term: Terminology, intake: Intake
) -> dict[str, list[LabValue]]:
    """Analyte id -> its values in canonical units (every usable Observation)."""
    loinc_map = term.loinc_to_analyte
    analytes = term.analytes
    series: dict[str, list[LabValue]] = {}
    validate_lean = intake.validate_observation_lean
    for obs in observations:
        # Pre-filter on the raw dict: only a LOINC code of a declared analyte can make a fact.
        code_cc = obs.get("code")
        codings = code_cc.get("coding") if isinstance(code_cc, dict) else None
        if not isinstance(codings, list):
            continue
        analyte_id = None
        loinc_code = None
        for coding in codings:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                candidate = loinc_map.get(coding["code"])
                if candidate is not None:
                    system = coding.get("system")
                    if system == LOINC or SYSTEM_ALIASES.get(system) == LOINC:  # type: ignore[arg-type]
                        analyte_id, loinc_code = candidate, coding["code"]
                        break
        if analyte_id is None:
            continue
        if not validate_lean(obs):
            continue
        if obs["status"] not in COUNTED_STATUSES:
            continue
        value = _read_value(obs, analytes[analyte_id], intake)
        if value is None:
            continue
        when = _effective(obs)
        if when is None:
            intake.warn(obs, f"{analyte_id}: no effective time; left out")
            continue
        day = parse_date(when)
        if day is None:
            intake.warn(obs, f"{analyte_id}: unreadable effective time; left out")
            continue
        series.setdefault(analyte_id, []).append(
            LabValue(analyte_id, value[0], value[1], day, when, loinc_code or "", (obs,))
        )
    return series


def _effective(obs: Mapping[str, Any]) -> str | None:
    when = obs.get("effectiveDateTime") or obs.get("effectiveInstant")
    if when is None:
        period = obs.get("effectivePeriod")
        if isinstance(period, (dict, Mapping)):
            when = period.get("end") or period.get("start")
    if when is None:
        when = obs.get("issued")
    return when if isinstance(when, str) else None


def _read_value(obs: Mapping[str, Any], analyte: Analyte, intake: Intake) -> tuple[float, str | None] | None:
    quantity = obs.get("valueQuantity")
    if not isinstance(quantity, dict):
        if "dataAbsentReason" not in obs and not any(k.startswith("value") for k in obs):
            intake.warn(obs, f"{analyte.id}: no value; left out")
        elif "dataAbsentReason" not in obs:
            intake.warn(obs, f"{analyte.id}: value is not a Quantity; left out")
        return None
    raw = quantity.get("value")
    if raw is None:
        intake.warn(obs, f"{analyte.id}: Quantity without a value; left out")
        return None
    # The UCUM code is authoritative when the system says UCUM; otherwise the display unit.
    unit = quantity.get("code") if quantity.get("system") == UCUM and quantity.get("code") else quantity.get("unit")
    if not unit:
        if not analyte.unitless_ok:
            intake.warn(obs, f"{analyte.id}: no unit; an unknown unit never becomes a number, left out")
            return None
        factor = 1.0
    else:
        conversion = analyte.conversions.get(normalise_unit(unit))
        if conversion is None:
            # The unit (not the value) is named, so an informaticist can declare its conversion.
            intake.warn(obs, f"{analyte.id}: unit {str(unit)[:24]!r} is not declared for this analyte; left out")
            return None
        factor = conversion.factor
    return float(raw) * factor, quantity.get("comparator")


# ------------------------------------------------------------------ derived series


def derive_series(series: dict[str, list[LabValue]]) -> None:
    """Add Ca x P (same-day pairs) and albumin-corrected calcium to ``series``."""
    calcium = _latest_point_per_day(series.get("calcium-total", ()))
    phosphate = _latest_point_per_day(series.get("phosphate", ()))
    albumin = _latest_point_per_day(series.get("albumin", ()))
    if calcium and phosphate:
        products = [
            LabValue(
                CA_X_P,
                round(calcium[day].value * phosphate[day].value, 2),
                None,
                day,
                max(calcium[day].sort_key, phosphate[day].sort_key),
                "",
                calcium[day].sources + phosphate[day].sources,
            )
            for day in calcium.keys() & phosphate.keys()
        ]
        if products:
            series[CA_X_P] = products
    if calcium and albumin:
        reported_days = {v.day for v in series.get(CORRECTED_CA, ())}
        computed = [
            # Payne: Ca + 0.8 x (4.0 - albumin g/dL), in mg/dL (knowledge sheet §5b, [R]).
            LabValue(
                CORRECTED_CA,
                round(calcium[day].value + 0.8 * (4.0 - albumin[day].value), 2),
                None,
                day,
                max(calcium[day].sort_key, albumin[day].sort_key),
                "",
                calcium[day].sources + albumin[day].sources,
            )
            for day in calcium.keys() & albumin.keys()
            if day not in reported_days
        ]
        if computed:
            series.setdefault(CORRECTED_CA, []).extend(computed)


def _latest_point_per_day(values: Iterable[LabValue]) -> dict[date, LabValue]:
    by_day: dict[date, LabValue] = {}
    for value in values:
        if value.is_point:
            current = by_day.get(value.day)
            if current is None or value.sort_key > current.sort_key:
                by_day[value.day] = value
    return by_day


# ------------------------------------------------------------------ facts


def lab_facts(series: Mapping[str, list[LabValue]], term: Terminology, intake: Intake, today: date) -> list[Fact]:
    facts = []
    for analyte_id in sorted(series):
        analyte = term.analytes.get(analyte_id)
        if analyte is None or not analyte.emit_fact:
            continue
        window = latest_valid_window(series[analyte_id], analyte, term, intake, today)
        if window:
            facts.append(_summary_fact(analyte, window, today))
    return facts


def latest_valid_window(
    values: list[LabValue], analyte: Analyte, term: Terminology, intake: Intake, today: date
) -> list[LabValue]:
    """The values inside the lookback window, newest first, whose newest passed full validation."""
    lookback = analyte.lookback_days or term.settings.lab_lookback_days
    start = today - timedelta(days=lookback)
    window = sorted((v for v in values if start <= v.day <= today), key=lambda v: (v.day, v.sort_key), reverse=True)
    # The newest value is reported as the fact's value and source: validate its resources
    # with the full R4B model, falling back to the next newest when one is invalid.
    while window and not all(intake.validate_full(source) for source in window[0].sources):
        window.pop(0)
    return window


def _summary_fact(analyte: Analyte, window: list[LabValue], today: date) -> Fact:
    latest = window[0]
    attrs: dict[str, Any] = {
        "analyte": analyte.id,
        "unit": analyte.unit,
        "date": latest.day.isoformat(),
        "days_ago": (today - latest.day).days,
        "count": len(window),
        "source": ",".join(reference_key(s, "Observation") for s in latest.sources),
    }
    if latest.code:
        attrs["code"] = latest.code
    if latest.is_point:
        attrs["value"] = _sig(latest.value)
        attrs["value_at_least"] = attrs["value_at_most"] = attrs["value"]
    else:
        # A censored result is not a point value: no ``value`` attribute, so no rule
        # threshold on ``value`` can be met by a number the result might not reach.
        attrs["comparator"] = latest.comparator
        attrs["limit"] = _sig(latest.value)
        # What the result does establish, for rules that accept a censored result: ">2000 pg/mL"
        # is at least 2000 (so above 1000), ">265" or "<10" establishes nothing about "above 1000".
        # The limit is already in the canonical unit (SI results converted, e.g. PTH pmol/L).
        if latest.comparator in (">", ">="):
            attrs["value_at_least"] = attrs["limit"]
        else:
            attrs["value_at_most"] = attrs["limit"]
    points = [v.value for v in window if v.is_point]
    if points:
        attrs["max"] = _sig(max(points))
        attrs["min"] = _sig(min(points))
    censored = len(window) - len(points)
    if censored:
        attrs["censored_count"] = censored
    if analyte.high is not None:
        attrs["count_above_high"] = sum(1 for v in window if _known_above(v, analyte.high))
    if analyte.low is not None:
        attrs["count_below_low"] = sum(1 for v in window if _known_below(v, analyte.low))
    if latest.is_point:
        previous = next((v for v in window[1:] if v.is_point), None)
        if previous is not None:
            attrs["previous_value"] = _sig(previous.value)
            attrs["previous_date"] = previous.day.isoformat()
            attrs["trend"] = _trend(previous.value, latest.value, analyte.trend_tolerance)
    return Fact("lab", f"lab:{analyte.id}", attrs)


def _sig(value: float) -> float:
    """Six significant digits: drops float noise from unit conversion, keeps small values exact."""
    return float(f"{value:.6g}")


def _known_above(value: LabValue, high: float) -> bool:
    if value.comparator is None:
        return value.value > high
    if value.comparator == ">":
        return value.value >= high
    if value.comparator == ">=":
        return value.value > high
    return False  # "<" / "<=": the true value may lie anywhere below the limit


def _known_below(value: LabValue, low: float) -> bool:
    if value.comparator is None:
        return value.value < low
    if value.comparator == "<":
        return value.value <= low
    if value.comparator == "<=":
        return value.value < low
    return False


def _trend(previous: float, latest: float, tolerance: float) -> str:
    scale = abs(previous) if previous else 1.0
    change = (latest - previous) / scale
    if change > tolerance:
        return "rising"
    if change < -tolerance:
        return "falling"
    return "stable"
