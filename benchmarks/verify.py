"""Benchmark: the verified cascade (issue 44), before any fine-tuning.

For each pool every teacher answers every prompt once (Generate-then-Select; the store is
shared with ``persyn run`` of the pool's config, so a pool already run costs no generation), and
every response is scored for quality and for the student's learnability. The cascade of a
routed prompt is then a lookup: which of its ranked teachers' stored responses passes first. That
is exactly what a verified run generates (the same cache keys; tests/test_verify.py checks the
run against a hand walk), so every configuration below is measured side by side on the same
responses, draws and prompts.

Per draw (``--draws``, seeded): ``--calibration`` prompts form the calibration set, the rest
are routed. For each router kind (prior, knn, bt-linear, and auto choosing among them by
cross-validation, under verification by the cascade's cross-validated outcome) and each router
target (``reward``: the Eq. 2 reward; ``verified``: 0 for a failing response, (1 − α) + α ·
learnability_norm for a passing one), the routed prompts are ranked, then answered:

- without verification (plain Route-then-Generate: the top teacher's response, right or not);
- by the verified cascade with ``max_tries`` 1, 2, 3, 5 (dropping prompts no teacher passed).

The calibration prompts keep their Oracle pick (under verification: among the responses that
pass, dropped when none does). Against: Generate-then-Select's Oracle (the Eq. 2 argmax of
every prompt, all teachers answering all prompts), and strongest / car / Oracle with
``--verified`` (their lines that pass; the Oracle drops only prompts no teacher passed).

Reported per configuration (mean ± sd over draws): right lines per prompt (lines that pass over
all prompts: what a student learns from), the share of right lines among the lines kept, lines
kept, generations in total and per routed prompt, the mean learnability of the kept lines, per
task right lines per prompt and the teacher mix. Targets (issue 44): on the model pool, the
verified cascade keeps ≥ 0.9 of the Oracle's right lines per prompt at ≤ 0.55 of its
generations; the verified target is ahead of the Eq. 2 target at equal ``max_tries``.

Usage: python benchmarks/verify.py [--pools models,demo] [--draws 5] [--calibration 100]
       [--json docs/verify-benchmark.json] [--md docs/verify-benchmark.md]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections import Counter
from importlib.resources import files
from pathlib import Path

import numpy as np
import yaml

from persyn.config import parse_config
from persyn.pipeline import Pipeline
from persyn.router.base import RouterExample, rank_teachers, router_class
from persyn.router.cv import choose_kind, cross_validate, kind_figures, verified_cv
from persyn.router.embeddings import PromptEncoder
from persyn.runtime.embeddings import prompt_embeddings
from persyn.scoring.combine import oracle_pick, pair_labels
from persyn.scoring.means import calibration_means
from persyn.selection.base import get_strategy

ROOT = Path(__file__).resolve().parent.parent
KINDS = ["prior", "knn", "bt-linear"]
TRIES = [1, 2, 3, 5]
POOLS = {
    "models": ROOT / "benchmarks" / "configs" / "verify-pool.yaml",
    "demo": Path(str(files("persyn") / "configs" / "demo.yaml")),
}


def pool_config(pool: str):
    """The pool's run config (the demo's with ``verify`` left out: this script verifies)."""
    data = yaml.safe_load(POOLS[pool].read_text())
    data.pop("verify", None)
    if pool == "demo":
        data["output_dir"] = "runs/verify-demo"
    return parse_config(data)


class PoolData:
    """Every teacher's scored response to every prompt of a pool, as matrices ``[N, K]``."""

    def __init__(self, cfg):
        start = time.perf_counter()
        with Pipeline(cfg) as p:
            p.prepare()
            table = p.full_reward_table()  # generates only what the store lacks
            prompts = [x for x in p.store.prompts() if x.id in table]
            emb = prompt_embeddings(p.ctx, [x.text for x in prompts], PromptEncoder.of(cfg.router))
        self._fill(cfg, prompts, table, emb)
        self.seconds_to_load = time.perf_counter() - start

    @classmethod
    def from_table(cls, cfg, prompts: list, table: dict, emb: np.ndarray) -> PoolData:
        """A pool from scored responses already in hand (no store, no generation): ``prompts``
        (with ``id``, ``text``, ``metadata``), ``table`` prompt id → one ``Candidate`` per teacher
        of ``cfg`` (Eq. 2 filled), ``emb`` ``[N, D]`` prompt embeddings."""
        d = cls.__new__(cls)
        d._fill(cfg, prompts, table, emb)
        d.seconds_to_load = 0.0
        return d

    def _fill(self, cfg, prompts: list, table: dict, emb: np.ndarray) -> None:
        self.cfg = cfg
        self.names = cfg.teacher_names
        self.emb = emb
        self.prompts = prompts
        self.table = {x.id: table[x.id] for x in prompts}
        rows = [self.table[x.id] for x in prompts]
        # the 0/1 verifier's check (pass_quality 1.0): the pools here are verified by answers
        self.passed = np.array([[c.valid and c.quality >= 1.0 - 1e-12 for c in r] for r in rows])
        self.learn = np.array(
            [[np.nan if c.learnability is None else c.learnability for c in r] for r in rows]
        )
        self.reward = [[c.reward for c in r] for r in rows]
        a = cfg.alpha
        self.value = np.array(
            [
                [(1 - a) + a * c.learnability_norm if ok else 0.0 for c, ok in zip(r, pr, strict=True)]
                for r, pr in zip(rows, self.passed, strict=True)
            ]
        )
        self.tasks = [str(x.metadata.get("source_dataset", "all")) for x in prompts]

    def examples(self, idx: np.ndarray, target: str) -> list[RouterExample]:
        out = []
        for i in idx:
            r = self.reward[i] if target == "reward" else [float(v) for v in self.value[i]]
            if target == "verified" and not any(c.valid for c in self.table[self.prompts[i].id]):
                r = [None] * len(r)
            out.append(
                RouterExample(self.prompts[i].text, pair_labels(r, self.cfg.router.ties), r, self.emb[i])
            )
        return out


