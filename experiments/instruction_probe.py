"""Is there something to route in the instruction setting? A probe before any fine-tuning (issue
46, "measure, then run"), on training prompts with IFEval constraints (``ifeval_constrained``:
Self-Instruct's user-oriented instructions plus 1-3 constraints sampled through IFEval's
registry), never IFEval's own 541 test prompts.

Every teacher of the pool (Qwen2.5-Coder-Instruct 1.5B and 0.5B, SmolLM2-135M-Instruct,
Gemma-3-270m base few-shot) answers every prompt once (``calibration.size: 1.0``); quality is the
share of the prompt's instructions followed, IFEval's strict check (``quality.kind: ifeval``); a
response passes when it follows all of them. Learnability (PerSyn Eq. 1) is scored once per
student (SmolLM2-135M-Instruct, Gemma-3-270m), the responses shared. Reported per student:

- per teacher: prompt-level pass rate, instruction-level share, mean learnability (nats per
  token), completion tokens, truncated share, seconds per response (generation throughput);
- per instruction type and teacher: the share of that type's instructions followed;
- the Oracle's picks (Eq. 2 reward), and its reward gain over the best single teacher with a
  paired bootstrap 95% interval over prompts;
- the verified cascade with ``max_tries`` 2 over the teachers ranked by pass rate: the share of
  prompts whose first try passes, whose line passes within two tries, and the expected tries;
- the held-out Oracle gain recovered by each router kind and ``auto`` at the calibration sizes
  (``benchmarks/routers.py``'s ``sizes_table``; ``--test`` prompts held out);
- with ``--ifeval N``: the untouched student's IFEval numbers on N of IFEval's prompts
  (``persyn evaluate --benchmark ifeval``), with its throughput.

Resumable: the store under ``--out`` keeps every response and score; a re-run computes only what
is missing. Results: ``--out``/instruction-probe.json and the tables on stdout.
Usage: python experiments/instruction_probe.py [--out runs/instruction-probe] [--size 240]
       [--test 80] [--sizes 50,100] [--students smollm2,gemma3] [--ifeval 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from persyn.config import RouterConfig, parse_config
from persyn.core.ranking import best_single_teacher
from persyn.experiment.paired import paired_difference
from persyn.ifeval import follows
from persyn.pipeline import Pipeline
from persyn.runtime.rewards import reward_table, router_examples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from routers import held_out_split, sizes_table  # noqa: E402

STUDENTS = {
    "smollm2": {"model": "smollm2-135m-instruct", "family": "smollm2"},
    "gemma3": {
        "model": "gemma3-270m-base",
        "family": "gemma3",
        "prompt_template": "Request: {prompt}\nResponse: ",
    },
}
# A base model gets one worked example of a constrained request, then the prompt.
GEMMA_FEWSHOT = (
    "Request: Describe a cat in two sentences. Your entire response should be in lowercase letters.\n"
    "Response: a cat is a small furry animal that likes to sleep in the sun. it purrs when it is happy."
    "\n\nRequest: {prompt}\nResponse:"
)
# The Qwen teachers get 384 new tokens: at 256, a 16-prompt trial cut 19% (1.5B) and 25% (0.5B) of
# their responses, long answers a higher limit finishes; SmolLM2's and Gemma's cut responses were
# repetition loops, which no limit cures (the cut share is reported per teacher).
TEACHERS = [
    {"name": "qwen-1.5b", "engine": "transformers", "model": "qwen2.5-coder-1.5b-instruct", "family": "qwen2.5",
     "max_new_tokens": 384},
    {"name": "qwen-0.5b", "engine": "transformers", "model": "qwen2.5-coder-0.5b-instruct", "family": "qwen2.5",
     "max_new_tokens": 384},
    {"name": "smollm2", "engine": "transformers", "model": "smollm2-135m-instruct", "family": "smollm2"},
    {
        "name": "gemma-fewshot", "engine": "transformers", "model": "gemma3-270m-base", "family": "gemma3",
        "prompt_template": GEMMA_FEWSHOT, "stop": ["\nRequest:", "\n\n\n"],
    },
]  # fmt: skip
MAX_TRIES = 2
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{(time.perf_counter() - T0) / 60:6.1f} min] {msg}", flush=True)


def config(size: int, out: Path, student: dict, teachers: list[dict] | None = None, seed: int = 7) -> dict:
    """The probe's run: ``size`` constrained prompts (seed ``seed``, disjoint from IFEval's test
    prompts by construction), every teacher on every one, IFEval's strict check as quality."""
    pool = [{"max_new_tokens": 256, "batch_size": 8, "dtype": "auto", **t} for t in (teachers or TEACHERS)]
    return {
        "output_dir": str(out / "store"),
        "seed": seed,
        "prompts": {
            "source": "ifeval_constrained", "size": size, "seed": seed, "answer_field": None,
            "task_kwargs": {"max_constraints": 3},
        },
        "student": student,
        "teachers": pool,
        "quality": {"kind": "ifeval"},
        "calibration": {"size": 1.0},
        "router": {"kind": "auto", "encoder": "minilm-l6"},
        "strategy": "persyn",
    }  # fmt: skip


