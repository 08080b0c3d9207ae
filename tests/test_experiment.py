"""persyn experiment end to end at the smallest scale on the tiny models."""

import csv
import json
import re
from pathlib import Path

import pytest
from conftest import tiny_config
from typer.testing import CliRunner

from persyn.cli import app
from persyn.core.errors import ConfigError, InputError
from persyn.experiment.config import parse_experiment
from persyn.experiment.runner import Experiment

EVAL = [
    ("What is 4 + 4?", "8"),
    ("What is 3 * 5?", "15"),
    ("What is 20 - 9?", "11"),
    ("How many legs do 3 cats have?", "12"),
]


def experiment_dict(tiny_models, tmp_path, **over):
    run = tiny_config(tiny_models, tmp_path, n=8)
    run.pop("output_dir")
    run["calibration"] = {"size": 4}
    run["student"]["family"] = "tiny"
    run["teachers"][0]["family"] = "tiny"
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a in EVAL))
    exp = {
        "output_dir": str(tmp_path / "exp"),
        "run": run,
        "strategies": ["persyn", "oracle", "strongest", "random", "car"],
        "seeds": [0, 1],
        "sft": {"epochs": 1, "batch_size": 4, "max_length": 128},
        "eval": {"prompts": {"source": "jsonl", "path": str(eval_path)}, "max_new_tokens": 8},
        "sweeps": {"alpha": [0.0, 1.0], "calibration_size": [4, 6]},
    }
    exp.update(over)
    return exp


def test_experiment_smallest_scale(tiny_models, tmp_path):
    exp = parse_experiment(experiment_dict(tiny_models, tmp_path))
    logs = []
    rows = Experiment(exp, log=logs.append).run()
    out = tmp_path / "exp"
    assert rows[0]["strategy"] == "student (no SFT)"
    assert len(rows) == 1 + 5 * 2
    for r in rows:
        assert 0.0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1.0 and r["n_eval"] == 4
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["strategy"] for r in table] == [r["strategy"] for r in rows]
    md = (out / "results.md").read_text()
    # One accuracy row per strategy, with its seed count, its training lines and its generations
    # (the heading "# persyn experiment results" alone would satisfy `"persyn" in md`).
    for name, seeds in (("student (no SFT)", 1), *((s, 2) for s in exp.strategies)):
        first = next(r for r in rows if r["strategy"] == name)
        assert re.search(
            rf"^\| {re.escape(name)} \| {seeds} \| \d\.\d{{3}} ± \d\.\d{{3}} \| .* \| "
            rf"{first['n_train']} \| {first['generations']} \|$",
            md,
            flags=re.M,
        ), name
    assert re.search(r"^\| calibration_size \| 4 \| 4 \| ", md, flags=re.M)  # the sweep row
    for png in ("accuracy.png", "routing.png", "generations.png", "sweeps.png"):
        assert (out / png).stat().st_size > 1000
    gens = {r["strategy"]: int(r["generations"]) for r in table}
    assert gens["oracle"] == 8 * 3 and gens["persyn"] == 4 * 3 + 4 and gens["random"] == 8
    # Every evaluation is keyed by (dataset, settings, seed): a re-run trains and evaluates nothing.
    evals = sorted((out / "evals").glob("*.json"))
    before = {p.name: p.stat().st_mtime_ns for p in evals}
    rows2 = Experiment(exp, log=logs.append).run()
    assert [r["accuracy"] for r in rows2] == [r["accuracy"] for r in rows]
    assert {p.name: p.stat().st_mtime_ns for p in sorted((out / "evals").glob("*.json"))} == before
    assert not (out / "models").exists() or not any((out / "models").iterdir())  # deleted after eval
    check_seeds_and_paired(out, table, exp)
    sweeps = [json.loads(p.read_text()) for p in sorted((out / "sweeps").glob("*/sweep.json"))]
    assert {(s["sweep"], s["n_calibration"]) for s in sweeps} >= {
        ("calibration_size", 4),
        ("calibration_size", 6),
    }


