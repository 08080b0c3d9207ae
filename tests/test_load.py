"""Load held: ~1,000 requests of engine: openai at concurrency 64 against a local fake server
that injects 429s (millisecond Retry-After), 500s, stalls and dropped connections: nothing lost,
nothing duplicated, every exhausted retry a failed item; and a kill in the middle of a load run
resumes without repeating a stored response. (Throughput and memory: benchmarks/load.py.)"""

import json
import os
import subprocess
import sys

import yaml
from conftest import tiny_config

from persyn.config import make_teacher
from persyn.core.records import Prompt
from persyn.engines.openai_engine import OpenAIEngine
from persyn.testing.fake_openai import FakeOpenAIServer, answer_of

FAULTS = {"429": 0.03, "500": 0.03, "stall": 0.01, "drop": 0.02}


def served(url, **over):
    cfg = dict(
        name="served",
        engine="openai",
        base_url=url,
        model="fake-teacher",
        concurrency=64,
        timeout=0.5,
        max_retries=4,
        batch_size=50,
    )
    return {**cfg, **over}


def test_a_thousand_requests_under_faults_lose_and_repeat_nothing():
    prompts = [Prompt(f"p{i}", f"Load prompt {i}: what is {i} + {i}?") for i in range(1000)]
    with FakeOpenAIServer(latency_s=0.002, rates=FAULTS, stall_s=1.0, seed=0) as srv:
        engine = OpenAIEngine(make_teacher(**served(srv.url)), 0)
        got = [item for batch in engine.generate(prompts) for item in batch]
        injected = dict(srv.faults)
    # Every prompt comes back exactly once: answered, or failed with its reason.
    assert sorted(pid for pid, _ in got) == sorted(p.id for p in prompts)
    text = {p.id: p.text for p in prompts}
    ok = [(pid, c) for pid, c in got if c.error is None]
    failed = [(pid, c) for pid, c in got if c.error is not None]
    assert all(c.text == f"#### {answer_of(text[pid])}" for pid, c in ok)
    assert all(c.error.startswith("failed after 5 attempt(s)") for _, c in failed)
    # The faults were really there (about 9% of ~1,100 requests), and retries absorbed them.
    assert sum(injected.values()) > 50 and set(injected) == set(FAULTS)
    assert len(ok) >= 990


def test_a_kill_mid_load_resumes_without_repeating_a_stored_response(tiny_models, tmp_path):
    path = tmp_path / "load.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"Question {i}?", "answer": str(i)}) + "\n" for i in range(600))
    )
    with FakeOpenAIServer(latency_s=0.002, rates={"429": 0.03, "500": 0.03, "drop": 0.02}, seed=1) as srv:
        cfg = tiny_config(tiny_models, tmp_path, n=4)
        cfg["prompts"] = {"source": "jsonl", "path": str(path)}
        cfg["teachers"] = [served(srv.url, name="one"), served(srv.url, name="two")]
        cfg["strategy"] = "random"  # every prompt to one of the two served teachers, no calibration
        cfg_path = tmp_path / "c.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "PERSYN_CRASH_AT": "strategy.batch:4"}
        run = [sys.executable, "-m", "persyn", "run", str(cfg_path)]
        res = subprocess.run(run, env=env, capture_output=True, text=True)
        assert res.returncode == -9, res.stderr[-2000:]
        env.pop("PERSYN_CRASH_AT")
        res = subprocess.run(run, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    lines = (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()
    assert summary["generations"] == 600
    # Every response stored once across both processes: the re-run asked only for the rest.
    import sqlite3

    db = sqlite3.connect(tmp_path / "run" / "store.sqlite")
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT prompt_id) FROM generations").fetchone() == (600, 600)
    assert len(lines) + summary["failed"] == 600