def cascade_figures(passed: np.ndarray, order: list[int]) -> dict:
    """The verified cascade over ``passed [n, K]`` (a response passes) with the teachers tried in
    ``order``, at most ``MAX_TRIES``: the share of prompts whose first try passes, whose line
    passes within the tries, and the expected tries per prompt."""
    first = passed[:, order[0]]
    within = passed[:, order[:MAX_TRIES]].any(1)
    return {
        "order": order,
        "first_try_pass": float(first.mean()),
        "pass_within_tries": float(within.mean()),
        "expected_tries": float(1 + (~first).mean()) if MAX_TRIES > 1 else 1.0,
    }


def probe_student(cfg: dict, name: str) -> dict:
    """Generate (or reuse) every response, score it for this student, and gather the figures and
    the router examples."""
    with Pipeline(parse_config(cfg)) as p:
        start = time.perf_counter()
        p.calibrate()
        p.score()
        log(f"[{name}] answered and scored in {time.perf_counter() - start:.0f} s")
        cal, table, gens = reward_table(p.ctx)
        examples = router_examples(p.ctx, embed=True)
        names = p.cfg.teacher_names
        limits = {t.name: t.max_new_tokens for t in p.cfg.teachers}
    cells: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    by_type: dict[tuple[str, str], list[bool]] = defaultdict(list)
    picks: Counter = Counter()
    rewards = np.full((len(cal), len(names)), np.nan)
    passed = np.zeros((len(cal), len(names)), dtype=bool)
    for i, q in enumerate(cal):
        ids = q.metadata["instruction_id_list"]
        kwargs = q.metadata.get("kwargs") or [None] * len(ids)
        for j, c in enumerate(table[q.id]):
            g = gens[(q.id, c.teacher)]
            cell = cells[c.teacher]
            share = c.quality if c.quality is not None else 0.0
            passed[i, j] = c.quality is not None and c.quality >= 1.0 - 1e-12
            cell["pass"].append(float(passed[i, j]))
            cell["share"].append(share)
            if c.learnability is not None:
                cell["learnability"].append(c.learnability)
            cell["tokens"].append(g.completion_tokens or 0)
            cell["truncated"].append(
                g.finish_reason == "length" or (g.completion_tokens or 0) >= limits[c.teacher]
            )
            cell["seconds"].append(g.seconds)
            if g.ok:
                for iid, ok in zip(ids, follows(g.response, ids, kwargs, q.text), strict=True):
                    by_type[(iid, c.teacher)].append(ok)
            else:
                for iid in ids:
                    by_type[(iid, c.teacher)].append(False)
            if c.reward is not None:
                rewards[i, j] = c.reward
        if not np.isnan(rewards[i]).all():
            picks[names[int(np.nanargmax(rewards[i]))]] += 1
    filled = np.nan_to_num(rewards, nan=0.0)  # a failed response earns nothing
    means = filled.mean(0)
    best = names.index(best_single_teacher(names, means))  # the prior router's tie rule
    oracle = filled.max(1)
    order = sorted(range(len(names)), key=lambda j: (-passed[:, j].mean(), names[j]))

    def mean(v: list) -> float | None:
        return float(np.mean(v)) if v else None

    return {
        "names": names,
        "n_prompts": len(cal),
        "teachers": {
            t: {k: mean(v[k]) for k in ("pass", "share", "learnability", "tokens", "truncated", "seconds")}
            for t, v in cells.items()
        },
        "types": {
            f"{iid}|{t}": {"n": len(v), "followed": mean(v)} for (iid, t), v in sorted(by_type.items())
        },
        "picks": dict(picks),
        "mean_reward": dict(zip(names, map(float, means), strict=True)),
        "oracle_reward": float(oracle.mean()),
        "best_single": names[best],
        "oracle_gain": paired_difference(oracle, filled[:, best], seed=0),
        "oracle_pass": float(passed.any(1).mean()),
        "cascade": cascade_figures(passed, order),
        "examples": examples,
    }


