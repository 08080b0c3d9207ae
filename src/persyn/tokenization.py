"""The one rule that turns a prompt's text into a model's token ids (issue #17).

Every path that feeds a causal LM a prompt (teacher generation with transformers or llama.cpp,
learnability scoring, SFT, evaluation) encodes it with ``encode_prompt``; the BOS policy comes
from the model's own metadata, never from a per-path choice:

* an HF tokenizer (``wants_bos``): what the tokenizer itself does when asked for its special
  tokens, i.e. whether ``tokenizer(text, add_special_tokens=True)`` starts with ``bos_token_id``.
  This is its ``tokenizer.json`` post-processor (or, for a slow tokenizer, ``add_bos_token``).
  The ``add_bos_token`` attribute alone is not trusted: transformers 5 neither saves nor
  reloads it for fast tokenizers (a reloaded Gemma tokenizer reports ``False`` and still adds
  ``<bos>``).
* a GGUF file (``persyn.models.gguf.gguf_wants_bos``): its ``tokenizer.ggml.add_bos_token``
  field, the flag llama.cpp itself obeys. ``persyn.models.gguf`` converts packaged GGUFs so that
  the converted tokenizer agrees.

The rendered text (a chat template, a prompt template) is tokenized without special tokens, and
BOS is put in front only when the model wants it and the text does not already start with it (a
chat template that writes ``<bos>`` itself does not get a second one). Response text is never
given a BOS: ``encode_text``.

``persyn.models.bos.bos_policy_key`` (``RULE_VERSION`` and a model's policy) is the short string that
enters the cache keys of teacher generations and learnability scores, so results made under
another rule are stale. This module imports nothing else of persyn's.
"""

from __future__ import annotations

#: Bumped when the rule changes; part of every ``bos_policy_key``.
RULE_VERSION = "tokenization/v2"

_PROBE = "a"


def wants_bos(tokenizer) -> bool:
    """Whether the model of this HF tokenizer expects ``bos_token_id`` at the start of a sequence.

    True when the tokenizer has a BOS token and, asked for its special tokens, puts it first
    (the probe text ``"a"`` encoded with ``add_special_tokens=True``).
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer(_PROBE, add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added (a response, a continuation)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def apply_bos(ids: list[int], bos_id: int | None, bos: bool) -> list[int]:
    """The rule itself: ``ids`` with ``bos_id`` put in front when ``bos`` (the model wants a BOS)
    and ``ids`` does not already start with it; otherwise ``ids`` unchanged. Shared by the HF
    tokenizer paths (``encode_prompt``) and the llama.cpp engine (llama.cpp's own tokenizer)."""
    ids = list(ids)
    if bos and bos_id is not None and bos_id >= 0 and (not ids or ids[0] != bos_id):
        ids = [bos_id] + ids
    return ids


def encode_prompt(tokenizer, text: str, bos: bool | None = None) -> list[int]:
    """Token ids of a rendered prompt as the model is fed it: ``text`` tokenized without special
    tokens, with ``bos_token_id`` in front when the model wants a BOS (``wants_bos``, or
    ``bos`` when given) and the ids do not already start with it (e.g. a chat template that
    writes ``<bos>``). Special-token strings inside ``text`` (``<|im_start|>``, ``<bos>``) are
    parsed as such, as the tokenizer does by default.
    """
    if bos is None:
        bos = wants_bos(tokenizer)
    return apply_bos(encode_text(tokenizer, text), tokenizer.bos_token_id, bos)


def count_bos(ids: list[int], bos_id: int | None) -> int:
    """How many leading ``bos_id`` tokens ``ids`` starts with (0 when ``bos_id`` is None)."""
    n = 0
    while bos_id is not None and n < len(ids) and ids[n] == bos_id:
        n += 1
    return n


def student_tokens(
    tokenizer, prompt: str, response: str, template: str, messages: list[dict[str, str]] | None = None
) -> tuple[list[int], list[int]]:
    """Token ids (prompt part, response part) of one example as the student sees it in SFT.

    Chat models: the full conversation is rendered by the chat template; the prompt part is the
    rendering of the prompt's turns (``messages``, a chat prompt's conversation with its system
    message and earlier turns, else one user turn holding ``prompt``) with the generation
    prompt, and the response part is the rest
    with trailing whitespace after the end-of-turn token removed. Base models: ``template``
    filled with the prompt, then the response followed by EOS.

    The prompt part is encoded by ``encode_prompt`` (the rule the teacher
    engines use: BOS once when the model wants it, never twice); the response part gets no
    special tokens beyond those its text spells.
    """
    if getattr(tokenizer, "chat_template", None):
        user = list(messages) if messages is not None else [{"role": "user", "content": prompt}]
        head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(
            user + [{"role": "assistant", "content": response}], tokenize=False
        )
        if full.startswith(head):
            tail = full[len(head) :].rstrip()
        else:  # a template that rewrites earlier turns: fall back to response + end of turn
            tail = response + (tokenizer.eos_token or "")
    else:
        head = template.replace("{prompt}", prompt)
        tail = response + (tokenizer.eos_token or "")
    return encode_prompt(tokenizer, head), encode_text(tokenizer, tail)
