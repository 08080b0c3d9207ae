"""Frozen prompt embeddings: one sentence encoder turns prompts into unit vectors, shared by
the embedding router kinds (``bt-linear``, ``knn``), routing and calibration selection.

The vectors are stored in the run's store by ``(encoder key, prompt-text hash)``
(``runtime.embeddings``), so each prompt is embedded once per encoder, whatever uses it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from persyn.core.hashing import stable_hash
from persyn.models.fingerprint import model_fingerprint
from persyn.models.loading import from_pretrained_kwargs, load_tokenizer, not_local_error, resolve_model

if TYPE_CHECKING:  # torch loads only when a prompt is embedded (``import persyn`` stays light)
    import torch


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Sentence vectors ``[batch, hidden]`` from token states ``[batch, tokens, hidden]``:
    ``mean`` over the non-padding tokens, or ``cls`` (the first token)."""
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    return hidden[:, 0]


@functools.cache
def _load_encoder(path: str):
    from transformers import AutoModel

    return AutoModel.from_pretrained(path, **from_pretrained_kwargs(path)).eval()


class PromptEncoder:
    """A frozen sentence encoder: texts → L2-normalised float32 vectors ``[n, hidden]`` (so a
    dot product is the cosine similarity).

    Args:
        ref: the encoder (alias, HF id or local path).
        pooling: ``mean`` or ``cls`` (see ``pool``).
        max_length: texts are truncated to this many tokens.
        batch_size: texts per forward pass.

    Raises:
        MissingAssetError: the encoder is not installed or not in the local HF cache.
    """

    def __init__(self, ref: str, pooling: str = "mean", max_length: int = 256, batch_size: int = 64):
        self.ref, self.pooling, self.max_length, self.batch_size = ref, pooling, max_length, batch_size

    @classmethod
    def of(cls, cfg) -> PromptEncoder:
        """The encoder of a ``RouterConfig`` (``encoder``, ``pooling``, ``max_length``)."""
        return cls(cfg.encoder, cfg.pooling, cfg.max_length)

    @functools.cached_property
    def key(self) -> str:
        """Identifies the vectors this encoder makes (weights, pooling, truncation)."""
        return stable_hash(["embed/v1", model_fingerprint(self.ref), self.pooling, self.max_length])

    def meta(self) -> dict:
        """What a saved router records to rebuild this encoder for routing."""
        return {"encoder": self.ref, "pooling": self.pooling, "max_length": self.max_length}

    @classmethod
    def from_meta(cls, meta: dict) -> PromptEncoder:
        """The encoder a saved router recorded with ``meta()``."""
        return cls(meta["encoder"], meta["pooling"], meta["max_length"])

    @functools.cached_property
    def _model(self):
        path = resolve_model(self.ref)
        tokenizer = load_tokenizer(self.ref, padding_side="right")
        try:
            model = _load_encoder(path)
        except OSError as exc:
            raise not_local_error(self.ref, exc) from None
        return tokenizer, model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts``, shape ``[len(texts), hidden]`` (float32)."""
        import torch

        with torch.inference_mode():
            return self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        tokenizer, model = self._model
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = tokenizer(
                texts[i : i + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            vec = pool(hidden, enc["attention_mask"], self.pooling).float()
            out.append(torch.nn.functional.normalize(vec, dim=-1).numpy())
        dim = model.config.hidden_size
        return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)
