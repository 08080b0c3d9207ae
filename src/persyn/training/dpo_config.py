"""The settings of DPO (``persyn.training.dpo``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from persyn.training.base import TrainerSettings


class DPOSettings(TrainerSettings):
    """DPO of the generator (TRL ``DPOTrainer``; reference model: the generator before DPO).
    Montessori-Instruct's code: β 0.1, lr 1e-6, 1 epoch, batch 2. ``method``: ``full`` or
    ``lora`` (adapters on every linear layer, merged before saving). Other fields: see
    ``TrainerSettings``."""

    beta: Annotated[float, Field(gt=0)] = 0.1
    learning_rate: Annotated[float, Field(gt=0)] = 1e-6
    epochs: Annotated[float, Field(gt=0)] = 1.0
    batch_size: Annotated[int, Field(ge=1)] = 2
