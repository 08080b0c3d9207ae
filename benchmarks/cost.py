"""Benchmark: the generation cost of Route-then-Generate (``persyn``) vs Generate-then-Select
(``oracle``: every teacher answers every prompt), for one prompt set and teacher pool, in one run.

Each strategy runs as ``persyn run`` in a fresh process on a fresh output directory (same
config, same machine, models' converted weights already cached on disk), so both pay their own
model loading. Prints teacher generations, model generations (the teachers that are models; the
reference styles cost nothing), wall seconds, and the ratios persyn / oracle.

Usage: python benchmarks/cost.py [--prompts 80] [--calibration 0.2] [--config FILE]
Default pool: the packaged experiment's (persyn/configs/experiment.yaml), on chain_sum.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import yaml


def run_strategy(run_cfg: dict, strategy: str, root: Path) -> dict:
    cfg = dict(run_cfg, output_dir=str(root / strategy), strategy=strategy)
    path = root / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "persyn", "run", str(path)], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    summary = json.loads((root / strategy / "summary.json").read_text())
    models = {t["name"] for t in cfg["teachers"] if t["engine"] != "reference"}
    import sqlite3

    with sqlite3.connect(root / strategy / "store.sqlite") as db:
        rows = db.execute(
            "SELECT teacher, COUNT(*), SUM(completion_tokens) FROM generations GROUP BY teacher"
        ).fetchall()
    return {
        "generations": sum(n for _, n, _ in rows),
        "model_generations": sum(n for t, n, _ in rows if t in models),
        "model_tokens": sum(tok or 0 for t, _, tok in rows if t in models),
        "seconds": seconds,
        "routing": summary["routing"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, help="an experiment YAML (its `run` section) or a run YAML")
    ap.add_argument("--prompts", type=int, default=80)
    ap.add_argument("--calibration", type=float, default=0.2)
    args = ap.parse_args()
    src = args.config or Path(str(files("persyn").joinpath("configs/experiment.yaml")))
    data = yaml.safe_load(src.read_text())
    run_cfg = dict(data.get("run", data))
    run_cfg["prompts"] = dict(run_cfg["prompts"], size=args.prompts)
    run_cfg["calibration"] = {"size": args.calibration}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        res = {s: run_strategy(run_cfg, s, root) for s in ("persyn", "oracle")}
    p, o = res["persyn"], res["oracle"]
    print(
        f"pool: {len(run_cfg['teachers'])} teachers; {args.prompts} prompts; calibration {args.calibration}"
    )
    print(f"{'':22}{'persyn':>12}{'oracle':>12}{'ratio':>10}")
    for key in ("generations", "model_generations", "model_tokens", "seconds"):
        print(f"{key:22}{p[key]:>12.0f}{o[key]:>12.0f}{p[key] / o[key]:>10.2f}")
    print(f"persyn routing: {p['routing']}")
    print(f"oracle picks:   {o['routing']}")


if __name__ == "__main__":
    main()
