"""The house rules, checked on the source: imports point one way (no cycle between modules,
function-local imports included), no module imports another's leading-underscore name, no
class longer than 300 lines, and ``import persyn`` loads neither torch nor transformers."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "persyn"


def module_name(path: Path) -> str:
    parts = ["persyn", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(name: str) -> list[tuple[str, list[str], int]]:
    """Every ``import`` in module ``name``, at any depth (function bodies too): ``(imported
    module, names taken from it, line)``; relative imports resolved."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    """Module → the persyn modules it imports (``from pkg import submodule`` counts as the
    submodule). A package's ``__init__`` running first is Python's doing, not an edge."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, names, _ in imports_of(m):
            if not target.startswith("persyn"):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for t in subs or [target]:
                if t in MODULES and t != m:
                    edges[m].add(t)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return stack[stack.index(t) :] + [t]
            if t not in state and (c := visit(t)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    planted = {k: set(v) for k, v in graph().items()}
    planted["persyn.core.errors"].add("persyn.pipeline")  # core → facade closes a loop
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1]


def test_no_import_cycle_between_modules():
    cycle = find_cycle(graph())
    assert cycle is None, " → ".join(cycle or [])


def test_core_imports_nothing_else_of_persyn():
    edges = graph()
    for m, targets in edges.items():
        if m.startswith("persyn.core"):
            assert all(t.startswith("persyn.core") for t in targets), (m, targets)


#: The layers of docs/architecture.md, bottom first: a module imports only modules of its own
#: layer or a lower one. A module's layer is the first entry whose name is it or a package
#: above it. (Within a layer, only the cycle check applies.)
LAYERS = [
    ["persyn.core", "persyn"],  # records, io, settings bases, plug-in tables; the lazy facade
    ["persyn.models", "persyn.tokenization"],  # packaged models: aliases, GGUF, loading, BOS
    ["persyn.engines", "persyn.training", "persyn.response_loss", "persyn.scoring",
     "persyn.ifeval", "persyn.synthesis", "persyn.router"],  # plug-ins whose settings config
    # composes (each engine's, trainer's, scorer's and router kind's live with it) or whose
    # questions it asks
    ["persyn.config"],  # the run's settings, composed of the plug-ins' own
    ["persyn.store", "persyn.prompts", "persyn.testing", "persyn.ifeval_constraints"],
    ["persyn.calibration", "persyn.execution",
     "persyn.budget", "persyn.montessori", "persyn.evaluate",
     "persyn.evaluate_ifeval"],  # the method's pieces
    ["persyn.runtime.context", "persyn.runtime.keys"],  # the run's context, the response keys
    ["persyn.runtime.responses", "persyn.runtime.embeddings"],  # what the store holds, asked for
    ["persyn.runtime"],  # the services the stages share, built on those
    ["persyn.stages"],  # the stages: each calls runtime, never another stage
    ["persyn.selection"],
    ["persyn.pipeline"],
    ["persyn.students", "persyn.estimate", "persyn.report", "persyn.experiment"],
    ["persyn.api"],
    ["persyn.cli", "persyn.__main__"],
]  # fmt: skip


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best_len:
                best, best_len = i, len(n)
    assert best is not None, f"{module} is in no layer of LAYERS (add it where it belongs)"
    return best


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
        for m, targets in edges.items()
        for t in targets
        if layer_of(t) > layer_of(m)
    )


def test_imports_point_down_the_layers():
    assert not layer_violations(graph())


def test_the_layer_check_finds_an_upward_import():
    planted = {k: set(v) for k, v in graph().items()}
    planted["persyn.models.loading"].add("persyn.config.loading")  # models → settings
    planted["persyn.stages.export"].add("persyn.pipeline")  # a stage → the facade
    assert layer_violations(planted) == [
        "persyn.models.loading (layer 1) imports persyn.config.loading (layer 3)",
        "persyn.stages.export (layer 9) imports persyn.pipeline (layer 11)",
    ]


def stage_to_stage_imports(edges: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} imports {t}"
        for m, targets in edges.items()
        if m.startswith("persyn.stages.")
        for t in targets
        if t.startswith("persyn.stages.") and t != m
    )


def test_no_stage_imports_another_stage():
    # the stage order is spelled once (Pipeline.run); a stage calls runtime, never a stage
    assert not stage_to_stage_imports(graph())
    planted = {k: set(v) for k, v in graph().items()}
    planted["persyn.stages.calibrate"].add("persyn.stages.score")
    assert stage_to_stage_imports(planted) == ["persyn.stages.calibrate imports persyn.stages.score"]


def test_the_run_context_walk_through_calibrate_stays_short():
    # issue 47: following the run context through calibrate visited 8 files with 24 calls
    # sideways or up the layers before the services left stages/ (benchmarks/context_walk.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from context_walk import measure, walk

    steps = walk("persyn.stages.calibrate:calibrate")
    got = measure(steps)
    assert got["files"] <= 10 and got["climbs"] <= 3, got
    # the walk does see a climb: a service calling a stage back
    planted = [*steps, ("persyn.runtime.scores", "persyn.stages.score", "score")]
    assert measure(planted)["climbs"] == got["climbs"] + 1


def test_no_leading_underscore_name_imported_from_another_module():
    bad = []
    for m in MODULES:
        for target, names, line in imports_of(m):
            if target.startswith("persyn") and target != m:
                bad += [f"{MODULES[m].name}:{line} {target}.{n}" for n in names if n.startswith("_")]
    assert not bad, bad


