"""persyn experiment end to end at the smallest scale on the tiny models."""

import csv
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from conftest import tiny_config
from typer.testing import CliRunner

from persyn.cli import app
from persyn.core.errors import ConfigError, InputError
from persyn.evaluate import wilson_interval
from persyn.experiment.config import parse_experiment
from persyn.experiment.runner import Experiment, schedule

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
        # the tiny teachers' longest response fits (the budget check is tested on its own)
        "eval": {
            "prompts": {"source": "jsonl", "path": str(eval_path)},
            "max_new_tokens": 32,
            "length_margin": 0,
        },
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
        assert r["n_eval"] == 4 and r["accuracy"] == r["correct"] / 4
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(wilson_interval(r["correct"], 4))
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
            rf"(\d+\.\d%|0\.0%) \| {first['n_train']} \| {first['generations']} \| \d+\.\d \|$",
            md,
            flags=re.M,
        ), name
    assert re.search(r"^\| calibration_size \| 4 \| 4 \| ", md, flags=re.M)  # the sweep row
    plots = {
        png: plt.imread(out / png) for png in ("accuracy.png", "routing.png", "generations.png", "sweeps.png")
    }
    assert all(p.ndim == 3 and min(p.shape[:2]) > 100 and p.std() > 0.01 for p in plots.values())
    assert len({p.tobytes() for p in plots.values()}) == 4  # four different figures
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
        assert float(row["prompt_low"]) == pytest.approx(np.percentile(boot, 2.5))
        assert float(row["prompt_high"]) == pytest.approx(np.percentile(boot, 97.5))
        # the seed-aware interval: seeds, then prompts, resampled from one generator
        rng = np.random.default_rng(0)
        s_idx, p_idx = rng.integers(0, 2, (2000, 2)), rng.integers(0, len(diff), (2000, len(diff)))
        grid = np.array([(a - b)[np.ix_(s_idx[k], p_idx[k])].mean() for k in range(2000)])
        assert float(row["low"]) == pytest.approx(np.percentile(grid, 2.5))
        assert float(row["high"]) == pytest.approx(np.percentile(grid, 97.5))
    # strongest and car are the primary comparisons (the default), listed first, Holm-corrected
    with open(out / "paired.csv") as f:
        order = [(r["b"], r["role"]) for r in csv.DictReader(f)]
    assert order[:2] == [("strongest", "primary"), ("car", "primary")]
    assert {role for _, role in order[2:]} == {"exploratory"}
    from persyn.experiment.paired import holm

    adjusted = holm([float(paired["strongest"]["p"]), float(paired["car"]["p"])])
    assert [float(paired[n]["p_holm"]) for n in ("strongest", "car")] == pytest.approx(adjusted)
    assert paired["oracle"]["p_holm"] == ""
    md = (out / "results.md").read_text()
    o = paired["oracle"]
    assert f"| persyn − oracle | exploratory | {float(o['mean']):+.3f}" in md
    # each answer cut by the evaluation budget is counted, per evaluation
    for r in table:
        recs = json.loads((out / "evals" / f"{r['eval_key']}.json").read_text())["records"]
        cut = sum(x["finish_reason"] == "length" for x in recs) / len(recs)
        assert float(r["truncated"]) == pytest.approx(cut)


def test_paired_markdown_says_when_a_seed_aware_interval_has_one_seed():
    from persyn.experiment.results import paired_markdown

    def row(b, n_seeds):
        per_seed = [0.05] * n_seeds
        return {"a": "persyn", "b": b, "role": "exploratory", "mean": 0.05, "low": 0.01, "high": 0.09,
                "prompt_low": 0.01, "prompt_high": 0.09, "per_seed": per_seed, "seed_std": 0.0, "p": 0.01,
                "n_prompts": 100, "n_seeds": n_seeds}  # fmt: skip

    md = "\n".join(paired_markdown([row("car", 3), row("strongest", 1)], None))
    assert "| persyn − car | exploratory | +0.050 ✓ | [+0.010, +0.090] | [+0.010, +0.090] |" in md
    assert "| persyn − strongest | exploratory | +0.050 ✓ | [+0.010, +0.090] (1 seed: prompts only) |" in md