def dataset_figures(d: PoolData, lines: dict[int, int], gens: int, n_routed: int, routed_tries: int) -> dict:
    """Figures of one dataset: ``lines`` prompt index → teacher index of its line."""
    n = len(d.prompts)
    right = [i for i, k in lines.items() if d.passed[i, k]]
    per_task = {}
    for t in sorted(set(d.tasks)):
        members = [i for i in range(n) if d.tasks[i] == t]
        per_task[t] = {
            "right_per_prompt": sum(1 for i in right if d.tasks[i] == t) / len(members),
            "mix": dict(Counter(d.names[k] for i, k in lines.items() if d.tasks[i] == t)),
        }
    learn = [d.learn[i, k] for i, k in lines.items() if np.isfinite(d.learn[i, k])]
    return {
        "right_per_prompt": len(right) / n,
        "right_share": len(right) / len(lines) if lines else float("nan"),
        "lines": len(lines),
        "generations": gens,
        "generations_per_routed_prompt": routed_tries / n_routed if n_routed else float("nan"),
        "learnability": float(np.mean(learn)) if learn else float("nan"),
        "per_task": per_task,
    }


def oracle_lines(d: PoolData, rows: np.ndarray, verified: bool) -> dict[int, int]:
    """Per prompt row in ``rows``: the Oracle's teacher index (Eq. 2 argmax); ``verified``: the
    argmax among the responses that pass (the pipeline's ``runtime.cascade.verified_pick``),
    none where none passes. Rows with no pick are left out. Serves the calibration prompts'
    lines and the Generate-then-Select Oracles over the whole pool."""
    out = {}
    for i in rows:
        cands = d.table[d.prompts[i].id]
        if verified:
            cands = [c for c, ok in zip(cands, d.passed[i], strict=True) if ok]
        pick = oracle_pick(cands)
        if pick is not None:
            out[int(i)] = d.names.index(pick)
    return out


