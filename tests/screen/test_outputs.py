"""The worklist Parquet has the documented schema and order; the summary report reads in a real
browser (headless Debian chromium through Playwright) at a phone's width."""

from __future__ import annotations

import os
import shutil
import stat
from collections import Counter

import pyarrow.parquet as pq
import pytest

from cds.cli import main
from cds.screen import synth
from cds.screen.worklist import COLUMNS, WORKLIST_SCHEMA, attention_key

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def screened(tmp_path_factory, dask_client):
    export = tmp_path_factory.mktemp("population")
    # 2 files (as 120 patients in files of 70 were); 60 patients still put carded patients before the
    # others and fill the report's 25 top rows.
    summary = synth.write_population(export, 60, seed=11, compress=True, patients_per_file=35)
    out = tmp_path_factory.mktemp("screen") / "out"
    assert (
        main(
            [
                "screen",
                str(export),
                "--out",
                str(out),
                "--scheduler",
                dask_client.scheduler.address,
                "--now",
                synth.DEFAULT_NOW.isoformat(),
                "--no-progress",
            ]
        )
        == 0
    )
    return out, summary


def test_worklist_parquet_has_the_documented_schema_and_order(screened):
    out, summary = screened
    table = pq.read_table(out / "worklist.parquet")
    assert table.schema.equals(WORKLIST_SCHEMA, check_metadata=False)
    assert table.column_names == COLUMNS
    rows = table.to_pylist()
    assert [r["rank"] for r in rows] == list(range(1, summary["patients"] + 1))
    assert len({r["patient_id"] for r in rows}) == summary["patients"]
    keys = [attention_key(r) for r in rows]
    assert keys == sorted(keys)
    # What needs attention first: every patient with a card comes before every patient without one.
    first_without = next(i for i, r in enumerate(rows) if not r["card_count"])
    assert all(r["card_count"] for r in rows[:first_without]) and first_without > 0
    assert all(not r["card_count"] for r in rows[first_without:] if not r["error"])
    carded = rows[0]
    assert carded["cards"][0]["family"] and carded["cards"][0]["indicator"] in {"critical", "warning", "info"}
    assert carded["ruleset_version"].startswith("0.") and carded["key_evidence"]
    for name in ("worklist.parquet", "worklist.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600


def test_the_worklist_csv_holds_the_same_rows(screened):
    out, _ = screened
    import csv

    with open(out / "worklist.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    parquet = pq.read_table(out / "worklist.parquet").to_pylist()
    assert [r["patient_id"] for r in rows] == [r["patient_id"] for r in parquet]
    assert [int(r["card_count"]) for r in rows] == [r["card_count"] for r in parquet]


@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="Debian chromium not installed")
def test_the_report_reads_on_a_phone_in_headless_chromium(screened):
    from playwright.sync_api import sync_playwright

    out, summary = screened
    assert shutil.which(CHROMIUM), "CI installs Debian's chromium (.ci/run)"
    rows = pq.read_table(out / "worklist.parquet").to_pylist()
    families = Counter(card["family"] for row in rows for card in row["cards"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
            page.goto((out / "report.html").as_uri())
            assert page.title() == f"Calciphylaxis screen: {summary['patients']} patients"
            assert page.locator("#tile-patients b").inner_text() == str(summary["patients"])
            # One bar per card family, each at its rate per 1,000 patients.
            bars = page.locator("#plot-families g.bar")
            assert bars.count() == len(families)
            for index in range(bars.count()):
                label = bars.nth(index).get_attribute("data-label")
                value = float(bars.nth(index).get_attribute("data-value"))
                assert value == pytest.approx(1000 * families[label] / summary["patients"])
            band_total = sum(float(b.get_attribute("data-value")) for b in page.locator("#plot-bands g.bar").all())
            assert band_total == summary["patients"]
            # The top rows are the worklist's first rows, in order.
            shown = page.locator("#top-rows tbody tr td:nth-child(2)").all_inner_texts()
            assert shown == [r["patient_id"] for r in rows[: len(shown)]] and len(shown) == min(25, len(rows))
            # Readable on a phone: the page itself does not scroll sideways (the wide table scrolls in its box).
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0
            plot_width = page.locator("#plot-families svg").bounding_box()["width"]
            assert 200 < plot_width <= 390
        finally:
            browser.close()
