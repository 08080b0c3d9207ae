"""Where the work runs: a model's Ray resources and how ``executor: ray`` cuts and retries the work."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from persyn.config.base import StrictModel


class ResourcesConfig(StrictModel):
    """What one Ray worker of a model asks the cluster for (``executor: ray`` only).

    ``num_cpus`` / ``num_gpus`` are passed to Ray as the actor's resources (fractions allowed,
    e.g. ``num_gpus: 0.5`` puts two workers on one GPU); ``replicas`` is the number of workers
    (each loads the model once) that share the model's shards.
    """

    num_cpus: Annotated[float, Field(ge=0.0)] = 1.0
    num_gpus: Annotated[float, Field(ge=0.0)] = 0.0
    replicas: Annotated[int, Field(ge=1)] = 1


class RayConfig(StrictModel):
    """How ``executor: ray`` cuts and retries the work.

    ``shard_size``: prompts (generation) or responses (scoring) per Ray task; a shard is made
    of whole batches, so its results equal the local executor's. ``num_cpus``: CPUs of a
    local Ray instance started by persyn (default: all; ignored when joining a cluster).
    ``max_retries``: times a shard is re-run after its worker process died (the worker is
    restarted each time) before its items are recorded as failed.
    """

    shard_size: Annotated[int, Field(ge=1)] = 32
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    max_retries: Annotated[int, Field(ge=0)] = 3