def check_seeds_and_paired(out, table, exp):
    import sqlite3

    import numpy as np

    from persyn.store import Store

    # Each seed is its own run: one prompt set, its own calibration draw; the seed-1 store
    # started from seed 0's, so every (teacher, prompt) response was generated exactly once.
    cal, texts = {}, {}
    for seed in (0, 1):
        with Store(out / "run" / f"seed-{seed}" / "store.sqlite") as st:
            cal[seed] = sorted(p.id for p in st.prompts(calibration=True))
            texts[seed] = sorted(p.text for p in st.prompts())
            calls, keys = st.generation_calls(), st.generation_keys()
    assert texts[0] == texts[1] and cal[0] != cal[1] and len(cal[0]) == len(cal[1]) == 4
    assert calls == len(keys) == 8 * 3  # the Oracle needs every teacher on every prompt
    with sqlite3.connect(out / "run" / "seed-0" / "store.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key='generation_calls'").fetchone()[0] == "24"

    # The paired statistics against a direct computation from the per-prompt records.
    def correct(strategy):
        mats = []
        for r in sorted((r for r in table if r["strategy"] == strategy), key=lambda r: r["seed"]):
            recs = json.loads((out / "evals" / f"{r['eval_key']}.json").read_text())["records"]
            mats.append([float(x["correct"]) for x in recs])  # held-out order
        return np.array(mats)

    with open(out / "paired.csv") as f:
        paired = {r["b"]: r for r in csv.DictReader(f)}
    assert set(paired) == {"student (no SFT)", *(s for s in exp.strategies if s != "persyn")}
    a = correct("persyn")
    for other in ("oracle", "random", "student (no SFT)"):
        b = correct(other)
        b = np.repeat(b, 2, 0) if len(b) == 1 else b
        per_seed = a.mean(1) - b.mean(1)
        row = paired[other]
        assert float(row["mean"]) == pytest.approx(per_seed.mean())
        assert json.loads(row["per_seed"]) == pytest.approx(per_seed.tolist())
        assert float(row["seed_std"]) == pytest.approx(per_seed.std(ddof=1))
        diff = a.mean(0) - b.mean(0)
        boot = diff[np.random.default_rng(0).integers(0, len(diff), (2000, len(diff)))].mean(1)
        assert float(row["low"]) == pytest.approx(np.percentile(boot, 2.5))
        assert float(row["high"]) == pytest.approx(np.percentile(boot, 97.5))
    md = (out / "results.md").read_text()
    o = paired["oracle"]
    assert f"| persyn − oracle | {float(o['mean']):+.3f}" in md


def test_experiment_two_students_personalisation_matrix(tiny_models, tmp_path):
    exp = experiment_dict(tiny_models, tmp_path, strategies=["persyn", "strongest"], seeds=[0, 1], sweeps={})
    student = exp["run"].pop("student")
    exp["run"]["students"] = [{**student, "name": "one"}, {"model": tiny_models["chat2"], "name": "two"}]
    exp["student_strategies"] = {"two": ["persyn"]}
    rows = Experiment(parse_experiment(exp), log=lambda m: None).run()
    out = tmp_path / "exp"
    got = {(r["student"], r["strategy"]) for r in rows}
    assert got == {
        ("one", "student (no SFT)"),
        ("one", "persyn"),
        ("one", "strongest"),
        ("one", "persyn (for two)"),
        ("two", "student (no SFT)"),
        ("two", "persyn"),
        ("two", "persyn (for one)"),
    }
    assert len(rows) == 2 + 5 * 2
    # Student one on two's dataset is trained on exactly two's PerSyn dataset of that seed.
    for seed in (0, 1):
        own = out / "run" / f"seed-{seed}" / "students" / "two" / "strategies" / "persyn" / "dataset.jsonl"
        assert own.exists()
    with open(out / "paired.csv") as f:
        paired = list(csv.DictReader(f))
    cross = {(p["student"], p["b"]): float(p["mean"]) for p in paired if p["b"].startswith("persyn (for")}
    acc = {}
    for r in rows:
        acc.setdefault((r["student"], r["strategy"]), []).append(r["accuracy"])
    for st, other in (("one", "two"), ("two", "one")):
        direct = sum(acc[(st, "persyn")]) / 2 - sum(acc[(st, f"persyn (for {other})")]) / 2
        assert cross[(st, f"persyn (for {other})")] == pytest.approx(direct)
    md = (out / "results.md").read_text()
    assert "## Personalisation matrix" in md and "## one: Accuracy" in md and "## two: Accuracy" in md
    assert re.search(r"^\| two \| persyn − persyn \(for one\) \| [+-]\d\.\d{3}", md, flags=re.M)
    # No teacher response was generated twice over 2 seeds × 2 students.
    from persyn.store import Store

    with Store(out / "run" / "seed-1" / "students" / "two" / "store.sqlite") as st:
        assert st.generation_calls() == len(st.generation_keys())


