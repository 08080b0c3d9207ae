"""IFEval as a held-out benchmark (Zhou et al. 2023, arXiv 2311.07911): a model's greedy answers
to IFEval's 541 prompts, as the student sees them (``persyn.evaluate.greedy_answers``), checked by
Google's rule checkers (``persyn.ifeval.follows``), and IFEval's four numbers: prompt-level
strict and loose accuracy (a prompt counts when every one of its instructions is followed) and
instruction-level strict and loose accuracy (each instruction counts), each with a Wilson 95%
interval; per instruction type; and the share of answers cut at ``max_new_tokens``.

The instruction-level interval treats the 834 instructions as independent draws, which they are
not (several share a prompt and a response): read it as a lower bound on the uncertainty. The
primary figure of a comparison is prompt-level strict accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from persyn.core.records import Prompt
from persyn.core.templates import DEFAULT_PROMPT_TEMPLATE
from persyn.evaluate import check_disjoint, greedy_answers, wilson_interval

#: IFEval's four numbers, in its order.
MEASURES = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")


def ifeval_prompt_set(size: int | None = None) -> list[Prompt]:
    """IFEval's prompts (the first ``size`` when given) as persyn prompts: id ``ifeval-KEY``, the
    instructions in the metadata (``instruction_id_list``, ``kwargs``).

    Raises:
        MissingAssetError: the package is missing or its data file is not IFEval's.
    """
    from persyn.ifeval import ifeval_prompts

    rows = ifeval_prompts()[:size] if size else ifeval_prompts()
    return [
        Prompt(
            f"ifeval-{r['key']}",
            r["prompt"],
            metadata={"instruction_id_list": r["instruction_id_list"], "kwargs": r["kwargs"]},
        )
        for r in rows
    ]


@dataclass
class IFEvalResult:
    """The outcome of ``evaluate_ifeval``.

    ``n`` prompts with ``n_instructions`` instructions; for each of ``MEASURES`` a dict
    ``{"correct", "n", "accuracy", "ci_low", "ci_high"}`` (Wilson 95%); ``per_type``:
    instruction type → ``{"n", "strict", "loose"}`` (shares followed); ``truncated``: the share
    of answers cut at ``max_new_tokens``; ``n_failed``: completions that failed (counted as
    following nothing); ``records``: one dict per prompt (``id``, ``prompt``, ``response``,
    ``instruction_id_list``, ``strict`` and ``loose`` (a bool per instruction), ``correct``
    (all strict), ``error``, ``finish_reason``, ``completion_tokens``); ``seconds``: wall time.
    """

    model: str
    n: int
    n_instructions: int
    prompt_strict: dict
    prompt_loose: dict
    instruction_strict: dict
    instruction_loose: dict
    per_type: dict[str, dict]
    truncated: float
    n_failed: int
    max_new_tokens: int
    seconds: float
    dtype: str = "float32"
    dtype_reason: str = ""
    records: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        """Every field but ``records``, and the primary figure, prompt-level strict accuracy, as
        an evaluation's ``accuracy``, ``correct``, ``ci_low`` and ``ci_high`` (what an
        experiment's tables and paired comparisons read)."""
        d = asdict(self)
        d.pop("records")
        primary = self.prompt_strict
        d.update(accuracy=primary["accuracy"], correct=primary["correct"], ci_low=primary["ci_low"])
        d.update(ci_high=primary["ci_high"])
        return d


def _measure(correct: int, n: int) -> dict:
    lo, hi = wilson_interval(correct, n)
    return {"correct": correct, "n": n, "accuracy": correct / n if n else 0.0, "ci_low": lo, "ci_high": hi}


def ifeval_scores(records: list[dict]) -> dict:
    """IFEval's four numbers and the per-type shares from per-prompt records (each with
    ``instruction_id_list``, ``strict`` and ``loose``: one bool per instruction), as IFEval's
    ``evaluation_main`` computes them."""
    n = len(records)
    flat = [
        (i, s, lo)
        for r in records
        for i, s, lo in zip(r["instruction_id_list"], r["strict"], r["loose"], strict=True)
    ]
    per_type: dict[str, dict] = {}
    for iid, s, lo in flat:
        row = per_type.setdefault(iid, {"n": 0, "strict": 0, "loose": 0})
        row["n"] += 1
        row["strict"] += s
        row["loose"] += lo
    for row in per_type.values():
        row["strict"] /= row["n"]
        row["loose"] /= row["n"]
    return {
        "prompt_strict": _measure(sum(all(r["strict"]) for r in records), n),
        "prompt_loose": _measure(sum(all(r["loose"]) for r in records), n),
        "instruction_strict": _measure(sum(s for _, s, _ in flat), len(flat)),
        "instruction_loose": _measure(sum(lo for _, _, lo in flat), len(flat)),
        "per_type": dict(sorted(per_type.items())),
        "n_instructions": len(flat),
    }


def evaluate_ifeval(
    model: str,
    prompts: list[Prompt] | None = None,
    *,
    train_prompts: Iterable[str] = (),
    batch_size: int = 16,
    max_new_tokens: int = 512,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    dtype: str = "auto",
    progress: bool = True,
) -> IFEvalResult:
    """``model`` (alias, HF id or local path) on IFEval's prompts (``prompts``: default all 541,
    ``ifeval_prompt_set``), greedy, checked strictly and loosely.

    Raises:
        InputError: an evaluation prompt that is also a training prompt, or instructions the
            checkers refuse.
        MissingAssetError: the model, IFEval's package or the checkers' dependencies are missing.
    """
    from persyn.ifeval import follows

    prompts = prompts if prompts is not None else ifeval_prompt_set()
    check_disjoint(prompts, train_prompts)
    start = time.perf_counter()
    by_id = {p.id: p for p in prompts}
    records: dict[str, dict] = {}
    answers = greedy_answers(model, prompts, batch_size, max_new_tokens, prompt_template, dtype, progress)
    for batch in answers.batches:
        for pid, c in batch:
            p = by_id[pid]
            ids, kwargs = p.metadata["instruction_id_list"], p.metadata["kwargs"]
            text = "" if c.error else c.text
            records[pid] = {
                "id": pid,
                "prompt": p.text,
                "response": c.text,
                "instruction_id_list": ids,
                "strict": (strict := follows(text, ids, kwargs, p.text)),
                "loose": follows(text, ids, kwargs, p.text, loose=True),
                "correct": all(strict),  # prompt-level strict: what paired comparisons count
                "error": c.error,
                "finish_reason": c.finish_reason,
                "completion_tokens": c.completion_tokens,
            }
    rows = [records[p.id] for p in prompts]
    scores = ifeval_scores(rows)
    resolved, reason = answers.dtype
    return IFEvalResult(
        model,
        len(rows),
        scores["n_instructions"],
        scores["prompt_strict"],
        scores["prompt_loose"],
        scores["instruction_strict"],
        scores["instruction_loose"],
        scores["per_type"],
        sum(r["finish_reason"] == "length" for r in rows) / len(rows),
        sum(r["error"] is not None for r in rows),
        max_new_tokens,
        time.perf_counter() - start,
        resolved,
        reason,
        rows,
    )