def cascade(rank: np.ndarray, passed: np.ndarray, max_tries: int | None) -> tuple[dict[int, int], int]:
    """Per routed row: the accepted teacher (or the top one without verification) and tries."""
    lines, tries = {}, 0
    for i, row in enumerate(rank):
        if max_tries is None:
            lines[i] = int(row[0])
            tries += 1
            continue
        for k, j in enumerate(row[:max_tries]):
            if passed[i, j]:
                lines[i] = int(j)
                tries += k + 1
                break
        else:
            tries += min(max_tries, len(row))
    return lines, tries


def one_draw(d: PoolData, n_cal: int, seed: int) -> dict[str, dict]:
    cfg, names, K = d.cfg, d.names, len(d.names)
    n = len(d.prompts)
    order = np.random.default_rng(seed).permutation(n)
    cal, routed = np.sort(order[:n_cal]), np.sort(order[n_cal:])
    out: dict[str, dict] = {}
    texts = [d.prompts[i].text for i in routed]

    def add(name, routed_lines, tries, verified):
        lines = oracle_lines(d, cal, verified)
        lines.update({int(routed[i]): k for i, k in routed_lines.items()})
        out[name] = dataset_figures(d, lines, n_cal * K + tries, len(routed), tries)

    for target in ("reward", "verified"):
        examples = d.examples(cal, target)
        ranks = {}
        for kind in KINDS:
            router = router_class(kind).fit(cfg.router, names, examples, seed)
            ranks[kind] = rank_teachers(router.scores(texts, d.emb[routed]), names)
        # the CV counts the calibration prompts with a valid response (idx): score those only
        idx, cv = cross_validate(["prior", "bt-linear", "knn"], cfg.router, names, examples, seed)
        plain_auto, _ = choose_kind(kind_figures(cv, cfg.router.bootstrap, seed))
        for kind, rank in ranks.items():
            lines, tries = cascade(rank, d.passed[routed], None)
            add(f"{target}/{kind}/none", lines, tries, False)
            for k in TRIES:
                lines, tries = cascade(rank, d.passed[routed], k)
                add(f"{target}/{kind}/{k}", lines, tries, True)
        lines, tries = cascade(ranks[plain_auto], d.passed[routed], None)
        add(f"{target}/auto/none", lines, tries, False)
        out[f"{target}/auto/none"]["auto"] = plain_auto
        for k in TRIES:
            cvk = copy.deepcopy(cv)
            verified_cv(cvk, names, d.value[cal][idx], d.passed[cal][idx], k)
            chosen, _ = choose_kind(kind_figures(cvk, cfg.router.bootstrap, seed))
            lines, tries = cascade(ranks[chosen], d.passed[routed], k)
            add(f"{target}/auto/{k}", lines, tries, True)
            out[f"{target}/auto/{k}"]["auto"] = chosen
    # Generate-then-Select's Oracle, and the single-teacher baselines, plain and --verified
    out["oracle"] = dataset_figures(d, oracle_lines(d, np.arange(n), False), n * K, 0, 0)
    out["oracle-verified"] = dataset_figures(d, oracle_lines(d, np.arange(n), True), n * K, 0, 0)
    means = calibration_means({d.prompts[i].id: d.table[d.prompts[i].id] for i in cal}, names)
    for strategy in ("strongest", "car"):
        t = names.index(get_strategy(strategy).teacher(cfg, means)[0])  # (name, details)
        lines = {int(i): t for i in range(n)}
        gens = n_cal * K + len(routed)  # calibration (to choose the teacher), then one per prompt
        out[strategy] = dataset_figures(d, lines, gens, len(routed), len(routed))
        out[f"{strategy}-verified"] = dataset_figures(
            d, {i: k for i, k in lines.items() if d.passed[i, k]}, gens, len(routed), len(routed)
        )
        out[strategy]["teacher"] = out[f"{strategy}-verified"]["teacher"] = names[t]
    return out


