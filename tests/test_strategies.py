"""Selection strategies: exact picks on hand-made scores, CAR on a worked example, and every
strategy end to end on one store with no response generated twice."""

import json
import re

import pytest
from conftest import tiny_config, write_prompts
from typer.testing import CliRunner

from persyn.cli import app
from persyn.config import PromptsConfig, parse_config
from persyn.core.errors import ConfigError
from persyn.core.records import Prompt, ScoreItem
from persyn.engines.reference import chain_steps, render_reference
from persyn.pipeline import Pipeline
from persyn.scoring.combine import Candidate, combine
from persyn.scoring.means import TeacherMeans
from persyn.scoring.means import calibration_means as teacher_means
from persyn.selection.rules import (
    car_scores,
    family_strongest,
    mix_assign,
    per_prompt_pick,
    random_pick,
    rescaled_quality,
    strongest,
    weakest,
)

NAMES = ["a", "b", "c"]


def table(rows):
    """{pid: [(q, l) per teacher]} → Eq. 2 candidates (alpha 0.5, min-max)."""
    return {
        pid: combine([Candidate(n, q, lv) for n, (q, lv) in zip(NAMES, r, strict=True)], 0.5)
        for pid, r in rows.items()
    }


def test_teacher_means_count_failed_as_zero_quality():
    t = table({"p1": [(1.0, -1.0), (0.0, -0.5), (None, None)], "p2": [(0.0, -3.0), (1.0, -0.5), (1.0, -2.0)]})
    m = teacher_means(t, NAMES)
    assert m["a"].quality == 0.5 and m["a"].learnability == -2.0
    assert m["b"].quality == 0.5 and m["b"].learnability == -0.5
    assert m["c"].quality == 0.5 and m["c"].learnability == -2.0  # failed p1 counts as 0


def test_strongest_weakest_and_ties():
    means = {"a": TeacherMeans(0.2, -1), "b": TeacherMeans(0.8, -1), "c": TeacherMeans(0.8, -2)}
    # b and c tie on quality: the more learnable b wins, in any config order.
    assert strongest(means, NAMES) == strongest(means, ["c", "b", "a"]) == "b"
    assert weakest(means, NAMES, exclude="b") == "a"
    # and the less learnable one is the weakest
    assert weakest(means, ["c", "b", "a"], exclude="a") == "c"
    tied = {n: TeacherMeans(0.5, -1) for n in NAMES}  # tied on everything: the first name
    assert strongest(tied, ["c", "b", "a"]) == "a"
    assert weakest(tied, ["c", "b", "a"], exclude="a") == "b"


def test_family_strong():
    means = {"a": TeacherMeans(0.9, -1), "b": TeacherMeans(0.3, -1), "c": TeacherMeans(0.6, -1)}
    fam = {"a": "qwen", "b": "smollm2", "c": "smollm2"}
    assert family_strongest(means, NAMES, fam, "smollm2") == "c"
    with pytest.raises(ConfigError, match="no teacher has family 'llama'"):
        family_strongest(means, NAMES, fam, "llama")
    with pytest.raises(ConfigError, match="student.family"):
        family_strongest(means, NAMES, fam, None)


def test_car_worked_example():
    # a: quality 0.9, NLL 2.0 → 0.9 / (1 + 0.5·2) = 0.45; b: 0.6, NLL 0.4 → 0.6 / 1.2 = 0.5;
    # c: 0.3, NLL 0.1 → 0.3 / 1.05 = 0.2857…  → CAR picks b, while strongest picks a.
    means = {"a": TeacherMeans(0.9, -2.0), "b": TeacherMeans(0.6, -0.4), "c": TeacherMeans(0.3, -0.1)}
    car = car_scores(means, beta=0.5)
    assert car["a"] == pytest.approx(0.45) and car["b"] == pytest.approx(0.5)
    assert car["c"] == pytest.approx(0.3 / 1.05)
    assert max(car, key=car.get) == "b" and strongest(means, NAMES) == "a"
    assert car_scores(means, beta=0.0) == {"a": 0.9, "b": 0.6, "c": 0.3}  # β = 0: plain quality
    assert car_scores({"a": TeacherMeans(0.0, None)}, 1.0) == {"a": None}
    # Negative reward-model means: rescaled to [0, 1] before CAR (a → 1, b → 0.5, c → 0).
    neg = rescaled_quality(
        {"a": TeacherMeans(-1.0, -2.0), "b": TeacherMeans(-2.0, -0.4), "c": TeacherMeans(-3.0, -0.1)}
    )
    assert [neg[n].quality for n in NAMES] == [1.0, 0.5, 0.0] and neg["b"].learnability == -0.4


