"""Stage 5: route every non-calibration prompt to argmax_n π_n(x) of the router, in chunks
stored as they are decided (a killed run resumes at the next chunk); under a budget, then to
the assignment of most expected reward within it (``runtime.budget``). A router kind that reads
prompt embeddings gets them chunk by chunk (computed once and stored), so memory stays bounded
by the chunk, not the prompt set."""

from __future__ import annotations

from pathlib import Path

from persyn.core.errors import PersynError
from persyn.core.faults import crash_point, register
from persyn.core.hashing import stable_hash
from persyn.router.base import router_class, router_meta
from persyn.router.embeddings import PromptEncoder
from persyn.runtime.budget import budget_active, budget_route
from persyn.runtime.context import RunContext, progress, stage
from persyn.runtime.embeddings import prompt_embeddings
from persyn.runtime.prompts import prepare

ROUTE_CHUNK_STORED = register("route.chunk", "after a chunk of routing decisions is stored")
ROUTE_DONE = register("route.key", "after every prompt is routed, before the routing is marked current")

ROUTE_CHUNK = 256  # prompts per stored chunk of routing decisions


@stage("route", 5, before=prepare)
def route(ctx: RunContext, router_dir: str | Path | None = None) -> dict[str, str]:
    """Assign every non-calibration prompt to the router's argmax teacher (under ``budget:``
    or teachers' ``max_prompts``: to the budgeted assignment).

    Args:
        router_dir: a saved router (default: ``OUTPUT_DIR/router`` from ``train_router``).

    Returns ``{prompt_id: teacher}`` for the routed prompts.

    Raises:
        PersynError: no router, or a router trained for other teachers.
        BudgetError: limits no assignment can meet.
    """
    path = Path(router_dir) if router_dir else ctx.out / "router"
    meta = router_meta(path)
    if meta["teachers"] != ctx.cfg.teacher_names:
        raise PersynError(
            f"{path}: router was trained for teachers {meta['teachers']}, "
            f"the config has {ctx.cfg.teacher_names}"
        )
    kind = router_class(meta["kind"])
    router_key = stable_hash(["route/v2", str(path.resolve()), kind.fingerprint(path)])
    have = ctx.store.assignment_ids(router_key)
    # Ids only up front; the prompts themselves are read chunk by chunk (bounded memory).
    todo = [i for i in ctx.store.prompt_ids(calibration=False) if i not in have]
    del have
    if todo:
        router = kind.load(path)
        names = router.teachers
        encoder = PromptEncoder.from_meta(meta["embedding"]) if kind.uses_embeddings else None
        with progress(len(todo), "route", "prompt") as bar:
            for i in range(0, len(todo), ROUTE_CHUNK):
                chunk = ctx.store.prompts_by_id(todo[i : i + ROUTE_CHUNK])
                texts = [p.text for p in chunk]
                emb = prompt_embeddings(ctx, texts, encoder) if encoder is not None else None
                coef = router.scores(texts, emb)
                rows = []
                for p, c, k in zip(chunk, coef, router.pick(coef), strict=True):
                    values = {n: float(v) for n, v in zip(names, c, strict=True)}
                    rows.append((p.id, names[int(k)], values))
                ctx.store.set_assignments(router_key, rows)
                bar.update(len(chunk))
                crash_point(ROUTE_CHUNK_STORED)
    crash_point(ROUTE_DONE)
    if budget_active(ctx.cfg):  # the argmax stays stored; the budgeted assignment routes
        router_key = budget_route(ctx, router_key, path, meta["kind"]).key
    ctx.store.set_route_key(router_key)
    return ctx.store.assigned_teachers(router_key)
