"""What persyn's fine-tuning runs (SFT, DPO) share: their common settings, and the one builder
of their PEFT LoRA and TRL arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from persyn.core.settings import Dtype, StrictModel


class TrainerSettings(StrictModel):
    """The settings every trainer has. ``method``: ``full`` (all weights) or ``lora`` (PEFT LoRA
    adapters of rank ``lora_r``, merged into the weights before saving, so the output is a plain
    model directory either way). ``epochs`` may be fractional; ``batch_size`` is per device;
    ``max_length`` in tokens. ``dtype``: ``bfloat16`` is mixed precision (bf16 autocast, fp32
    master weights), ``auto`` bf16 where the hardware runs it natively. ``max_steps``: stop
    after this many optimizer steps (overrides ``epochs``; None: train ``epochs``; left out of
    dumps when None, so the keys of before stay). Each trainer's settings give ``epochs``,
    ``learning_rate`` and ``batch_size`` their own defaults."""

    dtype: Dtype = "auto"
    method: Literal["full", "lora"] = "full"
    epochs: Annotated[float, Field(gt=0)]
    learning_rate: Annotated[float, Field(gt=0)] | None
    batch_size: Annotated[int, Field(ge=1)]
    max_length: Annotated[int, Field(ge=16)] = 512
    lora_r: Annotated[int, Field(ge=1)] = 16
    lora_alpha: Annotated[int, Field(ge=1)] = 32
    seed: int = 0
    max_steps: Annotated[int, Field(ge=1)] | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        data = handler(self)
        if isinstance(data, dict) and self.max_steps is None:
            data.pop("max_steps", None)
        return data

    @property
    def lr(self) -> float:
        """The learning rate used (a trainer may derive one when ``learning_rate`` is None)."""
        assert self.learning_rate is not None
        return self.learning_rate

    def key_fields(self) -> dict:
        """The settings as a dict for cache keys, ``dtype`` resolved on this machine (``auto``
        is not a dtype: a bf16 and an fp32 run must never share a key)."""
        from persyn.models.loading import model_dtype

        return {**self.model_dump(), "dtype": model_dtype(self.dtype)[0]}


def lora_config(settings: TrainerSettings, dropout: float = 0.0, target_modules: Any = "all-linear"):
    """The PEFT ``LoraConfig`` of ``settings`` (rank ``lora_r``, ``lora_alpha``, ``dropout`` on
    ``target_modules``, a causal LM), or None for ``method: full``."""
    if settings.method != "lora":
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
    )


def trl_args(
    config_class: type,
    settings: TrainerSettings,
    output_dir: str | Path,
    *,
    bf16: bool,
    progress: bool = False,
    **specific: Any,
):
    """TRL's training arguments (``config_class``: ``SFTConfig``, ``DPOConfig``) for
    ``settings``: epochs, learning rate (``settings.lr``), batch size, seeds (the data order
    too), no checkpoints, no reporting, the GPU when one is visible, bf16 mixed precision when
    ``bf16`` (the CPU included), a progress bar when ``progress``; ``specific``: the trainer's
    own arguments."""
    import torch

    return config_class(
        output_dir=str(output_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps if settings.max_steps is not None else -1,
        learning_rate=settings.lr,
        per_device_train_batch_size=settings.batch_size,
        seed=settings.seed,
        data_seed=settings.seed,
        save_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        bf16=bf16,
        disable_tqdm=not progress,
        **specific,
    )


def trained_model(trainer, settings: TrainerSettings):
    """The trained model of ``trainer``, LoRA adapters merged, in fp32 and eval mode (ready to
    save as a plain model directory)."""
    model = trainer.model
    if settings.method == "lora":
        model = model.merge_and_unload()
    return model.float().eval()
