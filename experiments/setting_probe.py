"""Which tasks can the issue-13 experiment use? A probe (issue 13, "a setting chosen by
measurement"): for each candidate reasoning_gym task, both packaged students' accuracy untouched
and after one short SFT on a mixed training set of every candidate task (the task's own
reference answers in terse steps), per task.

A task qualifies when SFT moves *both* students off their untouched accuracy and neither is at
the ceiling; the untouched students are also the model teachers of the pool, so their per-task
accuracy says where a model teacher can be right and the Oracle's pick can vary.

Nothing here is the held-out set of the experiment: the probe draws its own prompts (train seed
0, evaluation seed 777) and its choices are written into the experiment config by hand.

Resumable: each (student, phase) result is a JSON file under the output directory.
Usage: python experiments/setting_probe.py [--out runs/setting-probe] [--train-per-task 32]
       [--eval-per-task 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from persyn.config import PromptsConfig
from persyn.engines.reference import render_reference
from persyn.evaluate import evaluate
from persyn.prompts import load_prompts
from persyn.training.sft import sft
from persyn.training.sft_config import SFTSettings

# Candidates: short prompts and short answers (the students are 135M and 270M), numeric and not.
TASKS = {
    "chain_sum": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2},
    "leg_counting": {"min_animals": 1, "max_animals": 2, "max_instances": 3},
    "letter_counting": {"min_words": 3, "max_words": 5},
    "gcd": {"min_numbers": 2, "max_numbers": 2, "min_value": 2, "max_value": 60},
    "spell_backward": {"min_word_len": 3, "max_word_len": 5},
    "word_sorting": {"min_words": 3, "max_words": 4, "min_word_length": 3, "max_word_length": 6},
}
STUDENTS = {
    "smollm2-135m": ("smollm2-135m-instruct", "Question: {prompt}\nAnswer: "),
    "gemma3-270m": ("gemma3-270m-base", "Question: {prompt}\nAnswer: "),
}
SFT = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-4, "max_length": 256}
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{(time.perf_counter() - T0) / 60:6.1f} min] {msg}", flush=True)


def prompts(n_per_task: int, seed: int):
    cfg = PromptsConfig(
        source="reasoning_gym",
        size=n_per_task * len(TASKS),
        tasks=[{"task": t, "task_kwargs": kw} for t, kw in TASKS.items()],
        seed=seed,
    )
    return load_prompts(cfg, seed)[0]


def per_task(records: list[dict], task_of: dict[str, str]) -> dict[str, float]:
    out: dict[str, list[bool]] = {}
    for r in records:
        out.setdefault(task_of[r["id"]], []).append(bool(r["correct"]))
    return {t: sum(v) / len(v) for t, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/setting-probe"))
    ap.add_argument("--train-per-task", type=int, default=32)
    ap.add_argument("--eval-per-task", type=int, default=30)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    train = prompts(args.train_per_task, 0)
    seen = {p.text for p in train}
    evals = [p for p in prompts(args.eval_per_task, 777) if p.text not in seen]
    task_of = {p.id: p.metadata["source_dataset"] for p in train + evals}
    log(f"{len(train)} training prompts, {len(evals)} evaluation prompts over {len(TASKS)} tasks")
    lines = [
        {
            "messages": [
                {"role": "user", "content": p.text},
                {"role": "assistant", "content": render_reference(p, "terse")},
            ]
        }
        for p in train
    ]
    for name, (model, template) in STUDENTS.items():
        for phase in ("untouched", "sft"):
            path = out / f"{name}-{phase}.json"
            if path.exists():
                continue
            start = time.perf_counter()
            info: dict = {}
            target = model
            if phase == "sft":
                target = str(out / "models" / name)
                info = sft(lines, model, target, SFTSettings(**SFT, seed=0), template, progress=False)
            ev = evaluate(
                target,
                evals,
                train_prompts=[p.text for p in train],
                batch_size=45,
                max_new_tokens=64,
                prompt_template=template,
                progress=False,
            )
            if phase == "sft":
                shutil.rmtree(target, ignore_errors=True)
            result = {
                "student": name,
                "phase": phase,
                "accuracy": ev.accuracy,
                "per_task": per_task(ev.records, task_of),
                "steps": info.get("steps"),
                "sft_seconds": info.get("seconds"),
                "eval_seconds": ev.seconds,
                "samples": [
                    {k: r[k] for k in ("prompt", "response", "gold", "correct")}
                    for r in ev.records[:: len(evals) // 12]
                ],
            }
            path.write_text(json.dumps(result, indent=1) + "\n")
            log(
                f"{name} · {phase}: {ev.accuracy:.3f} {result['per_task']} ({time.perf_counter() - start:.0f} s)"
            )
    rows = ["| task | " + " | ".join(f"{s} untouched | {s} after SFT" for s in STUDENTS) + " |"]
    rows.append("| --- |" + " ---: | ---: |" * len(STUDENTS))
    res = {
        (s, ph): json.loads((out / f"{s}-{ph}.json").read_text())
        for s in STUDENTS
        for ph in ("untouched", "sft")
    }
    for t in TASKS:
        cells = [f"{res[(s, ph)]['per_task'].get(t, 0):.2f}" for s in STUDENTS for ph in ("untouched", "sft")]
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    table = "\n".join(rows) + "\n"
    (out / "probe.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
