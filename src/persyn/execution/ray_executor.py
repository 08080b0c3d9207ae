"""``executor: ray``: the heavy stages as Ray work, on one machine or a cluster.

Every job of a stage (one per teacher, or the student's and the quality scorer's scoring) runs
at once. A job gets ``resources.replicas`` long-lived Ray actors (``PersynWorker``), each of
which loads its model once, on its first task. The first actor to be scheduled cuts the job's items into the
groups its model processes together (``work_units``: a batch of length-sorted prompts, all the
responses to one prompt); shards are consecutive whole groups of about ``ray.shard_size``
items (at least a served teacher's ``concurrency``, so that its requests stay in flight), so every worker computes exactly what the local executor would, and greedy runs give the
same dataset line for line.

The driver owns the store: workers return result rows and the driver writes each shard as it
finishes, so a crash of the driver loses only the shards in flight, and a re-run resumes. A
worker process that dies (killed, out of memory, node lost) is restarted by Ray and its shard
re-run, up to ``ray.max_retries`` times; then the shard's items are recorded as failed items
(retried by the next run). A worker is given shards only once it is scheduled, and a job's
workers are released as soon as its last shard is in, so jobs that do not all fit the cluster
at once take turns instead of deadlocking. An exception raised by the model code itself is
re-raised in the driver, as with the local executor.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from persyn.config import RunConfig
from persyn.core.deps import require
from persyn.core.errors import ConfigError, PersynError
from persyn.execution.base import Executor
from persyn.execution.jobs import Job

IN_FLIGHT_PER_WORKER = 2  # one shard running, one queued: no idle round trip between shards
ENV_PREFIXES = ("PERSYN_", "HF_", "TRANSFORMERS_")  # settings the workers need, on any node


def _ray():
    require("ray", "executor: ray", "pip install 'persyn[ray]'")
    import ray

    return ray


class PersynWorker:
    """A Ray actor that holds one model: ``job.build()`` runs on its first task, and every
    later task reuses it."""

    def __init__(self, build, num_gpus: float, secrets: dict[str, str] | None = None):
        # API keys arrive as arguments, in memory: a runtime_env's env_vars are written to
        # Ray's runtime_env_agent.log in clear.
        os.environ.update(secrets or {})
        if not num_gpus:
            # Ray leaves every GPU visible to a worker that asked for none: hide them, or its
            # model would land on a GPU that Ray never reserved for it.
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        self._build = build
        self._worker = None

    def _get(self):
        if self._worker is None:
            self._worker = self._build()
        return self._worker

    def ready(self) -> int:
        """The worker's process id (the answer means the actor is scheduled and alive)."""
        return os.getpid()

    def plan(self, items: list) -> list[list[int]]:
        """``work_units`` of ``items`` as lists of indices into ``items`` (loads the model)."""
        index = {id(it): i for i, it in enumerate(items)}
        return [[index[id(it)] for it in unit] for unit in self._get().work_units(items)]

    def run(self, items: list) -> list:
        """Every result row of ``items`` (one shard)."""
        return [row for rows in self._get().run(items) for row in rows]


def api_key_envs(cfg: RunConfig) -> list[str]:
    """The environment variables holding the API keys of ``cfg``'s served teachers (the
    engines that have an ``api_key_env`` setting)."""
    return [k for t in cfg.teachers if (k := getattr(t, "api_key_env", None))]


def shards_of(units: list[list[int]], shard_size: int) -> list[list[int]]:
    """Consecutive whole units joined into shards of at least ``shard_size`` items (the last
    may be smaller); a unit is never split."""
    shards: list[list[int]] = []
    cur: list[int] = []
    for unit in units:
        cur.extend(unit)
        if len(cur) >= shard_size:
            shards.append(cur)
            cur = []
    if cur:
        shards.append(cur)
    return shards


