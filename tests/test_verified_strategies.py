"""Verified datasets of every strategy (``persyn select -s NAME --verified``, the experiment arm
``NAME-verified``): single-teacher strategies keep exactly their passing lines, with nothing
generated; Generate-then-Select ones re-pick among the passing responses."""

import json
import sqlite3

import pytest
from conftest import PROBLEMS, tiny_config
from typer.testing import CliRunner

from persyn.cli import app
from persyn.config import parse_config
from persyn.core.errors import ConfigError
from persyn.experiment.config import parse_experiment
from persyn.experiment.runner import Experiment
from persyn.pipeline import Pipeline
from persyn.scoring.combine import Candidate, pick_passing
from persyn.selection.verified import split_verified

N = 10
WRONG = {2, 5, 8}  # prompts whose reference solution ends in a wrong answer


def write_mixed_prompts(path, n=N):
    """Prompts whose ``solution`` (what the reference teacher answers) is right, except for the
    ``WRONG`` ones, whose final line is off by one; the verifier checks against ``answer``."""
    with open(path, "w") as f:
        for i, (q, a) in enumerate(PROBLEMS[:n]):
            final = str(int(a) + 1) if i in WRONG else a
            f.write(
                json.dumps({"prompt": q, "answer": a, "solution": f"Let us compute.\n#### {final}"}) + "\n"
            )
    return path


def mixed_config(tiny_models, tmp_path, n=N):
    cfg = tiny_config(tiny_models, tmp_path, n=n)
    cfg["prompts"]["path"] = str(write_mixed_prompts(tmp_path / "mixed.jsonl", n))
    cfg["calibration"] = {"size": 4}
    return cfg


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def generation_rows(out):
    with sqlite3.connect(out / "store.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]


WRONG_TEXTS = {PROBLEMS[i][0] for i in WRONG}


def wrong_ids(pipe):
    return {p.id for p in pipe.store.prompts() if p.text in WRONG_TEXTS}


def test_split_verified_and_pick_among_passing():
    assert split_verified("car-verified") == ("car", True)
    assert split_verified("car") == ("car", False)
    assert split_verified("-verified") == ("-verified", False)
    cands = [
        Candidate("a", 0.0, -0.1, reward=0.9),  # the best reward, but it fails
        Candidate("b", 1.0, -2.0, reward=0.5),
        Candidate("c", 1.0, -1.0, reward=0.6),
        Candidate("d", None, None),
    ]
    passes = lambda q: q is not None and q >= 1.0  # noqa: E731
    assert pick_passing(cands, "reward", passes) == "c"
    assert pick_passing(cands, "learnability", passes) == "c"
    assert pick_passing(cands[:1] + cands[3:], "reward", passes) is None


@pytest.mark.parametrize("name", ["car", "strongest"])
def test_single_teacher_verified_is_the_passing_lines_with_nothing_generated(tiny_models, tmp_path, name):
    cfg = mixed_config(tiny_models, tmp_path)
    out = tmp_path / "run"
    with Pipeline(parse_config(cfg)) as p:
        plain = p.build_strategy(name)
        before = generation_rows(out)
        assert before == 4 * 3 + (N - 4)  # calibration by all, one response per other prompt
        verified = p.build_strategy(name, verified=True)
        assert generation_rows(out) == before  # quality scored, nothing generated
        again = p.build_strategy(name)  # the same lines, now with their quality stored
        wrong = wrong_ids(p)
    assert plain.details["teacher"] == "reference"  # always right but on WRONG
    assert again.dataset_hash == plain.dataset_hash  # ids and messages unchanged
    lines = read_jsonl(out / f"strategies/{name}/dataset.jsonl")
    assert len(lines) == N and all(x["quality"] is not None for x in lines)
    vlines = read_jsonl(out / f"strategies/{name}-verified/dataset.jsonl")
    expected = [x for x in lines if x["quality"] is not None and x["quality"] >= 1.0]
    assert [(x["id"], x["teacher"], x["messages"]) for x in vlines] == [
        (x["id"], x["teacher"], x["messages"]) for x in expected
    ]
    assert vlines == expected  # line for line, every field (the format unchanged)
    # The reference is right exactly where its solution is: the WRONG prompts are the ones dropped.
    assert {x["id"] for x in lines} - {x["id"] for x in vlines} == wrong
    assert all(x["source"] == name for x in vlines)
    assert verified.strategy == f"{name}-verified" and verified.n_dataset == N - len(WRONG)
    assert verified.details["verified"] == {
        "kept": N - len(WRONG),
        "dropped": len(WRONG),
        "source": name,
        "pass_quality": 1.0,
    }
    dropped = [f for f in verified.failures if f.stage == "verify"]
    assert {f.prompt_id for f in dropped} == wrong and all("pass_quality 1" in f.error for f in dropped)
    assert verified.generations == plain.generations  # what the strategy itself needs


def test_oracle_and_best_of_n_verified_drop_only_prompts_no_teacher_passed(tiny_models, tmp_path):
    cfg = mixed_config(tiny_models, tmp_path)
    # α = 1: Eq. 2 is learnability alone, so the Oracle often picks a wrong, more learnable
    # response where the reference's passes: the verified Oracle must re-pick, not filter.
    cfg["alpha"] = 1.0
    out = tmp_path / "run"
    with Pipeline(parse_config(cfg)) as p:
        plain = p.build_strategy("oracle")
        before = generation_rows(out)
        assert before == N * 3
        oracle = p.build_strategy("oracle", verified=True)
        best = p.build_strategy("best-of-n", verified=True)
        assert generation_rows(out) == before
        table = p.full_reward_table()
        wrong = wrong_ids(p)
    assert plain.n_dataset == N
    passing = {pid for pid, cands in table.items() if any(c.valid and c.quality >= 1.0 for c in cands)}
    plain_lines = read_jsonl(out / "strategies/oracle/dataset.jsonl")
    assert set(table) == {x["id"] for x in plain_lines}
    assert any(x["quality"] < 1.0 for x in plain_lines if x["id"] in passing)
    assert passing >= set(table) - wrong  # the reference passes everywhere but on WRONG
    for name, by, summary in (("oracle", "reward", oracle), ("best-of-n", "quality", best)):
        lines = read_jsonl(out / f"strategies/{name}-verified/dataset.jsonl")
        assert {x["id"] for x in lines} == passing
        assert all(x["quality"] >= 1.0 and x["source"] == name for x in lines)
        for x in lines:  # the strategy's own pick among the passing responses
            cands = [c for c in table[x["id"]] if c.valid and c.quality >= 1.0]
            top = max(getattr(c, by) for c in cands)
            assert getattr(next(c for c in cands if c.teacher == x["teacher"]), by) == top
        dropped = {f.prompt_id for f in summary.failures if f.stage == "verify"}
        assert dropped == set(table) - passing and dropped <= wrong
        assert summary.details["verified"]["dropped"] == len(dropped)
        assert summary.details["verified"]["kept"] == len(lines) == summary.n_dataset


def test_cli_select_verified(tiny_models, tmp_path):
    cfg = mixed_config(tiny_models, tmp_path, n=6)
    with Pipeline(parse_config(cfg)) as p:
        p.prepare()
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["select", str(out), "-s", "car", "--verified"])
    assert res.exit_code == 0, res.output
    lines = read_jsonl(out / "strategies/car-verified/dataset.jsonl")
    summary = json.loads((out / "strategies/car-verified/summary.json").read_text())
    assert summary["strategy"] == "car-verified" and summary["details"]["verified"]["source"] == "car"
    assert len(lines) == summary["n_dataset"] == 6 - len({i for i in WRONG if i < 6})
    assert not (out / "strategies/car").exists()  # only the verified dataset was asked for


