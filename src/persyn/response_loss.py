"""SFT loss with the vocabulary projection only where the loss is: the response positions.

TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``) scores only the valid positions on
Triton devices; on a CPU it sends every position (prompt, response and padding) through the
vocabulary (49K for SmolLM2, 262K for Gemma-3), and forces its GEMMs to fp32. The head is about
45% of a SmolLM2 step and two thirds of Gemma's FLOPs, most of it wasted on prompt positions.

``response_nll`` runs the backbone, keeps the hidden states whose next token is a response token
(label != -100), projects only those (in the autocast dtype, bf16 under mixed precision), and
takes log-softmax in fp32. The loss is TRL's: the summed negative log-likelihood of the response
tokens divided by ``num_items_in_batch`` (the response tokens of the whole accumulated batch,
counted by ``transformers.Trainer``) or, without it, by this batch's response tokens. With the
same batch it equals TRL's loss to float rounding, and so does its gradient
(``tests/test_train.py``). PerSyn §3: the student is fine-tuned on the responses alone.
"""

from __future__ import annotations

#: Logit transforms of some model families (``trl.trainer.utils``'s list) that this loss does not
#: apply: a model with one of them set trains through TRL's own head instead.
UNSUPPORTED_LOGIT_FIELDS = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def _causal_lm(model):
    """``(causal LM, its text config)``: a PEFT model unwrapped to the model whose layers it
    adapted (its adapters stay in the computation)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return lm, (lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config)


def supports_response_head(model) -> bool:
    """Whether ``response_nll`` computes ``model``'s loss exactly: a causal LM whose logits are
    ``lm_head(hidden)`` (optionally soft-capped, as Gemma-2), with none of the scalings of
    ``UNSUPPORTED_LOGIT_FIELDS``."""
    lm, cfg = _causal_lm(model)
    if any(getattr(cfg, f, None) not in (None, 1, 1.0) for f in UNSUPPORTED_LOGIT_FIELDS):
        return False
    return lm.get_output_embeddings() is not None and getattr(lm, "base_model", lm) is not lm


def response_nll(model, inputs: dict, num_items_in_batch=None):
    """``(loss, n_response_tokens)`` of a causal LM on a collated batch.

    ``inputs``: TRL's collated batch, ``input_ids`` (B × T, or 1 × ΣT padding-free with
    ``position_ids``), ``labels`` (-100 where no loss), and the attention mask or the sequence
    boundaries the backbone reads. ``num_items_in_batch``: the divisor (response tokens of the
    accumulated batch); None divides by this batch's count. A PEFT model is unwrapped to the
    model whose layers it adapted (its adapters stay in the computation).
    """
    import torch

    labels = inputs["labels"]
    lm, cfg = _causal_lm(model)
    backbone_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    backbone_inputs["use_cache"] = False
    hidden = lm.base_model(**backbone_inputs).last_hidden_state[:, :-1]
    targets = labels[:, 1:].to(hidden.device)
    mask = targets != -100
    head = lm.get_output_embeddings()
    logits = head(hidden[mask]).float()  # only the response positions, then fp32
    cap = getattr(cfg, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    picked = logits.gather(-1, targets[mask].unsqueeze(-1)).squeeze(-1)
    nll = (logits.logsumexp(-1) - picked).sum()
    n = mask.sum()
    divisor = n.clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return nll / torch.as_tensor(divisor, device=nll.device), int(n)


def response_head_trainer_class():
    """A ``trl.SFTTrainer`` subclass whose ``compute_loss`` is ``response_nll`` (models it does
    not support, per ``supports_response_head``, keep TRL's). TRL's entropy and token-accuracy
    metrics are not computed (they need every position's logits)."""
    from trl import SFTTrainer

    class ResponseHeadSFTTrainer(SFTTrainer):
        """``SFTTrainer`` with the LM head applied at response positions only."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs or not supports_response_head(model):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            import torch

            # accelerate autocasts the model's forward under bf16; this loss calls the backbone
            # and the head directly, so it autocasts itself
            device = inputs["input_ids"].device.type
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bool(self.args.bf16)):
                loss, _ = response_nll(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as TRL: DDP averages the gradients
            return loss

    return ResponseHeadSFTTrainer
