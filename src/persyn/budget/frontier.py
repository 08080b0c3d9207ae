"""The cost–reward frontier of the calibration set: what the budgeted route would earn at 10 …
100% of the unconstrained route's spend, so a user chooses a budget by looking.

Every calibration prompt is routed by a router that did not see it (the cross-validation's
out-of-fold scores, mapped to expected rewards by ``utility.cross_fitted``); at each budget
``B = f · spend(unconstrained)`` the prompts are assigned by ``assign.assign`` on the expected
rewards and costs, and the assignment is scored with the prompts' actual calibration rewards
(Eq. 2). Beside it, at the same budgets, the baseline "router, then cheapest": the
unconstrained route with prompts moved, in source order, to their cheapest teacher until the
spend fits; and the constant routes (each teacher alone: its spend and reward).

Per budget: mean reward with a percentile bootstrap 95% interval over prompts, and the Oracle
gain recovered, (reward − best single) / (Oracle − best single), with the best single teacher
the one of highest mean calibration reward, a tie to the alphabetically first name (as
``prior``: ``core.ranking.best_single_teacher``), with its interval over the same resamples.
"""

from __future__ import annotations

import numpy as np

from persyn.budget.assign import BudgetError, Limits, assign
from persyn.core.ranking import best_single_teacher

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def router_then_cheapest(picks: np.ndarray, C: np.ndarray, budget: float) -> np.ndarray:
    """``picks`` with prompts moved to their cheapest teacher, in source order, until
    ``Σ C ≤ budget`` (the baseline a budget-blind router offers)."""
    rows = np.arange(len(picks))
    out = picks.copy()
    cheapest = C.argmin(1)
    spend = float(C[rows, out].sum())
    for i in rows:
        if spend <= budget + 1e-9:
            break
        if out[i] != cheapest[i]:
            spend -= C[i, out[i]] - C[i, cheapest[i]]
            out[i] = cheapest[i]
    return out


def frontier(
    U: np.ndarray,
    R: np.ndarray,
    C: np.ndarray,
    teachers: list[str],
    unit: str,
    fractions: tuple[float, ...] = FRACTIONS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict | None:
    """The frontier table (see the module docstring).

    Args:
        U: ``[n, K]`` out-of-fold expected rewards of the calibration prompts.
        R: ``[n, K]`` their actual filled rewards.
        C: ``[n, K]`` their expected costs.
        teachers: names, in column order.
        unit: the cost unit (``currency`` or ``tokens``).

    Returns:
        ``{"unit", "n", "unconstrained_cost", "oracle", "best_single": {name, reward, cost},
        "teachers": {name: {cost, reward}}, "points": [{fraction, budget, cost, reward,
        reward_low, reward_high, gain, gain_low, gain_high, router_then_cheapest: {cost,
        reward, gain}}]}``; a point below the cheapest route has ``feasible: false``. None when
        the unconstrained route costs nothing (no budget can bind).
    """
    n = len(U)
    if n == 0:
        return None
    rows = np.arange(n)
    free = U.argmax(1)
    full = float(C[rows, free].sum())
    if full <= 0:
        return None
    best = teachers.index(best_single_teacher(teachers, R.mean(0)))
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    oracle_b, single_b = R.max(1)[draws].mean(1), R[:, best][draws].mean(1)

    def figures(picks: np.ndarray) -> dict:
        got = R[rows, picks]
        got_b = got[draws].mean(1)
        room = R.max(1).mean() - R[:, best].mean()
        kept = (oracle_b - single_b) > 1e-12
        ratio = (got_b[kept] - single_b[kept]) / (oracle_b[kept] - single_b[kept])
        out = {
            "cost": float(C[rows, picks].sum()),
            "reward": float(got.mean()),
            "reward_low": float(np.percentile(got_b, 2.5)),
            "reward_high": float(np.percentile(got_b, 97.5)),
            "gain": float((got.mean() - R[:, best].mean()) / room) if room > 1e-12 else None,
        }
        if room > 1e-12 and kept.mean() >= 0.95:
            out["gain_low"], out["gain_high"] = (float(v) for v in np.percentile(ratio, [2.5, 97.5]))
        else:
            out["gain_low"] = out["gain_high"] = None
        return out

    points = []
    for f in fractions:
        budget = f * full
        try:
            a = assign(U, C, Limits(max_cost=budget))
        except BudgetError:
            points.append({"fraction": f, "budget": budget, "feasible": False})
            continue
        naive = figures(router_then_cheapest(free, C, budget))
        points.append(
            {
                "fraction": f,
                "budget": budget,
                "feasible": True,
                **figures(a.picks),
                "router_then_cheapest": {k: naive[k] for k in ("cost", "reward", "gain")},
            }
        )
    return {
        "unit": unit,
        "n": n,
        "unconstrained_cost": full,
        "oracle": float(R.max(1).mean()),
        "best_single": {
            "name": teachers[best],
            "reward": float(R[:, best].mean()),
            "cost": float(C[:, best].sum()),
        },
        "teachers": {
            t: {"cost": float(C[:, k].sum()), "reward": float(R[:, k].mean())} for k, t in enumerate(teachers)
        },
        "points": points,
    }
