"""The router network: a text encoder and a linear head with one coefficient per teacher.

    P(B ≻ A | x) = σ(π_B(x) − π_A(x))          (PerSyn Eq. 3, after P2L)

π(x) ∈ R^N are the Bradley–Terry coefficients of the N teachers for prompt x; the routed teacher
is argmax_n π_n(x).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from persyn.core.errors import PersynError
from persyn.models.loading import from_pretrained_kwargs, load_tokenizer, not_local_error, resolve_model
from persyn.router.base import write_router_meta
from persyn.router.embeddings import pool


class BTRouter(nn.Module):
    """Encoder + linear head → coefficients ``[batch, n_teachers]``.

    Args:
        encoder: an ``AutoModel`` (BERT-like or decoder) returning ``last_hidden_state``.
        tokenizer: its tokenizer.
        teachers: the teacher names, in head order.
        pooling: ``mean`` over non-padding tokens, or ``cls`` (the first token).
        max_length: prompts are truncated to this many tokens.
    """

    def __init__(self, encoder, tokenizer, teachers: list[str], pooling: str = "mean", max_length: int = 256):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.teachers = list(teachers)
        self.pooling = pooling
        self.max_length = max_length
        hidden = encoder.config.hidden_size
        self.head = nn.Linear(hidden, len(teachers))
        # Zero init: every teacher starts equally likely, so the first steps learn the prior.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_encoder(
        cls, ref: str, teachers: list[str], pooling: str = "mean", max_length: int = 256
    ) -> BTRouter:
        """A fresh router on the encoder ``ref`` (alias, HF id or local path)."""
        from transformers import AutoModel

        path = resolve_model(ref)
        tokenizer = load_tokenizer(ref, padding_side="right")
        try:
            encoder = AutoModel.from_pretrained(path, **from_pretrained_kwargs(path))
        except OSError as exc:
            raise not_local_error(ref, exc) from None
        return cls(encoder, tokenizer, teachers, pooling, max_length)

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Coefficients π(x), shape ``[batch, n_teachers]``."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(pool(hidden, attention_mask, self.pooling))

    @torch.inference_mode()
    def coefficients(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """π(x) for each text, shape ``[len(texts), n_teachers]`` (float32, CPU)."""
        self.eval()
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.encode(texts[i : i + batch_size])
            out.append(self(enc["input_ids"], enc["attention_mask"]).float())
        return torch.cat(out) if out else torch.zeros((0, len(self.teachers)))

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        """Write ``encoder/`` (model + tokenizer), ``head.pt`` and ``router.json`` (``extra``,
        e.g. the router kind, first, then teachers, pooling, max_length)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(d / "encoder")
        self.tokenizer.save_pretrained(d / "encoder")
        torch.save(self.head.state_dict(), d / "head.pt")
        meta = {"teachers": self.teachers, "pooling": self.pooling, "max_length": self.max_length}
        write_router_meta(d, {**(extra or {}), **meta})

    @classmethod
    def load(cls, directory: str | Path) -> BTRouter:
        """Load a router written by ``save``.

        Raises:
            PersynError: the directory is not a saved router.
        """
        from transformers import AutoModel, AutoTokenizer

        d = Path(directory)
        if not (d / "router.json").exists():
            raise PersynError(
                f"{d}: not a persyn router (no router.json); train one with `persyn train-router`"
            )
        meta = json.loads((d / "router.json").read_text())
        encoder = AutoModel.from_pretrained(d / "encoder")
        tokenizer = AutoTokenizer.from_pretrained(d / "encoder")
        router = cls(encoder, tokenizer, meta["teachers"], meta["pooling"], meta["max_length"])
        router.head.load_state_dict(torch.load(d / "head.pt", weights_only=True))
        return router.eval()