def tables(name: str, res: dict) -> None:
    names = res["names"]
    print(f"\n### student {name}: per teacher ({res['n_prompts']} prompts)\n")
    print(
        "| teacher | pass (all instructions) | instructions followed | learnability | tokens | truncated | s/response |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in names:
        c = res["teachers"][t]
        lrn = "–" if c["learnability"] is None else f"{c['learnability']:.2f}"
        print(
            f"| {t} | {c['pass']:.2f} | {c['share']:.2f} | {lrn} | {c['tokens']:.0f} | "
            f"{c['truncated']:.0%} | {c['seconds']:.2f} |"
        )
    types = sorted({k.split("|")[0] for k in res["types"]})
    print("\n**Instructions followed per type**\n")
    print("| instruction type (n) | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for iid in types:
        row = [res["types"].get(f"{iid}|{t}", {}) for t in names]
        n = row[0].get("n", 0)
        print(f"| {iid} ({n}) | " + " | ".join(f"{r['followed']:.2f}" if r else "–" for r in row) + " |")
    g, c = res["oracle_gain"], res["cascade"]
    print(
        "\nOracle picks: " + ", ".join(f"{n} {res['picks'].get(n, 0)}" for n in names)
        + "\nmean reward: " + ", ".join(f"{n} {v:.3f}" for n, v in res["mean_reward"].items())
        + f"; Oracle {res['oracle_reward']:.3f}; best single {res['best_single']}; "
        f"Oracle − best single {g['mean']:+.3f} [{g['prompt_low']:+.3f}, {g['prompt_high']:+.3f}]"
        f"\nsome teacher passes: {res['oracle_pass']:.2f}; cascade (max_tries {MAX_TRIES}, by pass rate "
        f"{' > '.join(names[j] for j in c['order'][:MAX_TRIES])}): first try {c['first_try_pass']:.2f}, "
        f"within the tries {c['pass_within_tries']:.2f}, {c['expected_tries']:.2f} tries per prompt"
    )  # fmt: skip


def untouched(student: dict, n: int) -> dict:
    """The untouched student on ``n`` of IFEval's prompts: its four numbers and throughput."""
    from persyn.evaluate_ifeval import evaluate_ifeval, ifeval_prompt_set

    start = time.perf_counter()
    res = evaluate_ifeval(
        student["model"], ifeval_prompt_set(n), prompt_template=student.get("prompt_template", "{prompt}\n"),
        progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    out = {k: v for k, v in vars(res).items() if k != "records"}
    out["seconds_per_prompt"] = seconds / n
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/instruction-probe"))
    ap.add_argument("--size", type=int, default=240)
    ap.add_argument("--test", type=int, default=80)
    ap.add_argument("--sizes", default="50,100")
    ap.add_argument("--students", default="smollm2,gemma3")
    ap.add_argument(
        "--ifeval", type=int, default=0, help="IFEval prompts for the untouched students (0: skip)"
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {}
    for name in args.students.split(","):
        if name not in STUDENTS:
            raise SystemExit(f"--students: unknown student '{name}' ({', '.join(STUDENTS)})")
        cfg = config(args.size, args.out, STUDENTS[name])
        res = probe_student(cfg, name)
        tables(name, res)
        split = held_out_split(res.pop("examples"), args.test)
        rcfg = RouterConfig(**{k: v for k, v in cfg["router"].items() if k != "kind"})
        routed: dict = {}
        sizes_table(f"instruction-{name}", split, res["names"], sizes, set(), rcfg, routed)
        res["routers"] = routed.get(f"instruction-{name}", {})
        if args.ifeval:
            res["untouched_ifeval"] = untouched(STUDENTS[name], args.ifeval)
            log(f"[{name}] untouched on {args.ifeval} IFEval prompts: {res['untouched_ifeval']}")
        results[name] = res
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "instruction-probe.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    log(f"results: {args.out / 'instruction-probe.json'}")


if __name__ == "__main__":
    main()
