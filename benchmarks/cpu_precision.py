"""Benchmark: what bf16, padding-free batches and the response-only LM head buy on this CPU,
side by side in one run, and whether bf16 changes what persyn computes.

Prints the CPU's flags and the dtype ``auto`` resolves to, then:

1. **matmul**: GFLOP/s of a bare ``a @ b`` in fp32 and bf16 at the shapes of SmolLM2's and
   Gemma-3's projections and LM heads (the CPU's ceiling for each dtype);
2. **SFT step**: seconds per optimizer step of ``persyn.training.sft.make_trainer`` (batch 8,
   max length 256, GSM-Symbolic worked solutions) for today's recipe (padded, TRL's head over
   every position, fp32) and the new one (padding-free, head on response positions, bf16 mixed
   precision), and for SmolLM2 each change alone; the first batch's loss per variant; the
   achieved FLOP/s of a step (6 · non-embedding params · tokens + 6 · d · V · head positions)
   against the bare matmul of its dtype;
3. **generation**: greedy tokens/s of ``TransformersEngine`` (batch 8) in fp32 and bf16, and
   the share of identical generations;
4. **learnability pass**: ``LearnabilityScorer`` over 50 prompts × 3 responses in fp32 and
   bf16: responses/s, Spearman, max |difference|;
5. **agreement on the demo pool** (``--demo``): ``persyn demo``'s config run in fp32 and in
   bf16 (every slot): learnability per calibration response (Spearman, max |diff|), identical
   Oracle picks, the kind ``auto`` chose, identical routes; then (``--sft``) the persyn dataset
   of each fine-tuned in its dtype (2 epochs) and evaluated in its dtype on the same 200
   held-out prompts: accuracy of each and the paired difference with a bootstrap interval.

Usage: python benchmarks/cpu_precision.py [--models smollm2-135m-instruct,gemma3-270m-base]
[--steps 3] [--demo] [--sft] [--json docs/cpu-precision.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from persyn.config import PromptsConfig, StudentConfig, make_teacher  # noqa: E402
from persyn.config.teachers import settings_class  # noqa: E402
from persyn.core.hardware import cpu_flags  # noqa: E402
from persyn.core.io import jsonl_rows  # noqa: E402
from persyn.core.records import Prompt, ScoreItem  # noqa: E402
from persyn.models.loading import model_dtype, release_model  # noqa: E402
from persyn.prompts import load_prompts  # noqa: E402

SHAPES = {
    "smollm2-135m-instruct": [(1536, 576, 1536), (1536, 576, 49152)],
    "gemma3-270m-base": [(1536, 640, 2048), (1024, 640, 32768)],
}


def matmul_gflops(m: int, k: int, n: int, dtype, seconds: float = 1.0) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t, reps = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        a @ b
        reps += 1
    return 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9


def sft_pairs(n: int = 64) -> list[tuple[str, str]]:
    prompts, _ = load_prompts(PromptsConfig(source="reasoning_gym", task="gsm_symbolic", size=n), seed=0)
    return [(p.text, p.solution) for p in prompts]


def step_flops(model, batch) -> float:
    """Training FLOPs of one batch: forward + backward ≈ 3 × forward, forward = 2 · (params
    outside the embeddings) per token + 2 · d · V per position sent through the head."""
    emb = model.get_input_embeddings().weight
    body = sum(p.numel() for p in model.parameters()) - emb.numel()
    tokens = int(batch["input_ids"].numel())
    return 6 * body * tokens


def time_sft(model: str, pairs, steps: int, **over) -> dict:
    from transformers import TrainerCallback

    from persyn.training.sft import make_trainer
    from persyn.training.sft_config import SFTSettings

    settings = SFTSettings(batch_size=8, max_length=256, epochs=1, logging_steps=1000, **over)
    work = Path(tempfile.mkdtemp())
    trainer, _, stats = make_trainer(pairs, model, work, settings, progress=False)
    trainer.args.max_steps = steps + 1
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    trainer.add_callback(Clock())
    # The first batch's loss (before any step) and what its step computes.
    batch = next(iter(trainer.get_train_dataloader()))
    n_resp = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(trainer.args.bf16)):
            loss = float(trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n_resp))
    net = trainer.model
    vocab, d = net.get_output_embeddings().weight.shape
    head_positions = n_resp if settings.lm_head == "response" else int(batch["input_ids"].numel())
    flops = step_flops(net, batch) + 6 * d * vocab * head_positions
    trainer.train()
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "seconds_per_step": round(per_step, 3),
        "first_batch_loss": round(loss, 5),
        "precision": stats["precision"],
        "first_batch_gflop": round(flops / 1e9, 1),
        "achieved_gflops": round(flops / per_step / 1e9, 1),
        "tokens_in_first_batch": int(batch["input_ids"].numel()),
        "response_tokens_in_first_batch": n_resp,
    }


def chain_prompts(n: int, seed: int = 7) -> list[Prompt]:
    cfg = PromptsConfig(
        source="reasoning_gym",
        task="chain_sum",
        size=n,
        task_kwargs={"min_terms": 2, "max_terms": 5, "min_digits": 1, "max_digits": 2},
    )
    return load_prompts(cfg, seed=seed)[0]


def time_generation(model: str, prompts: list[Prompt], dtype: str) -> tuple[dict, list[str]]:
    from persyn.engines.transformers_engine import TransformersEngine

    t = make_teacher(
        name="g", engine="transformers", model=model, max_new_tokens=64, batch_size=8, dtype=dtype
    )
    eng = TransformersEngine(t, seed=0)
    list(eng.generate(prompts[:8]))  # warm-up
    start = time.perf_counter()
    out = {pid: c for batch in eng.generate(prompts) for pid, c in batch}
    seconds = time.perf_counter() - start
    tokens = sum(c.completion_tokens or 0 for c in out.values())
    release_model(model)
    texts = [out[p.id].text for p in prompts]
    return {
        "tokens_per_s": round(tokens / seconds, 1),
        "prompts_per_s": round(len(prompts) / seconds, 2),
    }, texts


def time_learnability(model: str, dtype: str) -> tuple[dict, list[float]]:
    from persyn.scoring.learnability import LearnabilityScorer

    prompts, _ = load_prompts(PromptsConfig(source="reasoning_gym", task="gsm_symbolic", size=50), seed=1)
    items = []
    for p in prompts:
        items += [
            ScoreItem(f"{p.id}/s", p.text, p.solution),
            ScoreItem(f"{p.id}/a", p.text, f"#### {p.answer}"),
            ScoreItem(f"{p.id}/v", p.text, f"Let's think step by step.\n{p.solution}"),
        ]
    scorer = LearnabilityScorer(StudentConfig(model=model, dtype=dtype))
    list(scorer.score(items[:3]))  # load + warm-up
    start = time.perf_counter()
    got = {k: v for rows in scorer.score(items) for k, v, _ in rows}
    seconds = time.perf_counter() - start
    release_model(model)
    return {"responses_per_s": round(len(items) / seconds, 1)}, [got[it.key] for it in items]


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def demo_agreement(sft: bool) -> dict:
    """The demo's config in fp32 and in bf16 (every slot), compared."""
    import yaml

    from persyn.config import parse_config
    from persyn.pipeline import Pipeline

    src = Path(__file__).resolve().parents[1] / "src/persyn/configs/demo.yaml"
    runs = {}
    root = Path(tempfile.mkdtemp())
    for dtype in ("float32", "bfloat16"):
        cfg = yaml.safe_load(src.read_text())
        cfg["output_dir"] = str(root / dtype)
        cfg["student"]["dtype"] = dtype
        for t in cfg["teachers"]:  # the teachers that run a model (a reference teacher has no dtype)
            if "dtype" in settings_class(t.get("engine", "transformers")).model_fields:
                t["dtype"] = dtype
        start = time.perf_counter()
        with Pipeline(parse_config(cfg)) as p:
            summary = p.run().model_dump()
        runs[dtype] = {"dir": root / dtype, "summary": summary, "seconds": time.perf_counter() - start}
    cal = {d: jsonl_rows(r["dir"] / "calibration.jsonl") for d, r in runs.items()}
    key = lambda r: (r["id"], r["teacher"])  # noqa: E731
    l32 = {key(r): r["learnability"] for r in cal["float32"] if r["learnability"] is not None}
    l16 = {key(r): r["learnability"] for r in cal["bfloat16"] if r["learnability"] is not None}
    common = sorted(set(l32) & set(l16))
    picks = {d: {r["id"]: r["teacher"] for r in rows if r.get("oracle")} for d, rows in cal.items()}
    routes = {
        d: {x["id"]: x["teacher"] for x in jsonl_rows(r["dir"] / "dataset.jsonl")} for d, r in runs.items()
    }
    gens = {}
    for d, rows in cal.items():
        gens[d] = {key(r): r["response"] for r in rows if r["teacher"] == "smollm2-direct"}
    out = {
        "calibration_responses": len(common),
        "learnability_spearman": round(spearman([l32[k] for k in common], [l16[k] for k in common]), 4),
        "learnability_max_abs_diff": round(max(abs(l32[k] - l16[k]) for k in common), 4),
        "oracle_picks_identical": sum(
            picks["float32"][i] == picks["bfloat16"].get(i) for i in picks["float32"]
        ),
        "calibration_prompts": len(picks["float32"]),
        "auto_kind": {d: r["summary"]["router_eval"].get("kind") for d, r in runs.items()},
        "routes_identical": sum(routes["float32"][i] == routes["bfloat16"].get(i) for i in routes["float32"]),
        "dataset_lines": len(routes["float32"]),
        "student_generations_identical": sum(
            gens["float32"][k] == gens["bfloat16"].get(k) for k in gens["float32"]
        ),
        "student_generations": len(gens["float32"]),
        "accuracy_of_smollm2_direct": {
            d: r["summary"]["calibration_means"]["smollm2-direct"]["quality"] for d, r in runs.items()
        },
        "run_seconds": {d: round(r["seconds"], 1) for d, r in runs.items()},
    }
    if sft:
        out["sft"] = paired_sft(runs, root)
    return out


