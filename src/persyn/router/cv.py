"""Cross-validated router figures and ``router.kind: auto``.

Every calibration prompt is held out once (K folds, ``router.cv_folds``); each kind is trained
on the other folds (choosing its own hyperparameters there: nested) and picks a teacher for the
held-out prompts. The whole K-fold split is repeated ``router.cv_repeats`` times with other
fold assignments, and each prompt's regret is averaged over the repeats (repeated K-fold CV:
on a few dozen prompts one split's luck decides too much). Per kind this gives, over the
calibration prompts:

- top-1: the fraction of prompts where its pick has the Oracle's reward;
- regret: mean(Oracle reward − pick's reward) (Eq. 2 rewards);
- Oracle gain recovered = (regret_prior − regret_kind) / regret_prior: the share of what the
  Oracle gains over the best single teacher that the router recovers (None when ``prior``
  already has zero regret);

with paired bootstrap 95% intervals (the same resampled prompts for the kind and ``prior``).
``auto`` routes with the learned kind of lowest regret among those whose interval of
(regret − prior's regret) lies below 0, else with ``prior``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from persyn.core.settings import StrictModel
from persyn.router.base import RouterExample, pick_regrets, repeat_folds, reward_matrix, router_class

PRIOR = "prior"


@dataclass
class KindCV:
    """Out-of-fold results of one router kind.

    Attributes:
        picks: ``[n]`` teacher index picked for each held-out prompt.
        regrets: ``[n]`` the Oracle's reward minus the pick's.
        train_seconds: wall seconds of all its fold fits.
        route_seconds: wall seconds of scoring the held-out prompts.
        fallback_folds: folds where the kind could not be trained (no pair to learn from) and
            ``prior`` picked instead.
        top1: the share of (prompt, repeat) picks with the Oracle's reward; None: computed
            from ``regrets`` (one repeat).
        scores: ``[repeats, n, K]`` the out-of-fold scores (what a budget's expected rewards
            are calibrated on, ``budget.utility``); None when not kept.
        cascade: with ``verify``, the verified cascade's cross-validated outcome
            (``verified_cv``); else None.
    """

    picks: np.ndarray
    regrets: np.ndarray
    train_seconds: float
    route_seconds: float
    fallback_folds: int = 0
    top1: float | None = None
    scores: np.ndarray | None = None
    cascade: dict | None = None


def cv_record(idx: list[int], cv: dict[str, KindCV]) -> dict:
    """``cross_validate``'s result as JSON (arrays as lists with their dtypes), to store so
    that a run killed after its cross-validation does not run it again (``cv_from_record``
    reads it back exactly)."""

    def arr(a):
        return (
            None if a is None else {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}
        )

    return {
        "idx": list(idx),
        "kinds": {
            k: {
                "picks": arr(r.picks),
                "regrets": arr(r.regrets),
                "train_seconds": r.train_seconds,
                "route_seconds": r.route_seconds,
                "fallback_folds": r.fallback_folds,
                "top1": r.top1,
                "scores": arr(r.scores),
            }
            for k, r in cv.items()
        },
    }


def cv_from_record(record: dict) -> tuple[list[int], dict[str, KindCV]]:
    """The ``(idx, cv)`` that ``cv_record`` stored (the same arrays, bit for bit)."""

    def arr(a):
        return None if a is None else np.array(a["data"], dtype=a["dtype"]).reshape(a["shape"])

    cv = {
        k: KindCV(
            arr(r["picks"]),
            arr(r["regrets"]),
            r["train_seconds"],
            r["route_seconds"],
            r["fallback_folds"],
            r["top1"],
            arr(r["scores"]),
        )
        for k, r in record["kinds"].items()
    }
    return record["idx"], cv


class CVSettings(StrictModel):
    """``auto``'s settings: ``cv_folds``-fold cross-validation over the calibration prompts,
    repeated ``cv_repeats`` times with other folds, the kinds it chooses among
    (``auto_kinds``), and the paired bootstrap's resamples. The config that reaches the
    functions here is ``config.RouterConfig``, which is also every kind's settings (each
    kind's ``fit`` gets it)."""

    auto_kinds: list[str] = Field(default_factory=lambda: ["prior", "bt-linear", "knn"], min_length=1)
    cv_folds: Annotated[int, Field(ge=2)] = 5
    cv_repeats: Annotated[int, Field(ge=1)] = 5
    bootstrap: Annotated[int, Field(ge=100)] = 2000


