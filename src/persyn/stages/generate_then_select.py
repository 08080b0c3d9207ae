"""Generate-then-Select (the baselines' stage): every teacher answers every prompt, every
response is scored, and each prompt gets its Eq. 2 candidates."""

from __future__ import annotations

from persyn.runtime.context import RunContext, stage
from persyn.runtime.prompts import prepare
from persyn.runtime.responses import generate_responses
from persyn.runtime.rewards import RewardTable, reward_rows
from persyn.runtime.scores import score_generations


@stage("generate_then_select", 8, before=prepare)
def generate_then_select(ctx: RunContext) -> tuple[RewardTable, int]:
    """Every teacher answers every prompt (stored responses reused), every response is scored;
    returns the reward table of every prompt (teacher order) and the responses generated.

    Raises:
        PersynError: a prompt still lacks a teacher's response.
    """
    prompts = ctx.store.prompts()
    made = generate_responses(ctx, [(t, prompts) for t in ctx.cfg.teachers], "generate-then-select")
    keys = [ctx.key_of(t, p) for p in prompts for t in ctx.cfg.teachers]
    gens = ctx.store.generations(keys)
    score_generations(ctx, list(gens.values()), {p.id: p for p in prompts})
    return reward_rows(ctx, prompts, require_all=True), made
