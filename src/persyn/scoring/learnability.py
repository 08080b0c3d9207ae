"""Learnability r_l (PerSyn Eq. 1): the student's mean per-token log-likelihood of a response.

    r_l(y, θ) = (1/|y|) Σ_t log p_θ(y_t | y_<t, x)

The prompt x is rendered with the student's chat template (user turn + generation prompt); the
response tokens y are the assistant turn as the template writes it, end-of-turn token included.
For a base model without a chat template the prompt is ``student.prompt_template`` and the
response ends with the EOS token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from persyn.core.hashing import stable_hash
from persyn.core.records import ScoreItem
from persyn.core.settings import Dtype, ResourcesConfig, StrictModel
from persyn.core.templates import DEFAULT_PROMPT_TEMPLATE
from persyn.models.bos import bos_policy_key
from persyn.models.loading import context_length, load_causal_lm, load_tokenizer
from persyn.scoring.base import Scorer
from persyn.tokenization import student_tokens


class StudentConfig(StrictModel):
    """The student whose learnability is measured (Eq. 1).

    ``model``: alias, HF id or local path. ``prompt_template`` (with ``{prompt}``) is used only
    when the tokenizer has no chat template (a base model). ``batching``: how log-likelihoods
    are computed (see ``LearnabilityScorer``); ``batch_tokens`` bounds the padded tokens of one
    ``padded`` batch (memory). ``dtype``: the scorer's weights (log-softmax and the mean
    log-likelihood are computed in fp32 over the logits either way).
    """

    model: str
    # ``students:`` only: the directory ``OUTPUT_DIR/students/NAME`` (default: from ``model``).
    name: str | None = None
    family: str | None = None
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    batch_tokens: Annotated[int, Field(ge=64)] = 8192
    batching: Literal["auto", "per_prompt", "padded"] = "auto"
    max_length: Annotated[int, Field(ge=16)] | None = None
    # ``llamacpp``: log-likelihoods from llama.cpp on the student's GGUF (a GGUF alias or a
    # .gguf path as ``gguf``), tokenised exactly as with transformers (persyn[llamacpp]).
    backend: Literal["transformers", "llamacpp"] = "transformers"
    gguf: str | None = None
    dtype: Dtype = "auto"
    # executor: ray (the student's scoring workers)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)


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


def prompt_groups(encoded: list[tuple[str, list[int], list[int]]]) -> list[list[int]]:
    """Indices of ``(key, prompt ids, response ids)`` items grouped by identical prompt ids,
    groups in order of first appearance (the ``per_prompt`` path scores a group together)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (_, p, _) in enumerate(encoded):
        groups.setdefault(tuple(p), []).append(i)
    return list(groups.values())


def _mean_logprob(logits, targets) -> float:
    """Mean of log softmax(logits)[t, targets[t]] over t, computed as logit − logsumexp
    (no full log-softmax tensor is written)."""
    logits = logits.float()
    picked = logits.gather(-1, targets.to(logits.device).unsqueeze(-1)).squeeze(-1)
    return float((picked - logits.logsumexp(-1)).mean())