def cv_steps(kinds: list[str], cfg: CVSettings, n: int) -> int:
    """Progress units of ``cross_validate``."""
    folds = max(1, min(cfg.cv_folds, n))
    n_train = n - n // folds if folds > 1 else n
    return sum(router_class(k).steps(cfg, n_train) * folds for k in kinds) * cfg.cv_repeats


def cross_validate(
    kinds: list[str],
    cfg: CVSettings,
    teachers: list[str],
    examples: list[RouterExample],
    seed: int,
    progress=None,
) -> tuple[list[int], dict[str, KindCV]]:
    """Out-of-fold picks of each kind over the examples with a valid response.

    Returns ``(indices of the examples counted, {kind: KindCV})``; no kind when fewer than 2
    examples are valid.
    """
    idx, rewards = reward_matrix(examples)
    n = len(idx)
    out: dict[str, KindCV] = {}
    if n < 2:
        return idx, out
    prior_cls = router_class(PRIOR)
    for kind in kinds:
        cls = router_class(kind)
        scores = np.zeros((cfg.cv_repeats, n, len(teachers)))
        picks = np.zeros((cfg.cv_repeats, n), dtype=np.int64)
        train_s = route_s = 0.0
        fallbacks = 0
        for rep in range(cfg.cv_repeats):
            folds = repeat_folds(n, cfg.cv_folds, seed, rep)
            for f in sorted(set(folds.tolist())):
                train = [idx[j] for j in range(n) if folds[j] != f]
                test = [j for j in range(n) if folds[j] == f]
                held = [examples[idx[j]] for j in test]
                start = time.perf_counter()
                try:
                    router = cls.fit(cfg, teachers, [examples[i] for i in train], seed, progress)
                except ValueError:  # e.g. no pair to learn from in this fold
                    router = prior_cls.fit(cfg, teachers, [examples[i] for i in train], seed)
                    fallbacks += 1
                train_s += time.perf_counter() - start
                start = time.perf_counter()
                emb = np.stack([e.embedding for e in held]) if router.uses_embeddings else None
                scores[rep, test] = np.asarray(router.scores([e.text for e in held], emb))
                picks[rep, test] = router.pick(scores[rep, test])  # the kind's own routing rule
                route_s += time.perf_counter() - start
        regrets = np.stack([pick_regrets(p, rewards) for p in picks])  # [repeats, n]
        top1 = float((regrets <= 1e-12).mean())
        out[kind] = KindCV(picks[0], regrets.mean(0), train_s, route_s, fallbacks, top1, scores)
    return idx, out