def paired_sft(runs: dict, root: Path) -> dict:
    """Each dtype's persyn dataset fine-tuned in that dtype, evaluated in it on the same 200
    held-out chain_sum prompts (drawn with another seed); the paired difference bf16 − fp32."""
    import numpy as np

    from persyn.evaluate import evaluate, training_prompts
    from persyn.training.sft import sft
    from persyn.training.sft_config import SFTSettings

    held = chain_prompts(200, seed=12345)
    res = {}
    for dtype, r in runs.items():
        ds = r["dir"] / "dataset.jsonl"
        info = sft(
            ds, "smollm2-135m-instruct", root / f"sft-{dtype}", SFTSettings(dtype=dtype), progress=False
        )
        ev = evaluate(
            str(root / f"sft-{dtype}"),
            held,
            train_prompts=training_prompts(ds),
            max_new_tokens=256,
            dtype=dtype,
            progress=False,
        )
        res[dtype] = {"sft": info, "eval": ev}
    a = np.array([x["correct"] for x in res["bfloat16"]["eval"].records], dtype=float)
    b = np.array([x["correct"] for x in res["float32"]["eval"].records], dtype=float)
    rng = np.random.default_rng(0)
    boots = [(a[i] - b[i]).mean() for i in (rng.integers(0, len(a), len(a)) for _ in range(5000))]
    return {
        "held_out": len(a),
        "accuracy": {d: round(x["eval"].accuracy, 4) for d, x in res.items()},
        "diff_bf16_minus_fp32": round(float((a - b).mean()), 4),
        "diff_interval_95": [round(float(np.quantile(boots, q)), 4) for q in (0.025, 0.975)],
        "same_answer_correctness": int((a == b).sum()),
        "sft_seconds_per_step": {d: x["sft"]["seconds_per_step"] for d, x in res.items()},
        "final_loss": {d: x["sft"]["final_loss"] for d, x in res.items()},
        "eval_seconds": {d: round(x["eval"].seconds, 1) for d, x in res.items()},
        "note": "one SFT seed: the interval is over prompts only (the seed-to-seed spread is not in it)",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m-base")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--sft", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    flags = cpu_flags()
    shown = sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512f", "avx2", "avx_vnni")))
    report: dict = {
        "cpu_flags": shown,
        "threads": torch.get_num_threads(),
        "auto": dict(zip(("dtype", "reason"), model_dtype("auto"), strict=True)),
        "torch": torch.__version__,
    }
    print(f"CPU flags: {' '.join(shown)}; threads {report['threads']}; auto → {report['auto']}")

    report["matmul"] = []
    print("\n| matmul (m×k×n) | fp32 GFLOP/s | bf16 GFLOP/s | ratio |\n| --- | ---: | ---: | ---: |")
    for model in args.models.split(","):
        for m, k, n in SHAPES[model]:
            f32, b16 = matmul_gflops(m, k, n, torch.float32), matmul_gflops(m, k, n, torch.bfloat16)
            report["matmul"].append({"shape": [m, k, n], "fp32": round(f32), "bf16": round(b16)})
            print(f"| {m}×{k}×{n} ({model}) | {f32:.0f} | {b16:.0f} | {b16 / f32:.1f}× |")

    pairs = sft_pairs()
    report["sft"] = {}
    for model in args.models.split(","):
        variants = {
            "today (padded, head everywhere, fp32)": {
                "padding_free": False,
                "lm_head": "all",
                "dtype": "float32",
            }
        }
        if model.startswith("smollm2"):
            variants |= {
                "padding-free only": {"padding_free": True, "lm_head": "all", "dtype": "float32"},
                "response head only": {"padding_free": False, "lm_head": "response", "dtype": "float32"},
                "bf16 only": {"padding_free": False, "lm_head": "all", "dtype": "bfloat16"},
            }
        variants["new (padding-free, response head, bf16)"] = {
            "padding_free": True,
            "lm_head": "response",
            "dtype": "bfloat16",
        }
        print(f"\nSFT step, {model} (batch 8, max length 256, {args.steps} timed steps)")
        print(
            "| variant | s/step | vs today | first-batch loss | achieved GFLOP/s |\n| --- | ---: | ---: | ---: | ---: |"
        )
        rows = {}
        for name, over in variants.items():
            rows[name] = r = time_sft(model, pairs, args.steps, **over)
            base = rows[next(iter(rows))]["seconds_per_step"]
            print(
                f"| {name} | {r['seconds_per_step']:.2f} | {r['seconds_per_step'] / base:.2f} | "
                f"{r['first_batch_loss']:.4f} | {r['achieved_gflops']:.0f} |"
            )
        report["sft"][model] = rows

    report["generation"], report["learnability"] = {}, {}
    prompts = chain_prompts(32)
    for model in args.models.split(","):
        g32, t32 = time_generation(model, prompts, "float32")
        g16, t16 = time_generation(model, prompts, "bfloat16")
        same = sum(a == b for a, b in zip(t32, t16, strict=True))
        report["generation"][model] = {
            "float32": g32,
            "bfloat16": g16,
            "identical": same,
            "prompts": len(prompts),
        }
        l32, s32 = time_learnability(model, "float32")
        l16, s16 = time_learnability(model, "bfloat16")
        report["learnability"][model] = {
            "float32": l32,
            "bfloat16": l16,
            "spearman": round(spearman(s32, s16), 4),
            "max_abs_diff": round(max(abs(a - b) for a, b in zip(s32, s16, strict=True)), 4),
        }
        print(
            f"\n{model}: generation {g32['tokens_per_s']} → {g16['tokens_per_s']} tokens/s "
            f"({g16['tokens_per_s'] / g32['tokens_per_s']:.2f}×), identical {same}/{len(prompts)}; "
            f"learnability {l32['responses_per_s']} → {l16['responses_per_s']} responses/s "
            f"({l16['responses_per_s'] / l32['responses_per_s']:.2f}×), Spearman "
            f"{report['learnability'][model]['spearman']}, max |diff| {report['learnability'][model]['max_abs_diff']}"
        )

    if args.demo:
        report["demo"] = demo_agreement(args.sft)
        print("\ndemo pool, fp32 vs bf16:", json.dumps(report["demo"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
