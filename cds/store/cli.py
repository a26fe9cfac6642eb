"""``cds feedback ...`` commands (registered by ``cds.cli.build_parser``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson


def add_feedback_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feedback = commands.add_parser("feedback", help="card feedback and audit")
    actions = feedback.add_subparsers(metavar="ACTION")
    report = actions.add_parser(
        "report",
        help="per card family, override reason, rule and card: how often accepted or overridden, and why",
    )
    report.add_argument("--database-url", help="database URL (CDS_DATABASE_URL; default sqlite:///data/cds.sqlite3)")
    report.add_argument("--config", help="YAML config file (CDS_CONFIG_FILE)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument("--cards", type=int, default=50, help="how many cards to list (default 50)")
    report.add_argument("--rules", help="rules directory whose override reasons name codes sent without a display")
    report.set_defaults(run=run_feedback_report)


def run_feedback_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sqlalchemy.exc import SQLAlchemyError

    from cds.settings import load_settings
    from cds.store.database import create_store_engine, migrate
    from cds.store.report import feedback_report, render_report

    overrides = {"database_url": args.database_url} if args.database_url else {}
    settings = load_settings(Path(args.config) if args.config else None, **overrides)
    try:
        engine = create_store_engine(settings.database_url.get_secret_value(), settings.database_timeout_seconds)
    except OSError as exc:
        print(f"cds feedback report: cannot open the database: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        migrate(engine)
        report = feedback_report(engine, card_limit=args.cards, reason_displays=_reason_displays(args, settings))
    except SQLAlchemyError as exc:
        print(f"cds feedback report: the database is unavailable ({type(exc).__name__})", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_report(report))
    return 0


def _reason_displays(args: argparse.Namespace, settings: Any) -> dict[tuple[str, str, str], str]:
    """(card family, system, code) -> display of each override reason the rules declare; empty if they do not load."""
    from pathlib import Path

    from cds.engine.loader import load_ruleset

    result = load_ruleset(Path(args.rules) if args.rules else settings.rules_dir)
    if result.ruleset is None:
        return {}
    return {
        (card.id, reason.system, reason.code): reason.display
        for card in result.ruleset.cards.values()
        for reason in card.override_reasons
    }
