"""Learnability r_l (PerSyn Eq. 1): the student's mean per-token log-likelihood of a response.

    r_l(y, θ) = (1/|y|) Σ_t log p_θ(y_t | y_<t, x)

The prompt x is rendered with the student's chat template (user turn + generation prompt); the
response tokens y are the assistant turn as the template writes it, end-of-turn token included.
For a base model without a chat template the prompt is ``student.prompt_template`` and the
response ends with the EOS token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from persyn.assets import load_causal_lm, load_tokenizer
from persyn.config import StudentConfig
from persyn.engines.transformers_engine import context_length
from persyn.store import stable_hash


@dataclass
class ScoreItem:
    """One (prompt, response) pair to score; ``key`` is returned with the score."""

    key: str
    prompt: str
    response: str


def student_tokens(tokenizer, prompt: str, response: str, template: str) -> tuple[list[int], list[int]]:
    """Token ids (prompt part, response part) of one example as the student sees it in SFT.

    Chat models: the full conversation is rendered by the chat template; the prompt part is the
    rendering of the user turn with the generation prompt, and the response part is the rest
    with trailing whitespace after the end-of-turn token removed. Base models: ``template``
    filled with the prompt, then the response followed by EOS.
    """
    if getattr(tokenizer, "chat_template", None):
        user = [{"role": "user", "content": prompt}]
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
    p = tokenizer(head, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
        if not p or p[0] != tokenizer.bos_token_id:
            p = [tokenizer.bos_token_id] + p
    r = tokenizer(tail, add_special_tokens=False)["input_ids"]
    return p, r


def token_budget_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Group indices, sorted by length, into batches whose padded size (count × longest) stays
    within ``batch_tokens`` (a single longer item forms its own batch)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) + 1) * lengths[i] > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class LearnabilityScorer:
    """Scores responses by the student's mean per-token log-probability (nats/token, <= 0).

    Batches are length-sorted and left-padded, and only the logits of the last positions (those
    that predict response tokens) are computed, which saves most of the LM-head cost.
    """

    def __init__(self, student: StudentConfig):
        self.cfg = student
        self.model = None  # loaded on first use: a resumed run may have nothing to score

    def _load(self) -> None:
        if self.model is None:
            self.tokenizer = load_tokenizer(self.cfg.model, padding_side="left")
            self.model = load_causal_lm(self.cfg.model)
            self.ctx = self.cfg.max_length or context_length(self.model)

    @property
    def key(self) -> str:
        """Identifies the scorer's settings in the store (changes invalidate cached scores)."""
        return stable_hash(["learnability/v1", self.cfg.model, self.cfg.prompt_template])

    def score(self, items: list[ScoreItem]) -> Iterator[list[tuple[str, float | None, str | None]]]:
        """Yield ``[(key, r_l or None, error or None), ...]`` batch by batch.

        A pair longer than the student's context, or with no response tokens, is a failed item.
        """
        import torch

        self._load()
        encoded, failed = [], []
        for it in items:
            p, r = student_tokens(self.tokenizer, it.prompt, it.response, self.cfg.prompt_template)
            if not r:
                failed.append((it.key, None, "empty response"))
            elif len(p) + len(r) > self.ctx:
                failed.append(
                    (
                        it.key,
                        None,
                        f"too long for the student: {len(p) + len(r)} tokens, context {self.ctx}",
                    )
                )
            else:
                encoded.append((it.key, p, r))
        if failed:
            yield failed
        pad = self.tokenizer.pad_token_id
        lengths = [len(p) + len(r) for _, p, r in encoded]
        for batch in token_budget_batches(lengths, self.cfg.batch_tokens):
            rows = [encoded[i] for i in batch]
            width = max(lengths[i] for i in batch)
            keep = max(len(r) for _, _, r in rows) + 1
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, (_, p, r) in enumerate(rows):
                seq = p + r
                ids[j, width - len(seq) :] = torch.tensor(seq)
                mask[j, width - len(seq) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
                ).logits
            # logits[:, k] predicts token at absolute position width - keep + k + 1.
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = ids[:, width - keep + 1 :]
            tok_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            out = []
            for j, (key, _, r) in enumerate(rows):
                out.append((key, float(tok_logp[j, -len(r) :].mean()), None))
            yield out