def test_per_prompt_picks_oracle_grape_best_of_n():
    t = table({"p": [(1.0, -2.0), (1.0, -0.5), (0.0, -0.1)]})["p"]
    # rewards (α 0.5, min-max): a 0.5·1 + 0.5·0 = 0.5; b 0.5 + 0.5·(1.5/1.9); c 0 + 0.5·1 = 0.5
    assert per_prompt_pick(t, "reward") == "b"
    assert per_prompt_pick(t, "learnability") == "c"  # GRAPE
    # best-of-n: a and b tie on quality → the more learnable b, whatever the order
    assert per_prompt_pick(t, "quality") == per_prompt_pick(t[::-1], "quality") == "b"
    failed = table({"p": [(None, None), (0.0, -1.0), (0.0, -1.0)]})["p"]
    assert per_prompt_pick(failed, "reward") == "b"  # tie b/c, a failed
    assert per_prompt_pick(table({"p": [(None, None)] * 3})["p"], "reward") is None


def test_random_and_mix_are_seeded_and_exact():
    ids = [f"p{i}" for i in range(50)]
    picks = [random_pick(pid, NAMES, 0) for pid in ids]
    assert picks == [random_pick(pid, NAMES, 0) for pid in ids]
    assert set(picks) == set(NAMES)  # 50 draws over 3 teachers
    assert picks != [random_pick(pid, NAMES, 1) for pid in ids]
    mix = mix_assign(ids, "a", "c", (1, 4), seed=0)
    assert sum(v == "a" for v in mix.values()) == 10 and sum(v == "c" for v in mix.values()) == 40
    assert mix == mix_assign(list(reversed(ids)), "a", "c", (1, 4), seed=0)  # order-free
    assert mix != mix_assign(ids, "a", "c", (1, 4), seed=1)


def test_mix_with_only_the_weak_teacher_named(tiny_models, tmp_path):
    from persyn.selection.base import select

    cfg = tiny_config(tiny_models, tmp_path, n=6)
    cfg["calibration"] = {"size": 4}
    cfg["strategy_options"] = {"mix": {"weak": "reference", "ratio": [1, 1]}}  # the strongest one
    with Pipeline(parse_config(cfg)) as p:
        picks, details = select(p.ctx, "mix")
    assert details["weak"] == "reference" and details["strong"] != "reference"
    assert sorted(picks.values()).count("reference") == 3


def test_family_strong_fails_before_generating(tiny_models, tmp_path):
    from persyn.selection.base import select

    cfg = tiny_config(tiny_models, tmp_path, n=6)
    cfg["student"]["family"] = "llama"
    with Pipeline(parse_config(cfg)) as p:
        with pytest.raises(ConfigError, match="no teacher has family 'llama'"):
            select(p.ctx, "family-strong")
        assert p.store.generation_calls() == 0


def test_reference_styles_spell_out_chains():
    assert chain_steps("12 + 7 - 30") == [(12, "+", 7, 19), (19, "-", 30, -11)]
    assert chain_steps("2 - -1") == [(2, "-", -1, 3)]
    assert chain_steps("( 1 + 2 ) * 3") is None
    assert chain_steps("3+4-2") is None  # no spaces: not spelled out, no crash
    p = Prompt("x", "State the final answer: 12 + 7 - 30 =", "-11", "-11", {"expression": "12 + 7 - 30"})
    assert render_reference(p, "answer") == "#### -11"
    assert render_reference(p, "terse") == "12 + 7 = 19\n19 - 30 = -11\n#### -11"
    verbose = render_reference(p, "verbose")
    assert "12 + 7 = 19" in verbose and "So the final answer is -11." in verbose
    assert verbose.endswith("#### -11")
    no_answer = Prompt("y", "q", None, None, {})
    assert render_reference(no_answer, "terse") is None


@pytest.mark.parametrize(
    "task, kwargs",
    [
        ("chain_sum", {"min_terms": 2, "max_terms": 4}),
        ("leg_counting", {"min_animals": 1, "max_animals": 3, "max_instances": 3}),
        ("letter_counting", {"min_words": 3, "max_words": 5}),
        ("gcd", {"min_numbers": 2, "max_numbers": 3, "min_value": 2, "max_value": 200}),
    ],
)
def test_worked_steps_of_every_task_reach_the_task_s_answer(task, kwargs):
    from persyn.engines.worked_steps import worked_steps
    from persyn.prompts import load_prompts
    from persyn.scoring.quality import VerifierScorer

    cfg = PromptsConfig(source="reasoning_gym", task=task, task_kwargs=kwargs, size=60, seed=3)
    prompts, _ = load_prompts(cfg, seed=0)
    items, answers = [], {}
    for p in prompts:
        worked = worked_steps(p.metadata)
        assert worked is not None, p.metadata
        # the last computation line ends in the answer, computed from the metadata alone
        assert worked.steps[-1].terse.rsplit("=", 1)[-1].strip() == p.answer
        terse, verbose = render_reference(p, "terse"), render_reference(p, "verbose")
        assert terse == "\n".join([s.terse for s in worked.steps] + [f"#### {p.answer}"])
        # verbose says every step in words, with every number of its computation line
        assert len(verbose) > len(terse) and len(worked.steps) + 3 == len(verbose.splitlines())
        for step in worked.steps:
            assert set(re.findall(r"\d+", step.terse)) <= set(re.findall(r"\d+", step.verbose))
        for style, text in (("terse", terse), ("verbose", verbose)):
            items.append(ScoreItem(f"{p.id}/{style}", p.text, text))
            answers[f"{p.id}/{style}"] = p.answer
    # and the answer check the pipeline uses scores every one of them right
    scores = {k: q for batch in VerifierScorer(answers).score(items) for k, q, _ in batch}
    assert set(scores.values()) == {1.0}


