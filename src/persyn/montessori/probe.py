"""Local data influence of a training example on a student (Montessori-Instruct, arXiv 2410.14208).

From a warm-up state of the student (weights *and* optimizer state after one epoch of SFT on a
warm-up set), the influence of an example z on a reference set D_ref is

    I(z) = L(D_ref; θ_z) − L(D_ref; θ_0),    θ_z = one optimizer step from θ_0 on z alone

where L(D; θ) is the mean over D's examples of each example's mean response-token loss (nats)
and the step uses the warm-up optimizer's state (AdamW moments). Negative: the step on z lowered
the reference loss, z is helpful. After each probe the student is put back into the warm-up
state from an in-memory snapshot (weights and optimizer state, bit for bit), never reloaded.

Other signals per example, for the paper's ablation and for PerSyn's own:

- ``loss``: the warm-up student's mean response-token loss on z (before the step);
- ``learnability``: PerSyn's r_l (Eq. 1) of z's response under the *untouched* student, by
  the pipeline's own ``scoring.learnability.LearnabilityScorer`` (``montessori.influence``).

Examples are tokenized as in SFT (``persyn.training.sft.to_trl_examples``: the student's chat template,
or its prompt template for a base model; loss on the response tokens only) and cut to
``max_length`` tokens.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812


@dataclass
class Example:
    """One tokenized example: ``input_ids`` ``[T]`` and ``labels`` ``[T]`` (-100 off the response)."""

    input_ids: torch.Tensor
    labels: torch.Tensor


def tokenized_examples(pairs: list[tuple], tokenizer, prompt_template: str, max_length: int) -> list[Example]:
    """``Example`` of each ``(prompt, response[, turns])`` (see ``persyn.training.sft.read_training_pairs``),
    rendered as SFT renders it and cut to ``max_length`` tokens. An example whose prompt alone
    fills ``max_length`` keeps no response token and is returned with all labels -100."""
    from persyn.training.sft import to_trl_examples

    out = []
    for e in to_trl_examples(pairs, tokenizer, prompt_template):
        ids = torch.tensor(e["input_ids"][:max_length])
        mask = torch.tensor(e["completion_mask"][:max_length], dtype=torch.bool)
        out.append(Example(ids, torch.where(mask, ids, torch.full_like(ids, -100))))
    return out


def _batch(examples: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n], labels[i, :n], attn[i, :n] = e.input_ids, e.labels, 1
    return ids, labels, attn


def example_losses(model, examples: list[Example], pad_id: int) -> torch.Tensor:
    """Each example's mean response-token loss (nats), shape ``[len(examples)]``, one batch,
    with gradients when enabled. An example without response tokens gets NaN."""
    ids, labels, attn = _batch(examples, pad_id)
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    target = labels[:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    keep = (target != -100).float()
    return (nll * keep).sum(1) / keep.sum(1)


@torch.no_grad()
def mean_loss(model, examples: list[Example], pad_id: int, batch_size: int = 8) -> float:
    """L(D; θ): the mean over ``examples`` of each one's mean response-token loss (nats)."""
    losses = [
        example_losses(model, examples[i : i + batch_size], pad_id)
        for i in range(0, len(examples), batch_size)
    ]
    return float(torch.cat(losses).mean())


class WarmState:
    """An in-memory snapshot of a model's weights and its optimizer's state, restored bit for bit
    after each probe by copying into the live tensors (no reload from disk, and no new memory
    per probe: a fresh copy of AdamW's state would cost twice the model's size each time)."""

    def __init__(self, model, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer
        self._weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._state = {
            p: {k: v.detach().clone() if torch.is_tensor(v) else copy.deepcopy(v) for k, v in s.items()}
            for p, s in optimizer.state.items()
        }
        self._groups = [
            {k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups
        ]

    @torch.no_grad()
    def restore(self) -> None:
        for k, v in self.model.state_dict().items():
            v.copy_(self._weights[k])
        state = self.optimizer.state
        for p in [p for p in state if p not in self._state]:  # state a probe created: none before
            del state[p]
        for p, saved in self._state.items():
            live = state[p]
            for k, v in saved.items():
                if torch.is_tensor(v) and torch.is_tensor(live.get(k)) and live[k].shape == v.shape:
                    live[k].copy_(v)
                else:
                    live[k] = v.clone() if torch.is_tensor(v) else copy.deepcopy(v)
        for group, saved in zip(self.optimizer.param_groups, self._groups, strict=True):
            group.update(copy.deepcopy(saved))
        self.optimizer.zero_grad(set_to_none=True)


class InfluenceProbe:
    """Measures the local data influence of examples from one warm-up state.

    Args:
        model: the warm-up student (its weights are changed by a probe, then restored).
        optimizer: the warm-up optimizer, with its state; every parameter group's learning rate
            is set to ``lr`` for the probing step (a warm-up schedule ends near 0).
        reference: the reference set D_ref (tokenized).
        pad_id: the tokenizer's pad id.
        lr: the probing step's learning rate.
        batch_size: the batch size of the passes over the reference set.

    Raises:
        ValueError: an empty reference set, or no reference example with a response token.
    """

    def __init__(
        self, model, optimizer, reference: list[Example], pad_id: int, lr: float, batch_size: int = 8
    ):
        if not reference:
            raise ValueError("the reference set is empty")
        self.reference = [e for e in reference if bool((e.labels != -100).any())]
        if not self.reference:
            raise ValueError("no reference example keeps a response token within max_length")
        self.model, self.optimizer, self.pad_id, self.batch_size = model, optimizer, pad_id, batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.eval()  # no dropout: a probe is a deterministic function of the example
        self.state = WarmState(model, optimizer)
        self.base_loss = mean_loss(model, self.reference, pad_id, batch_size)

    def probe(self, example: Example) -> tuple[float, float]:
        """``(influence, loss)`` of one example: the reference-loss change after one step on it
        (nats), and its own loss under the warm-up student (nats). The state is restored
        afterwards, also when the step fails.

        Raises:
            ValueError: the example has no response token (nothing to step on).
        """
        if not bool((example.labels != -100).any()):
            raise ValueError("the example keeps no response token within max_length")
        try:
            self.optimizer.zero_grad(set_to_none=True)
            loss = example_losses(self.model, [example], self.pad_id)[0]
            loss.backward()
            self.optimizer.step()
            after = mean_loss(self.model, self.reference, self.pad_id, self.batch_size)
        finally:
            self.state.restore()
        return after - self.base_loss, float(loss.detach())
