"""NormSim: how similar a sample is to a target set (relevance) or to the seed set (novelty).

NormSim_p(X, x) = ‖f(X) f(x)‖_p = (Σ_{t∈X} |⟨f(t), f(x)⟩|^p)^{1/p} over L2-normalised
embeddings f (Wang et al., "CLIPLoss and Norm-Based Data Selection Methods", arXiv 2405.19547,
Eq. 2 there with the target set's embedding matrix); p = ∞ is the largest |cosine| to any
target sample (the nearest neighbour). NOMAD (arXiv 2410.20362) reads synthetic data by
relevance and novelty with NormSim; which p and which embedding it used is not public, so both
are settings here.

Note that NormSim_2 grows with the target set's size (a sum over it); it compares samples
against one fixed target set, not across sets of different sizes.
"""

from __future__ import annotations

import math

import numpy as np

from persyn.core.errors import InputError


def normsim(target: np.ndarray, x: np.ndarray, p: float = math.inf) -> np.ndarray:
    """NormSim_p of every row of ``x`` to the rows of ``target``.

    Args:
        target: ``[m, d]`` L2-normalised embeddings of the target set (m ≥ 1).
        x: ``[n, d]`` L2-normalised embeddings of the samples.
        p: the norm, ≥ 1, or ``math.inf``.

    Returns:
        ``[n]`` float64: (Σ_t |⟨t, x⟩|^p)^{1/p}, or max_t |⟨t, x⟩| for p = ∞.

    Raises:
        InputError: an empty target set, mismatched widths, or p < 1.
    """
    target, x = np.asarray(target, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if target.ndim != 2 or target.shape[0] == 0:
        raise InputError(f"NormSim: the target set is empty (shape {target.shape})")
    if x.ndim != 2 or x.shape[1] != target.shape[1]:
        raise InputError(f"NormSim: samples of shape {x.shape} against a target of width {target.shape[1]}")
    if not (p >= 1):
        raise InputError(f"NormSim: p must be >= 1 or inf, got {p}")
    sims = np.abs(x @ target.T)  # [n, m]
    if math.isinf(p):
        return sims.max(axis=1) if len(x) else np.zeros(0)
    return (sims**p).sum(axis=1) ** (1.0 / p)


def relevance(target: np.ndarray, x: np.ndarray, p: float = math.inf) -> np.ndarray:
    """Relevance of each sample to the target distribution: NormSim_p(target, x), ``[n]``."""
    return normsim(target, x, p)


def novelty(seed: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Novelty of each sample against the seed set: 1 − NormSim_∞(seed, x) = 1 − the largest
    |cosine| to a seed example, ``[n]`` in [0, 1]."""
    return 1.0 - normsim(seed, x, math.inf)


def percentile_band(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Boolean mask ``[n]`` of the values between their ``low``-th and ``high``-th percentiles
    (inclusive; NumPy's linear interpolation), e.g. 25–75 keeps the middle half (NOMAD's
    finding: data of median similarity to the target trained best).

    Raises:
        InputError: ``0 <= low < high <= 100`` does not hold.
    """
    if not (0 <= low < high <= 100):
        raise InputError(f"a percentile band needs 0 <= low < high <= 100, got {low}-{high}")
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    lo, hi = np.percentile(values, [low, high])
    return (values >= lo) & (values <= hi)