@dataclass
class _JobState:
    job: Job
    actors: list[Any]
    planner: int | None = None  # the worker asked to plan the shards
    shards: deque | None = None  # None until the plan is in
    live: list[int] = field(default_factory=list)  # indices of actors known to be scheduled
    running: dict[int, int] = field(default_factory=dict)  # actor index → shards in flight

    @property
    def done(self) -> bool:
        return self.shards is not None and not self.shards and not any(self.running.values())


class RayExecutor(Executor):
    """Runs jobs as Ray actors (see the module docstring).

    Joins the cluster at ``cfg.ray_address``, else at ``$RAY_ADDRESS``, else starts a local Ray
    instance (``cfg.ray.num_cpus`` CPUs); a Ray session the caller already opened is used as it
    is. Workers get this process's ``PERSYN_*``, ``HF_*`` and ``TRANSFORMERS_*`` variables and
    the served teachers' API-key variables.

    Raises:
        MissingAssetError: Ray is not installed.
        ConfigError: the cluster at ``ray_address`` cannot be joined.
    """

    def __init__(self, cfg: RunConfig):
        ray = _ray()
        self.cfg = cfg
        self._owns_session = False
        if not ray.is_initialized():
            address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
            keys = set(api_key_envs(cfg))
            env = {
                k: v
                for k, v in os.environ.items()
                if k.startswith(ENV_PREFIXES) and k != "PERSYN_CRASH_AT" and k not in keys
            }
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "runtime_env": {"env_vars": env},
            }
            if address is None:
                kwargs["num_cpus"] = cfg.ray.num_cpus
            else:
                _check_reachable(address, "ray_address" if cfg.ray_address else "RAY_ADDRESS")
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                field_name = "ray_address" if cfg.ray_address else "RAY_ADDRESS"
                raise ConfigError(
                    f"{field_name}: cannot join the Ray cluster at {address} ({exc.__class__.__name__}: {exc})"
                ) from None
            self._owns_session = True
        self._remote = ray.remote(PersynWorker)
        # The served teachers' API keys, for the workers (never through runtime_env: logged).
        self._secrets = {k: os.environ[k] for k in api_key_envs(cfg) if k in os.environ}

    # -- the work ------------------------------------------------------------------------------
    def check(self, job: Job) -> None:
        """Build the worker of ``job`` here, once (a served teacher checks its server from the
        driver before any Ray work starts)."""
        job.build()

    def _check_fits(self, jobs: list[Job]) -> None:
        ray = _ray()
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        for job in jobs:
            r = job.resources
            if not any(
                node.get("CPU", 0.0) >= r.num_cpus and node.get("GPU", 0.0) >= r.num_gpus for node in nodes
            ):
                biggest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
                raise ConfigError(
                    f"{job.resources_field}: a worker of {job.name} asks for {r.num_cpus:g} CPU and "
                    f"{r.num_gpus:g} GPU, but no node of the Ray cluster has that much (the largest "
                    f"has {biggest.get('CPU', 0):g} CPU, {biggest.get('GPU', 0):g} GPU)"
                )

    def _actor(self, job: Job):
        r = job.resources
        return self._remote.options(
            num_cpus=r.num_cpus,
            num_gpus=r.num_gpus,
            max_restarts=-1,  # a dead worker process comes back...
            max_task_retries=self.cfg.ray.max_retries,  # ...and re-runs its shard, this often
        ).remote(job.build, r.num_gpus, self._secrets)

    def _result(self, ref, job: Job):
        """``ray.get(ref)``; an exception of the model code is re-raised as it is."""
        ray = _ray()
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return ray.get(ref)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise PersynError(f"{job.name}: a Ray worker failed: {exc}") from None
        except RayActorError as exc:
            if getattr(exc, "actor_init_failed", False):
                raise PersynError(
                    f"{job.name}: the Ray worker could not start (is persyn installed on every node?): {exc}"
                ) from None
            raise

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, list]]:
        """Yield ``(job, rows)`` as each shard of any job is done (all jobs run at once).

        Raises:
            ConfigError: a job's worker fits on no node of the cluster.
            The model code's own exception, as the local executor would.
        """
        ray = _ray()
        from ray.exceptions import RayError

        jobs = [j for j in jobs if j.items]
        if not jobs:
            return
        self._check_fits(jobs)
        retries = self.cfg.ray.max_retries
        inflight: dict[Any, tuple[str, _JobState, int, list[int] | None]] = {}
        states: list[_JobState] = []
        try:
            for job in jobs:
                st = _JobState(job, [self._actor(job) for _ in range(job.resources.replicas)])
                states.append(st)
                # Every worker first shows that it is scheduled; the first one that is plans
                # the shards (loading its model). No worker is given work before that, so a
                # worker still waiting for resources holds none.
                for i, actor in enumerate(st.actors):
                    inflight[actor.ready.remote()] = ("ready", st, i, None)
            while inflight:
                [ref], _ = ray.wait(list(inflight), num_returns=1)
                what, st, i, shard = inflight.pop(ref)
                job = st.job
                if what == "plan":
                    try:
                        units = self._result(ref, job)
                    except RayError as exc:
                        raise PersynError(
                            f"{job.name}: the Ray worker died {retries + 1} time(s) while loading its "
                            f"model; nothing stored is lost, re-run to resume ({exc})"
                        ) from None
                    st.shards = deque(shards_of(units, max(self.cfg.ray.shard_size, job.min_shard)))
                    st.live.append(i)
                elif what == "ready":
                    try:
                        self._result(ref, job)
                    except RayError:
                        continue  # this replica could not start; the others do the work
                    if st.planner is None:
                        st.planner = i
                        inflight[st.actors[i].plan.remote(job.items)] = ("plan", st, i, None)
                    else:
                        st.live.append(i)
                else:
                    st.running[i] -= 1
                    assert shard is not None
                    try:
                        rows = self._result(ref, job)
                    except RayError as exc:
                        # The worker died on this shard every time it was re-run: record the
                        # items as failed (the next run retries them); the worker restarts.
                        message = f"Ray worker died {retries + 1} time(s) on this shard: {_first_line(exc)}"
                        rows = job.fail([job.items[j] for j in shard], message)
                    yield job, rows
                self._dispatch(st, inflight)
                if st.done:
                    self._release(st, inflight)
            for st in states:
                if not st.done:  # every worker of the job failed to start
                    raise PersynError(
                        f"{st.job.name}: no Ray worker could be started (see `ray status`); "
                        "nothing stored is lost, re-run to resume"
                    )
        finally:
            for st in states:
                self._release(st, inflight)

    def _dispatch(self, st: _JobState, inflight: dict) -> None:
        if st.shards is None:
            return
        for i in st.live:
            while st.shards and st.running.get(i, 0) < IN_FLIGHT_PER_WORKER:
                shard = st.shards.popleft()
                ref = st.actors[i].run.remote([st.job.items[j] for j in shard])
                inflight[ref] = ("shard", st, i, shard)
                st.running[i] = st.running.get(i, 0) + 1

    def _release(self, st: _JobState, inflight: dict) -> None:
        """Kill the job's workers (their resources go to the jobs still running) and forget
        their calls still in flight."""
        ray = _ray()
        for ref in [r for r, v in inflight.items() if v[1] is st]:
            del inflight[ref]
        for actor in st.actors:
            ray.kill(actor, no_restart=True)
        st.actors = []

    def close(self) -> None:
        """Disconnect from Ray (stopping the local instance persyn started, if any)."""
        if self._owns_session:
            _ray().shutdown()
            self._owns_session = False


def _check_reachable(address: str, field_name: str, timeout: float = 5.0) -> None:
    """Fail at once on a cluster address nobody answers at (``ray.init`` would retry for
    minutes). ``auto`` and ``local`` are left to Ray.

    Raises:
        ConfigError: naming ``field_name`` and the address.
    """
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{field_name}: '{address}' is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"{field_name}: no Ray cluster answers at {address} ({exc.__class__.__name__}: {exc}); "
            "start one with `ray start --head` or fix the address"
        ) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
