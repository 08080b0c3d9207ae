"""The report's matplotlib figures, rendered with the Agg canvas (no pyplot: no global figure
state, nothing left open) to ``data:image/png;base64`` URIs. Each teacher keeps one colour in
every figure."""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Callable

from persyn.core.deps import require
from persyn.report.compute import CalibrationStats, mean, num

# matplotlib's tab10: one colour per teacher, the same in every figure.
COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def teacher_colours(teachers: list[str]) -> dict[str, str]:
    """``{teacher: colour}``, cycling through ``COLOURS`` in the order of ``teachers``."""
    return {t: COLOURS[i % len(COLOURS)] for i, t in enumerate(teachers)}


class Plots:
    """Makes figures and renders them to data URIs.

    Raises:
        MissingAssetError: matplotlib is not installed (on construction).
    """

    def __init__(self):
        require("matplotlib", "the report's plots", "pip install matplotlib")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._Figure, self._Canvas = Figure, FigureCanvasAgg

    def figure(self, n_axes: int, n_teachers: int):
        """A figure of ``n_axes`` axes side by side, wide enough for ``n_teachers`` groups;
        returns ``(figure, [axes])``."""
        width = max(5.0, 1.0 + 0.9 * n_teachers) * n_axes
        fig = self._Figure(figsize=(min(width, 15.0), 3.6), layout="constrained")
        self._Canvas(fig)
        axes = fig.subplots(1, n_axes, squeeze=False)[0]
        return fig, list(axes)

    @staticmethod
    def to_uri(fig) -> str:
        """The figure as a PNG (96 dpi) data URI; the figure is cleared."""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=96)
        fig.clear()
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def label(s: str) -> str:
    """Text for a matplotlib label: a ``$`` would start mathtext."""
    return s.replace("$", r"\$")


def teacher_axis(ax, teachers: list[str]) -> None:
    """One x tick per teacher (rotated when there are many or long names) and a light y grid."""
    ax.set_xticks(range(len(teachers)))
    rotate = len(teachers) > 4 or max((len(t) for t in teachers), default=0) > 12
    ax.set_xticklabels(
        [label(t) for t in teachers], rotation=30 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_xlim(-0.6, len(teachers) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def grouped_bars(
    plots: Plots,
    teachers: list[str],
    series: list[tuple[str, list[float], str]],
    ylabel: str,
    title: str,
    fmt: Callable[[float], str],
) -> str:
    """Bars per teacher, one group member per series ``(label, values, colour)``, each bar
    labelled ``fmt(value)``; returns the data URI."""
    fig, (ax,) = plots.figure(1, len(teachers))
    width = 0.8 / len(series)
    for k, (name, values, colour) in enumerate(series):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(teachers))]
        bars = ax.bar(xs, values, width * 0.95, label=label(name), color=colour)
        ax.bar_label(bars, labels=[fmt(v) for v in values], fontsize=8, padding=1)
    teacher_axis(ax, teachers)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(y=0.15)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return plots.to_uri(fig)


