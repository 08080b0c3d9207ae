"""One run's HTML report: a single self-contained page (inline CSS, matplotlib PNGs embedded as
base64 data URIs, no scripts, nothing fetched) built from the files ``persyn export`` writes.

Sections: the summary, routing per teacher, calibration quality and learnability per teacher,
the router against the Oracle, a seeded sample of dataset lines, and the selection strategies
under ``strategies/`` when there are any.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from persyn.core.errors import InputError, MissingAssetError, PersynError
from persyn.core.io import write_atomic

# matplotlib's tab10: one colour per teacher, the same in every figure.
_COLOURS = [
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
_MAX_FAILURES = 50  # failed items listed in the page (the rest are counted)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; }
td.l, th.l { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
pre { white-space: pre-wrap; word-break: break-word; background: #f7f7f7; border: 1px solid #e3e3e3;
      padding: 0.6em; max-height: 22em; overflow: auto; font-size: 0.88em; margin: 0.3em 0; }
.note { color: #666; font-style: italic; }
.muted { color: #666; }
.sample { border: 1px solid #ddd; border-radius: 4px; padding: 0.6em 0.9em; margin: 1em 0; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px;
          margin-right: 0.35em; vertical-align: baseline; }
nav a { margin-right: 1em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def write_report(run_dir: Path, out: Path | None = None, sample: int = 8, seed: int = 0) -> Path:
    """Write one run's report as a single self-contained HTML page and return its path.

    Reads, in ``run_dir``: ``summary.json`` and ``dataset.jsonl`` (required),
    ``calibration.jsonl``, ``routing.jsonl``, ``run_config.json`` and
    ``strategies/*/summary.json`` (optional: a section whose file is missing says "not
    available"). Plots are matplotlib PNGs (Agg) embedded as base64 data URIs; every text from
    the run (prompts, responses, teacher names, errors) is HTML-escaped. The page is written
    atomically.

    Args:
        run_dir: the run's output directory (``output_dir`` of its config).
        out: where to write the page (default ``run_dir/report.html``).
        sample: how many dataset lines to show in full (prompt, teacher, scores, response).
        seed: seed of the random choice of those lines.

    Returns:
        The path of the written page.

    Raises:
        PersynError: ``run_dir`` is not a directory, ``summary.json`` or ``dataset.jsonl`` is
            missing (run ``persyn run`` / ``persyn export`` first), ``sample`` is negative, or
            the page cannot be written.
        InputError: a file is not valid JSON (for a ``.jsonl`` file the message names the
            line), or a line is not a JSON object.
        MissingAssetError: matplotlib is not installed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PersynError(f"{run_dir}: not a run directory; run `persyn run CONFIG.yaml` first")
    if sample < 0:
        raise PersynError(f"sample: must be >= 0, got {sample}")
    summary = _read_json(run_dir / "summary.json", required=True)
    dataset = _read_jsonl(run_dir / "dataset.jsonl", required=True)
    calibration = _read_jsonl(run_dir / "calibration.jsonl", required=False)
    routing = _read_jsonl(run_dir / "routing.jsonl", required=False)
    run_config = _read_json(run_dir / "run_config.json", required=False)
    strategies = [
        (p.parent.name, _read_json(p, required=True))
        for p in sorted((run_dir / "strategies").glob("*/summary.json"))
    ]
    plots = _Plots()

    teachers = [str(t) for t in summary.get("teachers") or []]
    for row in dataset + (calibration or []) + (routing or []):
        t = row.get("teacher")
        if isinstance(t, str) and t not in teachers:
            teachers.append(t)
    colours = {t: _COLOURS[i % len(_COLOURS)] for i, t in enumerate(teachers)}
    ctx = _Context(run_dir, summary, dataset, calibration, routing, run_config, teachers, colours, plots)

    sections = [
        ("summary", "Summary", _summary_section(ctx)),
        ("routing", "Routing per teacher", _routing_section(ctx)),
        ("calibration", "Calibration scores per teacher", _calibration_section(ctx)),
        ("router", "Router vs Oracle", _router_section(ctx)),
        ("sample", "Sample of the dataset", _sample_section(ctx, sample, seed)),
        ("strategies", "Selection strategies", _strategies_section(ctx, strategies)),
    ]
    nav = " ".join(f'<a href="#{a}">{html.escape(title)}</a>' for a, title, _ in sections)
    body = "\n".join(f'<h2 id="{a}">{html.escape(title)}</h2>\n{content}' for a, title, content in sections)
    title = f"persyn report · {run_dir.resolve().name}"
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="muted">run directory: <code>{_esc(run_dir.resolve())}</code></p>\n'
        f"<nav>{nav}</nav>\n{body}\n</body>\n</html>\n"
    )
    out = run_dir / "report.html" if out is None else Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page)
    return out


