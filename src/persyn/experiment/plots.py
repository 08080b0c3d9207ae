"""The experiment's figures, written as PNGs next to ``results.md``: ``accuracy.png``,
``routing.png``, ``generations.png`` and, with sweeps, ``sweeps.png``."""

from __future__ import annotations

from pathlib import Path


def write_plots(out: Path, agg: list[dict], sweeps: list[dict], teachers: list[str]) -> None:
    """Draw the figures into ``out`` (matplotlib, Agg backend).

    Args:
        out: the experiment's output directory.
        agg: one dict per strategy (``results.aggregate``): ``strategy``, ``mean``,
            ``pooled_low``, ``pooled_high``, ``accs`` (accuracy per seed), ``routing``
            (``{teacher: prompts}``, empty for the untouched student) and ``generations``.
        sweeps: sweep rows (``sweep``, ``value``, ``n_calibration``, ``top1``, ``regret``,
            ``best_single_top1``, ``best_single_regret``); no ``sweeps.png`` when empty.
        teachers: the teacher pool, in order (stack order of ``routing.png``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [a["strategy"] for a in agg]
    x = range(len(agg))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(agg)), 4))
    means = [a["mean"] for a in agg]
    # Clipped at 0: the mean over seeds need not lie inside the pooled interval (and at an
    # accuracy of 0 the Wilson bound is 0 up to rounding), and matplotlib refuses a negative bar.
    err = [
        [max(0.0, a["mean"] - a["pooled_low"]) for a in agg],
        [max(0.0, a["pooled_high"] - a["mean"]) for a in agg],
    ]
    ax.bar(x, means, yerr=err, capsize=4, color="#4c72b0", alpha=0.8)
    for i, a in enumerate(agg):
        ax.scatter([i] * len(a["accs"]), a["accs"], color="black", s=10, zorder=3)
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    ax.set_ylabel("accuracy (held-out)")
    ax.set_title("Student accuracy per strategy (bars: mean over seeds, whiskers: pooled Wilson 95% CI)")
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=110)
    plt.close(fig)

    routed = [a for a in agg if a["routing"]]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(routed)), 4))
    bottom = [0.0] * len(routed)
    for t in teachers:
        vals = [a["routing"].get(t, 0) for a in routed]
        ax.bar(range(len(routed)), vals, bottom=bottom, label=t)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(routed)), [a["strategy"] for a in routed], rotation=30, ha="right")
    ax.set_ylabel("prompts")
    ax.set_title("Prompts per teacher")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "routing.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(routed)), 4))
    ax.bar(range(len(routed)), [a["generations"] for a in routed], color="#dd8452")
    ax.set_xticks(range(len(routed)), [a["strategy"] for a in routed], rotation=30, ha="right")
    ax.set_ylabel("teacher generations needed")
    ax.set_title("Generation cost per strategy")
    fig.tight_layout()
    fig.savefig(out / "generations.png", dpi=110)
    plt.close(fig)

    if sweeps:
        kinds = sorted({s["sweep"] for s in sweeps})
        fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
        for ax, kind in zip(axes[0], kinds, strict=True):
            pts = [s for s in sweeps if s["sweep"] == kind and s["top1"] is not None]
            xs = [s["n_calibration"] if kind == "calibration_size" else s["value"] for s in pts]
            ax.plot(xs, [s["top1"] for s in pts], "o-", label="router top-1")
            ax.plot(xs, [s["regret"] for s in pts], "s-", label="router regret")
            ax.plot(xs, [s["best_single_top1"] for s in pts], "o--", label="best single top-1")
            ax.plot(xs, [s["best_single_regret"] for s in pts], "s--", label="best single regret")
            ax.set_xlabel("calibration prompts" if kind == "calibration_size" else "alpha")
            ax.set_title(f"{kind} sweep")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "sweeps.png", dpi=110)
        plt.close(fig)


def write_paired_plot(out: Path, paired: list[dict]) -> None:
    """``paired.png``: a forest plot of PerSyn minus each strategy (``comparisons.paired_table``
    rows, primary ones first), the seed-aware 95% interval as a thick bar, the prompt-only one
    as a thin line, the per-seed differences as dots. Nothing is drawn without rows."""
    if not paired:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(paired) + 1.2))
    for i, p in enumerate(reversed(paired)):
        color = "#c44e52" if p.get("role") == "primary" else "#4c72b0"
        ax.plot([p["prompt_low"], p["prompt_high"]], [i, i], color=color, lw=1)
        ax.plot([p["low"], p["high"]], [i, i], color=color, lw=5, alpha=0.6)
        ax.scatter(p["per_seed"], [i] * len(p["per_seed"]), color="black", s=8, zorder=3)
        ax.scatter([p["mean"]], [i], color=color, marker="D", s=30, zorder=4)
    labels = [
        f"{p['a']} − {p['b']}{' (primary)' if p.get('role') == 'primary' else ''}" for p in reversed(paired)
    ]
    ax.set_yticks(range(len(paired)), labels)
    ax.axvline(0, color="gray", lw=0.8)
    ax.set_xlabel("accuracy difference (held-out)")
    ax.set_title(
        "Paired differences: thick = seed-aware 95%, thin = prompt-only 95%, dots = per seed", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(out / "paired.png", dpi=110)
    plt.close(fig)
