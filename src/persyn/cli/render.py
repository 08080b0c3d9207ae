"""What the commands print: the closing tables of a run, a strategy and the students, the
router's cross-validated figures, and the synthesis, estimate and store tables (rich)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from persyn.core.summary import (
    CacheInfo,
    RouterEvaluation,
    RunSummary,
    StrategySummary,
    SynthesisSummary,
    interval_text,
)
from persyn.scoring.shares import quality_warning, truncation_warnings

if TYPE_CHECKING:  # importing the estimate loads the pipeline: only for the annotation
    from persyn.estimate import Estimate

console = Console()


def print_summary(summary: RunSummary, out_dir: Path) -> None:
    """The closing table: prompts per teacher, generations vs Generate-then-Select, router."""
    t = Table(title=f"persyn · {out_dir}", caption="calibration means: quality and learnability (nats/token)")
    for col in ("teacher", "dataset", "routed", "Oracle (cal.)", "quality", "learnability", "failed", "cut"):
        t.add_column(col, justify="left" if col == "teacher" else "right", no_wrap=True)
    failed = {name: 0 for name in summary.teachers}
    for f in summary.failures:
        if f.teacher in failed and f.stage in ("calibration", "routed"):
            failed[f.teacher] += 1
    cut = summary.truncation or {}
    for name in summary.teachers:
        m = summary.calibration_means[name]
        c = cut.get(name) or {}
        t.add_row(
            name,
            str(summary.routing[name]),
            str(summary.routing_routed[name]),
            str(summary.oracle_calibration[name]),
            # a teacher with no valid calibration response has no quality, not quality 0
            "failed" if m.quality is None or m.valid == 0 else f"{m.quality:.3f}",
            "-" if m.learnability is None else f"{m.learnability:.3f}",
            f"[yellow]{failed[name]}[/]" if failed[name] else "0",
            "-" if c.get("share") is None else f"{c['share']:.0%}",
        )
    console.print(t)
    gen, gts = summary.generations, summary.generations_generate_then_select
    console.print(
        f"generations: {gen} (Route-then-Generate) vs {gts} (Generate-then-Select): "
        f"{gen / gts:.1%} of the cost; {summary.generations_new} made by this command"
    )
    if summary.verify is not None:
        print_verify(summary.verify)
    print_router_eval(summary.router_eval)
    if summary.failed:
        console.print(f"[yellow]{summary.failed} failed item(s), listed in failed.jsonl[/]")
    for warning in [quality_warning(summary.data_quality), *truncation_warnings(summary.truncation)]:
        if warning:
            console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    console.print(f"dataset: {summary.n_dataset} lines → {out_dir / 'dataset.jsonl'}")


def print_verify(v: dict) -> None:
    """The verified cascade: per teacher, first answers, escalations, rejected attempts; then
    the prompts accepted at each try, dropped or kept failing, and the tries per routed prompt."""
    t = Table(
        title=f"verified cascade: up to {v['max_tries']} teacher(s) per routed prompt, pass_quality "
        f"{v['pass_quality']:g}, on_fail {v['on_fail']}",
        caption="first answers: the prompt's first try; escalations: later tries; rejected: failed the check",
    )
    for col in ("teacher", "first answers", "escalations", "rejected", "accepted"):
        t.add_column(col, justify="left" if col == "teacher" else "right", no_wrap=True)
    for name, f in v["teachers"].items():
        t.add_row(
            name, str(f["first_answers"]), str(f["escalations"]), str(f["rejected"]), str(f["accepted"])
        )
    console.print(t)
    at = ", ".join(f"{n} at try {i + 1}" for i, n in enumerate(v["accepted_at_try"]))
    per = v["generations_per_routed_prompt"]
    console.print(
        f"routed prompts: {v['routed_prompts']}; accepted {at}; dropped {v['dropped']}; kept failing "
        f"{v['kept_failing']}; skipped by budget {v['skipped_by_budget']}; "
        f"{'-' if per is None else f'{per:.2f}'} generations per routed prompt; calibration prompts "
        f"dropped {v['calibration_dropped']}",
        highlight=False,
    )


def print_router_eval(ev: RouterEvaluation | None) -> None:
    """The router kinds' cross-validated figures and the kind that routes (nothing without a
    router)."""
    if ev is None:
        return
    if ev.kinds:
        t = Table(
            title=f"router: {ev.requested} → {ev.kind} "
            f"(cross-validated on {ev.n} calibration prompts, {ev.folds} folds"
            f"{' × ' + str(ev.repeats) + ' repeats' if ev.repeats > 1 else ''})",
            caption=f"{ev.reason}. top-1: picks with the Oracle's reward; regret: mean Oracle "
            "reward − the pick's; Oracle gain recovered: (prior's regret − the kind's) / prior's",
        )
        for col in ("kind", "top-1", "regret", "regret − prior's [95% CI]", "Oracle gain recovered [95% CI]"):
            t.add_column(col, justify="left" if col == "kind" else "right", overflow="fold")
        for kind, f in ev.kinds.items():
            d = f.get("regret_vs_prior")
            t.add_row(
                f"{kind} ◀" if kind == ev.kind else kind,
                f"{f['top1']:.2f}",
                f"{f['regret']:.3f}",
                interval_text(d, "+.3f", "-"),
                interval_text(f.get("gain"), ".2f", "n/a"),
            )
        console.print(t)
    elif ev.note:
        console.print(f"router: {ev.kind or ''} ({ev.note})")


def print_students_summary(summary, out_dir: Path) -> None:
    """Each student's closing table, then the generations the students shared."""
    for name, st in summary.students.items():
        print_summary(st, Path(out_dir) / "students" / name)
    console.print(
        f"students: {len(summary.students)}; teacher responses: {summary.generations} "
        f"({summary.generations_shared} calibration responses shared) vs "
        f"{summary.generations_if_separate} in separate runs; {summary.generations_new} made by this command"
    )


