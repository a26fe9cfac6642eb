"""FHIR date / dateTime strings to dates.

Hand-written because FHIR allows partial dates ("2019", "2019-05") that
``date.fromisoformat`` rejects, and because only the calendar date as
recorded matters here: a dateTime's local date (its first ten characters) is
the date the clinician saw, so no timezone arithmetic is done.
"""

from __future__ import annotations

import calendar
from datetime import date


def parse_date(value: object, end: bool = False) -> date | None:
    """The date of a FHIR date/dateTime; partial dates give their first (or, with ``end``, last) day."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) >= 10:
            return date.fromisoformat(value[:10])
        year = int(value[:4])
        if len(value) == 4:
            return date(year, 12, 31) if end else date(year, 1, 1)
        if len(value) == 7 and value[4] == "-":
            month = int(value[5:7])
            return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
    except ValueError:
        return None
    return None


def years_between(start: date, end: date) -> float:
    return round((end - start).days / 365.25, 2)


def whole_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
