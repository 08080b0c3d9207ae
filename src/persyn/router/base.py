"""The router contract and its registry (``router.kind``, ``persyn.core.plugins.ROUTERS``).

A router kind gives per-teacher scores π(x) ∈ R^N for each prompt and is routed by argmax
(PerSyn Eq. 3 for the Bradley–Terry kinds). Every kind is a class with:

- ``kind`` (its registry name) and ``uses_embeddings`` (whether it reads the frozen prompt
  embeddings of ``router.embeddings``);
- ``fit(cfg, teachers, examples, seed, progress) -> Router`` (classmethod): train on calibration
  ``RouterExample``s, choosing its own hyperparameters on them (so a cross-validation around
  ``fit`` is nested);
- ``steps(cfg, n_examples) -> int`` (classmethod): progress units of one ``fit``;
- ``scores(texts, embeddings) -> ndarray [len(texts), N]`` and ``teachers`` (score order);
- ``save(directory)``, and ``load(directory)`` / ``fingerprint(directory)`` (classmethods).

Every kind derives from ``Router``, which declares these and gives the one concrete routing
rule: ``pick(scores)`` (argmax per row; a kind overrides it only where its scores tie by
construction, as ``prior`` does) and ``route(texts, embeddings)``. Routing, cross-validation
and active calibration all route through ``pick``.

``save`` writes ``router.json`` with at least ``{"kind", "teachers"}``; ``load_router`` reads a
saved router of any kind back through the registry.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from persyn.core.errors import PersynError
from persyn.core.hashing import stable_hash
from persyn.core.io import write_atomic
from persyn.core.plugins import ROUTERS, load
from persyn.core.ranking import filled_rewards
from persyn.core.settings import StrictModel


@dataclass
class RouterExample:
    """One calibration prompt.

    Attributes:
        text: the prompt.
        pairs: ``(a, b, C)`` over teacher indices, C = P(b beats a) as given by the combined
            reward (see ``scoring.combine.pair_labels``).
        rewards: the combined reward (Eq. 2) of each teacher's response, in teacher order; None
            for a failed one.
        embedding: the prompt's unit vector (``[hidden]``), when a kind that uses embeddings is
            trained.
    """

    text: str
    pairs: list[tuple[int, int, float]]
    rewards: list[float | None] = field(default_factory=list)
    embedding: np.ndarray | None = None


def reward_matrix(examples: list[RouterExample]) -> tuple[list[int], np.ndarray]:
    """``(indices, R)``: the examples with a valid response and their filled rewards
    ``R [len(indices), n_teachers]`` (float64)."""
    rows = [(i, filled_rewards(e.rewards)) for i, e in enumerate(examples)]
    kept = [(i, r) for i, r in rows if r is not None]
    if not kept:
        return [], np.zeros((0, 0))
    return [i for i, _ in kept], np.array([r for _, r in kept], dtype=np.float64)


def write_router_meta(directory: str | Path, meta: dict) -> None:
    """Write a saved router's ``router.json`` (``meta``: at least ``kind`` and ``teachers``),
    atomically, last (so a directory with one holds a whole router): the one writer of it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    write_atomic(d / "router.json", json.dumps(meta, indent=2) + "\n")


