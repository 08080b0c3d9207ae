"""Paired comparisons of two training sets by the accuracy of the students they train.

Both sides are evaluated on the same held-out prompts with the same seeds, so the comparison is
paired twice. Two intervals are reported:

- **seed-aware** (the one to read): a two-stage (hierarchical) bootstrap that resamples the
  seeds and, independently, the prompts, both with replacement, and averages the paired
  difference over the resampled cells (Davison & Hinkley 1997, *Bootstrap Methods*, §3.8,
  resampling at both stages; Field & Welsh 2007 for crossed designs). It counts the variance
  that training brings (seed to seed), which is often the larger part.
- **prompt-only**: the paired bootstrap over prompts of each prompt's seed-mean difference
  (Efron & Tibshirani 1993, ch. 16), with the fine-tuned models fixed. Narrower; it answers
  "would these very models differ on other prompts", not "would this recipe".

With few seeds the seed stage is coarse (5 seeds give 126 distinct resamples); the per-seed
differences are reported beside both intervals.
"""

from __future__ import annotations

import numpy as np

from persyn.core.errors import InputError


def _matrices(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape or a.shape[1] == 0:
        raise InputError(
            f"paired comparison needs equal [seeds, prompts] shapes, got {a.shape} and {b.shape}"
        )
    return a, b


def hierarchical_bootstrap(d: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap means of a ``[seeds, prompts]`` matrix of paired differences, resampling the
    seeds and the prompts independently with replacement (two-stage bootstrap, Davison &
    Hinkley 1997 §3.8).

    Args:
        d: ``[S, P]`` per-(seed, prompt) difference A − B.
        n_boot: resamples.
        seed: seeds the resampling (seeds first, then prompts, from one generator).

    Returns:
        ``[n_boot]`` means: for resample k, ``d[seeds_k][:, prompts_k].mean()``. With one seed
        it is the prompt bootstrap of that seed's differences.
    """
    rng = np.random.default_rng(seed)
    s, p = d.shape
    seeds = rng.integers(0, s, size=(n_boot, s))
    prompts = rng.integers(0, p, size=(n_boot, p))
    # The mean over the resampled grid factorises: mean over resampled seeds of the per-seed
    # sums over resampled prompts. Counting each prompt's draws keeps it O(n_boot·S·P).
    weights = np.zeros((n_boot, p))
    np.add.at(weights, (np.arange(n_boot)[:, None], prompts), 1.0)
    per_seed = weights @ d.T / p  # [n_boot, S]: seed j's mean over the resampled prompts
    return np.take_along_axis(per_seed, seeds, 1).mean(1)


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the mean difference is 0": twice the smaller share of
    resamples on either side of 0, with the +1 correction that keeps it above 0
    (Davison & Hinkley 1997 §4.4): ``min(1, 2 · (min(#≤0, #≥0) + 1) / (n + 1))``."""
    n = len(boot)
    tail = min(int((boot <= 0).sum()), int((boot >= 0).sum()))
    return float(min(1.0, 2.0 * (tail + 1) / (n + 1)))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order: the i-th smallest of
    m values becomes ``max_{j ≤ i} min(1, (m − j + 1) · p_(j))``. Rejecting where the adjusted
    value is below α controls the family-wise error rate at α."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    out = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        out[i] = running
    return out


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Accuracy of A minus accuracy of B, paired over prompts and seeds.

    Args:
        a, b: ``[seeds, prompts]`` 0/1 correctness (or ``[prompts]`` for one seed), the same
            prompts in the same order, the same seeds.
        n_boot: bootstrap resamples.
        seed: seeds the resampling.

    Returns:
        ``mean`` (mean over seeds of acc(A) − acc(B)); ``low`` / ``high``: the seed-aware 95%
        interval (2.5th and 97.5th percentiles of ``hierarchical_bootstrap``); ``p``: its
        two-sided bootstrap p-value (``bootstrap_p``); ``prompt_low`` / ``prompt_high``: the
        prompt-only 95% interval (bootstrap over prompts of each prompt's seed-mean
        difference); ``per_seed`` (the difference per seed), ``seed_std`` (its standard
        deviation, ddof 1; 0 with one seed), ``n_prompts``, ``n_seeds``.

    Raises:
        InputError: shapes differ or there are no prompts.
    """
    a, b = _matrices(a, b)
    d = a - b
    diff = d.mean(0)  # per prompt, averaged over seeds
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(n_boot, len(diff)))
    prompt_boot = diff[idx].mean(1)
    boot = hierarchical_bootstrap(d, n_boot, seed)
    per_seed = d.mean(1)
    return {
        "mean": float(diff.mean()),
        "low": float(np.percentile(boot, 2.5)),
        "high": float(np.percentile(boot, 97.5)),
        "p": bootstrap_p(boot),
        "prompt_low": float(np.percentile(prompt_boot, 2.5)),
        "prompt_high": float(np.percentile(prompt_boot, 97.5)),
        "per_seed": [float(x) for x in per_seed],
        "seed_std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
        "n_prompts": int(a.shape[1]),
        "n_seeds": int(a.shape[0]),
    }


def gain_ratio(
    a: np.ndarray, best: np.ndarray, oracle: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> dict:
    """The share of the Oracle's gain over the best single teacher that A recovers,
    ``(acc(A) − acc(best)) / (acc(oracle) − acc(best))`` (PerSyn §4's "gain recovered", in
    student accuracy), with a seed-aware 95% interval: the same two-stage resamples (seeds and
    prompts) for numerator and denominator, the ratio per resample, its 2.5th and 97.5th
    percentiles among the resamples whose denominator is > 0.

    Args:
        a, best, oracle: ``[seeds, prompts]`` 0/1 correctness, aligned.

    Returns:
        ``ratio`` (None when the Oracle's mean gain is not > 0), ``low`` / ``high`` (None when
        fewer than 95% of the resamples have a positive denominator: the ratio is then not
        bounded), ``positive_share`` (that share).

    Raises:
        InputError: shapes differ.
    """
    a, best = _matrices(a, best)
    _, oracle = _matrices(a, oracle)
    num, den = a - best, oracle - best
    # Identical generator seeds: the same (seed, prompt) resamples for both.
    bn = hierarchical_bootstrap(num, n_boot, seed)
    bd = hierarchical_bootstrap(den, n_boot, seed)
    ok = bd > 0
    share = float(ok.mean())
    ratio = float(num.mean() / den.mean()) if den.mean() > 0 else None
    if share < 0.95:
        return {"ratio": ratio, "low": None, "high": None, "positive_share": share}
    r = bn[ok] / bd[ok]
    return {
        "ratio": ratio,
        "low": float(np.percentile(r, 2.5)),
        "high": float(np.percentile(r, 97.5)),
        "positive_share": share,
    }
