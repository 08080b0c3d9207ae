"""Benchmark: router kinds against the best single teacher (``prior``) at small calibration
sizes, and calibration selection (random / diverse / active) at equal size (issue 12).

For each pool, every teacher answers every prompt once (``persyn calibrate`` with
``calibration.size: 1.0``; cached in ``--out``, so a re-run reuses them) and the Eq. 2 rewards
are read back. A seeded shuffle fixes ``--test`` held-out prompts; calibration sets of each
size are the first prompts of the rest, so the sizes are nested and share the held-out set.
Per size it reports, for ``prior``, ``bt-linear``, ``knn`` and ``auto``:

- CV: 5-fold cross-validation inside the calibration set (what ``summary.json`` reports);
- held-out: each kind trained on the whole calibration set (``auto`` choosing by that CV)
  and scored on the held-out prompts: top-1, regret, regret − prior's and the Oracle gain
  recovered, with paired bootstrap 95% intervals;
- train seconds of one fit (hyperparameter search included); ``bt-encoder`` (the paper's
  fine-tuned router; slow) only at the sizes in ``--encoder-sizes``, held-out only.

Then random vs diverse vs active calibration sets of ``--select-size`` prompts (3 draws each,
different seeds), each routed by ``auto``, on the same held-out prompts.

Usage: python benchmarks/routers.py [--pools experiment,demo,personal-smollm2] [--sizes 25,50,100,200]
       [--test 60] [--encoder-sizes 25,100] [--select-size 50] [--draws 1] [--out runs/bench-routers]

``--draws D`` repeats each size with D calibration draws (draw 0 the nested first N, the others
seeded random subsets) and averages each held-out prompt's regret over the draws before the
paired bootstrap, so one lucky or unlucky calibration set does not decide the figure.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from importlib.resources import files
from pathlib import Path

import numpy as np
import yaml

from persyn.calibration.active import next_round
from persyn.calibration.draw import k_center
from persyn.config import RouterConfig, parse_config
from persyn.core.summary import interval_text
from persyn.pipeline import Pipeline
from persyn.router.base import pick_regrets, reward_matrix, router_class
from persyn.router.cv import PRIOR, KindCV, choose_kind, cross_validate, kind_figures
from persyn.runtime.rewards import router_examples

KINDS = ["prior", "bt-linear", "knn"]


def pool_config(pool: str) -> dict:
    """The run config of ``pool``: ``experiment``, ``demo``, or ``personal-NAME`` (the issue-13
    mixed-task pool of ``personal.yaml``, scored for its student NAME)."""
    configs = files("persyn") / "configs"
    if pool == "experiment":
        return yaml.safe_load((configs / "experiment.yaml").read_text())["run"]
    if pool.startswith("personal-"):
        run = yaml.safe_load((configs / "personal.yaml").read_text())["run"]
        students = {s["name"]: s for s in run.pop("students")}
        name = pool.removeprefix("personal-")
        if name not in students:
            raise SystemExit(
                f"--pools: {pool}: personal.yaml has no student '{name}' ({', '.join(students)})"
            )
        return {**run, "student": students[name]}
    return yaml.safe_load((configs / f"{pool}.yaml").read_text())


def reward_data(pool: str, n_prompts: int, out: Path):
    """Every teacher's scored response to ``n_prompts`` prompts of ``pool``: the router
    examples (embedded) and the teacher names."""
    cfg = pool_config(pool)
    cfg["prompts"] = {**cfg["prompts"], "size": n_prompts}
    cfg.update(output_dir=str(out / pool), calibration={"size": 1.0}, strategy="persyn")
    with Pipeline(parse_config(cfg)) as p:
        start = time.perf_counter()
        p.calibrate()
        p.score()
        examples = router_examples(p.ctx, embed=True)
        print(f"[{pool}] {len(examples)} prompts answered and scored in {time.perf_counter() - start:.0f} s")
        return examples, p.cfg.teacher_names


def held_out(kind: str, cfg: RouterConfig, names, cal, test, seed=0) -> tuple[KindCV, float]:
    start = time.perf_counter()
    router = router_class(kind).fit(cfg, names, cal, seed)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    emb = np.stack([e.embedding for e in test]) if router.uses_embeddings else None
    picks = router.route([e.text for e in test], emb)
    route_s = time.perf_counter() - start
    _, rewards = reward_matrix(test)
    return KindCV(picks, pick_regrets(picks, rewards), train_s, route_s), train_s


def auto_kind(cfg: RouterConfig, names, cal, seed=1) -> tuple[str, dict]:
    _, cv = cross_validate(KINDS, cfg, names, cal, seed)
    figures = kind_figures(cv, cfg.bootstrap, seed + 1)
    return choose_kind(figures)[0], figures


def row(kind: str, f: dict, train_s: float | None = None) -> str:
    d = interval_text(f.get("regret_vs_prior"), "+.3f", "–")
    g = interval_text(f.get("gain"), ".2f", "n/a")
    t = "" if train_s is None else f"{train_s:.2f}"
    return f"| {kind} | {f['top1']:.2f} | {f['regret']:.3f} | {d} | {g} | {t} |"


def held_out_split(examples: list, n_test: int) -> dict[str, list]:
    """The examples with a valid response, shuffled once (seed 0): ``{"test": the first
    ``n_test``, "pool": the rest (where calibration sets are drawn from)}``."""
    idx, _ = reward_matrix(examples)
    valid = [examples[i] for i in idx]
    order = np.random.default_rng(0).permutation(len(valid))
    return {"test": [valid[i] for i in order[:n_test]], "pool": [valid[i] for i in order[n_test:]]}


def draw_calibration(rest: list, size: int, draw: int) -> list:
    """Draw 0: the first ``size`` prompts (nested sizes); draw d > 0: a seeded random subset."""
    if draw == 0:
        return rest[:size]
    idx = np.random.default_rng(1000 + draw).permutation(len(rest))[:size]
    return [rest[i] for i in sorted(idx)]


def mean_over_draws(evals: list[KindCV]) -> KindCV:
    """One KindCV whose per-prompt regret is the mean over the calibration draws (still paired
    by held-out prompt, so the bootstrap over prompts stays paired)."""
    regrets = np.mean([e.regrets for e in evals], axis=0)
    return KindCV(evals[0].picks, regrets, float(np.mean([e.train_seconds for e in evals])), 0.0)


def sizes_table(pool, examples, names, sizes, encoder_sizes, cfg, results, draws=1):
    test = examples["test"]
    print(
        f"\n### {pool}: router kinds by calibration size (held-out: {len(test)} prompts; "
        f"{draws} calibration draw(s) per size, regrets averaged over draws per held-out prompt)\n"
    )
    for size in sizes:
        if len(examples["pool"]) < size:  # fewer distinct prompts than asked: use them all, once
            size_draws, label = (
                1,
                f"{len(examples['pool'])} calibration prompts (all that remain; {size} asked)",
            )
        else:
            size_draws, label = draws, f"{size} calibration prompts"
        per_draw: dict[str, list[KindCV]] = {}
        top1: dict[str, list[float]] = {}
        chosen_by_draw, cv_by_draw = [], []
        for d in range(size_draws):
            cal = draw_calibration(examples["pool"], size, d)
            chosen, cv_figs = auto_kind(cfg, names, cal)
            chosen_by_draw.append(chosen)
            cv_by_draw.append(cv_figs)
            evals = {}
            for kind in KINDS + (["bt-encoder"] if size in encoder_sizes else []):
                evals[kind], _ = held_out(kind, cfg, names, cal, test)
            evals["auto"] = evals[chosen]
            for kind, ev in evals.items():
                per_draw.setdefault(kind, []).append(ev)
                top1.setdefault(kind, []).append(float((ev.regrets <= 1e-12).mean()))
        merged = {k: mean_over_draws(v) for k, v in per_draw.items()}
        figs = kind_figures(merged, 2000, 7)
        for kind in figs:
            figs[kind]["top1"] = float(np.mean(top1[kind]))
        picks = ", ".join(f"{k} {n}" for k, n in Counter(chosen_by_draw).items())
        print(f"**{label}** (auto chose, per draw: {picks})\n")
        print(
            "| kind | held-out top-1 | regret | regret − prior's [95% CI] | Oracle gain recovered [95% CI] | train s |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for kind in figs:
            print(row(kind, figs[kind], merged[kind].train_seconds))
        print("\nCV inside the calibration set of draw 0 (what summary.json reports):\n")
        print(
            "| kind | CV top-1 | CV regret | regret − prior's [95% CI] | Oracle gain recovered [95% CI] | |"
        )
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for kind, f in cv_by_draw[0].items():
            print(row(kind, f))
        print()
        results.setdefault(pool, {})[str(size)] = {
            "auto": chosen_by_draw,
            "held_out": figs,
            "cv": cv_by_draw,
            "train_seconds": {k: v.train_seconds for k, v in merged.items()},
        }


def select_table(pool, examples, names, size, cfg, results):
    test, rest = examples["test"], examples["pool"]
    x = np.stack([e.embedding for e in rest])
    regrets: dict[str, list] = {"random": [], "diverse": [], "active": []}
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        sets = {"random": rng.permutation(len(rest))[:size].tolist(), "diverse": k_center(x, size, seed)}
        chosen = k_center(x, size // 2, seed)
        while len(chosen) < size:
            add = min(-(-(size - size // 2) // 3), size - len(chosen))
            left = [i for i in range(len(rest)) if i not in set(chosen)]
            picked = next_round(cfg, names, [rest[i] for i in chosen], x[left], add, seed)
            chosen += [left[i] for i in picked]
        sets["active"] = chosen
        for how, idx in sets.items():
            cal = [rest[i] for i in idx]
            kind, _ = auto_kind(cfg, names, cal)
            ev, _ = held_out(kind, cfg, names, cal, test)
            regrets[how].append(float(ev.regrets.mean()))
    print(f"\n### {pool}: calibration selection at {size} prompts (held-out regret of auto, 3 draws)\n")
    print("| select | regret per draw | mean |")
    print("| --- | --- | ---: |")
    for how, r in regrets.items():
        print(f"| {how} | {', '.join(f'{v:.3f}' for v in r)} | {np.mean(r):.3f} |")
    results.setdefault(pool, {})[f"select@{size}"] = regrets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pools", default="experiment,demo")
    ap.add_argument("--sizes", default="25,50,100,200")
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--encoder-sizes", default="25,100")
    ap.add_argument("--select-size", type=int, default=50)
    ap.add_argument("--draws", type=int, default=1, help="calibration draws per size")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-routers"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    encoder_sizes = {int(s) for s in args.encoder_sizes.split(",") if s}
    results: dict = {}
    for pool in args.pools.split(","):
        all_examples, names = reward_data(pool, max(sizes) + args.test, args.out)
        _, rewards = reward_matrix(all_examples)
        examples = held_out_split(all_examples, args.test)
        picks = Counter(names[int(j)] for j in rewards.argmax(1))
        print(
            f"\n[{pool}] Oracle's pick over {len(rewards)} prompts: "
            + ", ".join(f"{t} {picks[t]}" for t in names)
        )
        results[pool] = {"oracle_picks": dict(picks), "n": len(rewards)}
        cfg = RouterConfig(**{k: v for k, v in pool_config(pool).get("router", {}).items() if k != "kind"})
        sizes_table(pool, examples, names, sizes, encoder_sizes, cfg, results, args.draws)
        select_table(pool, examples, names, args.select_size, cfg, results)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "routers.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {args.out / 'routers.json'}; prior = {PRIOR}")


if __name__ == "__main__":
    main()