def print_strategy_summary(summary: StrategySummary, out_dir: Path) -> None:
    """A selection strategy's table: prompts per teacher and generations it needs."""
    t = Table(title=f"strategy {summary.strategy} · {out_dir}")
    t.add_column("teacher")
    t.add_column("prompts", justify="right")
    for name in summary.teachers:
        t.add_row(name, str(summary.routing[name]))
    console.print(t)
    gen, gts = summary.generations, summary.generations_generate_then_select
    console.print(f"generations needed: {gen} vs {gts} for Generate-then-Select ({gen / gts:.1%})")
    if summary.failed:
        console.print(f"[yellow]{summary.failed} prompt(s) left out, listed in summary.json[/]")
    console.print(f"dataset: {summary.n_dataset} lines → {out_dir / 'dataset.jsonl'}")


def print_synthesis(s: SynthesisSummary) -> None:
    """The synthesis stage's counts (``stages.synthesize``'s summary ``s``)."""
    table = Table(title=f"synthesis · {s.generator} · {s.model}")
    for col in (
        "samples",
        "unparsable",
        "duplicates",
        "no answer",
        "kept",
        "selected",
        "novelty",
        "relevance",
    ):
        table.add_column(col, justify="right")
    dups = s.rouge_duplicates + s.embedding_duplicates
    rel = "–" if s.relevance_mean is None else f"{s.relevance_mean:.3f}"
    table.add_row(
        str(s.samples),
        str(s.unparsable),
        str(dups),
        str(s.no_answer),
        str(s.kept),
        str(s.selected),
        f"{s.novelty_mean:.3f}",
        rel,
    )
    console.print(table)


