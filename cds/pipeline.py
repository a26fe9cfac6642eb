"""The stages after the wire: FHIR resources -> facts -> rules -> differential -> cards.

The web layer hands a validated request and its completed prefetch to
``Pipeline.evaluate`` and gets a validated ``CDSResponse`` back. Nothing here
knows about HTTP.

Hot reload: ``Pipeline.reload()`` (SIGHUP when ``install_reload_signal`` was
called, as ``cds serve`` does) builds the new rule set off to the side,
validates it and runs its rule tests; only then does it replace the serving
set in one reference assignment. An evaluation takes one snapshot at its
start, so no request sees a half-swapped rule set or is dropped. A refused
set is logged and shown by ``status()``; the previous one keeps serving.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cds.engine.loader import RuleSet
from cds.engine.prepare import MAX_FACTS
from cds.engine.ruletests import run_rule_tests
from cds.engine.runner import LoadedEngine
from cds.engine.verdicts import VerdictRecord, verdict_key
from cds.facts import FactSet, FactWarning
from cds.fhir.extractor import Extractor, default_extractor
from cds.hooks.evaluation import Evaluation, FactLimitExceeded
from cds.hooks.models import CDSRequest, CDSResponse
from cds.hooks.services import ServiceDefinition, ServiceDefinitionError
from cds.knowledge import KnowledgeBundle, load_bundle
from cds.observability import metrics
from cds.settings import Settings

log = logging.getLogger("cds.pipeline")


class RulesetLoadError(ServiceDefinitionError):
    """The rules directory does not load (file:line errors) or its rule tests fail."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("rule set refused:\n" + "\n".join(lines))


@dataclass(frozen=True)
class _Loaded:
    """Everything one rule-set version needs to answer; replaced as a whole on reload."""

    services: tuple[ServiceDefinition, ...]
    ruleset: RuleSet
    engine: LoadedEngine
    extractor: Extractor | None
    loaded_at: str
    bundle: KnowledgeBundle | None = None  # everything under rules/ of this version (cds.knowledge)


def _build(
    rules_dir: Path,
    hook_namespace: str,
    engine_choice: str,
    run_tests: bool = True,
    warm: bool = True,
    verdicts: VerdictRecord | None = None,
) -> _Loaded:
    # The rule-test verdict is keyed by the files on disk: it is used or recorded only when they did
    # not change while this version was loaded and tested (an edit mid-way gives the next reload).
    on_disk = rules_fingerprint(rules_dir) if verdicts is not None and run_tests else None
    # One loader for everything under rules/ (cds.knowledge): every file kind's errors, file:line:col.
    loaded = load_bundle(rules_dir, hook_namespace)
    if loaded.bundle is None or loaded.errors:
        raise RulesetLoadError([d.with_link() for d in loaded.errors])
    bundle = loaded.bundle
    services, ruleset = bundle.services, bundle.ruleset
    try:
        engine = LoadedEngine(ruleset, engine_choice)  # type: ignore[arg-type]
    except Exception as exc:  # e.g. durable refuses the compiled set, or CDS_ENGINE=durable without it
        raise RulesetLoadError([f"engine {engine_choice}: {exc}"]) from exc
    extractor = default_extractor(rules_dir, warm=warm, terminology=bundle.terminology)
    failures = _rule_test_failures(ruleset, rules_dir, engine, extractor, verdicts, on_disk) if run_tests else []
    if failures:
        raise RulesetLoadError(failures)
    return _Loaded(services, ruleset, engine, extractor, datetime.now(UTC).isoformat(timespec="seconds"), bundle)


def _rule_test_failures(
    ruleset: RuleSet,
    rules_dir: Path,
    engine: LoadedEngine,
    extractor: Extractor | None,
    verdicts: VerdictRecord | None,
    on_disk: tuple[tuple[str, int, int], ...] | None = None,
) -> list[str]:
    """The start-up gate: every failing rule test on the serving backend, one line each.

    With ``verdicts``, a pass recorded for exactly these rules, cases, code, libraries and backend
    stands for running them again (cds.engine.verdicts); a failure is never recorded."""
    key = None
    if verdicts is not None and on_disk is not None and on_disk == rules_fingerprint(rules_dir):
        key = verdict_key(ruleset, engine.backend, extractor is not None)
    if verdicts is not None and key is not None and verdicts.passed(key):
        log.info("rule tests: pass recorded for these inputs (%s, %s); not run again", ruleset.version, key[:12])
        return []
    results = run_rule_tests(engine, extractor)
    failures = [
        f"{_test_location(ruleset, rules_dir, r.id)}: rule test {r.id}: {failure}"
        for r in results
        if not r.passed and not r.skipped
        for failure in r.failures
    ]
    if not failures and verdicts is not None and key is not None and on_disk == rules_fingerprint(rules_dir):
        verdicts.record_pass(key, len(results), engine.backend, ruleset.version)
    return failures


