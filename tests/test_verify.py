"""The verified Route-then-Generate (``verify:``): the cascade's order, stopping and counts
against a hand-built case, drop vs keep, the one ranking rule, the refusals, and a budget that
caps actual spend."""

import json

import numpy as np
import pytest
from conftest import PROBLEMS

from persyn.config import parse_config
from persyn.core.cascade import Stored, expected_tries, walk
from persyn.core.errors import ConfigError
from persyn.pipeline import Pipeline
from persyn.router.base import rank_teachers
from persyn.router.prior import PriorRouter
from persyn.testing.fake_openai import FakeOpenAIServer

ANSWERS = dict(PROBLEMS)
INDEX = {q: i for i, (q, _) in enumerate(PROBLEMS)}


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


# -- the walk, by hand ------------------------------------------------------------------------


def test_walk_asks_in_order_stops_at_the_first_pass_and_at_max_tries():
    table = {
        "a": Stored("ka", True, ok=True, scored=True, quality=0.0),
        "b": Stored("kb", True, ok=False, error="HTTP 500"),
        "c": Stored("kc", True, ok=True, scored=True, quality=1.0),
        "d": Stored("kd", True, ok=True, scored=True, quality=1.0),
    }

    def passes(q):
        return q >= 1.0

    w = walk(["a", "b", "c", "d"], table.__getitem__, 4, passes, 1.0)
    assert [(a.teacher, a.status) for a in w.attempts] == [
        ("a", "rejected"),
        ("b", "failed"),
        ("c", "accepted"),
    ]
    assert w.accepted == "c" and w.tries == 3 and w.done
    assert w.attempts[0].why == "quality 0 < pass_quality 1" and w.attempts[1].why == "HTTP 500"
    # two tries: a and b fail, c is never asked
    w2 = walk(["a", "b", "c", "d"], table.__getitem__, 2, passes, 1.0)
    assert w2.accepted is None and w2.tries == 2 and w2.done
    # what is missing is asked for: the response first, then its quality
    w3 = walk(["a", "x"], lambda t: table.get(t, Stored("kx", False)), 3, passes, 1.0)
    assert w3.next_generate == "x" and not w3.done and len(w3.attempts) == 1
    w4 = walk(["y"], lambda t: Stored("ky", True, ok=True), 3, passes, 1.0)
    assert w4.next_score == "ky" and w4.attempts == []
    # skipped by the budget: the walk ends there, and it is no try
    w5 = walk(["a", "s", "c"], lambda t: table.get(t, Stored("ks", True, skipped=True)), 3, passes, 1.0)
    assert (
        [a.status for a in w5.attempts] == ["rejected", "skipped"] and w5.tries == 1 and w5.accepted is None
    )


def test_expected_tries_formula():
    # E = 1 + (1 - p1) + (1 - p1)(1 - p2) for three tries
    assert expected_tries([0.5, 0.2, 0.9], 3) == pytest.approx(1 + 0.5 + 0.5 * 0.8)
    assert expected_tries([0.5, 0.2, 0.9], 2) == pytest.approx(1.5)
    assert expected_tries([1.0, 0.0], 5) == 1.0
    with pytest.raises(ValueError, match="1.5"):
        expected_tries([1.5], 1)


# -- one ranking rule -----------------------------------------------------------------------


def test_ties_go_to_the_alphabetically_first_teacher_whatever_the_config_order():
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9]])
    names = ["zeta", "alpha", "mid"]
    r = rank_teachers(scores, names)
    assert [[names[i] for i in row] for row in r] == [["alpha", "zeta", "mid"], ["alpha", "mid", "zeta"]]
    # the same teachers in another order rank the same
    perm = [2, 0, 1]
    r2 = rank_teachers(scores[:, perm], [names[i] for i in perm])
    assert [[[names[i] for i in perm][j] for j in row] for row in r2] == [
        [names[i] for i in row] for row in r
    ]
    # a router's pick is the first of that ranking: the prior with tied means too
    for order in (["b", "a", "c"], ["c", "b", "a"]):
        means = {"a": 0.4, "b": 0.4, "c": 0.1}
        router = PriorRouter(order, np.array([means[n] for n in order]))
        assert order[int(router.pick(router.scores(["x"]))[0])] == "a"


# -- refusals -------------------------------------------------------------------------------


def _base(tmp_path, **over):
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "prompts": {"source": "jsonl", "path": str(tmp_path / "p.jsonl")},
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {"name": "a", "engine": "reference", "style": "answer"},
            {"name": "b", "engine": "reference", "style": "answer"},
        ],
        "verify": {"max_tries": 2},
    }
    cfg.update(over)
    return cfg


