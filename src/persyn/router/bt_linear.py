"""Router kind ``bt-linear``: the Bradley–Terry router of PerSyn Eq. 3 with the encoder frozen,

    π(x) = W·e(x) + b,   P(B ≻ A | x) = σ(π_B(x) − π_A(x)),

e(x) the prompt's unit sentence embedding, trained by full-batch L-BFGS on the binary
cross-entropy of the pairwise labels plus λ‖W‖² (RouteLLM's matrix-factorisation router is
the same Bradley–Terry logit on frozen embeddings). λ is chosen among ``router.l2`` by an inner
K-fold regret on the training prompts, so a cross-validation around ``fit`` is nested. With
W = 0 it is the prior (the bias orders the teachers), which a large λ approaches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from persyn.router.base import (
    ArrayRouter,
    EncoderSettings,
    RouterExample,
    fold_of,
    load_array_router,
    pick_regrets,
    reward_matrix,
    save_array_router,
)
from persyn.router.embeddings import PromptEncoder

INNER_FOLDS = 3


class BTLinearSettings(EncoderSettings):
    """``bt-linear``'s settings: the frozen encoder's, and the L2 λ candidates (chosen by an
    inner K-fold regret)."""

    l2: list[Annotated[float, Field(gt=0.0)]] = Field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0], min_length=1
    )


def fit_head(
    x: np.ndarray, pairs: list[tuple[int, int, int, float]], n_teachers: int, l2: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(W [hidden, n_teachers], b [n_teachers])`` minimising BCE(pairs) + l2·‖W‖².

    Args:
        x: ``[m, hidden]`` embeddings.
        pairs: ``(row, a, b, C)``, C = P(b beats a) for prompt ``row`` (see ``router.train.bt_loss``).
    """
    with _one_thread():
        return _fit_head(x, pairs, n_teachers, l2, seed)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: a head this small spends more in thread hand-offs than in
    arithmetic (measured ~10x slower on 2 busy cores with 2 threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_head(x, pairs, n_teachers: int, l2: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import torch  # here, not at import: config validation imports every router kind's module

    from persyn.router.train import bt_loss, pair_tensors

    torch.manual_seed(seed)
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    w = torch.zeros(xt.shape[1], n_teachers, requires_grad=True)
    b = torch.zeros(n_teachers, requires_grad=True)
    if not pairs:
        return w.detach().numpy(), b.detach().numpy()
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
    batch = pair_tensors(pairs)  # once, not at every one of L-BFGS's evaluations

    def closure():
        opt.zero_grad()
        loss = bt_loss(xt @ w + b, batch) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().copy(), b.detach().numpy().copy()


def example_pairs(examples: list[RouterExample], rows: list[int]) -> list[tuple[int, int, int, float]]:
    """The pairs of ``examples[rows[j]]`` as ``(j, a, b, C)``."""
    return [(j, a, b, c) for j, i in enumerate(rows) for a, b, c in examples[i].pairs]


def choose_l2(
    examples: list[RouterExample], x: np.ndarray, grid: list[float], n_teachers: int, seed: int
) -> tuple[float, dict[float, float]]:
    """The λ of ``grid`` with the lowest inner ``INNER_FOLDS``-fold mean regret on the valid
    ``examples`` (embeddings ``x``); a tie goes to the larger λ. Returns ``(λ, {λ: regret})``."""
    idx, rewards = reward_matrix(examples)
    if len(idx) < INNER_FOLDS or len(grid) == 1:
        return max(grid), {}
    folds = fold_of(len(idx), INNER_FOLDS, seed)
    figures = {}
    for l2 in grid:
        regret = np.zeros(len(idx))
        for f in range(INNER_FOLDS):
            train = [j for j in range(len(idx)) if folds[j] != f]
            test = [j for j in range(len(idx)) if folds[j] == f]
            rows = [idx[j] for j in train]
            w, b = fit_head(x[rows], example_pairs(examples, rows), n_teachers, l2, seed)
            picks = (x[[idx[j] for j in test]] @ w + b).argmax(1)
            regret[test] = pick_regrets(picks, rewards[test])
        figures[l2] = float(regret.mean())
    best = min(figures.values())
    return max(v for v, r in figures.items() if r <= best + 1e-12), figures


class BTLinearRouter(ArrayRouter):
    """A linear Bradley–Terry head on frozen prompt embeddings.

    Attributes:
        teachers: teacher names (score order).
        w: ``[hidden, n_teachers]``; b: ``[n_teachers]``.
        l2: the λ it was trained with.
        encoder: the ``PromptEncoder.meta()`` of the embeddings.
    """

    Settings = BTLinearSettings
    kind = "bt-linear"
    uses_embeddings = True

    def __init__(self, teachers: list[str], w: np.ndarray, b: np.ndarray, l2: float, encoder: dict):
        self.teachers, self.w, self.b, self.l2, self.encoder = list(teachers), w, b, float(l2), encoder

    @classmethod
    def fit(
        cls,
        cfg: BTLinearSettings,
        teachers: list[str],
        examples: list[RouterExample],
        seed: int,
        progress=None,
    ) -> BTLinearRouter:
        """Choose λ among ``cfg.l2`` (inner CV), then fit on every example.

        Raises:
            ValueError: an example has no embedding.
        """
        x = cls.stacked_embeddings(examples)
        l2, _ = choose_l2(examples, x, list(cfg.l2), len(teachers), seed)
        rows = list(range(len(examples)))
        w, b = fit_head(x, example_pairs(examples, rows), len(teachers), l2, seed)
        if progress is not None:
            progress.update(1)
        return cls(teachers, w, b, l2, PromptEncoder.of(cfg).meta())

    def scores(self, texts: list[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """π(x) = W·e(x) + b, shape ``[len(texts), n_teachers]``.

        Raises:
            ValueError: no embeddings given.
        """
        return self.query_embeddings(embeddings) @ self.w + self.b

    def save(self, directory: str | Path) -> None:
        meta = {"kind": self.kind, "teachers": self.teachers, "l2": self.l2, "embedding": self.encoder}
        save_array_router(directory, meta, {"w": self.w, "b": self.b})

    @classmethod
    def load(cls, directory: str | Path) -> BTLinearRouter:
        meta, a = load_array_router(directory)
        return cls(meta["teachers"], a["w"], a["b"], meta["l2"], meta["embedding"])
