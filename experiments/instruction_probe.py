"""Is there something to route in the instruction setting? A probe before any fine-tuning (issue
46, "measure, then run"), on training prompts with IFEval constraints (``ifeval_constrained``:
Self-Instruct's user-oriented instructions plus 1-3 constraints sampled through IFEval's
registry), never IFEval's own 541 test prompts.

Every teacher of the pool (Qwen2.5-Coder-Instruct 1.5B and 0.5B, SmolLM2-135M-Instruct,
Gemma-3-270m base few-shot) answers every prompt once (``calibration.size: 1.0``); quality is the
share of the prompt's instructions followed, IFEval's strict check (``quality.kind: ifeval``); a
response passes when it follows all of them. Learnability (PerSyn Eq. 1) is scored once per
student (SmolLM2-135M-Instruct, Gemma-3-270m), the responses shared. Reported per student:

- per teacher: prompt-level pass rate (every instruction followed), instruction-level share
  (instructions followed over all instructions, as IFEval counts it), mean learnability (nats
  per token), completion tokens of its valid responses, truncated share, seconds per response
  (generation throughput);
- per instruction type and teacher: the share of that type's instructions followed;
- the Oracle's picks (Eq. 2 reward, ``scoring.combine.oracle_pick``), and its reward gain over
  the best single teacher (a failed response counted as the prompt's lowest valid reward,
  ``core.ranking.filled_rewards``) with a paired bootstrap 95% interval over prompts;
- the verified cascade as a run would build it (``benchmarks/verify.py``'s draws on the same
  responses): per draw ``--calibration`` prompts calibrate, the rest are routed by each router
  kind and ``auto`` trained on the verified target, and answered by the cascade with
  ``max_tries`` 2; against the Oracle, CAR and the strongest teacher, plain and verified: right
  lines per prompt, their share of the lines kept, generations (mean ± sd over ``--draws``);
- the held-out regret and top-1 of each router kind and ``auto`` at the calibration sizes, on
  the verified target (``benchmarks/routers.py``'s ``sizes_table``; ``--test`` prompts held out);
- with ``--ifeval N``: the untouched student's IFEval numbers on N of IFEval's prompts
  (``persyn evaluate --benchmark ifeval``), with its throughput;
- once, under ``degenerate``: IFEval's strict prompt- and instruction-level accuracy of
  responses that follow nothing ("ok", a refusal, the prompt echoed, echoed in lowercase), the
  floor a student's IFEval number is read against (round 3 found its students had learned a
  task's most common answer, docs/experiments.md).

Resumable: the store under ``--out`` keeps every response and score, and the untouched students'
IFEval results are kept beside it; a re-run computes only what is missing. Results:
``--out``/instruction-probe.json (one entry per student, merged with what an earlier run of other
students wrote) and the tables on stdout.
Usage: python experiments/instruction_probe.py [--out runs/instruction-probe] [--size 240]
       [--test 80] [--sizes 50,100] [--calibration 100] [--draws 5]
       [--students smollm2,gemma3] [--ifeval 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from persyn.config import RouterConfig, parse_config
from persyn.core.errors import InputError
from persyn.core.io import write_atomic
from persyn.core.ranking import best_single_teacher, filled_rewards
from persyn.experiment.paired import paired_difference
from persyn.ifeval import follows
from persyn.pipeline import Pipeline
from persyn.runtime.rewards import reward_table, router_examples
from persyn.scoring.combine import oracle_pick

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from routers import held_out_split, sizes_table  # noqa: E402
from verify import PoolData, one_draw, summarise  # noqa: E402

STUDENTS = {
    "smollm2": {"model": "smollm2-135m-instruct", "family": "smollm2"},
    "gemma3": {
        "model": "gemma3-270m-base",
        "family": "gemma3",
        "prompt_template": "Request: {prompt}\nResponse: ",
    },
}
# A base model gets one worked example of a constrained request, then the prompt.
GEMMA_FEWSHOT = (
    "Request: Describe a cat in two sentences. Your entire response should be in lowercase letters.\n"
    "Response: a cat is a small furry animal that likes to sleep in the sun. it purrs when it is happy."
    "\n\nRequest: {prompt}\nResponse:"
)
# The Qwen teachers get 384 new tokens: at 256, a 16-prompt trial cut 19% (1.5B) and 25% (0.5B) of
# their responses, long answers a higher limit finishes; SmolLM2's and Gemma's cut responses were
# repetition loops, which no limit cures (the cut share is reported per teacher).
TEACHERS = [
    {"name": "qwen-1.5b", "engine": "transformers", "model": "qwen2.5-coder-1.5b-instruct", "family": "qwen2.5",
     "max_new_tokens": 384},
    {"name": "qwen-0.5b", "engine": "transformers", "model": "qwen2.5-coder-0.5b-instruct", "family": "qwen2.5",
     "max_new_tokens": 384},
    {"name": "smollm2", "engine": "transformers", "model": "smollm2-135m-instruct", "family": "smollm2"},
    {
        "name": "gemma-fewshot", "engine": "transformers", "model": "gemma3-270m-base", "family": "gemma3",
        "prompt_template": GEMMA_FEWSHOT, "stop": ["\nRequest:", "\n\n\n"],
    },
]  # fmt: skip
MAX_TRIES = 2
ENCODER = "minilm-l6"  # the routers' prompt encoder
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{(time.perf_counter() - T0) / 60:6.1f} min] {msg}", flush=True)


def config(size: int, out: Path, student: dict, teachers: list[dict] | None = None, seed: int = 7) -> dict:
    """The probe's run: ``size`` constrained prompts (seed ``seed``, disjoint from IFEval's test
    prompts by construction), every teacher on every one, IFEval's strict check as quality."""
    pool = [{"max_new_tokens": 256, "batch_size": 8, "dtype": "auto", **t} for t in (teachers or TEACHERS)]
    return {
        "output_dir": str(out / "store"),
        "seed": seed,
        "prompts": {
            "source": "ifeval_constrained", "size": size, "seed": seed, "answer_field": None,
            "task_kwargs": {"max_constraints": 3},
        },
        "student": student,
        "teachers": pool,
        "quality": {"kind": "ifeval"},
        "calibration": {"size": 1.0},
        "router": {"kind": "auto", "encoder": ENCODER},
        # the router's examples carry the verified target, as in a verified run
        "verify": {"max_tries": MAX_TRIES},
        "strategy": "persyn",
    }  # fmt: skip


