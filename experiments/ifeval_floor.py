"""An instruction run's IFEval accuracy beyond what a response that follows nothing passes
(issue 46; read from the run's committed records, nothing trained or generated).

    python experiments/ifeval_floor.py docs/evidence/instruction \\
        --compare persyn:car persyn:car-verified car-verified:car

Round 3 found that its students had learned their tasks' most common answers
(``experiments/modal_answers.py``); on IFEval the like is a student that learns a response
shape some constraints accept whatever the request: "ok" passes 62 of the 541 prompts strictly,
the prompt echoed in lowercase 147 (``instruction_probe.DEGENERATE``). This script splits
IFEval's prompts into those that at least one of those responses passes (the floor) and the
rest, and gives each arm's prompt-level strict accuracy on both (mean ± std over seeds) and the
named paired comparisons (seed-aware and prompt-only 95%, ``verified_report.compare``) on all
prompts and on the rest only, which the plan (docs/instruction-probe.md) reads beside the
primaries.

Writes ``RECORDS/floor.json`` (or ``--out``) and prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from persyn.core.errors import InputError
from persyn.core.io import write_atomic
from persyn.experiment.comparisons import UNSEEDED, UNTRAINED

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instruction_probe import DEGENERATE, degenerate_passes  # noqa: E402
from modal_answers import _diff, _ms, _subset  # noqa: E402
from verified_report import Evals, compare, eval_records, load_evals, read_results  # noqa: E402

N_BOOT = 2000


def benchmark_prompts(ids: list[str]) -> list:
    """IFEval's own prompts (``ifeval_prompt_set``, with their instructions and arguments) for
    the held-out ids of a run's evaluation records, in that order.

    Raises:
        InputError: an id is not one of IFEval's prompts (the evaluation was not the benchmark).
        MissingAssetError: the ifeval extra is not installed.
    """
    from persyn.evaluate_ifeval import ifeval_prompt_set

    known = {q.id: q for q in ifeval_prompt_set()}
    missing = [i for i in ids if i not in known]
    if missing:
        raise InputError(
            f"{len(missing)} held-out prompt ids are not IFEval's (e.g. {missing[0]!r}): "
            "this reads runs evaluated on the IFEval benchmark (eval: {benchmark: ifeval})"
        )
    return [known[i] for i in ids]


def floor_mask(ids: list[str], passes: dict[str, dict[str, list[bool]]]) -> np.ndarray:
    """``[P]`` bool, in the order of ``ids``: the prompts at least one degenerate response passes
    strictly (every instruction followed)."""
    return np.array([any(all(by_prompt[i]) for by_prompt in passes.values()) for i in ids])


def split_accuracy(ev: Evals, floor: np.ndarray) -> dict[str, dict]:
    """Per arm: ``seeds`` and per-seed prompt-level strict accuracy on ``all`` prompts, on the
    ``floor`` prompts and on the ``rest``."""
    out = {}
    for arm, by_seed in ev.correct.items():
        seeds = sorted(by_seed)
        out[arm] = {
            "seeds": [s for s in seeds if s != UNSEEDED],
            "all": [float(by_seed[s].mean()) for s in seeds],
            "floor": [float(by_seed[s][floor].mean()) if floor.any() else None for s in seeds],
            "rest": [float(by_seed[s][~floor].mean()) if (~floor).any() else None for s in seeds],
        }
    return out


def comparisons(ev: Evals, floor: np.ndarray, pairs: list[tuple[str, str]], n_boot: int = N_BOOT) -> list:
    """Each ``(a, b)`` whose arms are both evaluated: ``a − b`` on all prompts and on the rest
    (the prompts no degenerate response passes): ``{"a", "b", "all", "rest"}``."""
    out = []
    for a, b in pairs:
        if a in ev.correct and b in ev.correct:
            rest = compare(_subset(ev.correct, ~floor), a, b, n_boot)
            out.append({"a": a, "b": b, "all": compare(ev.correct, a, b, n_boot), "rest": rest})
    return out


def markdown(floor: np.ndarray, acc: dict, comps: list, arms: list[str]) -> list[str]:
    """The Markdown tables (see the module docstring)."""
    out = [
        f"**IFEval beyond the floor**: {int(floor.sum())} of {len(floor)} prompts are passed strictly "
        f"by at least one of {len(DEGENERATE)} responses that follow nothing ({', '.join(DEGENERATE)}).",
        "",
        "| arm | seeds | all prompts | floor prompts | the rest |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for arm in arms:
        if arm in acc:
            a = acc[arm]
            seeds = ", ".join(map(str, a["seeds"])) or "–"
            out.append(f"| {arm} | {seeds} | {_ms(a['all'])} | {_ms(a['floor'])} | {_ms(a['rest'])} |")
    out += [
        "",
        "| comparison | all prompts | the rest | seeds |",
        "| --- | ---: | ---: | --- |",
    ]
    for c in comps:
        seeds = ", ".join(map(str, (c["all"] or {}).get("seeds", [])))
        out.append(f"| {c['a']} − {c['b']} | {_diff(c['all'])} | {_diff(c['rest'])} | {seeds} |")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("records", type=Path)
    ap.add_argument(
        "--compare", nargs="*", default=["persyn:car", "persyn:car-verified"], help="A:B pairs (A − B)"
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--n-boot", type=int, default=N_BOOT)
    args = ap.parse_args(argv)
    pairs = []
    for spec in args.compare:
        a, sep, b = spec.partition(":")
        if not sep or not a or not b:
            raise SystemExit(f"--compare: expected A:B, got {spec!r}")
        pairs.append((a, b))
    rows = read_results(args.records)
    if not rows:
        raise SystemExit(f"{args.records / 'results.csv'}: no evaluation yet")
    first = eval_records(args.records, rows[0])
    ev = load_evals(args.records, rows, {r["prompt"]: "ifeval" for r in first})
    floor = floor_mask(ev.ids, degenerate_passes(benchmark_prompts(ev.ids)))
    acc = split_accuracy(ev, floor)
    comps = comparisons(ev, floor, pairs, args.n_boot)
    arms = [UNTRAINED, *dict.fromkeys(r["strategy"] for r in rows if r["strategy"] != UNTRAINED)]
    print("\n".join(markdown(floor, acc, comps, arms)))
    result = {
        "floor_prompts": [i for i, f in zip(ev.ids, floor, strict=True) if f],
        "n_prompts": len(ev.ids),
        "accuracy": acc,
        "comparisons": comps,
        "n_boot": args.n_boot,
    }
    write_atomic(args.out or args.records / "floor.json", json.dumps(result, indent=1, default=str) + "\n")
    return result


if __name__ == "__main__":
    main()
