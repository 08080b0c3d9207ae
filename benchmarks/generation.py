"""Benchmark: teacher generation speed on the same 32 prompts, in one run.

1. transformers engine, batched (left padding, length-sorted, batch 16) vs one prompt at a time;
2. llama.cpp in-process (``engine: llamacpp``, needs ``persyn[llamacpp]``);
3. ``engine: openai`` against a local ``python -m llama_cpp.server`` at concurrency 1 vs 4.

All greedy, SmolLM2-135M-Instruct (the packaged model), 48 new tokens at most. Prints seconds,
completion tokens per second and the ratios. Usage: python benchmarks/generation.py [--n 32]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from persyn.config import PromptsConfig, make_teacher  # noqa: E402
from persyn.engines.base import make_engine  # noqa: E402
from persyn.prompts import load_prompts  # noqa: E402


def timed(engine, prompts) -> tuple[float, int, int]:
    start = time.perf_counter()
    out = [c for batch in engine.generate(prompts) for _, c in batch]
    seconds = time.perf_counter() - start
    return seconds, sum(c.completion_tokens or 0 for c in out), sum(c.error is not None for c in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    prompts, _ = load_prompts(PromptsConfig(task="gsm_symbolic", size=args.n), seed=0)
    base = dict(model="smollm2-135m-instruct", max_new_tokens=args.max_new_tokens)
    rows = []

    def run(label, teacher):
        eng = make_engine(teacher, 0)
        timed(eng, prompts[:2])  # warm-up (model load, first-call overheads)
        s, tok, failed = timed(eng, prompts)
        rows.append((label, s, tok, failed))
        print(f"{label:38} {s:8.1f} s  {tok / s:7.1f} tok/s  failed {failed}", flush=True)

    run("transformers, batch 16", make_teacher(name="t", engine="transformers", batch_size=16, **base))
    run("transformers, one at a time", make_teacher(name="t", engine="transformers", batch_size=1, **base))
    if importlib.util.find_spec("llama_cpp") is None:
        print("llama-cpp-python not installed: `pip install 'persyn[llamacpp]'` for rows 3-5")
    else:
        run("llama.cpp in-process", make_teacher(name="l", engine="llamacpp", batch_size=8, **base))
        from persyn.models.aliases import gguf_path

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf_path("smollm2-135m-instruct")),
                "--model_alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "4096",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            import httpx

            url = f"http://127.0.0.1:{port}/v1"
            for _ in range(240):
                try:
                    if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            for c in (1, 4):
                t = make_teacher(
                    name="o",
                    engine="openai",
                    base_url=url,
                    model="smollm2",
                    concurrency=c,
                    max_new_tokens=args.max_new_tokens,
                    batch_size=8,
                    timeout=120,
                )
                run(f"openai → llama.cpp server, concurrency {c}", t)
        finally:
            server.terminate()
            server.wait(timeout=30)
    by = {label: tok / s for label, s, tok, _ in rows}
    print(
        f"\nbatched / one at a time: {by['transformers, batch 16'] / by['transformers, one at a time']:.2f}x"
    )
    if "llama.cpp in-process" in by:
        print(
            f"llama.cpp in-process / transformers batched: {by['llama.cpp in-process'] / by['transformers, batch 16']:.2f}x"
        )
        c1, c4 = (
            by["openai → llama.cpp server, concurrency 1"],
            by["openai → llama.cpp server, concurrency 4"],
        )
        print(f"openai concurrency 4 / 1: {c4 / c1:.2f}x")


if __name__ == "__main__":
    main()
