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
from persyn.experiment.plots import write_paired_plot, write_plots


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
        lines}``, empty without a dataset), ``truncated`` (the share of answers cut by the
        evaluation's ``max_new_tokens``), ``train_seconds``, ``train_steps``, ``final_loss`` and
        ``eval_key``.
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
        "truncated": res.get("truncated"),
        "train_seconds": (train or {}).get("seconds"),
        "train_steps": (train or {}).get("steps"),
        "final_loss": (train or {}).get("final_loss"),
        "eval_key": res["eval_key"],
    }


def aggregate(rows: list[dict]) -> list[dict]:
    """Per strategy (in order of first row): ``seeds``, the ``mean`` and ``std`` of accuracy
    over seeds (std 0 for one seed), the Wilson 95% interval of all seeds' answers pooled
    (``pooled_low``, ``pooled_high``), ``accs`` per seed, ``routing`` (``{teacher: dataset
    lines}`` averaged over seeds: each seed draws its own calibration set), ``truncated`` (the
    mean share of answers cut by the evaluation budget), ``train_seconds`` (summed over seeds)
    and the first row's ``generations`` and ``n_train``."""
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
                "truncated": statistics.fmean(r.get("truncated") or 0.0 for r in rs),
                "train_seconds": sum(r.get("train_seconds") or 0.0 for r in rs),
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
    # "mean (✓ when the seed-aware interval excludes 0) | [low, high] | prompt-only | per seed"
    shown = " ✓" if p["low"] > 0 or p["high"] < 0 else ""
    per_seed = ", ".join(f"{x:+.3f}" for x in p["per_seed"])
    prompt_only = (
        f"[{p['prompt_low']:+.3f}, {p['prompt_high']:+.3f}]" if p.get("prompt_low") is not None else "-"
    )
    # With one seed the two-stage bootstrap has no seed stage: say so rather than print a
    # prompt bootstrap under the seed-aware heading.
    one_seed = " (1 seed: prompts only)" if p.get("n_seeds") == 1 else ""
    seed_aware = f"[{p['low']:+.3f}, {p['high']:+.3f}]{one_seed}"
    return f"{p['mean']:+.3f}{shown} | {seed_aware} | {prompt_only} | {per_seed}"


def _p_cell(p: dict) -> str:
    if p.get("p_holm") is not None:
        return f"{p['p_holm']:.3f} (Holm)"
    return f"{p['p']:.3f}" if p.get("p") is not None else "-"


def gain_line(gain: dict) -> str:
    """The sentence of the Oracle gain recovered (``comparisons.oracle_gain``)."""
    g, r = gain["oracle_minus_best"], gain["ratio"]
    where = (
        "chosen on the validation split"
        if gain["chosen_on"] == "validation"
        else "chosen on the test set (no validation split evaluated it)"
    )
    o = gain.get("oracle", "oracle")
    line = (
        f"Oracle gain recovered in accuracy, (persyn − best single) / ({o} − best single), best "
        f"single = `{gain['best']}` ({where}): {o} − {gain['best']} = {g['mean']:+.3f} "
        f"[{g['low']:+.3f}, {g['high']:+.3f}] (seed-aware)"
    )
    if gain["recovered"] is None:
        where_0 = "lies below" if g["high"] < 0 else "contains"
        return line + f"; the interval is not above 0 (it {where_0} 0), so no share is reported."
    if r["low"] is None:
        return (
            line
            + f"; recovered: **{gain['recovered']:.2f}** (no interval: the gain's resamples are not all > 0)."
        )
    return line + f"; recovered: **{gain['recovered']:.2f}** [{r['low']:.2f}, {r['high']:.2f}]."