def save_array_router(directory: str | Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a router that is arrays and settings: ``weights.npz``, then ``router.json``
    (``meta``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / "weights.npz", **arrays)
    write_router_meta(d, meta)


def load_array_router(directory: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(router.json, arrays)`` of a router written by ``save_array_router``.

    Raises:
        PersynError: no saved router there.
    """
    meta = router_meta(directory)
    with np.load(Path(directory) / "weights.npz") as z:
        return meta, {k: z[k] for k in z.files}


def array_fingerprint(directory: str | Path) -> str:
    """A hash of a saved array router (its settings and weights)."""
    d = Path(directory)
    return stable_hash([(d / "router.json").read_text(), (d / "weights.npz").read_bytes().hex()])


class NoSettings(StrictModel):
    """A router kind with no settings of its own (``prior``)."""


class EncoderSettings(StrictModel):
    """The frozen prompt encoder a kind reads (``router.embeddings.PromptEncoder``): a model
    slot (any HF id, local path or packaged alias), its pooling and its token limit."""

    encoder: str = "minilm-l6"
    pooling: Literal["mean", "cls"] = "mean"
    max_length: Annotated[int, Field(ge=8)] = 256


class Router(ABC):
    """A trained router kind (the contract in the module docstring).

    Attributes:
        Settings: the kind's own settings model (class attribute): ``config.RouterConfig``
            composes every kind's, so ``fit`` and ``steps`` get a config that is one.
        kind: the registry name (class attribute).
        uses_embeddings: whether ``scores`` reads the prompts' frozen embeddings.
        scores_are_rewards: whether ``scores`` are expected rewards already (the budget's
            ``RewardCalibration`` is then the identity), not logits to calibrate.
        teachers: teacher names in score order.
    """

    Settings: ClassVar[type[StrictModel]] = NoSettings
    kind: str
    uses_embeddings: bool = False
    scores_are_rewards: bool = False
    teachers: list[str]

    @classmethod
    @abstractmethod
    def fit(
        cls, cfg: Any, teachers: list[str], examples: list[RouterExample], seed: int, progress=None
    ) -> Router:
        """Train on calibration ``examples``.

        Raises:
            ValueError: nothing to learn from (e.g. no valid response, or no pair).
        """

    @classmethod
    @abstractmethod
    def steps(cls, cfg: Any, n_examples: int) -> int:
        """Progress units of one ``fit`` on ``n_examples``."""

    @abstractmethod
    def scores(self, texts: list[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """Per-teacher scores π(x), shape ``[len(texts), len(teachers)]``."""

    @abstractmethod
    def save(self, directory: str | Path) -> None:
        """Write the router to ``directory`` (``router.json`` with ``kind`` and ``teachers``)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> Router:
        """Read a router ``save`` wrote."""

    @classmethod
    @abstractmethod
    def fingerprint(cls, directory: str | Path) -> str:
        """A hash of a saved router (what routing decisions are keyed by)."""

    def rank(self, scores: np.ndarray) -> np.ndarray:
        """Each row's teachers best first (``rank_teachers``: a tie goes to the alphabetically
        first name, whatever the config's order), indices into ``teachers``, shape
        ``[n, len(teachers)]``."""
        return rank_teachers(scores, self.teachers)

    def pick(self, scores: np.ndarray) -> np.ndarray:
        """The routed teacher of each row of ``scores`` (``[n, len(teachers)]`` from
        ``scores``), as indices into ``teachers``, shape ``[n]``: argmax_n π_n(x) (PerSyn Eq. 3),
        the first of ``rank``."""
        return self.rank(scores)[:, 0] if len(scores) else np.zeros(0, dtype=np.int64)

    def route(self, texts: list[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """``pick(scores(texts, embeddings))``: teacher indices, shape ``[len(texts)]``."""
        return self.pick(self.scores(texts, embeddings))


class ArrayRouter(Router):
    """What the kinds saved as arrays (``save_array_router``) share: one progress step per
    ``fit`` and the fingerprint of their saved files. Subclasses set ``kind``."""

    kind: str

    @classmethod
    def steps(cls, cfg: Any, n_examples: int) -> int:
        return 1

    @classmethod
    def fingerprint(cls, directory: str | Path) -> str:
        return array_fingerprint(directory)

    @classmethod
    def stacked_embeddings(cls, examples: list[RouterExample]) -> np.ndarray:
        """The examples' embeddings as ``[len(examples), hidden]`` float32.

        Raises:
            ValueError: an example has no embedding.
        """
        if any(e.embedding is None for e in examples):
            raise ValueError(f"the {cls.kind} router needs the prompts' embeddings")
        return np.stack([e.embedding for e in examples]).astype(np.float32)

    @classmethod
    def query_embeddings(cls, embeddings: np.ndarray | None) -> np.ndarray:
        """``embeddings`` to score, as float32.

        Raises:
            ValueError: none given.
        """
        if embeddings is None:
            raise ValueError(f"the {cls.kind} router scores prompt embeddings; none were given")
        return np.asarray(embeddings, dtype=np.float32)


def rank_teachers(scores: np.ndarray, teachers: list[str]) -> np.ndarray:
    """The one ranking rule of every place that routes (argmax, the verified cascade, the
    budget's order of escalation, cross-validation, active calibration): per row of ``scores``
    ``[n, K]``, the teachers by score, highest first; equal scores by name, alphabetically first
    first. The order in which a config lists its teachers never decides.

    Returns:
        ``[n, K]`` int64 indices into ``teachers``.

    Raises:
        ValueError: ``scores`` has not ``len(teachers)`` columns.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(teachers):
        raise ValueError(f"scores of shape {s.shape} for {len(teachers)} teachers")
    if len(s) == 0:
        return np.zeros((0, len(teachers)), dtype=np.int64)
    by_name = np.argsort(np.argsort(np.array(teachers, dtype=object)))  # alphabetical position
    names = np.broadcast_to(by_name, s.shape)
    # lexsort: the last key is the primary one
    return (
        np.stack([np.lexsort((names[i], -s[i])) for i in range(len(s))])
        .astype(np.int64)
        .reshape(len(s), len(teachers))
    )


def router_class(kind: str) -> Any:
    """The class of router kind ``kind``.

    Raises:
        KeyError: an unknown kind (config validation names it before this).
    """
    return load(ROUTERS, kind, "router kind")


def router_meta(directory: str | Path) -> dict:
    """``router.json`` of a saved router (a router saved before kinds existed is a
    ``bt-encoder``).

    Raises:
        PersynError: ``directory`` holds no saved router.
    """
    path = Path(directory) / "router.json"
    if not path.exists():
        raise PersynError(f"{Path(directory)}: no trained router: run `persyn train-router` first")
    meta = json.loads(path.read_text())
    meta.setdefault("kind", "bt-encoder")
    return meta


def load_router(directory: str | Path) -> Any:
    """The saved router in ``directory``, of whatever kind it is.

    Raises:
        PersynError: no saved router there.
    """
    return router_class(router_meta(directory)["kind"]).load(directory)


def router_figures(picks: list[str], rewards: list[dict[str, float | None]]) -> dict[str, float]:
    """Top-1 agreement with the Oracle and regret of a list of picks.

    Args:
        picks: the chosen teacher per prompt.
        rewards: per prompt, ``{teacher: combined reward or None (failed)}``.

    Returns:
        ``{"top1": fraction of prompts where the pick's reward equals the Oracle's (ties count
        as agreement), "regret": mean(Oracle reward − pick's reward), "n": prompts counted}``.
        A pick whose response failed counts with the prompt's lowest valid reward; prompts with
        no valid response are not counted.
    """
    hits, regret, n = 0, 0.0, 0
    for pick, r in zip(picks, rewards, strict=True):
        names = list(r)
        row = filled_rewards([r[n] for n in names])
        if row is None:
            continue
        best = max(row)
        got = row[names.index(pick)] if pick in r else min(row)
        hits += int(got >= best - 1e-12)
        regret += best - got
        n += 1
    return {
        "top1": hits / n if n else float("nan"),
        "regret": regret / n if n else float("nan"),
        "n": n,
    }


def pick_regrets(picks: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Per-prompt regret against the Oracle, ``max_n R[i, n] − R[i, pick_i]``.

    Args:
        picks: ``[m]`` teacher indices.
        rewards: ``[m, n_teachers]`` filled rewards (``reward_matrix``).
    """
    return rewards.max(1) - rewards[np.arange(len(picks)), picks]


def repeat_folds(n: int, folds: int, seed: int, repeat: int) -> np.ndarray:
    """The folds of repeat ``repeat`` of a repeated K-fold cross-validation seeded by ``seed``:
    ``fold_of(n, folds, seed + 7919 · repeat)`` (repeat 0: the plain K-fold split). The one
    definition the router's cross-validation and the budget's cross-fitted rewards share, so
    that their folds agree."""
    return fold_of(n, folds, seed + 7919 * repeat)


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds−1) of each of ``n`` items: a seeded shuffle dealt round-robin, so fold
    sizes differ by at most one and each item is held out exactly once."""
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) % max(1, min(folds, n))
    return out
