"""How ``executor: ray`` cuts and retries the work (a model's Ray resources: ``persyn.core.settings``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from persyn.core.settings import StrictModel


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