def cal_ids(run_dir):
    from persyn.store import Store

    with Store(run_dir / "store.sqlite") as st:
        return {p.id for p in st.prompts(calibration=True)}


def test_experiment_alpha_and_epochs_by_validation(tiny_models, tmp_path, monkeypatch):
    import persyn.train

    fine_tunes = []  # (dataset content, settings) of every fine-tune made
    real_sft = persyn.train.sft

    def counting_sft(dataset, *args, **kwargs):
        fine_tunes.append((Path(dataset).read_text(), args[2].model_dump_json()))
        return real_sft(dataset, *args, **kwargs)

    monkeypatch.setattr(persyn.train, "sft", counting_sft)
    exp = experiment_dict(tiny_models, tmp_path, strategies=["persyn", "persyn (prior)"], seeds=[0])
    exp["variants"] = {"persyn (prior)": {"router": {"kind": "prior"}}}  # a strategy of its own
    val = tmp_path / "val.jsonl"
    val_rows = [
        ("What is 6 + 1?", "7"),
        ("What is 9 - 2?", "7"),
        ("What is 3 * 5?", "15"),
    ]  # 3 * 5: a test prompt
    val.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a in val_rows))
    exp["validation"] = {"prompts": {"source": "jsonl", "path": str(val)}, "max_new_tokens": 8}
    exp["sweeps"] = {"alpha": [0.0, 1.0], "choose_alpha": True, "sft_epochs": [0.5, 1.0]}
    logs = []
    Experiment(parse_experiment(exp), log=logs.append).run()
    out = tmp_path / "exp"
    assert any("validation: 2 prompts (1 dropped" in m for m in logs)
    with open(out / "validation.csv") as f:
        val_table = list(csv.DictReader(f))
    alphas = [r for r in val_table if r["sweep"] == "alpha"]
    assert [float(r["value"]) for r in alphas] == [0.0, 1.0]
    for r in val_table:  # evaluated on the validation prompts, never the test set
        recs = json.loads((out / "evals" / f"{r['eval_key']}.json").read_text())["records"]
        assert [x["prompt"] for x in recs] == ["What is 6 + 1?", "What is 9 - 2?"]
    accs = {float(r["value"]): float(r["accuracy"]) for r in alphas}
    top = max(accs.values())
    tied = sorted(a for a, v in accs.items() if v == top)
    chosen = 0.4 if 0.4 in tied else tied[0]  # the run's α (0.4, tiny_config's) wins a tie
    run_cfg = json.loads((out / "run" / "seed-0" / "run_config.json").read_text())
    assert run_cfg["alpha"] == chosen
    md = (out / "results.md").read_text()
    assert f"Chosen: student α = {chosen}." in md
    epochs = [r for r in val_table if r["sweep"] == "sft_epochs"]
    steps = [int(r["steps"]) for r in epochs]
    assert [float(r["value"]) for r in epochs] == [0.5, 1.0] and steps[0] < steps[1]
    assert re.search(rf"^\| 1.0 \| {steps[1]} \| \d\.\d{{3}} \|", md, flags=re.M)
    # The variant: PerSyn on the run with router.kind prior, which sends every prompt to one teacher.
    variant = out / "run" / "seed-0" / "variants" / "persyn-prior"
    router = json.loads((variant / "router" / "router.json").read_text())
    assert router["kind"] == "prior" and run_cfg["router"]["kind"] != "prior"
    lines = [json.loads(x) for x in (variant / "strategies/persyn/dataset.jsonl").read_text().splitlines()]
    with open(out / "results.csv") as f:
        variant_rows = [r for r in csv.DictReader(f) if r["strategy"] == "persyn (prior)"]
    routed = json.loads(variant_rows[0]["routing"])
    assert len(variant_rows) == 1 and sum(routed.values()) == len(lines)
    assert len({x["teacher"] for x in lines if x["id"] not in cal_ids(variant)}) == 1
    # A model the validation sweeps trained is kept for the main run, which trains it again
    # otherwise: every fine-tune is made once, and none is left on disk.
    assert len(fine_tunes) == len(set(fine_tunes)) and len(fine_tunes) < len(val_table) + 2
    assert not (out / "models").exists()


