"""Stage 1 for every ``calibration.select``: every teacher answers every calibration prompt.
``random`` and ``diverse`` calibration sets are fixed by ``prepare``; ``active`` grows from a
diverse seed set in rounds, each adding the prompts on which the routers trained so far are
least certain or disagree most (``persyn.calibration.active``).

A killed run resumes between rounds (the grown set is in the store) and inside a round (its
responses and scores are cached; the next prompts are a deterministic function of them).
"""

from __future__ import annotations

import math

from persyn.calibration.active import next_round
from persyn.core.faults import crash_point, register
from persyn.router.embeddings import PromptEncoder
from persyn.runtime.context import RunContext, stage
from persyn.runtime.embeddings import prompt_embeddings
from persyn.runtime.prompts import prepare
from persyn.runtime.responses import generate_responses, preflight
from persyn.runtime.rewards import router_examples
from persyn.runtime.scores import score_calibration

CALIBRATE_ROUND = register("calibrate.round", "after an active round's prompts join the calibration set")


@stage("calibrate", 1, before=prepare)
def calibrate(ctx: RunContext) -> int:
    """Every teacher answers every calibration prompt; for ``active`` selection, in rounds that
    grow the set to ``calibration.size``. What is stored is skipped. Returns the responses
    generated."""
    if ctx.cfg.calibration.select != "active":
        return answer_calibration(ctx)
    return calibrate_actively(ctx)


def answer_calibration(ctx: RunContext) -> int:
    """Every teacher answers every prompt of the calibration set as it stands (what is stored is
    skipped; ``calibrate`` has prepared the run). Returns the number of responses generated."""
    preflight(ctx)
    cal = ctx.store.prompts(calibration=True)
    return generate_responses(ctx, [(t, cal) for t in ctx.cfg.teachers], "calibration")


def round_size(ctx: RunContext, n_prompts: int, n_seed: int) -> int:
    """Prompts added per ``active`` round: what remains after the seed set, over the rounds."""
    target = ctx.cfg.calibration.count(n_prompts)
    return max(1, math.ceil((target - n_seed) / ctx.cfg.calibration.rounds))


def calibrate_actively(ctx: RunContext) -> int:
    """The ``active`` rounds: answer and score the calibration set, fit the round routers, add
    the most uncertain prompts (diversified by k-center among twice as many candidates), until
    the set has ``calibration.size`` prompts. Returns the responses generated."""
    cfg = ctx.cfg
    prompts = ctx.store.prompts()
    target = cfg.calibration.count(len(prompts))
    encoder = PromptEncoder.of(cfg.router)
    made = 0
    while True:
        made += answer_calibration(ctx)
        cal_ids = {p.id for p in ctx.store.prompts(calibration=True)}
        if len(cal_ids) >= target:
            return made
        with ctx.timed("score"):  # the score stage's work, timed as it
            score_calibration(ctx)
        rounds = ctx.store.calibration_rounds()
        n_seed = len(cal_ids) - sum(len(r) for r in rounds)
        add = min(round_size(ctx, len(prompts), n_seed), target - len(cal_ids))
        examples = router_examples(ctx, embed=True)
        pool = [p for p in prompts if p.id not in cal_ids]
        x_pool = prompt_embeddings(ctx, [p.text for p in pool], encoder)
        picked = next_round(cfg.router, cfg.teacher_names, examples, x_pool, add, cfg.seed)
        chosen = [pool[i].id for i in picked]
        ctx.store.add_calibration(chosen)
        ctx.store.add_calibration_round(chosen)
        crash_point(CALIBRATE_ROUND)
