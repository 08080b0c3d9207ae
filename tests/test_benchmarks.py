"""The benchmark scripts' own settings stay valid (they run for minutes to hours, so a broken
setting should fail here first, not an hour into a run)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from persyn.config import parse_config
from persyn.engines.reference import render_reference
from persyn.prompts import load_prompts

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_routing_scale_teachers_differ_on_every_prompt(tmp_path):
    # Identical teachers leave the router no pair to learn from (it stopped a 100K run once).
    cfg = parse_config(_module("routing_scale").config(tmp_path, 50))
    prompts, _ = load_prompts(cfg.prompts, cfg.seed)
    styles = [t.style for t in cfg.teachers]
    assert len(prompts) == 50
    for p in prompts:
        texts = [render_reference(p, s) for s in styles]
        assert len(set(texts)) == len(texts), texts


@pytest.mark.parametrize("pool", ["experiment", "demo", "personal-smollm2", "personal-gemma3"])
def test_router_benchmark_pools_are_valid_runs(pool):
    cfg = _module("routers").pool_config(pool)
    run = parse_config({**cfg, "output_dir": "unused"})
    assert run.student is not None and len(run.teachers) >= 3