def test_experiment_config_errors(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match="unknown strategy 'best'"):
        parse_experiment(experiment_dict(tiny_models, tmp_path, strategies=["best"]))
    bad = experiment_dict(tiny_models, tmp_path, strategies=["family-strong"])
    bad["run"]["student"]["family"] = "llama"
    with pytest.raises(ConfigError, match="no teacher has family 'llama'"):
        parse_experiment(bad)
    with pytest.raises(ConfigError, match="--scale needs run.prompts.size"):
        parse_experiment(experiment_dict(tiny_models, tmp_path), scale=2.0)  # a jsonl source
    scaled = experiment_dict(tiny_models, tmp_path)
    scaled["run"]["prompts"]["size"] = 4
    assert parse_experiment(scaled, scale=2.0).run["prompts"]["size"] == 8
    # a scale below 1 also applies the `small` overrides (a quick look); 1 and above do not
    scaled["small"] = {"seeds": [0], "strategies": ["persyn"], "run": {"router": {"kind": "prior"}}}
    small = parse_experiment(scaled, scale=0.5)
    assert small.seeds == [0] and small.strategies == ["persyn"] and small.run["prompts"]["size"] == 4
    assert small.run["router"] == {**scaled["run"]["router"], "kind": "prior"}  # merged, not replaced
    full = parse_experiment(scaled, scale=1.0)
    assert full.seeds == scaled["seeds"] and full.strategies == scaled["strategies"]
    with pytest.raises(ConfigError, match="unknown strategy 'persyn-x'"):
        parse_experiment(experiment_dict(tiny_models, tmp_path, strategies=["persyn-x"]))
    bad_variant = experiment_dict(tiny_models, tmp_path, strategies=["v"], variants={"v": {"alpha": 3}})
    with pytest.raises(ConfigError, match="variants.v"):
        parse_experiment(bad_variant)
    named = experiment_dict(tiny_models, tmp_path, student_strategies={"nobody": ["persyn"]})
    with pytest.raises(ConfigError, match="no student named 'nobody'"):
        parse_experiment(named)
    with pytest.raises(ConfigError, match="sweeps.choose_alpha needs a validation split"):
        parse_experiment(
            experiment_dict(tiny_models, tmp_path, sweeps={"alpha": [0.4], "choose_alpha": True})
        )
    with pytest.raises(ConfigError, match="sft"):
        parse_experiment(experiment_dict(tiny_models, tmp_path, sft={"methd": "full"}))


def test_experiment_refuses_an_overlapping_eval_set(tiny_models, tmp_path):
    exp = experiment_dict(tiny_models, tmp_path, strategies=["random"], seeds=[0], sweeps={})
    overlap = tmp_path / "overlap.jsonl"
    overlap.write_text(json.dumps({"prompt": "What is 2 + 3?", "answer": "5"}) + "\n")  # a training prompt
    exp["eval"]["prompts"]["path"] = str(overlap)
    with pytest.raises(InputError, match="overlaps the training prompts.*What is 2 \\+ 3"):
        Experiment(parse_experiment(exp), log=lambda m: None).run()
    exp["eval"]["exclude_training_prompts"] = True
    overlap.write_text(overlap.read_text() + json.dumps({"prompt": "What is 40 + 2?", "answer": "42"}) + "\n")
    rows = Experiment(parse_experiment(exp), log=lambda m: None).run()
    assert rows[0]["n_eval"] == 1  # the training prompt was dropped, the other kept
    yaml_path = tmp_path / "exp.yaml"
    yaml_path.write_text("output_dir: x\nrun: {}\nseeds: []\n")
    res = CliRunner().invoke(app, ["experiment", str(yaml_path)])
    assert res.exit_code == 2 and "seeds" in res.output