def test_no_class_longer_than_300_lines():
    long = []
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 300:
                long.append(f"{m}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, long


def test_import_persyn_and_its_api_stay_light():
    code = (
        "import sys, persyn\n"
        "persyn.Pipeline, persyn.load_config, persyn.RunSummary, persyn.DatasetLine\n"
        "heavy = [m for m in ('torch', 'transformers', 'ray', 'llama_cpp') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_plugin_in_the_tables_resolves():
    # Each "module:Class" of core/plugins.py names a file and a class that exist (checked on
    # the source, so optional backends need not be installed).
    from persyn.core import plugins

    tables = (
        plugins.ENGINES,
        plugins.ROUTERS,
        plugins.STRATEGIES,
        plugins.EXECUTORS,
        plugins.QUALITY_SCORERS,
        plugins.GENERATORS,
    )
    for table in tables:
        for name, target in table.items():
            module, _, attr = target.partition(":")
            assert module in MODULES, (name, target)
            tree = ast.parse(MODULES[module].read_text())
            assert attr in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}, (name, target)


def test_engine_scorer_and_router_modules_import_lightly():
    # Validating a config imports the module of every engine it names (its Settings), and an
    # unknown setting's error imports them all (``persyn.config.teachers``); the quality kind's
    # scorer answers the config's questions; ``RouterConfig`` is composed of every router
    # kind's Settings. So these modules import their backend (torch, transformers, llama.cpp,
    # httpx, Ray) only when they run.
    from persyn.core import plugins

    tables = (plugins.ENGINES, plugins.QUALITY_SCORERS, plugins.ROUTERS)
    modules = sorted({t.partition(":")[0] for table in tables for t in table.values()})
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "heavy = [m for m in ('torch', 'transformers', 'ray', 'llama_cpp', 'httpx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


#: The field (attribute or variable name) that holds a plug-in's name → its plug-in table.
PLUGIN_FIELDS = {
    "engine": "ENGINES",
    "executor": "EXECUTORS",
    "kind": "ROUTERS QUALITY_SCORERS",
    "quality_kind": "QUALITY_SCORERS",
    "strategy": "STRATEGIES",
    "generator": "GENERATORS",
}


def plugin_name_comparisons(sources: dict[str, str]) -> set[tuple[str, str]]:
    """``(module, name)`` for each comparison (``==``, ``!=``, ``in``, ``not in``) of a field
    that holds a plug-in's name (``PLUGIN_FIELDS``) with a string naming one of that family's
    plug-ins, outside the plug-in's own module and ``core/plugins.py``; ``sources``: module →
    its source text."""
    from persyn.core import plugins

    found = set()
    for m, source in sources.items():
        if m == "persyn.core.plugins":
            continue
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            fields = {
                s.attr if isinstance(s, ast.Attribute) else s.id
                for s in sides
                if isinstance(s, ast.Attribute | ast.Name)
            } & set(PLUGIN_FIELDS)
            consts = set()
            for s in sides:
                elts = s.elts if isinstance(s, ast.Tuple | ast.List | ast.Set) else [s]
                consts |= {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            for f in fields:
                for table in PLUGIN_FIELDS[f].split():
                    own = getattr(plugins, table)
                    for name in consts & set(own):
                        if own[name].partition(":")[0] != m:
                            found.add((m, name))
    return found


def sources() -> dict[str, str]:
    return {m: path.read_text() for m, path in MODULES.items()}


def test_no_plugin_name_compared_outside_its_module():
    assert plugin_name_comparisons(sources()) == set(), "ask the plug-in instead of comparing its name"


def test_the_name_comparison_check_finds_a_planted_one():
    planted = sources()
    check = "\ndef _planted(t, cfg, kind):\n    return t.engine == 'openai' or kind in ('ray', 'prior')\n"
    planted["persyn.runtime.responses"] += check
    planted["persyn.engines.openai_engine"] += check  # its own name there is fine
    found = plugin_name_comparisons(planted) - plugin_name_comparisons(sources())
    assert found == {
        ("persyn.runtime.responses", "openai"),
        ("persyn.runtime.responses", "prior"),
        ("persyn.engines.openai_engine", "prior"),
    }


def test_each_router_kind_owns_its_settings_and_the_config_is_all_of_them():
    # issue 47, item 1: a kind's settings live in its own file; RouterConfig composes them flat
    # (auto trains several kinds on one config), so each kind's fit gets an instance of its own
    from persyn.config import RouterConfig
    from persyn.core.plugins import ROUTERS
    from persyn.router.base import router_class
    from persyn.router.cv import CVSettings

    cfg = RouterConfig()
    owned = {"knn": {"knn_k"}, "bt-linear": {"l2"}, "bt-encoder": {"epochs", "encoder_lr", "freeze_encoder"}}
    for kind in ROUTERS:
        settings = router_class(kind).Settings
        assert isinstance(cfg, settings) and set(settings.model_fields) <= set(RouterConfig.model_fields)
        for other, fields in owned.items():
            assert (fields <= set(settings.model_fields)) == (other == kind), (kind, other)
    assert isinstance(cfg, CVSettings) and set(RouterConfig.model_fields) == set().union(
        *(router_class(k).Settings.model_fields for k in ROUTERS), CVSettings.model_fields, {"kind", "ties"}
    )
