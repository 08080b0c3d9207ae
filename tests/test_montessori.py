"""Montessori-Instruct's loop as a synthesis generator (issue 15): iterations of write → PerSyn
answers → influence → DPO, each starting from the last tuned generator, and a resumed run that
trains nothing again."""

import json

import pytest
from conftest import tiny_config, write_prompts

from persyn.config import parse_config
from persyn.core.errors import ConfigError
from persyn.montessori.influence import stored_signals
from persyn.montessori.pairs import preference_pairs
from persyn.pipeline import Pipeline


def _dataset(path, pairs):
    lines = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(path)


def montessori_config(tiny_models, tmp_path, **over):
    cfg = tiny_config(tiny_models, tmp_path)
    cfg["teachers"] = cfg["teachers"][:2]  # synthetic prompts have no reference solution
    cfg["prompts"] = {"source": "synthetic"}
    cfg["quality"] = {"kind": "reward_model", "model": tiny_models["reward"]}
    cfg["calibration"] = {"size": 0.5}
    sums = [
        (f"What is {a} + {b}?", f"{a} + {b} = {a + b}\n#### {a + b}") for a, b in [(1, 2), (3, 4), (5, 6)]
    ]
    cfg["influence"] = {
        "warmup": _dataset(tmp_path / "warmup.jsonl", sums),
        "reference": _dataset(
            tmp_path / "reference.jsonl", [("What is 9 - 2?", "#### 7"), ("What is 8 - 3?", "#### 5")]
        ),
        "sft": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 2},
        "max_length": 64,
    }
    cfg["synthesis"] = {
        "generator": "montessori",
        "model": {
            "engine": "transformers",
            "model": tiny_models["base"],
            "temperature": 1.0,
            "max_new_tokens": 10,
            "batch_size": 8,
        },
        "seeds": {"source": "jsonl", "path": str(write_prompts(tmp_path / "seeds.jsonl", 8))},
        "count": 4,
        "samples": 3,
        "shots": 2,
        "embed_threshold": None,
        "montessori": {
            "iterations": 2,
            "probe_count": 6,
            "rule": "rank",
            "dpo": {"learning_rate": 1e-3, "batch_size": 2, "max_length": 128},
        },
        **over,
    }
    return cfg


def test_montessori_iterations_chain_tuned_generators_and_resume(tiny_models, tmp_path):
    cfg = parse_config(montessori_config(tiny_models, tmp_path))
    with Pipeline(cfg) as p:
        summary = p.run()
    root = tmp_path / "run" / "montessori"
    it1, it2 = root / "iter-1", root / "iter-2"
    dpo1 = json.loads((it1 / "generator" / "persyn_dpo.json").read_text())
    dpo2 = json.loads((it2 / "generator" / "persyn_dpo.json").read_text())
    # iteration 2 tunes iteration 1's generator, and the run's prompts come from iteration 2's
    assert dpo1["model"] == tiny_models["base"]
    assert dpo2["model"] == str((it1 / "generator").resolve())
    syn = json.loads((tmp_path / "run" / "synthetic" / "summary.json").read_text())
    assert syn["model"] == str((it2 / "generator").resolve()) and syn["kept"] == 4
    for it in (it1, it2):
        # the probed examples are PerSyn's answers (routed or calibration picks) to this
        # iteration's prompts, grouped by the request that produced them
        examples = [json.loads(x) for x in (it / "examples.jsonl").read_text().splitlines()]
        cands = {
            c["id"]: c
            for c in map(json.loads, (it / "synthetic" / "candidates.jsonl").read_text().splitlines())
        }
        assert len(examples) == 6 and {e["teacher"] for e in examples} <= {"a", "b"}
        assert all(e["group"] == cands[e["id"]]["group"] for e in examples)
        assert all(e["messages"][0]["content"] == cands[e["id"]]["prompt"] for e in examples)
        # DPO's pairs: the rank rule within groups, as preference_pairs makes them
        pairs = json.loads((it / "generator" / "pairs.json").read_text())
        assert pairs["note"]["rule"] == "rank" and len(pairs["pairs"]) > 0
        group = {e["id"]: e["group"] for e in examples}
        assert all(group[c] == group[r] for c, r in pairs["pairs"])
        # ...read from this iteration's stored influence: the chosen prompt helped the student
        # more (lower influence: a step on it lowers the probe loss more) than the rejected one
        influence = {r["id"]: r["influence"] for r in stored_signals(it / "influence")}
        assert all(influence[c] < influence[r] for c, r in pairs["pairs"])
        records = [r for r in stored_signals(it / "influence") if r["id"] in group]
        want, _ = preference_pairs(records, "influence", "rank", cfg.synthesis.montessori.fraction)
        assert [tuple(x) for x in pairs["pairs"]] == [tuple(x) for x in want]
    # one warm-up state serves both iterations
    assert (root / "warmup" / "warmup.json").exists() and not (it1 / "influence" / "warmup").exists()
    routed = [json.loads(x) for x in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert summary.n_dataset == len(routed) > 0  # the tuned generator's prompts, answered by PerSyn
    # a second run trains and generates nothing again
    stamp = [(d / "generator" / "persyn_dpo.json").stat().st_mtime_ns for d in (it1, it2)]
    with Pipeline(cfg) as p:
        p.run()
        assert p.new_generations == 0
    assert [(d / "generator" / "persyn_dpo.json").stat().st_mtime_ns for d in (it1, it2)] == stamp


def test_montessori_config_errors_name_the_field(tiny_models, tmp_path):
    data = montessori_config(tiny_models, tmp_path)
    del data["influence"]
    with pytest.raises(ConfigError, match="needs an 'influence' section"):
        parse_config(data)
    data = montessori_config(tiny_models, tmp_path)
    data["synthesis"]["model"] = {"engine": "openai", "model": "x", "base_url": "http://localhost:1"}
    with pytest.raises(ConfigError, match="must be a local 'transformers' model, got 'openai'"):
        parse_config(data)
    data = montessori_config(tiny_models, tmp_path)
    data["synthesis"]["montessori"]["signal"] = "loss"
    data["synthesis"]["montessori"]["rule"] = "sign"
    with pytest.raises(ConfigError, match="synthesis.montessori: .*needs signal 'influence'"):
        parse_config(data)
    data = montessori_config(tiny_models, tmp_path, generator="self-instruct")
    with pytest.raises(ConfigError, match="only read with generator 'montessori'"):
        parse_config(data)
