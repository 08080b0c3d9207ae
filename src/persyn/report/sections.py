"""The report's sections, one function each, every one returning an HTML fragment. A section
whose input file is missing says "not available" instead of failing."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from persyn.core.plugins import QUALITY_SCORERS
from persyn.core.summary import RouterEvaluation, interval_text
from persyn.report import compute
from persyn.report.compute import num
from persyn.report.html import esc, fmt, img, kv_table, note, pct, table, teacher_cell
from persyn.report.load import RunFiles
from persyn.report.plots import (
    Plots,
    calibration_figure,
    frontier_figure,
    grouped_bars,
    router_eval_figure,
    teacher_colours,
)
from persyn.scoring.quality import quality_scorer_class
from persyn.scoring.shares import quality_warning, truncation_warnings

MAX_FAILURES = 50  # failed items listed in the page (the rest are counted)


class ReportContext:
    """What every section reads: the run's files, its teachers (summary's first, then any other
    a line names), one colour per teacher and the figure maker."""

    def __init__(self, files: RunFiles, plots: Plots):
        self.files = files
        self.summary = files.summary
        self.teachers = compute.teacher_names(files)
        self.colours = teacher_colours(self.teachers)
        self.plots = plots

    def counts(self, name: str) -> dict[str, int] | None:
        """The summary's ``{teacher: count}`` field ``name`` (None if this summary has none)."""
        return compute.summary_counts(self.files, self.teachers, name)

    def quality_kind(self) -> str | None:
        """The run's quality scorer kind from ``run_config.json`` (None when unknown)."""
        return compute.quality_kind(self.files.run_config)

    def teacher(self, name: str) -> str:
        """A teacher's name with its colour swatch."""
        return teacher_cell(self.colours, name)


def data_quality_part(ctx: ReportContext) -> str:
    """The dataset's lines by quality check per teacher and source, and each teacher's
    responses cut at max_new_tokens, with the warnings the console printed (empty for a
    summary without these figures, e.g. a strategy's or an older run's)."""
    q = compute.summary_field(ctx.summary, "data_quality")
    cut = compute.summary_field(ctx.summary, "truncation")
    parts = []
    if q:
        parts.append("<h3>Quality check of the dataset's lines</h3>")
        warning = quality_warning(q)
        if warning:
            parts.append(note(f"⚠ {esc(warning)}"))
        rows = [
            [
                ctx.teacher(t),
                esc(source),
                fmt(c["lines"]),
                fmt(c["passed"]),
                fmt(c["failed"]),
                fmt(c["unknown"]),
            ]
            for t, by_source in q["by_teacher"].items()
            for source, c in by_source.items()
        ]
        rows.append(
            ["<b>all</b>", "", *(f"<b>{fmt(q[k])}</b>" for k in ("lines", "passed", "failed", "unknown"))]
        )
        parts.append(table(["teacher", "source", "lines", "passed", "failed", "never checked"], rows, left=2))
    if cut:
        parts.append("<h3>Responses cut at max_new_tokens</h3>")
        for warning in truncation_warnings(cut):
            parts.append(note(f"⚠ {esc(warning)}"))
        rows = [
            [ctx.teacher(t), fmt(f["responses"]), fmt(f["cut"]), pct(f["cut"], f["responses"])]
            for t, f in cut.items()
        ]
        parts.append(table(["teacher", "responses", "cut", "share"], rows))
    return "".join(parts)


