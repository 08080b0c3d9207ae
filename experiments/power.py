"""Power of a paired comparison between two fine-tuned arms (docs/experiments.md, the evidence
run of issue 45): a normal approximation of the seed-aware interval's width.

The difference of two arms' held-out accuracy has two sources of noise: the seed (which
training prompts were drawn, the SFT order: between-seed SD ``sd_seed`` of the per-seed mean
difference) and the held-out prompts (per-prompt SD ``sd_prompt`` of the per-prompt
difference; the same prompts for every seed, so it is divided by the prompt count only):

    SE = sqrt(sd_seed² / S + sd_prompt² / P)

Power of a two-sided test at level α (Holm across ``m`` primaries: the first is tested at α/m)
for a true difference δ: Φ(δ / SE − z_{1 − α/(2m)}). The smallest effect seen with 80% power:
(z_{1 − α/(2m)} + z_{0.8}) · SE.

Usage: python experiments/power.py [--sd-seed 0.033] [--sd-prompt 0.32] [--prompts 541]
       [--seeds 3,4,5]
"""

from __future__ import annotations

import argparse
import json
import math

from scipy.stats import norm


def se(sd_seed: float, sd_prompt: float, seeds: int, prompts: int) -> float:
    """The standard error of the mean paired difference over ``seeds`` × ``prompts``."""
    return math.sqrt(sd_seed**2 / seeds + sd_prompt**2 / prompts)


def power(delta: float, s: float, alpha: float = 0.05, m: int = 2) -> float:
    """Power to find a true difference ``delta`` with standard error ``s`` (two-sided, level
    ``alpha`` split over ``m`` Holm-corrected primaries, the first tested at alpha / m)."""
    return float(norm.cdf(delta / s - norm.ppf(1 - alpha / (2 * m))))


def smallest_effect(s: float, alpha: float = 0.05, m: int = 2, target: float = 0.8) -> float:
    """The true difference found with probability ``target``."""
    return float((norm.ppf(1 - alpha / (2 * m)) + norm.ppf(target)) * s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sd-seed", type=float, default=0.033, help="seed SD of oracle − car, the last run")
    ap.add_argument(
        "--sd-prompt", type=float, default=0.32, help="per-prompt SD of the difference, the last run"
    )
    ap.add_argument("--prompts", type=int, default=None, help="held-out prompts (with --seeds)")
    ap.add_argument("--seeds", default=None, help="comma-separated seed counts, with --prompts")
    args = ap.parse_args()
    grid = [(5, 421), (5, 1000), (6, 1000), (8, 1000), (10, 1000)]  # the math runs' sizes
    if args.prompts is not None:
        grid = [(int(n), args.prompts) for n in (args.seeds or "3,4,5").split(",")]
    rows = []
    for seeds, prompts in grid:
        s = se(args.sd_seed, args.sd_prompt, seeds, prompts)
        rows.append(
            {
                "seeds": seeds,
                "prompts": prompts,
                "se": round(s, 4),
                "power_0.03": round(power(0.03, s), 2),
                "power_0.05": round(power(0.05, s), 2),
                "smallest_effect_80": round(smallest_effect(s), 3),
            }
        )
    print(json.dumps({"sd_seed": args.sd_seed, "sd_prompt": args.sd_prompt, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
