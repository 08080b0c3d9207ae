"""Route-then-Generate under a budget (``budget:`` and teachers' ``max_prompts``).

After the router has scored every routed prompt (``stages.route``), the scores become expected
rewards (``budget.utility``), each (prompt, teacher) gets an expected cost from the
calibration responses (``budget.cost``), and ``budget.assign`` picks the assignment of most
expected reward within the limits. It is stored as a routing of its own (the router's
argmax stays stored beside it), so a resumed run generates for the same assignment. During
generation the spend actually reported by the teachers is tracked: a response whose expected
cost would take the actual spend past ``max_cost`` is not generated but recorded as failed,
"skipped by budget".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from persyn.budget.assign import BudgetError, Limits, assign
from persyn.budget.cost import CostModel
from persyn.budget.utility import RewardCalibration
from persyn.config import RunConfig
from persyn.core.hashing import stable_hash
from persyn.core.records import Generation
from persyn.runtime.context import RunContext
from persyn.runtime.rewards import reward_table

SKIPPED = "skipped by budget"


def budget_active(cfg: RunConfig) -> bool:
    """Whether the run routes under limits (a spend limit or a teacher's ``max_prompts``)."""
    b = cfg.budget
    spend = b is not None and (b.max_cost is not None or b.max_output_tokens is not None)
    return spend or any(t.max_prompts is not None for t in cfg.teachers)


def limits_of(cfg: RunConfig) -> Limits:
    """The run's limits: ``budget``'s spend limits and the teachers' ``max_prompts``."""
    caps = np.array(
        [np.inf if t.max_prompts is None else t.max_prompts for t in cfg.teachers], dtype=np.float64
    )
    b = cfg.budget
    return Limits(
        None if b is None else b.max_cost,
        None if b is None else b.max_output_tokens,
        caps if np.isfinite(caps).any() else None,
    )


def cost_model(ctx: RunContext, calibration: tuple[list, dict] | None = None) -> CostModel:
    """The cost model of the run's pool, fitted on its calibration responses
    (``calibration``: the ``(prompts, generations)`` of ``reward_table`` when the caller has
    them already; else read here).

    Raises:
        PersynError: calibration responses missing or not scored.
    """
    if calibration is None:
        cal, _, gens = reward_table(ctx)
    else:
        cal, gens = calibration
    chars = {p.id: len(p.text) for p in cal}
    rows: dict[str, list[tuple[int, Generation]]] = {}
    for (pid, teacher), g in gens.items():
        rows.setdefault(teacher, []).append((chars[pid], g))
    return CostModel(ctx.cfg.teachers, rows)


@dataclass
class BudgetedRoute:
    """The stored budgeted routing: its store key and figures (``summary.json``'s ``budget``)."""

    key: str
    figures: dict
    per_prompt: dict[str, tuple[float, float]]  # prompt id → (expected reward, expected cost)


def budget_route(ctx: RunContext, router_key: str, router_dir: Path, kind: str) -> BudgetedRoute:
    """Assign the routed prompts under the run's limits and store the assignment (once: a
    stored one for the same router, limits and costs is reused as it is).

    Raises:
        BudgetError: limits no assignment can meet (with the value and the minimum).
    """
    cfg, names = ctx.cfg, ctx.cfg.teacher_names
    model = cost_model(ctx)
    limits = limits_of(cfg)
    solver = cfg.budget.solver if cfg.budget else "auto"
    key = stable_hash(
        ["budget/v1", router_key, limits.max_cost, limits.max_output_tokens,
         None if limits.capacities is None else limits.capacities.tolist(), model.describe(), solver]
        + ([cfg.verify.model_dump()] if cfg.verify is not None else [])  # its costs plan escalations
    )  # fmt: skip
    stored = _stored(ctx, key)
    if stored is not None and ctx.store.assignment_ids(key) == ctx.store.assignment_ids(router_key):
        return stored
    scored = ctx.store.assignments(router_key)
    prompts = ctx.store.prompts_by_id(list(scored))
    ids = [p.id for p in prompts]
    S = np.array([[scored[i][1][n] for n in names] for i in ids], dtype=np.float64).reshape(
        len(ids), len(names)
    )
    U = RewardCalibration.load(router_dir, kind)(S) if len(ids) else S
    chars = np.array([len(p.text) for p in prompts], dtype=np.float64)
    C = model.costs(chars)
    T = model.tokens(chars)[1]
    plan = "first tries"
    if cfg.verify is not None:  # each first choice brings its expected escalations with it
        rates = pass_rates(ctx)
        C_v = cascade_costs(C, S, rates, cfg.verify.max_tries, names)
        T_v = cascade_costs(T, S, rates, cfg.verify.max_tries, names)
        try:
            a = assign(U, C_v, limits, T_v, solver)
            C, T, plan = C_v, T_v, "first tries with their expected escalations"
        except BudgetError:  # escalations are optional: the cap skips those that do not fit
            plan = "first tries only (their expected escalations do not fit the limits)"
    if plan != "first tries with their expected escalations":
        a = assign(U, C, limits, T, solver)
    free = U.argmax(1) if len(ids) else np.zeros(0, dtype=np.int64)
    rows = np.arange(len(ids))
    ctx.store.set_assignments(key, [(i, names[k], scored[i][1]) for i, k in zip(ids, a.picks, strict=True)])
    figures = {
        "max_cost": limits.max_cost,
        "max_output_tokens": limits.max_output_tokens,
        "max_prompts": {t.name: t.max_prompts for t in cfg.teachers if t.max_prompts is not None},
        "unit": model.unit,
        "unpriced": model.unpriced,
        "solver": a.method,
        "price": a.price,
        "estimated_cost": a.cost,
        "estimated_output_tokens": a.tokens,
        "expected_reward": float(a.reward / max(1, len(ids))),
        "unconstrained_cost": float(C[rows, free].sum()),
        "unconstrained_expected_reward": float(U[rows, free].sum() / max(1, len(ids))),
        "routed": {n: int((a.picks == k).sum()) for k, n in enumerate(names)},
        "cost_model": model.describe(),
        "plan": plan,
    }
    per_prompt = {i: (float(U[j, a.picks[j]]), float(C[j, a.picks[j]])) for j, i in enumerate(ids)}
    ctx.store.set_budget_route(key, figures, per_prompt)
    return BudgetedRoute(key, figures, per_prompt)


def stored_budget(ctx: RunContext) -> BudgetedRoute | None:
    """The budgeted routing the run currently routes by, or None (no budget)."""
    key = ctx.store.route_key()
    return _stored(ctx, key) if key else None


def _stored(ctx: RunContext, key: str) -> BudgetedRoute | None:
    """The budgeted routing stored under ``key``, or None."""
    data = ctx.store.budget_route(key)
    if data is None:
        return None
    return BudgetedRoute(key, data["figures"], {k: tuple(v) for k, v in data["per_prompt"].items()})


def calibration_costs(ctx: RunContext, texts: list[str]) -> tuple[CostModel, np.ndarray, np.ndarray]:
    """``(model, C, T)``: the cost model and the expected costs and output tokens
    ``[len(texts), K]`` of the calibration prompts ``texts``."""
    model = cost_model(ctx)
    chars = np.array([len(t) for t in texts], dtype=np.float64)
    return model, model.costs(chars), model.tokens(chars)[1]


def oof_utilities(kind: str, scores: np.ndarray, rewards: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Cross-fitted expected rewards ``[repeats, n, K]`` of a kind's out-of-fold scores (the
    folds of ``router.cv.cross_validate``: ``router.base.repeat_folds``)."""
    from persyn.budget.utility import cross_fitted
    from persyn.router.base import repeat_folds

    n = scores.shape[1]
    return np.stack(
        [
            cross_fitted(kind, scores[r], rewards, repeat_folds(n, n_folds, seed, r))
            for r in range(len(scores))
        ]
    )


def budgeted_cv(
    cfg: RunConfig, cv: dict, rewards: np.ndarray, C: np.ndarray, T: np.ndarray, seed: int, n_routed: int
) -> None:
    """Replace each kind's cross-validated picks and regrets by those of its *budgeted* route
    (in place), so that ``auto`` chooses the kind under the run's limits. The limits are per
    routed prompt scaled to the calibration prompts counted (a budget for 900 routed prompts
    is a third of it for 300). A kind whose budgeted route is infeasible on a fold keeps
    nothing: the limits are checked on the real prompts later, with the minimum named."""
    from persyn.budget.assign import BudgetError

    n = rewards.shape[0]
    scaled = limits_of(cfg).scaled(n / max(1, n_routed))
    rows = np.arange(n)
    for kind, r in cv.items():
        if r.scores is None:
            continue
        U = oof_utilities(kind, r.scores, rewards, cfg.router.cv_folds, seed)
        picks = []
        for u in U:
            try:
                picks.append(assign(u, C, scaled, T, "auto").picks)
            except BudgetError:
                picks.append(u.argmax(1))
        picks = np.stack(picks)
        regrets = np.stack([rewards.max(1) - rewards[rows, p] for p in picks])
        r.picks, r.regrets, r.top1 = picks[0], regrets.mean(0), float((regrets <= 1e-12).mean())


def pass_rates(ctx: RunContext) -> dict[str, float]:
    """Each teacher's share of calibration responses that pass ``verify``'s check.

    Raises:
        PersynError: calibration responses missing or not scored.
    """
    cfg = ctx.cfg
    _, table, _ = reward_table(ctx)
    rows = list(table.values())
    return {
        n: sum(cfg.verify.passes(r[i].quality, cfg.quality.kind) for r in rows) / max(1, len(rows))
        for i, n in enumerate(cfg.teacher_names)
    }


def cascade_costs(
    C: np.ndarray, S: np.ndarray, rates: dict[str, float], max_tries: int, names: list[str]
) -> np.ndarray:
    """The expected cost ``[n, K]`` of a verified cascade whose first teacher is k: Σ_m
    Π_{j<m} (1 − p_j) · C[i, r_m] over the ranking r = k, then the others by the router's
    scores ``S [n, K]`` (``router.base.rank_teachers``), at most ``max_tries`` (docs/method.md:
    the expected tries E = Σ_m Π_{j<m} (1 − p_j), with each try priced). ``rates``: per teacher
    pass probability (``pass_rates``)."""
    from persyn.router.base import rank_teachers

    order = rank_teachers(S, names) if len(S) else np.zeros((0, len(names)), dtype=np.int64)
    p = np.array([rates[n] for n in names])
    out = np.zeros_like(C, dtype=np.float64)
    for i in range(len(C)):
        for k in range(len(names)):
            ranking = [k] + [j for j in order[i] if j != k]
            reach = 1.0
            for j in ranking[:max_tries]:
                out[i, k] += reach * C[i, j]
                reach *= 1.0 - p[j]
    return out
