"""Crash safety with real kills: the run is SIGKILLed at every crash point in turn (each
re-run resuming the last), and the result must equal an uninterrupted run, with no finished
generation made twice."""

import json
import os
import subprocess
import sys

import yaml
from conftest import tiny_config

from persyn.config import parse_config
from persyn.core.faults import POINTS
from persyn.pipeline import Pipeline


def _run(cfg_path, crash_at=None):
    env = dict(os.environ)
    env.pop("PERSYN_CRASH_AT", None)
    if crash_at:
        env["PERSYN_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "persyn", "run", str(cfg_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_kill_at_every_point_then_resume_gives_the_uninterrupted_result(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    for t in cfg["teachers"][:2]:
        t["batch_size"] = 2  # several batches per teacher, so a kill lands mid-stage
    with Pipeline(parse_config({**cfg, "output_dir": str(tmp_path / "clean")})) as p:
        clean = p.run().model_dump()
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))

    kills = 0
    for point in POINTS:
        spec = f"{point}:2" if point in ("calibration.batch", "score.batch") else point
        res = _run(cfg_path, spec)
        assert res.returncode == -9, f"not killed at {spec}: rc {res.returncode}\n{res.stdout}{res.stderr}"
        kills += 1
    res = _run(cfg_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert kills == len(POINTS) == 7

    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "dataset.jsonl").read_text() == (tmp_path / "clean" / "dataset.jsonl").read_text()
    ids = [json.loads(x)["id"] for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == summary["n_prompts"] == 12
    # Every generation was made exactly once across the 8 processes.
    assert summary["generations"] == clean["generations"] == 6 * 3 + 6
    assert summary["generation_calls"] == summary["generations"]
    assert json.loads((out / "routing.jsonl").read_text().splitlines()[0])["teacher"]
