"""Benchmark: student log-likelihood (learnability, PerSyn Eq. 1) over the same ~200 responses,
three ways in one run, for two layouts of the responses:

- ``calibration``: 50 prompts x 4 teacher responses each, as the calibration stage scores them
  (worked solution, answer only, first step + answer, "Let's think step by step" + solution);
- ``distinct``: 200 prompts with one response each (the worked solution).

The three ways:

1. persyn's LearnabilityScorer with its default ``batching: auto`` (on a CPU: each prompt run
   once, its responses unpadded on the prompt's KV cache), and, for reference, with
   ``batching: padded`` (length-sorted token-budget batches, left padding, logits only for
   response positions: the GPU default);
2. a per-example loop (one unpadded forward pass per response, full logits);
3. a bare batched forward pass over the same padded batches as (1), full logits, then a
   log-softmax gather: what a plain batched implementation does, with no bookkeeping.

Prints seconds, responses/s, the ratios persyn/loop and persyn/bare, and the largest
difference between the three sets of scores. Usage: python benchmarks/scoring.py [--n 200]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from persyn.config import PromptsConfig, StudentConfig  # noqa: E402
from persyn.core.records import ScoreItem  # noqa: E402
from persyn.models.loading import load_causal_lm, load_tokenizer  # noqa: E402
from persyn.prompts import load_prompts  # noqa: E402
from persyn.scoring.learnability import LearnabilityScorer, token_budget_batches  # noqa: E402
from persyn.tokenization import student_tokens  # noqa: E402


def responses(layout: str, n: int) -> list[ScoreItem]:
    if layout == "distinct":
        prompts, _ = load_prompts(PromptsConfig(source="reasoning_gym", task="gsm_symbolic", size=n), seed=0)
        return [ScoreItem(p.id, p.text, p.solution) for p in prompts]
    prompts, _ = load_prompts(PromptsConfig(source="reasoning_gym", task="gsm_symbolic", size=n // 4), seed=0)
    items = []
    for p in prompts:
        styles = {
            "solution": p.solution,
            "answer": f"#### {p.answer}",
            "terse": f"{p.solution.splitlines()[0]}\n#### {p.answer}",
            "verbose": f"Let's think step by step.\n{p.solution}",
        }
        items += [ScoreItem(f"{p.id}/{k}", p.text, v) for k, v in styles.items()]
    return items


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--layout", choices=["calibration", "distinct", "both"], default="both")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batch-tokens", type=int, default=8192)
    args = ap.parse_args()
    for layout in ["calibration", "distinct"] if args.layout == "both" else [args.layout]:
        print(f"== layout: {layout}")
        bench(responses(layout, args.n), args)


def bench(items: list[ScoreItem], args) -> None:
    cfg = StudentConfig(model=args.model, batch_tokens=args.batch_tokens)
    tok = load_tokenizer(args.model)
    model = load_causal_lm(args.model)
    encoded = [student_tokens(tok, it.prompt, it.response, cfg.prompt_template) for it in items]
    n_tokens = sum(len(p) + len(r) for p, r in encoded)
    print(
        f"{len(items)} responses, {n_tokens} tokens, model {args.model}, torch threads {torch.get_num_threads()}"
    )

    scorer = LearnabilityScorer(cfg)
    scorer._load()
    t = time.perf_counter()
    ours = {k: v for rows in scorer.score(items) for k, v, _ in rows}
    t_persyn = time.perf_counter() - t
    padded_scorer = LearnabilityScorer(cfg.model_copy(update={"batching": "padded"}))
    t = time.perf_counter()
    padded_scores = {k: v for rows in padded_scorer.score(items) for k, v, _ in rows}
    t_padded = time.perf_counter() - t

    t = time.perf_counter()
    loop = {}
    with torch.inference_mode():
        for it, (p, r) in zip(items, encoded, strict=True):
            ids = torch.tensor([p + r])
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
            lp = logp.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
            loop[it.key] = float(lp[-len(r) :].mean())
    t_loop = time.perf_counter() - t

    lengths = [len(p) + len(r) for p, r in encoded]
    batches = token_budget_batches(lengths, args.batch_tokens)
    padded = []
    for b in batches:  # the same padded tokens as persyn's batches, built before timing
        width = max(lengths[i] for i in b)
        ids = torch.full((len(b), width), tok.pad_token_id)
        mask = torch.zeros((len(b), width), dtype=torch.long)
        for j, i in enumerate(b):
            seq = encoded[i][0] + encoded[i][1]
            ids[j, : len(seq)] = torch.tensor(seq)
            mask[j, : len(seq)] = 1
        padded.append((b, ids, mask))
    t = time.perf_counter()
    bare = {}
    with torch.inference_mode():
        for b, ids, mask in padded:
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
            lp = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            for j, i in enumerate(b):
                p, r = encoded[i]
                bare[items[i].key] = float(lp[j, len(p) - 1 : len(p) + len(r) - 1].mean())
    t_bare = time.perf_counter() - t

    diff_loop = max(abs(ours[k] - loop[k]) for k in ours)
    diff_bare = max(abs(ours[k] - bare[k]) for k in ours)
    diff_padded = max(abs(ours[k] - padded_scores[k]) for k in ours)
    n = len(items)
    print(
        f"persyn scorer      {t_persyn:7.2f} s  {n / t_persyn:7.1f} responses/s  (batching=auto: {scorer._mode()})"
    )
    print(f"persyn, padded     {t_padded:7.2f} s  {n / t_padded:7.1f} responses/s  (batching=padded)")
    print(f"per-example loop   {t_loop:7.2f} s  {n / t_loop:7.1f} responses/s")
    print(f"bare batched pass  {t_bare:7.2f} s  {n / t_bare:7.1f} responses/s")
    print(
        f"speed: persyn / loop = {t_loop / t_persyn:.2f}x (target >= 3x); "
        f"persyn / bare = {t_bare / t_persyn:.2f}x (target >= 0.8x)"
    )
    print(
        f"max |difference| in r_l: vs loop {diff_loop:.2e}, vs bare {diff_bare:.2e}, "
        f"vs padded {diff_padded:.2e} nats/token"
    )


if __name__ == "__main__":
    main()
