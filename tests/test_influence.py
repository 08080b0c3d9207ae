"""Local data influence (Montessori-Instruct): the probe against a direct computation, the
restored state bit for bit, and `persyn influence` resuming after a kill."""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import tiny_config

from persyn.assets import load_causal_lm, load_tokenizer
from persyn.config import parse_config
from persyn.core.errors import InputError
from persyn.influence import InfluenceProbe, tokenized_examples

PAIRS = [
    (f"What is {a} + {b}?", f"{a} + {b} = {a + b}\n#### {a + b}") for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]
]
REFERENCE = [(f"What is {a} - {b}?", f"#### {a - b}") for a, b in [(9, 2), (8, 3), (7, 1)]]


def _warm(tiny_models):
    """A tiny student after two AdamW steps (so the optimizer has moments), and the examples."""
    model = load_causal_lm(tiny_models["chat"], shared=False)
    tok = load_tokenizer(tiny_models["chat"])
    examples = tokenized_examples(PAIRS, tok, "{prompt}", 64)
    reference = tokenized_examples(REFERENCE, tok, "{prompt}", 64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for ex in examples[:2]:
        opt.zero_grad()
        model(input_ids=ex.input_ids[None], labels=ex.labels[None]).loss.backward()
        opt.step()
    return model, opt, tok, examples, reference


def _hf_reference_loss(model, reference) -> float:
    # transformers' own loss, one example at a time (no batching or padding of ours)
    with torch.no_grad():
        return sum(
            float(model(input_ids=e.input_ids[None], labels=e.labels[None]).loss) for e in reference
        ) / len(reference)


def test_influence_is_one_step_then_the_reference_loss_difference(tiny_models):
    model, opt, tok, examples, reference = _warm(tiny_models)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = copy.deepcopy(opt.state_dict())
    probe = InfluenceProbe(model, opt, reference, tok.pad_token_id, lr=5e-3, batch_size=2)
    got = [probe.probe(ex) for ex in examples[2:]]

    for ex, (influence, loss) in zip(examples[2:], got, strict=True):
        # direct: a copy of the warm state, one AdamW step at the probe lr, the loss difference
        twin = copy.deepcopy(model)
        twin.load_state_dict(weights)
        twin.eval()
        twin_opt = torch.optim.AdamW(twin.parameters(), lr=1e-3)
        twin_opt.load_state_dict(copy.deepcopy(opt_state))
        for g in twin_opt.param_groups:
            g["lr"] = 5e-3
        before = _hf_reference_loss(twin, reference)
        own = twin(input_ids=ex.input_ids[None], labels=ex.labels[None]).loss
        own.backward()
        twin_opt.step()
        assert loss == pytest.approx(float(own.detach()), abs=1e-5)
        assert influence == pytest.approx(_hf_reference_loss(twin, reference) - before, abs=1e-5)
        assert abs(influence) > 1e-4  # the step moved the reference loss: not a vacuous match

    # after the probes the student is in the warm-up state again, bit for bit
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    after = opt.state_dict()["state"]
    for i, s in opt_state["state"].items():
        for name, value in s.items():
            assert torch.equal(torch.as_tensor(after[i][name]), torch.as_tensor(value)), (i, name)
    assert all(g["lr"] == 5e-3 for g in opt.param_groups)


def test_an_empty_reference_set_is_refused(tiny_models):
    model, opt, tok, _, _ = _warm(tiny_models)
    with pytest.raises(ValueError, match="the reference set is empty"):
        InfluenceProbe(model, opt, [], tok.pad_token_id, lr=1e-3)


def _dataset(path, pairs, groups=None):
    lines = []
    for i, (q, a) in enumerate(pairs):
        rec = {
            "id": f"x{i}",
            "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
        }
        if groups:
            rec["group"] = groups[i]
            rec["request"] = f"Write a new problem like these ({groups[i]}):"
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(tiny_models, tmp_path, name):
    cfg = tiny_config(tiny_models, tmp_path, output_dir=str(tmp_path / name))
    cfg["influence"] = {
        "warmup": str(_dataset(tmp_path / "warmup.jsonl", PAIRS[:2])),
        "reference": str(_dataset(tmp_path / "reference.jsonl", REFERENCE)),
        "sft": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 2},
        "max_length": 64,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _influence(cfg_path, examples, out, crash_at=None):
    env = {k: v for k, v in os.environ.items() if k != "PERSYN_CRASH_AT"}
    if crash_at:
        env["PERSYN_CRASH_AT"] = crash_at
    cmd = [sys.executable, "-m", "persyn", "influence", str(cfg_path), "--examples", str(examples)]
    return subprocess.run(cmd + ["--output", str(out)], env=env, capture_output=True, text=True, timeout=600)


def test_influence_command_resumes_after_a_kill(tiny_models, tmp_path):
    examples = _dataset(tmp_path / "examples.jsonl", PAIRS * 2, groups=["g0", "g0", "g1", "g1"] * 2)
    examples.write_text(examples.read_text().replace('"x', '"e'))  # ids e0..e7
    clean = _influence(_config(tiny_models, tmp_path, "clean"), examples, tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr
    cfg = _config(tiny_models, tmp_path, "crashed")
    killed = _influence(cfg, examples, tmp_path / "crashed", crash_at="influence.example:3")
    assert killed.returncode == -9
    lines = (tmp_path / "crashed" / "influence.jsonl").read_text().splitlines()
    assert len(lines) == 3
    resumed = _influence(cfg, examples, tmp_path / "crashed")
    assert resumed.returncode == 0, resumed.stderr
    assert "warm-up state loaded" in resumed.stdout and "3 already stored, 5 to probe" in resumed.stdout

    def records(d):
        return [json.loads(x) for x in (d / "influence.jsonl").read_text().splitlines()]

    got, want = records(tmp_path / "crashed"), records(tmp_path / "clean")
    assert [r["id"] for r in got] == [f"e{i}" for i in range(8)]  # each example probed once
    for a, b in zip(got, want, strict=True):  # the saved warm-up state gives the same figures
        assert a["group"] == b["group"]
        for signal in ("influence", "loss"):
            assert a[signal] == pytest.approx(b[signal], abs=1e-6), (a["id"], signal)
        # the same computation (every example scored in the same groups): the same float
        assert a["learnability"] == b["learnability"], a["id"]
    summary = json.loads((tmp_path / "crashed" / "summary.json").read_text())
    assert summary["examples"] == 8 and summary["probed_now"] == 5 and summary["failed"] == 0
    assert summary["helpful"] + summary["harmful"] == 8

    # adapt-generator: pairs within each request's group, then DPO of the generator on them
    from typer.testing import CliRunner

    from persyn.cli import app
    from persyn.synthesis.montessori import preference_pairs

    args = [
        "adapt-generator",
        str(cfg),
        "--influence",
        str(tmp_path / "crashed"),
        "--examples",
        str(examples),
    ]
    args += ["--output", str(tmp_path / "gen"), "--model", tiny_models["chat"], "--rule", "rank"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "gen" / "pairs.json").read_text())
    assert [tuple(p) for p in saved["pairs"]] == preference_pairs(got, "influence", "rank")[0]
    assert saved["note"]["groups"] == 2 and all(
        int(c[1:]) % 4 // 2 == int(r[1:]) % 4 // 2 for c, r in saved["pairs"]
    )  # a pair never crosses groups (e0, e1, e4, e5: g0)
    assert json.loads((tmp_path / "gen" / "persyn_dpo.json").read_text())["pairs"] == len(saved["pairs"])


def test_influence_bad_input_names_the_file(tiny_models, tmp_path):
    from persyn.stages.influence import read_examples, run_influence

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: .*no assistant turn"):
        read_examples(bad)
    cfg_path = _config(tiny_models, tmp_path, "run")
    cfg = parse_config(yaml.safe_load(cfg_path.read_text()))
    (tmp_path / "reference.jsonl").write_text("\n")
    with pytest.raises(InputError, match=r"reference.jsonl: the dataset is empty"):
        run_influence(cfg, _dataset(tmp_path / "ex.jsonl", PAIRS), tmp_path / "out", log=lambda m: None)


def test_preference_pairs_follow_the_grouping_rule():
    from persyn.synthesis.montessori import preference_pairs

    recs = [
        {"id": "a1", "group": "a", "influence": -0.3},
        {"id": "a2", "group": "a", "influence": 0.2},
        {"id": "a3", "group": "a", "influence": -0.1},
        {"id": "b1", "group": "b", "influence": -0.2},  # no harmful example: no pair under sign
        {"id": "b2", "group": "b", "influence": -0.4},
        {"id": "c1", "group": "c", "influence": 0.5},  # alone in its group
        {"id": "d1", "group": "d", "influence": 0.1},
        {"id": "d2", "group": "d", "influence": -0.1},
        {"id": "d3", "group": "d"},  # failed: no signal
    ]
    pairs, note = preference_pairs(recs, "influence", "sign")
    assert sorted(pairs) == [("a1", "a2"), ("a3", "a2"), ("d2", "d1")]  # chosen × rejected, per group
    assert note["rule"] == "sign" and note["both_sides"] == 2 and note["groups_with_pairs"] == 2
    assert preference_pairs(recs, "influence", "auto")[1]["rule"] == "sign"  # 2 of 3 groups
    # rank: the most helpful third against the least helpful third of each group of 2 or more
    pairs, note = preference_pairs(recs, "influence", "rank")
    assert sorted(pairs) == [("a1", "a2"), ("b2", "b1"), ("d2", "d1")] and note["rule"] == "rank"
    # learnability: higher is better; loss: lower is better
    lr = [{"id": "x", "group": "g", "learnability": -1.0}, {"id": "y", "group": "g", "learnability": -2.0}]
    assert preference_pairs(lr, "learnability")[0] == [("x", "y")]
    loss = [{"id": "x", "group": "g", "loss": 1.0}, {"id": "y", "group": "g", "loss": 2.0}]
    assert preference_pairs(loss, "loss")[0] == [("x", "y")]
    # few harmful examples: auto falls back to the ranking, and says so
    mostly_helpful = [
        {"id": f"{g}{i}", "group": g, "influence": -0.1 * (i + 1)} for g in "pq" for i in range(3)
    ]
    assert preference_pairs(mostly_helpful, "influence", "auto")[1]["rule"] == "rank"
    with pytest.raises(InputError, match="no group has both a helpful .* and a harmful"):
        preference_pairs(mostly_helpful, "influence", "sign")
    with pytest.raises(InputError, match="the sign rule needs the influence signal"):
        preference_pairs(lr, "learnability", "sign")


def test_dpo_moves_the_generator_toward_the_chosen_outputs(tiny_models, tmp_path):
    from persyn.influence import example_losses
    from persyn.training.dpo import dpo_generator
    from persyn.training.dpo_config import DPOSettings

    rows = [
        {"prompt": "Write a problem:", "chosen": " What is 2 + 3?", "rejected": " hello hello hello"},
        {"prompt": "Write a problem:", "chosen": " What is 4 + 1?", "rejected": " zzz zzz"},
    ]
    settings = DPOSettings(learning_rate=5e-3, epochs=3, batch_size=2, max_length=64)
    info = dpo_generator(rows, tiny_models["base"], tmp_path / "gen", settings)
    assert info["pairs"] == 2 and info["steps"] == 3 and len(info["margins"]) == 3
    assert (tmp_path / "gen" / "persyn_dpo.json").exists()

    def margin(model_ref):
        # log p(chosen) − log p(rejected), summed over the output tokens
        model, tok = load_causal_lm(model_ref, shared=False), load_tokenizer(model_ref)
        total = 0.0
        for r in rows:
            for side, sign in (("chosen", 1), ("rejected", -1)):
                p = tok(r["prompt"])["input_ids"]
                ids = tok(r["prompt"] + r[side])["input_ids"]
                labels = [-100] * len(p) + ids[len(p) :]
                ex = type("E", (), {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)})
                with torch.no_grad():
                    nll = float(example_losses(model, [ex], tok.pad_token_id)[0])
                total -= sign * nll * (len(ids) - len(p))
        return total

    assert margin(str(tmp_path / "gen")) > margin(tiny_models["base"])
    with pytest.raises(InputError, match="preference pair 0: empty or missing 'rejected'"):
        dpo_generator([{"prompt": "p", "chosen": "c"}], tiny_models["base"], tmp_path / "x")


def test_stored_signals_are_the_last_run_s_only(tmp_path):
    from persyn.stages.influence import stored_signals

    with pytest.raises(InputError, match="summary.json: not found"):
        stored_signals(tmp_path)
    lines = [{"key": "old", "id": "a", "influence": 1.0}, {"key": "new", "id": "a", "influence": -1.0}]
    (tmp_path / "influence.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines) + '{"key": "new", "id"'
    )
    (tmp_path / "summary.json").write_text(json.dumps({"key": "new"}))
    assert stored_signals(tmp_path) == [lines[1]]  # another setting's line and a torn line left out