def summary_section(ctx: ReportContext) -> str:
    """Prompt counts, teachers, alpha, generation cost, failed items and seconds per stage."""
    s = ctx.summary
    alpha = compute.summary_field(s, "alpha")
    rows = [
        ("prompts", fmt(s.n_prompts)),
        ("calibration prompts", fmt(s.n_calibration)),
        ("routed prompts", fmt(compute.n_routed(s))),
        ("dataset lines", str(len(ctx.files.dataset))),
        ("teachers", f"{len(ctx.teachers)}: " + ", ".join(ctx.teacher(t) for t in ctx.teachers)),
        ("alpha (learnability weight)", esc(alpha) if num(alpha) is not None else "—"),
        ("normalize", fmt(compute.summary_field(s, "normalize"))),
    ]
    if ctx.quality_kind():
        rows.append(("quality", esc(ctx.quality_kind())))
    gen, gts = num(s.generations), num(s.generations_generate_then_select)
    if gen is not None and gts:
        cost = f"{fmt(s.generations)} Route-then-Generate vs {fmt(s.generations_generate_then_select)} "
        cost += f"Generate-then-Select: <b>{gen / gts:.1%}</b> of the cost ({int(gts - gen)} fewer)"
    else:
        cost = f"{fmt(s.generations)} (Generate-then-Select: {fmt(s.generations_generate_then_select)})"
    rows.append(("generations", cost))
    failures = s.failures
    rows.append(("failed items", fmt(s.failed)))
    skipped = compute.summary_field(s, "skipped_prompts")
    if isinstance(skipped, dict) and any(skipped.values()):
        rows.append(
            (
                "skipped prompts",
                ", ".join(
                    f"{esc(k)}: {len(v) if isinstance(v, list) else fmt(v)}" for k, v in skipped.items()
                ),
            )
        )
    parts = [kv_table(rows), data_quality_part(ctx)]

    if failures:
        parts.append("<h3>Failed items</h3>")
        parts.append(
            table(
                ["stage", "prompt", "teacher", "error"],
                [
                    [esc(f.stage), esc(f.prompt_id), esc(f.teacher or "—"), esc(f.error)]
                    for f in failures[:MAX_FAILURES]
                ],
                left=4,
            )
        )
        if len(failures) > MAX_FAILURES:
            parts.append(note(f"… and {len(failures) - MAX_FAILURES} more, listed in summary.json"))

    parts.append("<h3>Seconds per stage</h3>")
    seconds = s.seconds
    if seconds:
        total = sum(num(v) or 0.0 for v in seconds.values())
        rows = [[esc(k), fmt(v, 2)] for k, v in seconds.items()]
        rows.append(["<b>total</b>", f"<b>{total:.2f}</b>"])
        parts.append(table(["stage", "seconds"], rows))
    else:
        parts.append(note("not available"))
    return "\n".join(parts)


def routing_section(ctx: ReportContext) -> str:
    """Dataset lines and router decisions per teacher (table and bars), with the mean router
    coefficient π of each teacher's routed prompts when ``routing.jsonl`` is there."""
    dataset_counts = ctx.counts("routing") or compute.row_counts(ctx.files.dataset, ctx.teachers)
    routed_counts = ctx.counts("routing_routed")
    routing = ctx.files.routing
    n_data = sum(dataset_counts.values())
    coef = compute.chosen_coefficients(routing or [])
    header = ["teacher", "dataset lines", "share"]
    if routed_counts is not None:
        header += ["routed by the router", "share of routed"]
    if routing is not None:
        header.append("mean π of its routed prompts")
    n_routed = sum(routed_counts.values()) if routed_counts else 0
    rows = []
    for t in ctx.teachers:
        row = [ctx.teacher(t), str(dataset_counts[t]), pct(dataset_counts[t], n_data)]
        if routed_counts is not None:
            row += [str(routed_counts[t]), pct(routed_counts[t], n_routed)]
        if routing is not None:
            row.append(fmt(compute.mean(coef.get(t, []))))
        rows.append(row)
    parts = [
        table(header, rows),
        note(
            "dataset lines: calibration prompts take their Oracle pick, the others the router's pick "
            "(a failed generation drops the line); routed: the router's assignments."
        ),
    ]
    if not ctx.teachers:
        return parts[0]
    series = [("dataset", [float(dataset_counts[t]) for t in ctx.teachers], "#4c72b0")]
    if routed_counts is not None:
        series.append(("routed by the router", [float(routed_counts[t]) for t in ctx.teachers], "#dd8452"))
    uri = grouped_bars(
        ctx.plots, ctx.teachers, series, "prompts", "prompts per teacher", lambda v: f"{v:.0f}"
    )
    parts.insert(1, img(uri, "prompts per teacher"))
    if routing is None:
        parts.append(note("routing.jsonl: not available (per-prompt router coefficients not shown)"))
    return "\n".join(parts)


