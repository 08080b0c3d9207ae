"""The bases every settings model builds on (a plug-in's own settings, the run config's), and the
settings types that plug-ins below ``persyn.config`` share: a model slot's dtype and a Ray
worker's resources. Here, at the bottom, so that nothing imports back up into ``persyn.config``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """A settings model that rejects unknown keys (almost always typos) instead of ignoring them."""

    model_config = ConfigDict(extra="forbid")


#: A model slot's weights dtype: ``auto`` is bf16 where the hardware runs it natively (a CPU with
#: AMX-BF16 or AVX512-BF16, a CUDA device with bf16), else fp32 (``persyn.core.hardware``).
Dtype = Literal["auto", "float32", "bfloat16"]


class ResourcesConfig(StrictModel):
    """What one Ray worker of a model asks the cluster for (``executor: ray`` only).

    ``num_cpus`` / ``num_gpus`` are passed to Ray as the actor's resources (fractions allowed,
    e.g. ``num_gpus: 0.5`` puts two workers on one GPU); ``replicas`` is the number of workers
    (each loads the model once) that share the model's shards.
    """

    num_cpus: Annotated[float, Field(ge=0.0)] = 1.0
    num_gpus: Annotated[float, Field(ge=0.0)] = 0.0
    replicas: Annotated[int, Field(ge=1)] = 1
