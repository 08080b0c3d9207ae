"""Accuracy of a model on a held-out verifiable prompt set (greedy, batched), with a Wilson 95%
interval, after checking that no evaluation prompt is a training prompt."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from persyn.errors import InputError
from persyn.prompts import Prompt


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927, JASA 22:209), 95% for
    z = 1.96:  (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n).

    Returns (0.0, 1.0) for n = 0 (no information).

    Raises:
        ValueError: ``correct`` outside [0, n].
    """
    if n == 0:
        return 0.0, 1.0
    if not 0 <= correct <= n:
        raise ValueError(f"correct={correct} is outside [0, {n}]")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _norm(text: str) -> str:
    return " ".join(text.split())


def training_prompts(dataset: str | Path) -> list[str]:
    """The user turns of a persyn ``dataset.jsonl`` (the prompts a student was trained on).

    Raises:
        InputError: a missing file, malformed JSON or a line without a user turn (file:line).
    """
    path = Path(dataset)
    if not path.exists():
        raise InputError(f"{path}: dataset not found")
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                user = next(m["content"] for m in rec["messages"] if m["role"] == "user")
            except (json.JSONDecodeError, KeyError, TypeError, StopIteration) as exc:
                raise InputError(f"{path}:{i}: not a dataset line with a user message ({exc!r})") from None
            out.append(user)
    return out


def check_disjoint(prompts: list[Prompt], train_prompts: Iterable[str]) -> None:
    """Raise when an evaluation prompt (whitespace-normalised) is also a training prompt.

    Raises:
        InputError: naming how many overlap and the first one's id and text.
    """
    seen = {_norm(t) for t in train_prompts}
    overlap = [p for p in prompts if _norm(p.text) in seen]
    if overlap:
        p = overlap[0]
        text = p.text if len(p.text) <= 80 else p.text[:77] + "..."
        raise InputError(
            f"evaluation set overlaps the training prompts: {len(overlap)} of {len(prompts)} "
            f"(first: {p.id}: {text!r}); draw the evaluation set with another seed or drop them"
        )


@dataclass
class EvalResult:
    """``n`` prompts, ``correct`` of them right; ``accuracy`` = correct / n with its Wilson 95%
    interval [``ci_low``, ``ci_high``]; ``records`` one dict per prompt (id, prompt, response,
    gold, correct, error)."""

    model: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    seconds: float
    records: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("records")
        return d


def evaluate(
    model: str,
    prompts: list[Prompt],
    *,
    train_prompts: Iterable[str] = (),
    batch_size: int = 16,
    max_new_tokens: int = 256,
    prompt_template: str | None = None,
    progress: bool = True,
) -> EvalResult:
    """Greedy accuracy of ``model`` (alias, HF id or local path) on ``prompts``.

    The prompt is rendered exactly as for training and learnability scoring: the chat template
    over the single user turn with the generation prompt (``prompt_template`` for a model
    without one). Correct = math-verify finds the gold answer equal to the response's final
    answer (as ``VerifierScorer``). A failed completion (e.g. a prompt longer than the context)
    counts as wrong and is recorded.

    Raises:
        InputError: an evaluation prompt is a training prompt, or one has no gold answer.
    """
    from math_verify import parse, verify
    from tqdm.auto import tqdm

    from persyn.config import TeacherConfig
    from persyn.engines.transformers_engine import TransformersEngine

    check_disjoint(prompts, train_prompts)
    for p in prompts:
        if p.answer is None or not str(p.answer).strip():
            raise InputError(f"evaluation prompt {p.id}: no gold answer")
    teacher = TeacherConfig(
        name="eval",
        engine="transformers",
        model=model,
        temperature=0.0,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        prompt_template=None,
    )
    from persyn.assets import _LOADED, release_model, resolve_model

    start = time.perf_counter()
    was_loaded = resolve_model(model) in _LOADED
    engine = TransformersEngine(teacher, seed=0)
    if prompt_template and not getattr(engine.tokenizer, "chat_template", None):
        teacher.prompt_template = prompt_template  # base model: the student's plain template
    by_id = {p.id: p for p in prompts}
    records = []
    with tqdm(
        total=len(prompts), desc=f"evaluate · {Path(model).name}", unit="prompt", disable=not progress
    ) as bar:
        for batch in engine.generate(prompts):
            for pid, c in batch:
                p = by_id[pid]
                ok = False
                if c.error is None:
                    pred = parse(c.text)
                    ok = bool(pred) and bool(verify(parse(str(p.answer)), pred))
                records.append(
                    {
                        "id": pid,
                        "prompt": p.text,
                        "response": c.text,
                        "gold": p.answer,
                        "correct": ok,
                        "error": c.error,
                    }
                )
            bar.update(len(batch))
    if not was_loaded:  # a fine-tuned student is evaluated once: free its memory
        release_model(model)
    correct = sum(r["correct"] for r in records)
    lo, hi = wilson_interval(correct, len(records))
    order = {p.id: i for i, p in enumerate(prompts)}
    records.sort(key=lambda r: order[r["id"]])
    return EvalResult(
        model,
        len(records),
        correct,
        correct / max(1, len(records)),
        lo,
        hi,
        time.perf_counter() - start,
        records,
    )


def write_eval(result: EvalResult, path: str | Path) -> None:
    """Write ``{"summary": ..., "records": [...]}`` to ``path`` atomically."""
    from persyn.pipeline import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"summary": result.summary(), "records": result.records}, indent=1) + "\n")
