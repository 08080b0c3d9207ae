"""Benchmark: a budget that caps, with and without the verified cascade (issue 44, item 6).

A new user's priced pool, served by loopback OpenAI-compatible fakes
(``persyn.testing.fake_openai``): two cheap experts, one per task family (``sums`` is right on
sums and wrong on products, ``products`` the other way round), and a generalist right on
everything at 10× their price per token. 30 calibration prompts, the rest routed; ``max_cost``
is 30% of what sending every routed prompt to the generalist would cost (priced on the
calibration responses). The same pool is run three ways, each from its own output directory
(the fakes answer deterministically, so the responses are the same):

- ``no budget``: Route-then-Generate, ``auto``;
- ``budget``: the same under ``max_cost`` (a cap on actual spend: every response goes out only
  if its worst case fits);
- ``budget + verify``: the same with ``verify: {max_tries: 2}``, where a wrong cheap answer
  escalates instead of staying in the dataset.

Reported: right lines among the routed prompts (and in the dataset), routed responses, skipped
by budget, the actual routed spend against ``max_cost``, and the kind ``auto`` chose.

Usage: python benchmarks/verify_budget.py [--prompts 120] [--out runs/bench-verify-budget]
       [--json docs/verify-budget-benchmark.json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from persyn.config import parse_config
from persyn.core.io import jsonl_text
from persyn.pipeline import Pipeline
from persyn.testing.fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parent.parent
PRICE = 1.0  # per million tokens, input and output; the generalist pays 10x


def prompts(n: int, seed: int = 0) -> list[dict]:
    """``n`` prompts, sums and products alternating, with their answers."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        if i % 2 == 0:
            rows.append({"prompt": f"What is {a} + {b}?", "answer": str(a + b)})
        else:
            rows.append({"prompt": f"What is {a} * {b}?", "answer": str(a * b)})
    return rows


def servers(rows: list[dict]) -> dict[str, FakeOpenAIServer]:
    answers = {r["prompt"]: r["answer"] for r in rows}

    def said(q: str, right: bool) -> str:
        return f"The answer is {answers[q] if right else int(answers[q]) + 1}.\n#### {answers[q] if right else int(answers[q]) + 1}"

    def usage(prompt, text):
        return len(prompt) // 4 + 8, len(text) // 3

    return {
        "sums": FakeOpenAIServer(answer=lambda q: said(q, "+" in q), usage=usage),
        "products": FakeOpenAIServer(answer=lambda q: said(q, "*" in q), usage=usage),
        "generalist": FakeOpenAIServer(answer=lambda q: said(q, True), usage=usage),
    }


def config(out: Path, path: Path, srv: dict, **over) -> dict:
    serve = dict(engine="openai", model="fake-teacher", timeout=5.0, max_new_tokens=32)
    price = {"sums": PRICE, "products": PRICE, "generalist": 10 * PRICE}
    cfg = {
        "output_dir": str(out),
        "prompts": {"source": "jsonl", "path": str(path)},
        "student": {"model": "smollm2-135m-instruct", "dtype": "float32"},
        "teachers": [
            {
                "name": n,
                "base_url": s.url,
                "price_input_per_million": price[n],
                "price_output_per_million": price[n],
                **serve,
            }
            for n, s in srv.items()
        ],
        "quality": {"kind": "verifier"},
        "calibration": {"size": 30},
        "router": {"kind": "auto"},
    }
    cfg.update(over)
    return cfg


def figures(out: Path, rows: list[dict]) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    answers = {r["prompt"]: r["answer"] for r in rows}
    lines = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    routed = [x for x in lines if x["source"] == "routed"]

    def right(x):
        return x["messages"][1]["content"].endswith(f"#### {answers[x['messages'][0]['content']]}")

    b = summary.get("budget") or {}
    v = summary.get("verify") or {}
    return {
        "routed_prompts": summary["n_routed"],
        "routed_lines": len(routed),
        "routed_right": sum(right(x) for x in routed),
        "dataset_lines": len(lines),
        "dataset_right": sum(right(x) for x in lines),
        "routed_generations": v.get(
            "routed_generations", summary["generations"] - summary["n_calibration"] * 3
        ),
        "skipped_by_budget": b.get("skipped", 0),
        "max_cost": b.get("max_cost"),
        "actual_cost": b.get("actual_cost"),
        "router": summary["router_eval"].get("kind"),
        "routed_to": summary["routing_routed"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=120)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-verify-budget")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "verify-budget-benchmark.json")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    rows = prompts(args.prompts)
    path = args.out / "prompts.jsonl"
    path.write_text(jsonl_text(rows))
    srv = servers(rows)
    try:
        free = args.out / "no-budget"
        with Pipeline(parse_config(config(free, path, srv))) as p:
            p.run()
            # what sending every routed prompt to the generalist costs, priced on calibration
            model_cost = p.ctx
            from persyn.runtime.budget import cost_model

            cm = cost_model(model_cost)
            routed = p.store.prompts(calibration=False)
            costs = cm.costs([len(x.text) for x in routed])
            everything = float(costs[:, p.cfg.teacher_names.index("generalist")].sum())
        limit = 0.3 * everything
        results = {"all_to_generalist_cost": everything, "max_cost": limit, "runs": {}}
        results["runs"]["no budget"] = figures(free, rows)
        for name, over in [
            ("budget", {"budget": {"max_cost": limit}}),
            ("budget + verify", {"budget": {"max_cost": limit}, "verify": {"max_tries": 2}}),
        ]:
            out = args.out / name.replace(" ", "").replace("+", "-")
            with Pipeline(parse_config(config(out, path, srv, **over))) as p:
                p.run()
            results["runs"][name] = figures(out, rows)
    finally:
        for s in srv.values():
            s.close()
    for name, f in results["runs"].items():
        cost = "-" if f["actual_cost"] is None else f"{f['actual_cost']:.6f}"
        print(
            f"{name:16s}: routed right {f['routed_right']}/{f['routed_prompts']} (lines {f['routed_lines']}), "
            f"routed generations {f['routed_generations']}, skipped {f['skipped_by_budget']}, "
            f"spend {cost} of max_cost {results['max_cost']:.6f}, router {f['router']}, to {f['routed_to']}"
        )
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
