"""Paired comparisons between the experiment's strategies, from the per-prompt evaluation records
(``evals/KEY.json``): every strategy's ``[seeds, prompts]`` correctness matrix, PerSyn minus each
other strategy (``paired.paired_difference``), and the share of the Oracle's gain over the best
single teacher that PerSyn recovers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from persyn.core.errors import InputError
from persyn.experiment.paired import paired_difference

UNTRAINED = "student (no SFT)"
CROSS_PREFIX = "persyn (for "


def cross_name(owner: str) -> str:
    """The strategy name of student ``owner``'s PerSyn dataset when another student is trained
    on it (the personalisation matrix)."""
    return f"{CROSS_PREFIX}{owner})"


# Strategies that give every prompt to one teacher: "best single" is the best of these.
SINGLE_TEACHER = ("strongest", "family-strong", "car")


def correctness(out: Path, rows: list[dict], eval_ids: list[str]) -> dict[str, np.ndarray]:
    """Per strategy, the 0/1 correctness matrix ``[seeds, prompts]`` (rows in seed order,
    columns in ``eval_ids`` order), read from ``out/evals/EVAL_KEY.json`` of each result row.

    Args:
        out: the experiment's output directory.
        rows: result rows (``results.result_row``) with ``strategy``, ``seed``, ``eval_key``.
        eval_ids: the held-out prompt ids, in the order to use.

    Raises:
        InputError: an evaluation file is missing or lacks one of ``eval_ids``.
    """
    by_strategy: dict[str, list[tuple[int, np.ndarray]]] = {}
    for r in rows:
        path = out / "evals" / f"{r['eval_key']}.json"
        try:
            records = json.loads(path.read_text())["records"]
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: no per-prompt evaluation records ({exc})") from None
        ok = {rec["id"]: bool(rec["correct"]) for rec in records}
        missing = [i for i in eval_ids if i not in ok]
        if missing:
            raise InputError(f"{path}: no record for held-out prompt {missing[0]!r}")
        seed = -1 if r["seed"] is None else int(r["seed"])
        by_strategy.setdefault(r["strategy"], []).append((seed, np.array([ok[i] for i in eval_ids], float)))
    return {
        name: np.stack([m for _, m in sorted(ms, key=lambda x: x[0])]) for name, ms in by_strategy.items()
    }


def _aligned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The untouched student is evaluated once: the same answers stand for every seed.
    if len(a) == 1 and len(b) > 1:
        a = np.repeat(a, len(b), 0)
    if len(b) == 1 and len(a) > 1:
        b = np.repeat(b, len(a), 0)
    return a, b


def paired_table(matrices: dict[str, np.ndarray], reference: str, seed: int = 0) -> list[dict]:
    """``reference`` minus every other strategy, paired over the same prompts and seeds.

    Returns:
        One dict per other strategy (in ``matrices`` order): ``a`` (= ``reference``), ``b``,
        and ``paired_difference``'s ``mean``, ``low``, ``high``, ``per_seed``, ``seed_std``,
        ``n_prompts``, ``n_seeds``. Empty when ``reference`` is not among ``matrices``.
    """
    if reference not in matrices:
        return []
    rows = []
    for name, m in matrices.items():
        if name == reference:
            continue
        a, b = _aligned(matrices[reference], m)
        rows.append({"a": reference, "b": name, **paired_difference(a, b, seed=seed)})
    return rows


def oracle_gain(matrices: dict[str, np.ndarray], persyn: str = "persyn", seed: int = 0) -> dict | None:
    """The share of the Oracle's accuracy gain over the best single-teacher strategy that
    ``persyn`` recovers: (acc(persyn) − acc(best)) / (acc(oracle) − acc(best)) (PerSyn §4's
    "gain recovered", in student accuracy), with best the single-teacher strategy
    (``SINGLE_TEACHER``) of highest mean accuracy.

    Returns:
        ``best`` (its name), ``oracle_minus_best`` (the paired difference dict), ``recovered``
        (the share; None when the Oracle's paired interval over best does not exclude 0, since
        the ratio of a gain not shown to exist means nothing), or None without oracle, persyn
        or any single-teacher strategy.
    """
    singles = [s for s in SINGLE_TEACHER if s in matrices]
    if not singles or "oracle" not in matrices or persyn not in matrices:
        return None
    best = max(sorted(singles), key=lambda s: matrices[s].mean())  # a tie: the first name
    gap = paired_difference(*_aligned(matrices["oracle"], matrices[best]), seed=seed)
    shown = gap["low"] > 0
    gain = paired_difference(*_aligned(matrices[persyn], matrices[best]), seed=seed)["mean"]
    return {
        "best": best,
        "oracle_minus_best": gap,
        "recovered": gain / gap["mean"] if shown else None,
    }
