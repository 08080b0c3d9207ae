"""benchmarks/gpu.py's CPU path (the GPU path runs where a CUDA device is lent): every step
runs, on tiny models built from a config, each model on the device it is timed on."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_the_gpu_benchmark_runs_every_step_on_the_cpu_with_tiny_models(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--models", "tiny", "--prompts", "4", "--eval-prompts", "2"]
    result = bench.main(
        [*args, "--max-new-tokens", "8", "--sft-steps", "2", "--batch-size", "2", "--json", str(out)]
    )
    assert json.loads(out.read_text())["models"].startswith("tiny") and list(result["runs"]) == ["cpu"]
    cpu = result["runs"]["cpu"]
    assert all(cpu[step] > 0 for step in bench.STEPS) and cpu["sft_loss"] > 0
    with pytest.raises(AssertionError, match="expected cuda"):  # the device check can fail
        import torch

        bench.on_device(torch.nn.Linear(2, 2), "cuda")
