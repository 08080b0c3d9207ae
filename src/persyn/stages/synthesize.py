"""``persyn synthesize``: a generator writes new prompts from seed examples, before calibration.

Rounds of generator requests (``synthesis.samples`` samples each) go through the teacher
machinery (``runtime.responses``), so every sample is stored as it comes back and a killed run
resumes without regenerating it: a round's requests depend only on the seed, the round number
and what earlier rounds kept, all of which a resumed run recomputes from the store. Each sample
is parsed, then dropped when it is a near-duplicate (ROUGE-L against the seeds and the prompts
kept so far, then embedding cosine), or when ``answers: computed`` finds no answer in it.
Kept prompts get novelty against the seeds and, with a ``target`` set, relevance (NormSim);
``relevance_band`` then selects what ``prompts.source: synthetic`` reads.

Writes ``OUTPUT_DIR/synthetic/``: ``prompts.jsonl`` (the selected prompts), ``candidates.jsonl``
(every kept candidate with its measures, whether it was selected, and the request that produced
it: ``group``, its ``request`` text and the generator's raw output ``generated``) and ``summary.json``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable

import numpy as np

from persyn.config import RunConfig, SynthesisConfig
from persyn.core.errors import ConfigError, PersynError
from persyn.core.hashing import stable_hash
from persyn.core.io import jsonl_text, write_atomic
from persyn.core.records import Prompt
from persyn.core.summary import SynthesisSummary
from persyn.engines.base import SAMPLE
from persyn.prompts import load_prompts
from persyn.router.embeddings import PromptEncoder
from persyn.runtime.context import RunContext, stage
from persyn.runtime.embeddings import prompt_embeddings
from persyn.runtime.responses import generate_responses
from persyn.synthesis.answers import arithmetic_expression, computed_answer
from persyn.synthesis.dedup import RougeDedup, cosine_duplicates
from persyn.synthesis.generator import Generator, generator_class
from persyn.synthesis.normsim import novelty, percentile_band, relevance


def synthesis_config(cfg: RunConfig) -> SynthesisConfig:
    """The run's ``synthesis`` section. Raises ConfigError when it has none."""
    if cfg.synthesis is None:
        raise ConfigError("persyn synthesize needs a 'synthesis' section in the config")
    return cfg.synthesis


GROUP = "synthesis_request"


def _requests(
    generator: Generator,
    syn: SynthesisConfig,
    seeds: list[str],
    kept: list[str],
    round_no: int,
    n: int,
    seed: int,
):
    """Round ``round_no``'s ``n`` requests of ``generator``, each sampled ``syn.samples`` times,
    as Prompts."""
    rng = random.Random(int(stable_hash(["synthesis-round", seed, round_no])[:12], 16))
    out = []
    for i in range(n):
        text = generator.request(syn, seeds, kept, rng)
        for j in range(syn.samples):
            pid = f"synthesis:r{round_no}:q{i}:s{j}"
            sample = generator.sample_id(round_no, i, j)
            # GROUP: the request the sample answers (Montessori-Instruct pairs samples within it)
            out.append(
                Prompt(id=pid, text=text, metadata={SAMPLE: sample, GROUP: f"synthesis:r{round_no}:q{i}"})
            )
    return out