def calibration_section(ctx: ReportContext) -> str:
    """Quality and learnability per teacher over ``calibration.jsonl`` (figure and table); the
    summary's calibration means when the file is missing."""
    calibration = ctx.files.calibration
    if calibration is None:
        return _calibration_means_only(ctx)
    if not calibration:
        return note("calibration.jsonl is empty: not available")
    stats = compute.calibration_stats(calibration)
    kind = ctx.quality_kind()
    if kind in QUALITY_SCORERS:
        binary = quality_scorer_class(kind).BINARY
    else:  # none recorded: what its scores look like (a kind this version does not know: not 0/1)
        binary = kind is None and compute.is_binary(stats.all_quality())
    uri = calibration_figure(ctx.plots, ctx.teachers, ctx.colours, stats, binary)
    parts = [img(uri, "quality and learnability per teacher")]

    header = ["teacher", "responses", "failed"]
    header += ["correct", "accuracy"] if binary else ["mean quality", "median quality"]
    header += ["mean learnability", "median learnability", "mean reward (Eq. 2)", "Oracle picks"]
    rows = []
    for t in ctx.teachers:
        q = stats.quality.get(t, [])
        row = [ctx.teacher(t), str(stats.responses[t]), str(stats.failed[t])]
        if binary:
            row += [f"{int(sum(q))}/{len(q)}", pct(sum(q), len(q))]
        else:
            row += [fmt(compute.mean(q)), fmt(compute.median(q))]
        lv = stats.learnability.get(t, [])
        row += [
            fmt(compute.mean(lv)),
            fmt(compute.median(lv)),
            fmt(compute.mean(stats.reward.get(t, []))),
            str(stats.oracle[t]),
        ]
        rows.append(row)
    parts.append(table(header, rows))
    parts.append(
        note(
            "over every teacher's response to each calibration prompt; "
            + ("accuracy and means" if binary else "means")
            + " over the scored responses (failed ones excluded). Learnability: the student's mean "
            "per-token log-likelihood (higher is easier to learn)."
        )
    )
    return "\n".join(parts)


def _calibration_means_only(ctx: ReportContext) -> str:
    means = compute.summary_field(ctx.summary, "calibration_means")
    if not means:
        return note("not available (no calibration.jsonl and no calibration means in summary.json)")
    rows = []
    for t in ctx.teachers:
        m = means.get(t)
        rows.append(
            [
                ctx.teacher(t),
                fmt(m.quality if m else None),
                fmt(m.learnability if m else None),
                fmt(m.valid if m else None),
            ]
        )
    return "\n".join(
        [
            note(
                "calibration.jsonl: not available (no per-response scores); calibration means from summary.json:"
            ),
            table(["teacher", "mean quality", "mean learnability", "valid responses"], rows),
        ]
    )