def test_worked_steps_need_their_fields():
    from persyn.engines.worked_steps import worked_steps

    assert worked_steps({"source_dataset": "gcd", "task_metadata": {"numbers": [12]}}) is None
    assert (
        worked_steps({"source_dataset": "leg_counting", "task_metadata": {"animals": {"unicorn": 1}}}) is None
    )
    assert worked_steps({"source_dataset": "spell_backward", "task_metadata": {"word": "sun"}}) is None
    gcd = worked_steps({"source_dataset": "gcd", "task_metadata": {"numbers": [12, 18, 8]}})
    assert [s.terse for s in gcd.steps] == [
        "18 = 1 * 12 + 6",
        "12 = 2 * 6 + 0",
        "8 = 1 * 6 + 2",
        "6 = 3 * 2 + 0",
        "gcd = 2",
    ]
    # a prompt of any source with an arithmetic chain in its metadata is still spelled out
    assert worked_steps({"expression": "1 + 2"}).steps[0].terse == "1 + 2 = 3"


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_every_strategy_on_one_store_generates_nothing_twice(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path, n=10)
    cfg["teachers"][0]["family"] = "tiny"
    cfg["student"]["family"] = "tiny"
    cfg["calibration"] = {"size": 4}
    with Pipeline(parse_config(cfg)) as p:
        p.run()
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(
        app, ["select", str(out), "-s", "persyn", "-s", "strongest", "-s", "car", "-s", "random"]
    )
    assert res.exit_code == 0, res.output
    # persyn's strategy dataset is the run's own dataset.
    assert read_jsonl(out / "strategies/persyn/dataset.jsonl") == read_jsonl(out / "dataset.jsonl")
    strongest_summary = json.loads((out / "strategies/strongest/summary.json").read_text())
    assert strongest_summary["routing"]["reference"] == 10  # always correct; models never are
    assert strongest_summary["generations"] == 4 * 3 + 6

    res = runner.invoke(
        app, ["select", str(out), "-s", "oracle", "-s", "grape", "-s", "best-of-n", "-s", "mix"]
    )
    assert res.exit_code == 0, res.output
    with Pipeline(parse_config(cfg)) as p:
        calls = p.store.generation_calls()
        keys = p.store.generation_keys()
    assert calls == len(keys) == 10 * 3  # every (prompt, teacher) made exactly once
    for name in ("oracle", "grape", "best-of-n"):
        s = json.loads((out / f"strategies/{name}/summary.json").read_text())
        assert s["generations"] == 30 and s["n_dataset"] == 10
        lines = read_jsonl(out / f"strategies/{name}/dataset.jsonl")
        assert all(x["reward"] is not None and x["learnability"] is not None for x in lines)
    with Pipeline(parse_config(cfg)) as p:
        table = p.full_reward_table()

    order = {"quality": ("quality", "learnability"), "learnability": ("learnability", "quality")}
    order["reward"] = ("reward", "quality", "learnability")

    def first_best(pid, by):  # the documented tie rule: next criteria, then the first name
        cands = [c for c in table[pid] if getattr(c, by) is not None]
        top = max(tuple(getattr(c, k) for k in order[by]) for c in cands)
        return min(c.teacher for c in cands if tuple(getattr(c, k) for k in order[by]) == top)

    for name, by in (("best-of-n", "quality"), ("grape", "learnability"), ("oracle", "reward")):
        for x in read_jsonl(out / f"strategies/{name}/dataset.jsonl"):
            assert x["teacher"] == first_best(x["id"], by), (name, x["id"])
    best = read_jsonl(out / "strategies/best-of-n/dataset.jsonl")
    assert all(x["quality"] == 1.0 for x in best)  # the reference is always correct
    mix = json.loads((out / "strategies/mix/summary.json").read_text())
    assert mix["details"]["strong"] == "reference" and sum(mix["routing"].values()) == 10
    assert mix["routing"]["reference"] == 2  # 1 : 4 of 10 prompts

    # Selecting again is free: nothing regenerated.
    res = runner.invoke(app, ["select", str(out), "-s", "family-strong"])
    assert res.exit_code == 0, res.output
    fam = json.loads((out / "strategies/family-strong/summary.json").read_text())
    assert fam["routing"]["a"] == 10
    with Pipeline(parse_config(cfg)) as p:
        assert p.store.generation_calls() == 30

    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text()
    assert "family-strong" in page and "data:image/png;base64," in page


