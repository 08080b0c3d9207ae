"""A model's BOS policy, from its own metadata (the rule itself: ``persyn.tokenization``), and
the short string it adds to the cache keys of teacher generations and learnability scores."""

from __future__ import annotations

import functools

from persyn.models.aliases import gguf_of
from persyn.models.gguf import gguf_wants_bos
from persyn.models.loading import load_tokenizer
from persyn.tokenization import RULE_VERSION, wants_bos


@functools.cache
def model_wants_bos(ref: str) -> bool:
    """Whether the model named by ``ref`` (alias, local path or HF id) wants a BOS token.

    A packaged GGUF alias or a ``.gguf`` file: its ``tokenizer.ggml.add_bos_token`` (when the
    field is absent, what the converted tokenizer does). Anything else: ``wants_bos`` of its HF
    tokenizer (loaded offline, once per process).

    Raises:
        MissingAssetError: the model is not installed / not in the local HF cache.
    """
    gguf = gguf_of(ref)
    if gguf is not None:
        value = gguf_wants_bos(str(gguf))
        if value is not None:
            return value
    return wants_bos(load_tokenizer(ref))


def bos_policy_key(ref: str) -> str:
    """The tokenization rule and the BOS policy of ``ref`` as a short string for cache keys,
    e.g. ``"tokenization/v2:bos"`` or ``"tokenization/v2:no-bos"``."""
    return f"{RULE_VERSION}:{'bos' if model_wants_bos(ref) else 'no-bos'}"
