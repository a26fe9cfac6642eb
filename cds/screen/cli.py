"""``cds screen``, ``cds synth`` and ``cds ndjson-from-bundles`` (added to the ``cds`` parser by cds/cli.py)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_screen_commands(commands: Any) -> None:
    screen = commands.add_parser(
        "screen",
        help="screen a population (FHIR Bulk Data export) on Dask: worklist, report, run record",
        description="Groups the export's resources by patient (a Dask shuffle), answers each patient with the "
        "patient-view service's pipeline (no HTTP), and writes worklist.parquet, worklist.csv, report.html and "
        "run.json (owner-only permissions) to --out.",
    )
    screen.add_argument(
        "export",
        type=Path,
        help="Bulk Data export: folder of NDJSON (.ndjson/.ndjson.gz), its "
        "manifest JSON, or a folder of patient Bundles",
    )
    screen.add_argument("--out", type=Path, default=Path("screen-out"), help="output folder (default: screen-out)")
    screen.add_argument("--rules", type=Path, help="rules directory (default: CDS_RULES_DIR / rules)")
    screen.add_argument(
        "--compare-rules",
        type=Path,
        metavar="OTHER",
        help="also screen under the rules directory OTHER and report the card delta per 1,000 patients",
    )
    screen.add_argument(
        "--scheduler",
        help="address of an existing Dask scheduler (tcp://HOST:PORT); default: a local cluster of processes",
    )
    screen.add_argument("--workers", type=int, help="worker processes of the local cluster (default: CPU count)")
    screen.add_argument("--now", help="evaluate as of this ISO 8601 instant (default: now)")
    screen.add_argument(
        "--service", default="calciphylaxis-risk", help="service whose pipeline answers (default: %(default)s)"
    )
    screen.add_argument(
        "--spill-dir",
        type=Path,
        help="folder for the shuffle's spill files (about the export's decompressed size; removed at the end); "
        "on a cluster, one every worker can read and write (default: the system's temporary folder)",
    )
    screen.add_argument("--no-progress", action="store_true", help="no progress bar")
    screen.set_defaults(run=run_screen)

    synth = commands.add_parser(
        "synth",
        help="write a seeded synthetic dialysis population as a Bulk Data export (NDJSON)",
        description="N dialysis patients with years of labs, medications, conditions and imaging reports; "
        "the prevalences of skin lesions and of calciphylaxis-like presentations are stated in "
        "cds/screen/synth.py and in the manifest. Seeded: the same seed writes the same bytes.",
    )
    synth.add_argument("out", type=Path, help="output folder")
    synth.add_argument("--patients", type=int, default=1000)
    synth.add_argument("--seed", type=int, default=19)
    synth.add_argument("--gzip", action="store_true", help="gzip the NDJSON files")
    synth.add_argument("--patients-per-file", type=int, default=50_000, help="split files as servers do")
    synth.add_argument(
        "--medication-resources",
        action="store_true",
        help="orders name their drug by medicationReference to formulary Medication resources (Medication.ndjson)",
    )
    synth.set_defaults(run=run_synth)

    convert = commands.add_parser(
        "ndjson-from-bundles", help="convert a folder of patient Bundles (Synthea) to a Bulk Data export"
    )
    convert.add_argument("bundles", type=Path)
    convert.add_argument("out", type=Path)
    convert.add_argument("--gzip", action="store_true")
    convert.add_argument("--files-per-type", type=int, default=1)
    convert.set_defaults(run=run_convert)


def run_screen(args: argparse.Namespace) -> int:
    from cds.screen.compare import comparison_from
    from cds.screen.export import ExportError
    from cds.screen.report import write_report
    from cds.screen.run import Progress, ScreenError, screen
    from cds.screen.worklist import private_dir, ranked, run_record, write_private, write_run_record, write_worklist
    from cds.settings import rules_dir_setting

    rules = rules_dir_setting(args.rules)
    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            print(f"cds screen: --now {args.now!r} is not an ISO 8601 date-time", file=sys.stderr)
            return EXIT_USAGE
        if now.tzinfo is None:
            print("cds screen: --now needs a time zone (for example 2026-12-01T00:00:00+00:00)", file=sys.stderr)
            return EXIT_USAGE
    rule_sets = [rules] + ([args.compare_rules] if args.compare_rules else [])
    progress = None
    if not args.no_progress:
        progress = Progress(0)
    started = time.perf_counter()
    try:
        result = screen(
            args.export,
            rule_sets,
            scheduler=args.scheduler,
            workers=args.workers,
            now=now,
            service_id=args.service,
            progress=progress,
            spill_dir=args.spill_dir,
        )
    except (ExportError, FileNotFoundError, LookupError, ScreenError) as exc:
        print(f"cds screen: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    out = private_dir(args.out)
    write_started = time.perf_counter()
    rows = ranked(result.rows[0])
    parquet, csv_path = write_worklist(rows, out)
    outputs = {"worklist_parquet": parquet.name, "worklist_csv": csv_path.name, "report": "report.html"}
    if args.compare_rules:
        comparison = comparison_from(result)
        write_private(out / "comparison.json", orjson.dumps(comparison.as_dict(), option=orjson.OPT_INDENT_2))
        lines = ["patient_id,added,removed"] + [
            f"{c.patient_id},{' | '.join(c.added)},{' | '.join(c.removed)}" for c in comparison.changed
        ]
        write_private(out / "changed-patients.csv", ("\n".join(lines) + "\n").encode())
        outputs |= {"comparison": "comparison.json", "changed_patients": "changed-patients.csv"}
    record = run_record(result, outputs, {})
    write_report(result, rows, record, out)
    record["timings"]["write_seconds"] = round(time.perf_counter() - write_started, 4)
    record["timings"]["total_seconds"] = round(time.perf_counter() - started, 4)
    write_run_record(record, out)
    counts = result.counts
    # Counts only on the terminal: the worklist is a clinical document and is never printed or logged.
    print(
        f"screened {counts.get('patients', 0):,} patients ({counts.get('patients_failed', 0):,} failed) under "
        f"{', '.join(result.rule_versions)}; {record['counts']['patients_with_cards']:,} with cards; "
        f"{counts.get('unknown_patient_resources', 0):,} resources for unknown patients and "
        f"{counts.get('malformed_lines', 0):,} malformed lines skipped"
    )
    for where in result.malformed_at[:20]:
        print(f"  malformed: {where}", file=sys.stderr)
    if args.compare_rules:
        print(comparison.table())
    print(f"wrote {out}/: {', '.join(sorted(set(outputs.values()) | {'run.json'}))}")
    return EXIT_OK


def run_synth(args: argparse.Namespace) -> int:
    from cds.screen.synth import write_population

    if args.patients < 1:
        print("cds synth: --patients must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    summary = write_population(
        args.out,
        args.patients,
        seed=args.seed,
        compress=args.gzip,
        patients_per_file=args.patients_per_file,
        medication_resources=args.medication_resources,
    )
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK


def run_convert(args: argparse.Namespace) -> int:
    from cds.screen.convert import convert_bundles

    if not args.bundles.is_dir():
        print(f"cds ndjson-from-bundles: {args.bundles}: not a folder", file=sys.stderr)
        return EXIT_FAILURE
    written = convert_bundles(args.bundles, args.out, compress=args.gzip, files_per_type=args.files_per_type)
    print(", ".join(f"{t}: {n}" for t, n in sorted(written.items())))
    return EXIT_OK