def test_strategy_errors(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path, n=6)
    cfg["calibration"] = {"size": 4}
    res = CliRunner().invoke(app, ["select", str(tmp_path / "nowhere"), "-s", "oracle"])
    assert res.exit_code == 2 and "run_config.json" in res.output
    with Pipeline(parse_config(cfg)) as p:
        p.prepare()
    res = CliRunner().invoke(app, ["select", str(tmp_path / "run"), "-s", "bogus"])
    assert res.exit_code == 2 and "unknown strategy 'bogus'" in res.output
    res = CliRunner().invoke(app, ["select", str(tmp_path / "run"), "-s", "family-strong"])
    assert res.exit_code == 2 and "student.family" in res.output


def test_run_with_strategy_in_config(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path, n=6, strategy="random")
    with Pipeline(parse_config(cfg)) as p:
        summary = p.run().model_dump()
        assert p.store.generation_calls() == 6  # no calibration: one response per prompt
    assert summary["strategy"] == "random" and summary["generations"] == 6
    lines = read_jsonl(tmp_path / "run/dataset.jsonl")
    assert len(lines) == 6 and lines == read_jsonl(tmp_path / "run/strategies/random/dataset.jsonl")


def test_ranking_best_breaks_ties_by_the_next_criterion_then_the_name():
    from persyn.core.ranking import best

    q = {"x": 1.0, "y": 1.0, "z": 0.5}
    assert best(["x", "y", "z"], q, {"x": -2.0, "y": -1.0, "z": 0.0}) == "y"
    assert best(["y", "x", "z"], q, {"x": -1.0, "y": -1.0}) == "x"  # tie on both: the name
    assert best(["x", "y"], q, {"x": None, "y": -9.0}) == "y"  # a missing value ranks lowest
    assert best(["x", "y"], {"x": None, "y": None}) is None


@pytest.mark.parametrize("verify", [None, {"max_tries": 3}, {"max_tries": 3, "on_fail": "keep"}])
def test_the_persyn_strategy_dataset_is_the_runs_own(tiny_models, tmp_path, verify):
    # the persyn dataset is assembled once (runtime.dataset): the strategy's lines, scores and
    # failures are the run's export, byte for byte; with every third reference solution wrong,
    # some prompts no teacher passes (dropped, or kept at their best attempt)
    over = {"verify": verify} if verify else {}
    data = tiny_config(tiny_models, tmp_path, **over)
    write_prompts(tmp_path / "prompts.jsonl", 12, wrong_every=3)
    cfg = parse_config(data)
    out = tmp_path / "run"
    with Pipeline(cfg) as p:
        p.run()
        summary = p.build_strategy("persyn")
    assert (out / "strategies/persyn/dataset.jsonl").read_text() == (out / "dataset.jsonl").read_text()
    failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
    assert [f.to_dict() for f in summary.failures] == failed and summary.n_dataset == len(
        (out / "dataset.jsonl").read_text().splitlines()
    )
    # its generations are the run's, the cascade's escalations included
    run_summary = json.loads((out / "summary.json").read_text())
    assert summary.generations == run_summary["generations"]
    if verify:
        assert run_summary["verify"]["routed_generations"] > run_summary["n_routed"]  # it escalated


def test_the_verified_persyn_strategy_lines_carry_the_quality_they_were_checked_on(tiny_models, tmp_path):
    # a run without verify: the routed lines of its own dataset have no quality; the verified
    # strategy scores them, keeps those that pass, and writes the score it checked
    data = tiny_config(tiny_models, tmp_path)
    write_prompts(tmp_path / "prompts.jsonl", 12, wrong_every=3)
    out = tmp_path / "run"
    with Pipeline(parse_config(data)) as p:
        p.run()
        summary = p.build_strategy("persyn", verified=True)
    own = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    lines = [
        json.loads(x) for x in (out / "strategies/persyn-verified/dataset.jsonl").read_text().splitlines()
    ]
    assert any(x["source"] == "routed" and x["quality"] is None for x in own)
    assert lines and all(x["quality"] == 1.0 for x in lines)
    assert {x["id"] for x in lines} < {x["id"] for x in own}  # the wrong third is dropped
    assert summary.details["verified"]["dropped"] == len(own) - len(lines)
