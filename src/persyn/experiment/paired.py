"""Paired comparisons of two training sets by the accuracy of the students they train.

Both sides are evaluated on the same held-out prompts with the same seeds, so the comparison is
paired twice: per prompt, each side's correctness is averaged over the seeds, and the
difference of those per-prompt means is resampled over prompts (a paired bootstrap, Efron &
Tibshirani 1993, ch. 16). The seed-to-seed spread of the accuracy difference is reported beside
the interval: the bootstrap over prompts does not see the variance that comes from training.
"""

from __future__ import annotations

import numpy as np

from persyn.core.errors import InputError


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Accuracy of A minus accuracy of B, paired over prompts and seeds.

    Args:
        a, b: ``[seeds, prompts]`` 0/1 correctness (or ``[prompts]`` for one seed), the same
            prompts in the same order, the same seeds.
        n_boot: bootstrap resamples of the prompts.
        seed: seeds the resampling.

    Returns:
        ``mean`` (mean over seeds of acc(A) − acc(B)), ``low`` / ``high`` (the 2.5th and 97.5th
        percentiles of the bootstrap means of the per-prompt difference of seed-mean
        correctness), ``per_seed`` (the difference per seed), ``seed_std`` (its standard
        deviation, ddof 1; 0 with one seed), ``n_prompts``, ``n_seeds``.

    Raises:
        InputError: shapes differ or there are no prompts.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape or a.shape[1] == 0:
        raise InputError(
            f"paired comparison needs equal [seeds, prompts] shapes, got {a.shape} and {b.shape}"
        )
    diff = a.mean(0) - b.mean(0)  # per prompt, averaged over seeds
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(n_boot, len(diff)))
    boot = diff[idx].mean(1)
    per_seed = a.mean(1) - b.mean(1)
    return {
        "mean": float(diff.mean()),
        "low": float(np.percentile(boot, 2.5)),
        "high": float(np.percentile(boot, 97.5)),
        "per_seed": [float(x) for x in per_seed],
        "seed_std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
        "n_prompts": int(a.shape[1]),
        "n_seeds": int(a.shape[0]),
    }
