"""Paired comparisons between the experiment's strategies, from the per-prompt evaluation records
(``evals/KEY.json``): every strategy's correctness per seed and prompt, PerSyn minus each other
strategy (``paired.paired_difference``, seed-aware and prompt-only intervals) with the primary
comparisons Holm-corrected, and the share of the Oracle's gain over the best single teacher
(chosen on validation) that PerSyn recovers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from persyn.core.errors import InputError
from persyn.experiment.paired import gain_ratio, holm, paired_difference

UNTRAINED = "student (no SFT)"
CROSS_PREFIX = "persyn (for "
UNSEEDED = -1  # the untouched student's "seed": evaluated once, it stands for every seed

# {strategy: {seed: [prompts] 0/1 correctness}}
Correctness = dict[str, dict[int, np.ndarray]]


def cross_name(owner: str) -> str:
    """The strategy name of student ``owner``'s PerSyn dataset when another student is trained
    on it (the personalisation matrix)."""
    return f"{CROSS_PREFIX}{owner})"


# Strategies that give every prompt to one teacher: "best single" is the best of these.
SINGLE_TEACHER = ("strongest", "family-strong", "car")


def read_records(path: Path) -> list[dict]:
    """The per-prompt records of one evaluation file (``evaluate.write_eval``).

    Raises:
        InputError: the file is missing, not JSON, or has no ``records``.
    """
    try:
        return json.loads(path.read_text())["records"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: no per-prompt evaluation records ({exc})") from None


def correctness(out: Path, rows: list[dict], eval_ids: list[str]) -> Correctness:
    """Per strategy and seed, the 0/1 correctness on ``eval_ids`` (in that order), read from
    ``out/evals/EVAL_KEY.json`` of each result row; the untouched student's seed is
    ``UNSEEDED``.

    Args:
        out: the experiment's output directory.
        rows: result rows (``results.result_row``) with ``strategy``, ``seed``, ``eval_key``.
        eval_ids: the prompt ids of the split, in the order to use.

    Raises:
        InputError: an evaluation file is missing or lacks one of ``eval_ids``.
    """
    found: Correctness = {}
    for r in rows:
        path = out / "evals" / f"{r['eval_key']}.json"
        ok = {rec["id"]: bool(rec["correct"]) for rec in read_records(path)}
        missing = [i for i in eval_ids if i not in ok]
        if missing:
            raise InputError(f"{path}: no record for prompt {missing[0]!r}")
        seed = UNSEEDED if r["seed"] is None else int(r["seed"])
        found.setdefault(r["strategy"], {})[seed] = np.array([ok[i] for i in eval_ids], float)
    return found


def pair(x: dict[int, np.ndarray], y: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two strategies' ``[seeds, prompts]`` matrices on the seeds both have (in seed order);
    the untouched student's single evaluation stands for every seed of the other side. Empty
    ``[0, P]`` matrices when they share no seed (a run still in progress)."""
    if list(x) == [UNSEEDED]:
        x = dict.fromkeys(y, x[UNSEEDED])
    if list(y) == [UNSEEDED]:
        y = dict.fromkeys(x, y[UNSEEDED])
    seeds = sorted(set(x) & set(y))
    width = len(next(iter(x.values())))
    if not seeds:
        return np.zeros((0, width)), np.zeros((0, width))
    return np.stack([x[s] for s in seeds]), np.stack([y[s] for s in seeds])


def mean_accuracy(per_seed: dict[int, np.ndarray]) -> float:
    """Mean accuracy over a strategy's seeds and prompts."""
    return float(np.mean([v.mean() for v in per_seed.values()]))


def paired_table(
    found: Correctness, reference: str, primary: list[str] | tuple[str, ...] = (), seed: int = 0
) -> list[dict]:
    """``reference`` minus every other strategy, paired over the same prompts and seeds.

    Args:
        found: per strategy and seed, correctness (``correctness``).
        reference: the strategy compared with each other one (``persyn``).
        primary: the comparisons named before the run (``reference − NAME``): their p-values
            get Holm's correction across them (``paired.holm``); every other row is exploratory.
        seed: seeds the bootstrap.

    Returns:
        One dict per other strategy that shares a seed with ``reference``, primary ones first
        (in ``primary`` order), then the rest in ``found`` order: ``a`` (= ``reference``), ``b``,
        ``role`` ("primary" | "exploratory"), ``paired_difference``'s fields, and ``p_holm``
        (the Holm-adjusted p-value; None for exploratory rows). Empty when ``reference`` is
        not in ``found``.
    """
    if reference not in found:
        return []
    names = [n for n in primary if n in found and n != reference]
    names += [n for n in found if n != reference and n not in names]
    rows = []
    for name in names:
        a, b = pair(found[reference], found[name])
        if not len(a):
            continue
        role = "primary" if name in primary else "exploratory"
        rows.append({"a": reference, "b": name, "role": role, **paired_difference(a, b, seed=seed)})
    firsts = [r for r in rows if r["role"] == "primary"]
    for r, adj in zip(firsts, holm([r["p"] for r in firsts]), strict=True):
        r["p_holm"] = adj
    for r in rows:
        r.setdefault("p_holm", None)
    return rows