def _duration(seconds: float) -> str:
    """``1 h 05 min``, ``12 min 30 s`` or ``45 s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def print_estimate(est: Estimate) -> None:
    """``persyn.estimate.estimate``'s figures: per teacher, then the totals and the budget."""
    t = Table(title=f"estimate · {est.n_prompts} prompts, {est.n_calibration} calibration")
    for col in (
        "teacher",
        "from",
        "tokens/resp (in+out)",
        "RtG gens",
        "RtG cost $",
        "GtS gens",
        "GtS cost $",
        "s/resp",
    ):
        t.add_column(col, justify="left" if col in ("teacher", "from") else "right", no_wrap=col == "teacher")

    def money(v):
        return "-" if v is None else f"{v:.4f}"

    for r in est.teachers:
        t.add_row(
            r.teacher,
            r.source,
            f"{r.prompt_tokens:.0f}+{r.completion_tokens:.0f}",
            f"{r.rtg_generations:.0f}",
            money(r.rtg_cost),
            str(r.gts_generations),
            money(r.gts_cost),
            "-" if r.seconds_per_response is None else f"{r.seconds_per_response:.2f}",
        )
    console.print(t)
    tot = est.totals
    console.print(
        f"Route-then-Generate: {tot.rtg_generations:.0f} generations, {tot.rtg_tokens:.0f} tokens, "
        f"${money(tot.rtg_cost)}; Generate-then-Select: {tot.gts_generations} generations, "
        f"{tot.gts_tokens:.0f} tokens, ${money(tot.gts_cost)} (routed prompts split: {est.split})",
        highlight=False,
    )
    if tot.rtg_cost_sync is not None and tot.rtg_cost_batch != tot.rtg_cost_sync:
        console.print(
            f"cost synchronous vs through batch files (served teachers, batch price): Route-then-Generate "
            f"${money(tot.rtg_cost_sync)} vs ${money(tot.rtg_cost_batch)}; Generate-then-Select "
            f"${money(tot.gts_cost_sync)} vs ${money(tot.gts_cost_batch)}",
            highlight=False,
        )
    if tot.rtg_seconds is not None:
        console.print(
            f"expected generation wall time (from the calibration responses' throughput, teachers in "
            f"turn): Route-then-Generate {_duration(tot.rtg_seconds)}, Generate-then-Select "
            f"{_duration(tot.gts_seconds)}",
            highlight=False,
        )
    else:
        console.print("expected wall time: measured once the calibration responses exist", highlight=False)
    v = est.verify
    if v is not None:
        esc = sum(r.rtg_escalations for r in est.teachers)
        console.print(
            f"Verified cascade (up to {v['max_tries']} teachers): {v['expected_tries_per_routed_prompt']:.2f} "
            f"expected tries per routed prompt, {esc:.0f} expected escalations, included above "
            f"({v['source']})",
            highlight=False,
        )
    b = est.budget
    if b is not None:
        unit = "" if b["unit"] == "currency" else " tokens"
        console.print(
            f"Routed prompts under the budget (max_cost {b['max_cost']}): expected spend "
            f"{b['estimated_cost']:.4f}{unit}, expected reward {b['expected_reward']:.3f}; unconstrained "
            f"route: {b['unconstrained_cost']:.4f}{unit}, expected reward {b['unconstrained_expected_reward']:.3f}",
            highlight=False,
        )


def print_cache_info(info: CacheInfo, store_path: Path) -> None:
    """What the store at ``store_path`` holds (``Pipeline.cache_info``'s ``info``)."""
    t = Table(title=f"store · {store_path} ({info.store_bytes / 1e6:.1f} MB)")
    for col in ("teacher", "ok", "failed", "stale"):
        t.add_column(col, justify="left" if col == "teacher" else "right")
    for name, row in info.teachers.items():
        label = name + (" (not in config)" if row.not_in_config else "")
        t.add_row(label, str(row.ok), str(row.failed), str(row.stale))
    console.print(t)
    for kind, score in info.scores.items():
        console.print(f"scores · {kind}: {score.current} current, {score.stale} stale")
    console.print(f"responses generated in this store so far: {info.generation_calls}")


def print_ifeval(res) -> None:
    """IFEval's four numbers, the truncation share, and the per-type table."""
    console.print(f"{res.model} on IFEval: {res.n} prompts, {res.n_instructions} instructions ({res.dtype})")
    for m in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"):
        v = getattr(res, m)
        console.print(
            f"  {m.replace('_', '-'):<20} {v['accuracy']:.3f} ({v['correct']}/{v['n']}), "
            f"95% CI [{v['ci_low']:.3f}, {v['ci_high']:.3f}]",
            highlight=False,
        )
    console.print(f"  cut at max_new_tokens ({res.max_new_tokens}): {res.truncated:.1%}", highlight=False)
    table = Table(title="per instruction type")
    for col in ("type", "n", "strict", "loose"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for t, row in res.per_type.items():
        table.add_row(t, str(row["n"]), f"{row['strict']:.2f}", f"{row['loose']:.2f}")
    console.print(table)