def _test_location(ruleset: RuleSet, rules_dir: Path, test_id: str) -> str:
    """``rules/rules/x.tests.yaml:12``: where a failing rule test is written (reload log, /readyz)."""
    path = ruleset.test_files.get(test_id)
    if path is None:
        return str(rules_dir.name)
    try:
        shown: Path | str = path.relative_to(rules_dir.parent)
    except ValueError:
        shown = path
    return f"{shown}:{ruleset.test_lines.get(test_id, 0)}"


def _configured_engine() -> str:
    """``CDS_ENGINE`` read through ``Settings`` (the one place configuration is read)."""
    try:
        return Settings().engine
    except ValidationError as exc:
        raise RulesetLoadError(
            [f"CDS_ENGINE: expected auto, durable or reference ({exc.error_count()} error)"]
        ) from None


class Pipeline:
    def __init__(
        self,
        rules_dir: Path,
        loaded: _Loaded,
        hook_namespace: str,
        engine_choice: str,
        verdicts: VerdictRecord | None = None,
    ) -> None:
        self.rules_dir = rules_dir
        self.verdicts = verdicts
        self.hook_namespace = hook_namespace
        self.engine_choice = engine_choice
        self._loaded = loaded
        self._reload_lock = threading.Lock()
        self.load_errors: list[str] = []
        self.last_reload: dict[str, Any] | None = None

    @classmethod
    def load(
        cls,
        rules_dir: Path,
        hook_namespace: str = "org.calciphylaxis-cds",
        engine: str | None = None,
        run_tests: bool = True,
        warm: bool = True,
        verdicts: VerdictRecord | None = None,
    ) -> Pipeline:
        """Load services and rules; raises ``RulesetLoadError`` (a ServiceDefinitionError) with file:line errors.

        ``run_tests=False`` skips the rule-test gate and ``warm=False`` the eager start of the report-text
        pipeline: for ``cds evaluate`` and the studio, which show what the rules on disk do, tested or not.
        The service always gates and warms. ``verdicts``: where rule-test passes are recorded, so that the
        same rules, code and libraries are not tested again at the next start or reload (cds.engine.verdicts)."""
        choice = engine or _configured_engine()
        if choice not in ("auto", "durable", "reference"):
            raise RulesetLoadError([f"CDS_ENGINE={choice!r}: expected auto, durable or reference"])
        rules_dir = Path(rules_dir)
        loaded = _build(rules_dir, hook_namespace, choice, run_tests, warm, verdicts)
        return cls(rules_dir, loaded, hook_namespace, choice, verdicts)

    # -------------------------------------------------------------- the public surface of the web layer
    @property
    def services(self) -> tuple[ServiceDefinition, ...]:
        return self._loaded.services

    @property
    def version(self) -> str:
        return self._loaded.ruleset.version

    @property
    def backend(self) -> str:
        return self._loaded.engine.backend

    @property
    def ruleset(self) -> RuleSet:
        return self._loaded.ruleset

    def service(self, service_id: str) -> ServiceDefinition | None:
        return next((s for s in self._loaded.services if s.id == service_id), None)

    def evaluate(
        self,
        service: ServiceDefinition,
        request: CDSRequest,
        prefetch: Mapping[str, Any],
        now: datetime,
        want_trace: bool = False,
        max_facts: int | None = None,
        pages_base_url: str | None = None,
    ) -> Evaluation:
        loaded = self._loaded  # one snapshot: a reload during this evaluation does not affect it
        started = time.perf_counter()
        factset = self._facts(loaded, request, prefetch, now)
        facts_seconds = time.perf_counter() - started
        limit = MAX_FACTS if max_facts is None else max_facts
        if len(factset.facts) > limit:
            # Evaluating only part of the facts could hide a card: refuse instead (CDS_MAX_FACTS).
            raise FactLimitExceeded(len(factset.facts), limit)
        evaluation = evaluate_facts(
            loaded.ruleset,
            loaded.engine,
            service.id,
            factset,
            request.context,
            self.hook_namespace,
            want_trace,
            pages_base_url,
        )
        return replace(evaluation, timings={"facts": facts_seconds, **evaluation.timings})

    def status(self) -> dict[str, Any]:
        loaded = self._loaded
        return {
            "version": loaded.ruleset.version,
            "declared_version": loaded.ruleset.info.version,
            "content_hash": loaded.ruleset.content_hash,
            "engine": loaded.engine.backend,
            "rules_active": len(loaded.ruleset.compiled.rules),
            "facts_from": "cds.fhir" if loaded.extractor else "unavailable (cds.fhir not installed)",
            "loaded_at": loaded.loaded_at,
            "errors": list(self.load_errors),
            **({"last_reload": self.last_reload} if self.last_reload else {}),
        }

    # -------------------------------------------------------------- hot reload
    def reload(self) -> bool:
        """Build, check and test the rules on disk; swap them in only if all is well."""
        with self._reload_lock:
            at = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                new = _build(self.rules_dir, self.hook_namespace, self.engine_choice, verdicts=self.verdicts)
            except Exception as exc:
                lines = exc.lines if isinstance(exc, RulesetLoadError) else [f"{type(exc).__name__}: {exc}"]
                self.load_errors = lines
                self.last_reload = {"at": at, "result": "refused", "still_serving": self._loaded.ruleset.version}
                metrics.RULE_RELOADS.labels("refused").inc()
                log.error(
                    "rule set reload refused; still serving %s:\n%s", self._loaded.ruleset.version, "\n".join(lines)
                )
                return False
            old = self._loaded
            metrics.RULE_RELOADS.labels("loaded").inc()
            self._loaded = new  # atomic: evaluations already running keep `old` until they finish
            self.load_errors = []
            self.last_reload = {"at": at, "result": "loaded", "previous": old.ruleset.version}
            log.info("rule set reloaded: %s -> %s (%s)", old.ruleset.version, new.ruleset.version, new.engine.backend)
            # The old durable ruleset is freed when the last evaluation holding it lets go (see durable_backend).
            return True

    @staticmethod
    def _facts(loaded: _Loaded, request: CDSRequest, prefetch: Mapping[str, Any], now: datetime) -> FactSet:
        if loaded.extractor is None:
            return FactSet(
                facts=(), warnings=(FactWarning("-", "-", "the FHIR fact layer (cds.fhir) is not installed"),)
            )
        try:
            return loaded.extractor(dict(request.context), dict(prefetch), now)
        except Exception as exc:  # the contract says it never raises; if it does, answer without facts
            # type only: the message or traceback could carry patient data
            log.error("cds.fhir.extract_facts raised %s; answering without facts", type(exc).__name__)
            return FactSet(
                facts=(), warnings=(FactWarning("-", "-", f"fact extraction failed ({type(exc).__name__})"),)
            )


