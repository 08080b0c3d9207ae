"""The PerSyn pipeline (Route-then-Generate), stage by stage, resumable through the store.

    prepare → calibrate → score → train_router → route → generate → export

Each stage skips what the store (``OUTPUT_DIR/store.sqlite``) already holds, so re-running a
command after a crash resumes: a generation or score is computed once per cache key, the router
is retrained only when its inputs changed, and exported files are rewritten atomically.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from persyn.config import RunConfig, TeacherConfig
from persyn.errors import PersynError
from persyn.faults import crash_point
from persyn.prompts import Prompt, load_prompts
from persyn.scoring.combine import Candidate, combine, oracle_pick, pair_labels
from persyn.scoring.learnability import LearnabilityScorer, ScoreItem
from persyn.scoring.quality import make_quality_scorer
from persyn.store import Generation, Store, stable_hash

STAGES = [
    "prepare",
    "calibrate",
    "score",
    "train_router",
    "route",
    "generate",
    "export",
    "generate_then_select",
]


def _bar(total: int, desc: str, unit: str = "item"):
    # Progress bars with an ETA on stderr; disabled when there is nothing to do.
    return tqdm(total=total, desc=desc, unit=unit, disable=total == 0, file=sys.stderr, dynamic_ncols=True)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PersynError(
            f"{path}: cannot write ({exc}); the store is intact: re-run to export again"
        ) from exc


NOT_IN_KEY = {
    "resources",
    "batch_size",
    "family",
    "api_key_env",
    "concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "timeout",
    "max_retries",
    "price_input_per_million",
    "price_output_per_million",
}


def generation_key(teacher: TeacherConfig, prompt: Prompt, seed: int) -> str:
    """Cache key of one teacher response: hashes the teacher's name and every setting that
    changes its output (model and its weights' fingerprint, templates, decoding, stop strings,
    the seed when sampling) and
    the prompt text (for ``reference`` also the reference solution and answer)."""
    from persyn.assets import model_fingerprint

    # Throughput, retry and price settings do not change a response: not in the key.
    settings = teacher.model_dump(
        exclude=NOT_IN_KEY | ({"base_url"} if teacher.engine != "openai" else set())
    )
    if teacher.model and teacher.engine in ("transformers", "llamacpp"):
        settings["weights"] = model_fingerprint(teacher.model)
        from persyn.tokenization import bos_policy_key

        settings["bos"] = bos_policy_key(teacher.model)  # the tokenization rule (issue #17)
    if teacher.engine == "reference":
        payload: Any = [prompt.text, prompt.solution, prompt.answer]
        if prompt.metadata.get("expression"):  # the terse / verbose styles spell it out
            payload.append(prompt.metadata["expression"])
    else:
        payload = [prompt.text, seed if teacher.temperature > 0 else None]
    return stable_hash(["generation/v1", settings, payload])


class Pipeline:
    """One PerSyn run on one output directory.

    Args:
        cfg: the validated run configuration.
        console: a rich Console for the closing table (default: stdout).
    """

    def __init__(self, cfg: RunConfig, console=None):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        if self.out.exists() and not self.out.is_dir():
            raise PersynError(f"output_dir: {self.out} exists and is not a directory")
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_output_dir(self.out)
        self.store = Store(self.out / "store.sqlite")
        self.console = console
        self.new_generations = 0
        self._executor = None  # made on first use: exporting needs no Ray session
        self._learnability = LearnabilityScorer(cfg.student)
        self._prepared = False

    # -- bookkeeping --------------------------------------------------------------------------
    @contextmanager
    def _timed(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            key = f"seconds.{stage}"
            prev = float(self.store.get_meta(key) or 0.0)
            self.store.set_meta(key, f"{prev + time.perf_counter() - start:.3f}")

    @property
    def executor(self):
        """Where generation and scoring run (``cfg.executor``: local, or Ray)."""
        if self._executor is None:
            from persyn.executor import make_executor

            self._executor = make_executor(self.cfg)
        return self._executor

    def key_of(self, teacher: TeacherConfig, prompt: Prompt) -> str:
        return generation_key(teacher, prompt, self.cfg.seed)

    # -- stages -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load the prompts, draw the calibration set (seeded) and store both.

        Raises:
            InputError / ConfigError: bad prompt file, or a calibration size that does not fit.
        """
        if self._prepared:
            return
        with self._timed("prepare"):
            cfg = self.cfg
            needs_answer = cfg.quality.kind == "verifier" or any(
                t.engine == "reference" for t in cfg.teachers
            )
            prompts, report = load_prompts(cfg.prompts, cfg.seed, require_answer=needs_answer)
            n_cal = cfg.calibration.count(len(prompts))
            rng = random.Random(cfg.seed)
            cal_ids = [prompts[i].id for i in sorted(rng.sample(range(len(prompts)), n_cal))]
            fingerprint = stable_hash([[(p.id, p.text, p.answer, p.solution) for p in prompts], cal_ids])
            if self.store.get_meta("prompt_set") != fingerprint:
                self.store.replace_prompts(prompts, cal_ids)
                self.store.set_meta("prompt_set", fingerprint)
            self.store.set_meta("load_report", json.dumps(report.as_dict()))
            # The config this output dir was made with, for commands that take only the dir.
            write_atomic(self.out / "run_config.json", cfg.model_dump_json(indent=2) + "\n")
            # The seed each stage derives its randomness from (recorded for reproducibility).
            seeds = {
                "prompts": cfg.seed,
                "calibration_draw": cfg.seed,
                "sampling": cfg.seed,
                "router_split": cfg.seed + 1,
                "router_training": cfg.seed,
            }
            self.store.set_meta("seeds", json.dumps(seeds))
            if report.empty or report.duplicates:
                tqdm.write(
                    f"prompts: skipped {len(report.empty)} empty and {len(report.duplicates)} duplicate "
                    "prompt(s) (listed in summary.json)",
                    file=sys.stderr,
                )
        self._prepared = True

    def _generate(self, work: list[tuple[TeacherConfig, list[Prompt]]], phase: str) -> None:
        """Each teacher of ``work`` answers its prompts, except those answered in the store
        (failed items are retried); every batch is stored as soon as it is back."""
        from persyn.executor import teacher_job

        done = self.store.generation_keys(status="ok")
        keys: dict[str, dict[str, str]] = {}
        jobs = []
        for teacher, prompts in work:
            keys[teacher.name] = {p.id: self.key_of(teacher, p) for p in prompts}
            todo = [p for p in prompts if keys[teacher.name][p.id] not in done]
            if todo:
                jobs.append(teacher_job(self.cfg, teacher, todo))
        if not jobs:
            return
        names = ", ".join(j.tag.name for j in jobs)
        with _bar(sum(len(j.items) for j in jobs), f"{phase} · {names}", "response") as bar:
            # closing(): a failed store write ends the Ray workers now, not at garbage collection
            with closing(self.executor.run(jobs)) as results:
                for job, batch in results:
                    teacher = job.tag
                    gens = [
                        Generation(
                            keys[teacher.name][pid],
                            pid,
                            teacher.name,
                            c.text,
                            "failed" if c.error else "ok",
                            c.error,
                            c.prompt_tokens,
                            c.completion_tokens,
                            c.finish_reason,
                            c.seconds,
                            phase,
                        )
                        for pid, c in batch
                    ]
                    self.store.add_generations(gens)
                    self.new_generations += len(gens)
                    bar.update(len(gens))
                    crash_point(f"{phase}.batch")

    def calibrate(self) -> None:
        """Every teacher answers every calibration prompt (what is stored is skipped)."""
        self.prepare()
        self.preflight()
        with self._timed("calibrate"):
            cal = self.store.prompts(calibration=True)
            self._generate([(t, cal) for t in self.cfg.teachers], "calibration")

    def _calibration_generations(self) -> tuple[list[Prompt], dict[tuple[str, str], Generation]]:
        cal = self.store.prompts(calibration=True)
        want = {(p.id, t.name): self.key_of(t, p) for p in cal for t in self.cfg.teachers}
        got = self.store.generations(want.values())
        missing = [k for k, key in want.items() if key not in got]
        if missing:
            raise PersynError(
                f"{len(missing)} calibration response(s) are missing (e.g. prompt {missing[0][0]}, "
                f"teacher {missing[0][1]}): run `persyn calibrate` first"
            )
        return cal, {k: got[key] for k, key in want.items()}

    def quality_scorer(self, answers: dict[str, str | None]):
        return make_quality_scorer(self.cfg.quality, answers)

    def score(self) -> None:
        """Learnability (student log-likelihood) and quality of every calibration response."""
        self.prepare()
        with self._timed("score"):
            cal, gens = self._calibration_generations()
            self.score_generations(list(gens.values()), {p.id: p for p in cal})

    def score_generations(self, gens: list[Generation], by_id: dict[str, Prompt]) -> None:
        """Score the valid responses among ``gens`` (learnability, then quality) that the store
        does not hold yet; failed scores are retried."""
        from persyn.executor import scorer_job

        items = [ScoreItem(g.key, by_id[g.prompt_id].text, g.response) for g in gens if g.ok]
        answers = {g.key: by_id[g.prompt_id].answer for g in gens}
        student, quality = self.cfg.student, self.cfg.quality
        scorers = {
            "learnability": (partial(LearnabilityScorer, student), student.resources, "student"),
            "quality": (partial(make_quality_scorer, quality, answers), quality.resources, None),
        }
        keys = {"learnability": self._learnability.key, "quality": self.quality_scorer({}).key}
        jobs = []
        for kind, (build, resources, cache) in scorers.items():
            done = self.store.scores(kind, keys[kind])
            todo = [it for it in items if done.get(it.key, (None, None))[0] is None]  # retry failed
            if todo:
                jobs.append(scorer_job(kind, build, todo, resources, cache))
        desc = "score · " + ", ".join(j.tag for j in jobs)
        with _bar(sum(len(j.items) for j in jobs), desc, "response") as bar:
            with closing(self.executor.run(jobs)) as results:
                for job, rows in results:
                    self.store.add_scores(job.tag, keys[job.tag], rows)
                    bar.update(len(rows))
                    crash_point("score.batch")

    def full_reward_table(self) -> dict[str, list[Candidate]]:
        """Generate-then-Select: every teacher answers every prompt (stored responses reused),
        every response is scored, and each prompt gets its Eq. 2 candidates (teacher order)."""
        self.prepare()
        prompts = self.store.prompts()
        with self._timed("generate_then_select"):
            self._generate([(t, prompts) for t in self.cfg.teachers], "generate-then-select")
            keys = {(p.id, t.name): self.key_of(t, p) for p in prompts for t in self.cfg.teachers}
            gens = self.store.generations(keys.values())
            self.score_generations(list(gens.values()), {p.id: p for p in prompts})
        return self._reward_rows(prompts, require_all=True)

    def stored_scores(self) -> dict[str, tuple[float | None, float | None]]:
        """``{generation key: (quality, learnability)}`` for the current scorers (None where not
        scored or failed)."""
        lscores = self.store.scores("learnability", self._learnability.key)
        qscores = self.store.scores("quality", self.quality_scorer({}).key)
        keys = set(lscores) | set(qscores)
        return {k: (qscores.get(k, (None, None))[0], lscores.get(k, (None, None))[0]) for k in keys}

    def _reward_rows(self, prompts: list[Prompt], require_all: bool) -> dict[str, list[Candidate]]:
        # Eq. 2 candidates for every prompt whose teachers have all answered (ok or failed).
        keys = {(p.id, t.name): self.key_of(t, p) for p in prompts for t in self.cfg.teachers}
        gens = self.store.generations(keys.values())
        scores = self.stored_scores()
        table = {}
        for p in prompts:
            if not all(keys[(p.id, n)] in gens for n in self.cfg.teacher_names):
                if require_all:
                    raise PersynError(f"prompt {p.id} is missing a teacher's response")
                continue
            cands = []
            for n in self.cfg.teacher_names:
                g = gens[keys[(p.id, n)]]
                q, lv = scores.get(g.key, (None, None)) if g.ok else (None, None)
                cands.append(Candidate(n, q, lv))
            table[p.id] = combine(cands, self.cfg.alpha, self.cfg.normalize)
        return table

    def stored_rewards(self, prompts: list[Prompt]) -> dict[tuple[str, str], float]:
        """``{(prompt id, teacher): Eq. 2 reward}`` for the prompts that every teacher has
        answered (the calibration set, and every prompt after Generate-then-Select)."""
        table = self._reward_rows(prompts, require_all=False)
        return {
            (pid, c.teacher): c.reward for pid, cands in table.items() for c in cands if c.reward is not None
        }

    def reward_table(
        self,
    ) -> tuple[list[Prompt], dict[str, list[Candidate]], dict[tuple[str, str], Generation]]:
        """Calibration prompts, their candidates with Eq. 2 rewards (teacher order), and the
        calibration generations. Raises PersynError when scores are missing."""
        cal, gens = self._calibration_generations()
        answers = {g.key: None for g in gens.values()}
        lscores = self.store.scores("learnability", self._learnability.key)
        qscores = self.store.scores("quality", self.quality_scorer(answers).key)
        table: dict[str, list[Candidate]] = {}
        for p in cal:
            cands = []
            for t in self.cfg.teachers:
                g = gens[(p.id, t.name)]
                if g.ok and (g.key not in lscores or g.key not in qscores):
                    raise PersynError(
                        f"calibration response of {t.name} to {p.id} is not scored: run `persyn calibrate`"
                    )
                q = qscores.get(g.key, (None, None))[0] if g.ok else None
                lv = lscores.get(g.key, (None, None))[0] if g.ok else None
                cands.append(Candidate(t.name, q, lv))
            table[p.id] = combine(cands, self.cfg.alpha, self.cfg.normalize)
        return cal, table, gens

    def train_router(self) -> dict:
        """Train the router on the calibration rewards, evaluate it on a held-out part against
        the Oracle and the best single teacher, and save it to ``OUTPUT_DIR/router``.

        Returns the router evaluation (also stored and written to ``summary.json``).
        """
        from persyn.router.train import RouterExample, router_figures, steps_per_training
        from persyn.router.train import train_router as fit

        self.prepare()
        cfg, names = self.cfg, self.cfg.teacher_names
        cal, table, _ = self.reward_table()
        rewards = {pid: [c.reward for c in cands] for pid, cands in table.items()}
        key = stable_hash(["router/v1", cfg.router.model_dump(), names, cfg.seed, rewards])
        router_dir = self.out / "router"
        done = self.store.stage_done("train_router", key)
        if done is not None and (router_dir / "router.json").exists():
            return done
        with self._timed("train_router"):
            examples = {p.id: RouterExample(p.text, pair_labels(rewards[p.id], cfg.router.ties)) for p in cal}
            ids = [p.id for p in cal]
            random.Random(cfg.seed + 1).shuffle(ids)
            n_eval = round(cfg.router.eval_fraction * len(ids)) if len(ids) >= 4 else 0
            eval_ids, train_ids = ids[:n_eval], ids[n_eval:]
            runs = [train_ids] + ([ids] if n_eval and cfg.router.refit else [])
            steps = sum(steps_per_training(cfg.router, len(r)) for r in runs)
            evaluation: dict[str, Any] = {"n_train": len(train_ids), "n_eval": n_eval}
            with _bar(steps, "router · train", "step") as bar:
                router = fit(cfg.router, names, [examples[i] for i in train_ids], cfg.seed, bar)
                if n_eval:
                    coef = router.coefficients([examples[i].text for i in eval_ids])
                    picks = [names[int(j)] for j in coef.argmax(-1)]
                    per_prompt = [dict(zip(names, rewards[i], strict=True)) for i in eval_ids]
                    evaluation.update(router_figures(picks, per_prompt))
                    best = _best_single_teacher(names, [rewards[i] for i in train_ids])
                    figs = router_figures([best] * n_eval, per_prompt)
                    evaluation["best_single_teacher"] = {
                        "name": best,
                        "top1": figs["top1"],
                        "regret": figs["regret"],
                    }
                    if cfg.router.refit:
                        router = fit(cfg.router, names, [examples[i] for i in ids], cfg.seed, bar)
                else:
                    evaluation.update(
                        top1=None,
                        regret=None,
                        best_single_teacher=None,
                        note="fewer than 4 calibration prompts: no held-out evaluation",
                    )
            crash_point("router.trained")
            tmp = self.out / f".router.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            router.save(tmp)
            shutil.rmtree(router_dir, ignore_errors=True)
            os.replace(tmp, router_dir)
            crash_point("router.saved")
            self.store.mark_stage("train_router", key, evaluation)
            self.store.set_meta("router_key", key)
        return evaluation

    def route(self, router_dir: str | Path | None = None) -> dict[str, str]:
        """Assign every non-calibration prompt to argmax_n π_n(x) of the router.

        Args:
            router_dir: a saved router (default: ``OUTPUT_DIR/router`` from ``train_router``).

        Returns ``{prompt_id: teacher}`` for the routed prompts.

        Raises:
            PersynError: no router, or a router trained for other teachers.
        """
        from persyn.router.model import BTRouter

        self.prepare()
        with self._timed("route"):
            path = Path(router_dir) if router_dir else self.out / "router"
            if not (path / "router.json").exists():
                raise PersynError(f"{path}: no trained router: run `persyn train-router` first")
            meta = json.loads((path / "router.json").read_text())
            if meta["teachers"] != self.cfg.teacher_names:
                raise PersynError(
                    f"{path}: router was trained for teachers {meta['teachers']}, "
                    f"the config has {self.cfg.teacher_names}"
                )
            head = (path / "head.pt").read_bytes()
            router_key = stable_hash(["route/v1", str(path.resolve()), stable_hash(head.hex())])
            routed = self.store.prompts(calibration=False)
            have = self.store.assignments(router_key)
            todo = [p for p in routed if p.id not in have]
            if todo:
                router = BTRouter.load(path)
                with _bar(len(todo), "route", "prompt") as bar:
                    for i in range(0, len(todo), 64):
                        chunk = todo[i : i + 64]
                        coef = router.coefficients([p.text for p in chunk])
                        rows = []
                        for p, c in zip(chunk, coef, strict=True):
                            values = {n: float(v) for n, v in zip(meta["teachers"], c, strict=True)}
                            rows.append((p.id, meta["teachers"][int(c.argmax())], values))
                        self.store.set_assignments(router_key, rows)
                        bar.update(len(chunk))
                        crash_point("route.chunk")
            self.store.set_meta("route_key", router_key)
        return {pid: t for pid, (t, _) in self.store.assignments(router_key).items()}

    def _assignments(self) -> dict[str, tuple[str, dict[str, float]]]:
        key = self.store.get_meta("route_key")
        got = self.store.assignments(key) if key else {}
        routed = self.store.prompts(calibration=False)
        missing = [p.id for p in routed if p.id not in got]
        if missing:
            raise PersynError(
                f"{len(missing)} prompt(s) are not routed (e.g. {missing[0]}): run `persyn route` first"
            )
        return {p.id: got[p.id] for p in routed}

    def generate(self) -> None:
        """Only the routed teacher answers each routed prompt (what is stored is skipped)."""
        self.prepare()
        with self._timed("generate"):
            assigned = self._assignments()
            by_teacher: dict[str, list[Prompt]] = defaultdict(list)
            for p in self.store.prompts(calibration=False):
                by_teacher[assigned[p.id][0]].append(p)
            self._generate(
                [(t, by_teacher[t.name]) for t in self.cfg.teachers if by_teacher.get(t.name)], "routed"
            )

    def export(self) -> dict:
        """Write ``dataset.jsonl``, ``routing.jsonl`` and ``summary.json`` (atomically) and
        return the summary."""
        self.prepare()
        with self._timed("export"):
            summary = self._export()
        summary["seconds"] = self._seconds()
        write_atomic(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _export(self) -> dict:
        cfg = self.cfg
        cal, table, cal_gens = self.reward_table()
        assigned = self._assignments()
        routed = self.store.prompts(calibration=False)
        teachers = {t.name: t for t in cfg.teachers}
        routed_keys = {p.id: self.key_of(teachers[assigned[p.id][0]], p) for p in routed}
        routed_gens = self.store.generations(routed_keys.values())
        all_prompts = self.store.prompts()
        cal_ids = {p.id for p in cal}

        lines, routing_lines, failures = [], [], []
        routing_count: Counter[str] = Counter()
        for g in list(cal_gens.values()) + list(routed_gens.values()):
            if not g.ok:
                failures.append(
                    {
                        "stage": g.phase,
                        "prompt_id": g.prompt_id,
                        "teacher": g.teacher,
                        "error": g.error,
                    }
                )
        for p in all_prompts:
            if p.id in cal_ids:
                cands = table[p.id]
                pick = oracle_pick(cands)
                if pick is None:
                    failures.append(
                        {
                            "stage": "export",
                            "prompt_id": p.id,
                            "teacher": None,
                            "error": "no teacher gave a valid response to this calibration prompt",
                        }
                    )
                    continue
                c = next(c for c in cands if c.teacher == pick)
                g = cal_gens[(p.id, pick)]
                q, lv, r, source = c.quality, c.learnability, c.reward, "calibration"
            else:
                pick, coef = assigned[p.id]
                routing_lines.append({"id": p.id, "teacher": pick, "coefficients": coef})
                g = routed_gens.get(routed_keys[p.id])
                if g is None:
                    raise PersynError(
                        f"prompt {p.id} has no response from {pick}: run `persyn generate` first"
                    )
                if not g.ok:
                    continue  # recorded in failures above
                q = lv = r = None
                source = "routed"
            routing_count[pick] += 1
            lines.append(
                {
                    "id": p.id,
                    "messages": [
                        {"role": "user", "content": p.text},
                        {"role": "assistant", "content": g.response},
                    ],
                    "teacher": pick,
                    "quality": q,
                    "learnability": lv,
                    "reward": r,
                    "source": source,
                }
            )
        write_atomic(
            self.out / "dataset.jsonl",
            "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines),
        )
        write_atomic(self.out / "routing.jsonl", "".join(json.dumps(x) + "\n" for x in routing_lines))
        write_atomic(self.out / "failed.jsonl", "".join(json.dumps(x) + "\n" for x in failures))
        write_atomic(self.out / "calibration.jsonl", _calibration_lines(cal, table, cal_gens))
        crash_point("export.dataset")

        n, n_cal, n_t = len(all_prompts), len(cal), len(cfg.teachers)
        cal_route = Counter(oracle_pick(table[p.id]) for p in cal)
        router_eval = self.store.stage_done("train_router", self.store.get_meta("router_key") or "") or {}
        return {
            "n_prompts": n,
            "n_calibration": n_cal,
            "n_routed": n - n_cal,
            "n_dataset": len(lines),
            "teachers": cfg.teacher_names,
            "generations": len(cal_gens) + len(routed_gens),
            "generations_new": self.new_generations,
            "generation_calls": self.store.generation_calls(),
            "generations_generate_then_select": n * n_t,
            "routing": {t: routing_count.get(t, 0) for t in cfg.teacher_names},
            "routing_routed": {t: sum(1 for v in assigned.values() if v[0] == t) for t in cfg.teacher_names},
            "oracle_calibration": {t: cal_route.get(t, 0) for t in cfg.teacher_names},
            "calibration_means": _calibration_means(table, cfg.teacher_names),
            **_tokens_and_cost(cfg.teachers, list(cal_gens.values()) + list(routed_gens.values())),
            "router_eval": router_eval,
            "seeds": json.loads(self.store.get_meta("seeds") or "{}"),
            "alpha": cfg.alpha,
            "normalize": cfg.normalize,
            "failed": len(failures),
            "failures": failures,
            "skipped_prompts": json.loads(self.store.get_meta("load_report") or "{}"),
        }

    def _seconds(self) -> dict[str, float]:
        return {s: round(float(self.store.get_meta(f"seconds.{s}") or 0.0), 2) for s in STAGES}

    def cache_info(self) -> dict:
        """What the store holds for this config: per teacher, responses for its current
        settings (ok / failed / still to make) and stale ones (other settings); per scorer,
        current and stale scores; the store's size."""
        self.prepare()
        prompts = self.store.prompts()
        rows = self.store.generation_rows()
        by_teacher: dict[str, dict[str, str]] = defaultdict(dict)
        for key, teacher, status in rows:
            by_teacher[teacher][key] = status
        teachers = {}
        for t in self.cfg.teachers:
            stored = by_teacher.get(t.name, {})
            current = {self.key_of(t, p) for p in prompts}
            statuses = Counter(stored[k] for k in current if k in stored)
            teachers[t.name] = {
                "ok": statuses.get("ok", 0),
                "failed": statuses.get("failed", 0),
                "stale": sum(1 for k in stored if k not in current),
            }
        for name, stored in by_teacher.items():
            if name not in teachers:
                teachers[name] = {"ok": 0, "failed": 0, "stale": len(stored), "not_in_config": True}
        current_scorers = {self._learnability.key, self.quality_scorer({}).key}
        scores: dict[str, dict[str, int]] = defaultdict(lambda: {"current": 0, "stale": 0})
        for kind, scorer, n in self.store.score_counts():
            scores[kind]["current" if scorer in current_scorers else "stale"] += n
        size = sum(f.stat().st_size for f in self.out.glob("store.sqlite*"))
        return {
            "teachers": teachers,
            "scores": dict(scores),
            "store_bytes": size,
            "generation_calls": self.store.generation_calls(),
        }

    def cache_clear(self, teacher: str | None = None) -> int:
        """Delete stored responses (and their scores) of ``teacher``, or everything computed
        when None. Returns the number of responses deleted.

        Raises:
            PersynError: ``teacher`` is neither in the config nor in the store.
        """
        if teacher is not None:
            known = set(self.cfg.teacher_names) | {t for _, t, _ in self.store.generation_rows()}
            if teacher not in known:
                raise PersynError(
                    f"--teacher: unknown teacher '{teacher}' (known: {', '.join(sorted(known))})"
                )
        return self.store.delete_generations(teacher)

    def preflight(self) -> None:
        """Connect to every served teacher (``engine: openai``) before any work: an unreachable
        server, a missing API key or an unknown model fails here, not hours in."""
        from persyn.executor import teacher_job

        for t in self.cfg.teachers:
            if t.engine == "openai":
                self.executor.check(teacher_job(self.cfg, t, []))

    def run(self) -> dict:
        """All stages in order; returns the summary. With ``strategy`` other than ``persyn``
        in the config, runs what that strategy needs and writes its dataset (in
        ``strategies/NAME`` and as the top-level ``dataset.jsonl``) instead."""
        self.prepare()
        self.preflight()
        if self.cfg.strategy != "persyn":
            from persyn.strategies import build_strategy

            summary = build_strategy(self, self.cfg.strategy)
            shutil.copyfile(
                self.out / "strategies" / self.cfg.strategy / "dataset.jsonl", self.out / ".dataset.tmp"
            )
            os.replace(self.out / ".dataset.tmp", self.out / "dataset.jsonl")
            summary["seconds"] = self._seconds()
            write_atomic(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
            return summary
        self.calibrate()
        self.score()
        self.train_router()
        self.route()
        self.generate()
        return self.export()

    def close(self) -> None:
        try:
            if self._executor is not None:
                self._executor.close()
        finally:
            self.store.close()
            self._lock.close()  # releases the lock

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lock_output_dir(out: Path):
    """Hold an exclusive lock on ``out`` for this process's lifetime.

    The OS drops the lock when the process dies, so a lock left by a killed run is taken over.

    Raises:
        PersynError: another live persyn process holds the directory.
    """
    import fcntl

    f = open(out / ".persyn.lock", "a+")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise PersynError(
            f"output_dir {out} is in use by another persyn process (pid {holder}); "
            "wait for it to finish or use another output_dir"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def _best_single_teacher(names: list[str], rewards: list[list[float | None]]) -> str:
    """The teacher with the highest mean combined reward over prompts (a failed response counts
    as the prompt's lowest valid reward); the first in order on a tie."""
    totals = [0.0] * len(names)
    for row in rewards:
        valid = [r for r in row if r is not None]
        if not valid:
            continue
        floor = min(valid)
        for i, r in enumerate(row):
            totals[i] += floor if r is None else r
    return names[max(range(len(names)), key=lambda i: (totals[i], -i))]


def _calibration_means(table: dict[str, list[Candidate]], names: list[str]) -> dict[str, dict]:
    out = {}
    for i, name in enumerate(names):
        cs = [cands[i] for cands in table.values()]
        q = [c.quality for c in cs if c.quality is not None]
        lv = [c.learnability for c in cs if c.learnability is not None]
        out[name] = {
            "quality": sum(q) / len(q) if q else None,
            "learnability": sum(lv) / len(lv) if lv else None,
            "valid": sum(1 for c in cs if c.valid),
        }
    return out


def _calibration_lines(
    cal: list[Prompt], table: dict[str, list[Candidate]], gens: dict[tuple[str, str], Generation]
) -> str:
    """``calibration.jsonl``: every teacher's response to every calibration prompt with its
    scores (quality, learnability, normalised terms, Eq. 2 reward; null where it failed)."""
    rows = []
    for p in cal:
        pick = oracle_pick(table[p.id])
        for c in table[p.id]:
            g = gens[(p.id, c.teacher)]
            rows.append(
                {
                    "id": p.id,
                    "teacher": c.teacher,
                    "prompt": p.text,
                    "response": g.response if g.ok else None,
                    "error": g.error,
                    "quality": c.quality,
                    "learnability": c.learnability,
                    "quality_norm": c.quality_norm,
                    "learnability_norm": c.learnability_norm,
                    "reward": c.reward,
                    "oracle": c.teacher == pick,
                }
            )
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _tokens_and_cost(teachers: list[TeacherConfig], gens: list[Generation]) -> dict:
    """``tokens`` per teacher (prompt and completion tokens of the responses in the dataset's
    run, as the teacher counted them) and ``cost_usd`` per teacher (None without prices)."""
    tokens = {t.name: {"prompt": 0, "completion": 0} for t in teachers}
    for g in gens:
        if g.teacher in tokens:
            tokens[g.teacher]["prompt"] += g.prompt_tokens or 0
            tokens[g.teacher]["completion"] += g.completion_tokens or 0
    cost: dict[str, float | None] = {}
    for t in teachers:
        if t.price_input_per_million is None and t.price_output_per_million is None:
            cost[t.name] = None
            continue
        cost[t.name] = round(
            tokens[t.name]["prompt"] * (t.price_input_per_million or 0.0) / 1e6
            + tokens[t.name]["completion"] * (t.price_output_per_million or 0.0) / 1e6,
            6,
        )
    return {"tokens": tokens, "cost_usd": cost}
