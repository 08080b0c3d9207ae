"""Stage 6 (Route-then-Generate): only the routed teacher answers each routed prompt."""

from __future__ import annotations

from collections import defaultdict

from persyn.core.records import Prompt
from persyn.stages.context import RunContext
from persyn.stages.generation import generate_responses
from persyn.stages.prepare import prepare
from persyn.stages.route import assignments


def generate(ctx: RunContext) -> int:
    """The routed teacher answers each routed prompt (what is stored is skipped). Returns the
    number of responses generated.

    Raises:
        PersynError: a prompt is not routed yet.
    """
    prepare(ctx)
    with ctx.timed("generate"):
        assigned = assignments(ctx)
        by_teacher: dict[str, list[Prompt]] = defaultdict(list)
        for p in ctx.store.prompts(calibration=False):
            by_teacher[assigned[p.id][0]].append(p)
        work = [(t, by_teacher[t.name]) for t in ctx.cfg.teachers if by_teacher.get(t.name)]
        return generate_responses(ctx, work, "routed")
