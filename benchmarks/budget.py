"""Benchmark: routing under a budget (issue 31) on priced pools of served teachers.

Two loopback OpenAI-compatible fakes (``persyn.testing.fake_openai``), priced 1× and 10× per token,
answer three task families; which is right is fixed by the family:

- ``experts``: sums, products and letter counts in the proportions 2 : 2 : 1. The cheap teacher
  is the arithmetic expert: right on every sum and on 95% of the products, wrong on letter
  counts; the expensive one is right on products and letter counts and wrong on sums. Both write
  the same sentence, so where both are right their responses (and rewards) are the same: on the
  products the cheap teacher is as good as the expensive one but for 5% of them, which is where
  a budget-blind router spends for little;
- ``needs-expensive``: only the expensive teacher is ever right.

Every teacher answers every prompt once (``calibration.size: 1.0``), SmolLM2-135M-Instruct
scores learnability, and the Eq. 2 rewards are read back (α 0.4). A seeded shuffle holds out
``--test`` prompts; the router (``auto``) is cross-validated and trained on the rest, and its
scores on the held-out prompts become expected rewards (``budget.utility``). The cost model is
fitted on the calibration responses. At 10 … 100% of the unconstrained route's expected spend
the held-out prompts are assigned by ``budget.assign`` and by "router, then cheapest"; each
route is scored with the held-out prompts' actual rewards (Oracle gain recovered over the best
single teacher, paired bootstrap 95% interval) and priced with the tokens the fakes reported
(actual spend against the estimate).

Then the solver's cost at scale: ``assign`` on 100,000 prompts × 8 teachers (random rewards
and costs) against the encoder's time to embed the same prompts (measured on 2,000, scaled):
routing throughput with the budget as a ratio of routing without it.

Usage: python benchmarks/budget.py [--prompts 400] [--test 200] [--out runs/bench-budget]
       [--json docs/budget-benchmark.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from pathlib import Path

import numpy as np

from persyn.budget.assign import BudgetError, Limits, assign
from persyn.budget.cost import CostModel
from persyn.budget.frontier import FRACTIONS, router_then_cheapest
from persyn.budget.utility import RewardCalibration
from persyn.config import parse_config
from persyn.core.io import jsonl_text
from persyn.pipeline import Pipeline
from persyn.router.base import reward_matrix, router_class
from persyn.router.cv import choose_kind, cross_validate, kind_figures
from persyn.runtime.rewards import router_examples
from persyn.testing.fake_openai import FakeOpenAIServer

WORDS = ["apple", "river", "stone", "cloud", "garden", "pencil", "window", "rocket", "yellow", "planet"]


def family_prompts(n: int, seed: int) -> list[dict]:
    """``n`` prompts (sums, products and letter counts, 2 : 2 : 1) with their answers."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        fam = ["sum", "product", "sum", "product", "letters"][len(rows) % 5]
        if fam == "sum":
            a, b = rng.randint(10, 999), rng.randint(10, 999)
            q, ans = f"What is {a} + {b}?", a + b
        elif fam == "product":
            a, b = rng.randint(2, 30), rng.randint(2, 30)
            q, ans = f"What is {a} * {b}?", a * b
        else:
            w = rng.choice(WORDS) + rng.choice(WORDS)[: rng.randint(1, 5)]
            q, ans = f"How many letters are in the word {w}?", len(w)
        if q not in seen:
            seen.add(q)
            rows.append({"prompt": q, "answer": str(ans), "family": fam})
    return rows


def servers(rows: list[dict], pool: str) -> tuple[FakeOpenAIServer, FakeOpenAIServer]:
    answers = {r["prompt"]: (r["answer"], r["family"]) for r in rows}

    def slip(q: str) -> bool:  # the cheap teacher's 5% of wrong products, fixed per prompt
        return int(hashlib.sha256(q.encode()).hexdigest(), 16) % 20 == 0

    def said(a: str, right: bool) -> str:
        shown = a if right else str(int(a) + 1)
        return f"The answer is {shown}.\n#### {shown}"

    def cheap(q):
        a, fam = answers[q]
        if pool == "experts":
            return said(a, fam == "sum" or (fam == "product" and not slip(q)))
        return f"#### {int(a) + 1}"

    def expensive(q):
        a, fam = answers[q]
        if pool == "experts":
            return said(a, fam != "sum")
        return f"Working through the question step by step, the result is {a}.\n#### {a}"

    def usage(prompt, text):  # tokens grow with what is written, as a real server's count does
        return len(prompt) // 4 + 12, max(1, len(text) // 4)

    return FakeOpenAIServer(answer=cheap, usage=usage), FakeOpenAIServer(answer=expensive, usage=usage)