def router_section(ctx: ReportContext) -> str:
    """The router kinds' cross-validated figures against the best single teacher (and the kind
    that routes), then the Oracle's picks on the calibration set beside the router's picks
    (shares, table and bars)."""
    parts = ["<h3>Router kinds, cross-validated on the calibration set</h3>"]
    ev = compute.summary_field(ctx.summary, "router_eval")
    if not isinstance(ev, RouterEvaluation):
        parts.append(note("not available (no router evaluation in summary.json)"))
    else:
        best = ev.best_single_teacher
        rows = [
            [
                f"<b>{esc(k)}</b> (routes)" if k == ev.kind else esc(k),
                fmt(f.get("top1"), 2),
                fmt(f.get("regret")),
                esc(interval_text(f.get("regret_vs_prior"), "+.3f", "–")),
                esc(interval_text(f.get("gain"), ".2f", "n/a")),
            ]
            for k, f in ev.kinds.items()
        ]
        if rows:
            head = [
                "kind",
                "top-1 vs Oracle",
                "regret",
                "regret − prior's [95% CI]",
                "Oracle gain recovered [95% CI]",
            ]
            parts.append(table(head, rows))
        parts.append(
            note(
                f"router.kind: {esc(ev.requested or '?')} → {esc(ev.kind or '?')}: "
                f"{esc(ev.reason or '')}. Each of {fmt(ev.n_eval)} calibration prompt(s) "
                f"held out once in each of {fmt(ev.repeats)} repetition(s) of {fmt(ev.folds)}-fold "
                "cross-validation (regrets averaged over the repetitions). top-1: share of picks where the pick's "
                "reward equals the Oracle's; regret: mean Oracle reward minus the pick's; Oracle gain "
                "recovered: (prior's regret − the kind's) / prior's regret (n/a when the best single "
                f"teacher{' (' + ctx.teacher(str(best.get('name'))) + ')' if best else ''} already has no regret)."
            )
        )
        if ev.note:
            parts.append(note(esc(ev.note)))
        if ev.top1 is not None and ev.regret is not None:
            uri = router_eval_figure(ctx.plots, ev.top1, ev.regret, best)
            parts.append(img(uri, "router vs best single teacher"))

    parts.append("<h3>Oracle picks on the calibration set vs the router's picks</h3>")
    oracle = ctx.counts("oracle_calibration")
    if oracle is None and ctx.files.calibration:
        oracle = compute.row_counts(
            ctx.files.calibration, ctx.teachers, only=lambda r: r.get("oracle") is True
        )
    routed = ctx.counts("routing_routed")
    if routed is None and ctx.files.routing is not None:
        routed = compute.row_counts(ctx.files.routing, ctx.teachers)
    if oracle is None or routed is None or not ctx.teachers:
        parts.append(note("not available (needs the Oracle picks and the router's assignments)"))
        return "\n".join(parts)
    n_o, n_r = sum(oracle.values()), sum(routed.values())
    rows = [
        [ctx.teacher(t), str(oracle[t]), pct(oracle[t], n_o), str(routed[t]), pct(routed[t], n_r)]
        for t in ctx.teachers
    ]
    parts.append(table(["teacher", "Oracle (calibration)", "share", "router (routed)", "share"], rows))
    uri = grouped_bars(
        ctx.plots,
        ctx.teachers,
        [
            (
                f"Oracle on calibration (n={n_o})",
                [oracle[t] / n_o if n_o else 0.0 for t in ctx.teachers],
                "#55a868",
            ),
            (
                f"router on routed (n={n_r})",
                [routed[t] / n_r if n_r else 0.0 for t in ctx.teachers],
                "#dd8452",
            ),
        ],
        "share of prompts",
        "who gets the prompts: Oracle vs router",
        lambda v: f"{v:.0%}",
    )
    parts.append(img(uri, "Oracle picks vs router picks per teacher"))
    parts.append(
        note(
            "shares, since the two sets differ in size; the Oracle is the Eq. 2 argmax over every teacher's response."
        )
    )
    return "\n".join(parts)


def _content(row: dict, role: str) -> str | None:
    for m in row.get("messages") or []:
        if isinstance(m, dict) and m.get("role") == role:
            return m.get("content")
    return None