def test_verified_needs_a_threshold_for_a_reward_model(tiny_models, tmp_path):
    cfg = mixed_config(tiny_models, tmp_path, n=4)
    cfg["quality"] = {"kind": "reward_model", "model": tiny_models["reward"]}
    with Pipeline(parse_config(cfg)) as p:
        with pytest.raises(ConfigError, match=r"verify\.pass_quality"):
            p.build_strategy("car", verified=True)
        assert p.store.generation_calls() == 0  # refused before anything ran


def experiment(tiny_models, tmp_path, strategies):
    run = mixed_config(tiny_models, tmp_path, n=6)
    run.pop("output_dir")
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text(json.dumps({"prompt": "What is 4 + 4?", "answer": "8"}) + "\n")
    return {
        "output_dir": str(tmp_path / "exp"),
        "run": run,
        "strategies": strategies,
        "seeds": [0],
        "eval": {"prompts": {"source": "jsonl", "path": str(eval_path)}},
    }


def test_experiment_arm_verified(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match="unknown strategy 'foo-verified'"):
        parse_experiment(experiment(tiny_models, tmp_path, ["car", "foo-verified"]))
    with pytest.raises(ConfigError, match="built-in strategy's name"):
        bad = experiment(tiny_models, tmp_path, ["car"])
        parse_experiment({**bad, "variants": {"car-verified": {"alpha": 0.5}}})
    exp = parse_experiment(experiment(tiny_models, tmp_path, ["car", "car-verified", "oracle-verified"]))
    assert exp.strategies == ["car", "car-verified", "oracle-verified"]
    sets = Experiment(exp, log=lambda m: None).datasets()
    run = tmp_path / "exp/run/seed-0/strategies"
    car_path, car = sets[("student", "car", 0)]
    path, summary = sets[("student", "car-verified", 0)]
    assert path == run / "car-verified/dataset.jsonl" and summary.strategy == "car-verified"
    car_lines, lines = read_jsonl(car_path), read_jsonl(path)
    # car's routed lines were written unscored: the reference is right but on WRONG
    assert [x["id"] for x in lines] == [
        x["id"] for x in car_lines if x["messages"][0]["content"] not in WRONG_TEXTS
    ]
    assert car.details["teacher"] == "reference"
    assert summary.details["verified"]["dropped"] == len(car_lines) - len(lines) > 0
    _, oracle = sets[("student", "oracle-verified", 0)]
    assert oracle.strategy == "oracle-verified" and oracle.details["verified"]["source"] == "oracle"


def test_strategy_seeds_build_an_arm_on_its_own_seeds_only(tiny_models, tmp_path):
    base = experiment(tiny_models, tmp_path, ["car", "strongest"])
    with pytest.raises(ConfigError, match=r"strategy_seeds.car: \[5\] must be a non-empty subset"):
        parse_experiment({**base, "seeds": [0, 1], "strategy_seeds": {"car": [5]}})
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        parse_experiment({**base, "seeds": [0, 1], "strategy_seeds": {"nope": [0]}})
    exp = parse_experiment({**base, "seeds": [0, 1], "strategy_seeds": {"strongest": [1]}})
    sets = Experiment(exp, log=lambda m: None).datasets()
    assert sorted((name, seed) for _, name, seed in sets) == [("car", 0), ("car", 1), ("strongest", 1)]
