"""experiments/instruction_probe.py: the instruction setting's probe (issue 46)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import instruction_probe as probe  # noqa: E402


def test_the_cascade_figures_count_first_tries_and_escalations():
    passed = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
    got = probe.cascade_figures(passed, [0, 1, 2])
    # first try passes on prompt 0; within two tries on prompts 0 and 1; three prompts escalate
    assert got == {
        "order": [0, 1, 2],
        "first_try_pass": 0.25,
        "pass_within_tries": 0.5,
        "expected_tries": 1.75,
    }


def test_the_probe_runs_on_tiny_models_and_its_figures_agree(tiny_models, tmp_path):
    teachers = [
        {"name": "a", "engine": "transformers", "model": tiny_models["chat"], "max_new_tokens": 8},
        {"name": "b", "engine": "transformers", "model": tiny_models["chat2"], "max_new_tokens": 8},
    ]
    cfg = probe.config(6, tmp_path, {"model": tiny_models["chat"]}, teachers)
    cfg["router"]["encoder"] = tiny_models["encoder"]
    res = probe.probe_student(cfg, "tiny")
    assert res["names"] == ["a", "b"] and res["n_prompts"] == 6 and len(res["examples"]) == 6
    for t in ("a", "b"):
        fig = res["teachers"][t]
        # a random model rarely ends on its own within its 8 tokens: most responses are cut there
        assert fig["tokens"] <= 8 and fig["truncated"] >= 0.5
        assert 0.0 <= fig["pass"] <= fig["share"] <= 1.0
    # every instruction of every prompt is checked once per teacher
    n_instructions = sum(v["n"] for k, v in res["types"].items() if k.endswith("|a"))
    assert n_instructions == sum(v["n"] for k, v in res["types"].items() if k.endswith("|b")) >= 6
    assert sum(res["picks"].values()) <= 6
    assert res["oracle_pass"] >= max(res["teachers"][t]["pass"] for t in ("a", "b"))
