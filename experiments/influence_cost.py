"""What local data influence costs on this machine, and how it relates to loss and learnability
(issue 15's measured items, first part).

Student: SmolLM2-135M-Instruct. Warm-up: 64 chain_sum prompts answered in terse steps by the
reference teacher (1 epoch, lr 5e-6, as Montessori-Instruct's code). Probing set: 16 other
chain_sum prompts, each answered four ways (the reference answer alone, terse steps, verbose
steps, and SmolLM2 itself with a short-steps system prompt, which is often wrong): 64 examples,
grouped by prompt. Reference sets D_ref: the first 16, 32 and 64 of 64 validation prompts
(terse steps), so the cost's growth with |D_ref| is measured on one warm-up state.

Prints and writes to ``--out`` (``influence_cost.json``):
- seconds per probing example for each |D_ref|, the warm-up's seconds, peak resident memory;
- Spearman correlations across the 64 examples between influence (|D_ref| = 64), loss and
  learnability, and between influence at 16 and at 64;
- the share of helpful examples (influence < 0) and the mean influence per response style.

Usage: python experiments/influence_cost.py [--out runs/influence-cost]   (~10 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from persyn.config import PromptsConfig, parse_config
from persyn.core.io import jsonl_rows
from persyn.engines.reference import render_reference
from persyn.prompts import load_prompts

TASK = {
    "task": "chain_sum",
    "task_kwargs": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2},
}
STEPS = "Work it out in a few short steps, then write the final line as '#### <answer>'."


def draw(size: int, seed: int):
    cfg = PromptsConfig(source="reasoning_gym", size=size, tasks=[TASK], seed=seed)
    return load_prompts(cfg, seed)[0]


def line(i: str, prompt: str, response: str, **extra) -> str:
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return json.dumps({"id": i, "messages": msgs, **extra})


def smollm2_answers(prompts, out: Path) -> dict[str, str]:
    """SmolLM2's own short-steps answers (through persyn's teacher machinery, cached)."""
    from persyn.pipeline import Pipeline

    rows = [json.dumps({"id": p.id, "prompt": p.text, "answer": p.answer}) for p in prompts]
    (out / "probe-prompts.jsonl").write_text("\n".join(rows) + "\n")
    cfg = {
        "output_dir": str(out / "teacher"),
        "prompts": {"source": "jsonl", "path": str(out / "probe-prompts.jsonl"), "id_field": "id"},
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {"name": "smollm2-steps", "engine": "transformers", "model": "smollm2-135m-instruct"}
            | {"system_prompt": STEPS, "max_new_tokens": 64, "batch_size": 16},
            {"name": "terse", "engine": "reference", "style": "terse"},
        ],
        "calibration": {"size": 1.0},
    }
    with Pipeline(parse_config(cfg)) as p:
        p.calibrate()
        keys = [
            k
            for k, teacher, status in p.store.generation_rows()
            if teacher == "smollm2-steps" and status == "ok"
        ]
        return {g.prompt_id: g.response for g in p.store.generations(keys).values()}


def main() -> None:
    from persyn.montessori.influence import run_influence

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/influence-cost"))
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    warm, probe, ref = draw(64, 101), draw(16, 202), draw(64, 303)
    (out / "warmup.jsonl").write_text(
        "\n".join(line(p.id, p.text, render_reference(p, "terse")) for p in warm) + "\n"
    )
    (out / "reference.jsonl").write_text(
        "\n".join(line(p.id, p.text, render_reference(p, "terse")) for p in ref) + "\n"
    )
    own = smollm2_answers(probe, out)
    examples, style_of = [], {}
    for p in probe:
        responses = {s: render_reference(p, s) for s in ("answer", "terse", "verbose")} | {
            "smollm2": own.get(p.id)
        }
        for style, text in responses.items():
            if text:
                eid = f"{p.id}/{style}"
                style_of[eid] = style
                examples.append(line(eid, p.text, text, group=p.id))
    (out / "examples.jsonl").write_text("\n".join(examples) + "\n")
    run = {
        "output_dir": str(out / "run"),
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {"name": "a", "engine": "reference"},
            {"name": "b", "engine": "reference", "style": "answer"},
        ],
        "influence": {"warmup": str(out / "warmup.jsonl"), "reference": str(out / "reference.jsonl")},
    }
    figures: dict = {"examples": len(examples), "sizes": {}}
    records: dict[int, dict[str, dict]] = {}
    for size in (16, 32, 64):
        run["influence"]["reference_size"] = size
        start = time.perf_counter()
        summary = run_influence(parse_config(run), out / "examples.jsonl", out / "influence", log=print)
        lines = jsonl_rows(out / "influence" / "influence.jsonl")
        records[size] = {r["id"]: r for r in lines if r["key"] == summary["key"]}  # this size's lines
        figures["sizes"][size] = {
            "seconds_per_example": summary["seconds_per_example"],
            "wall_seconds": round(time.perf_counter() - start, 1),
            "reference_loss": summary["reference_loss"],
            "helpful": summary["helpful"],
            "harmful": summary["harmful"],
        }
        figures["warmup_seconds"] = summary["warmup_seconds"]
    ids = sorted(records[64])
    col = {s: np.array([records[64][i][s] for i in ids]) for s in ("influence", "loss", "learnability")}
    figures["spearman"] = {
        "influence~loss": float(spearmanr(col["influence"], col["loss"])[0]),
        "influence~learnability": float(spearmanr(col["influence"], col["learnability"])[0]),
        "loss~learnability": float(spearmanr(col["loss"], col["learnability"])[0]),
        "influence@16~influence@64": float(
            spearmanr([records[16][i]["influence"] for i in ids], col["influence"])[0]
        ),
    }
    by_style = defaultdict(list)
    for i in ids:
        by_style[style_of[i]].append(records[64][i]["influence"])
    figures["mean_influence_by_style"] = {s: float(np.mean(v)) for s, v in by_style.items()}
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    (out / "influence_cost.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