def test_experiment_two_students_personalisation_matrix(tiny_models, tmp_path):
    exp = experiment_dict(tiny_models, tmp_path, strategies=["persyn", "strongest"], seeds=[0, 1], sweeps={})
    student = exp["run"].pop("student")
    exp["run"]["students"] = [{**student, "name": "one"}, {"model": tiny_models["chat2"], "name": "two"}]
    exp["student_strategies"] = {"two": ["persyn"]}
    exp["student_seeds"] = {"two": [1]}  # the second student on one seed only
    logs = []
    rows = Experiment(parse_experiment(exp), log=logs.append).run()
    out = tmp_path / "exp"
    got = sorted((r["student"], r["strategy"], r["seed"] if r["seed"] is not None else -1) for r in rows)
    assert got == sorted(
        [
            ("one", "student (no SFT)", -1),
            ("one", "persyn", 0),
            ("one", "persyn", 1),
            ("one", "strongest", 0),
            ("one", "strongest", 1),
            ("one", "persyn (for two)", 1),
            ("two", "student (no SFT)", -1),
            ("two", "persyn", 1),
            ("two", "persyn (for one)", 1),
        ]
    )
    # Fine-tuned seed by seed: every seed-0 model before any seed-1 one.
    done = [m for m in logs if " fine-tunes, " in m]
    assert [" seed 0:" in m for m in done] == [True, True] + [False] * 5
    # Student one on two's dataset is trained on exactly two's PerSyn dataset of that seed.
    own = out / "run" / "seed-1" / "students" / "two" / "strategies" / "persyn" / "dataset.jsonl"
    assert own.exists() and not (out / "run" / "seed-0" / "students" / "two").exists()
    with open(out / "paired.csv") as f:
        paired = list(csv.DictReader(f))
    cross = {(p["student"], p["b"]): float(p["mean"]) for p in paired if p["b"].startswith("persyn (for")}
    acc = {(r["student"], r["strategy"], r["seed"]): r["accuracy"] for r in rows}
    for st, other in (("one", "two"), ("two", "one")):
        # paired on the seed both have: seed 1
        direct = acc[(st, "persyn", 1)] - acc[(st, f"persyn (for {other})", 1)]
        assert cross[(st, f"persyn (for {other})")] == pytest.approx(direct)
    md = (out / "results.md").read_text()
    assert "## Personalisation matrix" in md and "## one: Accuracy" in md and "## two: Accuracy" in md
    assert re.search(r"^\| two \| persyn − persyn \(for one\) \| [+-]\d\.\d{3}", md, flags=re.M)
    # No teacher response was generated twice over 2 seeds × 2 students.
    from persyn.store import Store

    with Store(out / "run" / "seed-1" / "students" / "two" / "store.sqlite") as st:
        assert st.generation_calls() == len(st.generation_keys())


def test_experiment_schedule_puts_optional_strategies_last(tiny_models, tmp_path):
    exp = experiment_dict(
        tiny_models, tmp_path, strategies=["persyn", "random", "strongest"], optional=["random"]
    )
    e = Experiment(parse_experiment(exp), log=lambda m: None)
    sets = {("student", n, s): None for s in (0, 1) for n in ("random", "persyn", "strongest")}
    assert schedule(sets, e.exp.seeds, list(e.students()), e.exp.optional) == [
        ("student", "persyn", 0),
        ("student", "strongest", 0),
        ("student", "persyn", 1),
        ("student", "strongest", 1),
        ("student", "random", 0),
        ("student", "random", 1),
    ]
    with pytest.raises(ConfigError, match="optional: unknown strategy 'nope'"):
        parse_experiment(experiment_dict(tiny_models, tmp_path, optional=["nope"]))
    with pytest.raises(ConfigError, match=r"student_seeds.student: \[5\] must be a non-empty subset"):
        parse_experiment(experiment_dict(tiny_models, tmp_path, student_seeds={"student": [5]}))
    with pytest.raises(ConfigError, match="headroom: needs two of the strategies"):
        parse_experiment(experiment_dict(tiny_models, tmp_path, headroom=["oracle", "mix"]))
    with pytest.raises(
        ConfigError, match="headroom: 'oracle' is also optional, so it would be fine-tuned only after"
    ):
        parse_experiment(
            experiment_dict(tiny_models, tmp_path, headroom=["oracle", "car"], optional=["oracle"])
        )
    with pytest.raises(ConfigError, match="primary: 'mix' is not a strategy"):
        parse_experiment(experiment_dict(tiny_models, tmp_path, primary=["mix"]))


