"""Imports run one way (docs/adr/0012-layers-and-wire-errors.md).

The imports of every module under ``cds/`` are read with ``ast`` (nothing is imported, so no
side effect), including imports inside functions and under ``TYPE_CHECKING``. Each module belongs
to a layer; a module may import its own layer and the layers below it, never one above. Since the
layers are totally ordered this also rules out every cycle between packages, which is checked on
its own so that a failure names the cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

CDS = Path(__file__).resolve().parent.parent / "cds"

# Bottom first. A module may import from its own layer and any layer listed before it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Plain data and configuration everyone may read: no stage logic.
    ("base", ("cds", "cds.yamlio", "cds.settings", "cds.observability", "cds.concepts", "cds.facts")),
    # FHIR resources -> facts (report text first, then the resource readers that call it).
    ("findings", ("cds.findings",)),
    ("fhir", ("cds.fhir",)),
    # facts -> rules -> differential (the differential is cds.engine.differential).
    ("engine", ("cds.engine",)),
    # The CDS Hooks wire: models, errors, limits, prefetch, services and answer_hook, which is
    # handed the pipeline as an Evaluator (cds.hooks.evaluation) instead of importing it.
    ("hooks", ("cds.hooks",)),
    # differential -> cards (cards are CDS Hooks Card models, hence above hooks).
    ("cards", ("cds.cards",)),
    ("pages", ("cds.pages",)),
    ("store", ("cds.store",)),
    ("auth", ("cds.auth",)),
    # The knowledge bundle (ADR 0011): the one loader of rules/, which reads every layer's files
    # (value sets and findings vocabularies, rule language, services), so it sits above them all.
    ("knowledge", ("cds.knowledge",)),
    # Orchestration: FHIR layer -> engine -> cards for one request; reload.
    ("pipeline", ("cds.pipeline",)),
    # Applications and authoring tools built on the pipeline and the engine: population screening,
    # the rule workbench, the rule-file schemas, the rule-test migration and the outcome diff.
    ("tools", ("cds.screen", "cds.studio", "cds.engine.schemas", "cds.engine.migrate_tests", "cds.engine.outcomediff")),
    # The web layer: wiring only.
    ("web", ("cds.app", "cds.web")),
    # Entry points: command line and ASGI; each package's command-line module is one too.
    ("entry", ("cds.cli", "cds.asgi", "cds.engine.cli", "cds.fhir.cli", "cds.store.cli")),
]

# Known edges against the flow, each with its way out. Do not add to this list: fix the import.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("cds.engine.outcomediff", "cds.cli"): (
        "request_from_bundle (Bundle -> CDS Hooks request) is defined in the CLI; it belongs in cds.hooks"
    ),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CDS.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> set[str]:
    """Every ``cds`` module ``path`` imports, at top level or inside a function."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            # `from cds.fhir import extractor` imports the module cds.fhir.extractor
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "cds" or name.startswith("cds.")}


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(CDS.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The layer whose longest prefix matches ``module``."""
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def import_edges() -> list[tuple[str, str]]:
    known = modules()
    edges = []
    for module, path in known.items():
        for target in imported_modules(path, module):
            # `from cds.fhir import extract_facts` names a function, not a module: keep real modules only
            if (target in known or target == "cds") and (module, target) not in KNOWN_EXCEPTIONS:
                edges.append((module, target))
    return edges


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in modules() if layer_of(m) < 0]
    assert not unplaced, f"place these modules in a layer of tests/test_import_graph.py: {unplaced}"


def test_no_import_runs_against_the_flow() -> None:
    wrong = [
        f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for source, target in import_edges()
        if layer_of(target) > layer_of(source)
    ]
    assert not wrong, "imports against the flow:\n" + "\n".join(sorted(wrong))


def test_no_cycle_between_packages() -> None:
    """Packages (cds.engine, cds.hooks, ...; a module placed in a layer of its own counts on its own)."""

    def unit(module: str) -> str:
        placed = {p for _, prefixes in LAYERS for p in prefixes if p.count(".") > 1}
        return module if module in placed else package_of(module)

    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in import_edges():
        if unit(source) != unit(target):
            graph[unit(source)].add(unit(target))
    cycles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "import cycles between packages:\n" + "\n".join(sorted(set(cycles)))


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    """An import inside a function counts (a cycle hidden in a function is still a cycle)."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from cds.pipeline import Pipeline\n    import cds.app\n", encoding="utf-8")
    assert {"cds.pipeline", "cds.pipeline.Pipeline", "cds.app"} <= imported_modules(source, "cds.hooks.mod")


def test_a_hook_layer_module_importing_the_pipeline_is_against_the_flow() -> None:
    assert layer_of("cds.pipeline") > layer_of("cds.hooks.handler")
    assert layer_of("cds.engine.differential") < layer_of("cds.cards.render")
    assert layer_of("cds.fhir.extractor") < layer_of("cds.engine.ruletests")
