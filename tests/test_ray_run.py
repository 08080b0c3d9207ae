"""`persyn run` with `executor: ray` on a local Ray instance with 2 CPUs: the same dataset as the
local executor, and real kills (a worker process, the driver) lose nothing."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from conftest import tiny_config, write_prompts
from raytools import kill_session, worker_pids
from test_kill import _stored, _write_prompts

pytest.importorskip("ray")

OUTPUTS = ("dataset.jsonl", "routing.jsonl", "calibration.jsonl", "failed.jsonl")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a fresh local instance
    env.update(extra)
    return env


def _persyn(cfg: dict, path, **env):
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.Popen(
        [sys.executable, "-m", "persyn", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(**env),
        start_new_session=True,  # its own session: what a killed run leaves is found and ended
    )


def _finish(proc, timeout=600):
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        kill_session(proc.pid)
    assert proc.returncode == 0, out
    return out


def _ray_config(tiny_models, tmp_path, out, **ray_opts):
    cfg = tiny_config(tiny_models, tmp_path, output_dir=str(tmp_path / out), executor="ray")
    cfg["ray"] = {"num_cpus": 2, "shard_size": 2, **ray_opts}
    cfg["teachers"][0]["resources"] = {"replicas": 2}  # two workers share teacher a's shards
    return cfg


def _verified(cfg, tmp_path):
    """The verified cascade on: the reference is wrong on every third prompt, so some routed
    prompts escalate (the Ray executor runs the escalations' rounds too)."""
    cfg["prompts"]["path"] = str(write_prompts(tmp_path / "wrong-thirds.jsonl", 12, wrong_every=3))
    cfg["verify"] = {"max_tries": 2}
    return cfg


def test_ray_run_killed_at_the_driver_resumes_to_the_local_runs_outputs(tiny_models, tmp_path):
    # A Ray worker of 1 CPU runs torch with 1 thread; CPU results depend on the thread count,
    # so the local run uses 1 thread too (see docs/ray.md).
    local = _verified(tiny_config(tiny_models, tmp_path, output_dir=str(tmp_path / "local")), tmp_path)
    _finish(_persyn(local, tmp_path / "local.yaml", OMP_NUM_THREADS="1"))
    s_local = json.loads((tmp_path / "local" / "summary.json").read_text())
    made = s_local["generations"]
    escalated = s_local["verify"]["routed_generations"] - 6
    assert made == s_local["generation_calls"] == 24 + escalated and escalated > 0

    # The Ray driver killed after its 2nd stored shard; the re-run resumes from the store and
    # its outputs are the local run's, byte for byte. (One Ray run that both generates and
    # resumes: a separate uninterrupted Ray run would add a Ray start and test nothing more.)
    cfg = _verified(_ray_config(tiny_models, tmp_path, "crashed"), tmp_path)
    crashed = _persyn(cfg, tmp_path / "crashed.yaml", PERSYN_CRASH_AT="calibration.batch:2")
    crashed.communicate(timeout=600)
    kill_session(crashed.pid)
    assert crashed.returncode == -signal.SIGKILL
    stored = _stored(tmp_path / "crashed" / "store.sqlite")
    assert 0 < stored < 18
    _finish(_persyn(cfg, tmp_path / "crashed.yaml"))
    summary = json.loads((tmp_path / "crashed" / "summary.json").read_text())
    assert summary["generations_new"] == made - stored  # nothing stored was generated again
    assert summary["generation_calls"] == made and summary["verify"] == s_local["verify"]
    for name in OUTPUTS:
        assert (tmp_path / "crashed" / name).read_text() == (tmp_path / "local" / name).read_text(), name


def test_killing_a_ray_worker_mid_run_completes_the_run(tiny_models, tmp_path):
    n = 40
    cfg = _ray_config(tiny_models, tmp_path, "run", shard_size=4)
    _write_prompts(tmp_path / "many.jsonl", n)
    cfg["prompts"]["path"] = str(tmp_path / "many.jsonl")
    for t in cfg["teachers"][:2]:
        t.update(max_new_tokens=48, batch_size=1)
    db = tmp_path / "run" / "store.sqlite"

    proc = _persyn(cfg, tmp_path / "c.yaml")
    killed = None
    deadline = time.time() + 300
    while killed is None and proc.poll() is None and time.time() < deadline:
        busy = worker_pids("run")
        if busy and _stored(db) >= 5:
            os.kill(busy[0], signal.SIGKILL)  # a real kill of a worker process, mid-shard
            killed = busy[0]
        time.sleep(0.02)
    assert killed is not None, "no worker was killed: the run finished too soon"
    _finish(proc)

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    total = 20 * 3 + 20  # calibration: 20 prompts x 3 teachers; routed: 20 prompts, one each
    assert summary["generations"] == summary["generation_calls"] == total
    assert summary["failed"] == 0
    ids = [json.loads(x)["id"] for x in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == n  # every prompt present once
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == total