@stage("synthesize", -1)
def synthesize(ctx: RunContext, answer: Callable[[RunConfig], object] | None = None) -> SynthesisSummary:
    """Run the generator until ``synthesis.count`` prompts are kept or the request budget is
    spent; write the files (see the module docstring). Returns the summary. ``answer``: runs
    PerSyn end to end on a config; needed by ``generator: montessori`` (``montessori.loop``).

    Raises:
        ConfigError: no ``synthesis`` section.
        InputError: an empty or unreadable seed (or target) set.
        PersynError: the generator wrote nothing usable (the message shows a sample).
    """
    syn = synthesis_config(ctx.cfg)
    start = time.perf_counter()
    model = syn.model
    generator = generator_class(syn.generator)()
    if generator.ADAPTS_TO_STUDENT:  # tune it to the student first, then write
        from persyn.montessori.loop import adapt_loop

        if answer is None:
            raise ConfigError(
                f"synthesis.generator '{syn.generator}' runs PerSyn inside: use Pipeline.synthesize"
            )
        model = model.model_copy(update={"model": adapt_loop(ctx.cfg, answer)})
    seed_prompts, _ = load_prompts(syn.seeds, ctx.cfg.seed, require_answer=False)
    seeds = [p.text for p in seed_prompts]
    encoder = PromptEncoder.of(ctx.cfg.router)
    seed_emb = prompt_embeddings(ctx, seeds, encoder)
    rouge = RougeDedup(syn.rouge_threshold, seen=seeds)
    kept: list[dict] = []
    kept_emb: list[np.ndarray] = []
    counts = dict.fromkeys(
        (
            "requests",
            "samples",
            "failed",
            "unparsable",
            "rouge_duplicates",
            "embedding_duplicates",
            "no_answer",
        ),
        0,
    )
    example_unparsable: str | None = None
    budget, round_no = syn.request_budget(), 0
    generation_seconds = 0.0  # the generator's time on the stored samples (a resumed run counts them too)
    while len(kept) < syn.count and counts["requests"] < budget:
        need = math.ceil((syn.count - len(kept)) / syn.samples)
        n = min(budget - counts["requests"], max(1, need))
        reqs = _requests(generator, syn, seeds, [k["prompt"] for k in kept], round_no, n, ctx.cfg.seed)
        # A failed sample is not retried: a resumed run must see what the first run saw, or the
        # prompts it keeps, and so every later round's requests, would differ.
        generate_responses(ctx, [(model, reqs)], "synthesis", retry_failed=False)
        keys = {p.id: ctx.key_of(model, p) for p in reqs}
        gens = ctx.store.generations(keys.values())
        counts["requests"] += n
        fresh: list[dict] = []
        for p in reqs:
            g = gens.get(keys[p.id])
            counts["samples"] += 1
            if g is not None:
                generation_seconds += g.seconds or 0.0
            if g is None or not g.ok:
                counts["failed"] += 1
                continue
            parsed = generator.parse(g.response)
            if parsed is None:
                counts["unparsable"] += 1
                example_unparsable = example_unparsable or g.response
                continue
            text, response = parsed
            gold = computed_answer(text) if syn.answers == "computed" else None
            if syn.answers == "computed" and gold is None:
                counts["no_answer"] += 1
                continue
            if not rouge.add(text):
                counts["rouge_duplicates"] += 1
                continue
            fresh.append(
                {
                    "prompt": text,
                    "response": response,
                    "answer": gold,
                    "sample": p.id,
                    "group": p.metadata[GROUP],
                    "request": p.text,
                    "generated": g.response,
                }
            )
        if fresh:
            emb = prompt_embeddings(ctx, [f["prompt"] for f in fresh], encoder)
            dup = np.zeros(len(fresh), dtype=bool)
            if syn.embed_threshold is not None:
                seen = np.concatenate([seed_emb, np.stack(kept_emb)]) if kept_emb else seed_emb
                dup = cosine_duplicates(emb, syn.embed_threshold, seen)
                counts["embedding_duplicates"] += int(dup.sum())
            fresh = [f for f, d in zip(fresh, dup, strict=True) if not d]
            kept_emb += [e for e, d in zip(emb, dup, strict=True) if not d]
        kept += fresh
        round_no += 1
    kept, kept_emb = kept[: syn.count], kept_emb[: syn.count]
    if not kept:
        shown = (example_unparsable or "")[:200]
        raise PersynError(
            f"synthesize: the generator '{model.model}' wrote no usable prompt in "
            f"{counts['samples']} sample(s) ({counts['unparsable']} unparsable, "
            f"{counts['rouge_duplicates'] + counts['embedding_duplicates']} duplicates, "
            f"{counts['no_answer']} without an answer, {counts['failed']} failed)"
            + (f"; e.g. it wrote: {shown!r}" if shown else "")
        )
    summary = _measure_and_write(ctx, syn, kept, np.stack(kept_emb), seed_emb, encoder, counts)
    summary.model = model.model  # with montessori: the tuned generator
    summary.seconds = round(time.perf_counter() - start, 2)  # this call's wall time
    summary.generation_seconds = round(generation_seconds, 2)
    summary.generation_seconds_per_kept = round(generation_seconds / len(kept), 3)
    write_atomic(ctx.out / "synthetic" / "summary.json", json.dumps(summary.model_dump(), indent=2) + "\n")
    return summary


def _measure_and_write(ctx, syn, kept, emb, seed_emb, encoder, counts) -> SynthesisSummary:
    nov = novelty(seed_emb, emb)
    rel = None
    if syn.target is not None:
        target, _ = load_prompts(syn.target, ctx.cfg.seed, require_answer=False)
        rel = relevance(prompt_embeddings(ctx, [p.text for p in target], encoder), emb, syn.normsim_p)
    selected = np.ones(len(kept), dtype=bool)
    if syn.relevance_band is not None and rel is not None:
        selected = percentile_band(rel, *syn.relevance_band)
    out = ctx.out / "synthetic"
    out.mkdir(parents=True, exist_ok=True)
    rows, chosen = [], []
    for i, k in enumerate(kept):
        row = {
            "id": f"syn-{i:05d}",
            "prompt": k["prompt"],
            "answer": k["answer"],
            "solution": k["response"],
            "answer_source": "computed (sympy)" if k["answer"] is not None else None,
            "generator": syn.generator,
            "novelty": round(float(nov[i]), 6),
            "relevance": None if rel is None else round(float(rel[i]), 6),
        }
        if row["answer"] is not None:
            row["expression"] = arithmetic_expression(k["prompt"])  # the reference styles spell it out
        rows.append(
            {
                **row,
                "selected": bool(selected[i]),
                "from_sample": k["sample"],
                "group": k["group"],
                "request": k["request"],
                "generated": k["generated"],
            }
        )
        if selected[i]:
            chosen.append(row)
    write_atomic(out / "candidates.jsonl", jsonl_text(rows, ascii_only=True))
    write_atomic(out / "prompts.jsonl", jsonl_text(chosen, ascii_only=True))
    n_dups = counts["rouge_duplicates"] + counts["embedding_duplicates"]
    parsed = counts["samples"] - counts["failed"] - counts["unparsable"]
    return SynthesisSummary(
        generator=syn.generator,
        model=syn.model.model,
        **counts,
        kept=len(kept),
        selected=int(selected.sum()),
        duplicate_rate=round(n_dups / parsed, 4) if parsed else None,
        generations_per_kept=round(counts["samples"] / len(kept), 3),
        novelty_mean=round(float(nov.mean()), 4),
        relevance_mean=None if rel is None else round(float(rel.mean()), 4),
        relevance_p=None if rel is None else (str(syn.normsim_p)),
        relevance_band=list(syn.relevance_band) if syn.relevance_band else None,
    )
