"""The assignment of prompts to teachers that maximises expected reward under spend limits and
teacher capacities.

Given ``U [m, K]`` (expected reward of teacher k on prompt i), ``C [m, K]`` (expected cost) and
optionally ``T [m, K]`` (expected output tokens), choose one teacher per prompt,
``x_ik ∈ {0, 1}``, ``Σ_k x_ik = 1``, to

    maximise Σ_ik U_ik x_ik   subject to   Σ_ik C_ik x_ik ≤ max_cost,
                                           Σ_ik T_ik x_ik ≤ max_output_tokens,
                                           Σ_i x_ik ≤ capacity_k  for every teacher k.

This is a multiple-choice knapsack (with capacities, a generalised assignment problem).
Solvers:

- ``lagrangian`` (one limit, no capacities): price the limited resource at λ and give each
  prompt ``argmax_k U_ik − λ R_ik``; spend falls as λ grows, so bisection finds the smallest λ
  whose route fits (the Lagrangian relaxation of the knapsack constraint, Everett 1963;
  Sinha & Zoltners 1979 for the multiple-choice knapsack). The leftover budget then upgrades
  the prompts with the best reward gained per unit spent. It is within one prompt's largest
  reward difference of the optimum and streams: O(m K) per bisection step.
- ``lp``: the exact integer program with scipy's HiGHS (``scipy.optimize.milp``). On large
  pools the LP relaxation is solved first; at most one prompt per constraint is fractional
  there, and only those are re-solved as integers on what the others left.
- ``auto``: ``lagrangian`` for one limit without capacities on more than ``EXACT_VARIABLES``
  variables, else ``lp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from persyn.core.errors import ConfigError

EXACT_VARIABLES = 20_000  # m·K up to which ``auto`` solves the integer program exactly
TOL = 1e-9


class BudgetError(ConfigError):
    """Limits no assignment can meet (the message names the limit, the value given and the
    least that would do)."""


@dataclass
class Limits:
    """What the routed generations may use.

    Attributes:
        max_cost: total expected cost (the cost model's unit), or None.
        max_output_tokens: total expected output tokens, or None.
        capacities: ``[K]`` most prompts per teacher (``inf`` for no limit), or None.
    """

    max_cost: float | None = None
    max_output_tokens: float | None = None
    capacities: np.ndarray | None = None

    def active(self) -> bool:
        caps = self.capacities is not None and np.isfinite(self.capacities).any()
        return self.max_cost is not None or self.max_output_tokens is not None or caps

    def scaled(self, factor: float) -> Limits:
        """The same limits for ``factor`` times as many prompts (capacities and spend scale)."""
        caps = None if self.capacities is None else self.capacities * factor
        return Limits(
            None if self.max_cost is None else self.max_cost * factor,
            None if self.max_output_tokens is None else self.max_output_tokens * factor,
            caps,
        )


@dataclass
class Assignment:
    """A solved assignment.

    Attributes:
        picks: ``[m]`` the teacher index of each prompt.
        reward: Σ of the picks' expected rewards.
        cost: Σ of the picks' expected costs.
        tokens: Σ of the picks' expected output tokens (0 without ``T``).
        method: ``argmax`` (no limit binds), ``lagrangian`` or ``lp``.
        price: the Lagrange multiplier λ of the limited resource (``lagrangian``), else None.
    """

    picks: np.ndarray
    reward: float
    cost: float
    tokens: float
    method: str
    price: float | None = None


def assign(
    U: np.ndarray,
    C: np.ndarray,
    limits: Limits,
    T: np.ndarray | None = None,
    solver: str = "auto",
) -> Assignment:
    """The expected-reward-maximising assignment under ``limits`` (see the module docstring).

    Args:
        U: ``[m, K]`` expected rewards.
        C: ``[m, K]`` expected costs (≥ 0).
        limits: the limits; capacities in prompts.
        T: ``[m, K]`` expected output tokens (needed for ``max_output_tokens``).
        solver: ``auto``, ``lagrangian`` or ``lp``.

    Raises:
        BudgetError: a limit below the least any assignment needs, or capacities that cannot
            take every prompt (the message gives the value and the minimum).
        ValueError: shapes that differ, ``lagrangian`` asked with capacities or two limits.
    """
    U, C = np.asarray(U, dtype=np.float64), np.asarray(C, dtype=np.float64)
    if U.shape != C.shape or (T is not None and np.shape(T) != U.shape):
        raise ValueError(f"U, C (and T) must have one shape, got {U.shape}, {C.shape}")
    if limits.max_output_tokens is not None and T is None:
        raise ValueError("max_output_tokens needs the expected output tokens T")
    T = np.zeros_like(C) if T is None else np.asarray(T, dtype=np.float64)
    m, k = U.shape
    caps = _capacities(limits, k)
    check_feasible(C, T, limits, caps)
    free = U.argmax(1) if m else np.zeros(0, dtype=np.int64)
    if _fits(free, C, T, limits, caps):
        return _result(free, U, C, T, "argmax")
    resources = [(C, limits.max_cost), (T, limits.max_output_tokens)]
    bound = [(R, b) for R, b in resources if b is not None]
    simple = np.isinf(caps).all() and len(bound) == 1
    if solver == "lagrangian" and not simple:
        raise ValueError("the lagrangian solver takes one limit and no capacities; use lp")
    if solver == "lagrangian" or (solver == "auto" and simple and m * k > EXACT_VARIABLES):
        R, b = bound[0]
        picks, price = lagrangian(U, R, b)
        return _result(picks, U, C, T, "lagrangian", price)
    return _result(integer_program(U, C, T, limits, caps), U, C, T, "lp")


def _capacities(limits: Limits, k: int) -> np.ndarray:
    if limits.capacities is None:
        return np.full(k, np.inf)
    caps = np.asarray(limits.capacities, dtype=np.float64)
    if caps.shape != (k,):
        raise ValueError(f"capacities must have one entry per teacher ({k}), got {caps.shape}")
    return caps


def check_feasible(C: np.ndarray, T: np.ndarray, limits: Limits, caps: np.ndarray) -> None:
    """Raise ``BudgetError`` when no assignment can meet ``limits``: capacities summing below
    the prompt count, or a limit below the cheapest route (ignoring capacities) or below the
    cheapest route within the capacities."""
    m = C.shape[0]
    if np.isfinite(caps).all() and caps.sum() < m:
        raise BudgetError(
            f"teacher capacities (max_prompts) take {int(caps.sum())} prompts in all, "
            f"fewer than the {m} routed prompts"
        )
    for R, b, name in (
        (C, limits.max_cost, "budget.max_cost"),
        (T, limits.max_output_tokens, "budget.max_output_tokens"),
    ):
        if b is None or m == 0:
            continue
        least = float(R.min(1).sum()) if np.isinf(caps).all() else _least_within(R, caps)
        if b < least - TOL * max(1.0, abs(least)):
            raise BudgetError(
                f"{name} is {b:g}, below the least any assignment of the {m} routed prompts "
                f"spends ({least:g}{' within the teachers’ max_prompts' if np.isfinite(caps).any() else ''})"
            )


def _least_within(R: np.ndarray, caps: np.ndarray) -> float:
    """The least total of ``R`` over assignments within ``caps`` (an LP: integral here, a
    transportation problem)."""
    from scipy.optimize import linprog

    m, k = R.shape
    A_eq, A_cap = _assignment_rows(m, k)
    finite = np.isfinite(caps)
    res = linprog(
        R.ravel(),
        A_ub=A_cap[finite] if finite.any() else None,
        b_ub=caps[finite] if finite.any() else None,
        A_eq=A_eq,
        b_eq=np.ones(m),
        bounds=(0, 1),
        method="highs",
    )
    if not res.success:
        raise BudgetError(f"no assignment fits the teachers' max_prompts: {res.message}")
    return float(res.fun)


def _fits(picks: np.ndarray, C, T, limits: Limits, caps: np.ndarray) -> bool:
    rows = np.arange(len(picks))
    if limits.max_cost is not None and C[rows, picks].sum() > limits.max_cost + TOL:
        return False
    if limits.max_output_tokens is not None and T[rows, picks].sum() > limits.max_output_tokens + TOL:
        return False
    counts = np.bincount(picks, minlength=len(caps))
    return bool((counts <= caps + TOL).all())


def _result(picks, U, C, T, method: str, price: float | None = None) -> Assignment:
    rows = np.arange(len(picks))
    return Assignment(
        picks.astype(np.int64),
        float(U[rows, picks].sum()),
        float(C[rows, picks].sum()),
        float(T[rows, picks].sum()),
        method,
        price,
    )


def priced_picks(U: np.ndarray, R: np.ndarray, price: float) -> np.ndarray:
    """``argmax_k U_ik − price · R_ik`` per prompt; a tie goes to the cheaper teacher."""
    value = U - price * R
    best = value.max(1, keepdims=True)
    tied = value >= best - 1e-12 * np.maximum(1.0, np.abs(best))
    return np.where(tied, R, np.inf).argmin(1)


def lagrangian(
    U: np.ndarray, R: np.ndarray, budget: float, iterations: int = 100
) -> tuple[np.ndarray, float]:
    """Picks within ``Σ R ≤ budget`` by bisection on the price λ, then a greedy use of what is
    left (see the module docstring). Returns ``(picks [m], λ)``.

    Raises:
        BudgetError: ``budget`` below ``Σ_i min_k R_ik``.
    """
    rows = np.arange(len(U))
    least = float(R.min(1).sum())
    if budget < least - TOL * max(1.0, abs(least)):
        raise BudgetError(f"the budget is {budget:g}, below the least any assignment spends ({least:g})")
    spend = lambda p: float(R[rows, p].sum())  # noqa: E731
    lo, hi = 0.0, 1.0
    while spend(priced_picks(U, R, hi)) > budget + TOL:
        hi *= 2.0
        if hi > 1e300:  # only the cheapest route fits
            break
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if spend(priced_picks(U, R, mid)) > budget + TOL:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    picks = priced_picks(U, R, hi)
    # What the price left unspent buys upgrades, best reward per unit spent first.
    slack = budget - spend(picks)
    gain = U - U[rows, picks][:, None]
    extra = R - R[rows, picks][:, None]
    cand = (gain > 1e-12) & (extra <= slack + TOL)
    if cand.any():
        ratio = np.where(cand, gain / np.maximum(extra, 1e-300), -np.inf)
        best_k = ratio.argmax(1)
        order = np.argsort(-ratio[rows, best_k], kind="stable")
        for i in order:
            j = best_k[i]
            if not np.isfinite(ratio[i, j]):
                break
            if extra[i, j] <= slack + TOL:
                slack -= extra[i, j]
                picks[i] = j
    return picks, hi


def _assignment_rows(m: int, k: int):
    """Sparse ``(A_eq [m, m·K], A_cap [K, m·K])``: one teacher per prompt, prompts per teacher."""
    from scipy import sparse

    cols = np.arange(m * k)
    A_eq = sparse.csr_matrix((np.ones(m * k), (np.repeat(np.arange(m), k), cols)), shape=(m, m * k))
    A_cap = sparse.csr_matrix((np.ones(m * k), (np.tile(np.arange(k), m), cols)), shape=(k, m * k))
    return A_eq, A_cap


def integer_program(U, C, T, limits: Limits, caps: np.ndarray, time_limit: float = 600.0) -> np.ndarray:
    """The exact assignment by HiGHS (``scipy.optimize.milp``); on more than
    ``EXACT_VARIABLES`` variables, the LP relaxation first and only its fractional prompts as
    integers. Returns ``picks [m]``.

    Raises:
        BudgetError: HiGHS finds no feasible assignment.
    """
    m, k = U.shape
    if m * k <= EXACT_VARIABLES:
        return _milp(U, C, T, limits, caps, time_limit)
    from scipy.optimize import linprog

    A_ub, b_ub = _limit_rows(C, T, limits, caps)
    A_eq, _ = _assignment_rows(m, k)
    res = linprog(-U.ravel(), A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=np.ones(m), bounds=(0, 1), method="highs")
    if not res.success:
        raise BudgetError(f"no assignment meets the limits: {res.message}")
    x = res.x.reshape(m, k)
    whole = x.max(1) >= 1 - 1e-7
    picks = x.argmax(1)
    frac = np.flatnonzero(~whole)
    if len(frac):
        rows = np.flatnonzero(whole)
        used_c = C[rows, picks[rows]].sum()
        used_t = T[rows, picks[rows]].sum()
        counts = np.bincount(picks[rows], minlength=k)
        rest = Limits(
            None if limits.max_cost is None else limits.max_cost - used_c,
            None if limits.max_output_tokens is None else limits.max_output_tokens - used_t,
            caps - counts,
        )
        picks[frac] = _milp(U[frac], C[frac], T[frac], rest, caps - counts, time_limit)
    return picks


def _limit_rows(C, T, limits: Limits, caps: np.ndarray):
    from scipy import sparse

    m, k = C.shape
    _, A_cap = _assignment_rows(m, k)
    rows, bounds = [], []
    if limits.max_cost is not None:
        rows.append(sparse.csr_matrix(C.reshape(1, -1)))
        bounds.append(limits.max_cost)
    if limits.max_output_tokens is not None:
        rows.append(sparse.csr_matrix(T.reshape(1, -1)))
        bounds.append(limits.max_output_tokens)
    finite = np.isfinite(caps)
    if finite.any():
        rows.append(A_cap[finite])
        bounds.extend(caps[finite].tolist())
    if not rows:
        return None, None
    return sparse.vstack(rows).tocsr(), np.array(bounds, dtype=np.float64)


def _milp(U, C, T, limits: Limits, caps: np.ndarray, time_limit: float) -> np.ndarray:
    from scipy.optimize import Bounds, LinearConstraint, milp

    m, k = U.shape
    A_eq, _ = _assignment_rows(m, k)
    cons = [LinearConstraint(A_eq, np.ones(m), np.ones(m))]
    A_ub, b_ub = _limit_rows(C, T, limits, caps)
    if A_ub is not None:
        cons.append(LinearConstraint(A_ub, -np.inf, b_ub + TOL))
    res = milp(
        -U.ravel(),
        integrality=np.ones(m * k),
        bounds=Bounds(0, 1),
        constraints=cons,
        options={"time_limit": time_limit},
    )
    if res.x is None:
        raise BudgetError(f"no assignment meets the limits: {res.message}")
    return res.x.reshape(m, k).argmax(1)