def cascade_outcome(
    rankings: np.ndarray, values: np.ndarray, passed: np.ndarray, max_tries: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a verified cascade gets on prompts whose every teacher answered.

    Args:
        rankings: ``[n, K]`` teacher indices, best first (``router.base.rank_teachers``).
        values: ``[n, K]`` the verified target of each response (0 when it fails).
        passed: ``[n, K]`` bool, whether each response passes the check.
        max_tries: teachers asked at most.

    Returns:
        ``(value, tries, accepted)``, each ``[n]``: the value of the first passing response in
        the top ``max_tries`` (0 when none passes), the teachers asked, and whether one passed.
    """
    n = len(rankings)
    value = np.zeros(n)
    tries = np.zeros(n, dtype=np.int64)
    accepted = np.zeros(n, dtype=bool)
    for i in range(n):
        for k, j in enumerate(rankings[i][:max_tries]):
            tries[i] = k + 1
            if passed[i, j]:
                value[i], accepted[i] = values[i, j], True
                break
    return value, tries, accepted


def verified_cv(
    cv: dict[str, KindCV], teachers: list[str], values: np.ndarray, passed: np.ndarray, max_tries: int
) -> None:
    """Replace each kind's cross-validated regrets by those of its verified cascade (in place),
    so that ``auto`` chooses the kind by what the cascade keeps: per prompt, the best verified
    target among all teachers minus the value of the response the cascade accepts (0 when it
    accepts none). Adds ``cascade``: the share of prompts with an accepted response and the
    mean teachers asked, over the repeats. ``values``/``passed``: ``[n, K]`` over the prompts
    the CV counted."""
    from persyn.router.base import rank_teachers

    best = values.max(1)
    for r in cv.values():
        if r.scores is None:
            continue
        regrets, kept, tries = [], [], []
        for rep in r.scores:
            value, t, ok = cascade_outcome(rank_teachers(rep, teachers), values, passed, max_tries)
            regrets.append(best - value)
            kept.append(ok.mean())
            tries.append(t.mean())
        reg = np.stack(regrets)
        r.regrets, r.top1 = reg.mean(0), float((reg <= 1e-12).mean())
        r.cascade = {"max_tries": max_tries, "accepted": float(np.mean(kept)), "tries": float(np.mean(tries))}


def interval(samples: np.ndarray) -> dict[str, float]:
    """The percentile 95% interval of bootstrap ``samples``."""
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return {"low": float(lo), "high": float(hi)}


def kind_figures(cv: dict[str, KindCV], n_boot: int, seed: int) -> dict[str, dict]:
    """Per kind: ``top1``, ``regret``, ``regret_vs_prior`` (mean and paired bootstrap 95%
    interval of its per-prompt regret minus ``prior``'s; None for ``prior``), ``gain`` (Oracle
    gain recovered with its interval; None when ``prior``'s regret is 0), seconds, and
    ``fallback_folds``. ``cv`` must hold ``prior``."""
    base = cv[PRIOR].regrets
    n = len(base)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    base_b = base[draws].mean(1)
    figures = {}
    for kind, r in cv.items():
        fig: dict = {
            "top1": r.top1 if r.top1 is not None else float((r.regrets <= 1e-12).mean()),
            "regret": float(r.regrets.mean()),
            "train_seconds": round(r.train_seconds, 3),
            "route_seconds": round(r.route_seconds, 4),
            "fallback_folds": r.fallback_folds,
            **({"cascade": r.cascade} if r.cascade is not None else {}),
            "regret_vs_prior": None,
            "gain": None,
        }
        if kind != PRIOR:
            diff = r.regrets - base
            fig["regret_vs_prior"] = {"mean": float(diff.mean()), **interval(diff[draws].mean(1))}
        if base.mean() > 1e-12:
            kept = base_b > 1e-12
            ratio = (base_b[kept] - r.regrets[draws[kept]].mean(1)) / base_b[kept]
            fig["gain"] = {"mean": float((base.mean() - r.regrets.mean()) / base.mean()), **interval(ratio)}
        figures[kind] = fig
    return figures


def choose_kind(figures: dict[str, dict]) -> tuple[str, str]:
    """``(kind, reason)`` for ``auto``: the learned kind with the lowest regret among those whose
    95% interval of (regret − prior's regret) lies below 0; else ``prior``."""
    better = [
        (f["regret"], k)
        for k, f in figures.items()
        if k != PRIOR and f["regret_vs_prior"] is not None and f["regret_vs_prior"]["high"] < 0
    ]
    if not better:
        return PRIOR, "no learned kind beats prior: its 95% interval of regret − prior's regret reaches 0"
    regret, kind = min(better)
    d = figures[kind]["regret_vs_prior"]
    return kind, (
        f"{kind} beats prior: regret {regret:.3f} vs {figures[PRIOR]['regret']:.3f}, "
        f"difference {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
    )
