"""``Experiment``: runs one ``ExperimentConfig``: every strategy's dataset, the untouched
student's and every fine-tuned student's evaluation, the sweeps, then the results files."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

from persyn.config import WHERE_IT_RUNS, RunConfig, StudentConfig, parse_config
from persyn.core.hashing import stable_hash
from persyn.core.io import write_atomic
from persyn.core.summary import StrategySummary
from persyn.experiment.comparisons import UNTRAINED
from persyn.experiment.config import ExperimentConfig
from persyn.experiment.results import result_row, write_results
from persyn.store import Store
from persyn.students import seed_store, student_configs


def cross_name(owner: str) -> str:
    """The strategy name of another student's PerSyn dataset (the personalisation matrix)."""
    return f"persyn (for {owner})"


class Experiment:
    """Runs one ExperimentConfig (see ``persyn.experiment``); ``log`` takes progress lines.

    Raises:
        ConfigError: the run section is invalid (on construction).
    """

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
    def seed_config(self, seed: int) -> RunConfig:
        """The run of one seed: the base run with ``seed`` and ``output_dir``
        ``OUTPUT_DIR/run/seed-SEED`` (its prompt set pinned by ``prompts.seed``)."""
        run = dict(self.exp.run, seed=seed, output_dir=str(self.out / "run" / f"seed-{seed}"))
        return parse_config(run, f"experiment run, seed {seed}")

    def student_runs(self, seed: int) -> list[tuple[str, RunConfig]]:
        """``(student name, one-student run)`` of one seed: the seed's run itself for a
        ``student:`` config (named ``student``, or its ``name``), else one run per student of
        ``students:`` in ``seed-SEED/students/NAME`` (``persyn.students``)."""
        cfg = self.seed_config(seed)
        if cfg.students is None:
            return [(cfg.student.name or "student", cfg)]
        return student_configs(cfg)

    def datasets(self) -> dict[tuple[str, str, int], tuple[Path, StrategySummary]]:
        """Build every (student, strategy, seed) dataset, each seed and student in its own run
        (calibration draw, learnability, router, random / mix draws). A run's store starts as
        a copy of the previous run's, so a teacher response is never generated twice. With
        several students, each also gets every other student's PerSyn dataset (``cross_name``).
        Returns ``{(student, strategy, seed): (dataset path, strategy summary)}``."""
        from persyn.pipeline import Pipeline

        out: dict[tuple[str, str, int], tuple[Path, StrategySummary]] = {}
        previous: Path | None = None
        for seed in self.exp.seeds:
            for student, cfg in self.student_runs(seed):
                store = cfg.output_dir / "store.sqlite"
                if previous is not None:
                    seed_store(previous, store)
                with Pipeline(cfg) as pipe:
                    for name in self.exp.strategies_for(student):
                        d = pipe.out / "strategies" / name
                        out[(student, name, seed)] = (
                            d / "dataset.jsonl",
                            pipe.build_strategy(name, d, seed=seed),
                        )
                        if name == "persyn":
                            pipe.export()  # the run's own outputs too (summary.json, report input)
                        self.log(
                            f"dataset · seed {seed} · {student} · {name}: {out[(student, name, seed)][1].routing}"
                        )
                    self.log(f"seed {seed} · {student}: {pipe.new_generations} teacher responses generated")
                previous = store
        students = list(dict.fromkeys(s for s, _, _ in out))
        for student in students:
            for owner in students:
                for seed in self.exp.seeds:
                    if owner != student and (owner, "persyn", seed) in out:
                        out[(student, cross_name(owner), seed)] = out[(owner, "persyn", seed)]
        return out

    # -- fine-tune and evaluate -------------------------------------------------------------
    @staticmethod
    def _student_id(st: StudentConfig) -> list:
        # Everything about the student that changes a fine-tune or an evaluation.
        from persyn.assets import model_fingerprint

        return [st.model, model_fingerprint(st.model), st.prompt_template]

    def _prepare_eval(self) -> None:
        """Load the held-out prompts once (without those any strategy trains on, when
        ``eval.exclude_training_prompts``) and fix ``eval_id``: the evaluation settings and the
        exact prompts evaluated (file contents, not its path), part of every evaluation key."""
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

    def _evaluate(self, model: str, key: str, train_prompts: list[str], template: str) -> dict:
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
            prompt_template=template,
        )
        write_eval(res, path)
        return json.loads(path.read_text())["summary"]

    def evaluate_untrained(self, st: StudentConfig) -> dict:
        """The untouched student's evaluation (cached), with its ``eval_key``."""
        key = f"student-{stable_hash(['student', self._student_id(st), self.eval_id])}"
        return self._evaluate(st.model, key, self.all_train, st.prompt_template) | {"eval_key": key}

    def train_and_evaluate(self, st: StudentConfig, dataset: Path, seed: int, dataset_hash: str) -> dict:
        """Fine-tune student ``st`` on ``dataset`` with ``seed`` and evaluate it (cached by
        dataset content, SFT settings, student and seed). Returns the evaluation summary with ``train``
        (the fine-tune's record) and ``eval_key`` (``evals/EVAL_KEY.json`` holds the
        per-prompt records)."""
        from persyn.evaluate import training_prompts
        from persyn.train import SFTSettings, sft

        settings = SFTSettings.model_validate({**self.exp.sft, "seed": seed})
        key = stable_hash([dataset_hash, settings.model_dump(), self._student_id(st), self.eval_id])
        done = self.out / "evals" / f"{key}.json"
        if done.exists():
            record = json.loads(done.read_text())
            return record["summary"] | {"train": record.get("train"), "eval_key": key}
        model_dir = self.out / "models" / key
        info_path = model_dir / "persyn_sft.json"
        train = json.loads(info_path.read_text()) if info_path.exists() else None
        if train is None:
            train = sft(dataset, st.model, model_dir, settings, prompt_template=st.prompt_template)
        summary = self._evaluate(
            str(model_dir), key, training_prompts(dataset) + self.all_train, st.prompt_template
        )
        record = json.loads(done.read_text())
        record["train"] = {k: train.get(k) for k in ("seconds", "steps", "final_loss", "n_examples")}
        write_atomic(done, json.dumps(record, indent=2) + "\n")
        if not self.exp.keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
        return summary | {"train": record["train"], "eval_key": key}

    # -- the whole experiment -------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Datasets, the untouched student, every (strategy, seed) fine-tune; then sweeps and
        the results files. Returns the result rows."""
        start = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        sets = self.datasets()
        # Every prompt any strategy trains on (the prompt set itself, whatever was selected).
        from persyn.pipeline import Pipeline

        all_train: set[str] = set()
        students: dict[str, StudentConfig] = {}
        for seed in self.exp.seeds:
            for student, cfg in self.student_runs(seed):
                students[student] = cfg.student
                with Pipeline(cfg) as pipe:
                    all_train |= {p.text for p in pipe.store.prompts()}
        self.all_train = sorted(all_train)
        self._prepare_eval()
        if self.exp.eval.exclude_training_prompts:
            self.log(
                f"evaluation: {len(self.eval_prompts)} held-out prompts ({self.n_eval_excluded} dropped: in the training set)"
            )
        rows = []
        for student, st in students.items():
            base = self.evaluate_untrained(st)
            rows.append(result_row(UNTRAINED, None, base, None, None, student=student))
            self.log(f"{student} · {UNTRAINED}: accuracy {base['accuracy']:.3f}")
        for (student, name, seed), (path, summary) in sets.items():
            res = self.train_and_evaluate(students[student], path, seed, summary.dataset_hash)
            rows.append(result_row(name, seed, res, summary, res.get("train"), student=student))
            self.log(
                f"{student} · {name} · seed {seed}: accuracy {res['accuracy']:.3f} "
                f"[{res['ci_low']:.3f}, {res['ci_high']:.3f}]"
            )
        sweep_rows = self.sweeps()
        write_results(
            self.out,
            rows,
            sweep_rows,
            self.cfg.teacher_names,
            time.perf_counter() - start,
            [p.id for p in self.eval_prompts],
        )
        return rows

    def sweeps(self) -> list[dict]:
        """Alpha and calibration-size sweeps on clones of the main store (nothing regenerated
        that the main run holds). One row per point: router top-1 / regret (and the best single
        teacher's) and routing; with ``sweeps.train`` also PerSyn's accuracy (first seed)."""
        from persyn.pipeline import Pipeline

        points = [("alpha", a) for a in self.exp.sweeps.alpha]
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
            cfg = parse_config(run, f"sweep {kind}={value}")
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
            with Store(first.output_dir / "store.sqlite") as src:
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
