"""``cds terminology gaps``: the codes in given requests or Bundles that matched no concept."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

EXIT_OK, EXIT_USAGE = 0, 2


def add_terminology_commands(commands: argparse._SubParsersAction) -> None:
    terminology = commands.add_parser("terminology", help="concept recognition: coverage of the value sets")
    actions = terminology.add_subparsers(metavar="ACTION")
    gaps = actions.add_parser(
        "gaps",
        help="list codes that matched no value set, with counts and any text-layer match",
        description="Runs the FHIR fact extraction over CDS Hooks requests, FHIR Bundles or NDJSON files and "
        "lists the codings of conditions, medications, procedures and orders that no value set "
        "recognised: system, code, resource type, how often, and the value set the text layer "
        "recognised instead (evidence for extending a value set). Codes only: no patient data.",
    )
    gaps.add_argument("files", nargs="+", type=Path, help="request JSON, Bundle JSON or NDJSON files")
    gaps.add_argument("--rules", type=Path, default=None, help="rules directory (CDS_RULES_DIR)")
    gaps.add_argument("--json", action="store_true", help="print JSON rows")
    gaps.set_defaults(run=run_gaps)


def _inputs(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(context, prefetch) pairs from one file."""
    raw = path.read_bytes()
    if path.suffix == ".ndjson":
        resources = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        return [({}, {f"r{i}": r for i, r in enumerate(resources)})]
    doc = orjson.loads(raw)
    if isinstance(doc, dict) and isinstance(doc.get("body"), dict):  # a captured HTTP exchange
        doc = doc["body"]
    if isinstance(doc, dict) and "context" in doc:
        context = dict(doc.get("context") or {})
        return [(context, dict(doc.get("prefetch") or {}))]
    return [({}, {"file": doc})]


def run_gaps(args: argparse.Namespace) -> int:
    from cds.fhir import Terminology, extract_facts
    from cds.fhir.gaps import GAPS, render
    from cds.settings import DEFAULT_RULES_DIR

    rules_dir = args.rules or Path(__import__("os").environ.get("CDS_RULES_DIR") or DEFAULT_RULES_DIR)
    term = Terminology.load(rules_dir)
    GAPS.clear()
    now = datetime.now(UTC)
    for path in args.files:
        try:
            inputs = _inputs(path)
        except (OSError, orjson.JSONDecodeError) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for context, prefetch in inputs:
            extract_facts(context, prefetch, now, term)
    rows = GAPS.snapshot()
    if args.json:
        print(json.dumps([asdict(g) for g in rows], indent=2))
    else:
        sys.stdout.write(render(rows))
    return EXIT_OK
