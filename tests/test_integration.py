"""Integration: `persyn run` with the real packaged SmolLM2-135M-Instruct on a handful of prompts."""

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from persyn.cli import app

pytestmark = pytest.mark.integration


def test_persyn_run_with_real_smollm2(tmp_path):
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
        "prompts": {"source": "reasoning_gym", "task": "gsm_symbolic", "size": 6},
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {
                "name": "smollm2-cot",
                "engine": "transformers",
                "model": "smollm2-135m-instruct",
                "system_prompt": "Solve step by step. End with '#### <number>'.",
                "max_new_tokens": 40,
            },
            {
                "name": "smollm2-direct",
                "engine": "transformers",
                "model": "smollm2-135m-instruct",
                "prompt_template": "{prompt}\nReply with the number only.",
                "max_new_tokens": 8,
            },
            {"name": "reference", "engine": "reference"},
        ],
        "calibration": {"size": 4},
        "router": {"encoder": "minilm-l6", "epochs": 2},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["run", str(path)])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["generations"] == 4 * 3 + 2 == summary["generations_new"]
    assert summary["generations_generate_then_select"] == 18
    means = summary["calibration_means"]
    # The reference solutions are right; the student finds its own greedy output more likely.
    assert means["reference"]["quality"] == 1.0
    for name in ("smollm2-cot", "smollm2-direct"):
        assert math.isfinite(means[name]["learnability"])
    assert means["smollm2-cot"]["learnability"] > means["reference"]["learnability"]
    # Cross-validation: each of the 4 calibration prompts held out once (4 folds of one).
    ev = summary["router_eval"]
    assert ev["n_eval"] == 4 and ev["folds"] == 4 and set(ev["kinds"]) == {"prior", "bt-linear", "knn"}
    lines = [json.loads(x) for x in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(x["messages"][1]["content"] for x in lines)
    assert "Route-then-Generate" in res.output
