"""``prepare`` (timed as stage 0, run first by every stage): load the prompts, draw the
calibration set (seeded) and store both."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

from persyn.calibration.draw import draw_calibration, k_center
from persyn.config import public_config_json
from persyn.core.faults import crash_point, register
from persyn.core.hashing import stable_hash
from persyn.core.io import write_atomic
from persyn.core.records import Prompt
from persyn.core.seeds import seed_table
from persyn.prompts import load_prompts
from persyn.router.embeddings import PromptEncoder
from persyn.runtime.context import RunContext, stage
from persyn.runtime.embeddings import prompt_embeddings
from persyn.scoring.quality import quality_scorer_class

PREPARE_PROMPTS = register("prepare.prompts", "after the prompt set is stored, before it is marked current")


def choose_calibration(ctx: RunContext, prompts: list[Prompt]) -> list[str]:
    """The calibration ids ``prepare`` fixes (``calibration.select``): a seeded uniform draw, or
    k-center greedy on the stored embeddings (``diverse``, and the seed set of ``active``),
    in source order."""
    cal = ctx.cfg.calibration
    n = cal.first_count(len(prompts))
    if cal.select == "random":
        return draw_calibration([p.id for p in prompts], n, ctx.cfg.seed)
    x = prompt_embeddings(ctx, [p.text for p in prompts], PromptEncoder.of(ctx.cfg.router))
    return [prompts[i].id for i in sorted(k_center(x, n, ctx.cfg.seed))]


def prepare(ctx: RunContext) -> None:
    """Load the prompts, draw the calibration set and store both (once per process: the stages
    that need them run this first); write ``run_config.json`` and record the seed each stage
    derives its randomness from.

    Raises:
        InputError / ConfigError: bad prompt file, or a calibration size that does not fit.
    """
    if ctx.prepared:
        return
    store_prompt_set(ctx)
    ctx.prepared = True


@stage("prepare", 0)
def store_prompt_set(ctx: RunContext) -> None:
    """The timed part of ``prepare`` (which see): it runs every time it is called."""
    cfg = ctx.cfg
    needs_answer = quality_scorer_class(cfg.quality.kind).NEEDS_GOLD_ANSWER or any(
        t.NEEDS_GOLD_ANSWER for t in cfg.teachers
    )
    prompts, report = load_prompts(cfg.prompts, cfg.seed, require_answer=needs_answer)
    cal_ids = choose_calibration(ctx, prompts)
    fingerprint = stable_hash(
        [[(p.id, p.text, p.answer, p.solution) for p in prompts], cal_ids, cfg.calibration.model_dump()]
    )
    if ctx.store.prompt_set_fingerprint() != fingerprint:
        # (an ``active`` set grown in rounds on this prompt set is kept: same fingerprint)
        ctx.store.replace_prompts(prompts, cal_ids)
        crash_point(PREPARE_PROMPTS)
        ctx.store.mark_prompt_set(fingerprint)
    ctx.store.set_load_report(report.as_dict())
    # The config this output dir was made with, for commands that take only the dir.
    write_atomic(ctx.out / "run_config.json", public_config_json(cfg))
    seeds = seed_table(cfg.seed)
    ctx.store.set_seeds(seeds)
    if report.empty or report.duplicates:
        tqdm.write(
            f"prompts: skipped {len(report.empty)} empty and {len(report.duplicates)} duplicate "
            "prompt(s) (listed in summary.json)",
            file=sys.stderr,
        )
