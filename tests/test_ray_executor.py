"""RayExecutor on a local Ray instance (2 CPUs), in this process: scheduling, errors, a worker
process killed mid-shard."""

import functools
import os
import signal
import threading
import time

import pytest
from conftest import tiny_config
from raytools import worker_pids

from persyn.config import make_teacher, parse_config
from persyn.core.errors import ConfigError, MissingAssetError
from persyn.core.records import Prompt
from persyn.engines import make_engine
from persyn.execution.jobs import Job, teacher_job

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def executor(tiny_models, tmp_path, **ray_opts):
    from persyn.execution.ray_executor import RayExecutor

    cfg = parse_config(tiny_config(tiny_models, tmp_path, executor="ray", ray=ray_opts))
    return RayExecutor(cfg), cfg


def prompts(n, text="What is {i} + 1?"):
    return [Prompt(f"p{i}", text.format(i=i), answer=str(i + 1)) for i in range(n)]


def test_jobs_that_do_not_fit_at_once_take_turns(ray_session, tiny_models, tmp_path):
    ex, _ = executor(tiny_models, tmp_path, shard_size=1)
    fail = lambda items, error: []  # noqa: E731
    jobs = []
    for name in ("x", "y", "z"):  # 6 workers of 1 CPU on a 2-CPU instance
        t = make_teacher(name=name, engine="reference", style="answer", resources={"replicas": 2})
        build = functools.partial(make_engine, t, 0)
        jobs.append(Job(name, build, prompts(5), fail, resources=t.resources))
    got: dict[str, list[str]] = {"x": [], "y": [], "z": []}
    for job, rows in ex.run(jobs):
        got[job.name] += [pid for pid, c in rows if c.text.startswith("####")]
    assert {k: sorted(v) for k, v in got.items()} == {k: [f"p{i}" for i in range(5)] for k in got}
    ex.close()  # the session is the fixture's: left running
    assert ray.is_initialized()


def test_an_exception_in_a_worker_is_raised_as_it_is(ray_session, tiny_models, tmp_path):
    ex, cfg = executor(tiny_models, tmp_path)
    bad = make_teacher(name="bad", engine="transformers", model=str(tmp_path / "no-such-model"))
    with pytest.raises(MissingAssetError, match="could not be loaded offline"):
        list(
            ex.run([teacher_job(cfg.model_copy(update={"teachers": [bad, *cfg.teachers]}), bad, prompts(2))])
        )


def test_a_worker_bigger_than_every_node_is_a_config_error(ray_session, tiny_models, tmp_path):
    ex, cfg = executor(tiny_models, tmp_path)
    t = cfg.teachers[1].model_copy(
        update={"resources": cfg.teachers[1].resources.model_copy(update={"num_gpus": 1})}
    )
    with pytest.raises(
        ConfigError, match=r"teachers\.1\.resources: a worker of teacher 'b' asks for 1 CPU and 1 GPU"
    ):
        list(ex.run([teacher_job(cfg, t, prompts(2))]))


def _kill_first_busy_worker(killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set() and not killed:
        for pid in worker_pids("run"):
            time.sleep(0.2)  # well inside the shard
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            break
        time.sleep(0.01)


@pytest.mark.parametrize("retries", [1, 0])
def test_a_worker_killed_mid_shard(ray_session, tiny_models, tmp_path, retries):
    """With retries left, Ray restarts the worker and re-runs the shard: every prompt is
    answered once. With none, the shard's prompts come back as failed items."""
    ex, cfg = executor(tiny_models, tmp_path, shard_size=100, max_retries=retries)
    t = cfg.teachers[0].model_copy(update={"batch_size": 1, "max_new_tokens": 200})
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_busy_worker, args=(killed, stop))
    killer.start()
    try:
        rows = [row for _, batch in ex.run([teacher_job(cfg, t, prompts(12))]) for row in batch]
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1, "no worker was killed: the shard finished too soon"
    assert sorted(pid for pid, _ in rows) == sorted(f"p{i}" for i in range(12))  # each once
    errors = [c.error for _, c in rows]
    if retries:
        assert errors == [None] * 12
    else:
        assert all(e and e.startswith("Ray worker died 1 time(s) on this shard") for e in errors)


@pytest.mark.parametrize(
    "address, message",
    [
        ("127.0.0.1:1", "ray_address: no Ray cluster answers at 127.0.0.1:1"),
        ("ray://127.0.0.1:1", "ray_address: no Ray cluster answers at ray://127.0.0.1:1"),
        ("nonsense", "ray_address: 'nonsense' is not HOST:PORT"),
    ],
)
def test_an_unreachable_cluster_fails_at_once_naming_the_field(tiny_models, tmp_path, address, message):
    from persyn.pipeline import Pipeline

    if ray.is_initialized():
        ray.shutdown()  # the executor only connects when no session is open
    cfg = parse_config(tiny_config(tiny_models, tmp_path, executor="ray", ray_address=address))
    with Pipeline(cfg) as p, pytest.raises(ConfigError, match=message):
        p.calibrate()


def test_without_ray_installed_the_error_says_what_to_install(tiny_models, tmp_path, monkeypatch):
    import sys

    from persyn.execution import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    cfg = parse_config(tiny_config(tiny_models, tmp_path, executor="ray"))
    with pytest.raises(MissingAssetError, match=r"pip install 'persyn\[ray\]'"):
        make_executor(cfg)
