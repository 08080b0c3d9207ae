"""The synthesis experiment (issue 14): the packaged student fine-tuned on seed data alone and on
seed + synthetic prompts from Self-Instruct and NOMAD generators, paired over the same held-out
prompts and seeds.

Arms (``persyn/configs/synthesis.yaml`` fixes every size and setting):
  (a) seed: the seed examples alone;
  (b) self-instruct: seed + S prompts from few-shot prompting;
  (c) nomad-off: seed + S prompts from a generator trained without prompt masking (NOMAD);
  (d) nomad-on: the same with prompt masking (loss on the response only: the ablation);
  (e) nomad-off-band: seed + up to S prompts of (c)'s generator, taken from its first 2S kept
      candidates (at the largest S, from the 1.5 S it keeps) whose relevance (NormSim_inf to the
      target set) lies in the 25-75 percentile band;
for S in ``synthetic_sizes``, each fine-tuned with every seed of ``sft_seeds``, plus the
untouched student. Every response is the reference answer in terse steps (for synthetic prompts,
from the sympy-computed answer), so the arms differ only in their prompts.

Resumable: generators, synthetic sets and every (arm, size, seed) result are cached under the
output directory; a re-run skips what is done. Progress and ETA go to stdout.

Usage: python experiments/synthesis.py [--config persyn/configs/synthesis.yaml] [--out DIR]
       [--quick]   (one seed, the smallest size: a look in ~15 minutes)
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import yaml

from persyn.config import NOMAD_HEADER, PromptsConfig, parse_config
from persyn.core.io import jsonl_rows
from persyn.core.records import Prompt
from persyn.engines.reference import render_reference
from persyn.evaluate import evaluate, normalize_prompt
from persyn.experiment.paired import paired_difference
from persyn.pipeline import Pipeline
from persyn.prompts import load_prompts
from persyn.synthesis.answers import arithmetic_expression
from persyn.synthesis.nomad import train_generator
from persyn.training.sft import sft
from persyn.training.sft_config import SFTSettings

ARMS = ["seed", "self-instruct", "nomad-off", "nomad-on", "nomad-off-band"]
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{(time.perf_counter() - T0) / 60:6.1f} min] {msg}", flush=True)


def prompt_set(cfg: dict, part: str) -> tuple[PromptsConfig, list[Prompt]]:
    spec = cfg[part]
    pc = PromptsConfig(
        source="reasoning_gym", task=cfg["task"], size=spec["size"], task_kwargs=cfg["task_kwargs"]
    )
    return pc, load_prompts(pc, spec["seed"])[0]


def synthesize(cfg: dict, out: Path, name: str, model: dict, count: int, extra: dict) -> list[dict]:
    seeds_pc, target_pc = prompt_set(cfg, "seed_set")[0], prompt_set(cfg, "target_set")[0]
    run = {
        "output_dir": str(out / "generators" / name),
        "seed": cfg["seed_set"]["seed"],
        "prompts": {"source": "synthetic"},
        "student": {"model": cfg["student"]},
        "teachers": [
            {"name": "terse", "engine": "reference", "style": "terse"},
            {"name": "answer", "engine": "reference", "style": "answer"},
        ],
        "synthesis": {
            "model": model,
            "seeds": seeds_pc.model_dump(mode="json"),
            "target": target_pc.model_dump(mode="json"),
            "count": count,
            "answers": "computed",
            "rouge_threshold": cfg["rouge_threshold"],
            "embed_threshold": cfg["embed_threshold"],
            **extra,
        },
    }
    with Pipeline(parse_config(run)) as p:
        summary = p.synthesize()
    (out / "generators" / f"{name}.summary.json").write_text(json.dumps(summary.model_dump(), indent=2))
    rows = jsonl_rows(out / "generators" / name / "synthetic" / "candidates.jsonl")
    log(f"{name}: {summary.kept} kept of {summary.samples} samples ({summary.seconds:.0f} s)")
    return rows


def generator_correctness(rows: list[dict]) -> float | None:
    """Share of generator-written responses whose final answer equals the computed answer."""
    from math_verify import parse, verify

    judged = [verify(parse(r["answer"]), parse(r["solution"])) for r in rows if r.get("solution")]
    return float(np.mean(judged)) if judged else None


def example(text: str, answer: str, expression: str | None) -> dict:
    p = Prompt("x", text, answer=answer, metadata={"expression": expression} if expression else {})
    return {
        "messages": [
            {"role": "user", "content": text},
            {"role": "assistant", "content": render_reference(p, "terse")},
        ]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path(str(files("persyn") / "configs" / "synthesis.yaml")))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results-only", action="store_true", help="only write the tables from what is done")
    args = ap.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    out = args.out or Path(cfg["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    sizes, sft_seeds = cfg["synthetic_sizes"], cfg["sft_seeds"]
    if args.quick:
        sizes, sft_seeds = sizes[:1], sft_seeds[:1]
    big = max(sizes)
    _, seeds = prompt_set(cfg, "seed_set")
    _, evals = prompt_set(cfg, "eval_set")
    # held-out prompts that are also seed or target prompts (a small problem space) are left out
    taken = {
        normalize_prompt(p.text) for part in ("seed_set", "target_set") for p in prompt_set(cfg, part)[1]
    }
    evals = [p for p in evals if normalize_prompt(p.text) not in taken]
    log(
        f"held-out prompts: {len(evals)} (of {cfg['eval_set']['size']} drawn; the rest are seed or target prompts)"
    )
    eval_texts = {normalize_prompt(p.text) for p in evals}

    # 1. generators and their synthetic prompts
    si = cfg["self_instruct"]
    cands = {
        "self-instruct": synthesize(
            cfg,
            out,
            "self-instruct",
            si["model"],
            big,
            {
                "generator": "self-instruct",
                "shots": si["shots"],
                "samples": si["samples"],
                "max_requests": 4 * big,
            },
        )
    }
    nm = cfg["nomad"]
    gen_info = {}
    for masking in ("off", "on"):
        gdir = out / "generators" / f"nomad-{masking}-model"
        if not (gdir / "persyn_sft.json").exists():
            start = time.perf_counter()
            train_generator(
                seeds,
                nm["base"],
                gdir,
                SFTSettings(**nm["train"]),
                prompt_masking=masking == "on",
                header=NOMAD_HEADER,
                progress=False,
            )
            log(f"nomad-{masking}: generator trained in {time.perf_counter() - start:.0f} s")
        gen_info[masking] = json.loads((gdir / "persyn_sft.json").read_text())
        model = {**nm["model"], "model": str(gdir.resolve())}
        cands[f"nomad-{masking}"] = synthesize(
            cfg,
            out,
            f"nomad-{masking}",
            model,
            3 * big // 2,  # the band arm takes the middle half of 2S candidates; at the largest S, of these
            # masking on: the generator never learned to write prompts; its budget was cut to what
            # a first run had drawn (288 samples) when that showed ~0 kept (docs/experiments.md)
            {"generator": "nomad", "samples": 4, "max_requests": 4 * big if masking == "off" else 72},
        )

    # 2. the arms' synthetic sets (contaminated prompts, equal to a held-out prompt, dropped)
    clean = {k: [r for r in v if normalize_prompt(r["prompt"]) not in eval_texts] for k, v in cands.items()}
    contaminated = {k: len(cands[k]) - len(v) for k, v in clean.items()}
    sets: dict[tuple[str, int], list[dict]] = {}
    for s in sizes:
        sets[("seed", 0)] = []
        for arm in ("self-instruct", "nomad-off", "nomad-on"):
            sets[(arm, s)] = clean[arm][:s]
        pool = clean["nomad-off"][: 2 * s]
        rel = np.array([r["relevance"] for r in pool])
        lo, hi = np.percentile(rel, cfg["relevance_band"])
        sets[("nomad-off-band", s)] = [r for r in pool if lo <= r["relevance"] <= hi][:s]

    # 3. fine-tune and evaluate, seeds outermost (a whole table per seed as early as possible)
    res_dir = out / "results"
    res_dir.mkdir(exist_ok=True)
    settings = cfg["sft"]
    seed_lines = [example(p.text, str(p.answer), p.metadata.get("expression")) for p in seeds]
    # An arm with no synthetic prompt would repeat the seed-only fine-tune, and one whose set at
    # a larger S is the same as at a smaller S (the generator ran out) would repeat that one:
    # both are left out of the jobs and the tables say so.
    same_as = {}
    for arm, s in sets:
        for s2 in sizes:
            if s2 < s and [r["prompt"] for r in sets.get((arm, s2), [])] == [
                r["prompt"] for r in sets[(arm, s)]
            ]:
                same_as[(arm, s)] = s2
                break
    jobs = [("untouched", 0, None)] + [
        (arm, s, sd)
        for sd in sft_seeds
        for (arm, s) in sets
        if (arm == "seed" or sets[(arm, s)]) and (arm, s) not in same_as
    ]
    times: list[float] = []
    for i, (arm, s, sd) in enumerate(jobs):
        path = res_dir / f"{arm}-{s}-{sd}.json"
        if path.exists() or args.results_only:
            continue
        start = time.perf_counter()
        if arm == "untouched":
            model, info = cfg["student"], {}
            train_texts = []
        else:
            syn = [
                example(r["prompt"], r["answer"], arithmetic_expression(r["prompt"])) for r in sets[(arm, s)]
            ]
            lines = seed_lines + syn
            model = str(out / "models" / f"{arm}-{s}-{sd}")
            info = sft(lines, cfg["student"], model, SFTSettings(**settings, seed=sd), progress=False)
            train_texts = [ln["messages"][0]["content"] for ln in lines]
        ev = evaluate(
            model,
            evals,
            train_prompts=train_texts,
            batch_size=40,
            max_new_tokens=cfg["eval_set"]["max_new_tokens"],
            progress=False,
        )
        if arm != "untouched":
            shutil.rmtree(model, ignore_errors=True)
        path.write_text(
            json.dumps(
                {
                    "arm": arm,
                    "size": s,
                    "seed": sd,
                    "accuracy": ev.accuracy,
                    "n_train": len(train_texts),
                    "steps": info.get("steps"),
                    "sft_seconds": info.get("seconds"),
                    "eval_seconds": ev.seconds,
                    "correct": [bool(r["correct"]) for r in ev.records],
                }
            )
        )
        times.append(time.perf_counter() - start)
        left = sum(1 for a, b, c in jobs[i + 1 :] if not (res_dir / f"{a}-{b}-{c}.json").exists())
        log(
            f"{arm} S={s} seed={sd}: accuracy {ev.accuracy:.3f} ({times[-1]:.0f} s; {left} left, "
            f"ETA {left * np.mean(times) / 60:.0f} min)"
        )

    # 4. tables
    write_results(out, cfg, sets, sizes, sft_seeds, cands, contaminated, gen_info, same_as)


def write_results(out, cfg, sets, sizes, sft_seeds, cands, contaminated, gen_info, same_as) -> None:
    res = {}
    for f in (out / "results").glob("*.json"):
        r = json.loads(f.read_text())
        res[(r["arm"], r["size"], r["seed"])] = r
    lines = [
        "## Generators\n",
        "| generator | samples | unparsable | duplicate rate | no answer | kept | generator's answers correct "
        "| relevance (NormSim_inf) mean | novelty mean | generator s per kept |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("self-instruct", "nomad-off", "nomad-on"):
        s = json.loads((out / "generators" / f"{name}.summary.json").read_text())
        corr = generator_correctness(cands[name])
        lines.append(
            f"| {name} | {s['samples']} | {s['unparsable']} | {s['duplicate_rate']:.2f} | {s['no_answer']} | {s['kept']} "
            f"| {'–' if corr is None else f'{corr:.2f}'} | {s['relevance_mean']:.3f} | {s['novelty_mean']:.3f} "
            f"| {s['generation_seconds_per_kept']:.2f} |"
        )
    lines.append(f"\nSynthetic prompts equal to a held-out prompt, dropped: {contaminated}.")
    for (arm, s), s2 in same_as.items():
        lines.append(
            f"{arm} at S={s}: the same {len(sets[(arm, s)])} prompts as at S={s2} (not trained again)."
        )
    for m, info in gen_info.items():
        lines.append(
            f"NOMAD generator, masking {m}: {info['steps']} steps, loss tokens {info['loss_tokens']}, "
            f"final loss {info['final_loss']:.3f}, {info['seconds']:.0f} s."
        )
    unt = res.get(("untouched", 0, None))
    lines += [
        "\n## Students\n",
        f"Untouched student: {unt['accuracy']:.3f}.\n" if unt else "",
        "| arm | S (synthetic prompts used) | accuracy mean ± std (seeds) | per seed | − seed-only [95% CI] (seed std) |",
        "| --- | ---: | --- | --- | --- |",
    ]
    table = {}
    for arm, s in sets:
        if (arm, s) in same_as:
            lines.append(f"| {arm} | {s}: the same prompts as at {same_as[(arm, s)]} | – | – | – |")
            continue
        done = [sd for sd in sft_seeds if (arm, s, sd) in res]
        if not done:
            continue
        acc = [res[(arm, s, sd)]["accuracy"] for sd in done]
        table[(arm, s)] = {sd: res[(arm, s, sd)]["correct"] for sd in done}
        diff = "–"
        common = [sd for sd in done if ("seed", 0, sd) in res]
        if arm != "seed" and common:  # paired over the seeds both sides have
            d = paired_difference(
                np.array([res[(arm, s, sd)]["correct"] for sd in common], dtype=float),
                np.array([res[("seed", 0, sd)]["correct"] for sd in common], dtype=float),
            )
            diff = f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] seed-aware, [{d['prompt_low']:+.3f}, {d['prompt_high']:+.3f}] prompt-only (seed std {d['seed_std']:.3f}, {d['n_seeds']} seeds)"
        std = np.std(acc, ddof=1) if len(acc) > 1 else 0.0
        lines.append(
            f"| {arm} | {s} (n={len(sets[(arm, s)])}) | {np.mean(acc):.3f} ± {std:.3f} "
            f"| {', '.join(f'{a:.3f}' for a in acc)} | {diff} |"
        )
    lines += [
        "\nPaired differences between generators:\n",
        "| comparison | S | difference [95% CI] (seed std) |",
        "| --- | ---: | --- |",
    ]
    for s in sizes:
        for a, b in (
            ("nomad-off", "nomad-on"),
            ("nomad-off", "self-instruct"),
            ("nomad-off-band", "nomad-off"),
        ):
            common = sorted(set(table.get((a, s), {})) & set(table.get((b, s), {})))
            if common:
                d = paired_difference(
                    np.array([table[(a, s)][sd] for sd in common], dtype=float),
                    np.array([table[(b, s)][sd] for sd in common], dtype=float),
                )
                lines.append(
                    f"| {a} − {b} | {s} | {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] seed-aware, [{d['prompt_low']:+.3f}, {d['prompt_high']:+.3f}] prompt-only (seed std {d['seed_std']:.3f}, {d['n_seeds']} seeds) |"
                )
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
