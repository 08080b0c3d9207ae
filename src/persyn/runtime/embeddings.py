"""Prompt embeddings, computed once per encoder and stored: the embedding router kinds,
routing and calibration selection all read them from here."""

from __future__ import annotations

import numpy as np

from persyn.core.faults import crash_point, register
from persyn.core.hashing import stable_hash
from persyn.router.embeddings import PromptEncoder
from persyn.runtime.context import RunContext

EMBED_CHUNK = 256  # texts embedded and stored per transaction (a killed run keeps the rest)
EMBED_CHUNK_STORED = register("embed.chunk", "after a chunk of prompt embeddings is stored")


def text_hash(text: str) -> str:
    """The store key of one prompt text's embedding."""
    return stable_hash(["prompt-text", text])


def prompt_embeddings(ctx: RunContext, texts: list[str], encoder: PromptEncoder) -> np.ndarray:
    """Unit vectors of ``texts`` by ``encoder``, shape ``[len(texts), hidden]`` (float32):
    read from the store, the missing ones embedded and stored in chunks."""
    hashes = [text_hash(t) for t in texts]
    have = ctx.store.embeddings(encoder.key, hashes)
    todo = list(dict.fromkeys(h for h in hashes if h not in have))
    if todo:
        text_of = dict(zip(hashes, texts, strict=True))
        for i in range(0, len(todo), EMBED_CHUNK):
            part = todo[i : i + EMBED_CHUNK]
            vecs = encoder.embed([text_of[h] for h in part])
            rows = [(h, v.astype(np.float32).tobytes()) for h, v in zip(part, vecs, strict=True)]
            ctx.store.add_embeddings(encoder.key, rows)
            crash_point(EMBED_CHUNK_STORED)
            have.update(rows)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.frombuffer(have[h], dtype=np.float32) for h in hashes])
