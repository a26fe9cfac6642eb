"""The ``cds`` command line: serve, evaluate a request offline, show configuration."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cds.hooks.errors import HookError
from cds.hooks.services import ServiceDefinition, ServiceDefinitionError
from cds.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or EXIT_OK)
    except (SettingsError, ServiceDefinitionError) as exc:
        print(f"cds: {exc}", file=sys.stderr)
        return EXIT_FAILURE


# Commands that other packages register: (the commands it adds, module, function). A module is
# imported only when one of its commands is the one asked for (or for the help and unknown commands, which list them
# all): importing ``cds.store`` alone costs SQLAlchemy and Alembic (~0.3 s), which `cds evaluate`
# and `cds rules test` never use (benchmarks/bench_authoring.py).
_REGISTERED_ELSEWHERE = (
    (("feedback",), "cds.store.cli", "add_feedback_commands"),
    (("rules",), "cds.engine.cli", "add_rules_commands"),
    (("terminology",), "cds.fhir.cli", "add_terminology_commands"),
    # population screening on Dask (issue 19)
    (("screen", "synth", "ndjson-from-bundles"), "cds.screen.cli", "add_screen_commands"),
)
_OWN_COMMANDS = frozenset({"serve", "evaluate", "config", "openapi", "studio"})


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names is registered from other packages."""
    parser = argparse.ArgumentParser(prog="cds", description="Calciphylaxis CDS Hooks service")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    wanted = _command_word(argv)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (CDS_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (CDS_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (CDS_WORKERS, default 1)")
    serve.add_argument("--rules", type=Path, help="rules directory (CDS_RULES_DIR)")
    serve.add_argument("--config", type=Path, help="YAML config file (CDS_CONFIG_FILE)")
    serve.set_defaults(run=run_serve)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a CDS Hooks request (or a FHIR Bundle) offline and print the cards",
        description="Reads a CDS Hooks request JSON, or a FHIR Bundle with --service, "
        "runs it through the same validation and rules as the HTTP service, and prints the cards.",
    )
    evaluate.add_argument("file", type=Path, help="CDS Hooks request JSON, or a FHIR Bundle")
    evaluate.add_argument("--service", help="service id (default: the one whose hook matches the request)")
    evaluate.add_argument("--hook", help="hook, when FILE is a Bundle (default: patient-view)")
    evaluate.add_argument("--rules", type=Path, help="rules directory")
    evaluate.add_argument("--json", action="store_true", help="print the raw CDS Hooks response")
    evaluate.add_argument("--trace", action="store_true", help="print the evaluation trace")
    evaluate.add_argument(
        "--now",
        type=_timestamp,
        help="evaluation time, ISO 8601 (default: the reference date of the "
        "shipped case that is FILE, from its rule test; otherwise the current time)",
    )
    evaluate.add_argument(
        "--why",
        action="append",
        default=[],
        metavar="ID",
        help="explain why a rule fired or not (first failing pattern, the values seen), or why a "
        "card template was raised or not (service, rule intent, threshold); repeatable",
    )
    evaluate.add_argument(
        "--check-tests",
        action="store_true",
        help="also run the rule tests and warn about failures (evaluate never refuses on them)",
    )
    evaluate.set_defaults(run=run_evaluate)

    config = commands.add_parser("config", help="configuration")
    config_commands = config.add_subparsers(metavar="ACTION")
    show = config_commands.add_parser("show", help="print the effective configuration, secrets masked")
    show.add_argument("--config", type=Path, help="YAML config file")
    show.set_defaults(run=run_config_show)

    _register_elsewhere(commands, wanted, ("feedback",))

    openapi = commands.add_parser("openapi", help="print the OpenAPI contract (YAML)")
    openapi.set_defaults(run=run_openapi)
    _register_elsewhere(commands, wanted, ("rules", "terminology", "screen"))

    studio = commands.add_parser("studio", help="rule playground in the browser (loopback only, no authentication)")
    studio.add_argument("--rules", type=Path, help="rules directory (CDS_RULES_DIR)")
    studio.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    studio.set_defaults(run=run_studio)
    return parser


def _command_word(argv: Sequence[str] | None) -> str | None:
    """The command ``argv`` names, or None when every command must be registered (no argv, the
    help, no command, or a word that is not a command: argparse then lists them all)."""
    if not argv or argv[0].startswith("-"):
        return None
    known = _OWN_COMMANDS.union(*(names for names, _, _ in _REGISTERED_ELSEWHERE))
    return argv[0] if argv[0] in known else None


def _register_elsewhere(commands: Any, wanted: str | None, names: Sequence[str]) -> None:
    import importlib

    for added, module, function in _REGISTERED_ELSEWHERE:
        if added[0] in names and (wanted is None or wanted in added):
            getattr(importlib.import_module(module), function)(commands)


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    config_file = getattr(args, "config", None)
    env_file = None if config_file else _env_config_file()
    return load_settings(config_file or env_file, **{k: v for k, v in overrides.items() if v is not None})


def _env_config_file() -> Path | None:
    value = os.environ.get("CDS_CONFIG_FILE")
    return Path(value) if value else None


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cds.observability.logs import configure_logging
    from cds.serving import BOUNDED_HTTPTOOLS

    settings = _settings(args, host=args.host, port=args.port, workers=args.workers, rules_dir=args.rules)
    settings.check()
    if settings.workers == 1:
        # The app is built in this process: no collector passes while it starts (cds.app, ADR 0014). With
        # several workers this process only supervises, and each worker pauses its own (cds.asgi).
        gc.disable()
    configure_logging(settings.log_level)
    if not settings.auth_required:
        print(
            "WARNING: authentication is OFF (CDS_AUTH_REQUIRED=false). Any local caller can use this service. "
            "Allowed only on loopback, for demos.",
            file=sys.stderr,
        )
    # Worker processes rebuild the app from the environment (cds.asgi).
    os.environ["CDS_RULES_DIR"] = str(settings.rules_dir)
    os.environ["CDS_WORKERS"] = str(settings.workers)  # each worker picks its replay store by it
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before any worker imports prometheus_client (cds.observability.metrics).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cds-metrics-")
    # uvicorn re-raises the SIGTERM it handled once the server has stopped; with this handler in
    # place that ends in a clean exit 0 after the graceful shutdown, as the docs promise.
    signal.signal(signal.SIGTERM, lambda *_: None)
    options: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,  # keep the JSON-lines logging configured above
        access_log=False,  # one structured event per request comes from the app itself
        timeout_graceful_shutdown=20,
        # The supervisor kills a worker that does not answer its ping within this time, and a worker
        # only starts answering once its imports are done: uvicorn's 5 s killed starting workers in a
        # loop on a loaded 2-core machine (ADR 0013).
        timeout_worker_healthcheck=30,
        # The request line and headers are bounded by max_header_bytes with either parser (uvicorn's own
        # httptools protocol has no bound: a 64 MB header held a worker's event loop for 21 s, hence
        # cds.serving's bounded subclass, ADR 0015); idle keep-alive and open connections are bounded.
        http=BOUNDED_HTTPTOOLS if settings.http_protocol == "httptools" else "h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_connections,
        # No route takes a WebSocket: uvicorn's default ("auto") imports the websockets package at every
        # start (~0.03 s of CPU, ADR 0014); an upgrade request is then answered as plain HTTP.
        ws="none",
    )
    if settings.workers > 1:
        return _serve_workers(options)
    uvicorn.run(_app_from(settings), **options)
    return EXIT_OK