#: The cascade figures reported, by ``benchmarks/verify.py``'s configuration names.
CASCADE_ROWS = (
    f"verified/auto/{MAX_TRIES}", f"verified/prior/{MAX_TRIES}", f"verified/knn/{MAX_TRIES}",
    f"verified/bt-linear/{MAX_TRIES}", "reward/auto/none", "oracle", "oracle-verified", "car",
    "car-verified", "strongest", "strongest-verified",
)  # fmt: skip


def cascade_draws(cfg: dict, n_cal: int, draws: int) -> dict:
    """The verified cascade and its baselines as a run builds them, on the probe's stored
    responses (``benchmarks/verify.py``: ``draws`` seeded draws of ``n_cal`` calibration
    prompts, the rest routed): ``{"n_calibration", "draws", "rows": {name: figures}}``, the
    figures of ``CASCADE_ROWS`` (mean and sd over draws). Generates nothing the store holds."""
    data = {k: v for k, v in cfg.items() if k != "verify"}  # verify.py verifies by itself
    d = PoolData(parse_config(data))
    summary = summarise([one_draw(d, n_cal, seed) for seed in range(draws)])
    return {"n_calibration": n_cal, "draws": draws, "rows": {k: summary[k] for k in CASCADE_ROWS}}


def probe_student(cfg: dict, name: str) -> dict:
    """Generate (or reuse) every response, score it for this student, and gather the figures and
    the router examples."""
    with Pipeline(parse_config(cfg)) as p:
        start = time.perf_counter()
        p.calibrate()
        p.score()
        log(f"[{name}] answered and scored in {time.perf_counter() - start:.0f} s")
        cal, table, gens = reward_table(p.ctx)
        examples = router_examples(p.ctx, embed=True)
        names = p.cfg.teacher_names
        limits = {t.name: t.max_new_tokens for t in p.cfg.teachers}
    cells: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    by_type: dict[tuple[str, str], list[bool]] = defaultdict(list)
    picks: Counter = Counter()
    check_errors = 0
    rewards = np.full((len(cal), len(names)), np.nan)
    passed = np.zeros((len(cal), len(names)), dtype=bool)
    for i, q in enumerate(cal):
        ids = q.metadata["instruction_id_list"]
        kwargs = q.metadata.get("kwargs") or [None] * len(ids)
        for j, c in enumerate(table[q.id]):
            g = gens[(q.id, c.teacher)]
            cell = cells[c.teacher]
            passed[i, j] = c.quality is not None and c.quality >= 1.0 - 1e-12
            cell["pass"].append(float(passed[i, j]))
            cell["prompt_share"].append(c.quality if c.quality is not None else 0.0)
            if c.learnability is not None:
                cell["learnability"].append(c.learnability)
            if g.ok:
                cell["tokens"].append(g.completion_tokens or 0)
            cell["truncated"].append(g.finish_reason == "length")
            cell["seconds"].append(g.seconds)
            followed = [False] * len(ids)  # a failed response follows nothing
            if g.ok:
                try:
                    followed = follows(g.response, ids, kwargs, q.text)
                except InputError:  # the scorer recorded it as a failed item: count, go on
                    check_errors += 1
            for iid, ok in zip(ids, followed, strict=True):
                by_type[(iid, c.teacher)].append(bool(ok))
            if c.reward is not None:
                rewards[i, j] = c.reward
        pick = oracle_pick(table[q.id])
        if pick is not None:
            picks[pick] += 1
    # a failed response counts as the prompt's lowest valid reward (the routers' and the best
    # single teacher's rule); prompts with no valid response are left out
    rows = [filled_rewards([None if np.isnan(v) else float(v) for v in r]) for r in rewards]
    filled = np.array([r for r in rows if r is not None], dtype=np.float64).reshape(-1, len(names))
    means = filled.mean(0) if len(filled) else np.zeros(len(names))
    best = names.index(best_single_teacher(names, means))  # the prior router's tie rule
    oracle = filled.max(1) if len(filled) else np.zeros(0)

    def mean(v: list) -> float | None:
        return float(np.mean(v)) if v else None

    teachers = {}
    for t, v in cells.items():
        fig = {
            k: mean(v[k]) for k in ("pass", "prompt_share", "learnability", "tokens", "truncated", "seconds")
        }
        checked = [ok for (_, who), oks in by_type.items() if who == t for ok in oks]
        fig["instructions_followed"] = mean(checked)  # IFEval's instruction level: over all instructions
        fig["max_new_tokens"] = limits[t]
        teachers[t] = fig
    return {
        "names": names,
        "n_prompts": len(cal),
        "teachers": teachers,
        "types": {
            f"{iid}|{t}": {"n": len(v), "followed": mean(v)} for (iid, t), v in sorted(by_type.items())
        },
        "check_errors": check_errors,
        "picks": dict(picks),
        "mean_reward": dict(zip(names, map(float, means), strict=True)),
        "oracle_reward": float(oracle.mean()) if len(oracle) else None,
        "best_single": names[best],
        "oracle_gain": paired_difference(oracle, filled[:, best], seed=0) if len(filled) else None,
        "oracle_pass": float(passed.any(1).mean()),
        "examples": examples,
    }


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "–" if v is None else format(v, fmt)


