"""Stage 1 for every ``calibration.select``: ``random`` and ``diverse`` calibration sets are
fixed by ``prepare``; ``active`` grows from a diverse seed set in rounds, each adding the
prompts on which the routers trained so far are least certain or disagree most.

A killed run resumes between rounds (the grown set is in the store) and inside a round (its
responses and scores are cached; the next prompts are a deterministic function of them).
"""

from __future__ import annotations

import json
import math

import numpy as np

from persyn.core.faults import crash_point
from persyn.router.base import router_class
from persyn.router.coverage import k_center, uncertainty_order
from persyn.router.embeddings import PromptEncoder
from persyn.stages.calibrate import calibrate
from persyn.stages.context import RunContext
from persyn.stages.embed import prompt_embeddings
from persyn.stages.prepare import prepare
from persyn.stages.score import score
from persyn.stages.train_router import router_examples

#: Router kinds fitted each round to measure uncertainty (fast, frozen-embedding kinds).
ROUND_KINDS = ("prior", "bt-linear", "knn")


def build_calibration(ctx: RunContext) -> int:
    """Every teacher answers every calibration prompt; for ``active`` selection, in rounds that
    grow the set to ``calibration.size``. Returns the responses generated."""
    prepare(ctx)
    if ctx.cfg.calibration.select != "active":
        return calibrate(ctx)
    return calibrate_actively(ctx)


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
        made += calibrate(ctx)
        cal_ids = {p.id for p in ctx.store.prompts(calibration=True)}
        if len(cal_ids) >= target:
            return made
        score(ctx)
        rounds = json.loads(ctx.store.get_meta("calibration_rounds") or "[]")
        n_seed = len(cal_ids) - sum(len(r) for r in rounds)
        add = min(round_size(ctx, len(prompts), n_seed), target - len(cal_ids))
        chosen = next_round(ctx, prompts, cal_ids, add, encoder)
        ctx.store.add_calibration(chosen)
        ctx.store.set_meta("calibration_rounds", json.dumps([*rounds, chosen]))
        crash_point("calibrate.round")


def next_round(
    ctx: RunContext, prompts: list, cal_ids: set[str], add: int, encoder: PromptEncoder
) -> list[str]:
    """The ids of the ``add`` prompts to answer next: the routers of ``ROUND_KINDS`` trained on
    the current calibration set rank the other prompts by uncertainty; k-center greedy picks
    ``add`` of the ``2·add`` most uncertain, covering them."""
    cfg = ctx.cfg
    examples = router_examples(ctx, embed=True)
    pool = [p for p in prompts if p.id not in cal_ids]
    x_pool = prompt_embeddings(ctx, [p.text for p in pool], encoder)
    picks, knn_scores = [], None
    for kind in ROUND_KINDS:
        try:
            router = router_class(kind).fit(cfg.router, cfg.teacher_names, examples, cfg.seed)
        except ValueError:  # nothing to learn from yet (e.g. no valid response)
            continue
        s = router.scores([p.text for p in pool], x_pool)
        picks.append(s.argmax(1))
        if kind == "knn":
            knn_scores = s
    if knn_scores is None:
        knn_scores = np.zeros((len(pool), len(cfg.teacher_names)))
    order = uncertainty_order(np.array(picks) if picks else np.zeros((1, len(pool)), int), knn_scores)
    candidates = order[: 2 * add].tolist()
    x_cal = np.stack([e.embedding for e in examples])
    x = np.concatenate([x_cal, x_pool[candidates]])
    added = k_center(x, add, cfg.seed, taken=list(range(len(x_cal))))
    return [pool[candidates[i - len(x_cal)]].id for i in added]
