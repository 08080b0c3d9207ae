"""Benchmark: engine: openai under load (issue #16), against persyn.testing.fake_openai on loopback with
~50 ms latency per request and injected faults (3% 429 with a 1 ms Retry-After, 3% 500,
0.5% stalls past the 2 s timeout, 2% dropped connections).

Each concurrency level runs in a fresh process (so its peak memory is its own): N prompts
through ``OpenAIEngine.generate``; prints requests sent, prompts answered / failed / lost /
duplicated, prompts per second and the process's peak RSS.

Usage: python benchmarks/load.py [--levels 1:200,8:2000,64:5000] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

FAULTS = {"429": 0.03, "500": 0.03, "stall": 0.005, "drop": 0.02}


def child(concurrency: int, n: int, latency: float) -> dict:
    from persyn.config import make_teacher
    from persyn.core.records import Prompt
    from persyn.engines.openai_engine import OpenAIEngine
    from persyn.testing.fake_openai import FakeOpenAIServer

    prompts = [Prompt(f"p{i}", f"Load prompt {i}: what is {i} + {i}?") for i in range(n)]
    with FakeOpenAIServer(latency_s=latency, rates=FAULTS, stall_s=3.0, seed=0) as srv:
        t = make_teacher(
            name="served",
            engine="openai",
            base_url=srv.url,
            model="fake-teacher",
            concurrency=concurrency,
            timeout=2.0,
            max_retries=5,
            batch_size=64,
        )
        engine = OpenAIEngine(t, 0)
        start = time.perf_counter()
        got = [item for batch in engine.generate(prompts) for item in batch]
        seconds = time.perf_counter() - start
        requests, faults = srv.requests, dict(srv.faults)
    ids = [pid for pid, _ in got]
    return {
        "concurrency": concurrency,
        "prompts": n,
        "requests": requests,
        "faults": faults,
        "answered": sum(1 for _, c in got if c.error is None),
        "failed": sum(1 for _, c in got if c.error is not None),
        "lost": len({p.id for p in prompts} - set(ids)),
        "duplicated": len(ids) - len(set(ids)),
        "seconds": seconds,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="1:200,8:2000,64:5000")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        c, n = map(int, args.child.split(":"))
        print(json.dumps(child(c, n, args.latency)))
        return
    print(
        "| concurrency | prompts | requests | faults injected | answered | failed | lost | duplicated | prompts/s | peak MiB |"
    )
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for level in args.levels.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--child", level, "--latency", str(args.latency)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        faults = ", ".join(f"{k} {v}" for k, v in sorted(r["faults"].items()))
        print(
            f"| {r['concurrency']} | {r['prompts']} | {r['requests']} | {faults} | {r['answered']} | {r['failed']} | "
            f"{r['lost']} | {r['duplicated']} | {r['prompts'] / r['seconds']:.1f} | {r['peak_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