def test_a_verify_config_without_what_the_check_needs_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="verify.pass_quality: required with quality.kind 'reward_model'"):
        parse_config(_base(tmp_path, quality={"kind": "reward_model", "model": "org/reward"}))
    with pytest.raises(ConfigError, match="'majority' cannot check a routed response"):
        parse_config(_base(tmp_path, quality={"kind": "majority"}))
    with pytest.raises(ConfigError, match="prompts.answer_field is null"):
        parse_config(_base(tmp_path, prompts={"source": "jsonl", "path": "p.jsonl", "answer_field": None}))
    with pytest.raises(ConfigError, match="max_tries"):
        parse_config(_base(tmp_path, verify={"max_tries": 0}))
    ok = parse_config(
        _base(tmp_path, quality={"kind": "reward_model", "model": "org/reward"}, verify={"pass_quality": 0.3})
    )
    assert ok.verify.threshold("reward_model") == 0.3
    # a run that does not verify keeps the result key it had before verify existed
    plain = _base(tmp_path)
    plain.pop("verify")
    assert "verify" not in parse_config(plain).key_dump()


# -- the cascade through a run, on teachers whose answers are known -------------------------

# cheap is right on even-numbered problems, mid on multiples of three, good on every one
RIGHT = {
    "cheap": lambda i: i % 2 == 0,
    "mid": lambda i: i % 3 == 0,
    "good": lambda i: True,
}
ORDER = ["cheap", "mid", "good"]  # the hand-built router ranks them so on every prompt


@pytest.fixture
def servers():
    made = {
        name: FakeOpenAIServer(answer=lambda q, r=right: f"#### {ANSWERS[q] if r(INDEX[q]) else '-1'}")
        for name, right in RIGHT.items()
    }
    yield made
    for s in made.values():
        s.close()


def served_config(tiny_models, tmp_path, servers, prompts_path=None, **over):
    if prompts_path is None:
        prompts_path = tmp_path / "prompts.jsonl"
        prompts_path.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a in PROBLEMS))
    # listed in another order than the ranking: the order a config lists teachers never decides
    teachers = [
        {
            "name": n,
            "engine": "openai",
            "model": "fake-teacher",
            "base_url": servers[n].url,
            "max_new_tokens": 8,
        }
        for n in ["good", "cheap", "mid"]
    ]
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "prompts": {"source": "jsonl", "path": str(prompts_path)},
        "student": {"model": tiny_models["chat"], "dtype": "float32"},
        "teachers": teachers,
        "quality": {"kind": "verifier"},
        "calibration": {"size": 4},
        "verify": {"max_tries": 2},
    }
    cfg.update(over)
    return cfg


def _route_by_hand(p, tmp_path):
    """Calibrate, score, and route by a saved prior router that ranks cheap > mid > good."""
    p.calibrate()
    p.score()
    names = p.cfg.teacher_names
    rank = {"cheap": 0.9, "mid": 0.5, "good": 0.1}
    router_dir = tmp_path / "hand-router"
    PriorRouter(names, np.array([rank[n] for n in names])).save(router_dir)
    p.route(router_dir)


def _expected(max_tries, routed_texts):
    """Per routed prompt: the teachers asked and the accepted one, walked by hand."""
    out = {}
    for q in routed_texts:
        asked, accepted = [], None
        for t in ORDER[:max_tries]:
            asked.append(t)
            if RIGHT[t](INDEX[q]):
                accepted = t
                break
        out[q] = (asked, accepted)
    return out