def distribution(
    ax, teachers: list[str], colours: dict[str, str], values: dict[str, list[float]], ylabel: str, title: str
) -> None:
    """Box plot per teacher with every value drawn as a jittered point (seeded jitter)."""
    jitter = random.Random(0)
    for i, t in enumerate(teachers):
        xs = values.get(t) or []
        if not xs:
            ax.text(i, 0.5, "no data", transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
            continue
        bp = ax.boxplot(
            [xs], positions=[i], widths=0.55, patch_artist=True, showfliers=False, manage_ticks=False
        )
        for box in bp["boxes"]:
            box.set(facecolor=colours[t], alpha=0.35)
        for med in bp["medians"]:
            med.set(color="black")
        ax.scatter([i + jitter.uniform(-0.15, 0.15) for _ in xs], xs, s=10, color=colours[t], zorder=3)
    teacher_axis(ax, teachers)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def calibration_figure(
    plots: Plots, teachers: list[str], colours: dict[str, str], stats: CalibrationStats, binary: bool
) -> str:
    """Quality (accuracy bars labelled ``correct/scored`` when ``binary``, else a distribution)
    and learnability (distribution, nats/token) per teacher; returns the data URI."""
    fig, (ax_q, ax_l) = plots.figure(2, len(teachers))
    if binary:
        acc = [(mean(stats.quality.get(t, [])) or 0.0) for t in teachers]
        bars = ax_q.bar(range(len(teachers)), acc, 0.6, color=[colours[t] for t in teachers])
        ax_q.bar_label(
            bars,
            labels=[
                f"{int(sum(stats.quality.get(t, [])))}/{len(stats.quality.get(t, []))}" for t in teachers
            ],
            fontsize=8,
            padding=1,
        )
        ax_q.set_ylim(0, 1.12)
        teacher_axis(ax_q, teachers)
        ax_q.set_ylabel("accuracy")
        ax_q.set_title("quality (verifier): accuracy")
    else:
        distribution(ax_q, teachers, colours, stats.quality, "quality", "quality")
    distribution(
        ax_l, teachers, colours, stats.learnability, "nats / token", "learnability (student log-likelihood)"
    )
    return plots.to_uri(fig)


def router_eval_figure(plots: Plots, top1: float, regret: float, best: dict | None) -> str:
    """Top-1 vs Oracle and regret of the router, beside the best single teacher's
    (``best``: its ``name``, ``top1``, ``regret``) when known; returns the data URI."""
    names = ["router"] + ([label(f"best single\n({best.get('name')})")] if best else [])
    t1 = [top1] + ([num(best.get("top1")) or 0.0] if best else [])
    rg = [regret] + ([num(best.get("regret")) or 0.0] if best else [])
    fig, (a1, a2) = plots.figure(2, 2)
    for ax, vals, title, f in (
        (a1, t1, "top-1 vs Oracle (higher is better)", "{:.2f}"),
        (a2, rg, "regret (lower is better)", "{:.3f}"),
    ):
        bars = ax.bar(range(len(vals)), vals, 0.55, color=["#4c72b0", "#999999"][: len(vals)])
        ax.bar_label(bars, labels=[f.format(v) for v in vals], fontsize=8, padding=1)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(names)
        ax.set_xlim(-0.7, len(vals) - 0.3)
        ax.set_title(title)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    a1.set_ylim(0, 1.12)
    a2.set_ylim(min(0.0, min(rg) * 1.2), max(max(rg) * 1.2, 0.01))
    return plots.to_uri(fig)


def frontier_figure(plots: Plots, front: dict, limit: float | None) -> str:
    """The calibration frontier (``budget.frontier``): expected reward against spend for the
    budgeted route (with its interval) and "router, then cheapest", each teacher alone as a
    point, and ``limit`` (the run's ``max_cost`` scaled to the calibration prompts) as a line;
    returns the data URI."""
    fig, (ax,) = plots.figure(1, 6)
    pts = [p for p in front["points"] if p.get("feasible")]
    cost = [p["cost"] for p in pts]
    ax.fill_between(
        cost, [p["reward_low"] for p in pts], [p["reward_high"] for p in pts], alpha=0.2, color="#4c72b0"
    )
    ax.plot(cost, [p["reward"] for p in pts], "o-", color="#4c72b0", label="budgeted route")
    naive = [p["router_then_cheapest"] for p in pts]
    ax.plot(
        [n["cost"] for n in naive],
        [n["reward"] for n in naive],
        "s--",
        color="#999999",
        label="router, then cheapest",
    )
    for name, t in front["teachers"].items():
        ax.scatter([t["cost"]], [t["reward"]], marker="x", color="black", zorder=3)
        ax.annotate(name, (t["cost"], t["reward"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    if limit is not None:
        ax.axvline(limit, color="#d62728", lw=1, label="max_cost, per prompt as on the routed prompts")
    ax.set_xlabel(f"spend on the calibration prompts ({front['unit']})")
    ax.set_ylabel("mean reward (Eq. 2)")
    ax.set_title("cost–reward frontier (calibration prompts, out-of-fold)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return plots.to_uri(fig)
