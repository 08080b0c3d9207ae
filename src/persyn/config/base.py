"""The base of every settings model, and the dtype of a model slot."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A settings model that rejects unknown keys (almost always typos) instead of ignoring them."""

    model_config = ConfigDict(extra="forbid")


#: A model slot's weights dtype: ``auto`` is bf16 where the hardware runs it natively (a CPU with
#: AMX-BF16 or AVX512-BF16, a CUDA device with bf16), else fp32 (``persyn.core.hardware``).
Dtype = Literal["auto", "float32", "bfloat16"]