@pytest.mark.parametrize("max_tries", [1, 2, 3])
def test_the_cascade_asks_in_ranking_order_stops_at_the_first_pass_and_counts(
    tiny_models, tmp_path, servers, max_tries
):
    cfg = parse_config(served_config(tiny_models, tmp_path, servers, verify={"max_tries": max_tries}))
    with Pipeline(cfg) as p:
        p.prepare()
        _route_by_hand(p, tmp_path)
        p.generate()
        summary = p.export()
        cal_texts = {x.text for x in p.store.prompts(calibration=True)}
        routed = [x.text for x in p.store.prompts(calibration=False)]
    out = tmp_path / "run"
    want = _expected(max_tries, routed)
    routing = {r["id"]: r for r in read_jsonl(out / "routing.jsonl")}
    lines = {x["messages"][0]["content"]: x for x in read_jsonl(out / "dataset.jsonl")}
    with Pipeline(cfg) as p:
        ids = {x.text: x.id for x in p.store.prompts()}
    for q, (asked, accepted) in want.items():
        r = routing[ids[q]]
        assert [a["teacher"] for a in r["attempts"]] == asked
        assert r["accepted"] == accepted
        assert [a["status"] for a in r["attempts"]] == ["rejected"] * (
            len(asked) - (accepted is not None)
        ) + (["accepted"] if accepted else [])
        if accepted:
            assert lines[q]["teacher"] == accepted and lines[q]["quality"] == 1.0
            assert lines[q]["messages"][1]["content"] == f"#### {ANSWERS[q]}"
        else:
            assert q not in lines
    # each server answered each prompt at most once: the calibration prompts once each, and a
    # routed prompt only when the walk reached it
    for t in ORDER:
        routed_asks = sum(1 for asked, _ in want.values() if t in asked)
        assert servers[t].requests == len(cal_texts) + routed_asks
        assert max(servers[t].answered.values()) == 1
    v = summary.verify
    n_first = {t: sum(1 for asked, _ in want.values() if asked[0] == t) for t in ORDER}
    n_esc = {t: sum(1 for asked, _ in want.values() if t in asked[1:]) for t in ORDER}
    for t in ORDER:
        assert v["teachers"][t]["first_answers"] == n_first[t]
        assert v["teachers"][t]["escalations"] == n_esc[t]
        assert v["teachers"][t]["rejected"] == sum(
            1 for asked, acc in want.values() if t in asked and acc != t
        )
    tries = sum(len(asked) for asked, _ in want.values())
    assert v["routed_generations"] == tries and v["generations_per_routed_prompt"] == pytest.approx(
        tries / len(want)
    )
    assert v["dropped"] == sum(1 for _, acc in want.values() if acc is None)
    assert summary.generations == 3 * len(cal_texts) + tries
    assert summary.n_dataset == len(lines)
    # every line of a verified, dropping dataset passes (calibration lines included)
    assert all(x["quality"] == 1.0 for x in lines.values())
    # the report's section gives the same counts
    from persyn.report.write import write_report

    page = write_report(out).read_text()
    section = page[page.index('<h2 id="verify">') :].split("<h2", 2)[1]
    for t in ORDER:
        row = f"{t}</td><td>{n_first[t]}</td><td>{n_esc[t]}</td><td>{v['teachers'][t]['rejected']}</td>"
        assert row in section, row
    assert (
        f'<td class="l"><b>dropped (no teacher passed)</b></td><td class="l">{v["dropped"]}</td>' in section
    )


def test_on_fail_keep_keeps_the_best_attempt_by_reward(tiny_models, tmp_path, servers):
    cfg = parse_config(
        served_config(tiny_models, tmp_path, servers, verify={"max_tries": 2, "on_fail": "keep"})
    )
    with Pipeline(cfg) as p:
        p.prepare()
        _route_by_hand(p, tmp_path)
        p.generate()
        summary = p.export()
        routed = [x for x in p.store.prompts(calibration=False)]
        scores = p.stored_scores()
    out = tmp_path / "run"
    routing = {r["id"]: r for r in read_jsonl(out / "routing.jsonl")}
    lines = {x["id"]: x for x in read_jsonl(out / "dataset.jsonl")}
    failing = [x for x in routed if routing[x.id]["accepted"] is None]
    assert failing, "the hand-built case must have prompts neither cheap nor mid passes"
    assert summary.verify["kept_failing"] == len(failing) and summary.verify["dropped"] == 0
    for x in failing:
        line = lines[x.id]
        assert line["quality"] == 0.0 and line["teacher"] in ("cheap", "mid")
        # both attempts are wrong (quality ties at 0): the more learnable one is kept
        learn = {a["teacher"]: None for a in routing[x.id]["attempts"]}
        with Pipeline(cfg) as p:
            for t in learn:
                learn[t] = scores[p.key_of(cfg.teacher(t), x)][1]
        assert line["teacher"] == max(sorted(learn), key=lambda t: learn[t])
        assert line["learnability"] == pytest.approx(learn[line["teacher"]])


def test_a_budget_caps_actual_spend_when_responses_come_out_longer_than_expected(tiny_models, tmp_path):
    # Short answers on the calibration prompts, then every routed answer as long as
    # max_new_tokens allows: the expected cost (fitted on calibration) is far too low.
    cal_done = {"n": 0}
    long_after = 4 * 3  # calibration: 4 prompts x 3 teachers

    def usage(q, text):
        cal_done["n"] += 1
        return (10, 3) if cal_done["n"] <= long_after else (10, 16)

    # good is right on its 4 calibration prompts, then wrong like the others: the router sends
    # every routed prompt to good first, and each escalates while the budget lasts
    good_seen = {"n": 0}

    def good(q):
        good_seen["n"] += 1
        return f"#### {ANSWERS[q]}" if good_seen["n"] <= 4 else "#### -1"

    made = {
        n: FakeOpenAIServer(answer=good if n == "good" else lambda q: "#### -1", usage=usage) for n in ORDER
    }
    try:
        base = served_config(tiny_models, tmp_path, made, verify={"max_tries": 3})
        for t in base["teachers"]:
            t["max_new_tokens"] = 16
            t["price_input_per_million"] = 1.0
            t["price_output_per_million"] = 100.0
        base["router"] = {"kind": "prior"}
        base["budget"] = {"max_cost": 0.02}
        cfg = parse_config(base)
        with Pipeline(cfg) as p:
            summary = p.run()
    finally:
        for s in made.values():
            s.close()
    b = summary.budget
    assert b["actual_cost"] <= 0.02 * (1 + 1e-9)
    assert b["skipped"] > 0 and summary.verify["skipped_by_budget"] == b["skipped"]
    # every attempt was wrong: each prompt escalated until the budget stopped it
    assert (
        summary.verify["teachers"]["cheap"]["escalations"]
        + summary.verify["teachers"]["mid"]["escalations"]
        + summary.verify["teachers"]["good"]["escalations"]
        > 0
    )


