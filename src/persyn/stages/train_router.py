"""Stage 4: train the router on the calibration rewards, measure it on held-out calibration
prompts against the Oracle and the best single teacher, and save it to ``OUTPUT_DIR/router``."""

from __future__ import annotations

import os
import random
import shutil
from typing import Any

from persyn.core.faults import crash_point
from persyn.core.hashing import stable_hash
from persyn.router.base import RouterExample, router_class, router_figures
from persyn.scoring.combine import pair_labels
from persyn.scoring.means import best_single_teacher
from persyn.stages.context import RunContext, progress
from persyn.stages.prepare import prepare
from persyn.stages.rewards import reward_table


def split_heldout(ids: list[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """``(held-out ids, training ids)``: ``ids`` shuffled with ``random.Random(seed)``, the first
    ``round(eval_fraction · n)`` held out (none with fewer than 4 prompts)."""
    ids = list(ids)
    random.Random(seed).shuffle(ids)
    n_eval = round(eval_fraction * len(ids)) if len(ids) >= 4 else 0
    return ids[:n_eval], ids[n_eval:]


def train_router(ctx: RunContext) -> dict[str, Any]:
    """Train the router (``router.kind``) on the calibration rewards, evaluate it on the
    held-out part, save it; skipped when the same inputs were trained on before.

    Returns the router evaluation (also stored, and written to ``summary.json``): ``n_train``,
    ``n_eval``, ``top1``, ``regret``, ``best_single_teacher`` (or a ``note`` when fewer than 4
    calibration prompts leave nothing to hold out).

    Raises:
        PersynError: calibration responses missing or not scored.
        ValueError: no calibration prompt has two teachers with different rewards.
    """
    prepare(ctx)
    cfg, names = ctx.cfg, ctx.cfg.teacher_names
    cal, table, _ = reward_table(ctx)
    rewards = {pid: [c.reward for c in cands] for pid, cands in table.items()}
    key = stable_hash(["router/v1", cfg.router.model_dump(), names, cfg.seed, rewards])
    router_dir = ctx.out / "router"
    done = ctx.store.stage_done("train_router", key)
    if done is not None and (router_dir / "router.json").exists():
        return done
    kind = router_class(cfg.router.kind)
    with ctx.timed("train_router"):
        examples = {p.id: RouterExample(p.text, pair_labels(rewards[p.id], cfg.router.ties)) for p in cal}
        eval_ids, train_ids = split_heldout([p.id for p in cal], cfg.router.eval_fraction, cfg.seed + 1)
        n_eval = len(eval_ids)
        runs = [train_ids] + ([eval_ids + train_ids] if n_eval and cfg.router.refit else [])
        steps = sum(kind.steps(cfg.router, len(r)) for r in runs)
        evaluation: dict[str, Any] = {"n_train": len(train_ids), "n_eval": n_eval}
        with progress(steps, "router · train", "step") as bar:
            router = kind.fit(cfg.router, names, [examples[i] for i in train_ids], cfg.seed, bar)
            if n_eval:
                coef = router.scores([examples[i].text for i in eval_ids])
                picks = [names[int(j)] for j in coef.argmax(-1)]
                per_prompt = [dict(zip(names, rewards[i], strict=True)) for i in eval_ids]
                evaluation.update(router_figures(picks, per_prompt))
                best = best_single_teacher(names, [rewards[i] for i in train_ids])
                figs = router_figures([best] * n_eval, per_prompt)
                evaluation["best_single_teacher"] = {
                    "name": best,
                    "top1": figs["top1"],
                    "regret": figs["regret"],
                }
                if cfg.router.refit:
                    router = kind.fit(
                        cfg.router, names, [examples[i] for i in eval_ids + train_ids], cfg.seed, bar
                    )
            else:
                evaluation.update(
                    top1=None,
                    regret=None,
                    best_single_teacher=None,
                    note="fewer than 4 calibration prompts: no held-out evaluation",
                )
        crash_point("router.trained")
        tmp = ctx.out / f".router.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        router.save(tmp)
        shutil.rmtree(router_dir, ignore_errors=True)
        os.replace(tmp, router_dir)
        crash_point("router.saved")
        ctx.store.mark_stage("train_router", key, evaluation)
        ctx.store.set_meta("router_key", key)
    return evaluation