def _serve_workers(options: dict[str, Any]) -> int:
    """N worker processes, each with its own SO_REUSEPORT socket where the kernel balances them (ADR 0013)."""
    import uvicorn

    from cds.serving import reuseport_supported, run_workers

    if not reuseport_supported() or os.environ.get("CDS_SHARED_SOCKET", "").lower() in ("1", "true", "yes"):
        uvicorn.run("cds.asgi:app", **options)  # uvicorn's shared socket: one worker may take every connection
        return EXIT_OK
    try:
        run_workers(uvicorn.Config("cds.asgi:app", **options))
    except OSError as error:
        print(f"cds serve: cannot listen on {options['host']}:{options['port']}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _app_from(settings: Settings) -> Any:
    from cds.app import create_app  # imported here so `cds --help` stays fast
    from cds.pipeline import install_reload_signal

    app = create_app(settings, resume_collector=True)  # paused in run_serve
    install_reload_signal(app.state.pipeline)  # SIGHUP reloads the rules (validated and tested first)
    return app


def run_config_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    for name, value in settings.masked().items():
        print(f"{name:22} {value}")
    return EXIT_OK


def run_openapi(args: argparse.Namespace) -> int:
    from cds.hooks.openapi import contract_yaml

    sys.stdout.write(contract_yaml())
    return EXIT_OK


# --------------------------------------------------------------------------- studio


def run_studio(args: argparse.Namespace) -> int:
    """The playground: never in the production profile, never on a non-loopback address."""
    # Only a profile someone chose refuses it: Settings' default profile is production, and the
    # studio is a tool for the author's own machine.
    settings = _settings(args, rules_dir=args.rules)
    if settings.profile == "production" and "profile" in settings.model_fields_set:
        print(
            "cds studio: refused in the production profile (CDS_PROFILE=production): it has no authentication",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    import uvicorn

    from cds.studio.app import create_studio_app

    rules_dir = settings.rules_dir
    app = create_studio_app(rules_dir)
    print(
        f"cds studio: http://127.0.0.1:{args.port}/ (rules: {rules_dir}; loopback only, no authentication)",
        file=sys.stderr,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return EXIT_OK


# --------------------------------------------------------------------------- evaluate


def run_evaluate(args: argparse.Namespace) -> int:
    from cds.hooks.handler import answer_hook
    from cds.pipeline import Pipeline

    settings = _settings(args, rules_dir=args.rules)
    try:
        document = orjson.loads(args.file.read_bytes())
    except OSError as exc:
        print(f"cds evaluate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    except orjson.JSONDecodeError as exc:
        print(f"cds evaluate: {args.file} is not valid JSON: {exc.msg} (position {exc.pos})", file=sys.stderr)
        return EXIT_FAILURE
    if not isinstance(document, dict):
        print(f"cds evaluate: {args.file} must hold a JSON object", file=sys.stderr)
        return EXIT_FAILURE

    # The rules on disk as they are, tested or not: an author needs to see what an edit does while a
    # test disagrees. The service itself always gates on the tests. The report-text pipeline starts
    # only if a report needs it.
    pipeline = Pipeline.load(
        settings.rules_dir, settings.hook_namespace, engine=settings.engine, run_tests=False, warm=False
    )
    _warn_about_tests(pipeline, args.check_tests)
    now, now_source = _evaluation_time(pipeline, args.file, args.now)
    if now_source:
        print(f"cds evaluate: evaluating at {now.isoformat()} ({now_source})", file=sys.stderr)
    try:
        if document.get("resourceType") == "Bundle":
            service = _pick_service(pipeline.services, args.service, args.hook or "patient-view")
            payload = request_from_bundle(document, service)
        else:
            service = _pick_service(pipeline.services, args.service, document.get("hook"))
            payload = document
    except LookupError as exc:
        print(f"cds evaluate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.trace:
        payload.setdefault("extension", {})[settings.trace_extension_key] = True
    try:
        evaluation = asyncio.run(answer_hook(pipeline, service, payload, now, None, settings.trace_extension_key))
    except HookError as exc:
        print(f"cds evaluate: the service would answer HTTP {exc.status}:", file=sys.stderr)
        for line in exc.diagnostics:
            print(f"  - {line}", file=sys.stderr)
        return EXIT_FAILURE
    response = evaluation.response.to_wire()
    if args.json:
        if evaluation.trace is not None and args.trace:
            response.setdefault("extension", {})[settings.trace_extension_key] = evaluation.trace
        sys.stdout.write(orjson.dumps(response, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_cards(service, response))
        if args.trace and evaluation.trace is not None:
            print(render_trace(evaluation.trace))
    if args.why or (args.trace and not args.json):
        # with --trace: also why each card template of this service was or was not raised
        cards = [c for c, t in pipeline.ruleset.cards.items() if service.id in t.services] if args.trace else []
        print(explain_request(pipeline, service, payload, now, [*args.why, *cards]))
    return EXIT_OK


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _evaluation_time(pipeline: Any, file: Path, given: datetime | None) -> tuple[datetime, str]:
    """``--now``, else the reference date of the rule test whose case is ``file``, else the clock."""
    if given is not None:
        return given, "--now"
    from cds.engine.paths import case_path

    ruleset = pipeline.ruleset
    try:
        target = file.resolve()
    except OSError:
        return datetime.now(UTC), ""
    for test in ruleset.tests:
        if test.case is None or test.now is None:
            continue
        declaring = ruleset.test_files.get(test.id)
        path = case_path(ruleset.rules_dir, declaring, test.case) if declaring else None
        # the case itself, or an identical copy of it (rules/cases/ holds copies of fhir_examples/requests/)
        if path is not None and (path.resolve() == target or (path.name == target.name and _same_bytes(path, target))):
            return _timestamp(test.now), f"the reference date of rule test {test.id}"
    return datetime.now(UTC), ""


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _warn_about_tests(pipeline: Any, run: bool) -> None:
    if not run:
        print(
            "cds evaluate: rule tests not run (`cds rules test`, or --check-tests);"
            " showing the rules on disk as they are",
            file=sys.stderr,
        )
        return
    from cds.engine.ruletests import run_rule_tests

    loaded = pipeline._loaded
    failing = [r for r in run_rule_tests(loaded.engine, loaded.extractor) if not r.passed and not r.skipped]
    for r in failing:
        print(f"cds evaluate: WARNING: rule test {r.id} fails: {'; '.join(r.failures)}", file=sys.stderr)
    if failing:
        print(
            f"cds evaluate: WARNING: {len(failing)} rule test(s) fail; the cards below come from untested rules",
            file=sys.stderr,
        )


def explain_request(
    pipeline: Any, service: ServiceDefinition, payload: dict[str, Any], now: datetime, idents: list[str]
) -> str:
    """``--why``: re-derive the facts of the request and explain each rule or card id."""
    from cds.engine.explain import render, why

    loaded = pipeline._loaded
    if loaded.extractor is None:
        return "--why: the FHIR fact layer (cds.fhir) is not installed"
    factset = loaded.extractor(dict(payload.get("context") or {}), dict(payload.get("prefetch") or {}), now)
    outcome = loaded.engine.evaluate(factset, service.id)
    return "\nWhy:\n" + "\n".join(render(why(loaded.ruleset, outcome, ident)) for ident in idents)


def _pick_service(services: Sequence[ServiceDefinition], service_id: str | None, hook: Any) -> ServiceDefinition:
    if service_id:
        for service in services:
            if service.id == service_id:
                return service
        raise LookupError(f"no service {service_id!r}; known: {', '.join(s.id for s in services)}")
    for service in services:
        if service.hook == hook:
            return service
    raise LookupError(f"no service answers hook {hook!r}; pass --service (known: {', '.join(s.id for s in services)})")


def request_from_bundle(bundle: dict[str, Any], service: ServiceDefinition) -> dict[str, Any]:
    """A CDS Hooks request for ``service`` whose prefetch is filled from a FHIR Bundle.

    Each prefetch template names a resource type (``Patient/{{..}}`` is a read,
    ``Condition?..`` a search); the Bundle's entries of that type fill it. For
    order hooks, draft request resources become ``draftOrders``.
    """
    resources = [
        e["resource"] for e in bundle.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if patient is None:
        raise LookupError("the Bundle holds no Patient")
    drafts = [
        r
        for r in resources
        if r.get("status") == "draft" and r.get("resourceType") in {"MedicationRequest", "ServiceRequest"}
    ]
    prefetch: dict[str, Any] = {}
    for key, template in service.prefetch.items():
        resource_type = template.split("?", 1)[0].split("/", 1)[0]
        matching = [r for r in resources if r.get("resourceType") == resource_type and r not in drafts]
        if "?" not in template:
            prefetch[key] = matching[0] if matching else None
        else:
            prefetch[key] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matching),
                "entry": [{"resource": r} for r in matching],
            }
    context: dict[str, Any] = {"userId": "Practitioner/cds-cli", "patientId": patient.get("id", "unknown")}
    if service.hook in {"order-select", "order-sign"}:
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in drafts],
        }
        if service.hook == "order-select":
            context["selections"] = [f"{r['resourceType']}/{r.get('id')}" for r in drafts]
    return {"hook": service.hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}


_INDICATOR_LABEL = {"info": "INFO", "warning": "WARNING", "critical": "CRITICAL"}


def render_cards(service: ServiceDefinition, response: dict[str, Any]) -> str:
    cards = response.get("cards", [])
    lines = [f"{service.title} ({service.id}, {service.hook}): {len(cards)} card(s)"]
    if not cards:
        lines.append("  No guidance for this request.")
    for number, card in enumerate(cards, 1):
        lines.append("")
        lines.append(f"[{number}] {_INDICATOR_LABEL.get(card['indicator'], card['indicator'])}: {card['summary']}")
        lines.append(f"    source: {card['source']['label']}")
        if "detail" in card:
            for paragraph in card["detail"].splitlines():
                lines.extend(textwrap.wrap(paragraph, 96, initial_indent="    ", subsequent_indent="    ") or [""])
        for suggestion in card.get("suggestions", []):
            star = " (recommended)" if suggestion.get("isRecommended") else ""
            lines.append(f"    suggestion: {suggestion['label']}{star}")
            for action in suggestion.get("actions", []):
                lines.append(f"      - {action['type']}: {action['description']}")
        for link in card.get("links", []):
            lines.append(f"    link: {link['label']} <{link['url']}>")
    return "\n".join(lines)


def render_trace(trace: dict[str, Any]) -> str:
    return "\nTrace:\n" + orjson.dumps(trace, option=orjson.OPT_INDENT_2).decode()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