def gain_arms(strategies) -> tuple[str | None, list[str]]:
    """The Oracle-gain ratio's Oracle among ``strategies`` and its best-single candidates:
    ``oracle`` with the single-teacher strategies (``SINGLE_TEACHER``), else ``oracle-verified``
    (the verified Oracle, best-of-n among the responses that pass) with the single-teacher
    strategies and their verified datasets (``car-verified``…), those among ``strategies``;
    ``(None, [])`` without an Oracle."""
    names = list(strategies)
    if "oracle" in names:
        return "oracle", [s for s in SINGLE_TEACHER if s in names]
    if "oracle-verified" in names:
        singles = [*SINGLE_TEACHER, *(f"{s}-verified" for s in SINGLE_TEACHER)]
        return "oracle-verified", [s for s in singles if s in names]
    return None, []


def best_single(found: Correctness, candidates: list[str] | None = None) -> str | None:
    """The strategy of highest mean accuracy in ``found`` among ``candidates`` (default: the
    single-teacher strategies, ``SINGLE_TEACHER``); a tie goes to the alphabetically first name
    (``core.ranking.best``). None without any."""
    from persyn.core.ranking import best

    singles = [s for s in (SINGLE_TEACHER if candidates is None else candidates) if s in found]
    return best(singles, {s: mean_accuracy(found[s]) for s in singles})


def oracle_gain(
    found: Correctness, persyn: str = "persyn", seed: int = 0, validation: Correctness | None = None
) -> dict | None:
    """The share of the Oracle's accuracy gain over the best single-teacher strategy that
    ``persyn`` recovers on the test prompts, (acc(persyn) − acc(best)) / (acc(oracle) −
    acc(best)) (PerSyn §4's "gain recovered", in student accuracy), with its seed-aware interval
    (``paired.gain_ratio``), on the seeds all three share. The Oracle is ``oracle``, else the
    verified Oracle ``oracle-verified`` (``gain_arms``: then the best single may also be a
    single teacher's verified dataset).

    ``best`` is chosen on the ``validation`` correctness when it has a single-teacher strategy
    (the one of highest validation accuracy, ``best_single``), never on the test set; without
    it, on the test correctness, and ``chosen_on`` says so.

    Returns:
        ``best`` (its name), ``chosen_on`` ("validation" | "test"), ``oracle`` (which Oracle),
        ``oracle_minus_best`` (the
        paired difference dict), ``recovered`` (the share; None when the Oracle's seed-aware
        interval over best is not above 0, since the ratio of a gain not shown to exist
        means nothing), ``ratio`` (``gain_ratio``'s dict), or None without oracle, persyn, a
        single-teacher strategy or a seed the three share.
    """
    oracle, candidates = gain_arms(found)
    if oracle is None or persyn not in found:
        return None
    picked = best_single(validation, candidates) if validation else None
    chosen_on = "validation" if picked in found else "test"
    best = picked if chosen_on == "validation" else best_single(found, candidates)
    if best is None:
        return None
    seeds = set(found[persyn]) & set(found[oracle]) & set(found[best])
    if not seeds:
        return None
    keep = {n: {s: v for s, v in found[n].items() if s in seeds} for n in (persyn, oracle, best)}
    o, b = pair(keep[oracle], keep[best])
    a, _ = pair(keep[persyn], keep[best])
    gap = paired_difference(o, b, seed=seed)
    ratio = gain_ratio(a, b, o, seed=seed)
    return {
        "best": best,
        "chosen_on": chosen_on,
        "oracle": oracle,
        "oracle_minus_best": gap,
        "recovered": ratio["ratio"] if gap["low"] > 0 else None,
        "ratio": ratio,
    }
