"""Stage 4: cross-validate the router kinds on the calibration rewards against the Oracle and
the best single teacher, pick the kind (``router.kind``, or ``auto``), train it on every
calibration prompt and save it to ``OUTPUT_DIR/router``."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np

from persyn.budget.frontier import frontier
from persyn.budget.utility import RewardCalibration
from persyn.core.faults import crash_point, register
from persyn.core.hashing import stable_hash
from persyn.core.io import replace_dir
from persyn.core.ranking import best_single_teacher
from persyn.core.seeds import derived_seed
from persyn.core.summary import RouterEvaluation
from persyn.router.base import reward_matrix, router_class
from persyn.router.cv import (
    PRIOR,
    choose_kind,
    cross_validate,
    cv_from_record,
    cv_record,
    cv_steps,
    kind_figures,
    verified_cv,
)
from persyn.runtime.budget import budget_active, budgeted_cv, calibration_costs, oof_utilities
from persyn.runtime.context import RunContext, progress, stage
from persyn.runtime.prompts import prepare
from persyn.runtime.rewards import reward_table, router_examples, verified_values
from persyn.store import read_router_evaluation, save_router_evaluation

ROUTER_CV = register("router.cv", "after the cross-validation, before the routing kind is trained")
ROUTER_TRAINED = register("router.trained", "after the router is trained, before it is saved")
ROUTER_SAVED = register("router.saved", "after the router is saved, before its stage marker")


@stage("train_router", 4, before=prepare)
def train_router(ctx: RunContext) -> RouterEvaluation:
    """Cross-validate ``router.cv_kinds()`` on the calibration prompts, choose the kind, train it
    on all of them and save it; skipped when the same inputs were trained on before.

    Returns the router evaluation (``RouterEvaluation``; also stored, and written to
    ``summary.json``). Its ``best_single_teacher`` is the prior's teacher on all calibration
    prompts (``core.ranking.best_single_teacher``: a tie to the alphabetically first name) with
    the prior's cross-validated ``top1``/``regret``; its ``frontier`` is None when the pool
    costs nothing.

    Under ``budget:`` (or teachers' ``max_prompts``) every kind is cross-validated on its
    budgeted route (``runtime.budget.budgeted_cv``), so ``auto`` chooses under the limits.

    Raises:
        PersynError: calibration responses missing or not scored.
        ValueError: no calibration prompt has two teachers with different rewards.
    """
    cfg, names = ctx.cfg, ctx.cfg.teacher_names
    kinds = cfg.router.cv_kinds()
    embed = any(router_class(k).uses_embeddings for k in kinds)
    examples = router_examples(ctx, embed)
    rewards = [e.rewards for e in examples]
    parts = ["router/v2", cfg.router.model_dump(), names, cfg.seed, rewards, [e.text for e in examples]]
    if budget_active(cfg) or any(_prices(t) != (None, None, None) for t in cfg.teachers):
        # auto's choice (budgeted CV) and the frontier depend on limits and prices; a run with
        # neither keeps the key it had before budgets existed.
        parts.append(["budget", cfg.budget.model_dump() if cfg.budget else None,
                      [(_prices(t), t.max_prompts) for t in cfg.teachers]])  # fmt: skip
    if cfg.verify is not None:  # the target and auto's choice depend on it; no verify, no change
        parts.append(["verify", cfg.verify.model_dump()])
    key = stable_hash(parts)
    router_dir = ctx.out / "router"
    done = read_router_evaluation(ctx.store, key)
    if done is not None and (router_dir / "router.json").exists():
        return done
    if not any(e.pairs for e in examples):
        raise ValueError("no calibration prompt has a pair of teachers with different rewards")
    n_valid = sum(1 for r in rewards if any(v is not None for v in r))
    steps = cv_steps(kinds, cfg.router, n_valid) + max(
        router_class(k).steps(cfg.router, len(examples)) for k in kinds
    )
    with progress(steps, "router · cross-validate", "fit") as bar:
        stored = ctx.store.stage_done("router_cv", key)
        if stored is not None:  # a run killed after its cross-validation: not run again
            idx, cv = cv_from_record(stored)
            bar.update(cv_steps(kinds, cfg.router, n_valid))
        else:
            idx, cv = cross_validate(
                kinds, cfg.router, names, examples, derived_seed(cfg.seed, "router_cv_folds"), bar
            )
            ctx.store.mark_stage("router_cv", key, cv_record(idx, cv))
        _, filled = reward_matrix(examples)  # [len(idx), K], the rewards the CV scored
        model, costs, tokens = calibration_costs(ctx, [examples[i].text for i in idx])
        if budget_active(cfg) and cv:
            n_routed = len(ctx.store.prompt_ids(calibration=False))
            budgeted_cv(cfg, cv, filled, costs, tokens, derived_seed(cfg.seed, "router_cv_folds"), n_routed)
        # under a budget auto keeps the budgeted CV (it prices each choice; the cascade's CV
        # does not, and chose a kind whose escalations the cap then skipped)
        if cfg.verify is not None and cv and not budget_active(cfg):
            cal, table, _ = reward_table(ctx)
            cal_ids = [p.id for p in cal]
            rows = [verified_values(ctx, table[cal_ids[i]]) for i in idx]
            values = np.array([[0.0 if v is None else v for v in r] for r in rows])
            passed = np.array(
                [
                    [c.valid and cfg.verify.passes(c.quality, cfg.quality.kind) for c in table[cal_ids[i]]]
                    for i in idx
                ]
            )
            verified_cv(cv, names, values, passed, cfg.verify.max_tries)
        evaluation = router_evaluation(ctx, cv, len(idx))
        crash_point(ROUTER_CV)
        kind = router_class(evaluation.kind)
        start = time.perf_counter()
        router = kind.fit(cfg.router, names, examples, cfg.seed, bar)
        evaluation.train_seconds = round(time.perf_counter() - start, 3)
    prior = router_class(PRIOR).fit(cfg.router, names, examples, cfg.seed)
    evaluation.best_single_teacher = (
        {"name": best_single_teacher(names, prior.means), **_figs(evaluation.kinds.get(PRIOR))}
        if cv
        else None
    )
    crash_point(ROUTER_TRAINED)
    tmp = ctx.out / f".router.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    router.save(tmp)
    if cv:  # expected rewards for a budget, and the calibration set's cost–reward frontier
        oof = cv[evaluation.kind].scores
        RewardCalibration.fit(
            evaluation.kind, oof.reshape(-1, len(names)), np.tile(filled, (len(oof), 1))
        ).save(tmp)
        U = oof_utilities(
            evaluation.kind,
            oof,
            filled,
            cfg.router.cv_folds,
            derived_seed(cfg.seed, "router_cv_folds"),
        ).mean(0)
        evaluation.frontier = frontier(
            U, filled, costs, names, model.unit, seed=derived_seed(cfg.seed, "frontier_bootstrap")
        )
    replace_dir(tmp, router_dir)
    crash_point(ROUTER_SAVED)
    save_router_evaluation(ctx.store, key, evaluation)
    return evaluation


def _prices(t) -> tuple:
    return (t.price_input_per_million, t.price_output_per_million, t.price_per_second)


def _figs(fig: dict | None) -> dict:
    return {"top1": fig["top1"], "regret": fig["regret"]} if fig else {"top1": None, "regret": None}


def router_evaluation(ctx: RunContext, cv: dict, n: int) -> RouterEvaluation:
    """The evaluation record of the cross-validation ``cv`` over ``n`` prompts, with the kind
    that routes (``router.kind``, or ``auto``'s choice)."""
    r = ctx.cfg.router
    common = {"method": "cross-validation", "requested": r.kind, "n": n, "n_train": n}
    if not cv:
        kind = PRIOR if r.kind == "auto" else r.kind
        reason = "fewer than 2 calibration prompts with a valid response: no cross-validation"
        return RouterEvaluation(
            **common, folds=0, repeats=0, n_eval=0, kinds={}, kind=kind, reason=reason, note=reason,
            top1=None, regret=None,
        )  # fmt: skip
    figures = kind_figures(cv, r.bootstrap, derived_seed(ctx.cfg.seed, "router_bootstrap"))
    if r.kind == "auto":
        kind, reason = choose_kind(figures)
    else:
        kind, reason = r.kind, f"router.kind is {r.kind}"
    return RouterEvaluation(
        **common, folds=min(r.cv_folds, n), repeats=r.cv_repeats, n_eval=n, kinds=figures, kind=kind,
        reason=reason, **_figs(figures[kind]),
    )  # fmt: skip
