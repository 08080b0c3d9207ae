"""Is there something to route in a pool of model teachers only? A probe before any fine-tuning
(issue 28, "a pool like the paper's"), on the packaged ``model-pool.yaml``.

Every teacher of the pool (two Qwen2.5-Coder-Instruct models, SmolLM2-135M-Instruct in two
prompting styles, Gemma-3-270m base few-shot) answers every prompt once (``calibration.size:
1.0``); quality is the gold answer's check (math-verify, or the task's own ``score_answer``);
learnability (PerSyn Eq. 1) is scored once per student (SmolLM2-135M-Instruct, Gemma-3-270m),
the responses generated once and shared (the store keys generations by teacher and prompt, not
by student). Reported per student:

- per task and teacher: accuracy, mean learnability (nats per token), mean response length
  (completion tokens), truncated share;
- the Oracle's pick distribution (Eq. 2 reward, α and normalisation of the config), per task;
- the Oracle's reward gain over the best single teacher (the highest mean reward over all
  prompts: a descriptive probe, not a held-out choice), with a paired bootstrap 95% interval
  over prompts;
- the held-out Oracle gain recovered by each router kind and ``auto`` at the calibration sizes
  (``benchmarks/routers.py``'s ``sizes_table``; ``--test`` prompts held out).

Nothing here is the evidence run's held-out set: the probe's prompts come from the config's
seed (0), the experiment's test set from ``eval.seed``.

Resumable: the store under ``--out`` keeps every response and score; a re-run only computes
what is missing. Results: ``--out``/pool-probe.json and the tables on stdout.
Usage: python experiments/pool_probe.py [--out runs/pool-probe] [--per-task 70] [--test 80]
       [--sizes 50,100,200] [--students smollm2,gemma3] [--draws 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from importlib.resources import files
from pathlib import Path

import numpy as np
import yaml

from persyn.config import RouterConfig, parse_config
from persyn.core.ranking import best_single_teacher
from persyn.experiment.paired import paired_difference
from persyn.pipeline import Pipeline
from persyn.runtime.rewards import reward_table, router_examples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from routers import held_out_split, sizes_table  # noqa: E402

STUDENTS = {
    "smollm2": {"model": "smollm2-135m-instruct", "family": "smollm2"},
    "gemma3": {
        "model": "gemma3-270m-base",
        "family": "gemma3",
        "prompt_template": "Question: {prompt}\nAnswer: ",
    },
}
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{(time.perf_counter() - T0) / 60:6.1f} min] {msg}", flush=True)


def config(per_task: int, out: Path, student: dict) -> dict:
    run = yaml.safe_load((files("persyn") / "configs" / "model-pool.yaml").read_text())
    run["prompts"] = {**run["prompts"], "size": per_task * len(run["prompts"]["tasks"])}
    run.update(output_dir=str(out / "store"), calibration={"size": 1.0}, strategy="persyn", student=student)
    return run


def probe_student(cfg: dict, name: str) -> dict:
    """Generate (or reuse) every response, score them for this student, and gather the per-task
    figures and the router examples."""
    with Pipeline(parse_config(cfg)) as p:
        start = time.perf_counter()
        p.calibrate()
        p.score()
        log(f"[{name}] answered and scored in {time.perf_counter() - start:.0f} s")
        cal, table, gens = reward_table(p.ctx)
        examples = router_examples(p.ctx, embed=True)
        names = p.cfg.teacher_names
        limits = {t.name: t.max_new_tokens for t in p.cfg.teachers}
    task = {q.id: str(q.metadata.get("source_dataset", "?")) for q in cal}
    cells: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    picks: dict[str, Counter] = defaultdict(Counter)
    rewards = np.full((len(cal), len(names)), np.nan)
    for i, q in enumerate(cal):
        for j, c in enumerate(table[q.id]):
            g = gens[(q.id, c.teacher)]
            cell = cells[(task[q.id], c.teacher)]
            cell["correct"].append(c.quality if c.quality is not None else 0.0)
            if c.learnability is not None:
                cell["learnability"].append(c.learnability)
            cell["tokens"].append(g.completion_tokens or 0)
            cell["truncated"].append(
                g.finish_reason == "length" or (g.completion_tokens or 0) >= limits[c.teacher]
            )
            if c.reward is not None:
                rewards[i, j] = c.reward
        if not np.isnan(rewards[i]).all():
            picks[task[q.id]][names[int(np.nanargmax(rewards[i]))]] += 1
    filled = np.nan_to_num(rewards, nan=0.0)  # a failed response earns nothing
    means = filled.mean(0)
    best = names.index(best_single_teacher(names, means))  # the prior router's tie rule
    oracle = filled.max(1)
    gain = paired_difference(oracle, filled[:, best], seed=0)
    per_task = {
        f"{t}|{teacher}": {
            "n": len(v["correct"]),
            "accuracy": float(np.mean(v["correct"])),
            "learnability": float(np.mean(v["learnability"])) if v["learnability"] else None,
            "tokens": float(np.mean(v["tokens"])),
            "truncated": float(np.mean(v["truncated"])),
        }
        for (t, teacher), v in cells.items()
    }
    return {
        "names": names,
        "per_task": per_task,
        "picks": {t: dict(c) for t, c in picks.items()},
        "mean_reward": dict(zip(names, map(float, means), strict=True)),
        "oracle_reward": float(oracle.mean()),
        "best_single": names[best],
        "oracle_gain": gain,
        "examples": examples,
    }


def tables(name: str, res: dict) -> None:
    names = res["names"]
    tasks = sorted({k.split("|")[0] for k in res["per_task"]})
    print(f"\n### student {name}: per task and teacher — accuracy / learnability / tokens (truncated)\n")
    print("| task | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for t in tasks:
        cells = []
        for teacher in names:
            c = res["per_task"][f"{t}|{teacher}"]
            lrn = "–" if c["learnability"] is None else f"{c['learnability']:.2f}"
            cells.append(f"{c['accuracy']:.2f} / {lrn} / {c['tokens']:.0f} ({c['truncated']:.0%})")
        print(f"| {t} ({c['n']}) | " + " | ".join(cells) + " |")
    print(f"\n**Oracle's pick** (student {name})\n")
    print("| task | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for t in tasks:
        print(f"| {t} | " + " | ".join(str(res["picks"].get(t, {}).get(n, 0)) for n in names) + " |")
    g = res["oracle_gain"]
    print(
        "\nmean reward: "
        + ", ".join(f"{n} {v:.3f}" for n, v in res["mean_reward"].items())
        + f"; Oracle {res['oracle_reward']:.3f}; best single {res['best_single']}; "
        f"Oracle − best single {g['mean']:+.3f} [{g['prompt_low']:+.3f}, {g['prompt_high']:+.3f}]"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/pool-probe"))
    ap.add_argument("--per-task", type=int, default=70)
    ap.add_argument("--test", type=int, default=80)
    ap.add_argument("--sizes", default="50,100,200")
    ap.add_argument("--students", default="smollm2,gemma3")
    ap.add_argument("--draws", type=int, default=1)
    args = ap.parse_args()
    base = yaml.safe_load((files("persyn") / "configs" / "model-pool.yaml").read_text())
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {}
    for name in args.students.split(","):
        if name not in STUDENTS:
            raise SystemExit(f"--students: unknown student '{name}' ({', '.join(STUDENTS)})")
        res = probe_student(config(args.per_task, args.out, STUDENTS[name]), name)
        tables(name, res)
        examples = res.pop("examples")
        split = held_out_split(examples, args.test)
        rcfg = RouterConfig(**{k: v for k, v in base.get("router", {}).items() if k != "kind"})
        routed: dict = {}
        sizes_table(f"model-pool-{name}", split, res["names"], sizes, set(), rcfg, routed, args.draws)
        res["routers"] = routed.get(f"model-pool-{name}", {})
        results[name] = res
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "pool-probe.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    log(f"results: {args.out / 'pool-probe.json'}")


if __name__ == "__main__":
    main()
