"""``persyn experiment``: the paper's comparison at small scale, in one command.

For one run configuration (prompts, teacher pool, student): build every strategy's dataset from
one shared store (so no response is generated twice), fine-tune the student on each with each
seed, evaluate every fine-tuned student and the untouched student on a held-out verifiable set,
and write ``results.csv``, ``results.md`` and plots. Optional sweeps: alpha (router figures and
routing per alpha) and calibration size (router top-1 and regret vs calibration size).

Everything is resumable: a dataset, a fine-tuned model's evaluation and a sweep point are each
stored once and skipped on a re-run. Strategies whose datasets are identical share one
fine-tune per seed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator

from persyn.config import (
    STRATEGIES,
    WHERE_IT_RUNS,
    PromptsConfig,
    RunConfig,
    StrictModel,
    format_validation_error,
    parse_config,
    read_yaml,
)
from persyn.core.errors import ConfigError, PersynError
from persyn.store import Store


class EvalConfig(StrictModel):
    """The held-out evaluation set (drawn with its own ``seed``; checked disjoint from every
    training prompt, or with ``exclude_training_prompts`` made so) and greedy decoding."""

    prompts: PromptsConfig
    seed: int = 12345
    max_new_tokens: Annotated[int, Field(ge=1)] = 128
    batch_size: Annotated[int, Field(ge=1)] = 32
    # Small task spaces (e.g. one-digit sums) repeat prompts across draws: drop the eval prompts
    # that a training set holds (counted in results.md) instead of failing the disjointness check.
    exclude_training_prompts: bool = False


class SweepConfig(StrictModel):
    """Optional analyses. ``alpha``: values of α in Eq. 2 (router top-1 / regret and routing per
    value). ``calibration_size``: calibration sizes (fractions or counts) for router top-1 and
    regret vs calibration size. ``train``: also fine-tune and evaluate PerSyn at each point."""

    alpha: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=list)
    calibration_size: list[float | int] = Field(default_factory=list)
    train: bool = False


class ExperimentConfig(StrictModel):
    """An experiment: a base ``run`` (the pipeline's config, inline), strategies × seeds,
    fine-tuning settings (``persyn.train.SFTSettings``), the evaluation set, sweeps."""

    output_dir: Path
    run: dict[str, Any]
    strategies: list[str] = Field(default_factory=lambda: list(STRATEGIES))
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    sft: dict[str, Any] = Field(default_factory=dict)
    eval: EvalConfig
    sweeps: SweepConfig = Field(default_factory=SweepConfig)
    keep_models: bool = False

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("needs at least one seed")
        if len(set(v)) != len(v):
            raise ValueError("seeds are listed twice")
        return v

    @field_validator("strategies")
    @classmethod
    def _check_strategies(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in STRATEGIES:
                raise ValueError(f"unknown strategy '{name}' (known: {', '.join(STRATEGIES)})")
        if len(set(v)) != len(v):
            raise ValueError("strategies are listed twice")
        return v


def load_experiment(path: str | Path, scale: float = 1.0, output_dir: Path | None = None) -> ExperimentConfig:
    """Read and validate an experiment YAML; ``scale`` multiplies the prompt and evaluation set
    sizes (``--scale``).

    Raises:
        ConfigError: unreadable file, bad YAML, or invalid fields (with their path).
    """
    data = read_yaml(path, "experiment")
    if isinstance(data, dict) and output_dir is not None:
        data["output_dir"] = str(output_dir)
    return parse_experiment(data, str(path), scale)


def parse_experiment(data: Any, source: str = "<experiment>", scale: float = 1.0) -> ExperimentConfig:
    """Validate a mapping into an ExperimentConfig (see ``load_experiment``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        exp = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
    if scale <= 0:
        raise ConfigError(f"--scale must be > 0, got {scale}")
    run = dict(exp.run)
    run["output_dir"] = str(exp.output_dir / "run")
    if scale != 1.0:
        prompts = dict(run.get("prompts") or {})
        base = prompts.get("size") or (
            120 if prompts.get("source", "reasoning_gym") == "reasoning_gym" else None
        )
        if base is None:  # a file without `size`: scaling would invent a size
            raise ConfigError(f"{source}: --scale needs run.prompts.size for a {prompts['source']} source")
        prompts["size"] = max(4, round(base * scale))
        run["prompts"] = prompts
        if exp.eval.prompts.size:
            exp.eval.prompts.size = max(4, round(exp.eval.prompts.size * scale))
    exp.run = run
    cfg = parse_config(run, f"{source}: run")  # fail early on a bad run section
    if "family-strong" in exp.strategies:
        from persyn.strategies import family_members

        family_members(cfg.teacher_names, {t.name: t.family for t in cfg.teachers}, cfg.student.family)
    from persyn.train import SFTSettings

    try:
        SFTSettings.model_validate(exp.sft)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"{source}: sft")) from None
    return exp


