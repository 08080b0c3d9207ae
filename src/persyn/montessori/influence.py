"""``persyn influence``: per-example signals for adapting a generator to the student
(Montessori-Instruct's local data influence, the student's loss, PerSyn's learnability).

1. Warm-up: the run's student is fine-tuned on ``influence.warmup`` (``persyn.training.sft``'s TRL
   trainer); its weights and optimizer state are saved once under ``OUTPUT/warmup/`` with the
   key of everything that made them, so a resumed run loads them instead of training again.
2. Each example of the examples file is probed from that state (``persyn.montessori.probe``) and its
   line appended to ``OUTPUT/influence.jsonl`` at once (fsynced): a killed run resumes after the
   last stored example. A line carries the settings' key; lines of other settings are ignored.
3. ``OUTPUT/summary.json``: counts, the warm-up's and the probes' seconds, the reference loss.

An examples file is a persyn dataset (``messages``); each line's ``id`` names it (else a hash
of its messages) and ``group`` (else ``metadata.group``, else the id) says which generation
request produced it: Montessori-Instruct pairs examples within a group.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from persyn.config import InfluenceConfig, RunConfig
from persyn.core.errors import ConfigError, InputError
from persyn.core.faults import crash_point, register
from persyn.core.hashing import stable_hash
from persyn.core.io import dataset_lines, jsonl_records, jsonl_text, write_atomic

EXAMPLE_STORED = register("influence.example", "one example's signals appended to influence.jsonl")
WARMUP_SAVED = register("influence.warmup", "the warm-up weights and optimizer state saved")


def read_examples(path: Path) -> list[dict]:
    """The lines of an examples file: ``{"id", "group", "pair", "generated", "raw"}`` with
    ``pair`` the ``(prompt, response[, turns])`` SFT renders, ``generated`` the line's
    ``generated`` text (what the generator wrote; default: the prompt) and ``raw`` the line.

    Raises:
        InputError: a missing or empty file, a malformed line (names the file and line), or an
            id used twice.
    """
    if not Path(path).is_file():
        raise InputError(f"{path}: examples file not found")
    out, seen = [], {}
    for where, rec, line in dataset_lines(Path(path), "examples file", training=True):
        pair = line.pair
        ex_id = str(rec.get("id") or stable_hash(["example", rec["messages"]])[:16])
        if ex_id in seen:
            raise InputError(f"{where}: id '{ex_id}' is used twice (first at {seen[ex_id]})")
        seen[ex_id] = where
        meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
        group = rec.get("group", meta.get("group", ex_id))
        generated = rec.get("generated") or pair[0]  # what the generator wrote: the instruction
        out.append({"id": ex_id, "group": str(group), "pair": pair, "generated": generated, "raw": rec})
    if not out:
        raise InputError(f"{path}: the examples file is empty")
    return out


def _file_hash(path: Path) -> str:
    return stable_hash(["file", Path(path).read_bytes().decode("utf-8", "replace")])


def _warm_up(cfg: RunConfig, ic: InfluenceConfig, settings, where: Path, key: str, log):
    """``(model, optimizer, tokenizer, seconds)``: the warm-up state, loaded from ``where`` when
    saved under ``key``, else trained and saved there."""
    import torch

    from persyn.models.loading import load_causal_lm, load_tokenizer
    from persyn.training.sft import make_trainer, read_training_pairs

    st = cfg.student  # with `students:`, the first
    meta_path = where / "warmup.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("key") == key:
        model = load_causal_lm(str(where / "model"), shared=False)
        saved = torch.load(where / "optimizer.pt", weights_only=True)
        named = dict(model.named_parameters())
        groups = [
            {**hyper, "params": [named[n] for n in names]}
            for hyper, names in zip(meta["group_hyper"], meta["group_names"], strict=True)
        ]
        optimizer = torch.optim.AdamW(groups)
        optimizer.load_state_dict(saved)
        log(f"warm-up state loaded from {where}")
        return model, optimizer, load_tokenizer(str(where / "model")), meta["seconds"]
    pairs = read_training_pairs(ic.warmup)
    trainer, tokenizer, _ = make_trainer(
        pairs, st.model, where.with_name(".warmup-trainer"), settings, st.prompt_template
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    # Without accelerate's wrapper: under bf16 mixed precision it autocasts every later forward,
    # and the probes would run in bf16 here but in fp32 after a resume loads the saved state.
    # The probes run in fp32 (the influence is a small difference of two losses).
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).float().eval()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    if not isinstance(optimizer, torch.optim.AdamW):
        raise ConfigError(f"influence: the warm-up optimizer is {type(optimizer).__name__}, not AdamW")
    names = {id(p): n for n, p in model.named_parameters()}
    meta = {
        "key": key,
        "seconds": round(seconds, 3),
        "steps": trainer.state.global_step,
        "group_names": [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups],
        "group_hyper": [
            {k: v for k, v in g.items() if k != "params" and isinstance(v, (int, float, bool, list, tuple))}
            for g in optimizer.param_groups
        ],
    }
    where.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(where / "model", safe_serialization=True)
    tokenizer.save_pretrained(where / "model")
    torch.save(optimizer.state_dict(), where / "optimizer.pt")
    write_atomic(meta_path, json.dumps(meta, indent=2) + "\n")  # last: marks the state complete
    crash_point(WARMUP_SAVED)
    log(f"warm-up: {len(pairs)} examples, {meta['steps']} steps in {seconds:.1f} s")
    return model, optimizer, tokenizer, seconds


def stored_signals(out: Path) -> list[dict]:
    """The ``influence.jsonl`` lines of the last ``persyn influence`` run into ``out`` (its
    settings' key, from ``summary.json``): lines of earlier settings in the same file are left out.

    Raises:
        InputError: no finished run in ``out``.
    """
    summary = out / "summary.json"
    if not summary.exists():
        raise InputError(f"{summary}: not found (run `persyn influence` into {out} first)")
    return list(_done(out / "influence.jsonl", json.loads(summary.read_text())["key"]).values())


def _done(path: Path, key: str) -> dict[str, dict]:
    """The stored lines of ``influence.jsonl`` made with ``key``, by example id (a torn last
    line, from a kill mid-write, is ignored)."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for _, rec in jsonl_records(path, "influence results", skip_malformed=True):
        if rec.get("key") == key:
            out[rec["id"]] = rec
    return out


def run_influence(
    cfg: RunConfig, examples_path: Path, out: Path, log=print, warmup_dir: Path | None = None
) -> dict:
    """Measure ``cfg.influence.signals`` for every example of ``examples_path`` into ``out``
    (see the module docstring). Returns the summary. ``warmup_dir`` (default ``out/warmup``):
    where the warm-up state is kept, so runs on several example files can share one.

    Raises:
        ConfigError: no ``influence`` section.
        InputError: a bad examples, warm-up or reference file (names it), an empty reference
            set, or no reference example with a response token within ``max_length``.
    """
    import torch

    from persyn.core.records import ScoreItem
    from persyn.models.fingerprint import model_fingerprint
    from persyn.montessori.probe import InfluenceProbe, example_losses, tokenized_examples
    from persyn.scoring.learnability import LearnabilityScorer
    from persyn.training.sft import read_training_pairs

    ic = cfg.influence
    if ic is None:
        raise ConfigError("persyn influence needs an 'influence' section (warmup, reference) in the config")
    settings = ic.sft.model_copy(update={"max_length": ic.max_length, "seed": cfg.seed})
    st = cfg.student  # with `students:`, the first
    examples = read_examples(examples_path)
    reference_pairs = read_training_pairs(ic.reference)[: ic.reference_size]
    warm_key = stable_hash(
        ["influence-warmup/v1", st.model, model_fingerprint(st.model), st.prompt_template]
        + [settings.key_fields(), _file_hash(ic.warmup)]
    )
    key = stable_hash(
        ["influence/v1", warm_key, _file_hash(ic.reference), ic.reference_size, ic.probe_lr]
        + [ic.signals, ic.batch_size]
    )
    out.mkdir(parents=True, exist_ok=True)
    results = out / "influence.jsonl"
    done = _done(results, key)
    todo = [e for e in examples if e["id"] not in done]
    log(f"influence: {len(examples)} examples, {len(done)} already stored, {len(todo)} to probe")
    model, optimizer, tokenizer, warm_seconds = _warm_up(
        cfg, ic, settings, warmup_dir or out / "warmup", warm_key, log
    )
    pad = tokenizer.pad_token_id
    reference = tokenized_examples(reference_pairs, tokenizer, st.prompt_template, ic.max_length)
    try:  # the probing step's lr: a warm-up schedule has decayed the optimizer's to ~0
        probe = InfluenceProbe(model, optimizer, reference, pad, ic.probe_lr or settings.lr, ic.batch_size)
    except ValueError as exc:
        raise InputError(f"{ic.reference}: {exc}") from None
    learnability: dict[str, float | None] = {}
    if "learnability" in ic.signals and todo:  # PerSyn's r_l: the pipeline's scorer (untouched student)
        # Every example, not only those left to probe: the scorer runs the responses that share
        # a prompt on one KV cache, and a lone response in one pass, which differ in the last
        # float bits; scoring only the rest after a resume would split such groups.
        items = [
            ScoreItem(e["id"], e["pair"][0], e["pair"][1], (e["pair"][2:] or [None])[0]) for e in examples
        ]
        learnability = {k: v for batch in LearnabilityScorer(st).score(items) for k, v, _ in batch}
    with results.open("a") as f:
        for ex in todo:
            (tok,) = tokenized_examples([ex["pair"]], tokenizer, st.prompt_template, ic.max_length)
            rec = {"key": key, "id": ex["id"], "group": ex["group"]}
            start = time.perf_counter()
            if not bool((tok.labels != -100).any()):
                rec["error"] = f"no response token within max_length={ic.max_length}"
            else:
                if "influence" in ic.signals:
                    rec["influence"], loss = probe.probe(tok)
                else:
                    with torch.no_grad():
                        loss = float(example_losses(model, [tok], pad)[0])
                if "loss" in ic.signals:
                    rec["loss"] = loss
                if "learnability" in ic.signals:
                    rec["learnability"] = learnability.get(ex["id"])
            rec["seconds"] = round(time.perf_counter() - start, 4)
            f.write(jsonl_text([rec], ascii_only=True))
            f.flush()
            os.fsync(f.fileno())
            done[ex["id"]] = rec
            crash_point(EXAMPLE_STORED)
    stored = [done[e["id"]] for e in examples]
    summary = {
        "key": key,
        "examples": len(examples),
        "failed": sum("error" in r for r in stored),
        "probed_now": len(todo),
        "reference_examples": len(probe.reference),
        "reference_loss": probe.base_loss,
        "probe_lr": optimizer.param_groups[0]["lr"],
        "warmup_seconds": warm_seconds,
        "seconds_per_example": (
            round(sum(r["seconds"] for r in stored) / len(stored), 4) if stored else None
        ),
        "signals": list(ic.signals),
        "helpful": sum(r.get("influence", 0) < 0 for r in stored if "influence" in r),
        "harmful": sum(r.get("influence", 0) > 0 for r in stored if "influence" in r),
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
