"""The experiment's results: one row per evaluated model, the means over seeds per strategy,
and the files ``results.csv`` and ``results.md`` (plus the plots of ``plots``)."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from persyn.core.io import write_atomic
from persyn.core.summary import StrategySummary
from persyn.experiment.plots import write_plots


def result_row(
    name: str,
    seed: int | None,
    res: dict,
    summary: StrategySummary | None,
    train: dict | None,
    student: str = "student",
) -> dict:
    """One ``results.csv`` row.

    Args:
        name: the strategy (or ``student (no SFT)``).
        seed: the fine-tuning seed; None for the untouched student.
        res: the evaluation summary (``accuracy``, ``ci_low``, ``ci_high``, ``correct``, ``n``)
            and ``eval_key`` (the name of its ``evals/`` record file).
        summary: the strategy's dataset summary; None for the untouched student.
        train: the fine-tune's record (``seconds``, ``final_loss``); None when not trained.
        student: the name of the student fine-tuned and evaluated.

    Returns:
        ``student``, ``strategy``, ``seed``, ``accuracy``, ``ci_low``, ``ci_high``, ``correct``, ``n_eval``,
        ``n_train`` (dataset lines), ``generations``, ``routing`` (JSON text of ``{teacher:
        lines}``, empty without a dataset), ``train_seconds``, ``final_loss`` and ``eval_key``.
    """
    return {
        "student": student,
        "strategy": name,
        "seed": seed,
        "accuracy": res["accuracy"],
        "ci_low": res["ci_low"],
        "ci_high": res["ci_high"],
        "correct": res["correct"],
        "n_eval": res["n"],
        "n_train": summary.n_dataset if summary else 0,
        "generations": summary.generations if summary else 0,
        "routing": json.dumps(summary.routing) if summary else "",
        "train_seconds": (train or {}).get("seconds"),
        "final_loss": (train or {}).get("final_loss"),
        "eval_key": res["eval_key"],
    }


def aggregate(rows: list[dict]) -> list[dict]:
    """Per strategy (in order of first row): ``seeds``, the ``mean`` and ``std`` of accuracy
    over seeds (std 0 for one seed), the Wilson 95% interval of all seeds' answers pooled
    (``pooled_low``, ``pooled_high``), ``accs`` per seed, ``routing`` (``{teacher: dataset
    lines}`` averaged over seeds: each seed draws its own calibration set) and the first row's
    ``generations`` and ``n_train``."""
    from persyn.evaluate import wilson_interval

    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["strategy"], []).append(r)
    agg = []
    for name, rs in groups.items():
        accs = [r["accuracy"] for r in rs]
        correct, n = sum(r["correct"] for r in rs), sum(r["n_eval"] for r in rs)
        lo, hi = wilson_interval(correct, n)
        agg.append(
            {
                "strategy": name,
                "seeds": len(rs),
                "mean": statistics.fmean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "pooled_low": lo,
                "pooled_high": hi,
                "accs": accs,
                "generations": rs[0]["generations"],
                "routing": _mean_routing([json.loads(r["routing"]) for r in rs if r["routing"]]),
                "n_train": rs[0]["n_train"],
            }
        )
    return agg


def _mean_routing(routings: list[dict[str, int]]) -> dict[str, float]:
    teachers = sorted({t for r in routings for t in r})
    return {t: sum(r.get(t, 0) for r in routings) / len(routings) for t in teachers}


def _count(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _difference_cells(p: dict) -> str:
    # "mean (✓ when the interval excludes 0) | [low, high] | per seed"
    shown = " ✓" if p["low"] > 0 or p["high"] < 0 else ""
    per_seed = ", ".join(f"{x:+.3f}" for x in p["per_seed"])
    return f"{p['mean']:+.3f}{shown} | [{p['low']:+.3f}, {p['high']:+.3f}] | {per_seed}"


def paired_markdown(paired: list[dict], gain: dict | None) -> list[str]:
    """The lines of ``results.md``'s paired section: one row per comparison
    (``comparisons.paired_table``) and the Oracle gain recovered (``comparisons.oracle_gain``)."""
    if not paired:
        return []
    a = paired[0]["a"]
    md = [
        "",
        f"## Paired differences: {a} − each strategy",
        "",
        f"Accuracy of {a} minus the other's, on the same {paired[0]['n_prompts']} held-out prompts and "
        f"{paired[0]['n_seeds']} seeds: the mean over seeds, its 95% interval from a paired bootstrap "
        "over prompts (of each prompt's seed-mean difference), and the difference per seed with its "
        "std (the bootstrap does not see training's seed-to-seed variance). "
        "An interval that excludes 0 is marked ✓.",
        "",
        "| comparison | difference | 95% interval | per seed | seed std |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    md += [f"| {p['a']} − {p['b']} | {_difference_cells(p)} | {p['seed_std']:.3f} |" for p in paired]
    if gain is not None:
        g = gain["oracle_minus_best"]
        line = (
            f"Oracle gain recovered in accuracy, (persyn − best single) / (oracle − best single), best "
            f"single = `{gain['best']}` by mean accuracy: oracle − {gain['best']} = {g['mean']:+.3f} "
            f"[{g['low']:+.3f}, {g['high']:+.3f}]"
        )
        if gain["recovered"] is None:
            line += "; the interval does not exclude 0, so no share is reported."
        else:
            line += f"; recovered: **{gain['recovered']:.2f}**."
        md += ["", line]
    return md


def personalisation_markdown(cross: list[dict]) -> list[str]:
    """The personalisation matrix: one row per (student, other student's PerSyn dataset), the
    paired difference own − other's on the student's held-out answers (``paired_table`` rows
    whose ``b`` is a ``persyn (for OWNER)`` strategy)."""
    if not cross:
        return []
    md = [
        "",
        "## Personalisation matrix",
        "",
        "Each student fine-tuned on its own PerSyn dataset minus the same student fine-tuned on "
        "another student's, paired over its held-out prompts and seeds.",
        "",
        "| student | own − other's dataset | difference | 95% interval | per seed |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    md += [f"| {p['student']} | persyn − {p['b']} | {_difference_cells(p)} |" for p in cross]
    return md


def student_markdown(
    agg: list[dict], teachers: list[str], paired: list[dict], gain: dict | None, heading: str
) -> list[str]:
    """One student's block of ``results.md``: accuracy per strategy (mean ± std, pooled CI,
    per seed, train lines, generations), its paired differences and its prompts per teacher;
    ``heading`` prefixes the section titles (e.g. the student's name)."""
    md = [
        "",
        f"## {heading}Accuracy",
        "",
        "| strategy | seeds | accuracy (mean ± std) | pooled 95% CI | per seed | train lines | generations |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for a in agg:
        md.append(
            f"| {a['strategy']} | {a['seeds']} | {a['mean']:.3f} ± {a['std']:.3f} | "
            f"[{a['pooled_low']:.3f}, {a['pooled_high']:.3f}] | {', '.join(f'{x:.3f}' for x in a['accs'])} | "
            f"{a['n_train']} | {a['generations']} |"
        )
    block = paired_markdown(paired, gain)
    if block:
        block[1] = block[1].replace("## ", f"## {heading}", 1)
    md += block
    md += [
        "",
        f"## {heading}Prompts per teacher",
        "",
        "Dataset lines per teacher, averaged over seeds (each seed draws its own calibration set).",
        "",
        "| strategy | " + " | ".join(teachers) + " |",
        "| --- |" + " ---: |" * len(teachers),
    ]
    for a in agg:
        if a["routing"]:
            md.append(
                f"| {a['strategy']} | " + " | ".join(_count(a["routing"].get(t, 0)) for t in teachers) + " |"
            )
    return md


def validation_markdown(rows: list[dict], alpha: dict[str, float]) -> list[str]:
    """The choices made on the validation split: student accuracy per α (Eq. 2) with the α
    chosen per student, and the accuracy-vs-steps curve of the SFT-epochs sweep."""
    md: list[str] = []
    alphas = [r for r in rows if r["sweep"] == "alpha"]
    if alphas:
        md += [
            "",
            "## α by the student's validation accuracy",
            "",
            "PerSyn's dataset built with each α, fine-tuned with the first seed and evaluated on the "
            "validation split (never the test set)."
            + (
                " Chosen: " + ", ".join(f"{s} α = {a}" for s, a in alpha.items()) + "."
                if alpha
                else " No α was chosen from it (sweeps.choose_alpha is off)."
            ),
            "",
            "| student | α | validation accuracy | 95% CI | router | routing |",
            "| --- | ---: | ---: | ---: | --- | --- |",
        ]
        for r in alphas:
            routing = ", ".join(f"{t} {n}" for t, n in (r.get("routing") or {}).items())
            md.append(
                f"| {r['student']} | {r['value']} | {r['accuracy']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
                f"{r.get('router') or '-'} | {routing} |"
            )
    epochs = [r for r in rows if r["sweep"] == "sft_epochs"]
    if epochs:
        md += [
            "",
            f"## SFT length: accuracy vs steps ({epochs[0]['student']}, `{epochs[0]['strategy']}`)",
            "",
            "| epochs | optimizer steps | validation accuracy | 95% CI |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for r in epochs:
            md.append(
                f"| {r['value']} | {r['steps']} | {r['accuracy']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] |"
            )
    return md


def results_markdown(
    rows: list[dict],
    blocks: list[str],
    sweeps: list[dict],
    seconds: float,
) -> str:
    """The text of ``results.md``: wall time (``seconds``), the per-student ``blocks``
    (``student_markdown``, ``personalisation_markdown``) and the sweep table."""
    md = [
        "# persyn experiment results",
        "",
        f"Wall time: {seconds / 60:.1f} min. Accuracy on {rows[0]['n_eval']} held-out prompts, greedy; "
        "mean ± std over seeds, and the Wilson 95% interval of all seeds' answers pooled.",
        *blocks,
    ]
    if sweeps:
        md += [
            "",
            "## Sweeps",
            "",
            "| sweep | value | calibration prompts | router top-1 | regret | best single top-1 | best single regret | accuracy |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for s in sweeps:
            md.append(
                f"| {s['sweep']} | {s['value']} | {s['n_calibration']} | {_f(s['top1'])} | {_f(s['regret'])} | "
                f"{_f(s['best_single_top1'])} | {_f(s['best_single_regret'])} | {_f(s.get('accuracy'))} |"
            )
    md += [
        "",
        "Plots: `accuracy.png`, `routing.png`, `generations.png`"
        + (", `sweeps.png`" if sweeps else "")
        + ".",
    ]
    return "\n".join(md) + "\n"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_results(
    out: Path,
    rows: list[dict],
    sweeps: list[dict],
    teachers: list[str],
    seconds: float,
    eval_ids: list[str],
    validation: list[dict] | None = None,
    alpha: dict[str, float] | None = None,
) -> None:
    """Write ``results.csv`` (one row per model, ``result_row``'s columns), ``paired.csv``
    (per student, PerSyn − each other strategy, paired over the held-out prompts ``eval_ids``
    and seeds; ``comparisons``), ``results.md`` (means over seeds, paired differences, the
    personalisation matrix with several students, sweeps; ``seconds``: the experiment's wall
    time; ``validation``: the α and SFT-epochs rows measured on the validation split, and
    ``alpha`` each student's α chosen from them) and the plots ``accuracy.png``, ``routing.png``, ``generations.png`` and
    ``sweeps.png`` into ``out``.

    Raises:
        PersynError: a file cannot be written.
        InputError: an evaluation's per-prompt records are missing.
    """
    from persyn.experiment.comparisons import CROSS_PREFIX, correctness, oracle_gain, paired_table

    write_atomic(out / "results.csv", _csv(rows))
    students = list(dict.fromkeys(r["student"] for r in rows))
    blocks: list[str] = []
    all_paired: list[dict] = []
    plot_agg: list[dict] = []
    for student in students:
        mine = [r for r in rows if r["student"] == student]
        agg = aggregate(mine)
        matrices = correctness(out, mine, eval_ids)
        paired = [{"student": student, **p} for p in paired_table(matrices, "persyn")]
        all_paired += paired
        heading = f"{student}: " if len(students) > 1 else ""
        blocks += student_markdown(agg, teachers, paired, oracle_gain(matrices), heading)
        plot_agg += [{**a, "strategy": f"{heading}{a['strategy']}"} for a in agg]
    blocks += personalisation_markdown([p for p in all_paired if p["b"].startswith(CROSS_PREFIX)])
    if all_paired:
        write_atomic(
            out / "paired.csv", _csv([{**p, "per_seed": json.dumps(p["per_seed"])} for p in all_paired])
        )
    blocks += validation_markdown(validation or [], alpha or {})
    if validation:
        write_atomic(
            out / "validation.csv", _csv([{**v, "routing": json.dumps(v.get("routing"))} for v in validation])
        )
    write_atomic(out / "results.md", results_markdown(rows, blocks, sweeps, seconds))
    write_plots(out, plot_agg, sweeps, teachers)