def summarise(draws: list[dict[str, dict]]) -> dict[str, dict]:
    """Mean and sd over draws of each configuration's scalar figures (and the per-task right
    lines per prompt); the teacher mix of draw 0."""
    out = {}
    for name in draws[0]:
        rows = [dr[name] for dr in draws]
        fig = {}
        for key in (
            "right_per_prompt",
            "right_share",
            "lines",
            "generations",
            "generations_per_routed_prompt",
            "learnability",
        ):
            vals = np.array([r[key] for r in rows], dtype=np.float64)
            fig[key] = {
                "mean": float(np.nanmean(vals)),
                "sd": float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0,
            }
        fig["per_task"] = {
            t: {
                "right_per_prompt": float(np.mean([r["per_task"][t]["right_per_prompt"] for r in rows])),
                "mix_draw0": rows[0]["per_task"][t]["mix"],
            }
            for t in rows[0]["per_task"]
        }
        for extra in ("auto", "teacher"):
            if extra in rows[0]:
                fig[extra] = dict(Counter(r[extra] for r in rows))
        out[name] = fig
    return out


def targets(s: dict[str, dict]) -> dict:
    """The issue's targets on one pool's summary."""
    o_right, o_gens = s["oracle"]["right_per_prompt"]["mean"], s["oracle"]["generations"]["mean"]
    out = {}
    for k in TRIES:
        c = s[f"verified/auto/{k}"]
        e = s[f"reward/auto/{k}"]
        out[str(k)] = {
            "right_vs_oracle": c["right_per_prompt"]["mean"] / o_right,
            "generations_vs_oracle": c["generations"]["mean"] / o_gens,
            "meets_0.9_at_0.55": c["right_per_prompt"]["mean"] / o_right >= 0.9
            and c["generations"]["mean"] / o_gens <= 0.55,
            "verified_minus_reward_target": c["right_per_prompt"]["mean"] - e["right_per_prompt"]["mean"],
        }
    return out


