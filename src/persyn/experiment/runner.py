"""``Experiment``: runs one ``ExperimentConfig``: every strategy's dataset, the untouched
student's and every fine-tuned student's evaluation, the sweeps, then the results files."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

from persyn.config import RunConfig, StudentConfig
from persyn.core.hashing import stable_hash
from persyn.core.io import write_atomic
from persyn.core.summary import StrategySummary
from persyn.experiment.comparisons import UNTRAINED, cross_name
from persyn.experiment.config import ExperimentConfig, deep_merge
from persyn.experiment.finetune import StudentTrainer
from persyn.experiment.records import Progress, RecordCopy, source_revision
from persyn.experiment.results import result_row, write_results
from persyn.experiment.validation import alpha_by_validation, epochs_by_validation, stored_router_figures
from persyn.selection.verified import split_verified
from persyn.store import Store
from persyn.students import seed_store, student_configs


def schedule(
    sets: dict, seeds: list[int], students: list[str], optional: list[str]
) -> list[tuple[str, str, int]]:
    """The order of the main fine-tunes (``sets`` keys ``(student, strategy, seed)``), so that
    what a shortened run leaves out is the least needed: every non-``optional`` strategy
    before the optional ones, and within each, seed by seed (a seed's students in order)."""
    return sorted(sets, key=lambda k: (k[1] in optional, seeds.index(k[2]), students.index(k[0])))


def picks_best_single(exp: ExperimentConfig, student: str, name: str) -> bool:
    """Whether strategy ``name`` is also evaluated on the validation split, as a candidate for
    the Oracle-gain ratio's best single teacher (``comparisons.gain_arms``: a single-teacher
    strategy, or with the verified Oracle also its verified dataset), which only a student with
    an Oracle arm needs (without one the evaluation would feed nothing)."""
    from persyn.experiment.comparisons import gain_arms

    return name in gain_arms(exp.strategies_for(student))[1]


def check_budgets(exp: ExperimentConfig, trainer: StudentTrainer, students: dict, sets: dict, log) -> None:
    """Check every dataset of ``sets`` (``{(student, strategy, seed): (path, summary)}``)
    against the budget of each split it will be evaluated on (``StudentTrainer.check_budget``),
    before any fine-tune or evaluation: the test split; the validation split for the best
    single teacher's candidates (``picks_best_single``) and the SFT-length curve's datasets
    (the first student's, first seed). Logs each dataset's longest response.

    Raises:
        ConfigError: a budget is too small (``length_check: refuse``).
    """
    on_validation = "validation" in trainer.splits
    sw, first = exp.sweeps, next(iter(students))
    for (student, name, seed), (path, summary) in sets.items():
        longest = trainer.check_budget(students[student], path, summary.dataset_hash, "test")
        log(f"budget · {student} · {name}: longest response {longest} tokens")
        curve = bool(sw.sft_epochs) and name in sw.curve_strategies() and seed == exp.seeds[0]
        if on_validation and (picks_best_single(exp, student, name) or (curve and student == first)):
            trainer.check_budget(students[student], path, summary.dataset_hash, "validation")


def has_headroom(difference: dict) -> bool:
    """The stop rule's test: True when A − B's prompt-only 95% interval lies above 0
    (``difference``: a ``paired_difference`` row, with ``prompt_low``). An interval that
    contains 0, or lies below it (A trains a worse student than B), leaves the setting no
    headroom."""
    return difference["prompt_low"] > 0


def dataset_key(cfg: RunConfig, name: str) -> str:
    """The key a recorded dataset is kept under: strategy ``name`` of the run ``cfg`` (its
    result-key dump, seed included, without its output folder). A config that would build the
    dataset differently has another key, so its recorded dataset is not reused."""
    dump = cfg.key_dump()
    dump.pop("output_dir", None)
    return stable_hash([dump, name])


def variant_config(exp, name: str, cfg: RunConfig, seed: int) -> RunConfig:
    """The run of variant ``name`` of experiment config ``exp`` (``variants[name]`` over the
    base run) beside ``cfg``'s run, in its ``variants/NAME``."""
    over = exp.variants[name]
    d = Path(cfg.output_dir) / "variants" / re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
    raw = deep_merge(dict(exp.run), over)
    raw.pop("students", None)
    raw.update(
        seed=seed,
        output_dir=str(d),
        student=cfg.student.model_dump(mode="json"),
        alpha=over.get("alpha", cfg.alpha),
    )
    return exp.parse_run(raw, f"variant {name}")


def dataset_places(exp, names: list[str], cfg: RunConfig, seed: int) -> dict[str, tuple[RunConfig, Path]]:
    """Per strategy name, the run that builds its dataset (``cfg``, or a variant's run) and
    the dataset's folder (``strategies/NAME``, or the variant's ``strategies/persyn``)."""
    where = {n: (cfg, Path(cfg.output_dir) / "strategies" / n) for n in names if n not in exp.variants}
    for n in [n for n in names if n in exp.variants]:
        vcfg = variant_config(exp, n, cfg, seed)
        where[n] = (vcfg, Path(vcfg.output_dir) / "strategies" / "persyn")
    return where


def with_cross_datasets(exp, out: dict) -> dict:
    """``out`` (``{(student, strategy, seed): built}``) with every other student's PerSyn
    dataset added to each student (``cross_name(owner)``), on the seeds both have."""
    persyn = {(owner, seed): built for (owner, name, seed), built in out.items() if name == "persyn"}
    for student in dict.fromkeys(s for s, _, _ in list(out)):
        for (owner, seed), built in persyn.items():
            if owner != student and seed in exp.seeds_for(student):
                out[(student, cross_name(owner), seed)] = built
    return out


class Experiment:
    """Runs one ExperimentConfig (see ``persyn.experiment``); ``log`` takes progress lines;
    ``records``: a directory (e.g. in a git checkout) the finished records are copied to as they
    come and restored from on a restart (``records.RecordCopy``); ``source``: the config's path,
    named in ``results.md``.

    Raises:
        ConfigError: the run section is invalid (on construction).
    """

    def __init__(
        self, exp: ExperimentConfig, log=print, records: Path | None = None, source: str = "<experiment>"
    ):
        self.exp = exp
        self.source = source
        self.records = RecordCopy(exp.output_dir, records, log)
        self.rows: list[dict] = []
        self.selection: list[dict] = []  # single-teacher strategies on the validation split
        self.validation_rows: list[dict] = []
        self.trainer = StudentTrainer(exp.output_dir, exp.sft, exp.keep_models, log)
        self.alpha: dict[str, float] = {}  # a student's α chosen on validation (choose_alpha)
        self.epochs: float | None = None  # the SFT epochs chosen on validation (choose_epochs)
        self.stopped: str | None = None  # why the stop rule ended the run early
        self.chain: Path | None = None  # the last store made: the next run's store starts from it
        self.out = exp.output_dir
        self.log = log
        self.cfg: RunConfig = exp.parse_run(exp.run, "experiment run")

    # -- datasets -----------------------------------------------------------------------------
    def seed_config(self, seed: int) -> RunConfig:
        """The run of one seed: the base run with ``seed`` and ``output_dir``
        ``OUTPUT_DIR/run/seed-SEED`` (its prompt set pinned by ``prompts.seed``)."""
        run = dict(self.exp.run, seed=seed, output_dir=str(self.out / "run" / f"seed-{seed}"))
        return self.exp.parse_run(run, f"experiment run, seed {seed}")

    def student_runs(self, seed: int) -> list[tuple[str, RunConfig]]:
        """``(student name, one-student run)`` of one seed: the seed's run itself for a
        ``student:`` config (named ``student``, or its ``name``), else one run per student of
        ``students:`` in ``seed-SEED/students/NAME`` (``persyn.students``)."""
        cfg = self.seed_config(seed)
        runs = [(cfg.student.name or "student", cfg)] if cfg.students is None else student_configs(cfg)
        return [
            (name, one.model_copy(update={"alpha": self.alpha.get(name, one.alpha)})) for name, one in runs
        ]

    def chained(self, run_dir: Path) -> Path:
        """The store of a new run in ``run_dir``, started as a copy of the last one made (so a
        teacher response is never generated twice in the experiment); it becomes the last."""
        store = Path(run_dir) / "store.sqlite"
        if self.chain is not None:
            seed_store(self.chain, store)
        self.chain = store
        return store

    def variant(self, name: str, vcfg: RunConfig, seed: int) -> StrategySummary:
        """PerSyn's dataset on variant ``name``'s run ``vcfg`` (``variant_config``; its store
        chained like every run's), in that run's ``strategies/persyn``."""
        from persyn.pipeline import Pipeline

        self.chained(Path(vcfg.output_dir))
        with Pipeline(vcfg) as pipe:
            summary = pipe.build_strategy("persyn", Path(vcfg.output_dir, "strategies", "persyn"), seed=seed)
            self.log(f"dataset · seed {seed} · {vcfg.student.name or 'student'} · {name}: {summary.routing}")
        return summary

    def datasets(self) -> dict[tuple[str, str, int], tuple[Path, StrategySummary]]:
        """``{(student, strategy, seed): (dataset path, summary)}`` for every dataset
        (``strategy_seeds``; ``NAME-verified``: NAME's verified one; ``with_cross_datasets``).
        Each seed and student is its own run, its store a copy of the previous run's (no
        response generated twice); a dataset recorded under its ``dataset_key`` is not rebuilt."""
        from persyn.pipeline import Pipeline

        out: dict[tuple[str, str, int], tuple[Path, StrategySummary]] = {}
        for seed in self.exp.seeds:
            for student, cfg in self.student_runs(seed):
                if seed not in self.exp.seeds_for(student):
                    continue
                names = [n for n in self.exp.strategies_for(student) if self.exp.has_seed(n, seed)]
                where = dataset_places(self.exp, names, cfg, seed)
                keys = {n: dataset_key(c, n) for n, (c, _) in where.items()}
                todo = []
                for n in names:  # a dataset recorded by this config is not built again
                    summary = self.records.dataset(student, n, seed, keys[n], where[n][1])
                    if summary is None:
                        todo.append(n)
                        continue
                    out[(student, n, seed)] = (where[n][1] / "dataset.jsonl", summary)
                    self.log(f"dataset · seed {seed} · {student} · {n}: {summary.routing} (recorded earlier)")
                plain = [n for n in todo if n not in self.exp.variants]
                if plain:
                    self.chained(cfg.output_dir)
                    with Pipeline(cfg) as pipe:
                        for name in plain:
                            d = where[name][1]
                            strategy, verified = split_verified(name)  # car-verified: car's, verified
                            built = pipe.build_strategy(strategy, d, seed=seed, verified=verified)
                            out[(student, name, seed)] = (d / "dataset.jsonl", built)
                            self.records.save_dataset(student, name, seed, keys[name], d)
                            if name == "persyn":
                                pipe.export()  # the run's own outputs too (summary.json, report input)
                                self.records.save_run(student, seed, Path(cfg.output_dir))
                            self.log(f"dataset · seed {seed} · {student} · {name}: {built.routing}")
                        self.log(f"seed {seed} · {student}: {pipe.new_generations} responses generated")
                for name in [n for n in todo if n in self.exp.variants]:
                    vcfg, d = where[name]
                    out[(student, name, seed)] = (d / "dataset.jsonl", self.variant(name, vcfg, seed))
                    self.records.save_dataset(student, name, seed, keys[name], d)
        return with_cross_datasets(self.exp, out)

    # -- the whole experiment -------------------------------------------------------------------
    def students(self) -> dict[str, StudentConfig]:
        """``{name: student}`` in config order."""
        return {name: cfg.student for name, cfg in self.student_runs(self.exp.seeds[0])}

    def run(self) -> list[dict]:
        """The evaluation splits; with a validation split, the α sweep (which fixes each
        student's α when ``sweeps.choose_alpha``) and the SFT-epochs curve; every dataset, each
        checked against the evaluation budget before any fine-tune; the untouched students;
        every (student, strategy, seed) fine-tune (the single-teacher ones also evaluated on
        the validation split, where the Oracle-gain ratio's best single teacher is chosen, when
        there is an oracle arm: ``picks_best_single``); then the router sweeps and the results
        files, which are also rewritten after every evaluation (a partial ``results.md`` while
        the run goes on). Returns the result rows."""
        from persyn.prompts import load_prompts

        start = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        self.records.restore()
        # Every prompt any strategy trains on: the whole pool (with prompts.sample, seeds draw from it).
        all_train = sorted({p.text for p in load_prompts(_pool(self.cfg.prompts), self.cfg.seed, False)[0]})
        self.trainer.prepare(all_train, self.exp.eval, self.exp.validation)
        test = self.trainer.splits["test"]
        if self.exp.eval.exclude_training_prompts:
            self.log(
                f"evaluation: {len(test.prompts)} held-out prompts ({test.excluded} dropped: in the training set)"
            )
        students = self.students()
        on_validation = "validation" in self.trainer.splits
        self.validation_rows = alpha_by_validation(self) if on_validation else []
        sets = self.datasets()
        check_budgets(self.exp, self.trainer, students, sets, self.log)  # fail before any fine-tune
        self.validation_rows += epochs_by_validation(self, sets)
        self.rows, self.selection = [], []
        for student, st in students.items():
            base = self.trainer.evaluate_untrained(st)
            self.rows.append(result_row(UNTRAINED, None, base, None, None, student=student))
            self.log(f"{student} · {UNTRAINED}: accuracy {base['accuracy']:.3f}")
        order = schedule(sets, self.exp.seeds, list(self.students()), self.exp.optional)
        progress = Progress(len(order), self.log)
        for i, (student, name, seed) in enumerate(order):
            path, summary = sets[(student, name, seed)]
            cached = self.trainer.is_done(students[student], seed, summary.dataset_hash)
            if on_validation and picks_best_single(self.exp, student, name):
                val = self.trainer.train_and_evaluate(
                    students[student], path, seed, summary.dataset_hash, "validation", keep=True
                )
                self.selection.append(result_row(name, seed, val, summary, val.get("train"), student=student))
            res = self.trainer.train_and_evaluate(students[student], path, seed, summary.dataset_hash)
            self.rows.append(result_row(name, seed, res, summary, res.get("train"), student=student))
            progress.step(
                f"{student} · {name} · seed {seed}: accuracy {res['accuracy']:.3f} "
                f"[{res['ci_low']:.3f}, {res['ci_high']:.3f}]",
                cached,
            )
            if self.no_headroom(order[: i + 1]):
                break
            self.write(time.perf_counter() - start, [], progress.line())
        sweep_rows = [] if self.stopped else self.sweeps()
        self.trainer.remove_models()
        self.write(time.perf_counter() - start, sweep_rows, None)
        return self.rows

    def no_headroom(self, done: list[tuple[str, str, int]]) -> bool:
        """The stop rule (``headroom: [A, B]``): once the first student's A and B are both
        evaluated on the first seed, and only then, True (and ``stopped`` set) when A − B's
        prompt-only 95% interval is not above 0 (``has_headroom``): the setting has no
        headroom."""
        if not self.exp.headroom or self.stopped is not None:
            return False
        student, seed = next(iter(self.students())), self.exp.seeds[0]
        a, b = self.exp.headroom
        need = {(student, a, seed), (student, b, seed)}
        if not need <= set(done) or done[-1] not in need:
            return False
        from persyn.experiment.comparisons import correctness, pair
        from persyn.experiment.paired import paired_difference

        rows = [
            r for r in self.rows if r["student"] == student and r["seed"] == seed and r["strategy"] in (a, b)
        ]
        ids = [p.id for p in self.trainer.splits["test"].prompts]
        found = correctness(self.out, rows, ids)
        d = paired_difference(*pair(found[a], found[b]))
        verdict = f"{a} − {b} on seed {seed}: {d['mean']:+.3f}, prompt-only 95% [{d['prompt_low']:+.3f}, {d['prompt_high']:+.3f}]"
        if not has_headroom(d):
            where = "contains 0" if d["prompt_high"] >= 0 else "is below 0"
            self.stopped = f"stop rule: {verdict} {where}, so the setting has no headroom; the run stopped"
            self.log(self.stopped)
            return True
        self.log(f"stop rule passed: {verdict}")
        return False

    def write(self, seconds: float, sweep_rows: list[dict], progress: str | None) -> None:
        """Write the results files from the rows so far (``progress``: the line of a run still
        going, None when done) and copy the finished records to ``records``."""
        test, val = self.trainer.splits["test"], self.trainer.splits.get("validation")
        notes = [f"Config: `{self.source}`; persyn {source_revision()}."]
        if self.epochs is not None:
            notes.append(f"SFT epochs chosen on validation: {self.epochs}.")
        if self.stopped:
            notes.append(f"**{self.stopped}.**")
        if progress:
            notes.append(
                f"**Partial results** (written after each fine-tune; kept by a stopped run): {progress}."
            )
        write_atomic(self.out / "progress.txt", (progress or "done") + "\n")
        write_results(
            self.out,
            self.rows,
            sweep_rows,
            self.cfg.teacher_names,
            seconds,
            [p.id for p in test.prompts],
            self.validation_rows,
            self.alpha,
            primary=self.exp.primary_comparisons(),
            selection=self.selection,
            validation_ids=[p.id for p in val.prompts] if val else None,
            notes=notes,
        )
        self.records.save()

    def sweeps(self) -> list[dict]:
        """Alpha and calibration-size sweeps on clones of the main store (nothing regenerated
        that the main run holds). One row per point: router top-1 / regret (and the best single
        teacher's) and routing; with ``sweeps.train`` also PerSyn's accuracy (first seed)."""
        from persyn.pipeline import Pipeline

        # With a validation split the α sweep is by the student's accuracy (validation.alpha_by_validation).
        points = [] if "validation" in self.trainer.splits else [("alpha", a) for a in self.exp.sweeps.alpha]
        points += [("calibration_size", c) for c in self.exp.sweeps.calibration_size]
        # The sweeps are the first student's, on a copy of its first seed's store.
        _, first = self.student_runs(self.exp.seeds[0])[0]
        rows = []
        for kind, value in points:
            d = self.out / "sweeps" / f"{kind}={value}"
            result_path = d / "sweep.json"
            run = dict(self.exp.run, output_dir=str(d))
            if run.pop("students", None):
                run["student"] = first.student.model_dump(mode="json")
            if kind == "alpha":
                run["alpha"] = value
            else:
                run["calibration"] = {"size": value}
            cfg = self.exp.parse_run(run, f"sweep {kind}={value}")
            point_key = stable_hash(
                [
                    cfg.key_dump(),
                    self.exp.sweeps.train,
                    self.exp.sft_as_given(),
                    self.trainer.splits["test"].id,
                ]
            )
            if result_path.exists():
                done = json.loads(result_path.read_text())
                if done.get("key") == point_key:
                    rows.append(done)
                    continue
            with Store(first.output_dir / "store.sqlite") as src:
                src.clone_to(d / "store.sqlite")
            with Pipeline(cfg) as pipe:
                if self.exp.sweeps.train:
                    summary = pipe.build_strategy("persyn")
                    routing = dict(Counter(t for t, _ in pipe.assignments().values()))
                else:
                    pipe.run_stages(through="route")
                    routing = dict(Counter(t for t, _ in pipe.assignments().values()))
                figures = stored_router_figures(pipe)
            row = {"key": point_key, "sweep": kind, "value": value, **figures, "routing": routing}
            if self.exp.sweeps.train:
                res = self.trainer.train_and_evaluate(
                    first.student,
                    d / "strategies/persyn/dataset.jsonl",
                    self.exp.seeds[0],
                    summary.dataset_hash,
                )
                row.update(accuracy=res["accuracy"], ci_low=res["ci_low"], ci_high=res["ci_high"])
            write_atomic(result_path, json.dumps(row, indent=2) + "\n")
            rows.append(row)
            self.log(f"sweep {kind}={value}: top-1 {row['top1']}, regret {row['regret']}")
        return rows


def _pool(prompts):
    """The prompt set before ``prompts.sample`` draws a seed's share of it."""
    return prompts.model_copy(update={"sample": None})