def paired_markdown(paired: list[dict], gain: dict | None) -> list[str]:
    """The lines of ``results.md``'s paired section: one row per comparison
    (``comparisons.paired_table``), primary comparisons first, and the Oracle gain recovered
    (``comparisons.oracle_gain``)."""
    if not paired:
        return []
    a = paired[0]["a"]
    primaries = [p["b"] for p in paired if p.get("role") == "primary"]
    md = [
        "",
        f"## Paired differences: {a} − each strategy",
        "",
        f"Accuracy of {a} minus the other's, on the same {paired[0]['n_prompts']} held-out prompts and "
        f"the seeds both have (up to {max(p['n_seeds'] for p in paired)}): the mean over seeds; its 95% "
        "**seed-aware** interval (a two-stage bootstrap over seeds and prompts: it counts the "
        "variance training brings), marked ✓ when it excludes 0; the **prompt-only** interval "
        "(prompts resampled, the fine-tuned models fixed); the difference per seed. "
        + (
            f"Primary comparisons, named before the run: {', '.join(f'{a} − {b}' for b in primaries)}; "
            "their p-values are Holm-corrected across them. Every other row is exploratory (p uncorrected)."
            if primaries
            else "No primary comparison was named: every row is exploratory (p uncorrected)."
        ),
        "",
        "| comparison | role | difference | seed-aware 95% | prompt-only 95% | per seed | seed std | p |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    md += [
        f"| {p['a']} − {p['b']} | {p.get('role', 'exploratory')} | {_difference_cells(p)} | "
        f"{p['seed_std']:.3f} | {_p_cell(p)} |"
        for p in paired
    ]
    if gain is not None:
        md += ["", gain_line(gain)]
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
        "| student | own − other's dataset | difference | seed-aware 95% | prompt-only 95% | per seed |",
        "| --- | --- | ---: | ---: | ---: | --- |",
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
        "| strategy | seeds | accuracy (mean ± std) | pooled 95% CI | per seed | truncated | train lines | generations | SFT min |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for a in agg:
        md.append(
            f"| {a['strategy']} | {a['seeds']} | {a['mean']:.3f} ± {a['std']:.3f} | "
            f"[{a['pooled_low']:.3f}, {a['pooled_high']:.3f}] | {', '.join(f'{x:.3f}' for x in a['accs'])} | "
            f"{a.get('truncated', 0.0):.1%} | {a['n_train']} | {a['generations']} | {a.get('train_seconds', 0.0) / 60:.1f} |"
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
            f"## SFT length: accuracy vs steps ({epochs[0]['student']}, first seed, validation split)",
            "",
            "| strategy | epochs | optimizer steps | validation accuracy | 95% CI |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in epochs:
            md.append(
                f"| {r['strategy']} | {r['value']} | {r['steps']} | {r['accuracy']:.3f} | "
                f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] |"
            )
    return md


def results_markdown(
    rows: list[dict],
    blocks: list[str],
    sweeps: list[dict],
    seconds: float,
    notes: list[str] = (),
) -> str:
    """The text of ``results.md``: ``notes`` (lines under the title), wall time (``seconds``),
    the per-student ``blocks`` (``student_markdown``, ``personalisation_markdown``) and the
    sweep table."""
    md = [
        "# persyn experiment results",
        "",
        *[f"{n}  " for n in notes],
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
        "Plots: `accuracy.png`, `paired.png`, `routing.png`, `generations.png`"
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
    primary: list[str] | tuple[str, ...] = (),
    selection: list[dict] | None = None,
    validation_ids: list[str] | None = None,
    notes: list[str] | None = None,
) -> None:
    """Write ``results.csv`` (one row per model, ``result_row``'s columns), ``paired.csv``
    (per student, PerSyn − each other strategy, paired over the held-out prompts ``eval_ids``
    and seeds; ``comparisons``), ``results.md`` (means over seeds, paired differences, the
    personalisation matrix with several students, sweeps; ``seconds``: the experiment's wall
    time; ``validation``: the α and SFT-epochs rows measured on the validation split, and
    ``alpha`` each student's α chosen from them; ``primary``: the comparisons persyn − NAME
    named before the run, Holm-corrected; ``selection``: result rows of the single-teacher
    strategies evaluated on the validation split, whose prompt ids are ``validation_ids``, from
    which the best single teacher of the Oracle-gain ratio is chosen; ``notes``: lines put
    under the title, e.g. the commit and the progress of a run still going) and the plots
    ``accuracy.png``, ``routing.png``, ``generations.png`` and ``sweeps.png`` into ``out``.

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
        found = correctness(out, mine, eval_ids)
        chosen = [r for r in selection or [] if r["student"] == student]
        on_val = correctness(out, chosen, validation_ids or []) if chosen else None
        paired = [{"student": student, **p} for p in paired_table(found, "persyn", primary)]
        all_paired += paired
        heading = f"{student}: " if len(students) > 1 else ""
        blocks += student_markdown(agg, teachers, paired, oracle_gain(found, validation=on_val), heading)
        plot_agg += [{**a, "strategy": f"{heading}{a['strategy']}"} for a in agg]
    blocks += personalisation_markdown([p for p in all_paired if p["b"].startswith(CROSS_PREFIX)])
    if all_paired:
        write_atomic(
            out / "paired.csv", _csv([{**p, "per_seed": json.dumps(p["per_seed"])} for p in all_paired])
        )
    blocks += validation_markdown(validation or [], alpha or {})
    # The single-teacher strategies on validation (where the best single teacher is chosen).
    picks = [
        {
            "sweep": "best_single",
            "value": r["strategy"],
            "student": r["student"],
            "seed": r["seed"],
            "accuracy": r["accuracy"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "eval_key": r["eval_key"],
        }
        for r in selection or []
    ]
    if validation or picks:
        write_atomic(
            out / "validation.csv",
            _csv([{**v, "routing": json.dumps(v.get("routing"))} for v in [*(validation or []), *picks]]),
        )
    write_atomic(out / "results.md", results_markdown(rows, blocks, sweeps, seconds, notes or []))
    write_plots(out, plot_agg, sweeps, teachers)
    write_paired_plot(out, [p for p in all_paired if p["student"] == students[0]])
