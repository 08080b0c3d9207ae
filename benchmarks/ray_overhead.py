"""Benchmark: the price of ``executor: ray`` on one machine, side by side with ``executor: local``.

1. The same run twice, as ``persyn run`` in a fresh process on a fresh output directory: once
   with the local executor, once with Ray (a local Ray instance started by persyn, workers of
   1 CPU each). Converted model weights are cached on disk before either starts, so both pay
   only their own model loading. Prints wall seconds, the seconds of each stage and the ratio
   Ray / local (target: <= 1.3x), and checks that both datasets hold the same prompts.
2. The per-shard overhead: one trivial job (the ``reference`` teacher, no model) cut into
   shards of 1 prompt, for 20 and for N prompts; the difference over N - 20 is what each extra
   shard costs (scheduling, serialisation, a round trip to the worker and back; two shards are
   kept in flight per worker).

Usage: python benchmarks/ray_overhead.py [--prompts 40] [--calibration 0.25] [--config FILE]
       [--shards 500] [--skip-run]
Default pool: the packaged demo's (persyn/configs/demo.yaml): 3 model teachers, 2 reference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import yaml

from persyn.core.io import jsonl_rows

STAGES = ("calibrate", "score", "train_router", "route", "generate", "export")


def timed_run(run_cfg: dict, executor: str, root: Path) -> dict:
    cfg = dict(run_cfg, output_dir=str(root / executor), executor=executor)
    path = root / f"{executor}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "persyn", "run", str(path)], check=True, capture_output=True, env=env
    )
    seconds = time.perf_counter() - start
    summary = json.loads((root / executor / "summary.json").read_text())
    ids = sorted(x["id"] for x in jsonl_rows(root / executor / "dataset.jsonl"))
    return {
        "seconds": seconds,
        "stages": summary["seconds"],
        "ids": ids,
        "generations": summary["generations"],
    }


def shard_overhead(n: int, small: int = 20, repeats: int = 2) -> dict:
    """Seconds of one reference job cut into shards of 1 prompt, for ``small`` and ``n``
    prompts (best of ``repeats``; each includes starting the worker), on a 2-CPU Ray instance."""
    import ray

    from persyn.core.records import Prompt
    from persyn.execution.jobs import teacher_job
    from persyn.execution.ray_executor import RayExecutor

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    out = {"ray_init": time.perf_counter() - started}
    cfg = _bare_config(shard_size=1)
    try:
        for count in (small, n):
            prompts = [Prompt(f"p{i}", f"What is {i} + 1?", answer=str(i + 1)) for i in range(count)]
            best = float("inf")
            for _ in range(repeats):
                ex = RayExecutor(cfg)
                start = time.perf_counter()
                rows = [r for _, batch in ex.run([teacher_job(cfg, cfg.teachers[0], prompts)]) for r in batch]
                best = min(best, time.perf_counter() - start)
                assert len(rows) == count
            out[count] = best
    finally:
        ray.shutdown()
    return out


def _bare_config(shard_size: int):
    """A run config with two reference teachers (no model anywhere), for the shard benchmark."""
    from persyn.config import RunConfig

    return RunConfig.model_validate(
        {
            "output_dir": "unused",
            "student": {"model": "unused"},
            "teachers": [
                {"name": "r", "engine": "reference", "style": "answer"},
                {"name": "s", "engine": "reference"},
            ],
            "executor": "ray",
            "ray": {"shard_size": shard_size},
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, help="a run YAML (default: the packaged demo)")
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--calibration", type=float, default=0.25)
    ap.add_argument("--shards", type=int, default=500)
    ap.add_argument("--skip-run", action="store_true", help="only the per-shard overhead")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    if not args.skip_run:
        from persyn.models.loading import resolve_model

        src = args.config or Path(str(files("persyn").joinpath("configs/demo.yaml")))
        run_cfg = yaml.safe_load(src.read_text())
        run_cfg["prompts"] = dict(run_cfg["prompts"], size=args.prompts)
        run_cfg["calibration"] = {"size": args.calibration}
        for t in run_cfg["teachers"]:  # convert packaged GGUFs once, outside both timings
            if t.get("model"):
                resolve_model(t["model"])
        resolve_model(run_cfg["student"]["model"])
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            res = {ex: timed_run(run_cfg, ex, root) for ex in ("local", "ray")}
        loc, ray_ = res["local"], res["ray"]
        assert loc["ids"] == ray_["ids"], "the two datasets hold different prompts"
        print(
            f"run: {len(run_cfg['teachers'])} teachers, {args.prompts} prompts, calibration "
            f"{args.calibration}, {loc['generations']} generations; 2-CPU Ray instance, 1 CPU per worker"
        )
        print(f"{'':16}{'local':>10}{'ray':>10}{'ray/local':>11}")
        for stage in STAGES:
            a, b = loc["stages"][stage], ray_["stages"][stage]
            print(f"{stage:16}{a:>10.1f}{b:>10.1f}{(b / a if a else float('nan')):>11.2f}")
        print(
            f"{'wall (process)':16}{loc['seconds']:>10.1f}{ray_['seconds']:>10.1f}{ray_['seconds'] / loc['seconds']:>11.2f}"
        )

    small = 20
    o = shard_overhead(args.shards, small)
    per_shard = (o[args.shards] - o[small]) / (args.shards - small)
    print(
        f"\nper-shard overhead (reference teacher, shards of 1 prompt): ray.init {o['ray_init']:.1f} s; "
        f"{small} shards {o[small]:.2f} s, {args.shards} shards {o[args.shards]:.2f} s "
        f"(each with its worker's start) → {per_shard * 1000:.1f} ms per extra shard"
    )


if __name__ == "__main__":
    main()
