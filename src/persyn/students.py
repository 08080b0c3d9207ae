"""One calibration, many students (``students:`` in the config).

Each student gets its own run in ``OUTPUT_DIR/students/NAME/``: its learnability scores, router,
routing and dataset. The teachers' responses are shared: a student's store starts as a copy of
the previous student's, and responses are cached by content (teacher, prompt, settings, seed),
not by student, so the calibration set is answered once and a second student costs the
learnability scoring of it plus the responses its router asks for that no earlier student's
did. (With ``calibration.select: active`` the set is grown for the first student and reused.)
The paper trains one router per student (PerSyn §3); this only avoids paying the teachers twice.
"""

from __future__ import annotations

from pathlib import Path

from persyn.config import RunConfig
from persyn.core.faults import crash_point, register
from persyn.core.io import write_atomic
from persyn.core.summary import RunSummary, StudentsSummary
from persyn.runtime.context import timed_stages
from persyn.store import Store

STUDENT_SEEDED = register("students.seeded", "after a student's store is copied from the previous one")
STUDENT_DONE = register("students.student", "after one student's run, before the next")


def student_configs(cfg: RunConfig) -> list[tuple[str, RunConfig]]:
    """``(name, one-student config)`` per student of ``cfg.students`` (or of ``cfg.student``),
    each writing to ``OUTPUT_DIR/students/NAME``."""
    students = cfg.students or [cfg.student]
    out = []
    for st in students:
        name = st.name or "student"
        one = cfg.model_copy(
            update={"student": st, "students": None, "output_dir": Path(cfg.output_dir) / "students" / name}
        )
        out.append((name, one))
    return out


def seed_store(previous: Path, target: Path) -> None:
    """Start ``target``'s store as a copy of ``previous``'s (its responses and scores), with the
    stage timers reset so each student's ``seconds`` are its own."""
    if target.exists() or not previous.exists():
        return
    # Copied and reset under a temporary name, then renamed: a kill leaves no half-made store.
    tmp = target.with_name(f".{target.name}.seed")
    tmp.unlink(missing_ok=True)
    with Store(previous) as src:
        src.clone_to(tmp)
    with Store(tmp) as st:
        for stage in timed_stages():
            st.set_stage_seconds(stage, 0.0)
        st.checkpoint()
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    tmp.rename(target)
    crash_point(STUDENT_SEEDED)


def run_students(cfg: RunConfig, console=None) -> StudentsSummary:
    """Run PerSyn for every student of ``cfg.students`` in turn, sharing the teachers'
    responses; write the top-level ``summary.json`` and return it.

    Raises:
        PersynError / ConfigError: as ``Pipeline.run`` for any student (earlier students'
            results are kept; a re-run resumes).
    """
    from persyn.pipeline import Pipeline

    summaries: dict[str, RunSummary] = {}
    keys: list[set[str]] = []
    previous: Path | None = None
    for name, one in student_configs(cfg):
        target = Path(one.output_dir) / "store.sqlite"
        if previous is not None:
            seed_store(previous, target)
        with Pipeline(one, console) as p:
            summary = p.run()
            keys.append(dataset_generation_keys(p))
        summaries[name] = summary
        crash_point(STUDENT_DONE)
        previous = target
    first = next(iter(summaries.values()))
    total = StudentsSummary(
        students=summaries,
        generations=len(set().union(*keys)),
        generations_shared=first.n_calibration * len(first.teachers),
        generations_if_separate=sum(s.generations for s in summaries.values()),
        generations_new=sum(s.generations_new for s in summaries.values()),
    )
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(cfg.output_dir) / "summary.json", total.to_json())
    return total


def dataset_generation_keys(pipeline) -> set[str]:
    """Cache keys of the teacher responses a finished run used: every teacher's on the
    calibration prompts, the routed teacher's on the others."""
    ctx = pipeline.ctx
    teachers = {t.name: t for t in ctx.cfg.teachers}
    keys = {ctx.key_of(t, p) for p in ctx.store.prompts(calibration=True) for t in teachers.values()}
    routed = {p.id: p for p in ctx.store.prompts(calibration=False)}
    for pid, (teacher, _) in pipeline.assignments().items():
        keys.add(ctx.key_of(teachers[teacher], routed[pid]))
    return keys
