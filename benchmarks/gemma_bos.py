"""Measurement (issue #17): does the ``gemma-fewshot`` teacher follow its ``#### <number>`` format?

Runs ``persyn run`` in a fresh process on a fresh output directory with the packaged
experiment's ``gemma-fewshot`` teacher (Gemma-3-270m base, two-shot prompt, greedy; taken from
``persyn/configs/experiment.yaml``) and a ``reference`` teacher (no model: ``persyn run`` needs
two teachers), on 24 one-digit prompts ``a ± b =`` in the chain_sum wording, all of them
calibration prompts so that every teacher answers every prompt. Student: the packaged
SmolLM2-135M-Instruct (it only scores). Reports, from ``calibration.jsonl``:

* format: responses whose text contains ``#### <integer>``;
* correct: responses the verifier (math-verify) scores 1.0;
* the first few responses, and the teacher's prompt tokens per prompt as the engine counted them
  (one more with ``<bos>`` than without).

Run with the code under test first on ``PYTHONPATH`` (e.g. a checkout of an older commit) to
compare rules. Usage: python benchmarks/gemma_bos.py [--out DIR] [--prompts 24] [--seed 0]
``--count RUN_DIR`` only counts, in an existing run's ``calibration.jsonl`` (e.g. ``persyn demo``'s),
the ``gemma-fewshot`` responses that follow the format and are correct.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import yaml

from persyn.core.io import jsonl_rows, jsonl_text

FORMAT = re.compile(r"####\s*-?\d+")
WORDING = "State the final answer to the following arithmetic problem: {a} {op} {b} ="


def arithmetic_prompts(n: int, seed: int) -> list[dict]:
    """``n`` distinct prompts ``a ± b =`` (a, b in 1..9) with their answers, drawn with ``seed``."""
    rng = random.Random(seed)
    seen, out = set(), []
    while len(out) < n:
        a, b, op = rng.randint(1, 9), rng.randint(1, 9), rng.choice("+-")
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        answer = a + b if op == "+" else a - b
        out.append(
            {"id": f"p{len(out):02d}", "prompt": WORDING.format(a=a, op=op, b=b), "answer": str(answer)}
        )
    return out


def count(rows: list[dict]) -> tuple[int, int, int]:
    """(responses, format followed, correct) of the ``gemma-fewshot`` rows of calibration.jsonl."""
    rows = [r for r in rows if r["teacher"] == "gemma-fewshot"]
    fmt = sum(bool(FORMAT.search(r["response"] or "")) for r in rows)
    return len(rows), fmt, sum(r["quality"] == 1.0 for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="output directory (default: a temporary one)")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=Path, help="only count gemma-fewshot's responses in RUN_DIR")
    args = ap.parse_args()
    if args.count:
        n, fmt, correct = count(jsonl_rows(args.count / "calibration.jsonl"))
        print(f"gemma-fewshot in {args.count}: format {fmt}/{n}, correct {correct}/{n}")
        return
    experiment = yaml.safe_load(Path(str(files("persyn").joinpath("configs/experiment.yaml"))).read_text())
    [gemma] = [t for t in experiment["run"]["teachers"] if t["name"] == "gemma-fewshot"]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        prompts = root / "prompts.jsonl"
        prompts.write_text(jsonl_text(arithmetic_prompts(args.prompts, args.seed), ascii_only=True))
        cfg = {
            "output_dir": str(root / "run"),
            "seed": 0,
            "prompts": {"source": "jsonl", "path": str(prompts), "id_field": "id"},
            "student": {"model": "smollm2-135m-instruct"},
            "teachers": [gemma, {"name": "answer-only", "engine": "reference", "style": "answer"}],
            "quality": {"kind": "verifier"},
            "calibration": {"size": 1.0},
            "router": {"encoder": "minilm-l6", "epochs": 1},
        }
        path = root / "gemma_bos.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "persyn", "run", str(path)], check=True, capture_output=True)
        seconds = time.perf_counter() - start
        rows = jsonl_rows(root / "run" / "calibration.jsonl")
        summary = json.loads((root / "run" / "summary.json").read_text())
        prompt_tokens = summary["tokens"]["gemma-fewshot"]["prompt"]
    n, fmt, correct = count(rows)
    rows = [r for r in rows if r["teacher"] == "gemma-fewshot"]
    print(f"gemma-fewshot on {n} prompts `a ± b =` (persyn run, {seconds:.0f} s)")
    print(f"format followed ('#### <number>'): {fmt}/{n}")
    print(f"correct (verifier):                {correct}/{n}")
    print(f"prompt tokens per prompt (engine's count, mean): {prompt_tokens / n:.1f}")
    for r in rows[:6]:
        print(f"  {r['prompt'].split(': ')[-1]!r:>10} -> {r['response']!r}")


if __name__ == "__main__":
    main()