def sample_section(ctx: ReportContext, sample: int, seed: int) -> str:
    """``sample`` dataset lines drawn with ``seed`` (in file order), each with its scores, the
    router's coefficients, every teacher's reward and the prompt and response in full."""
    dataset = ctx.files.dataset
    if not dataset:
        return note("dataset.jsonl is empty: nothing to show")
    if sample == 0:
        return note("no sample requested")
    k = min(sample, len(dataset))
    picked = sorted(random.Random(seed).sample(range(len(dataset)), k))
    coefficients = {r.get("id"): r.get("coefficients") for r in ctx.files.routing or []}
    cal_rows: dict[Any, list[dict]] = defaultdict(list)
    for r in ctx.files.calibration or []:
        cal_rows[r.get("id")].append(r)
    parts = [note(f"{k} of {len(dataset)} dataset lines, chosen at random with seed {seed}")]
    for i in picked:
        row = dataset[i]
        teacher = row.get("teacher")
        head = (
            f"<b>{esc(row.get('id'))}</b> · line {i + 1} · teacher {ctx.teacher(str(teacher))}"
            f" · source {esc(row.get('source', '—'))}"
        )
        scores = [
            f"{key} {fmt(row.get(key))}"
            for key in ("quality", "learnability", "reward")
            if row.get(key) is not None
        ]
        details = []
        if scores:
            details.append("scores: " + ", ".join(scores))
        coef = coefficients.get(row.get("id"))
        if isinstance(coef, dict) and coef:
            details.append(
                "router π: "
                + ", ".join(
                    (f"<b>{esc(t)} {fmt(v)}</b>" if t == teacher else f"{esc(t)} {fmt(v)}")
                    for t, v in coef.items()
                )
            )
        others = cal_rows.get(row.get("id"))
        if others:
            details.append(
                "every teacher's reward: "
                + ", ".join(
                    (
                        f"<b>{esc(o.get('teacher'))} {fmt(o.get('reward'))}</b>"
                        if o.get("oracle")
                        else f"{esc(o.get('teacher'))} {fmt(o.get('reward'))}"
                    )
                    for o in others
                )
            )
        prompt, response = _content(row, "user"), _content(row, "assistant")
        parts.append(
            '<div class="sample">'
            f"<div>{head}</div>"
            + "".join(f'<div class="muted">{d}</div>' for d in details)
            + f"<div>prompt</div><pre>{esc(prompt if prompt is not None else '—')}</pre>"
            + f"<div>response</div><pre>{esc(response if response is not None else '—')}</pre>"
            + "</div>"
        )
    return "\n".join(parts)


def strategies_section(ctx: ReportContext) -> str:
    """One row per ``strategies/*/summary.json``: dataset lines, generations, the cost against
    Generate-then-Select and the prompts each teacher answers."""
    strategies = ctx.files.strategies
    if not strategies:
        return note("not available (no strategies/*/summary.json: see `persyn select`)")
    teachers = list(ctx.teachers)
    for _, s in strategies:
        for t in s.routing:
            if t not in teachers:
                teachers.append(t)
    header = ["strategy", "dataset lines", "generations", "Generate-then-Select", "cost"] + [
        esc(t) for t in teachers
    ]
    rows = []
    for _, s in strategies:
        gen, gts = num(s.generations), num(s.generations_generate_then_select)
        rows.append(
            [
                esc(s.strategy),
                fmt(s.n_dataset),
                fmt(s.generations),
                fmt(s.generations_generate_then_select),
                pct(gen, gts) if gen is not None and gts else "—",
                *[fmt(s.routing.get(t, 0)) for t in teachers],
            ]
        )
    return "\n".join(
        [
            table(header, rows),
            note(
                "per strategy: the generations it needs and the prompts each teacher answers (strategies/NAME/)."
            ),
        ]
    )


