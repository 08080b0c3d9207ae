"""Routing under a budget: the solvers against brute force, the limits' errors, the cost model,
the expected-reward map, the frontier, and a budgeted run on two priced served teachers."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from persyn.budget import assign as assign_mod
from persyn.budget.assign import BudgetError, Limits, assign
from persyn.budget.cost import CostModel
from persyn.budget.frontier import frontier, router_then_cheapest
from persyn.budget.utility import RewardCalibration, cross_fitted
from persyn.config import make_teacher, parse_config
from persyn.core.errors import ConfigError
from persyn.core.records import Generation


def brute_force(U, C, budget, caps=None):
    """The best total expected reward of any assignment within ``budget`` and ``caps``
    (None when none fits)."""
    m, k = U.shape
    best = None
    for p in itertools.product(range(k), repeat=m):
        p = np.array(p)
        if C[np.arange(m), p].sum() > budget + 1e-9:
            continue
        if caps is not None and (np.bincount(p, minlength=k) > caps).any():
            continue
        u = U[np.arange(m), p].sum()
        best = u if best is None or u > best else best
    return best


def random_pools(n, seed=0):
    rng = np.random.default_rng(seed)
    for trial in range(n):
        m, k = int(rng.integers(2, 6)), int(rng.integers(2, 4))
        U = rng.random((m, k))
        C = rng.random((m, k)) * rng.choice([1.0, 10.0], size=k)
        lo, hi = C.min(1).sum(), C.max(1).sum()
        caps = rng.integers(1, m + 1, size=k).astype(float) if trial % 2 else None
        if caps is not None and caps.sum() < m:
            caps[0] = m
        yield U, C, lo + rng.random() * (hi - lo), caps


def test_the_integer_program_finds_the_brute_force_optimum():
    checked = 0
    for U, C, budget, caps in random_pools(120):
        best = brute_force(U, C, budget, caps)
        if best is None:
            with pytest.raises(BudgetError):
                assign(U, C, Limits(max_cost=budget, capacities=caps), solver="lp")
            continue
        a = assign(U, C, Limits(max_cost=budget, capacities=caps), solver="lp")
        assert a.reward == pytest.approx(best, abs=1e-9)
        assert a.cost <= budget + 1e-9
        if caps is not None:
            assert (np.bincount(a.picks, minlength=len(caps)) <= caps).all()
        checked += 1
    assert checked > 80


def test_the_lp_relaxation_path_repairs_its_fractional_prompts_exactly(monkeypatch):
    monkeypatch.setattr(assign_mod, "EXACT_VARIABLES", 0)  # the large-pool path on tiny pools
    for U, C, budget, caps in random_pools(60, seed=1):
        best = brute_force(U, C, budget, caps)
        if best is None:
            continue
        a = assign(U, C, Limits(max_cost=budget, capacities=caps), solver="lp")
        assert a.cost <= budget + 1e-9
        if caps is not None:
            assert (np.bincount(a.picks, minlength=len(caps)) <= caps).all()
        # Fixing the LP's whole prompts can cost at most what the fractional ones trade.
        assert a.reward >= best - (U.max() - U.min()) * U.shape[1] - 1e-9


def test_bisection_never_overspends_and_is_optimal_at_its_breakpoints():
    exact = 0
    for U, C, budget, _ in random_pools(120, seed=2):
        best = brute_force(U, C, budget)
        a = assign(U, C, Limits(max_cost=budget), solver="lagrangian")
        assert a.cost <= budget + 1e-9
        # Within one prompt's largest reward difference of the optimum (Lagrangian relaxation).
        assert a.reward >= best - (U.max(1) - U.min(1)).max() - 1e-9
        exact += a.reward == pytest.approx(best, abs=1e-9)
        # At the budget its own route spends, the bisection's route is the optimum.
        b = assign(U, C, Limits(max_cost=a.cost), solver="lagrangian")
        assert b.reward == pytest.approx(brute_force(U, C, a.cost), abs=1e-9)
    assert exact >= 100  # and exact on most budgets


def test_no_binding_limit_routes_by_argmax_and_two_limits_use_the_lp():
    U = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.4]])
    C = np.array([[10.0, 1.0], [10.0, 1.0], [10.0, 1.0]])
    T = np.array([[100.0, 5.0], [100.0, 5.0], [100.0, 5.0]])
    free = assign(U, C, Limits(max_cost=100.0))
    assert free.method == "argmax" and free.picks.tolist() == [0, 1, 0]
    # 21 buys two expensive answers, 120 tokens only one: the expensive one where it gains most.
    both = assign(U, C, Limits(max_cost=21.0, max_output_tokens=120.0), T)
    assert both.method == "lp" and both.picks.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="one limit and no capacities"):
        assign(U, C, Limits(max_cost=21.0, max_output_tokens=120.0), T, solver="lagrangian")


def test_limits_no_assignment_meets_are_errors_naming_value_and_minimum():
    U, C = np.ones((3, 2)), np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(BudgetError, match=r"budget.max_cost is 2\.5, below .* spends \(3\)"):
        assign(U, C, Limits(max_cost=2.5))
    with pytest.raises(BudgetError, match="take 2 prompts in all, fewer than the 3 routed prompts"):
        assign(U, C, Limits(capacities=np.array([1.0, 1.0])))
    # The cheap teacher takes at most one prompt: the least is 1 + 2 + 2 = 5.
    with pytest.raises(BudgetError, match=r"is 4\.5, below .* spends \(5 within the teachers"):
        assign(U, C, Limits(max_cost=4.5, capacities=np.array([1.0, np.inf])))
    base = {"output_dir": "x", "student": {"model": "smollm2-135m-instruct"}, "teachers": [{"name": "a", "engine": "reference"}, {"name": "b", "engine": "reference"}]}  # fmt: skip
    with pytest.raises(ConfigError, match="budget.max_cost"):
        parse_config({**base, "budget": {"max_cost": -1}})
    with pytest.raises(ConfigError, match="max_prompts"):
        parse_config(
            {
                **base,
                "teachers": [{"name": "a", "engine": "reference", "max_prompts": -2}, base["teachers"][1]],
            }
        )


def gen(teacher, prompt_tokens, completion_tokens, seconds=0.0):
    return Generation(
        "k",
        "p",
        teacher,
        "r",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        seconds=seconds,
    )


def test_cost_model_fits_tokens_on_prompt_length_and_prices_them():
    cheap = make_teacher(name="cheap", engine="openai", base_url="http://x", model="m",
                          price_input_per_million=1.0, price_output_per_million=2.0, max_new_tokens=400)  # fmt: skip
    local = make_teacher(name="local", engine="openai", base_url="http://x", model="m", price_per_second=0.5)
    ref = make_teacher(name="ref", engine="reference")
    chars = [40, 80, 120, 160, 200, 240]
    rows = {
        "cheap": [(c, gen("cheap", c // 4, 10 + c // 2)) for c in chars],
        "local": [(c, gen("local", 5, 20, seconds=2.0)) for c in chars],
    }
    model = CostModel([cheap, local, ref], rows)
    assert model.unit == "currency" and model.unpriced == []
    t_in, t_out = model.tokens(np.array([100.0, 1000.0]))
    assert t_in[0, 0] == pytest.approx(25.0, abs=0.5) and t_out[0, 0] == pytest.approx(60.0, abs=0.5)
    assert t_out[1, 0] == 400.0  # clipped to max_new_tokens
    assert t_out[0, 1] == pytest.approx(20.0)  # no slope: the mean
    c = model.costs(np.array([100.0]))
    assert c[0, 0] == pytest.approx((25 * 1.0 + 60 * 2.0) / 1e6, rel=0.02)
    assert c[0, 1] == pytest.approx(20 * (2.0 / 20) * 0.5)  # 0.1 s per token, 0.5 per second
    assert c[0, 2] == 0.0
    assert model.actual([gen("cheap", 25, 60), gen("ref", 0, 0)]) == pytest.approx(145 / 1e6)
    # No price anywhere: the unit is tokens; before any response, max_new_tokens.
    bare = CostModel(
        [make_teacher(name="a", engine="openai", base_url="http://x", model="m", max_new_tokens=50), ref], {}
    )
    assert bare.unit == "tokens" and bare.costs(np.array([40.0]))[0, 0] == pytest.approx(10.0 + 50.0)


def test_reward_calibration_keeps_reward_scale_kinds_and_maps_bt_scores_monotonically():
    S = np.array([[0.7, 0.2]])
    assert np.array_equal(RewardCalibration.fit("knn", S, S)(S), S)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 2))
    p0 = np.exp(scores[:, 0]) / np.exp(scores).sum(1)
    rewards = np.stack([(rng.random(200) < p0).astype(float), np.full(200, 0.5)], axis=1)
    cal = RewardCalibration.fit("bt-linear", scores, rewards)
    grid = np.stack([np.linspace(-3, 3, 50), np.zeros(50)], axis=1)
    u = cal(grid)[:, 0]
    assert (np.diff(u) >= -1e-12).all() and u[-1] - u[0] > 0.5  # monotone, and it learned
    assert cal(grid)[:, 1] == pytest.approx(0.5)
    # Shift-invariant like Eq. 3: adding a constant to every teacher's score changes nothing.
    assert np.allclose(cal(grid + 3.0), cal(grid))
    folds = np.arange(200) % 5
    assert cross_fitted("bt-linear", scores, rewards, folds).shape == (200, 2)


def test_frontier_holds_the_unconstrained_route_at_full_spend_and_beats_router_then_cheapest():
    rng = np.random.default_rng(3)
    n = 200
    family = rng.random(n) < 0.75  # the cheap teacher is as good on three prompts in four
    R = np.stack([np.where(family, 1.0, 0.2), np.ones(n)], axis=1)
    U = R + rng.normal(scale=0.05, size=R.shape)
    C = np.stack([np.ones(n), np.full(n, 10.0)], axis=1)
    f = frontier(U, R, C, ["cheap", "expensive"], "currency", n_boot=200)
    full = f["points"][-1]
    assert full["fraction"] == 1.0 and full["cost"] == pytest.approx(f["unconstrained_cost"])
    half = next(p for p in f["points"] if p["fraction"] == 0.5)
    assert half["cost"] <= 0.5 * f["unconstrained_cost"] + 1e-9
    assert half["reward"] >= 0.9 * full["reward"]  # (the gain is undefined: oracle = expensive)
    for p in f["points"]:
        if p["feasible"]:
            assert p["reward"] >= p["router_then_cheapest"]["reward"] - 1e-12
            assert p["reward_low"] <= p["reward"] <= p["reward_high"]
    assert f["best_single"]["name"] == "expensive"
    picks = router_then_cheapest(np.ones(4, dtype=np.int64), C[:4], 22.0)
    assert picks.tolist() == [0, 0, 1, 1]  # moved in source order until 22 fits


# -- a budgeted run on two priced served teachers ------------------------------------------


def family_prompts(path, n=24):
    """Two task families: sums (the cheap teacher gets them right) and letter counts (only the
    expensive one does)."""
    rows = []
    for i in range(n):
        if i % 2:
            rows.append({"prompt": f"What is {i} + {2 * i}?", "answer": str(3 * i)})
        else:
            w = "".join(chr(97 + (i * 7 + j * 3) % 26) for j in range(3 + i % 5))
            rows.append({"prompt": f"How many letters are in the word {w}?", "answer": str(len(w))})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {r["prompt"]: r["answer"] for r in rows}


@pytest.fixture
def served_pool(tmp_path):
    from persyn.testing.fake_openai import FakeOpenAIServer

    answers = family_prompts(tmp_path / "prompts.jsonl")
    cheap = FakeOpenAIServer(answer=lambda q: f"#### {answers[q] if '+' in q else 0}")
    expensive = FakeOpenAIServer(answer=lambda q: f"#### {answers[q]}")
    yield cheap, expensive
    cheap.close()
    expensive.close()


def budget_config(tiny_models, tmp_path, servers, **budget):
    cheap, expensive = servers
    serve = dict(engine="openai", model="fake-teacher", timeout=5.0, max_new_tokens=16)
    return parse_config(
        {
            "output_dir": str(tmp_path / "run"),
            "prompts": {"source": "jsonl", "path": str(tmp_path / "prompts.jsonl")},
            "student": {"model": tiny_models["chat"], "dtype": "float32"},
            "teachers": [
                {
                    "name": "cheap",
                    "base_url": cheap.url,
                    "price_input_per_million": 1.0,
                    "price_output_per_million": 1.0,
                    **serve,
                },
                {
                    "name": "expensive",
                    "base_url": expensive.url,
                    "price_input_per_million": 10.0,
                    "price_output_per_million": 10.0,
                    **serve,
                },
            ],  # fmt: skip
            "quality": {"kind": "verifier"},
            "alpha": 0.0,  # quality only (α weights learnability): expensive is right on letter counts
            "calibration": {"size": 8},
            "router": {"kind": "prior"},
            "budget": budget,
        }
    )


def test_a_budgeted_run_stays_within_its_limit_and_reports_its_spend(tiny_models, tmp_path, served_pool):
    from persyn.pipeline import Pipeline

    cfg = budget_config(tiny_models, tmp_path, served_pool)
    with Pipeline(cfg) as p:
        free = p.run().budget
    assert free["max_cost"] is None and free["frontier"]["unit"] == "currency"
    unconstrained = next(x for x in free["frontier"]["points"] if x["fraction"] == 1.0)["cost"]
    assert unconstrained > 0
    # The prior sends every routed prompt to the expensive teacher; allow 40% of that spend.
    cfg_b = budget_config(tiny_models, tmp_path, served_pool, max_cost=None)
    with Pipeline(cfg_b) as p:
        p.prepare()
        p.calibrate()
        p.score()
        p.train_router()
        p.route()
        full = sum(1 for t, _ in p.assignments().values() if t == "expensive")
    assert full == 16
    limit = 0.4 * free["actual_cost"]
    cfg_b = budget_config(tiny_models, tmp_path, served_pool, max_cost=limit)
    with Pipeline(cfg_b) as p:
        s = p.run().budget
        routed = p.assignments()
        # persyn estimate expects the budget's tokens (one expected-tokens model), prompt by prompt
        import numpy as np

        from persyn.estimate import estimate
        from persyn.runtime.budget import cost_model

        chars = np.array([len(q.text) for q in p.store.prompts()], dtype=np.float64)
        t_in, t_out = cost_model(p.ctx).tokens(chars)
        for j, row in enumerate(estimate(p).teachers):
            assert (row.prompt_tokens, row.completion_tokens) == pytest.approx(
                (t_in[:, j].mean(), t_out[:, j].mean())
            )
    assert s["max_cost"] == pytest.approx(limit)
    assert s["estimated_cost"] <= limit + 1e-12
    assert s["actual_cost"] <= limit * (1 + 1e-9)
    assert s["actual_cost"] == pytest.approx(s["estimated_cost"], rel=0.1)
    # max_cost caps actual spend: a response goes out only if its worst case (max_new_tokens)
    # fits in what is left, so the last prompts of a plan made on expected costs are skipped
    assert 0 < s["skipped"] < 16 and s["calibration_cost"] > 0
    assert 0 < s["routed"]["expensive"] < 16 and s["routed"]["cheap"] == 16 - s["routed"]["expensive"]
    assert sum(1 for t, _ in routed.values() if t == "expensive") == s["routed"]["expensive"]
    lines = [json.loads(x) for x in (tmp_path / "run" / "routing.jsonl").read_text().splitlines()]
    assert sum(x["expected_cost"] for x in lines) == pytest.approx(s["estimated_cost"])
    from persyn.report.write import write_report

    page = write_report(tmp_path / "run").read_text()
    section = page[page.index('<h2 id="budget">') :]
    assert 'alt="cost-reward frontier"' in section.split("<h2", 2)[1]
    with pytest.raises(BudgetError, match="below the least any assignment"):
        with Pipeline(budget_config(tiny_models, tmp_path, served_pool, max_cost=limit / 100)) as p:
            p.run()


def test_a_budgeted_run_skips_what_would_overrun_and_resumes_on_the_same_assignment(
    tiny_models, tmp_path, served_pool, monkeypatch
):
    from persyn.pipeline import Pipeline
    from persyn.stages import generate as generate_mod

    with Pipeline(budget_config(tiny_models, tmp_path, served_pool)) as p:
        free = p.run().budget
    limit = 0.5 * free["actual_cost"]
    cfg = budget_config(tiny_models, tmp_path, served_pool, max_cost=limit)
    # A crash after the first routed response is stored: the next run resumes.
    calls = {"n": 0}
    real = generate_mod.generate_responses

    def crash_after_one(ctx, work, phase, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed mid-generation")
        return real(ctx, work, phase, *a, **k)

    monkeypatch.setattr(generate_mod, "BUDGET_CHUNK", 1)
    monkeypatch.setattr(generate_mod, "generate_responses", crash_after_one)
    with Pipeline(cfg) as p, pytest.raises(KeyboardInterrupt):
        p.run()
    with Pipeline(cfg) as p:
        before = {k: v[0] for k, v in p.assignments().items()}
    monkeypatch.setattr(generate_mod, "generate_responses", real)
    # The teachers now bill three times what they report: the spend check skips the rest.
    monkeypatch.setattr(CostModel, "actual", lambda self, gens, _a=CostModel.actual: 3 * _a(self, gens))
    with Pipeline(cfg) as p:
        s = p.run().budget
        after = {k: v[0] for k, v in p.assignments().items()}
    assert after == before
    assert s["skipped"] > 0
    failed = [json.loads(x) for x in (tmp_path / "run" / "failed.jsonl").read_text().splitlines()]
    assert sum(1 for f in failed if f["error"] == "skipped by budget") == s["skipped"]


def test_auto_scores_each_kind_on_its_budgeted_route():
    """Unconstrained, the expensive teacher is best on every prompt (by a little on half of
    them), so ``prior`` loses nothing; under a budget that forbids it, only a kind that knows
    which prompts the cheap teacher suits keeps the reward."""
    from persyn.router.base import fold_of
    from persyn.router.cv import KindCV
    from persyn.runtime.budget import budgeted_cv

    n, reps = 60, 2
    easy = np.arange(n) % 2 == 0
    R = np.stack([np.where(easy, 0.95, 0.0), np.ones(n)], axis=1)  # [cheap, expensive]
    C = np.stack([np.ones(n), np.full(n, 10.0)], axis=1)
    prior_scores = np.tile(R.mean(0), (reps, n, 1))
    knn_scores = np.tile(R, (reps, 1, 1))
    cv = {
        "prior": KindCV(np.zeros(n, int), np.zeros(n), 0, 0, scores=prior_scores),
        "knn": KindCV(np.zeros(n, int), np.zeros(n), 0, 0, scores=knn_scores),
    }
    base = {"output_dir": "x", "student": {"model": "smollm2-135m-instruct"}, "router": {"cv_folds": 5, "cv_repeats": reps},
            "teachers": [{"name": "cheap", "engine": "reference"}, {"name": "expensive", "engine": "reference"}]}  # fmt: skip
    # 3 routed prompts per calibration prompt; 5.5 per routed prompt buys the expensive one on half.
    cfg = parse_config({**base, "budget": {"max_cost": 5.5 * 3 * n}})
    budgeted_cv(cfg, cv, R, C, np.zeros_like(C), seed=1, n_routed=3 * n)
    assert cv["knn"].regrets.mean() == pytest.approx(0.05 / 2, abs=1e-9)  # the easy half goes cheap
    assert cv["prior"].regrets.mean() > 0.2  # a constant choice spread by cost alone
    assert fold_of(n, 5, 1).shape == (n,)


def test_one_pricing_formula_for_estimate_export_and_budget():
    from persyn.budget.cost import price_of
    from persyn.core.records import Generation
    from persyn.engines.openai_batch import BatchSettings
    from persyn.stages.export import tokens_and_cost

    t = make_teacher(
        name="api",
        engine="openai",
        model="m",
        base_url="http://localhost:1/v1",
        price_input_per_million=2.0,
        price_output_per_million=8.0,
        price_per_second=0.01,
    )
    free = make_teacher(name="local", engine="openai", model="m", base_url="http://localhost:1/v1")
    # 1,000 input and 500 output tokens over 3 s: 0.002 + 0.004 + 0.03.
    assert price_of(t, 1000, 500, 3.0) == pytest.approx(0.036)
    assert price_of(free, 1000, 500, 3.0) is None
    gens = [
        Generation(f"k{i}", f"p{i}", "api", "x", prompt_tokens=500, completion_tokens=250, seconds=1.5)
        for i in range(2)
    ]
    got = tokens_and_cost([t, free], gens)
    assert got["cost_usd"] == {"api": pytest.approx(0.036), "local": None}
    assert got["tokens"]["api"] == {"prompt": 1000, "completion": 500}
    # through batch files: its batch price (half, or batch.price_factor), in every figure
    batched = t.model_copy(update={"batch": BatchSettings(price_factor=0.4)})
    assert price_of(batched, 1000, 500, 3.0) == pytest.approx(0.036 * 0.4)
    assert price_of(batched, 1000, 500, 3.0, batch=False) == pytest.approx(0.036)
    assert price_of(t, 1000, 500, 3.0, batch=True) == pytest.approx(0.018)
    assert tokens_and_cost([batched], gens)["cost_usd"] == {"api": pytest.approx(0.036 * 0.4)}
    assert CostModel([batched], {}).actual(gens[:1]) == pytest.approx(0.018 * 0.4)


def test_an_unpriced_teacher_in_a_priced_pool_costs_zero_per_prompt():

    priced = make_teacher(
        name="api", engine="openai", model="m", base_url="http://x/v1", price_output_per_million=1.0
    )
    local = make_teacher(name="local", engine="openai", model="m", base_url="http://x/v1")
    model = CostModel([priced, local], {})
    C = model.costs(np.array([10.0, 20.0, 30.0]))
    assert C.shape == (3, 2) and (C[:, 1] == 0).all() and (C[:, 0] > 0).all()
