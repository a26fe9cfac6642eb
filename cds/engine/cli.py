"""``cds rules validate | lint | test | schema | report``.

Exit codes: 0 ok, 1 problems found (errors; for lint also warnings; for test
a failure or no test run), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cds.settings import rules_dir_setting

if TYPE_CHECKING:
    from cds.engine.loader import LoadResult, RuleSet
    from cds.knowledge import BundleResult

EXIT_OK, EXIT_FAILURE = 0, 1


def add_rules_commands(commands: Any) -> None:
    rules = commands.add_parser("rules", help="check, test and document the rule set")
    actions = rules.add_subparsers(metavar="ACTION")

    def add(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        parser.add_argument("--rules", type=Path, help="rules directory (CDS_RULES_DIR)")
        parser.set_defaults(run=run)
        return parser

    validate = add("validate", "load the rule set; print errors as file:line:col", run_validate)
    validate.add_argument(
        "--all",
        action="store_true",
        help="also list the errors folded under a root cause (consequences of a dropped file or entry)",
    )
    lint = add("lint", "print errors, warnings and notes; fail on errors or warnings", run_lint)
    lint.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="CODE",
        help="do not fail on this warning code (repeatable), e.g. W101 while value sets await rules",
    )
    test = add("test", "run the rule tests (every `tests:` under rules/, e.g. rules/rules/X.tests.yaml)", run_test)
    test.add_argument(
        "--engine",
        choices=["both", "reference", "durable"],
        default="both",
        help="backend(s) to run on (default: both when durable-rules is importable)",
    )
    test.add_argument("--verbose", "-v", action="store_true", help="print the rules fired for each test")
    test.add_argument("--only", metavar="REGEX", help="run only the tests whose id matches REGEX (re.search)")
    schema = add("schema", "print the JSON Schema of rule files", run_schema)
    schema.add_argument("--check", type=Path, help="compare with a checked-in copy instead of printing")
    schema.add_argument(
        "--write",
        action="store_true",
        help="regenerate rules/schemas/*.schema.json and the `# yaml-language-server` line of every file",
    )
    schema.add_argument(
        "--check-all",
        action="store_true",
        help="fail when a schema under rules/schemas/ or a file's modeline is out of date",
    )
    add("report", "print the clinical-content report (Markdown)", run_report)
    sensitivity = add(
        "sensitivity",
        "print each shipped case's posterior under the ends of every LR interval (ADR 0004)",
        run_sensitivity,
    )
    sensitivity.add_argument(
        "--write",
        type=Path,
        metavar="MARKDOWN",
        help="replace the table between the sensitivity markers of this file instead of printing",
    )
    coverage = add(
        "coverage", "per rule: a test makes it fire and one keeps it silent; value sets and cards used", run_coverage
    )
    coverage.add_argument("--format", choices=["markdown", "json"], default="markdown")
    coverage.add_argument(
        "--min-fire",
        type=float,
        default=0,
        metavar="PERCENT",
        help="fail when fewer active rules have a test making them fire",
    )
    coverage.add_argument(
        "--min-silent",
        type=float,
        default=0,
        metavar="PERCENT",
        help="fail when fewer active rules have a test keeping them silent",
    )
    diff = add(
        "diff", "compare the outcome of every case under two rule sets (cards, causes, rules responsible)", run_diff
    )
    diff.add_argument(
        "before",
        help="the rule set to compare with: a directory, or a git revision of the rules "
        "directory (e.g. HEAD, main, a commit)",
    )
    diff.add_argument("--format", choices=["markdown", "json"], default="markdown")
    diff.add_argument("--fail-on-change", action="store_true", help="exit 1 when any case's outcome changes")
    diff.add_argument(
        "--population",
        type=Path,
        metavar="DIR",
        help="evaluate the requests / FHIR Bundles (*.json, *.ndjson) under DIR instead of the rule tests",
    )
    diff.add_argument("--service", default="calciphylaxis-risk", help="service for Bundles in --population")
    diff.add_argument("--now", help="evaluation time for --population inputs (ISO 8601; default: now)")
    diff.add_argument("--engine", choices=["reference", "durable"], default="reference")


def _rules_dir(args: argparse.Namespace) -> Path:
    return rules_dir_setting(args.rules)


def _load(args: argparse.Namespace) -> LoadResult:
    from cds.engine.loader import load_ruleset

    return load_ruleset(_rules_dir(args))


def _loaded_or_report(args: argparse.Namespace) -> RuleSet | None:
    """The rule set, or None after printing its errors (the commands that need a valid set share this)."""
    result = _load(args)
    for d in result.errors:
        print(d, file=sys.stderr)
    return None if result.errors else result.ruleset


def _load_bundle(args: argparse.Namespace) -> BundleResult:
    """Everything under rules/ as the service loads it (rule language, value sets, lexicon,
    analytes, findings vocabularies, services): one list of ``file:line:col: CODE`` diagnostics."""
    from cds.knowledge import load_bundle

    return load_bundle(_rules_dir(args))


def run_validate(args: argparse.Namespace) -> int:
    result = _load_bundle(args)
    for d in result.errors:
        print(d.with_link(), file=sys.stderr)
    if result.consequences and args.all:
        print(f"-- {len(result.consequences)} consequence(s) of the errors above:", file=sys.stderr)
        for d in result.consequences:
            print(f"   {d}", file=sys.stderr)
    if result.errors or result.bundle is None:
        print(f"{len(result.errors)} error(s)", file=sys.stderr)
        return EXIT_FAILURE
    rs = result.bundle.ruleset
    print(
        f"ok: {rs.version}, {len(rs.compiled.rules)} active rule(s), {len(rs.hypotheses)} hypotheses, "
        f"{len(rs.cards)} card template(s), {len(rs.tests)} rule test(s)"
    )
    return EXIT_OK


def run_lint(args: argparse.Namespace) -> int:
    result = _load_bundle(args)
    ignored = {code.upper() for code in args.ignore}
    for d in result.diagnostics:
        print(d.with_link() if d.severity != "note" else d)
    counts = {s: sum(d.severity == s for d in result.diagnostics) for s in ("error", "warning", "note")}
    failing_warnings = sum(d.severity == "warning" and d.code not in ignored for d in result.diagnostics)
    print(
        f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['note']} note(s)"
        + (f"; ignored: {', '.join(sorted(ignored))}" if ignored else "")
    )
    return EXIT_FAILURE if counts["error"] or failing_warnings else EXIT_OK


def run_test(args: argparse.Namespace) -> int:
    from cds.engine import durable_backend
    from cds.engine.ruletests import default_extractor, format_report, run_rule_tests
    from cds.engine.runner import LoadedEngine

    ruleset = _loaded_or_report(args)
    if ruleset is None:
        return EXIT_FAILURE
    rs = ruleset
    engines = ["reference", "durable"] if args.engine == "both" else [args.engine]
    if args.engine == "both" and not durable_backend.AVAILABLE:
        print("note: durable-rules is not importable; testing the reference interpreter only", file=sys.stderr)
        engines = ["reference"]
    import re

    # not warmed: the report-text pipeline (medspaCy, ~1 s) starts on the first case that needs it
    extractor = default_extractor(_rules_dir(args), warm=False)
    only = re.compile(args.only).search if args.only else None
    display_root = _rules_dir(args).parent

    def where(test_id: str) -> str:
        path = rs.test_files.get(test_id)
        if path is None:
            return "?"
        try:
            shown = path.relative_to(display_root)
        except ValueError:
            shown = path
        return f"{shown}:{rs.test_lines.get(test_id, 0)}"

    ran, failed = 0, 0
    extracted: dict[Any, Any] = {}  # case facts, shared by both backends
    for name in engines:
        engine = LoadedEngine(rs, name)  # type: ignore[arg-type]
        try:
            results = run_rule_tests(engine, extractor, only, extracted)
        finally:
            engine.close()
        print(format_report(results, engine.backend, where))
        _record_pass(rs, engine.backend, extractor is not None, results, only is None)
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


def _record_pass(ruleset: Any, backend: str, with_extractor: bool, results: list[Any], whole: bool) -> None:
    """A full run that passed on a backend is recorded for the service's start-up gate (ADR 0014), so that
    `cds rules test && cds serve` (or a build step) does not test the same inputs twice."""
    from cds.engine.verdicts import configured_record, verdict_key
    from cds.settings import Settings

    if not whole or any(not r.passed and not r.skipped for r in results):
        return
    try:
        record = configured_record(Settings())
    except Exception:  # an invalid setting is `cds serve`'s error to report, not this command's
        return
    if record is not None:
        record.record_pass(verdict_key(ruleset, backend, with_extractor), len(results), backend, ruleset.version)


def run_schema(args: argparse.Namespace) -> int:
    from cds.engine import schemas
    from cds.engine.model import json_schema

    if args.write:
        for path in schemas.write(_rules_dir(args)):
            print(f"wrote {path}")
        return EXIT_OK
    if args.check_all:
        problems = schemas.stale(_rules_dir(args))
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run `cds rules schema --write`", file=sys.stderr)
            return EXIT_FAILURE
        print("schemas and modelines are up to date")
        return EXIT_OK

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

    ruleset = _loaded_or_report(args)
    if ruleset is None:
        return EXIT_FAILURE
    sys.stdout.write(markdown_report(ruleset))
    return EXIT_OK


def run_sensitivity(args: argparse.Namespace) -> int:
    from cds.engine.runner import LoadedEngine
    from cds.engine.sensitivity import sensitivity_markdown

    ruleset = _loaded_or_report(args)
    if ruleset is None:
        return EXIT_FAILURE
    engine = LoadedEngine(ruleset, "reference")
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


def run_diff(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cds.engine import outcomediff

    after_dir = _rules_dir(args)
    before = Path(args.before)
    with outcomediff.temporary_directory() as scratch:
        try:
            if not before.is_dir():
                before = outcomediff.checkout_revision(args.before, after_dir, Path(scratch))
            source = None
            if args.population is not None:
                from cds.hooks.services import load_services

                services = list(load_services(after_dir / "services.yaml"))
                now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
                population = args.population

                skipped: list[str] = []

                def source() -> Any:
                    return outcomediff.population_inputs(population, services, args.service, now, skipped)

            report = outcomediff.diff(before, after_dir, source, args.engine)
            if source is not None:
                for line in skipped:
                    print(f"cds rules diff: skipped {line}", file=sys.stderr)
        except outcomediff.DiffError as exc:
            print(f"cds rules diff: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    if args.format == "json":
        sys.stdout.write(json.dumps(report.as_json(), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(outcomediff.markdown(report))
    return EXIT_FAILURE if args.fail_on_change and report.changed else EXIT_OK


def run_coverage(args: argparse.Namespace) -> int:
    from cds.engine import coverage
    from cds.engine.ruletests import default_extractor, run_rule_tests
    from cds.engine.runner import LoadedEngine

    ruleset = _loaded_or_report(args)
    if ruleset is None:
        return EXIT_FAILURE
    engine = LoadedEngine(ruleset, "reference")
    try:
        results = run_rule_tests(engine, default_extractor(_rules_dir(args), warm=False))
    finally:
        engine.close()
    measured = coverage.measure(ruleset, results)
    if args.format == "json":
        sys.stdout.write(json.dumps(measured.as_json(), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(coverage.markdown(measured))
    status = EXIT_OK
    for what, minimum, noun in (("fired_by", args.min_fire, "fire"), ("silent_by", args.min_silent, "stay silent")):
        if measured.percent(what) < minimum:
            missing = measured.uncovered(what)
            print(
                f"FAIL: {measured.percent(what):.0f}% of active rules have a test making them {noun} "
                f"(minimum {minimum:g}%); missing: {', '.join(missing)}",
                file=sys.stderr,
            )
            status = EXIT_FAILURE
    return status
