"""Crash safety with real kills: the run is SIGKILLed at every crash point in turn (each
re-run resuming the last), and the result must equal an uninterrupted run, with no finished
generation made twice."""

import importlib
import json
import os

import forkrun
import pytest
import yaml
from conftest import tiny_config

from persyn.core.faults import POINTS


def _run(cfg_path, crash_at=None):
    env = dict(os.environ)
    env.pop("PERSYN_CRASH_AT", None)
    if crash_at:
        env["PERSYN_CRASH_AT"] = crash_at
    return forkrun.persyn("run", str(cfg_path), env=env, timeout=600)  # a process of its own, forked


# The scenarios that reach every registered crash point, each point listed in the order a run
# reaches it (so every kill lands at a point the resumed run has not passed yet). ":2" kills at
# the second batch, mid-stage.
SCENARIOS = {
    "persyn": (
        {"dataset_formats": ["parquet"]},
        [
            "prepare.prompts",
            "calibration.batch:2",
            "score.learnability",
            "score.quality",
            "embed.chunk",
            "router.cv",
            "router.trained",
            "router.saved",
            "io.replace_dir",  # the retrain swaps its router for the saved one: old one aside
            "route.chunk",
            "route.key",
            "routed.batch",  # the reference teacher answers all its routed prompts in one batch
            "export.dataset",
            "export.formats",
            "export.summary",
        ],
    ),
    "active": ({"calibration": {"size": 8, "select": "active", "rounds": 2}}, ["calibrate.round"]),
    # the verified cascade: the reference's solution is wrong on every third prompt, so those
    # routed prompts escalate to the next teacher (kills after the first tries are stored, then
    # in the resumed run after their checks are scored and after the escalations are stored)
    "verified": ("verified", ["cascade.round", "cascade.round:2"]),
    "oracle": ({"strategy": "oracle"}, ["generate-then-select.batch:2", "strategy.dataset"]),
    "random": ({"strategy": "random"}, ["strategy.batch:2"]),
    "students": (None, ["students.seeded", "students.student"]),
    "synthetic": ("synthetic", ["synthesis.batch:2"]),
    # an openai teacher with batch: (the fake Batch API): killed after an upload, after a create
    # before its id is journaled, while polling and after a download before storing
    "batch": ("batch", ["batch.uploaded", "batch.created", "batch.polled", "batch.downloaded"]),
}
_servers: list = []  # the fake generator server of the "synthetic" scenario, for the session
_batch_servers: list = []  # the fake Batch API server of the "batch" scenario


def scenario_config(tiny_models, tmp_path, name):
    over, _ = SCENARIOS[name]
    if over == "synthetic":  # prompts written by a generator behind a local fake server
        from test_synthesis import _reply, synthetic_config

        from persyn.testing.fake_openai import FakeOpenAIServer

        if not _servers:
            _servers.append(FakeOpenAIServer(answer=_reply))
        cfg = synthetic_config(tiny_models, tmp_path, _servers[0].url)
        for t in cfg["teachers"]:
            t["batch_size"] = 2
        return cfg
    if over == "batch":
        from test_batch import served_config

        from persyn.testing.fake_batch import FakeBatchServer

        if not _batch_servers:
            _batch_servers.append(FakeBatchServer(polls_to_complete=3))
        return served_config(tiny_models, tmp_path, _batch_servers[0].url, {})
    cfg = tiny_config(tiny_models, tmp_path)
    for t in cfg["teachers"]:
        t["batch_size"] = 2  # several batches per teacher, so a kill lands mid-stage
    if over == "verified":
        from conftest import PROBLEMS

        with open(cfg["prompts"]["path"], "w") as f:
            for i, (q, a) in enumerate(PROBLEMS):
                wrong = a if i % 3 else str(int(a) + 1)
                f.write(
                    json.dumps({"prompt": q, "answer": a, "solution": f"Let us compute.\n#### {wrong}"})
                    + "\n"
                )
        cfg["verify"] = {"max_tries": 2}
        return cfg
    if over is None:  # two students sharing one calibration
        student = cfg.pop("student")
        cfg["students"] = [
            {**student, "name": "s1"},
            {**student, "model": tiny_models["chat2"], "name": "s2"},
        ]
    else:
        cfg.update(over)
    return cfg


def outputs(out):
    """What a finished run wrote that must not depend on kills: every dataset file's text."""
    return {str(f.relative_to(out)): f.read_text() for f in sorted(out.rglob("dataset.jsonl"))}


# Crash points that a run of ``persyn run`` never reaches, each with the test that kills there.
ELSEWHERE = {
    "influence.example": "tests/test_influence.py (kill mid-probe, resume)",
    "influence.warmup": "not killed by a test yet (the influence probe's warm-up save)",
}


def test_every_registered_crash_point_is_in_a_scenario():
    # Import every persyn module, so the registry is complete whatever ran before this test.
    import pkgutil

    import persyn

    for mod in pkgutil.walk_packages(persyn.__path__, "persyn."):
        if mod.name.endswith("__main__"):  # importing it would run the CLI
            continue
        try:
            importlib.import_module(mod.name)
        except ImportError:  # an optional extra (vLLM, Ray, ...) not installed here
            pass
    listed = sorted({p.split(":")[0] for _, points in SCENARIOS.values() for p in points})
    assert sorted(listed + list(ELSEWHERE)) == sorted(POINTS) and len(POINTS) >= 20


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kill_at_every_point_then_resume_gives_the_uninterrupted_result(tiny_models, tmp_path, name):
    cfg = scenario_config(tiny_models, tmp_path, name)
    clean_dir = tmp_path / "clean"
    clean_path = tmp_path / "clean.yaml"
    clean_path.write_text(yaml.safe_dump({**cfg, "output_dir": str(clean_dir)}))
    res = _run(clean_path)
    assert res.returncode == 0, res.stderr[-3000:]
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))

    for spec in SCENARIOS[name][1]:
        res = _run(cfg_path, spec)
        assert res.returncode == -9, (
            f"not killed at {spec}: rc {res.returncode}\n{res.stdout}{res.stderr[-3000:]}"
        )
    res = _run(cfg_path)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]

    out = tmp_path / "run"
    assert outputs(out) == outputs(clean_dir) and outputs(out)
    summary = json.loads((out / "summary.json").read_text())
    clean = json.loads((clean_dir / "summary.json").read_text())
    if name == "students":
        for s in ("s1", "s2"):
            assert summary["students"][s]["generation_calls"] == clean["students"][s]["generation_calls"]
        return
    if name == "batch":  # no request went out twice: once for the clean run, once for the kills
        assert set(_batch_servers[0].submitted.values()) == {2}
    # Every generation was made exactly once across all the processes.
    assert summary["generations"] == clean["generations"]
    if name in ("persyn", "active", "verified"):
        assert summary["generation_calls"] == summary["generations"] == clean["generation_calls"]
