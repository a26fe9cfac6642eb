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

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_terminology_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    terminology = commands.add_parser("terminology", help="concept recognition: coverage of the value sets")
    actions = terminology.add_subparsers(metavar="ACTION")
    gaps = actions.add_parser(
        "gaps",
        help="list codes that matched no value set, with counts and any text-layer match",
        description="Lists the codings of conditions, medications, procedures and orders that no value set "
        "recognised: system, code, resource type, how often, and the value set the text layer "
        "recognised instead (evidence for extending a value set). Codes only: no patient data. "
        "Given FILES, runs the FHIR fact extraction over those CDS Hooks requests, FHIR Bundles or "
        "NDJSON files; without, lists what the running service has stored in its audit database.",
    )
    gaps.add_argument("files", nargs="*", type=Path, help="request JSON, Bundle JSON or NDJSON files")
    gaps.add_argument("--rules", type=Path, default=None, help="rules directory (CDS_RULES_DIR)")
    gaps.add_argument("--database-url", help="audit database URL (CDS_DATABASE_URL), when no FILES are given")
    gaps.add_argument("--config", help="YAML config file (CDS_CONFIG_FILE), when no FILES are given")
    gaps.add_argument("--limit", type=int, default=1000, help="at most this many stored rows (default 1000)")
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


def run_stored_gaps(args: argparse.Namespace) -> int:
    """The gaps the service stored (cds.store.gaps), from the audit database."""
    from sqlalchemy.exc import SQLAlchemyError

    from cds.fhir.gaps import Gap
    from cds.settings import load_settings
    from cds.store.database import close_engine, create_store_engine, migrate
    from cds.store.gaps import stored_gaps

    overrides = {"database_url": args.database_url} if args.database_url else {}
    settings = load_settings(Path(args.config) if args.config else None, **overrides)
    try:
        engine = create_store_engine(settings.database_url.get_secret_value(), settings.database_timeout_seconds)
    except OSError as exc:
        print(f"cds terminology gaps: cannot open the database: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        migrate(engine)
        rows = [Gap(r.system, r.code, r.resource_type, r.count, r.text_match) for r in stored_gaps(engine, args.limit)]
    except SQLAlchemyError as exc:
        print(f"cds terminology gaps: the database is unavailable ({type(exc).__name__})", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        close_engine(engine)
    _print(rows, args.json)
    return EXIT_OK


def _print(rows: list[Any], as_json: bool) -> None:
    from cds.fhir.gaps import render

    if as_json:
        print(json.dumps([asdict(g) for g in rows], indent=2))
    else:
        sys.stdout.write(render(rows))


def run_gaps(args: argparse.Namespace) -> int:
    if not args.files:
        return run_stored_gaps(args)
    from cds.fhir import Terminology, extract_facts
    from cds.fhir.gaps import GAPS
    from cds.settings import rules_dir_setting

    rules_dir = rules_dir_setting(args.rules)
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
    _print(GAPS.snapshot(), args.json)
    return EXIT_OK