def test_experiment_stop_rule_ends_a_setting_without_headroom(tiny_models, tmp_path):
    # The tiny random students answer nothing right: oracle − strongest is 0 on the first seed.
    exp = experiment_dict(
        tiny_models, tmp_path, strategies=["persyn", "oracle", "strongest"], seeds=[0, 1], sweeps={}
    )
    exp["headroom"] = ["oracle", "strongest"]
    logs = []
    rows = Experiment(parse_experiment(exp), log=logs.append).run()
    assert {r["seed"] for r in rows} == {None, 0}  # nothing of seed 1 was fine-tuned
    assert any(m.startswith("stop rule: oracle − strongest on seed 0: +0.000") for m in logs)
    md = (tmp_path / "exp" / "results.md").read_text()
    assert "the setting has no headroom; the run stopped" in md


def test_stop_rule_needs_the_interval_above_zero():
    from persyn.experiment.runner import has_headroom

    # The demo pool's first seed: the Oracle's dataset trained a worse student than strongest's.
    assert not has_headroom({"mean": -0.061, "prompt_low": -0.096, "prompt_high": -0.023})
    assert not has_headroom({"mean": 0.01, "prompt_low": -0.02, "prompt_high": 0.04})
    assert not has_headroom({"mean": 0.02, "prompt_low": 0.0, "prompt_high": 0.04})
    assert has_headroom({"mean": 0.05, "prompt_low": 0.01, "prompt_high": 0.09})


def cal_ids(run_dir):
    from persyn.store import Store

    with Store(run_dir / "store.sqlite") as st:
        return {p.id for p in st.prompts(calibration=True)}


def test_experiment_alpha_and_epochs_by_validation(tiny_models, tmp_path, monkeypatch):
    import persyn.pipeline
    import persyn.training.sft

    fine_tunes = []  # (dataset content, settings) of every fine-tune made
    real_sft = persyn.training.sft.sft

    def counting_sft(dataset, *args, **kwargs):
        fine_tunes.append((Path(dataset).read_text(), args[2].model_dump_json()))
        return real_sft(dataset, *args, **kwargs)

    monkeypatch.setattr(persyn.training.sft, "sft", counting_sft)
    exp = experiment_dict(
        tiny_models, tmp_path, strategies=["persyn", "persyn (prior)", "strongest", "oracle"], seeds=[0]
    )
    exp["variants"] = {"persyn (prior)": {"router": {"kind": "prior"}}}  # a strategy of its own
    val = tmp_path / "val.jsonl"
    val_rows = [
        ("What is 6 + 1?", "7"),
        ("What is 9 - 2?", "7"),
        ("What is 3 * 5?", "15"),
    ]  # 3 * 5: a test prompt
    val.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a in val_rows))
    exp["validation"] = {
        "prompts": {"source": "jsonl", "path": str(val)},
        "max_new_tokens": 32,
        "length_margin": 0,
    }
    exp["sweeps"] = {
        "alpha": [0.0, 1.0],
        "choose_alpha": True,
        "sft_epochs": [0.5, 1.0],
        "sft_strategy": ["persyn", "strongest"],
        "choose_epochs": True,
    }
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
    assert [(r["strategy"], float(r["value"])) for r in epochs] == [
        ("persyn", 0.5),
        ("persyn", 1.0),
        ("strongest", 0.5),
        ("strongest", 1.0),
    ]
    steps = [int(r["steps"]) for r in epochs]
    assert steps[0] < steps[1]
    # The epochs of highest mean validation accuracy over both curves (a tie: the fewest),
    # and the main fine-tunes made with them.
    mean = {e: sum(float(r["accuracy"]) for r in epochs if float(r["value"]) == e) for e in (0.5, 1.0)}
    chosen_epochs = min(e for e in mean if mean[e] == max(mean.values()))
    assert f"SFT epochs chosen on validation: {chosen_epochs}." in md
    with open(out / "results.csv") as f:
        main_persyn = next(r for r in csv.DictReader(f) if r["strategy"] == "persyn")
    curve_steps = {float(r["value"]): r["steps"] for r in epochs if r["strategy"] == "persyn"}
    assert main_persyn["train_steps"] == curve_steps[chosen_epochs]
    assert re.search(rf"^\| persyn \| 1.0 \| {steps[1]} \| \d\.\d{{3}} \|", md, flags=re.M)
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
    # The Oracle-gain ratio's best single teacher is chosen on validation: strongest, the only
    # single-teacher strategy, evaluated on the validation prompts as well as the test set.
    picks = [r for r in val_table if r["sweep"] == "best_single"]
    assert [(r["value"], r["seed"]) for r in picks] == [("strongest", "0")]
    recs = json.loads((out / "evals" / f"{picks[0]['eval_key']}.json").read_text())["records"]
    assert [x["prompt"] for x in recs] == ["What is 6 + 1?", "What is 9 - 2?"]
    assert "best single = `strongest` (chosen on the validation split)" in md
    # A model the validation sweeps trained is kept for the main run, which trains it again
    # otherwise: every fine-tune is made once, and none is left on disk.
    assert len(fine_tunes) == len(set(fine_tunes)) and len(fine_tunes) < len(val_table) + 4
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


