"""``synthesis.generator: montessori``: Montessori-Instruct's loop (arXiv 2410.14208, Sec. 3) with
PerSyn's routing inside it, run by ``persyn synthesize`` before the synthesis itself.

Iteration ``i`` works in ``OUTPUT/montessori/iter-i/``, a run of its own that starts from the
previous iteration's tuned generator (the first: ``synthesis.model``):

1. the generator writes ``probe_count`` prompts Self-Instruct's way (``synthetic/``);
2. PerSyn answers them: calibration, router, routing, generation (``dataset.jsonl``): the
   examples are probed as the student would get them;
3. ``persyn influence`` measures the signal of every (prompt, response) on the student
   (``influence/``; one warm-up state for all iterations, in ``OUTPUT/montessori/warmup``);
4. ``persyn adapt-generator``: pairs within each request, DPO (``generator/``, a model directory).

Every step is cached or resumable (the sub-runs' stores, ``influence.jsonl``, the tuned model's
key), so a killed ``persyn synthesize`` picks up where it stopped. ``montessori/summary.json``
records per iteration the probed examples, the signal's mean, the pairing note and the DPO
margins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from persyn.config import RunConfig, parse_config
from persyn.core.errors import PersynError
from persyn.core.io import jsonl_records, jsonl_text, write_atomic


def iteration_config(cfg: RunConfig, where: Path, generator: str) -> RunConfig:
    """The run config of one iteration: ``cfg`` writing into ``where``, its prompts the
    ``probe_count`` that ``generator`` (a model path) writes Self-Instruct's way."""
    data = cfg.model_dump(mode="json")
    if data.get("students") is not None:
        data.pop("student", None)  # `students:` sets it
    m = cfg.synthesis.montessori
    data["output_dir"] = str(where)
    data["prompts"] = {"source": "synthetic"}  # where.../synthetic/prompts.jsonl
    data["strategy"] = "persyn"
    syn = data["synthesis"]
    syn.update(generator="self-instruct", montessori=None, count=m.probe_count, relevance_band=None)
    syn["model"] = {**syn["model"], "model": generator}
    return parse_config(data, f"montessori iteration in {where}")


def _examples(where: Path) -> Path:
    """``examples.jsonl``: the iteration's dataset lines with the request that produced each
    prompt (``group``, ``request``, ``generated``, from ``synthetic/candidates.jsonl``)."""
    made = {r["id"]: r for _, r in jsonl_records(where / "synthetic" / "candidates.jsonl", "candidates")}
    lines = []
    for _, row in jsonl_records(where / "dataset.jsonl", "dataset"):
        c = made.get(row["id"])
        if c is not None:  # every dataset line is a synthetic prompt of this iteration
            lines.append({**row, "group": c["group"], "request": c["request"], "generated": c["generated"]})
    if not lines:
        raise PersynError(f"{where / 'dataset.jsonl'}: no answered synthetic prompt to probe")
    path = where / "examples.jsonl"
    write_atomic(path, jsonl_text(lines, ascii_only=True))
    return path


def adapt_loop(cfg: RunConfig, answer: Callable[[RunConfig], object], log=None) -> str:
    """Run ``cfg.synthesis.montessori.iterations`` iterations (see the module docstring) and
    return the path of the last tuned generator. ``answer(config)`` runs PerSyn end to end on
    an iteration's config (``Pipeline.run``: the pipeline hands itself in, so stages never
    import it). ``log``: where progress lines go (default: ``tqdm.write``, between the bars).

    Raises:
        ConfigError / InputError / PersynError: from the stages it runs (e.g. an iteration whose
            examples give no preference pair says why: no group with both sides, or no group of
            2 or more examples).
    """
    from persyn.montessori.adapt import adapt_generator
    from persyn.montessori.influence import run_influence, stored_signals

    if log is None:
        from tqdm import tqdm

        log = tqdm.write
    m = cfg.synthesis.montessori
    root = Path(cfg.output_dir) / "montessori"
    generator = cfg.synthesis.model.model
    rounds = []
    for i in range(1, m.iterations + 1):
        where = root / f"iter-{i}"
        sub = iteration_config(cfg, where, generator)
        log(
            f"montessori iteration {i}/{m.iterations}: {generator} writes {m.probe_count} prompts; PerSyn answers them"
        )
        answer(sub)
        examples = _examples(where)
        s = run_influence(sub, examples, where / "influence", log=log, warmup_dir=root / "warmup")
        values = [r[m.signal] for r in stored_signals(where / "influence") if r.get(m.signal) is not None]
        info = adapt_generator(
            examples, where / "influence", generator, where / "generator", m.dpo, m.signal, m.rule, m.fraction
        )
        note = info["note"]
        log(
            f"montessori iteration {i}: {note['pairs']} pairs by rule '{note['rule']}' from "
            f"{note['groups_with_pairs']} of {note['groups']} groups; DPO {info['steps']} steps"
        )
        rounds.append(
            {
                "iteration": i,
                "generator": generator,
                "examples": s["examples"],
                "failed": s["failed"],
                f"mean_{m.signal}": sum(values) / len(values) if values else None,
                "helpful": s["helpful"],
                "harmful": s["harmful"],
                "seconds_per_example": s["seconds_per_example"],
                "pairs": note,
                "dpo_steps": info["steps"],
                "dpo_margins": info["margins"],
                "dpo_accuracies": info["accuracies"],
            }
        )
        generator = str((where / "generator").resolve())
    write_atomic(
        root / "summary.json", json.dumps({"iterations": rounds, "tuned": generator}, indent=2) + "\n"
    )
    return generator
