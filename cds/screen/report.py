"""The summary report of a screen: one self-contained HTML page (Jinja2), plots as inline SVG.

Inline SVG (no plotting library, no script, no external file): the page opens offline, prints,
scales to a phone's width, and the bars are plain shapes a browser test can count. The page
shows patient ids in its top rows, so it is written 0600 like the worklist.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from cds.screen.run import ScreenResult
from cds.screen.worklist import write_private

TOP_ROWS = 25
BAND_ORDER = ["<5%", "5-25%", "25-75%", ">=75%", "not weighed"]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str


def per_thousand(count: int, patients: int) -> float:
    return 1000.0 * count / patients if patients else 0.0


def cards_per_family(rows: Sequence[Mapping[str, Any]]) -> Counter[str]:
    return Counter(card["family"] for row in rows for card in row["cards"])


def _bars(counter: Mapping[str, float], order: Sequence[str] | None = None, fmt: str = "{:,.0f}") -> list[Bar]:
    keys = [k for k in order or [] if k in counter] + sorted(k for k in counter if k not in (order or []))
    if order is None:
        keys = sorted(counter, key=lambda k: (-counter[k], k))
    return [Bar(k, float(counter[k]), fmt.format(counter[k])) for k in keys]


def report_context(
    result: ScreenResult, ranked_rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any]
) -> dict[str, Any]:
    rows = result.rows[0]
    patients = len(rows)
    families = cards_per_family(rows)
    bands = Counter(row["calciphylaxis_band"] or "not weighed" for row in rows)
    populations = Counter(row["population"] or "unknown" for row in rows)
    return {
        "patients": patients,
        "with_cards": sum(1 for row in rows if row["card_count"]),
        "failed": sum(1 for row in rows if row["error"]),
        "counts": run["counts"],
        "run": run,
        "population_bars": _bars(populations),
        "family_bars": _bars({f: per_thousand(n, patients) for f, n in families.items()}, fmt="{:,.1f}"),
        "family_counts": families,
        "band_bars": _bars(bands, order=BAND_ORDER),
        "top": list(ranked_rows[:TOP_ROWS]),
        "top_limit": TOP_ROWS,
    }


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("cds.screen", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(context: Mapping[str, Any]) -> str:
    return _environment().get_template("report.html.j2").render(**context)


def write_report(
    result: ScreenResult, ranked_rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any], out_dir: Path
) -> Path:
    return write_private(out_dir / "report.html", render_report(report_context(result, ranked_rows, run)).encode())