def run_pool(pool: str, args) -> dict:
    rows = family_prompts(args.prompts, seed=0)
    out = Path(args.out) / pool
    out.mkdir(parents=True, exist_ok=True)
    (out / "prompts.jsonl").write_text(jsonl_text(rows, ascii_only=True))
    cheap, expensive = servers(rows, pool)
    serve = dict(engine="openai", model="fake-teacher", max_new_tokens=64, concurrency=16)
    cfg = parse_config(
        {
            "output_dir": str(out / "run"),
            "prompts": {"source": "jsonl", "path": str(out / "prompts.jsonl")},
            "student": {"model": "smollm2-135m-instruct"},
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
            "alpha": 0.4,
            "calibration": {"size": 1.0},
        }
    )
    start = time.perf_counter()
    with Pipeline(cfg) as p:
        p.prepare()
        p.calibrate()
        p.score()
        prompts, _, gens = p.reward_table()  # every prompt is a calibration prompt here
        examples = router_examples(p.ctx, embed=True)  # in the same order
    cheap.close()
    expensive.close()
    answered_s = time.perf_counter() - start
    names = cfg.teacher_names
    order = list(range(len(examples)))
    random.Random(1).shuffle(order)
    test, cal = order[: args.test], order[args.test :]
    ex_cal, ex_test = [examples[i] for i in cal], [examples[i] for i in test]
    _, R_cal = reward_matrix(ex_cal)
    _, R_test = reward_matrix(ex_test)
    # The router as a run trains it: auto by cross-validation, then fitted on all calibration prompts.
    rcfg = cfg.router
    _, cv = cross_validate(rcfg.cv_kinds(), rcfg, names, ex_cal, seed=1)
    kind, reason = choose_kind(kind_figures(cv, rcfg.bootstrap, 2))
    router = router_class(kind).fit(rcfg, names, ex_cal, 0)
    oof = cv[kind].scores
    calib = RewardCalibration.fit(kind, oof.reshape(-1, len(names)), np.tile(R_cal, (len(oof), 1)))
    emb = np.stack([e.embedding for e in ex_test]) if router.uses_embeddings else None
    U = calib(router.scores([e.text for e in ex_test], emb))
    # Costs fitted on the calibration prompts' responses; actual spend from what the fakes reported.
    cal_rows = {n: [(len(prompts[i].text), gens[(prompts[i].id, n)]) for i in cal] for n in names}
    model = CostModel(cfg.teachers, cal_rows)
    C = model.costs(np.array([len(prompts[i].text) for i in test], dtype=np.float64))
    actual = np.array([[model.actual([gens[(prompts[i].id, n)]]) for n in names] for i in test])
    rows_i = np.arange(len(test))
    best = int(R_cal.mean(0).argmax())  # the best single teacher, chosen on calibration
    oracle, single = R_test.max(1), R_test[:, best]
    draws = np.random.default_rng(0).integers(0, len(test), size=(2000, len(test)))
    room_b = oracle[draws].mean(1) - single[draws].mean(1)

    def score(picks):
        got = R_test[rows_i, picks]
        room = oracle.mean() - single.mean()
        fig = {
            "reward": float(got.mean()),
            "estimated_cost": float(C[rows_i, picks].sum()),
            "actual_cost": float(actual[rows_i, picks].sum()),
            "gain": float((got.mean() - single.mean()) / room) if room > 1e-12 else None,
        }
        kept = room_b > 1e-12
        if room > 1e-12 and kept.mean() >= 0.95:
            ratio = (got[draws].mean(1)[kept] - single[draws].mean(1)[kept]) / room_b[kept]
            fig["gain_low"], fig["gain_high"] = (float(v) for v in np.percentile(ratio, [2.5, 97.5]))
        return fig

    free = U.argmax(1)
    full = float(C[rows_i, free].sum())
    points = []
    for f in FRACTIONS:
        try:
            a = assign(U, C, Limits(max_cost=f * full))
        except BudgetError as exc:  # below the all-cheapest route: no assignment fits
            points.append({"fraction": f, "budget": f * full, "feasible": False, "why": str(exc)})
            continue
        points.append(
            {
                "fraction": f,
                "budget": f * full,
                "budgeted": score(a.picks),
                "router_then_cheapest": score(router_then_cheapest(free, C, f * full)),
                "solver": a.method,
            }
        )
    return {
        "pool": pool,
        "n_calibration": len(cal),
        "n_test": len(test),
        "answered_seconds": round(answered_s, 1),
        "kind": kind,
        "reason": reason,
        "best_single": names[best],
        "unconstrained": score(free),
        "teachers": {n: score(np.full(len(test), k)) for k, n in enumerate(names)},
        "points": points,
    }


