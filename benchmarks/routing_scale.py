"""Benchmark: routing throughput and memory at scale (issue 12).

Synthetic one-line prompts (``--small`` and ``--large`` of them, 1K and 100K by default),
two ``reference`` teachers, the packaged student and MiniLM encoder, a ``knn`` router trained
on 40 calibration prompts. Each measurement runs in a fresh process:

1. set-up (prepare, calibrate, score, train the router; not timed);
2. the bare encoder: ``PromptEncoder.embed`` on the same texts, in batches of 256, timed (the
   model loaded outside the timing);
3. ``route`` alone, timed (model loading included), with its process's peak resident memory
   (``ru_maxrss``), on a fresh copy of the set-up store; it embeds every routed prompt (stored
   chunk by chunk) and scores it with the router;
4. the bare encoder again.

The throughput ratio divides route's prompts/s by the mean of the two bare runs around it: the
speed of these shared machines drifts by 10-20% over minutes, so a bare run measured at another
time is not a fair yardstick.

Prints routed prompts/s vs the bare encoder's embeddings/s (target ≥ 0.9×), and the peak
memory of routing ``--large`` vs ``--small`` prompts (target ≤ 1.2×).

Usage: python benchmarks/routing_scale.py [--small 1000] [--large 100000] [--out runs/bench-routing]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from persyn.core.io import jsonl_rows, jsonl_text

WORDS = "apple river stone cloud garden engine violin candle harbor meadow pencil rocket".split()


def write_prompts(path: Path, n: int) -> None:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b, c = rng.randint(1, 99), rng.randint(1, 99), rng.randint(1, 99)
        w = rng.choice(WORDS)
        text = f"The {w} puzzle {i}: what is {a} + {b} - {c}?"
        # the expression lets the terse teacher spell out its steps (else it equals "answer")
        rows.append(
            {"id": f"p{i}", "prompt": text, "answer": str(a + b - c), "expression": f"{a} + {b} - {c}"}
        )
    path.write_text(jsonl_text(rows, ascii_only=True))


def config(root: Path, n: int, run: str = "run") -> dict:
    path = root / f"prompts-{n}.jsonl"
    if not path.exists():
        write_prompts(path, n)
    return {
        "output_dir": str(root / f"{run}-{n}"),
        "prompts": {"source": "jsonl", "path": str(path)},
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {"name": "answer", "engine": "reference", "style": "answer"},
            {"name": "terse", "engine": "reference", "style": "terse"},
        ],
        "quality": {"kind": "verifier"},
        "calibration": {"size": 40},
        "router": {"kind": "knn"},
    }


def child(phase: str, cfg: dict) -> dict:
    from persyn.config import parse_config
    from persyn.pipeline import Pipeline

    with Pipeline(parse_config(cfg)) as p:
        if phase == "setup":
            p.calibrate()
            p.score()
            p.train_router()
            return {}
        if phase == "route":
            start = time.perf_counter()
            routed = p.route()
            seconds = time.perf_counter() - start
            return {"n": len(routed), "seconds": seconds}
    from persyn.router.embeddings import PromptEncoder

    texts = [r["prompt"] for r in jsonl_rows(Path(cfg["prompts"]["path"]))]
    enc = PromptEncoder("minilm-l6")
    enc.embed(texts[:64])  # load the model outside the timing
    start = time.perf_counter()
    for i in range(0, len(texts), 256):
        enc.embed(texts[i : i + 256])
    return {"n": len(texts), "seconds": time.perf_counter() - start}


def run_child(phase: str, cfg: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", phase, "--cfg", json.dumps(cfg)], capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-routing"))
    ap.add_argument("--child")
    ap.add_argument("--cfg")
    args = ap.parse_args()
    if args.child:
        res = child(args.child, json.loads(args.cfg))
        res["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for n in (args.small, args.large):
        cfg = config(args.out.resolve(), n)
        run_child("setup", cfg)
        routed = config(args.out.resolve(), n, "routed")
        shutil.rmtree(routed["output_dir"], ignore_errors=True)
        shutil.copytree(cfg["output_dir"], routed["output_dir"])  # route starts from the set-up store
        before = run_child("encoder", cfg)
        r = run_child("route", routed)
        after = run_child("encoder", cfg)
        bare = (before["n"] / before["seconds"] + after["n"] / after["seconds"]) / 2
        rows[n] = {"route": r, "encoder": [before, after], "ratio": r["n"] / r["seconds"] / bare}
        print(
            f"{n} prompts: route {r['n']} in {r['seconds']:.1f} s ({r['n'] / r['seconds']:.0f}/s, peak "
            f"{r['peak_mib']:.0f} MiB); bare encoder before {before['n'] / before['seconds']:.0f}/s, "
            f"after {after['n'] / after['seconds']:.0f}/s; ratio {rows[n]['ratio']:.2f}x",
            flush=True,
        )
    big, small = rows[args.large], rows[args.small]
    tput = big["ratio"]
    print("\n| measure | value | target |\n| --- | ---: | --- |")
    print(f"| routing throughput / bare encoder throughput ({args.large} prompts) | {tput:.2f}× | ≥ 0.9× |")
    mem = big["route"]["peak_mib"] / small["route"]["peak_mib"]
    print(
        f"| peak memory, routing {args.large} vs {args.small} prompts | {big['route']['peak_mib']:.0f} / "
        f"{small['route']['peak_mib']:.0f} MiB = {mem:.2f}× | ≤ 1.2× |"
    )
    (args.out / "routing_scale.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