def markdown(results: dict) -> str:
    lines = []
    for pool, r in results.items():
        s = r["summary"]
        lines.append(
            f"### Pool `{pool}`: {r['n_prompts']} prompts, {r['n_teachers']} teachers, "
            f"{r['calibration']} calibration prompts per draw, {r['draws']} draws\n"
        )
        lines.append("Each teacher's pass rate (and mean learnability, nats/token) per task, every prompt:\n")
        tasks = list(r["teachers_per_task"])
        lines.append("| teacher | " + " | ".join(tasks) + " |")
        lines.append("|---|" + "---|" * len(tasks))
        for name in r["teachers"]:
            cells = [r["teachers_per_task"][t][name] for t in tasks]
            lines.append(
                f"| {name} | "
                + " | ".join(f"{c['pass_rate']:.2f} ({c['learnability']:.2f})" for c in cells)
                + " |"
            )
        lines.append("")
        lines.append(
            "| dataset | right lines / prompt | right share of kept | lines | generations | per routed prompt | learnability | auto |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        order = ["oracle", "oracle-verified", "strongest", "strongest-verified", "car", "car-verified"]
        order += [
            f"{t}/{k}/{m}"
            for t in ("reward", "verified")
            for k in ["auto", *KINDS]
            for m in ["none", *map(str, TRIES)]
        ]
        for name in order:
            f = s[name]

            def ms(key, spec, f=f):
                return f"{f[key]['mean']:{spec}} ± {f[key]['sd']:{spec}}"

            auto = ", ".join(f"{k} {v}" for k, v in f.get("auto", {}).items()) or ", ".join(
                f.get("teacher", {})
            )
            lines.append(
                f"| {name} | {ms('right_per_prompt', '.3f')} | {ms('right_share', '.3f')} | {ms('lines', '.0f')} | "
                f"{ms('generations', '.0f')} | {ms('generations_per_routed_prompt', '.2f')} | {ms('learnability', '.2f')} | {auto} |"
            )
        lines.append("")
        lines.append("Per task, right lines per prompt (mean over draws):\n")
        tasks = list(s["oracle"]["per_task"])
        lines.append("| dataset | " + " | ".join(tasks) + " |")
        lines.append("|---|" + "---|" * len(tasks))
        for name in [
            "oracle",
            "car",
            "car-verified",
            "reward/auto/none",
            "reward/auto/2",
            "verified/auto/none",
            "verified/auto/1",
            "verified/auto/2",
            "verified/auto/3",
        ]:
            lines.append(
                f"| {name} | "
                + " | ".join(f"{s[name]['per_task'][t]['right_per_prompt']:.3f}" for t in tasks)
                + " |"
            )
        lines.append("")
        lines.append(
            "Teacher mix per task (draw 0), verified target, auto, max_tries 2 (the line's teacher):\n"
        )
        for t in tasks:
            lines.append(f"- {t}: {s['verified/auto/2']['per_task'][t]['mix_draw0']}")
        lines.append("")
        lines.append("Targets (verified target, auto): " + json.dumps(r["targets"]))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pools", default="models,demo")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--calibration", type=int, default=100)
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "verify-benchmark.json")
    ap.add_argument("--md", type=Path, default=ROOT / "docs" / "verify-benchmark.md")
    args = ap.parse_args()
    results = {}
    for pool in args.pools.split(","):
        cfg = pool_config(pool)
        d = PoolData(cfg)
        n_cal = min(args.calibration, len(d.prompts) // 2)
        start = time.perf_counter()
        draws = [one_draw(d, n_cal, seed) for seed in range(args.draws)]
        s = summarise(draws)
        probe = {
            t: {
                name: {
                    "pass_rate": float(
                        d.passed[[i for i in range(len(d.prompts)) if d.tasks[i] == t], k].mean()
                    ),
                    "learnability": float(
                        np.nanmean(d.learn[[i for i in range(len(d.prompts)) if d.tasks[i] == t], k])
                    ),
                }
                for k, name in enumerate(d.names)
            }
            for t in sorted(set(d.tasks))
        }
        results[pool] = {
            "n_prompts": len(d.prompts),
            "teachers_per_task": probe,
            "n_teachers": len(d.names),
            "teachers": d.names,
            "calibration": n_cal,
            "draws": args.draws,
            "seconds_load": round(d.seconds_to_load, 1),
            "seconds_routers": round(time.perf_counter() - start, 1),
            "summary": s,
            "targets": targets(s),
        }
        o = s["oracle"]
        print(
            f"== {pool}: {len(d.prompts)} prompts; Oracle right lines/prompt {o['right_per_prompt']['mean']:.3f} "
            f"at {o['generations']['mean']:.0f} generations"
        )
        for k in ["none", *map(str, TRIES)]:
            for t in ("reward", "verified"):
                c = s[f"{t}/auto/{k}"]
                print(
                    f"  {t:8s} auto max_tries {k:4s}: right/prompt {c['right_per_prompt']['mean']:.3f} "
                    f"({c['right_per_prompt']['mean'] / o['right_per_prompt']['mean']:.2f} of Oracle) at "
                    f"{c['generations']['mean']:.0f} generations ({c['generations']['mean'] / o['generations']['mean']:.2f} of Oracle), "
                    f"{c['generations_per_routed_prompt']['mean']:.2f}/routed prompt; auto {c.get('auto')}"
                )
        for b in ("strongest", "strongest-verified", "car", "car-verified", "oracle-verified"):
            print(
                f"  {b:18s}: right/prompt {s[b]['right_per_prompt']['mean']:.3f}, lines {s[b]['lines']['mean']:.0f}"
            )
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    args.md.write_text(markdown(results) + "\n")
    print(f"wrote {args.json} and {args.md}")


if __name__ == "__main__":
    main()