def tables(name: str, res: dict) -> None:
    """The probe's tables for one student, on stdout (Markdown)."""
    names = res["names"]
    print(f"\n### student {name}: per teacher ({res['n_prompts']} prompts)\n")
    print(
        "| teacher | pass (all instructions) | instructions followed (of all) | learnability | tokens "
        "| truncated | s/response |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in names:
        c = res["teachers"][t]
        print(
            f"| {t} | {_f(c['pass'])} | {_f(c['instructions_followed'])} | {_f(c['learnability'])} | "
            f"{_f(c['tokens'], '.0f')} | {_f(c['truncated'], '.0%')} | {_f(c['seconds'])} |"
        )
    types = sorted({k.split("|")[0] for k in res["types"]})
    print("\n**Instructions followed per type**\n")
    print("| instruction type (n) | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for iid in types:
        row = [res["types"].get(f"{iid}|{t}", {}) for t in names]
        n = row[0].get("n", 0)
        print(f"| {iid} ({n}) | " + " | ".join(_f(r.get("followed")) if r else "–" for r in row) + " |")
    g = res["oracle_gain"]
    gain = "–" if g is None else f"{g['mean']:+.3f} [{g['prompt_low']:+.3f}, {g['prompt_high']:+.3f}]"
    print(
        "\nOracle picks: " + ", ".join(f"{n} {res['picks'].get(n, 0)}" for n in names)
        + "\nmean reward: " + ", ".join(f"{n} {v:.3f}" for n, v in res["mean_reward"].items())
        + f"; Oracle {_f(res['oracle_reward'], '.3f')}; best single {res['best_single']}; "
        f"Oracle − best single {gain}; some teacher passes: {res['oracle_pass']:.2f}"
        + (f"; responses the checkers refused: {res['check_errors']}" if res["check_errors"] else "")
    )  # fmt: skip
    if "cascade" in res:
        cascade_table(res["cascade"])


def cascade_table(c: dict) -> None:
    """The verified cascade against its baselines (``cascade_draws``), on stdout."""
    print(
        f"\n**The verified cascade (max_tries {MAX_TRIES}) and the baselines**: {c['draws']} draws of "
        f"{c['n_calibration']} calibration prompts, the rest routed; mean ± sd over draws\n"
    )
    print("| dataset | right lines per prompt | right share of lines | lines | generations | auto chose |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, r in c["rows"].items():
        cells = [f"{r[k]['mean']:.3f} ± {r[k]['sd']:.3f}" for k in ("right_per_prompt", "right_share")]
        cells += [f"{r[k]['mean']:.0f}" for k in ("lines", "generations")]
        auto = ", ".join(f"{k} {v}" for k, v in r.get("auto", {}).items()) or "–"
        print(f"| {name} | " + " | ".join(cells) + f" | {auto} |")


def untouched(student: dict, n: int, out: Path) -> dict:
    """The untouched student on ``n`` of IFEval's prompts: its four numbers and throughput,
    kept in ``out`` (``untouched-KEY.json``, KEY a hash of the model, its prompt template and
    ``n``) and read from there on a re-run."""
    from persyn.core.hashing import stable_hash
    from persyn.evaluate_ifeval import evaluate_ifeval, ifeval_prompt_set

    template = student.get("prompt_template", "{prompt}\n")
    kept = out / f"untouched-{stable_hash([student['model'], template, n])}.json"
    if kept.exists():
        return json.loads(kept.read_text())
    start = time.perf_counter()
    prompts = ifeval_prompt_set(n)
    res = evaluate_ifeval(
        student["model"], prompts, prompt_template=template,
        progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    result = {k: v for k, v in vars(res).items() if k != "records"}
    result["seconds_per_prompt"] = seconds / max(1, res.n)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(kept, json.dumps(result, indent=1, default=str) + "\n")
    return result


#: Responses that follow no request, scored on IFEval's prompts as a floor for the students: a
#: student that learned one of these scores this much without following anything.
DEGENERATE = {
    "ok": lambda prompt: "ok",
    "refusal": lambda prompt: "i cannot help with that.",
    "echo": lambda prompt: prompt,
    "echo, lowercase": lambda prompt: prompt.lower(),
}


def degenerate_passes(prompts: list) -> dict[str, dict[str, list[bool]]]:
    """Per ``DEGENERATE`` response, per prompt id: the strict check of each of the prompt's
    instructions (``{name: {prompt id: [followed per instruction]}}``) on persyn ``Prompt``s
    carrying IFEval's ``instruction_id_list`` and ``kwargs``. Runs only the checkers.

    Raises:
        InputError: a prompt's instructions cannot be checked (the message names it).
    """
    return {
        name: {
            q.id: follows(respond(q.text), q.metadata["instruction_id_list"], q.metadata["kwargs"], q.text)
            for q in prompts
        }
        for name, respond in DEGENERATE.items()
    }


def degenerate_baselines(n: int | None = None) -> dict:
    """IFEval's strict prompt-level and instruction-level accuracy of each ``DEGENERATE``
    response on IFEval's prompts (the first ``n``; all 541 when None): ``{name: {"prompt_strict",
    "instruction_strict", "n"}}``. Runs only the checkers (no model).

    Raises:
        MissingAssetError: the ifeval extra is not installed.
    """
    from persyn.evaluate_ifeval import ifeval_prompt_set

    passes = degenerate_passes(ifeval_prompt_set(n))
    return {
        name: {
            "prompt_strict": float(np.mean([all(v) for v in by_prompt.values()])),
            "instruction_strict": float(np.mean([x for v in by_prompt.values() for x in v])),
            "n": len(by_prompt),
        }
        for name, by_prompt in passes.items()
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/instruction-probe"))
    ap.add_argument("--size", type=int, default=240)
    ap.add_argument("--test", type=int, default=80)
    ap.add_argument("--sizes", default="50,100")
    ap.add_argument("--calibration", type=int, default=100, help="calibration prompts per cascade draw")
    ap.add_argument("--draws", type=int, default=5, help="cascade draws (seeded)")
    ap.add_argument("--students", default="smollm2,gemma3")
    ap.add_argument(
        "--ifeval", type=int, default=0, help="IFEval prompts for the untouched students (0: skip)"
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    path = args.out / "instruction-probe.json"
    results: dict = json.loads(path.read_text()) if path.exists() else {}  # other students' kept
    floor = degenerate_baselines()
    print("\n### Responses that follow nothing, on IFEval's prompts (strict)\n")
    print("| response | prompt level | instruction level |\n| --- | ---: | ---: |")
    for name, r in floor.items():
        print(f"| {name} | {r['prompt_strict']:.3f} | {r['instruction_strict']:.3f} |")
    for name in args.students.split(","):
        if name not in STUDENTS:
            raise SystemExit(f"--students: unknown student '{name}' ({', '.join(STUDENTS)})")
        cfg = config(args.size, args.out, STUDENTS[name])
        res = probe_student(cfg, name)
        res["cascade"] = cascade_draws(cfg, args.calibration, args.draws)
        tables(name, res)
        split = held_out_split(res.pop("examples"), args.test)
        rcfg = RouterConfig(**{k: v for k, v in cfg["router"].items() if k != "kind"})
        routed: dict = {}
        sizes_table(f"instruction-{name}", split, res["names"], sizes, set(), rcfg, routed)
        res["routers"] = routed.get(f"instruction-{name}", {})
        res["router_target"] = "verified"
        if args.ifeval:
            res["untouched_ifeval"] = untouched(STUDENTS[name], args.ifeval, args.out)
            log(f"[{name}] untouched on {args.ifeval} IFEval prompts: {res['untouched_ifeval']}")
        results[name] = res
        results["degenerate"] = floor
        args.out.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(results, indent=1, default=str) + "\n")
    log(f"results: {path}")


if __name__ == "__main__":
    main()
