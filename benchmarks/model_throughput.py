"""Benchmark: throughput of each packaged model, side by side in one run, so that experiments
are planned from figures.

For each model (default: SmolLM2-135M-Instruct, Gemma-3-270m, Qwen2.5-Coder-0.5B/1.5B-Instruct
when the extra ``assets-qwen`` is installed), on the same gsm_symbolic prompts:

1. greedy generation in llama.cpp in-process (``engine: llamacpp``, the packaged GGUF);
2. greedy generation in transformers, batched (batch 16), in fp32 and, where the CPU runs it
   natively, bf16;
3. the learnability-scoring pass (PerSyn Eq. 1, ``LearnabilityScorer``, ``batching: auto``) over
   the prompts' worked solutions, in the same dtypes.

Prints completion tokens per second for (1) and (2) and scored tokens (prompt + response) per
second for (3), and the CPU it ran on. Usage:
python benchmarks/model_throughput.py [--n 16] [--max-new-tokens 48] [--models a,b] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from persyn.config import PromptsConfig, StudentConfig, TeacherConfig, make_teacher  # noqa: E402
from persyn.core.hardware import cpu_flags, resolve_dtype  # noqa: E402
from persyn.core.records import ScoreItem  # noqa: E402
from persyn.engines.base import make_engine  # noqa: E402
from persyn.models.aliases import SPLITS  # noqa: E402
from persyn.models.loading import clear_models, load_tokenizer  # noqa: E402
from persyn.prompts import load_prompts  # noqa: E402
from persyn.scoring.learnability import LearnabilityScorer  # noqa: E402
from persyn.tokenization import student_tokens  # noqa: E402

MODELS = ["smollm2-135m-instruct", "gemma3-270m-base", *SPLITS]


def generate(teacher: TeacherConfig, prompts) -> dict:
    engine = make_engine(teacher, 0)
    list(engine.generate(prompts[:1]))  # warm-up: first-call overheads outside the timing
    start = time.perf_counter()
    out = [c for batch in engine.generate(prompts) for _, c in batch]
    seconds = time.perf_counter() - start
    tokens = sum(c.completion_tokens or 0 for c in out)
    return {"seconds": round(seconds, 2), "tokens": tokens, "tok_per_s": round(tokens / seconds, 2)}


def score(model: str, dtype: str, prompts) -> dict:
    cfg = StudentConfig(model=model, dtype=dtype)
    items = [ScoreItem(p.id, p.text, p.solution) for p in prompts]
    tok = load_tokenizer(model)
    tokens = sum(
        len(a) + len(b)
        for a, b in (student_tokens(tok, i.prompt, i.response, cfg.prompt_template) for i in items)
    )
    scorer = LearnabilityScorer(cfg)
    list(scorer.score(items[:1]))  # loads the model outside the timing
    start = time.perf_counter()
    list(scorer.score(items))
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "tokens": tokens, "tok_per_s": round(tokens / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="prompts generated and scored")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    feats = cpu_flags()
    bf16 = resolve_dtype("auto", "cpu")[0] == "bfloat16"
    dtypes = ["float32", "bfloat16"] if bf16 else ["float32"]
    prompts, _ = load_prompts(PromptsConfig(task="gsm_symbolic", size=args.n), seed=0)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
          f"AMX {'amx_bf16' in feats}, avx512_bf16 {'avx512_bf16' in feats}")  # fmt: skip
    rows = []
    for model in args.models.split(","):
        if (
            model in SPLITS
            and importlib.util.find_spec(SPLITS[model].dist_prefix.replace("-", "_") + "1") is None
        ):
            print(f"{model}: not installed (pip install -e '.[assets-qwen]'), skipped")
            continue
        row = {"model": model}
        base = dict(model=model, max_new_tokens=args.max_new_tokens)
        if importlib.util.find_spec("llama_cpp") is not None:
            row["llamacpp"] = generate(make_teacher(name="l", engine="llamacpp", **base), prompts[: args.n])
        for dtype in dtypes:
            teacher = make_teacher(name="t", engine="transformers", batch_size=16, dtype=dtype, **base)
            row[f"transformers_{dtype}"] = generate(teacher, prompts[: args.n])
            row[f"scoring_{dtype}"] = score(model, dtype, prompts[: args.n])
            clear_models()
            gc.collect()
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    head = ["model", "llama.cpp greedy tok/s"] + [f"transformers b16 {d} tok/s" for d in dtypes]
    head += [f"scoring {d} tok/s" for d in dtypes]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for r in rows:
        cells = [r["model"], str(r.get("llamacpp", {}).get("tok_per_s", "–"))]
        cells += [str(r[f"transformers_{d}"]["tok_per_s"]) for d in dtypes]
        cells += [str(r[f"scoring_{d}"]["tok_per_s"]) for d in dtypes]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu, "features": sorted(feats), "rows": rows}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