def solver_scale(n: int = 100_000, k: int = 8, encode_n: int = 2000) -> dict:
    """Seconds of ``assign`` at ``n × k`` against the encoder's seconds for ``n`` prompts."""
    from persyn.router.embeddings import PromptEncoder

    rng = np.random.default_rng(0)
    U, C = rng.random((n, k)), rng.random((n, k)) * np.geomspace(1, 10, k)
    start = time.perf_counter()
    a = assign(U, C, Limits(max_cost=0.5 * C[np.arange(n), U.argmax(1)].sum()))
    solve_s = time.perf_counter() - start
    enc = PromptEncoder.of(parse_config({"output_dir": "x", "student": {"model": "smollm2-135m-instruct"},
                                         "teachers": [{"name": "a", "engine": "reference"},
                                                      {"name": "b", "engine": "reference"}]}).router)  # fmt: skip
    texts = [f"What is {i} + {2 * i}? Show the steps of the sum." for i in range(encode_n)]
    enc.embed(texts[:64])  # load the model outside the timing
    start = time.perf_counter()
    enc.embed(texts)
    encode_s = (time.perf_counter() - start) * n / encode_n
    return {
        "prompts": n,
        "teachers": k,
        "solver": a.method,
        "solve_seconds": round(solve_s, 3),
        "encode_seconds_scaled": round(encode_s, 1),
        "throughput_ratio": round(encode_s / (encode_s + solve_s), 4),
    }


def table(res: dict) -> str:
    lines = [
        f"### {res['pool']}: {res['n_calibration']} calibration, {res['n_test']} held-out prompts; "
        f"router {res['kind']}; best single (on calibration) {res['best_single']}",
        "",
        "| spend (of unconstrained) | budgeted: reward | Oracle gain [95% CI] | est. spend | actual | "
        "router, then cheapest: reward | gain |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]

    def gain(fig):
        if fig["gain"] is None:
            return "–"
        ci = f" [{fig['gain_low']:.2f}, {fig['gain_high']:.2f}]" if "gain_low" in fig else ""
        return f"{fig['gain']:.2f}{ci}"

    for p in res["points"]:
        if not p.get("feasible", True):
            lines.append(
                f"| {p['fraction']:.0%} | below the all-cheapest route: no assignment fits | | | | | |"
            )
            continue
        b, n = p["budgeted"], p["router_then_cheapest"]
        lines.append(
            f"| {p['fraction']:.0%} | {b['reward']:.3f} | {gain(b)} | {b['estimated_cost']:.6f} | "
            f"{b['actual_cost']:.6f} | {n['reward']:.3f} | {gain(n)} |"
        )
    for name, t in res["teachers"].items():
        lines.append(
            f"| {name} only | {t['reward']:.3f} | {gain(t)} | {t['estimated_cost']:.6f} | {t['actual_cost']:.6f} | | |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=400)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--out", default="runs/bench-budget")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results = {
        "pools": [run_pool(pool, args) for pool in ("experts", "needs-expensive")],
        "scale": solver_scale(),
    }
    for res in results["pools"]:
        print(table(res))
        print()
    s = results["scale"]
    print(
        f"assign on {s['prompts']:,} prompts × {s['teachers']} teachers ({s['solver']}): {s['solve_seconds']} s; "
        f"embedding them: {s['encode_seconds_scaled']} s (scaled); routing throughput with the budget: "
        f"{s['throughput_ratio']:.3f}× without it"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