def test_experiment_refuses_an_eval_budget_below_the_longest_response(tiny_models, tmp_path):
    from persyn.experiment.finetune import response_lengths

    exp = experiment_dict(tiny_models, tmp_path, strategies=["strongest"], seeds=[0], sweeps={})
    exp["eval"].update(max_new_tokens=8, length_margin=4)
    with pytest.raises(
        ConfigError, match=r"eval.max_new_tokens is 8, but .*dataset.jsonl has a response of (\d+) tokens"
    ) as err:
        Experiment(parse_experiment(exp), log=lambda m: None).run()
    longest = int(re.search(r"a response of (\d+) tokens", str(err.value)).group(1))
    assert f"needs at least {longest + 4} new tokens" in str(err.value)
    assert not list((tmp_path / "exp").glob("evals/*.json"))  # refused before any evaluation
    assert "length_check: report" in str(err.value)  # the way out is named
    # length_check: report evaluates at the budget and logs, once, how many responses it cuts
    logged = []
    exp["eval"].update(length_check="report")
    rows = Experiment(parse_experiment(exp), log=logged.append).run()
    assert [r["strategy"] for r in rows] == ["student (no SFT)", "strongest"]
    (line,) = [m for m in logged if "length_check is report" in m]  # once, not before every fine-tune
    path, over, total = re.search(r"budget · (\S+): (\d+) of (\d+) responses are longer than", line).groups()
    lengths = response_lengths(Path(path), exp["run"]["student"]["model"])
    assert (int(over), int(total)) == (sum(n > 8 for n in lengths), len(lengths))
    assert f"(longest {longest} tokens," in line and max(lengths) == longest
    # a budget the data fits: no refusal; length_check is not part of the evaluation's key
    exp["eval"].pop("length_check")
    exp["eval"].update(max_new_tokens=longest + 4)
    rows = Experiment(parse_experiment(exp), log=lambda m: None).run()
    assert [r["strategy"] for r in rows] == ["student (no SFT)", "strongest"]
    exp["eval"].update(length_check="report")
    again = Experiment(parse_experiment(exp), log=lambda m: None).run()
    assert [r["eval_key"] for r in again] == [r["eval_key"] for r in rows]


def test_experiment_refuses_a_validation_budget_before_any_evaluation(tiny_models, tmp_path):
    """A single-teacher arm is also evaluated on validation where the Oracle-gain ratio needs a
    best single teacher: its budget is checked with the test set's, before the untouched
    student's evaluation, not hours later. Without an oracle arm it is not evaluated there."""
    exp = experiment_dict(tiny_models, tmp_path, strategies=["strongest", "oracle"], seeds=[0], sweeps={})
    val = tmp_path / "val.jsonl"
    rows = (("What is 6 + 1?", "7"), ("What is 9 - 2?", "7"))
    val.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a in rows))
    exp["validation"] = {
        "prompts": {"source": "jsonl", "path": str(val)},
        "max_new_tokens": 4,
        "length_margin": 0,
    }
    with pytest.raises(ConfigError, match=r"validation.max_new_tokens is 4, but .*strongest/dataset.jsonl"):
        Experiment(parse_experiment(exp), log=lambda m: None).run()
    assert not list((tmp_path / "exp").glob("evals/*.json"))  # not even the untouched student's
    # no oracle: strongest's validation evaluation would feed nothing, so it is neither made nor checked
    exp["strategies"] = ["strongest"]
    done = Experiment(parse_experiment(exp), log=lambda m: None).run()
    assert [r["strategy"] for r in done] == ["student (no SFT)", "strongest"]
    assert "best_single" not in (
        (tmp_path / "exp" / "validation.csv").read_text()
        if (tmp_path / "exp" / "validation.csv").exists()
        else ""
    )
    # the fine-tune's record keeps how many training lines sft.max_length cut or dropped
    train = json.loads((tmp_path / "exp" / "evals" / f"{done[1]['eval_key']}.json").read_text())["train"]
    assert train["n_truncated"] == 0 and train["n_dropped"] == 0 and train["n_examples"] > 0


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


