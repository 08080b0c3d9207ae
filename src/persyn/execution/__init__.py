"""Where the heavy stages run: teacher generation and response scoring, as jobs.

A stage hands the executor one ``Job`` per model (a teacher's prompts, or the responses for the
student or the quality scorer) and stores the result rows it gets back, as they come. The
executor decides where the work runs:

- ``LocalExecutor`` (``executor: local``, the default): in this process, one job after another;
  a model is loaded once per run and kept.
- ``RayExecutor`` (``executor: ray``, ``persyn.execution.ray_executor``): every job at once on a Ray
  cluster, sharded, one long-lived worker per loaded model.

Both are ``execution.base.Executor``s. Workers are engines (``generate``) and scorers
(``score``), both ``core.worker.Worker``s: they take a list of items and yield lists of result
rows. A worker whose results depend on which items are processed together (batched generation,
padded scoring) overrides ``work_units(items)``: the groups it would process together (the
default: one item each). The Ray executor cuts shards along those groups, so that both
executors compute the same numbers.
"""

from __future__ import annotations

from persyn.config import RunConfig
from persyn.core.plugins import EXECUTORS, load
from persyn.execution.base import Executor


def make_executor(cfg: RunConfig) -> Executor:
    """The executor that ``cfg.executor`` names (``persyn.core.plugins.EXECUTORS``), built as
    ``Cls(cfg)``: it has ``run(jobs)``, ``check(job)`` and ``close()`` (``Executor``).

    Raises:
        MissingAssetError: ``executor: ray`` without Ray installed (says what to install).
    """
    return load(EXECUTORS, cfg.executor, "executor")(cfg)
