"""``cds rules validate | lint | test | schema | report``.

Exit codes: 0 ok, 1 problems found (errors; for lint also warnings; for test
a failure or no test run), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from cds.settings import DEFAULT_RULES_DIR

EXIT_OK, EXIT_FAILURE = 0, 1


def add_rules_commands(commands: Any) -> None:
    rules = commands.add_parser("rules", help="check, test and document the rule set")
    actions = rules.add_subparsers(metavar="ACTION")

    def add(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--rules", type=Path, help="rules directory (CDS_RULES_DIR)")
        parser.set_defaults(run=run)
        return parser

    add("validate", "load the rule set; print errors as file:line:col", run_validate)
    lint = add("lint", "print errors, warnings and notes; fail on errors or warnings", run_lint)
    lint.add_argument("--ignore", action="append", default=[], metavar="CODE",
                      help="do not fail on this warning code (repeatable), e.g. W101 while value sets await rules")
    test = add("test", "run the rule tests (rules/tests/*.yaml)", run_test)
    test.add_argument("--engine", choices=["both", "reference", "durable"], default="both",
                      help="backend(s) to run on (default: both when durable-rules is importable)")
    test.add_argument("--verbose", "-v", action="store_true", help="print the rules fired for each test")
    schema = add("schema", "print the JSON Schema of rule files", run_schema)
    schema.add_argument("--check", type=Path, help="compare with a checked-in copy instead of printing")
    add("report", "print the clinical-content report (Markdown)", run_report)
    sensitivity = add("sensitivity", "print each shipped case's posterior under the ends of every LR interval (ADR 0004)",
                      run_sensitivity)
    sensitivity.add_argument("--write", type=Path, metavar="MARKDOWN",
                             help="replace the table between the sensitivity markers of this file instead of printing")


def _rules_dir(args: argparse.Namespace) -> Path:
    return args.rules or Path(os.environ.get("CDS_RULES_DIR", DEFAULT_RULES_DIR))


def _load(args: argparse.Namespace):
    from cds.engine.loader import load_ruleset

    return load_ruleset(_rules_dir(args))


def _terminology_errors(args: argparse.Namespace) -> list[str]:
    """Value sets, analytes and the findings vocabularies, as the FHIR layer loads them when serving."""
    from cds.fhir.terminology import Terminology, TerminologyError

    try:
        Terminology.load(_rules_dir(args))
    except TerminologyError as exc:
        return [f"{exc} (TERMINOLOGY)"]
    return []


def run_validate(args: argparse.Namespace) -> int:
    result = _load(args)
    for d in result.diagnostics:
        if d.severity == "error":
            print(d, file=sys.stderr)
    services_errors = _services_errors(_rules_dir(args))  # e.g. prefetch tokens CDS Hooks 2.0 does not define
    terminology_errors = _terminology_errors(args)
    for line in [*services_errors, *terminology_errors]:
        print(line, file=sys.stderr)
    if result.errors or services_errors or terminology_errors:
        print(f"{len(result.errors) + len(services_errors) + len(terminology_errors)} error(s)", file=sys.stderr)
        return EXIT_FAILURE
    rs = result.ruleset
    print(f"ok: {rs.version}, {len(rs.compiled.rules)} active rule(s), {len(rs.hypotheses)} hypotheses, "
          f"{len(rs.cards)} card template(s), {len(rs.tests)} rule test(s)")
    return EXIT_OK


def _services_errors(rules_dir: Path) -> list[str]:
    """services.yaml as the service loads it: one file:line:col line per problem."""
    from cds.hooks.services import ServiceDefinitionError, load_services

    try:
        load_services(rules_dir / "services.yaml")
    except ServiceDefinitionError as exc:
        return str(exc).splitlines()
    return []


def run_lint(args: argparse.Namespace) -> int:
    result = _load(args)
    ignored = {code.upper() for code in args.ignore}
    for d in result.diagnostics:
        print(d)
    counts = {s: sum(d.severity == s for d in result.diagnostics) for s in ("error", "warning", "note")}
    failing_warnings = sum(d.severity == "warning" and d.code not in ignored for d in result.diagnostics)
    print(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['note']} note(s)"
          + (f"; ignored: {', '.join(sorted(ignored))}" if ignored else ""))
    return EXIT_FAILURE if counts["error"] or failing_warnings else EXIT_OK


def run_test(args: argparse.Namespace) -> int:
    from cds.engine import durable_backend
    from cds.engine.ruletests import default_extractor, format_report, run_rule_tests
    from cds.engine.runner import LoadedEngine

    result = _load(args)
    if result.errors:
        for d in result.errors:
            print(d, file=sys.stderr)
        return EXIT_FAILURE
    rs = result.ruleset
    engines = ["reference", "durable"] if args.engine == "both" else [args.engine]
    if args.engine == "both" and not durable_backend.AVAILABLE:
        print("note: durable-rules is not importable; testing the reference interpreter only", file=sys.stderr)
        engines = ["reference"]
    extractor = default_extractor(_rules_dir(args))
    ran, failed = 0, 0
    for name in engines:
        engine = LoadedEngine(rs, name)  # type: ignore[arg-type]
        try:
            results = run_rule_tests(engine, extractor)
        finally:
            engine.close()
        print(format_report(results, engine.backend))
        if args.verbose:
            for r in results:
                if r.outcome is not None:
                    print(f"  {r.id}: fired {', '.join(r.outcome.rules_fired) or 'none'}")
        ran += sum(not r.skipped for r in results)
        failed += sum(not r.passed and not r.skipped for r in results)
    if ran == 0:
        print("FAIL: no rule test ran", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_FAILURE if failed else EXIT_OK


def run_schema(args: argparse.Namespace) -> int:
    from cds.engine.model import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.check:
        if not args.check.is_file() or args.check.read_text(encoding="utf-8") != text:
            print(f"{args.check} is out of date: run `cds rules schema > {args.check}`", file=sys.stderr)
            return EXIT_FAILURE
        print(f"{args.check} is up to date")
        return EXIT_OK
    sys.stdout.write(text)
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from cds.engine.report import markdown_report

    result = _load(args)
    if result.errors:
        for d in result.errors:
            print(d, file=sys.stderr)
        return EXIT_FAILURE
    sys.stdout.write(markdown_report(result.ruleset))
    return EXIT_OK


def run_sensitivity(args: argparse.Namespace) -> int:
    from cds.engine.runner import LoadedEngine
    from cds.engine.sensitivity import sensitivity_markdown

    result = _load(args)
    if result.errors:
        for d in result.errors:
            print(d, file=sys.stderr)
        return EXIT_FAILURE
    engine = LoadedEngine(result.ruleset, "reference")
    try:
        table = sensitivity_markdown(engine)
    finally:
        engine.close()
    if args.write is None:
        sys.stdout.write(table)
        return EXIT_OK
    text = args.write.read_text(encoding="utf-8")
    start, end = text.find(SENSITIVITY_BEGIN), text.find(SENSITIVITY_END)
    if start < 0 or end < start:
        print(f"{args.write}: no {SENSITIVITY_BEGIN} ... {SENSITIVITY_END} block", file=sys.stderr)
        return EXIT_FAILURE
    args.write.write_text(text[: start + len(SENSITIVITY_BEGIN)] + "\n" + table + text[end:], encoding="utf-8")
    print(f"{args.write}: sensitivity table updated")
    return EXIT_OK


SENSITIVITY_BEGIN = "<!-- sensitivity:begin (generated by `cds rules sensitivity --write`) -->"
SENSITIVITY_END = "<!-- sensitivity:end -->"