def evaluate_facts(
    ruleset: RuleSet,
    engine: LoadedEngine,
    service_id: str,
    factset: FactSet,
    context: Mapping[str, Any],
    hook_namespace: str,
    want_trace: bool = False,
    pages_base_url: str | None = None,
) -> Evaluation:
    from cds.cards.drafts import merge_updates
    from cds.cards.render import DEFAULT_PAGES_BASE_URL, render_cards

    outcome = engine.evaluate(factset, service_id)
    rendering_started = time.perf_counter()
    rendered = render_cards(
        ruleset, outcome, context, f"{hook_namespace}.ruleset", pages_base_url or DEFAULT_PAGES_BASE_URL
    )
    merge_updates([card for card, _ in rendered], context)  # an update carries the clinician's draft whole
    extension = None
    if outcome.evidence:
        extension = {f"{hook_namespace}.differential": outcome.differential.as_extension()}
    if factset.notices:
        # Data that could have changed the advice but could not be read is named, never dropped silently.
        extension = {**(extension or {}), f"{hook_namespace}.notices": notice_outcome(factset.notices)}
    response = CDSResponse(cards=[card for card, _ in rendered], extension=extension)
    trace = outcome.trace(ruleset, engine.backend) if want_trace else None
    return Evaluation(
        response=response,
        trace=trace,
        rules_fired=outcome.rules_fired,
        card_rules={str(card.uuid): rules for card, rules in rendered},
        timings={**outcome.timings, "cards": time.perf_counter() - rendering_started},
    )


def notice_outcome(notices: tuple[FactWarning, ...]) -> dict[str, Any]:
    """An OperationOutcome (warnings) naming each resource the evaluation could not read, and why."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "invalid",
                "diagnostics": (
                    f"{n.resource_type}/{n.resource_id} could not be read and was not evaluated: {n.message}"
                ),
            }
            for n in notices
        ],
    }


def rules_fingerprint(rules_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What a file watch compares: every file under rules/ with its size and modification time."""
    entries = []
    for path in sorted(rules_dir.rglob("*")):
        try:
            if path.is_file():
                stat = path.stat()
                entries.append((str(path.relative_to(rules_dir)), stat.st_size, stat.st_mtime_ns))
        except OSError:  # a file removed while we looked: the next look sees the change
            continue
    return tuple(entries)


def watch_rules(pipeline: Pipeline, interval_seconds: float) -> threading.Event:
    """Reload when files under rules/ change (checked every ``interval_seconds``); set the event to stop.

    Each worker process watches for itself, so with several workers every one of them
    validates and tests the new rules before swapping them in, and a refused set leaves
    every worker on the old rules. (SIGHUP reaches only a single-process server: uvicorn's
    multi-worker supervisor answers SIGHUP by restarting its workers.)
    """
    stop = threading.Event()
    seen = rules_fingerprint(pipeline.rules_dir)

    def loop() -> None:
        nonlocal seen
        while not stop.wait(interval_seconds):
            current = rules_fingerprint(pipeline.rules_dir)
            if current != seen:
                seen = current  # a refused set is not retried until the files change again
                pipeline.reload()

    threading.Thread(target=loop, name="rules-watch", daemon=True).start()
    return stop


def install_reload_signal(pipeline: Pipeline) -> bool:
    """Reload the rules on SIGHUP (in a thread: the handler itself only starts it). Main thread only."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return False

    def on_hup(signum: int, frame: Any) -> None:
        threading.Thread(target=pipeline.reload, name="rules-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hup)
    return True