def budget_section(ctx: ReportContext) -> str:
    """Spend against the budget (estimated, actual, calibration) and the calibration set's
    cost–reward frontier (figure and table); a note without ``summary.json``'s
    ``budget``."""
    b = compute.summary_field(ctx.summary, "budget")
    if not isinstance(b, dict) or not b:
        return note("no spend to report: the pool costs nothing and no limit is set")
    unit = b.get("unit", "")
    rows = [
        ("max_cost", fmt(b.get("max_cost"), 6)),
        ("estimated cost of the routed prompts", fmt(b.get("estimated_cost"), 6)),
        ("actual cost of the routed prompts", fmt(b.get("actual_cost"), 6)),
        ("calibration cost (before the router, outside the limit)", fmt(b.get("calibration_cost"), 6)),
        ("unconstrained route's expected cost", fmt(b.get("unconstrained_cost"), 6)),
        ("skipped by budget", fmt(b.get("skipped"))),
        ("unit", esc(unit)),
    ]
    parts = [kv_table(rows)]
    front = b.get("frontier")
    if isinstance(front, dict) and front.get("points"):
        n_routed = num(compute.summary_field(ctx.summary, "n_routed")) or front["n"]
        limit = b.get("max_cost")
        limit = None if limit is None else limit * front["n"] / max(1, n_routed)
        parts.append(img(frontier_figure(ctx.plots, front, limit), "cost-reward frontier"))
        header = [
            "spend (of unconstrained)",
            "cost",
            "mean reward [95% CI]",
            "Oracle gain",
            "router, then cheapest",
        ]
        body = []
        for p in front["points"]:
            if not p.get("feasible"):
                body.append([f"{p['fraction']:.0%}", "below the cheapest route", "", "", ""])
                continue
            body.append(
                [
                    f"{p['fraction']:.0%}",
                    fmt(p["cost"], 6),
                    f"{fmt(p['reward'])} [{fmt(p['reward_low'])}, {fmt(p['reward_high'])}]",
                    fmt(p.get("gain"), 2),
                    fmt(p["router_then_cheapest"]["reward"]),
                ]
            )
        parts.append(table(header, body))
        parts.append(
            note(
                "calibration prompts routed by out-of-fold router scores and scored with their actual "
                "rewards; intervals: bootstrap over prompts."
            )
        )
    return "\n".join(parts)


def verify_section(ctx: ReportContext) -> str:
    """The verified cascade: per teacher, first answers, escalations, rejected and accepted
    attempts; the prompts accepted at each try, dropped, kept failing, skipped by the budget, and
    the routed generations per routed prompt; a note without ``summary.json``'s ``verify``."""
    v = compute.summary_field(ctx.summary, "verify")
    if not isinstance(v, dict) or not v:
        return note("the run does not verify (no verify: section): routed answers are not checked")
    header = ["teacher", "first answers", "escalations", "rejected", "accepted"]
    body = [
        [
            ctx.teacher(name),
            str(f["first_answers"]),
            str(f["escalations"]),
            str(f["rejected"]),
            str(f["accepted"]),
        ]
        for name, f in v["teachers"].items()
    ]
    at = ", ".join(f"{n} at try {i + 1}" for i, n in enumerate(v["accepted_at_try"]))
    rows = [
        (
            "max_tries / on_fail / pass_quality",
            esc(f"{v['max_tries']} / {v['on_fail']} / {v['pass_quality']:g}"),
        ),
        ("router target", esc(str(v.get("router_target")))),
        ("routed prompts", fmt(v["routed_prompts"])),
        ("accepted", esc(at)),
        ("dropped (no teacher passed)", fmt(v["dropped"])),
        ("kept failing (on_fail: keep)", fmt(v["kept_failing"])),
        ("skipped by budget", fmt(v["skipped_by_budget"])),
        (
            "routed generations (per routed prompt)",
            esc(f"{v['routed_generations']} ({fmt(v['generations_per_routed_prompt'], 2)})"),
        ),
        ("calibration prompts dropped", fmt(v["calibration_dropped"])),
    ]
    return "\n".join(
        [
            table(header, body),
            kv_table(rows),
            note(
                "first answers: a routed prompt's first try; escalations: later tries; rejected: failed the check."
            ),
        ]
    )
