"""Shared fixtures. Data from ../shared/data is read in place, never copied."""

from __future__ import annotations

import copy
import functools
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CDS_SHARED_DATA") or REPO.parent / "shared" / "data")  # a worktree elsewhere sets it
RULES_DIR = REPO / "rules"
# The service records rule-test passes in the user's cache (docs/adr/0014-cold-start.md); the suite keeps its own.
os.environ.setdefault("CDS_RULE_TEST_VERDICTS_DIR", tempfile.mkdtemp(prefix="cds-test-verdicts-"))


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data. Missing data fails in CI and skips elsewhere."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared test data missing in CI: {path}")
        pytest.skip(f"shared test data not available: {path}")
    return path


# ---------------------------------------------------------------- whole-run log scan

from tests.log_scan import FIXED_NEEDLES, LeakScanner, synthea_needles  # noqa: E402

LOG_SCANNER = LeakScanner(needles=[*FIXED_NEEDLES, *(synthea_needles(SHARED_DATA) if SHARED_DATA.exists() else [])])


def pytest_sessionstart(session):
    import logging

    from cds.observability.logs import QUIET_LOGGERS

    root = logging.getLogger()
    root.addHandler(LOG_SCANNER)
    root.setLevel(logging.DEBUG)
    for name in QUIET_LOGGERS:  # as in production (cds.observability.logs.configure_logging)
        logging.getLogger(name).setLevel(logging.WARNING)


def pytest_collection_modifyitems(session, config, items):
    """Modules with a test marked slow run first, then the modules with more tests before those
    with fewer (each module's tests keep their order). Under pytest-xdist (`make test`, with
    --no-loadscope-reorder so that xdist keeps this order instead of sorting by test count alone)
    the long ones start at once on every worker instead of arriving last and leaving one worker
    running alone: a one-test module of 70 s sorted last by count set the tail of the run."""
    module = {id(item): item.nodeid.split("::")[0] for item in items}
    slow = {module[id(item)] for item in items if item.get_closest_marker("slow")}
    size: dict[str, int] = {}
    for item in items:
        size[module[id(item)]] = size.get(module[id(item)], 0) + 1
    first_seen = {name: index for index, name in enumerate(dict.fromkeys(module[id(item)] for item in items))}
    items.sort(
        key=lambda item: (
            module[id(item)] not in slow,
            -size[module[id(item)]],
            first_seen[module[id(item)]],
        )
    )


# Packages whose modules share a session fixture that is dear to start, run on one xdist worker as
# one unit: tests/screen's local Dask cluster (two worker processes that each import the service and
# load the rules) was started once on each worker when loadscope spread the package's modules.
ONE_WORKER_PACKAGES = ("tests/screen/",)


def one_worker_package(nodeid: str) -> str | None:
    """The package of ONE_WORKER_PACKAGES that ``nodeid`` belongs to, if any (its xdist scope then)."""
    return next((package for package in ONE_WORKER_PACKAGES if nodeid.startswith(package)), None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with the packages above kept together; any other mode is xdist's own."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PackageAwareLoadScope(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return one_worker_package(nodeid) or super()._split_scope(nodeid)

    return PackageAwareLoadScope(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """Under pytest-xdist (`make test`), the controller gathers what each worker's scan found."""
    LOG_SCANNER.findings.extend(getattr(node, "workeroutput", {}).get("log_scan", []))


def pytest_sessionfinish(session, exitstatus):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports (pytest_testnodedown)
        workeroutput["log_scan"] = sorted(set(LOG_SCANNER.findings))
        return
    if LOG_SCANNER.findings:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = sorted(set(LOG_SCANNER.findings))
        message = "PHI or secrets reached the logs:\n  " + "\n  ".join(lines[:50])
        if reporter:
            reporter.write_sep("=", "log scan failed", red=True)
            reporter.write_line(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------- the shipped rules, loaded once


@functools.cache
def _case_manifest() -> list[dict]:
    import yaml

    # libyaml's parser when PyYAML has it: the same data, about 4x faster on this 170 KB file than
    # the pure-Python one, and several modules read it while being collected (on every xdist worker).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((REPO / "fhir_examples" / "cases.yaml").read_text(encoding="utf-8"), Loader=loader)["cases"]


def shipped_cases() -> list[dict]:
    """The cases of fhir_examples/cases.yaml, parsed once per test process; each caller gets its own copy."""
    return copy.deepcopy(_case_manifest())


@functools.cache
def shipped_ruleset():
    """``load_or_raise(RULES_DIR)`` once per test process, for the modules that only read the shipped
    rule set (a frozen ``RuleSet``); 1-3 s each, at collection time when a module loads it at import."""
    from cds.engine.loader import load_or_raise

    return load_or_raise(RULES_DIR)


_SHIPPED_PIPELINES: dict = {}


def shipped_pipeline(engine: str | None = None):
    """The shipped rules/ as the service loads them (``Pipeline.load``, rule-test gate included), loaded
    once per test process and shared by the tests that only answer requests with them: an app built
    from settings alone loads and gates the same rules again (2-5 s each on this machine). Tests of
    loading, of the gate and of reload load their own (usually from a copy of rules/)."""
    from cds.pipeline import Pipeline
    from cds.settings import Settings

    choice = engine or Settings().engine  # as Pipeline.load chooses (CDS_ENGINE)
    if choice not in _SHIPPED_PIPELINES:
        _SHIPPED_PIPELINES[choice] = Pipeline.load(RULES_DIR, engine=choice)
    return _SHIPPED_PIPELINES[choice]


def shipped_app(settings, **replaced):
    """``create_app(settings)`` answering with ``shipped_pipeline()``: ``settings`` must name the shipped
    rules (any other rules directory is a test of its own and gets its own pipeline)."""
    from cds.app import create_app

    assert Path(settings.rules_dir).resolve() == RULES_DIR, "shipped_app serves the shipped rules only"
    assert settings.hook_namespace == "org.calciphylaxis-cds", "shipped_pipeline has the default namespace"
    return create_app(
        settings, pipeline=replaced.pop("pipeline", None) or shipped_pipeline(settings.engine), **replaced
    )


# ---------------------------------------------------------------- the live rule tests, run once


@pytest.fixture(scope="session")
def live_rule_results():
    """``live_rule_results(backend)``: every rule test of rules/ run on that backend, once per test
    process (each case's facts extracted once and shared by both backends). The rule tests, the
    backend-equivalence test and the differential's invariants read the same results instead of
    each running all of them again."""
    from cds.engine.loader import load_or_raise
    from cds.engine.ruletests import default_extractor, run_rule_tests
    from cds.engine.runner import LoadedEngine

    ruleset = load_or_raise(RULES_DIR)
    extractor = default_extractor(RULES_DIR)
    extracted: dict = {}
    engines: list = []
    by_backend: dict[str, dict] = {}

    def results(backend: str) -> dict:
        if backend not in by_backend:
            engine = LoadedEngine(ruleset, backend)
            engines.append(engine)
            by_backend[backend] = {r.id: r for r in run_rule_tests(engine, extractor, extracted=extracted)}
        return by_backend[backend]

    yield results
    for engine in engines:
        engine.close()
