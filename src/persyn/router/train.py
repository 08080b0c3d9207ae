"""Training the Bradley–Terry router on pairwise labels, and measuring it against the Oracle."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch.nn import functional as F  # noqa: N812

from persyn.router.base import RouterExample
from persyn.router.model import BTRouter


def pair_tensors(
    pairs: list[tuple[int, int, int, float]], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(rows, a, b, C)`` of ``pairs`` as tensors, built once for a loss evaluated many times."""
    rows, a, b, c = zip(*pairs, strict=True) if pairs else ((), (), (), ())
    return torch.tensor(rows), torch.tensor(a), torch.tensor(b), torch.tensor(c, dtype=dtype)


def bt_loss(
    coef: torch.Tensor,
    pairs: list[tuple[int, int, int, float]] | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """Binary cross-entropy of σ(π_b − π_a) against C, averaged over pairs (PerSyn Eq. 3).

    Args:
        coef: ``[batch, n_teachers]`` coefficients.
        pairs: ``(row, a, b, C)`` with ``row`` indexing ``coef``, or their ``pair_tensors``.
    """
    rows, a, b, target = pairs if isinstance(pairs, tuple) else pair_tensors(pairs, coef.dtype)
    logits = coef[rows, b] - coef[rows, a]
    return F.binary_cross_entropy_with_logits(logits, target.to(coef.dtype))


def fit_bt_router(
    cfg: Any, teachers: list[str], examples: list[RouterExample], seed: int, progress=None
) -> BTRouter:
    """Train a fresh router on ``examples`` (AdamW; encoder and head with their own learning
    rates; the encoder frozen when ``cfg.freeze_encoder``). ``cfg``: ``bt-encoder``'s settings
    (``router.bt_encoder.BTEncoderSettings``; not imported here, which that module imports).

    Returns the trained router in eval mode. Examples without pairs are skipped.

    Raises:
        ValueError: no example has a pair to learn from.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    router = BTRouter.from_encoder(cfg.encoder, teachers, cfg.pooling, cfg.max_length)
    data = [e for e in examples if e.pairs]
    if not data:
        raise ValueError("no calibration prompt has a pair of teachers with different rewards")
    groups = [{"params": router.head.parameters(), "lr": cfg.head_lr}]
    if cfg.freeze_encoder or cfg.encoder_lr == 0:
        router.encoder.requires_grad_(False)
    else:
        groups.append({"params": router.encoder.parameters(), "lr": cfg.encoder_lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    router.train()
    if cfg.freeze_encoder:
        router.encoder.eval()
    for _ in range(cfg.epochs):
        order = list(range(len(data)))
        rng.shuffle(order)
        for start in range(0, len(order), cfg.batch_size):
            batch = [data[i] for i in order[start : start + cfg.batch_size]]
            enc = router.encode([e.text for e in batch])
            coef = router(enc["input_ids"], enc["attention_mask"])
            pairs = [(r, a, b, c) for r, e in enumerate(batch) for a, b, c in e.pairs]
            loss = bt_loss(coef, pairs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{loss.item():.3f}")
    return router.eval()


def steps_per_training(cfg: Any, n_examples: int) -> int:
    """Optimizer steps ``fit_bt_router`` takes (for progress bars)."""
    return cfg.epochs * max(1, -(-n_examples // cfg.batch_size))