def test_records_let_a_run_resume_on_a_machine_without_its_directory(tiny_models, tmp_path, monkeypatch):
    import shutil

    import persyn.pipeline
    import persyn.training.sft
    from persyn.experiment.records import RecordCopy

    exp = experiment_dict(tiny_models, tmp_path, strategies=["persyn", "strongest"], seeds=[0], sweeps={})
    records = tmp_path / "committed"
    logs = []
    rows = Experiment(parse_experiment(exp), log=logs.append, records=records, source="exp.yaml").run()
    assert any(m.startswith("[2/2 fine-tunes, ") for m in logs)
    saved = sorted(p.name for p in (records / "evals").glob("*.json"))
    assert saved == sorted(p.name for p in (tmp_path / "exp" / "evals").glob("*.json"))
    assert saved == sorted({f"{r['eval_key']}.json" for r in rows})
    md = (records / "results.md").read_text()
    assert "Config: `exp.yaml`; persyn 0.1.0" in md and "Partial results" not in md
    assert (records / "progress.txt").read_text() == "done\n"
    built = tmp_path / "exp" / "run" / "seed-0" / "strategies" / "persyn"
    kept = records / "datasets" / "student" / "seed-0" / "persyn"
    assert (kept / "dataset.jsonl").read_bytes() == (built / "dataset.jsonl").read_bytes()
    # PerSyn's own run files (routing, calibration, the router's choice) are kept per student and seed
    run_dir, kept_run = tmp_path / "exp" / "run" / "seed-0", records / "runs" / "student" / "seed-0"
    for name, src in (
        ("routing.jsonl", "routing.jsonl"),
        ("summary.json", "summary.json"),
        ("router.json", "router/router.json"),
    ):
        assert (kept_run / name).read_bytes() == (run_dir / src).read_bytes()
    # A fresh machine: the run's directory is gone, the committed records are not. Neither a
    # dataset nor a fine-tune is made again.
    shutil.rmtree(tmp_path / "exp")

    def no_sft(*args, **kwargs):
        raise AssertionError("a recorded fine-tune was made again")

    def no_build(*args, **kwargs):
        raise AssertionError("a recorded dataset was built again")

    monkeypatch.setattr(persyn.training.sft, "sft", no_sft)
    monkeypatch.setattr(persyn.pipeline.Pipeline, "build_strategy", no_build)
    logs.clear()
    again = Experiment(parse_experiment(exp), log=logs.append, records=records).run()
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]
    assert f"restored {len(saved)} evaluation records from {records}" in logs
    assert any("(recorded earlier)" in m for m in logs)
    assert (built / "dataset.jsonl").read_bytes() == (kept / "dataset.jsonl").read_bytes()
    # A dataset recorded under another config's key is not taken (it is built again).
    copy = RecordCopy(tmp_path / "exp", records)
    key = (kept / "key.txt").read_text().strip()
    assert copy.dataset("student", "persyn", 0, "another-config", tmp_path / "d") is None
    recorded = json.loads((kept / "summary.json").read_text())
    assert copy.dataset("student", "persyn", 0, key, tmp_path / "d").dataset_hash == recorded["dataset_hash"]
    assert (tmp_path / "d" / "dataset.jsonl").read_bytes() == (kept / "dataset.jsonl").read_bytes()


def test_experiment_sft_is_typed_and_its_key_part_stays_as_given(tiny_models, tmp_path):
    exp = parse_experiment(experiment_dict(tiny_models, tmp_path))
    assert exp.sft.epochs == 1.0 and exp.sft.batch_size == 4 and exp.sft.lr == 5e-5
    # The sweep points' result keys hash the section as written (an int stays an int).
    assert exp.sft_as_given() == {"epochs": 1, "batch_size": 4, "max_length": 128}