class LearnabilityScorer(Scorer):
    """Scores responses by the student's mean per-token log-probability (nats/token, <= 0).

    Two ways to the same value (``student.batching``): ``per_prompt`` runs each distinct prompt
    once and each of its responses on the prompt's KV cache, unpadded (the calibration set has
    one response per teacher for every prompt); ``padded`` forms length-sorted, left-padded
    token-budget batches across prompts and computes logits only for the positions that predict
    response tokens. ``auto`` picks ``padded`` on a GPU and ``per_prompt`` on a CPU.
    """

    def __init__(self, student: StudentConfig):
        self.cfg = student
        self.model = None  # the transformers model (None with llama.cpp: _score_llamacpp)
        self._loaded = False  # on first use: a resumed run may have nothing to score

    def _load(self) -> None:
        if not self._loaded:
            self.tokenizer = load_tokenizer(self.cfg.model, padding_side="left")
            if self.cfg.backend == "llamacpp":
                # llama.cpp keeps logits for every position of its context (n_ctx × vocab
                # floats): a bounded context, 1024 tokens unless max_length says otherwise.
                self.ctx = self.cfg.max_length or 1024
            else:
                self.model = load_causal_lm(self.cfg.model, dtype=self.cfg.dtype)
                self.ctx = self.cfg.max_length or context_length(self.model)
            self._loaded = True

    @property
    def key(self) -> str:
        """Identifies the scorer's settings in the store (changes invalidate cached scores)."""
        from persyn.models.fingerprint import model_fingerprint

        cfg = self.cfg
        parts = ["learnability/v1", cfg.model, model_fingerprint(cfg.model), cfg.prompt_template]
        parts.append(bos_policy_key(cfg.model))  # the tokenization rule (issue #17)
        if cfg.backend == "llamacpp":  # other numbers (quantised weights): other scores
            gguf = cfg.gguf or cfg.model
            parts += ["llamacpp", gguf, model_fingerprint(gguf)]
        else:
            from persyn.models.loading import dtype_key

            parts += dtype_key(cfg.dtype)  # bf16 scores apart from fp32 ones
        return stable_hash(parts)

    def _encode(self, items: list[ScoreItem]):
        """(failed rows, [(key, prompt ids, response ids)]) of ``items``, in the given order."""
        self._load()
        encoded, failed = [], []
        for it in items:
            p, r = student_tokens(
                self.tokenizer, it.prompt, it.response, self.cfg.prompt_template, it.messages
            )
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
        return failed, encoded

    def work_units(self, items: list[ScoreItem]) -> list[list[ScoreItem]]:
        """The groups ``score`` computes together (items it cannot score first, as one group):
        all the responses to one prompt (``per_prompt``: they share its KV cache), or one
        token-budget batch (``padded``). Scoring any run of whole groups forms the same groups,
        so the numbers do not depend on how the items are split."""
        failed, encoded = self._encode(items)
        by_key = {it.key: it for it in items}
        units = [[by_key[k] for k, _, _ in failed]] if failed else []
        if self.cfg.backend == "llamacpp":
            return units + [[by_key[k]] for k, _, _ in encoded]
        if self._mode() == "padded":
            lengths = [len(p) + len(r) for _, p, r in encoded]
            batches = token_budget_batches(lengths, self.cfg.batch_tokens)
            return units + [[by_key[encoded[i][0]] for i in b] for b in batches]
        return units + [[by_key[encoded[i][0]] for i in g] for g in prompt_groups(encoded)]

    def score(self, items: list[ScoreItem]) -> Iterator[list[tuple[str, float | None, str | None]]]:
        """Yield ``[(key, r_l or None, error or None), ...]`` batch by batch.

        A pair longer than the student's context, or with no response tokens, is a failed item.
        """
        failed, encoded = self._encode(items)
        if failed:
            yield failed
        if self.cfg.backend == "llamacpp":
            yield from self._score_llamacpp(encoded)
        elif self._mode() == "padded":
            yield from self._score_batched(encoded)
        else:
            yield from self._score_per_prompt(encoded)

    def _score_llamacpp(self, encoded: list[tuple[str, list[int], list[int]]]):
        """Eq. 1 with llama.cpp: the same token ids (the student's HF tokenizer and chat
        template), logits of every position from the GGUF model, one sequence at a time."""
        import numpy as np

        from persyn.models.aliases import gguf_path

        if getattr(self, "_llama", None) is None:
            from llama_cpp import Llama

            from persyn.core.hardware import warn_if_llamacpp_uses_amx

            warn_if_llamacpp_uses_amx()  # before the load that may crash (upstream AMX bug)
            self._llama = Llama(
                model_path=str(gguf_path(self.cfg.gguf or self.cfg.model)),
                n_ctx=self.ctx,
                logits_all=True,
                verbose=False,
            )
        llm = self._llama
        for key, p, r in encoded:
            llm.reset()
            llm.eval(p + r)
            logits = np.asarray(llm.scores[len(p) - 1 : len(p) + len(r) - 1], dtype=np.float64)
            top = logits.max(axis=1, keepdims=True)
            logp = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
            yield [(key, float(logp[np.arange(len(r)), r].mean()), None)]

    def _mode(self) -> str:
        if self.cfg.batching != "auto":
            return self.cfg.batching
        # Measured (docs/benchmarks.md): on CPU, padded batches are slower than unpadded passes
        # (compute-bound matmuls gain nothing from batching, padding and masks cost); on a GPU
        # padded batches win.
        return "padded" if self.model.device.type == "cuda" else "per_prompt"

    def _score_per_prompt(self, encoded: list[tuple[str, list[int], list[int]]]):
        """Unpadded passes: a prompt with several responses is run once, and each response on
        top of the prompt's KV cache (cropped back after each response); a prompt with one
        response is a single pass. Yields one list per prompt."""
        import torch
        from transformers import DynamicCache

        device = self.model.device
        for group in prompt_groups(encoded):
            p = encoded[group[0]][1]
            rows = [(encoded[i][0], encoded[i][2]) for i in group]
            if len(rows) == 1:  # nothing to share: one pass, logits for response positions only
                key, r = rows[0]
                ids = torch.tensor([p + r], device=device)
                with torch.inference_mode():
                    logits = self.model(input_ids=ids, logits_to_keep=len(r) + 1).logits[0, :-1]
                yield [(key, _mean_logprob(logits, ids[0, -len(r) :]), None)]
                continue
            cache = DynamicCache()
            given = {_cache_argument(self.model): cache}
            out = []
            with torch.inference_mode():
                if len(p) > 1:
                    self.model(
                        input_ids=torch.tensor([p[:-1]], device=device),
                        **given,
                        use_cache=True,
                        logits_to_keep=1,
                    )
                for key, r in rows:
                    ids = torch.tensor([[p[-1], *r]], device=device)
                    positions = torch.arange(len(p) - 1, len(p) + len(r), device=device).unsqueeze(0)
                    logits = self.model(
                        input_ids=ids, position_ids=positions, **given, use_cache=True
                    ).logits[0, :-1]
                    cache.crop(-(len(r) + 1))
                    out.append((key, _mean_logprob(logits, ids[0, 1:]), None))
            yield out

    def _score_batched(self, encoded: list[tuple[str, list[int], list[int]]]):
        """r_l of (key, prompt ids, response ids) items, batched across prompts."""
        import torch

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
            device = self.model.device
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                    logits_to_keep=keep,
                ).logits
            # logits[:, k] predicts the token at absolute position width - keep + k + 1.
            targets = ids[:, width - keep + 1 :]
            yield [
                (key, _mean_logprob(logits[j, -len(r) - 1 : -1], targets[j, -len(r) :]), None)
                for j, (key, _, r) in enumerate(rows)
            ]


def _cache_argument(model) -> str:
    """The name under which ``model.forward`` takes a KV cache: ``cache`` in current
    transformers (which deprecates ``past_key_values``, to be removed in 5.40), else
    ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