def test_expected_generations_and_the_budget_plan_price_each_try_by_its_reach():
    from persyn.core.cascade import expected_generations
    from persyn.runtime.budget import cascade_costs

    first, later = expected_generations([["a", "b", "c"], ["b", "a", "c"]], {"a": 0.5, "b": 0.2, "c": 1.0}, 3)
    assert first == {"a": 1.0, "b": 1.0}
    # a second after b (reach 0.8), b second after a (0.5), c third (0.5·0.8 and 0.8·0.5)
    assert later == pytest.approx({"b": 0.5, "a": 0.8, "c": 0.8})
    C = np.array([[1.0, 10.0, 100.0]])
    S = np.array([[0.9, 0.5, 0.1]])  # the router ranks a > b > c
    got = cascade_costs(C, S, {"a": 0.5, "b": 0.2, "c": 1.0}, 2, ["a", "b", "c"])
    # first a: 1 + 0.5·10; first b: 10 + 0.8·1 (then a, the router's best of the rest); first c: 100
    assert got[0].tolist() == pytest.approx([6.0, 10.8, 100.0])


def test_the_persyn_strategy_of_a_verified_run_is_its_dataset(tiny_models, tmp_path, servers):
    # what an experiment arm builds (build_strategy "persyn") is the cascade's dataset
    cfg = parse_config(served_config(tiny_models, tmp_path, servers, verify={"max_tries": 2}))
    with Pipeline(cfg) as p:
        p.run()
        built = p.build_strategy("persyn")
    run_lines = read_jsonl(tmp_path / "run" / "dataset.jsonl")
    arm_lines = read_jsonl(tmp_path / "run" / "strategies" / "persyn" / "dataset.jsonl")
    key = [(x["id"], x["teacher"], x["messages"][1]["content"], x["source"]) for x in run_lines]
    assert key == [(x["id"], x["teacher"], x["messages"][1]["content"], x["source"]) for x in arm_lines]
    assert built.n_dataset == len(run_lines)


def test_a_failed_answer_the_cascade_moved_past_is_not_asked_again(tiny_models, tmp_path):
    # cheap fails (HTTP 500) on "What is 2 + 3?": the cascade goes on to mid there; a second run
    # asks cheap nothing more (only a cascade that ended on a failure retries it)
    made = {
        n: FakeOpenAIServer(
            answer=lambda q, r=RIGHT[n]: f"#### {ANSWERS[q] if r(INDEX[q]) else '-1'}",
            fault_of=(lambda q: "500" if q == "What is 2 + 3?" else None) if n == "cheap" else None,
        )
        for n in ORDER
    }
    try:
        base = served_config(tiny_models, tmp_path, made, verify={"max_tries": 2})
        for t in base["teachers"]:
            t["max_retries"] = 0
        cfg = parse_config(base)
        with Pipeline(cfg) as p:
            p.prepare()
            routed = {x.text for x in p.store.prompts(calibration=False)}
            if "What is 2 + 3?" not in routed:
                pytest.skip("the draw put the failing prompt in the calibration set")
            _route_by_hand(p, tmp_path)
            p.generate()
            p.export()
        routing = {r["id"]: r for r in read_jsonl(tmp_path / "run" / "routing.jsonl")}
        with Pipeline(cfg) as p:
            pid = next(x.id for x in p.store.prompts() if x.text == "What is 2 + 3?")
        assert [(a["teacher"], a["status"]) for a in routing[pid]["attempts"]] == [
            ("cheap", "failed"),
            ("mid", "rejected"),
        ]
        asked = {n: s.requests for n, s in made.items()}
        with Pipeline(cfg) as p:
            p.generate()
        assert {n: s.requests for n, s in made.items()} == asked
    finally:
        for s in made.values():
            s.close()