# -- reading ----------------------------------------------------------------------------------


def _missing(path: Path) -> PersynError:
    return PersynError(
        f"{path}: not found; run `persyn run CONFIG.yaml` (or `persyn export CONFIG.yaml`) "
        f"for this output directory first"
    )


def _read_json(path: Path, required: bool) -> dict | None:
    if not path.is_file():
        if required:
            raise _missing(path)
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_jsonl(path: Path, required: bool) -> list[dict] | None:
    if not path.is_file():
        if required:
            raise _missing(path)
        return None
    rows = []
    for i, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: line {i}: not UTF-8 text ({exc.reason})") from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {i}: invalid JSON ({exc.msg}, column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise InputError(f"{path}: line {i}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


class _Context:
    def __init__(self, run_dir, summary, dataset, calibration, routing, run_config, teachers, colours, plots):
        self.run_dir = run_dir
        self.summary: dict = summary
        self.dataset: list[dict] = dataset
        self.calibration: list[dict] | None = calibration
        self.routing: list[dict] | None = routing
        self.run_config: dict | None = run_config
        self.teachers: list[str] = teachers
        self.colours: dict[str, str] = colours
        self.plots: _Plots = plots

    def counts(self, key: str) -> dict[str, int] | None:
        """A ``{teacher: count}`` dict of the summary (None if absent or not a dict)."""
        v = self.summary.get(key)
        if not isinstance(v, dict):
            return None
        return {t: _int(v.get(t)) for t in self.teachers}

    def quality_kind(self) -> str | None:
        q = (self.run_config or {}).get("quality")
        return q.get("kind") if isinstance(q, dict) else None


# -- formatting -------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _esc(value: Any) -> str:
    """HTML-escaped text; control characters shown as ``\\xNN``, lone surrogates replaced."""
    s = str(value).encode("utf-8", "replace").decode("utf-8")
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    return html.escape(s, quote=True)


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return None if math.isnan(x) or math.isinf(x) else float(x)


def _int(x: Any) -> int:
    n = _num(x)
    return int(n) if n is not None else 0


