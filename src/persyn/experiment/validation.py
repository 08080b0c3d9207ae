"""The choices an experiment makes by measurement on its validation split, never the test
set: α (Eq. 2) per student, and the SFT length from the accuracy-vs-epochs curve. ``run`` is
the running ``experiment.runner.Experiment`` (its trainer, students, log and chosen values)."""

from __future__ import annotations

from typing import Any

from persyn.store import read_router_evaluation


def stored_router_figures(pipe) -> dict:
    """The trained router's cross-validation figures in ``pipe``'s store: the kind that routes,
    the calibration prompts, top-1 and regret, and the best single teacher's top-1 and
    regret (None where not measured)."""
    ev = read_router_evaluation(pipe.store)
    best = (ev.best_single_teacher if ev is not None else None) or {}
    return {
        "kind": ev.kind if ev is not None else None,
        "n_calibration": len(pipe.store.prompts(calibration=True)),
        "top1": ev.top1 if ev is not None else None,
        "regret": ev.regret if ev is not None else None,
        "best_single_top1": best.get("top1"),
        "best_single_regret": best.get("regret"),
    }


def alpha_by_validation(run: Any) -> list[dict]:
    """The α sweep by the student's accuracy (``sweeps.alpha``, first seed): per α and
    student, PerSyn's dataset with that α, fine-tuned and evaluated on the validation split,
    with the router's figures. With ``sweeps.choose_alpha``, each student's α becomes the
    one of highest validation accuracy (a tie: the run's α if tied, else the smallest).
    Returns one row per (α, student)."""
    from persyn.pipeline import Pipeline

    seed, rows = run.exp.seeds[0], []
    for value in run.exp.sweeps.alpha:
        for student, cfg in run.student_runs(seed):
            d = run.out / "sweeps" / f"alpha={value}" / student
            one = cfg.model_copy(update={"alpha": value, "output_dir": d})
            run.chained(d)
            with Pipeline(one) as pipe:
                summary = pipe.build_strategy("persyn", d / "strategies" / "persyn", seed=seed)
                figures = stored_router_figures(pipe)
            res = run.trainer.train_and_evaluate(
                one.student,
                d / "strategies/persyn/dataset.jsonl",
                seed,
                summary.dataset_hash,
                "validation",
                keep=True,  # the main run trains this very model again when this α wins
            )
            rows.append(
                {
                    "sweep": "alpha",
                    "value": value,
                    "student": student,
                    "accuracy": res["accuracy"],
                    "ci_low": res["ci_low"],
                    "ci_high": res["ci_high"],
                    "router": figures["kind"],
                    "top1": figures["top1"],
                    "routing": summary.routing,
                    "eval_key": res["eval_key"],
                }
            )
            run.log(f"α {value} · {student}: validation accuracy {res['accuracy']:.3f}")
    if run.exp.sweeps.choose_alpha:
        for student in run.students():
            mine = [r for r in rows if r["student"] == student]
            top = max(r["accuracy"] for r in mine)
            tied = sorted(r["value"] for r in mine if r["accuracy"] == top)
            run.alpha[student] = run.cfg.alpha if run.cfg.alpha in tied else tied[0]
            run.log(f"{student}: α {run.alpha[student]} chosen on validation")
    return rows


def epochs_by_validation(run: Any, sets: dict) -> list[dict]:
    """The accuracy-vs-steps curve (``sweeps.sft_epochs``): the first student's dataset of
    each ``sweeps.sft_strategy`` (first seed), fine-tuned for each number of epochs and
    evaluated on the validation split. With ``sweeps.choose_epochs`` the main fine-tunes
    use the epochs of highest mean validation accuracy over those strategies (a tie: the
    fewest). Returns one row per (strategy, epochs)."""
    sw = run.exp.sweeps
    if not sw.sft_epochs or "validation" not in run.trainer.splits:
        return []
    seed = run.exp.seeds[0]
    student, st = next(iter(run.students().items()))
    rows = []
    for strategy in sw.curve_strategies():
        path, summary = sets[(student, strategy, seed)]
        for epochs in sw.sft_epochs:
            res = run.trainer.train_and_evaluate(
                st, path, seed, summary.dataset_hash, "validation", sft_over={"epochs": epochs}, keep=True
            )
            rows.append(
                {
                    "sweep": "sft_epochs",
                    "value": epochs,
                    "student": student,
                    "strategy": strategy,
                    "steps": (res.get("train") or {}).get("steps"),
                    "accuracy": res["accuracy"],
                    "ci_low": res["ci_low"],
                    "ci_high": res["ci_high"],
                    "eval_key": res["eval_key"],
                }
            )
            run.log(
                f"SFT length · {strategy} · {epochs} epochs ({rows[-1]['steps']} steps): "
                f"validation accuracy {res['accuracy']:.3f}"
            )
    if sw.choose_epochs:
        mean = {e: sum(r["accuracy"] for r in rows if r["value"] == e) for e in sw.sft_epochs}
        chosen = min(e for e in sw.sft_epochs if mean[e] == max(mean.values()))
        run.trainer.sft = run.trainer.sft.model_copy(update={"epochs": chosen})
        run.epochs = chosen
        run.log(f"SFT length: {chosen} epochs chosen on validation")
    return rows
