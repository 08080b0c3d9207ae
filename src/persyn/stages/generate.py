"""Stage 6 (Route-then-Generate): only the routed teacher answers each routed prompt."""

from __future__ import annotations

from collections import defaultdict

from persyn.core.records import Generation, Prompt
from persyn.stages.budget import SKIPPED, cost_model, stored_budget
from persyn.stages.context import RunContext, stage
from persyn.stages.prepare import prepare
from persyn.stages.responses import generate_responses
from persyn.stages.route import assignments

BUDGET_CHUNK = 64  # routed prompts generated between two checks of the actual spend


@stage("generate", 6, before=prepare)
def generate(ctx: RunContext) -> int:
    """The routed teacher answers each routed prompt (what is stored is skipped). Returns the
    number of responses generated.

    Under ``budget.max_cost`` the prompts go in chunks of ``BUDGET_CHUNK``; before each, the
    spend the teachers actually reported so far plus the expected cost of each prompt must
    stay within ``max_cost``, and a prompt that would pass it is recorded as failed ("skipped
    by budget"), not generated.

    Raises:
        PersynError: a prompt is not routed yet.
    """
    assigned = assignments(ctx)
    teachers = {t.name: t for t in ctx.cfg.teachers}
    routed = ctx.store.prompts(calibration=False)
    route = stored_budget(ctx)
    if route is None or ctx.cfg.budget is None or ctx.cfg.budget.max_cost is None:
        return generate_responses(ctx, _by_teacher(ctx, [(p, assigned[p.id][0]) for p in routed]), "routed")
    model, max_cost = cost_model(ctx), ctx.cfg.budget.max_cost
    keys = {p.id: ctx.key_of(teachers[assigned[p.id][0]], p) for p in routed}
    ok = {k for k, g in ctx.store.generations(keys.values()).items() if g.ok}
    todo = [(p, assigned[p.id][0]) for p in routed if keys[p.id] not in ok]
    made, i, skipped = 0, 0, []
    while i < len(todo):
        stored = ctx.store.generations(keys.values()).values()
        planned = model.actual([g for g in stored if g.error != SKIPPED])  # spent so far
        chunk = []
        while i < len(todo) and len(chunk) < BUDGET_CHUNK:
            p, t = todo[i]
            cost = route.per_prompt.get(p.id, (0.0, 0.0))[1]
            if planned + cost <= max_cost * (1 + 1e-9):
                chunk.append((p, t))
                planned += cost
            else:  # spend only grows: it will not fit later in this call either
                skipped.append((p, t))
            i += 1
        if chunk:
            made += generate_responses(ctx, _by_teacher(ctx, chunk), "routed")
    if skipped:
        ctx.store.add_generations(
            [Generation(keys[p.id], p.id, t, "", "failed", SKIPPED, phase="routed") for p, t in skipped]
        )
    return made


def _by_teacher(ctx: RunContext, items: list[tuple[Prompt, str]]):
    by: dict[str, list[Prompt]] = defaultdict(list)
    for p, t in items:
        by[t].append(p)
    return [(t, by[t.name]) for t in ctx.cfg.teachers if by.get(t.name)]
