"""The settings of SFT (``persyn.training.sft``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from persyn.training.base import TrainerSettings


class SFTSettings(TrainerSettings):
    """Fine-tuning settings (other fields: see ``TrainerSettings``).

    ``method``: ``full`` (all weights) or ``lora`` (PEFT LoRA adapters of rank ``lora_r`` on
    ``lora_target_modules``, merged into the weights before saving, so the output is a plain
    model directory either way). ``epochs`` may be fractional. ``learning_rate`` None means 5e-5
    for full fine-tuning and 2e-4 for LoRA (adapters start at zero and need a larger step).
    ``batch_size`` is per device; one optimizer step sees ``batch_size * grad_accum`` examples.
    ``max_length`` (tokens) truncates longer examples (their response end is cut).
    ``warmup_ratio`` is the fraction of the steps with a linear warm-up. ``logging_steps``: the
    loss is recorded every that many optimizer steps (and at the first). ``gradient_checkpointing``
    trades ~20-30% more compute for less activation memory (off: a small student fits).

    What a step computes (``docs/benchmarks.md``, "Precision and SFT on the CPU"): ``padding_free`` concatenates
    a batch's examples into one row with per-example positions (TRL's padding-free collator; the
    attention stays within each example), so no padding is computed; ``lm_head: response``
    projects only the positions that predict a response token (``persyn.response_loss``),
    ``all`` is TRL's head over every position. Both give today's loss. ``dtype``: ``bfloat16`` is
    mixed precision (bf16 autocast, fp32 master weights and optimizer state), ``float32`` is
    fp32 throughout, ``auto`` is bf16 where the hardware runs it natively
    (``persyn.assets.model_dtype``); the saved model is fp32 either way.
    """

    epochs: Annotated[float, Field(gt=0)] = 2.0
    learning_rate: Annotated[float, Field(gt=0)] | None = None
    batch_size: Annotated[int, Field(ge=1)] = 8
    grad_accum: Annotated[int, Field(ge=1)] = 1
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    lora_target_modules: str | list[str] = "all-linear"
    gradient_checkpointing: bool = False
    logging_steps: Annotated[int, Field(ge=1)] = 5
    padding_free: bool = True
    lm_head: Literal["response", "all"] = "response"

    @property
    def lr(self) -> float:
        """The learning rate used: ``learning_rate``, else 5e-5 (full) or 2e-4 (LoRA)."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 5e-5 if self.method == "full" else 2e-4
