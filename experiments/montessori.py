"""The Montessori-Instruct experiment (issue 15): the packaged student fine-tuned on seed data plus
prompts from the base Self-Instruct generator, and from that generator tuned to the student by
DPO on its own outputs' signals, paired over the same held-out prompts and SFT seeds.

Loop (Montessori-Instruct, arXiv 2410.14208, Sec. 3), every setting in
``persyn/configs/montessori.yaml``:
  1. the generator writes a probing set (``probe_count`` kept prompts, at most 4 samples per kept
     prompt requested, 4 samples per request: a request's kept samples form a group);
  2. each probing example (prompt + the reference answer in terse steps) gets its local data
     influence on the warm-up student (1 epoch on the seed set), its loss and its learnability
     (``persyn influence``);
  3. preference pairs within each group by the signal, DPO of the generator
     (``persyn adapt-generator``); the tuned generator writes the arm's training prompts.
Arms: ``base`` (the untuned generator: the first ``train_count`` prompts of its probing set),
``influence-1``, ``loss-1``, ``learnability-1`` (one iteration with each signal),
``influence-2`` (a second influence iteration, probed on ``influence-1``'s set). Every arm trains
on the 32 seed examples + ``train_count`` synthetic prompts, each with every SFT seed.

Also measured: per generator, the kept / duplicate / no-answer counts and the mean influence,
loss and learnability of what it wrote (the shift DPO caused); per DPO, the pairing rule, the
groups with both a helpful and a harmful example, the pairs and the reward margins.

Resumable: generators, signals, tuned generators and every (arm, seed) result are cached under the
output directory; a re-run skips what is done. Progress with ETA goes to stdout.

Usage: python experiments/montessori.py [--config persyn/configs/montessori.yaml] [--out DIR]
       [--results-only]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import spearmanr
from synthesis import log, prompt_set  # the synthesis experiment's (same setting)

from persyn.config import parse_config
from persyn.core.io import jsonl_rows, jsonl_text
from persyn.core.records import Prompt
from persyn.engines.reference import render_reference
from persyn.evaluate import evaluate, normalize_prompt
from persyn.experiment.paired import paired_difference
from persyn.pipeline import Pipeline
from persyn.synthesis.answers import arithmetic_expression
from persyn.training.dpo_config import DPOSettings
from persyn.training.sft import sft
from persyn.training.sft_config import SFTSettings

ARMS = ["base", "influence-1", "loss-1", "learnability-1", "influence-2"]
SIGNALS = ("influence", "loss", "learnability")
WORDING = "State the final answer to the following arithmetic problem"  # chain_sum's own prompt


def example(text: str, answer: str, **extra) -> dict:
    """A dataset line: the prompt and its reference answer in terse steps."""
    expression = arithmetic_expression(text)
    p = Prompt("x", text, answer=answer, metadata={"expression": expression} if expression else {})
    msgs = [{"role": "user", "content": text}, {"role": "assistant", "content": render_reference(p, "terse")}]
    return {**extra, "messages": msgs}


def base_run(cfg: dict, out: Path) -> dict:
    """The run config every persyn call of this experiment shares (student, influence)."""
    ic = cfg["influence"]
    return {
        "output_dir": str(out),
        "seed": cfg["seed_set"]["seed"],
        "student": {"model": cfg["student"]},
        "teachers": [
            {"name": "terse", "engine": "reference", "style": "terse"},
            {"name": "answer", "engine": "reference", "style": "answer"},
        ],
        "influence": {
            "warmup": str(out / "warmup.jsonl"),
            "reference": str(out / "reference.jsonl"),
            **ic,
        },
    }


def synthesize(cfg: dict, out: Path, name: str, model: str, count: int, eval_texts: set[str]) -> list[dict]:
    """Generator ``model``'s kept prompts (``candidates.jsonl`` rows; those equal to a held-out
    prompt dropped), cached under ``out/generators/NAME``."""
    seeds_pc, target_pc = prompt_set(cfg, "seed_set")[0], prompt_set(cfg, "target_set")[0]
    g = cfg["generator"]
    run = base_run(cfg, out) | {
        "output_dir": str(out / "generators" / name),
        "prompts": {"source": "synthetic"},
        "synthesis": {
            "generator": "self-instruct",
            "model": {**g["model"], "model": model},
            "seeds": seeds_pc.model_dump(mode="json"),
            "target": target_pc.model_dump(mode="json"),
            "count": count,
            "shots": g["shots"],
            "samples": g["samples"],
            "max_requests": count,  # at most `samples` generations per kept prompt
            "answers": "computed",
            "rouge_threshold": cfg["rouge_threshold"],
            "embed_threshold": cfg["embed_threshold"],
        },
    }
    summary_path = out / "generators" / f"{name}.summary.json"
    if not summary_path.exists():
        start = time.perf_counter()
        with Pipeline(parse_config(run)) as p:
            summary = p.synthesize()
        summary_path.write_text(json.dumps(summary.model_dump(), indent=2))
        log(f"{name}: {summary.kept} kept of {summary.samples} samples ({time.perf_counter() - start:.0f} s)")
    rows = jsonl_rows(out / "generators" / name / "synthetic" / "candidates.jsonl")
    return [r for r in rows if normalize_prompt(r["prompt"]) not in eval_texts]


def signals(cfg: dict, out: Path, name: str, rows: list[dict]) -> tuple[Path, Path, dict[str, dict]]:
    """Influence, loss and learnability of ``rows`` (cached): the examples file, the influence
    directory and the records by example id."""
    from persyn.montessori.influence import run_influence, stored_signals

    where = out / "signals" / name
    where.mkdir(parents=True, exist_ok=True)
    examples = where / "examples.jsonl"
    lines = [
        example(
            r["prompt"],
            r["answer"],
            id=r["id"],
            group=r["group"],
            request=r["request"],
            generated=r["generated"],
        )
        for r in rows
    ]
    examples.write_text(jsonl_text(lines, ascii_only=True))
    if not (where / "summary.json").exists() or json.loads((where / "summary.json").read_text())[
        "examples"
    ] != len(lines):
        start = time.perf_counter()
        s = run_influence(
            parse_config(base_run(cfg, out)),
            examples,
            where,
            log=lambda m: None,
            warmup_dir=out / "signals" / "warmup",  # one warm-up state for every probe
        )
        log(
            f"signals {name}: {s['examples']} examples, {s['helpful']} helpful / {s['harmful']} harmful, "
            f"{s['seconds_per_example']} s per example ({time.perf_counter() - start:.0f} s)"
        )
    return examples, where, {r["id"]: r for r in stored_signals(where)}


def adapt(cfg: dict, out: Path, name: str, generator: str, signal: str, probed: str) -> tuple[str, dict]:
    """DPO of ``generator`` on pairs from ``probed``'s signals; the tuned model's path and info."""
    from persyn.montessori.adapt import adapt_generator

    target = out / "generators" / f"{name}-model"
    start = time.perf_counter()
    info = adapt_generator(
        out / "signals" / probed / "examples.jsonl",
        out / "signals" / probed,
        generator,
        target,
        DPOSettings(**cfg["dpo"]),
        signal,
        cfg["rule"],
    )
    if time.perf_counter() - start > 5:
        n = info["note"]
        log(
            f"{name}: DPO on {n['pairs']} pairs (rule {n['rule']}, {n['groups_with_pairs']} groups), "
            f"{info['steps']} steps in {info['seconds']:.0f} s, margins {info['margins'][0]:.3f} → {info['margins'][-1]:.3f}"
        )
    return str(target.resolve()), info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path(str(files("persyn") / "configs" / "montessori.yaml")))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--results-only", action="store_true", help="only write the tables from what is done")
    args = ap.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    out = args.out or Path(cfg["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    _, seeds = prompt_set(cfg, "seed_set")
    _, target = prompt_set(cfg, "target_set")
    _, evals = prompt_set(cfg, "eval_set")
    taken = {normalize_prompt(p.text) for p in seeds + target}
    evals = [p for p in evals if normalize_prompt(p.text) not in taken]
    eval_texts = {normalize_prompt(p.text) for p in evals}
    log(f"held-out prompts: {len(evals)} (of {cfg['eval_set']['size']}; the rest are seed or target prompts)")
    seed_lines = [example(p.text, str(p.answer), id=p.id) for p in seeds]
    (out / "warmup.jsonl").write_text(jsonl_text(seed_lines, ascii_only=True))
    (out / "reference.jsonl").write_text(
        jsonl_text([example(p.text, str(p.answer), id=p.id) for p in target], ascii_only=True)
    )
    if args.results_only:
        write_results(out, cfg)
        return
    base_model = cfg["generator"]["model"]["model"]
    pc, tc = cfg["probe_count"], cfg["train_count"]
    sets: dict[str, list[dict]] = {}

    # iteration 1, shared by the three signals: the base generator's probing set and its signals
    sets["base"] = synthesize(cfg, out, "base", base_model, pc, eval_texts)
    signals(cfg, out, "base", sets["base"])
    inf1, _ = adapt(cfg, out, "influence-1", base_model, "influence", "base")
    sets["influence-1"] = synthesize(cfg, out, "influence-1", inf1, pc, eval_texts)

    def students(arms: list[str]) -> None:
        jobs = [(a, sd) for sd in cfg["sft_seeds"] for a in arms]
        for i, (arm, sd) in enumerate(jobs):
            path = out / "results" / f"{arm}-{sd}.json"
            if path.exists():
                continue
            path.parent.mkdir(exist_ok=True)
            start = time.perf_counter()
            syn = [example(r["prompt"], r["answer"]) for r in sets[arm][:tc]]
            lines = seed_lines + syn
            model = str(out / "models" / f"{arm}-{sd}")
            info = sft(lines, cfg["student"], model, SFTSettings(**cfg["sft"], seed=sd), progress=False)
            ev = evaluate(
                model,
                evals,
                train_prompts=[x["messages"][0]["content"] for x in lines],
                batch_size=40,
                max_new_tokens=cfg["eval_set"]["max_new_tokens"],
                progress=False,
            )
            shutil.rmtree(model, ignore_errors=True)
            rec = {
                "arm": arm,
                "seed": sd,
                "accuracy": ev.accuracy,
                "n_synthetic": len(syn),
                "steps": info.get("steps"),
                "sft_seconds": info.get("seconds"),
                "eval_seconds": ev.seconds,
                "correct": [bool(r["correct"]) for r in ev.records],
            }
            path.write_text(json.dumps(rec))
            left = sum(1 for a, s in jobs[i + 1 :] if not (out / "results" / f"{a}-{s}.json").exists())
            took = time.perf_counter() - start
            log(
                f"{arm} seed {sd}: accuracy {ev.accuracy:.3f} ({took:.0f} s; {left} left here, ~{left * took / 60:.0f} min)"
            )

    students(["base", "influence-1"])
    # influence-1's set probed from the same warm-up state: the shift DPO caused, and iteration 2's input
    signals(cfg, out, "influence-1", sets["influence-1"])
    for signal in ("loss", "learnability"):
        tuned, _ = adapt(cfg, out, f"{signal}-1", base_model, signal, "base")
        sets[f"{signal}-1"] = synthesize(cfg, out, f"{signal}-1", tuned, tc, eval_texts)
    students(["loss-1", "learnability-1"])
    # iteration 2 (influence): DPO again from influence-1, on its probed set
    inf2, _ = adapt(cfg, out, "influence-2", inf1, "influence", "influence-1")
    sets["influence-2"] = synthesize(cfg, out, "influence-2", inf2, tc, eval_texts)
    students(["influence-2"])
    # the shift: every signal on each tuned generator's training prompts
    for arm in ("influence-2", "loss-1", "learnability-1"):
        signals(cfg, out, arm, sets[arm][:tc])
    write_results(out, cfg)


def _mean(records: dict[str, dict], ids: list[str], signal: str) -> float | None:
    v = [records[i][signal] for i in ids if i in records and records[i].get(signal) is not None]
    return float(np.mean(v)) if v else None


def write_results(out: Path, cfg: dict) -> None:
    """results.md and results.json from whatever is done."""
    from persyn.montessori.influence import stored_signals

    tc = cfg["train_count"]
    res: dict[tuple[str, int], dict] = {}
    for f in (out / "results").glob("*.json"):
        r = json.loads(f.read_text())
        res[(r["arm"], r["seed"])] = r
    summary: dict = {"generators": {}, "dpo": {}, "signals": {}, "students": {}, "paired": {}}
    lines = [
        "## Generators\n",
        "| generator | samples | kept | duplicate rate | no answer | relevance | novelty "
        "| in the task's wording | negative answer | prompt chars | numbers per prompt "
        "| mean influence | helpful share | mean loss | mean learnability |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm in ARMS:
        sp = out / "generators" / f"{arm}.summary.json"
        if not sp.exists():
            continue
        s = json.loads(sp.read_text())
        rows = jsonl_rows(out / "generators" / arm / "synthetic" / "candidates.jsonl")
        ids = [r["id"] for r in rows][:tc]
        sig_dir = out / "signals" / arm
        rec = {r["id"]: r for r in stored_signals(sig_dir)} if (sig_dir / "summary.json").exists() else {}
        m = {k: _mean(rec, ids, k) for k in SIGNALS}
        infl = [rec[i]["influence"] for i in ids if i in rec and "influence" in rec[i]]
        helpful = float(np.mean([x < 0 for x in infl])) if infl else None
        summary["generators"][arm] = {**s, **{f"mean_{k}": v for k, v in m.items()}, "helpful_share": helpful}
        fmt = lambda v, p=4: "–" if v is None else f"{v:.{p}f}"  # noqa: E731
        train = rows[:tc]  # what the arm trains on (the signal columns: the same prompts)
        shape = {
            "wording": float(np.mean([WORDING in r["prompt"] for r in train])),
            "negative": float(np.mean([float(r["answer"]) < 0 for r in train])),
            "chars": float(np.mean([len(r["prompt"]) for r in train])),
            "numbers": float(np.mean([len(re.findall(r"\d+", r["prompt"])) for r in train])),
        }
        summary["generators"][arm]["train_prompts"] = shape
        lines.append(
            f"| {arm} | {s['samples']} | {s['kept']} | {fmt(s['duplicate_rate'], 2)} | {s['no_answer']} "
            f"| {fmt(s['relevance_mean'], 3)} | {fmt(s['novelty_mean'], 3)} | {shape['wording']:.2f} "
            f"| {shape['negative']:.2f} | {shape['chars']:.0f} | {shape['numbers']:.1f} | {fmt(m['influence'])} "
            f"| {fmt(helpful, 2)} | {fmt(m['loss'])} | {fmt(m['learnability'])} |"
        )
        if len(rec) >= 8 and arm in ("base", "influence-1"):
            col = {k: [rec[i][k] for i in rec if rec[i].get(k) is not None] for k in SIGNALS}
            if len({len(v) for v in col.values()}) == 1:
                summary["signals"][arm] = {
                    "n": len(col["influence"]),
                    "influence~loss": float(spearmanr(col["influence"], col["loss"])[0]),
                    "influence~learnability": float(spearmanr(col["influence"], col["learnability"])[0]),
                    "loss~learnability": float(spearmanr(col["loss"], col["learnability"])[0]),
                }
    lines += [
        "\n## DPO of the generator\n",
        "| tuned generator | signal | probed set | rule | groups (2+ examples) | both sides | groups with pairs "
        "| pairs | steps | seconds | reward margin, epoch 1 (pairs not yet trained on) | last epoch "
        "| pair accuracy, epoch 1 | last epoch |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm in ARMS[1:]:
        p = out / "generators" / f"{arm}-model" / "persyn_dpo.json"
        if not p.exists():
            continue
        d = json.loads(p.read_text())
        n, mg, acc = d["note"], d["margins"], d["accuracies"]
        # TRL logs each step's margin before that step's update: in epoch 1 on unseen pairs
        per = max(1, len(mg) // max(1, round(d["settings"]["epochs"])))
        summary["dpo"][arm] = {k: d[k] for k in ("note", "steps", "seconds", "margins", "accuracies", "loss")}
        probed = "influence-1" if arm == "influence-2" else "base"
        lines.append(
            f"| {arm} | {n['signal']} | {probed} | {n['rule']} | {n['groups_of_two_or_more']} | {n['both_sides']} "
            f"| {n['groups_with_pairs']} | {n['pairs']} | {d['steps']} | {d['seconds']:.0f} "
            f"| {np.mean(mg[:per]):+.3f} | {np.mean(mg[-per:]):+.3f} | {np.mean(acc[:per]):.2f} | {np.mean(acc[-per:]):.2f} |"
        )
    # do the signals choose the same pairs? (on the base probing set, where all three were paired)
    chosen = {}
    for arm in ("influence-1", "loss-1", "learnability-1"):
        pp = out / "generators" / f"{arm}-model" / "pairs.json"
        if pp.exists():
            chosen[arm] = {tuple(x) for x in json.loads(pp.read_text())["pairs"]}
    names = list(chosen)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            same = len(chosen[a] & chosen[b])
            flipped = len({(r, c) for c, r in chosen[a]} & chosen[b])
            summary["dpo"][f"pairs {a} vs {b}"] = {"same": same, "reversed": flipped}
            lines.append(
                f"\nPairs of {a} and {b} (same groups): {same} the same, {flipped} reversed, of "
                f"{len(chosen[a])} and {len(chosen[b])}."
            )
    for arm, c in summary["signals"].items():
        lines.append(
            f"\nSpearman across {arm}'s {c['n']} probed examples: influence~loss {c['influence~loss']:+.2f}, "
            f"influence~learnability {c['influence~learnability']:+.2f}, loss~learnability {c['loss~learnability']:+.2f}."
        )
    lines += [
        "\n## Students\n",
        "| arm | accuracy mean ± std (seeds) | per seed | − base [95% CI] (seed std) | SFT s |",
        "| --- | --- | --- | --- | ---: |",
    ]
    seeds = cfg["sft_seeds"]
    for arm in ARMS:
        done = [sd for sd in seeds if (arm, sd) in res]
        if not done:
            continue
        acc = [res[(arm, sd)]["accuracy"] for sd in done]
        diff = "–"
        common = [sd for sd in done if ("base", sd) in res]
        if arm != "base" and common:
            d = paired_difference(
                np.array([res[(arm, sd)]["correct"] for sd in common], dtype=float),
                np.array([res[("base", sd)]["correct"] for sd in common], dtype=float),
            )
            summary["paired"][f"{arm} - base"] = d
            diff = f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] seed-aware, [{d['prompt_low']:+.3f}, {d['prompt_high']:+.3f}] prompt-only (seed std {d['seed_std']:.3f}, {d['n_seeds']} seeds)"
        std = float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0
        summary["students"][arm] = {"accuracy": acc, "seeds": done}
        lines.append(
            f"| {arm} | {np.mean(acc):.3f} ± {std:.3f} | {', '.join(f'{a:.3f}' for a in acc)} | {diff} "
            f"| {np.mean([res[(arm, sd)]['sft_seconds'] for sd in done]):.0f} |"
        )
    for a, b in (
        ("influence-2", "influence-1"),
        ("influence-1", "loss-1"),
        ("influence-1", "learnability-1"),
    ):
        common = [sd for sd in seeds if (a, sd) in res and (b, sd) in res]
        if common:
            d = paired_difference(
                np.array([res[(a, sd)]["correct"] for sd in common], dtype=float),
                np.array([res[(b, sd)]["correct"] for sd in common], dtype=float),
            )
            summary["paired"][f"{a} - {b}"] = d
            lines.append(
                f"\n{a} − {b}: {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] seed-aware, [{d['prompt_low']:+.3f}, {d['prompt_high']:+.3f}] prompt-only (seed std {d['seed_std']:.3f}, {d['n_seeds']} seeds)"
            )
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(text)


if __name__ == "__main__":
    main()
