"""How far a run's context travels: the walk of ``RunContext`` through one stage (issue 47,
item 3), read from the code.

Starting at a stage's function (``persyn.stages.calibrate.calibrate`` by default), every
function that receives the run's context is read (its source, with ``ast``) and every call in
it that hands the context on (``f(ctx, ...)``, ``mod.f(ctx)``, ``ctx.method(...)``) is
followed, depth first, in source order, each function once. The walk is the sequence of files
the context enters. Printed:

- **files visited**: distinct files the context enters;
- **climbs back up**: calls whose callee's file is in the same or a higher layer than the
  caller's (the layers of ``tests/test_architecture.py``'s ``LAYERS``; ``persyn.stages`` is
  one layer, so a stage calling another stage counts), i.e. the context travelling sideways or
  up instead of down;
- **re-entries**: calls into a file the walk had entered before (the run context's own file
  included: each use of a context method or property is one).

    python benchmarks/context_walk.py [--start persyn.stages.calibrate:calibrate] [--show]
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_architecture import LAYERS  # noqa: E402  (the one list of layers)


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of the longest package prefix of ``module``."""
    best, index = -1, -1
    for i, layer in enumerate(LAYERS):
        for pkg in layer:
            if (module == pkg or module.startswith(pkg + ".")) and len(pkg) > best:
                best, index = len(pkg), i
    return index


def unwrap(obj):
    """The function under decorators (``functools.wraps``) and properties, or None."""
    from functools import cached_property

    if isinstance(obj, property):
        obj = obj.fget
    if isinstance(obj, cached_property):
        obj = obj.func
    while hasattr(obj, "__wrapped__"):
        obj = obj.__wrapped__
    return obj if inspect.isfunction(obj) else None


def context_params(fn, tree: ast.FunctionDef) -> set[str]:
    """The parameter names of ``fn`` that hold the run context (named ``ctx``, annotated
    ``RunContext``, or ``self`` of ``RunContext``)."""
    names = set()
    args = tree.args.posonlyargs + tree.args.args + tree.args.kwonlyargs
    for a in args:
        note = ast.unparse(a.annotation) if a.annotation is not None else ""
        if a.arg == "ctx" or note.endswith("RunContext"):
            names.add(a.arg)
    if args and args[0].arg == "self" and fn.__qualname__.startswith("RunContext."):
        names.add("self")
    return names


def resolve(fn, func: ast.expr, ctx_names: set[str], context_cls):
    """The function a call's ``func`` names, seen from ``fn``'s module, or None."""
    g = fn.__globals__
    if isinstance(func, ast.Name):
        return unwrap(g.get(func.id))
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        base = func.value.id
        if base in ctx_names:
            return unwrap(inspect.getattr_static(context_cls, func.attr, None))
        owner = g.get(base)
        if owner is not None:
            return unwrap(getattr(owner, func.attr, None))
    return None


def calls_of(fn, context_cls):
    """The calls in ``fn`` that hand the context on, in source order: the called functions."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    names = context_params(fn, tree)
    if not names:
        return []
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        passes = any(isinstance(a, ast.Name) and a.id in names for a in node.args) or any(
            isinstance(k.value, ast.Name) and k.value.id in names for k in node.keywords
        )
        on_ctx = isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
        on_ctx = on_ctx and node.func.value.id in names
        if passes or on_ctx:
            callee = resolve(fn, node.func, names, context_cls)
            if callee is not None and callee.__module__.startswith("persyn"):
                out.append((node.lineno, node.col_offset, callee))
    for node in ast.walk(tree):  # a property of the context runs code in its file too
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
            attr = inspect.getattr_static(context_cls, node.attr, None)
            if not inspect.isfunction(attr) and (callee := unwrap(attr)) is not None:
                out.append((node.lineno, node.col_offset, callee))
    return [c for *_, c in sorted(set(out), key=lambda t: (t[0], t[1]))]


def stage_entry(fn, context_cls):
    """What a stage's ``@stage(name, step, before=...)`` line runs before the stage, as calls
    from the stage's own file (where that line is): ``before(ctx)`` and the stage timer."""
    wrapper = fn.__globals__.get(fn.__name__)
    if getattr(wrapper, "stage", None) is None or wrapper.__closure__ is None:
        return None
    cells = dict(
        zip(wrapper.__code__.co_freevars, (c.cell_contents for c in wrapper.__closure__), strict=True)
    )
    before = cells.get("before")
    timed = unwrap(inspect.getattr_static(context_cls, "timed"))
    return wrapper.__code__.co_filename, [f for f in (before, timed) if f is not None]


def walk(start: str) -> list[tuple[str, str, str]]:
    """``[(caller module, callee module, callee)]`` of every call that hands the context on,
    depth first from ``start`` (``module:function``), each function expanded once."""
    try:
        from persyn.runtime.context import RunContext
    except ImportError:  # the layout before issue 47's item 3, to measure it the same way
        from persyn.stages.context import RunContext

    module, _, name = start.partition(":")
    root = unwrap(getattr(importlib.import_module(module), name))
    seen: set = set()
    steps: list[tuple[str, str, str]] = []

    def enter(caller: str, callee) -> None:
        steps.append((caller, callee.__module__, callee.__qualname__))
        entry = stage_entry(callee, RunContext)
        if entry is not None:  # what ``@stage(..., before=...)`` in the stage's file adds
            for f in entry[1]:
                enter(callee.__module__, f)
        if callee not in seen:
            seen.add(callee)
            for c in calls_of(callee, RunContext):
                enter(callee.__module__, c)

    enter("persyn.pipeline", root)
    return steps


def measure(steps: list[tuple[str, str, str]]) -> dict[str, int]:
    """Files visited, climbs back up and re-entries of a walk (see the module's docstring)."""
    visited: set[str] = set()
    climbs = returns = 0
    for caller, callee, _ in steps:
        if callee != caller:
            if caller != "persyn.pipeline" and layer_of(callee) >= layer_of(caller):
                climbs += 1
            returns += callee in visited
        visited.add(callee)
    return {"files": len(visited), "climbs": climbs, "re-entries": returns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="persyn.stages.calibrate:calibrate", help="module:function")
    ap.add_argument("--show", action="store_true", help="print every call of the walk")
    args = ap.parse_args()
    steps = walk(args.start)
    if args.show:
        for caller, callee, fn in steps:
            if caller != callee:
                print(f"  {caller} -> {callee}:{fn}")
    m = measure(steps)
    print(
        f"{args.start}: {m['files']} files visited, {m['climbs']} climbs back up, {m['re-entries']} re-entries"
    )


if __name__ == "__main__":
    main()