class Experiment:
    """Runs one ExperimentConfig; see the module docstring. ``log`` prints progress lines."""

    def __init__(self, exp: ExperimentConfig, log=print):
        self.exp = exp
        self.all_train: list[str] = []
        self.eval_prompts: list = []  # set by _prepare_eval
        self.eval_id = ""
        self.n_eval_excluded = 0
        self.out = exp.output_dir
        self.log = log
        self.cfg: RunConfig = parse_config(exp.run, "experiment run")

    # -- datasets -----------------------------------------------------------------------------
    def datasets(self) -> dict[tuple[str, int], tuple[Path, dict]]:
        """Build every (strategy, seed) dataset; ``random`` and ``mix`` draw per seed, the
        others do not depend on the seed. Returns ``{(strategy, seed): (dataset path,
        strategy summary)}``."""
        from persyn.pipeline import Pipeline

        out: dict[tuple[str, int], tuple[Path, dict]] = {}
        with Pipeline(self.cfg) as pipe:
            for name in self.exp.strategies:
                if name in ("random", "mix"):
                    for seed in self.exp.seeds:
                        d = pipe.out / "strategies" / f"{name}-seed{seed}"
                        out[(name, seed)] = (d / "dataset.jsonl", pipe.build_strategy(name, d, seed=seed))
                else:
                    d = pipe.out / "strategies" / name
                    summary = pipe.build_strategy(name, d)
                    if name == "persyn":
                        pipe.export()  # the run's own outputs too (summary.json, report input)
                    for seed in self.exp.seeds:
                        out[(name, seed)] = (d / "dataset.jsonl", summary)
                self.log(f"dataset · {name}: {out[(name, self.exp.seeds[0])][1]['routing']}")
        return out

    # -- fine-tune and evaluate -------------------------------------------------------------
    def _student_id(self) -> list:
        # Everything about the student that changes a fine-tune or an evaluation.
        from persyn.assets import model_fingerprint

        st = self.cfg.student
        return [st.model, model_fingerprint(st.model), st.prompt_template]

    def _prepare_eval(self) -> None:
        """Load the held-out prompts once (without those any strategy trains on, when
        ``eval.exclude_training_prompts``) and fix ``eval_id``: the evaluation settings and the
        exact prompts evaluated (file contents, not its path), part of every evaluation key."""
        from persyn.core.hashing import stable_hash
        from persyn.evaluate import normalize_prompt
        from persyn.prompts import load_prompts

        with_answers = load_prompts(self.exp.eval.prompts, self.exp.eval.seed, require_answer=True)[0]
        prompts = with_answers
        if self.exp.eval.exclude_training_prompts:
            seen = {normalize_prompt(t) for t in self.all_train}
            prompts = [p for p in prompts if normalize_prompt(p.text) not in seen]
        self.n_eval_excluded = len(with_answers) - len(prompts)
        self.eval_prompts = prompts
        self.eval_id = stable_hash(
            [
                self.exp.eval.model_dump(mode="json", exclude={"prompts"}),
                [(p.id, p.text, p.answer) for p in prompts],
            ]
        )

    def _evaluate(self, model: str, key: str, train_prompts: list[str]) -> dict:
        from persyn.evaluate import evaluate, write_eval

        path = self.out / "evals" / f"{key}.json"
        if path.exists():
            return json.loads(path.read_text())["summary"]
        path.parent.mkdir(parents=True, exist_ok=True)
        res = evaluate(
            model,
            self.eval_prompts,
            train_prompts=train_prompts,
            batch_size=self.exp.eval.batch_size,
            max_new_tokens=self.exp.eval.max_new_tokens,
            prompt_template=self.cfg.student.prompt_template,
        )
        write_eval(res, path)
        return json.loads(path.read_text())["summary"]

    def train_and_evaluate(self, dataset: Path, seed: int, dataset_hash: str) -> dict:
        """Fine-tune the student on ``dataset`` with ``seed`` and evaluate it (cached by
        dataset content, SFT settings and seed)."""
        from persyn.core.hashing import stable_hash
        from persyn.evaluate import training_prompts
        from persyn.train import SFTSettings, sft

        settings = SFTSettings.model_validate({**self.exp.sft, "seed": seed})
        key = stable_hash([dataset_hash, settings.model_dump(), self._student_id(), self.eval_id])
        done = self.out / "evals" / f"{key}.json"
        if done.exists():
            record = json.loads(done.read_text())
            return record["summary"] | {"train": record.get("train")}
        model_dir = self.out / "models" / key
        info_path = model_dir / "persyn_sft.json"
        train = json.loads(info_path.read_text()) if info_path.exists() else None
        if train is None:
            train = sft(
                dataset,
                self.cfg.student.model,
                model_dir,
                settings,
                prompt_template=self.cfg.student.prompt_template,
            )
        summary = self._evaluate(str(model_dir), key, training_prompts(dataset) + self.all_train)
        record = json.loads(done.read_text())
        record["train"] = {k: train.get(k) for k in ("seconds", "steps", "final_loss", "n_examples")}
        from persyn.core.io import write_atomic

        write_atomic(done, json.dumps(record, indent=2) + "\n")
        if not self.exp.keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
        return summary | {"train": record["train"]}

    # -- the whole experiment -------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Datasets, the untouched student, every (strategy, seed) fine-tune; then sweeps and
        the results files. Returns the result rows."""
        start = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        sets = self.datasets()
        # Every prompt any strategy trains on (the prompt set itself, whatever was selected).
        from persyn.pipeline import Pipeline

        with Pipeline(self.cfg) as pipe:
            all_train = sorted({p.text for p in pipe.store.prompts()})
        self.all_train = all_train
        self._prepare_eval()
        if self.exp.eval.exclude_training_prompts:
            self.log(
                f"evaluation: {len(self.eval_prompts)} held-out prompts ({self.n_eval_excluded} dropped: in the training set)"
            )
        rows = []
        from persyn.core.hashing import stable_hash

        base_key = stable_hash(["student", self._student_id(), self.eval_id])
        base = self._evaluate(self.cfg.student.model, f"student-{base_key}", all_train)
        rows.append(_row("student (no SFT)", None, base, None, None))
        self.log(f"student (no SFT): accuracy {base['accuracy']:.3f}")
        for (name, seed), (path, summary) in sets.items():
            res = self.train_and_evaluate(path, seed, summary.dataset_hash)
            rows.append(_row(name, seed, res, summary, res.get("train")))
            self.log(
                f"{name} · seed {seed}: accuracy {res['accuracy']:.3f} [{res['ci_low']:.3f}, {res['ci_high']:.3f}]"
            )
        sweep_rows = self.sweeps()
        write_results(self.out, rows, sweep_rows, self.cfg.teacher_names, time.perf_counter() - start)
        return rows

    def sweeps(self) -> list[dict]:
        """Alpha and calibration-size sweeps on clones of the main store (nothing regenerated
        that the main run holds). One row per point: router top-1 / regret (and the best single
        teacher's) and routing; with ``sweeps.train`` also PerSyn's accuracy (first seed)."""
        from persyn.pipeline import Pipeline

        points = [("alpha", a) for a in self.exp.sweeps.alpha]
        points += [("calibration_size", c) for c in self.exp.sweeps.calibration_size]
        rows = []
        for kind, value in points:
            d = self.out / "sweeps" / f"{kind}={value}"
            result_path = d / "sweep.json"
            run = dict(self.exp.run, output_dir=str(d))
            if kind == "alpha":
                run["alpha"] = value
            else:
                run["calibration"] = {"size": value}
            cfg = parse_config(run, f"sweep {kind}={value}")
            from persyn.core.hashing import stable_hash

            point_key = stable_hash(
                [
                    cfg.model_dump(mode="json", exclude=WHERE_IT_RUNS),
                    self.exp.sweeps.train,
                    self.exp.sft,
                    self.eval_id,
                ]
            )
            if result_path.exists():
                done = json.loads(result_path.read_text())
                if done.get("key") == point_key:
                    rows.append(done)
                    continue
            with Store(self.out / "run" / "store.sqlite") as src:
                src.clone_to(d / "store.sqlite")
            with Pipeline(cfg) as pipe:
                if self.exp.sweeps.train:
                    summary = pipe.build_strategy("persyn")
                    routing = dict(Counter(t for t, _ in pipe.assignments().values()))
                else:
                    pipe.calibrate()
                    pipe.score()
                    pipe.train_router()
                    routing = dict(Counter(pipe.route().values()))
                ev = pipe.store.stage_done("train_router", pipe.store.get_meta("router_key") or "") or {}
                n_cal = len(pipe.store.prompts(calibration=True))
            row = {
                "key": point_key,
                "sweep": kind,
                "value": value,
                "n_calibration": n_cal,
                "top1": ev.get("top1"),
                "regret": ev.get("regret"),
                "best_single_top1": (ev.get("best_single_teacher") or {}).get("top1"),
                "best_single_regret": (ev.get("best_single_teacher") or {}).get("regret"),
                "routing": routing,
            }
            if self.exp.sweeps.train:
                res = self.train_and_evaluate(
                    d / "strategies/persyn/dataset.jsonl", self.exp.seeds[0], summary.dataset_hash
                )
                row.update(accuracy=res["accuracy"], ci_low=res["ci_low"], ci_high=res["ci_high"])
            from persyn.core.io import write_atomic

            write_atomic(result_path, json.dumps(row, indent=2) + "\n")
            rows.append(row)
            self.log(f"sweep {kind}={value}: top-1 {row['top1']}, regret {row['regret']}")
        return rows


def _row(name: str, seed: int | None, res: dict, summary: dict | None, train: dict | None) -> dict:
    return {
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
    }


def write_results(
    out: Path, rows: list[dict], sweeps: list[dict], teachers: list[str], seconds: float
) -> None:
    """``results.csv`` (one row per model), ``results.md`` (means over seeds, sweeps) and the
    plots ``accuracy.png``, ``routing.png``, ``generations.png`` and the sweep plots."""
    from persyn.core.io import write_atomic

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / "results.csv", buf.getvalue())
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["strategy"], []).append(r)
    agg = []
    for name, rs in groups.items():
        accs = [r["accuracy"] for r in rs]
        correct, n = sum(r["correct"] for r in rs), sum(r["n_eval"] for r in rs)
        from persyn.evaluate import wilson_interval

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
                "routing": json.loads(rs[0]["routing"]) if rs[0]["routing"] else {},
                "n_train": rs[0]["n_train"],
            }
        )
    md = [
        "# persyn experiment results",
        "",
        f"Wall time: {seconds / 60:.1f} min. Accuracy on {rows[0]['n_eval']} held-out prompts, greedy; "
        "mean ± std over seeds, and the Wilson 95% interval of all seeds' answers pooled.",
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
    md += [
        "",
        "## Prompts per teacher",
        "",
        "| strategy | " + " | ".join(teachers) + " |",
        "| --- |" + " ---: |" * len(teachers),
    ]
    for a in agg:
        if a["routing"]:
            md.append(
                f"| {a['strategy']} | " + " | ".join(str(a["routing"].get(t, 0)) for t in teachers) + " |"
            )
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
    write_atomic(out / "results.md", "\n".join(md) + "\n")
    _plots(out, agg, sweeps, teachers)


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _plots(out: Path, agg: list[dict], sweeps: list[dict], teachers: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [a["strategy"] for a in agg]
    x = range(len(agg))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(agg)), 4))
    means = [a["mean"] for a in agg]
    err = [[a["mean"] - a["pooled_low"] for a in agg], [a["pooled_high"] - a["mean"] for a in agg]]
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


__all__ = ["ExperimentConfig", "Experiment", "load_experiment", "parse_experiment", "PersynError"]