def _fmt(x: Any, digits: int = 3) -> str:
    n = _num(x)
    if n is None:
        return "—" if x is None or isinstance(x, int | float) else _esc(x)
    if isinstance(x, int):
        return str(x)
    return f"{n:.{digits}f}"


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "—"


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s, m = sorted(xs), len(xs) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A table of already-escaped cells; the first ``left`` columns are left-aligned."""

    def cell(tag: str, i: int, v: str) -> str:
        return f'<{tag} class="l">{v}</{tag}>' if i < left else f"<{tag}>{v}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "\n".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _kv_table(rows: list[tuple[str, str]]) -> str:
    return _table(["", "value"], [[f"<b>{k}</b>", v] for k, v in rows], left=2)


def _teacher_cell(ctx: _Context, name: str) -> str:
    colour = ctx.colours.get(name, "#999")
    return f'<span class="swatch" style="background:{colour}"></span>{_esc(name)}'


def _img(uri: str, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="{uri}">'


# -- plots ------------------------------------------------------------------------------------


class _Plots:
    """matplotlib figures rendered to ``data:image/png;base64`` URIs with the Agg canvas (no
    pyplot, so no global figure state and nothing left open)."""

    def __init__(self):
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise MissingAssetError(
                "the report draws its plots with matplotlib, which is not installed: pip install matplotlib"
            ) from exc
        self._Figure, self._Canvas = Figure, FigureCanvasAgg

    def figure(self, n_axes: int, n_teachers: int):
        width = max(5.0, 1.0 + 0.9 * n_teachers) * n_axes
        fig = self._Figure(figsize=(min(width, 15.0), 3.6), layout="constrained")
        self._Canvas(fig)
        axes = fig.subplots(1, n_axes, squeeze=False)[0]
        return fig, list(axes)

    @staticmethod
    def to_uri(fig) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=96)
        fig.clear()
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _label(s: str) -> str:
    """Text for a matplotlib label: a ``$`` would start mathtext."""
    return s.replace("$", r"\$")


def _teacher_axis(ax, teachers: list[str]) -> None:
    ax.set_xticks(range(len(teachers)))
    rotate = len(teachers) > 4 or max((len(t) for t in teachers), default=0) > 12
    ax.set_xticklabels(
        [_label(t) for t in teachers], rotation=30 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_xlim(-0.6, len(teachers) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _grouped_bars(ctx: _Context, series: list[tuple[str, list[float], str]], ylabel: str, title: str, fmt):
    """Bars per teacher, one group member per series ``(label, values, colour)``."""
    fig, (ax,) = ctx.plots.figure(1, len(ctx.teachers))
    width = 0.8 / len(series)
    for k, (label, values, colour) in enumerate(series):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(ctx.teachers))]
        bars = ax.bar(xs, values, width * 0.95, label=_label(label), color=colour)
        ax.bar_label(bars, labels=[fmt(v) for v in values], fontsize=8, padding=1)
    _teacher_axis(ax, ctx.teachers)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(y=0.15)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return ctx.plots.to_uri(fig)


def _distribution(ax, ctx: _Context, values: dict[str, list[float]], ylabel: str, title: str) -> None:
    """Box plot per teacher with every value drawn as a jittered point."""
    jitter = random.Random(0)
    for i, t in enumerate(ctx.teachers):
        xs = values.get(t) or []
        if not xs:
            ax.text(i, 0.5, "no data", transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
            continue
        bp = ax.boxplot(
            [xs], positions=[i], widths=0.55, patch_artist=True, showfliers=False, manage_ticks=False
        )
        for box in bp["boxes"]:
            box.set(facecolor=ctx.colours[t], alpha=0.35)
        for median in bp["medians"]:
            median.set(color="black")
        ax.scatter([i + jitter.uniform(-0.15, 0.15) for _ in xs], xs, s=10, color=ctx.colours[t], zorder=3)
    _teacher_axis(ax, ctx.teachers)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


# -- sections ---------------------------------------------------------------------------------


def _summary_section(ctx: _Context) -> str:
    s = ctx.summary
    n, n_cal = s.get("n_prompts"), s.get("n_calibration")
    n_routed = s.get("n_routed")
    if n_routed is None and _num(n) is not None and _num(n_cal) is not None:
        n_routed = int(n) - int(n_cal)
    rows = [
        ("prompts", _fmt(n)),
        ("calibration prompts", _fmt(n_cal)),
        ("routed prompts", _fmt(n_routed)),
        ("dataset lines", str(len(ctx.dataset))),
        ("teachers", f"{len(ctx.teachers)}: " + ", ".join(_teacher_cell(ctx, t) for t in ctx.teachers)),
        ("alpha (learnability weight)", _esc(s["alpha"]) if _num(s.get("alpha")) is not None else "—"),
        ("normalize", _fmt(s.get("normalize"))),
    ]
    if ctx.quality_kind():
        rows.append(("quality", _esc(ctx.quality_kind())))
    gen, gts = _num(s.get("generations")), _num(s.get("generations_generate_then_select"))
    if gen is not None and gts:
        cost = (
            f"{_fmt(s['generations'])} Route-then-Generate vs {_fmt(s['generations_generate_then_select'])} "
        )
        cost += f"Generate-then-Select: <b>{gen / gts:.1%}</b> of the cost ({int(gts - gen)} fewer)"
    else:
        cost = f"{_fmt(s.get('generations'))} (Generate-then-Select: {_fmt(s.get('generations_generate_then_select'))})"
    rows.append(("generations", cost))
    failures = s.get("failures") if isinstance(s.get("failures"), list) else []
    n_failed = s.get("failed", len(failures))
    rows.append(("failed items", _fmt(n_failed)))
    skipped = s.get("skipped_prompts")
    if isinstance(skipped, dict) and any(skipped.values()):
        rows.append(
            (
                "skipped prompts",
                ", ".join(
                    f"{_esc(k)}: {len(v) if isinstance(v, list) else _fmt(v)}" for k, v in skipped.items()
                ),
            )
        )
    parts = [_kv_table(rows)]

    if failures:
        parts.append("<h3>Failed items</h3>")
        shown = [f for f in failures[:_MAX_FAILURES] if isinstance(f, dict)]
        parts.append(
            _table(
                ["stage", "prompt", "teacher", "error"],
                [
                    [
                        _esc(f.get("stage")),
                        _esc(f.get("prompt_id")),
                        _esc(f.get("teacher") or "—"),
                        _esc(f.get("error")),
                    ]
                    for f in shown
                ],
                left=4,
            )
        )
        if len(failures) > _MAX_FAILURES:
            parts.append(_note(f"… and {len(failures) - _MAX_FAILURES} more, listed in summary.json"))

    parts.append("<h3>Seconds per stage</h3>")
    seconds = s.get("seconds")
    if isinstance(seconds, dict) and seconds:
        total = sum(_num(v) or 0.0 for v in seconds.values())
        rows = [[_esc(k), _fmt(v, 2)] for k, v in seconds.items()]
        rows.append(["<b>total</b>", f"<b>{total:.2f}</b>"])
        parts.append(_table(["stage", "seconds"], rows))
    else:
        parts.append(_note("not available"))
    return "\n".join(parts)


def _routing_section(ctx: _Context) -> str:
    dataset_counts = ctx.counts("routing") or dict(Counter(r.get("teacher") for r in ctx.dataset))
    dataset_counts = {t: dataset_counts.get(t, 0) for t in ctx.teachers}
    routed_counts = ctx.counts("routing_routed")
    n_data = sum(dataset_counts.values())
    coef: dict[str, list[float]] = defaultdict(list)
    for r in ctx.routing or []:
        c = r.get("coefficients")
        if isinstance(c, dict) and isinstance(r.get("teacher"), str):
            v = _num(c.get(r["teacher"]))
            if v is not None:
                coef[r["teacher"]].append(v)
    header = ["teacher", "dataset lines", "share"]
    if routed_counts is not None:
        header += ["routed by the router", "share of routed"]
    if ctx.routing is not None:
        header.append("mean π of its routed prompts")
    n_routed = sum(routed_counts.values()) if routed_counts else 0
    rows = []
    for t in ctx.teachers:
        row = [_teacher_cell(ctx, t), str(dataset_counts[t]), _pct(dataset_counts[t], n_data)]
        if routed_counts is not None:
            row += [str(routed_counts[t]), _pct(routed_counts[t], n_routed)]
        if ctx.routing is not None:
            row.append(_fmt(_mean(coef.get(t, []))))
        rows.append(row)
    parts = [
        _table(header, rows),
        _note(
            "dataset lines: calibration prompts take their Oracle pick, the others the router's pick "
            "(a failed generation drops the line); routed: the router's assignments."
        ),
    ]
    if not ctx.teachers:
        return parts[0]
    series = [("dataset", [float(dataset_counts[t]) for t in ctx.teachers], "#4c72b0")]
    if routed_counts is not None:
        series.append(("routed by the router", [float(routed_counts[t]) for t in ctx.teachers], "#dd8452"))
    uri = _grouped_bars(ctx, series, "prompts", "prompts per teacher", lambda v: f"{v:.0f}")
    parts.insert(1, _img(uri, "prompts per teacher"))
    if ctx.routing is None:
        parts.append(_note("routing.jsonl: not available (per-prompt router coefficients not shown)"))
    return "\n".join(parts)


def _is_binary(values: list[float]) -> bool:
    return bool(values) and all(v in (0.0, 1.0) for v in values)


def _calibration_section(ctx: _Context) -> str:
    if ctx.calibration is None:
        means = ctx.summary.get("calibration_means")
        parts = [
            _note(
                "calibration.jsonl: not available (no per-response scores); calibration means from summary.json:"
            )
        ]
        if isinstance(means, dict) and means:
            rows = []
            for t in ctx.teachers:
                m = means.get(t) if isinstance(means.get(t), dict) else {}
                rows.append(
                    [
                        _teacher_cell(ctx, t),
                        _fmt(m.get("quality")),
                        _fmt(m.get("learnability")),
                        _fmt(m.get("valid")),
                    ]
                )
            parts.append(_table(["teacher", "mean quality", "mean learnability", "valid responses"], rows))
        else:
            parts = [_note("not available (no calibration.jsonl and no calibration means in summary.json)")]
        return "\n".join(parts)
    if not ctx.calibration:
        return _note("calibration.jsonl is empty: not available")

    quality: dict[str, list[float]] = defaultdict(list)
    learn: dict[str, list[float]] = defaultdict(list)
    reward: dict[str, list[float]] = defaultdict(list)
    responses: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    oracle: Counter[str] = Counter()
    for r in ctx.calibration:
        t = r.get("teacher")
        if not isinstance(t, str):
            continue
        responses[t] += 1
        if r.get("error") is not None or r.get("response") is None:
            failed[t] += 1
        if r.get("oracle") is True:
            oracle[t] += 1
        for key, into in (("quality", quality), ("learnability", learn), ("reward", reward)):
            v = _num(r.get(key))
            if v is not None:
                into[t].append(v)
    all_q = [v for vs in quality.values() for v in vs]
    binary = ctx.quality_kind() == "verifier" or (ctx.quality_kind() is None and _is_binary(all_q))

    fig, (ax_q, ax_l) = ctx.plots.figure(2, len(ctx.teachers))
    if binary:
        acc = [(_mean(quality.get(t, [])) or 0.0) for t in ctx.teachers]
        bars = ax_q.bar(range(len(ctx.teachers)), acc, 0.6, color=[ctx.colours[t] for t in ctx.teachers])
        ax_q.bar_label(
            bars,
            labels=[f"{int(sum(quality.get(t, [])))}/{len(quality.get(t, []))}" for t in ctx.teachers],
            fontsize=8,
            padding=1,
        )
        ax_q.set_ylim(0, 1.12)
        _teacher_axis(ax_q, ctx.teachers)
        ax_q.set_ylabel("accuracy")
        ax_q.set_title("quality (verifier): accuracy")
    else:
        _distribution(ax_q, ctx, quality, "quality", "quality")
    _distribution(ax_l, ctx, learn, "nats / token", "learnability (student log-likelihood)")
    parts = [_img(ctx.plots.to_uri(fig), "quality and learnability per teacher")]

    header = ["teacher", "responses", "failed"]
    header += ["correct", "accuracy"] if binary else ["mean quality", "median quality"]
    header += ["mean learnability", "median learnability", "mean reward (Eq. 2)", "Oracle picks"]
    rows = []
    for t in ctx.teachers:
        q = quality.get(t, [])
        row = [_teacher_cell(ctx, t), str(responses[t]), str(failed[t])]
        if binary:
            row += [f"{int(sum(q))}/{len(q)}", _pct(sum(q), len(q))]
        else:
            row += [_fmt(_mean(q)), _fmt(_median(q))]
        lv = learn.get(t, [])
        row += [_fmt(_mean(lv)), _fmt(_median(lv)), _fmt(_mean(reward.get(t, []))), str(oracle[t])]
        rows.append(row)
    parts.append(_table(header, rows))
    parts.append(
        _note(
            "over every teacher's response to each calibration prompt; "
            + ("accuracy and means" if binary else "means")
            + " over the scored responses (failed ones excluded). Learnability: the student's mean "
            "per-token log-likelihood (higher is easier to learn)."
        )
    )
    return "\n".join(parts)


def _router_section(ctx: _Context) -> str:
    parts = ["<h3>Held-out evaluation</h3>"]
    ev = ctx.summary.get("router_eval")
    if not isinstance(ev, dict) or not ev:
        parts.append(_note("not available (no router evaluation in summary.json)"))
    else:
        best = ev.get("best_single_teacher") if isinstance(ev.get("best_single_teacher"), dict) else None
        rows = [["router", _fmt(ev.get("top1"), 2), _fmt(ev.get("regret"))]]
        if best:
            rows.append(
                [
                    f"best single teacher ({_teacher_cell(ctx, str(best.get('name')))})",
                    _fmt(best.get("top1"), 2),
                    _fmt(best.get("regret")),
                ]
            )
        parts.append(_table(["picks by", "top-1 vs Oracle", "regret"], rows))
        parts.append(
            _note(
                f"on {_fmt(ev.get('n_eval'))} held-out calibration prompt(s), router trained on "
                f"{_fmt(ev.get('n_train'))}; top-1: share of prompts where the pick's reward equals the "
                "Oracle's; regret: mean Oracle reward minus the pick's."
            )
        )
        if ev.get("note"):
            parts.append(_note(_esc(ev["note"])))
        top1, regret = _num(ev.get("top1")), _num(ev.get("regret"))
        if top1 is not None and regret is not None:
            names = ["router"] + ([_label(f"best single\n({best.get('name')})")] if best else [])
            t1 = [top1] + ([_num(best.get("top1")) or 0.0] if best else [])
            rg = [regret] + ([_num(best.get("regret")) or 0.0] if best else [])
            fig, (a1, a2) = ctx.plots.figure(2, 2)
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
            parts.append(_img(ctx.plots.to_uri(fig), "router vs best single teacher"))

    parts.append("<h3>Oracle picks on the calibration set vs the router's picks</h3>")
    oracle = ctx.counts("oracle_calibration")
    if oracle is None and ctx.calibration:
        c = Counter(r.get("teacher") for r in ctx.calibration if r.get("oracle") is True)
        oracle = {t: c.get(t, 0) for t in ctx.teachers}
    routed = ctx.counts("routing_routed")
    if routed is None and ctx.routing is not None:
        c = Counter(r.get("teacher") for r in ctx.routing)
        routed = {t: c.get(t, 0) for t in ctx.teachers}
    if oracle is None or routed is None or not ctx.teachers:
        parts.append(_note("not available (needs the Oracle picks and the router's assignments)"))
        return "\n".join(parts)
    n_o, n_r = sum(oracle.values()), sum(routed.values())
    rows = [
        [_teacher_cell(ctx, t), str(oracle[t]), _pct(oracle[t], n_o), str(routed[t]), _pct(routed[t], n_r)]
        for t in ctx.teachers
    ]
    parts.append(_table(["teacher", "Oracle (calibration)", "share", "router (routed)", "share"], rows))
    uri = _grouped_bars(
        ctx,
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
    parts.append(_img(uri, "Oracle picks vs router picks per teacher"))
    parts.append(
        _note(
            "shares, since the two sets differ in size; the Oracle is the Eq. 2 argmax over every teacher's response."
        )
    )
    return "\n".join(parts)


def _content(row: dict, role: str) -> str | None:
    for m in row.get("messages") or []:
        if isinstance(m, dict) and m.get("role") == role:
            return m.get("content")
    return None


def _sample_section(ctx: _Context, sample: int, seed: int) -> str:
    if not ctx.dataset:
        return _note("dataset.jsonl is empty: nothing to show")
    if sample == 0:
        return _note("no sample requested")
    k = min(sample, len(ctx.dataset))
    picked = sorted(random.Random(seed).sample(range(len(ctx.dataset)), k))
    coefficients = {r.get("id"): r.get("coefficients") for r in ctx.routing or []}
    cal_rows: dict[Any, list[dict]] = defaultdict(list)
    for r in ctx.calibration or []:
        cal_rows[r.get("id")].append(r)
    parts = [_note(f"{k} of {len(ctx.dataset)} dataset lines, chosen at random with seed {seed}")]
    for i in picked:
        row = ctx.dataset[i]
        teacher = row.get("teacher")
        head = (
            f"<b>{_esc(row.get('id'))}</b> · line {i + 1} · teacher {_teacher_cell(ctx, str(teacher))}"
            f" · source {_esc(row.get('source', '—'))}"
        )
        scores = [
            f"{key} {_fmt(row.get(key))}"
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
                    (f"<b>{_esc(t)} {_fmt(v)}</b>" if t == teacher else f"{_esc(t)} {_fmt(v)}")
                    for t, v in coef.items()
                )
            )
        others = cal_rows.get(row.get("id"))
        if others:
            details.append(
                "every teacher's reward: "
                + ", ".join(
                    (
                        f"<b>{_esc(o.get('teacher'))} {_fmt(o.get('reward'))}</b>"
                        if o.get("oracle")
                        else f"{_esc(o.get('teacher'))} {_fmt(o.get('reward'))}"
                    )
                    for o in others
                )
            )
        prompt, response = _content(row, "user"), _content(row, "assistant")
        parts.append(
            '<div class="sample">'
            f"<div>{head}</div>"
            + "".join(f'<div class="muted">{d}</div>' for d in details)
            + f"<div>prompt</div><pre>{_esc(prompt if prompt is not None else '—')}</pre>"
            + f"<div>response</div><pre>{_esc(response if response is not None else '—')}</pre>"
            + "</div>"
        )
    return "\n".join(parts)


def _strategies_section(ctx: _Context, strategies: list[tuple[str, dict]]) -> str:
    if not strategies:
        return _note("not available (no strategies/*/summary.json: see `persyn select`)")
    teachers = list(ctx.teachers)
    for _, s in strategies:
        for t in s.get("routing") or {}:
            if t not in teachers:
                teachers.append(t)
    header = ["strategy", "dataset lines", "generations", "Generate-then-Select", "cost"] + [
        _esc(t) for t in teachers
    ]
    rows = []
    for name, s in strategies:
        routing = s.get("routing") if isinstance(s.get("routing"), dict) else {}
        gen, gts = _num(s.get("generations")), _num(s.get("generations_generate_then_select"))
        rows.append(
            [
                _esc(s.get("strategy", name)),
                _fmt(s.get("n_dataset")),
                _fmt(s.get("generations")),
                _fmt(s.get("generations_generate_then_select")),
                _pct(gen, gts) if gen is not None and gts else "—",
                *[_fmt(routing.get(t, 0)) for t in teachers],
            ]
        )
    return "\n".join(
        [
            _table(header, rows),
            _note(
                "per strategy: the generations it needs and the prompts each teacher answers (strategies/NAME/)."
            ),
        ]
    )
