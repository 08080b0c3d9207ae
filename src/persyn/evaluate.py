"""Accuracy of a model on a held-out verifiable prompt set (greedy, batched), with a Wilson 95%
interval, after checking that no evaluation prompt is a training prompt.

The model sees each prompt exactly as the student sees it in fine-tuning (``persyn.training.sft``) and
learnability scoring: the chat template over the user turn alone with the generation prompt (no
system prompt), or for a model without a chat template the student's ``prompt_template``.
Generation goes through ``TransformersEngine``; correctness is ``VerifierScorer``'s
(math-verify: the response's final answer equals the gold answer; for a non-numeric
reasoning_gym task, the task's own ``score_answer``: ``scoring.tasks``).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from persyn.core.errors import ConfigError, InputError
from persyn.core.io import dataset_lines
from persyn.core.records import Prompt
from persyn.core.templates import DEFAULT_PROMPT_TEMPLATE  # noqa: F401 - also exported here


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (E. B. Wilson, "Probable inference, the
    law of succession, and statistical inference", JASA 22(158):209-212, 1927); 95% for
    z = 1.96. With p = correct / n:

        (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)

    e.g. 8 of 10 → (0.490, 0.943). Returns ``(lo, hi)`` within [0, 1]; ``(0.0, 1.0)`` for
    n = 0 (no observation: every proportion is possible).

    Raises:
        ValueError: ``n < 0`` or ``correct`` outside [0, n].
    """
    if n < 0:
        raise ValueError(f"n={n} is negative")
    if n == 0:
        return 0.0, 1.0
    if not 0 <= correct <= n:
        raise ValueError(f"correct={correct} is outside [0, {n}]")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def normalize_prompt(text: str) -> str:
    """The form in which prompts are compared for overlap: whitespace runs → one space, stripped."""
    return " ".join(text.split())


def training_prompts(dataset: str | Path) -> list[str]:
    """The user turns (prompts) of a persyn ``dataset.jsonl``, in file order (the first user
    turn of each line); blank lines are skipped.

    Raises:
        InputError: a missing file, malformed JSON or a line that is not an SFT example
            (``DatasetLine.from_dict`` with ``training``; names the file and line).
    """
    path = Path(dataset)
    if not path.is_file():
        raise InputError(f"{path}: dataset not found")
    return [
        next(m["content"] for m in line.turns if m["role"] == "user")
        for _, _, line in dataset_lines(path, training=True)
    ]


def check_disjoint(prompts: list[Prompt], train_prompts: Iterable[str]) -> None:
    """Refuse an evaluation set that shares a prompt with the training prompts (compared after
    ``normalize_prompt``).

    Raises:
        InputError: naming how many evaluation prompts overlap, and the first one's id and
            text (truncated to 80 characters).
    """
    seen = {normalize_prompt(t) for t in train_prompts}
    overlap = [p for p in prompts if normalize_prompt(p.text) in seen]
    if overlap:
        p = overlap[0]
        text = p.text if len(p.text) <= 80 else p.text[:77] + "..."
        raise InputError(
            f"the evaluation set overlaps the training prompts: {len(overlap)} of {len(prompts)} "
            f"evaluation prompts are training prompts (first: id {p.id}: {text!r}); "
            "draw the evaluation set with another seed or leave those prompts out"
        )


@dataclass
class EvalResult:
    """The outcome of ``evaluate``.

    ``n`` prompts, ``correct`` of them answered right, ``accuracy`` = correct / n, and its
    Wilson 95% interval [``ci_low``, ``ci_high``]. ``n_failed``: completions that failed (e.g.
    a prompt longer than the context, an empty response), counted as wrong. ``seconds``: wall
    time of the whole evaluation (model loading, generation, verification). ``records``: one
    dict per prompt, in the order given: ``id``, ``prompt``, ``response``, ``gold``,
    ``correct`` (bool), ``error`` (None, or why the completion failed), ``note`` (None, or
    the verifier's remark, e.g. no answer found in the response), ``finish_reason`` ("stop" |
    "length" | None) and ``completion_tokens``.
    """

    model: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    seconds: float
    n_failed: int = 0
    records: list[dict] = field(default_factory=list)
    dtype: str = "float32"  # the weights' dtype the answers were generated in
    dtype_reason: str = ""

    def summary(self) -> dict:
        """Every field but ``records``."""
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
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    progress: bool = True,
    dtype: str = "auto",
) -> EvalResult:
    """Greedy accuracy of ``model`` (alias, HF id or local path, e.g. a ``persyn sft`` output)
    on ``prompts`` (each with a gold ``answer``).

    Before any generation, the prompts are checked against ``train_prompts`` (``check_disjoint``).
    Generation: ``TransformersEngine`` with temperature 0, ``batch_size`` prompts at a time,
    at most ``max_new_tokens`` new tokens; the prompt is the chat template over the user turn
    (no system prompt), or ``prompt_template`` (with ``{prompt}``) for a model without a chat
    template: the rendering ``persyn.training.sft`` fine-tunes on. A model already loaded in the
    shared cache is left there; one loaded here is released at the end. ``dtype``: the weights'
    dtype (``auto``: bf16 where the hardware runs it natively, ``persyn.models.loading.model_dtype``);
    the result records the dtype used and why.

    A response is correct when ``VerifierScorer`` scores it 1.0 (math-verify finds its final
    answer equal to the gold answer; a prompt of a non-numeric reasoning_gym task, by that
    task's own ``score_answer``: ``scoring.tasks``). A failed completion, or a response without a parsable
    answer, is wrong and recorded with its ``error``.

    Raises:
        InputError: no prompts, duplicate prompt ids, a prompt without a gold answer, or an
            evaluation prompt that is also a training prompt.
        MissingAssetError: the model is not installed.
    """
    from persyn.core.records import ScoreItem

    if not prompts:
        raise InputError("the evaluation set is empty")
    by_id: dict[str, Prompt] = {}
    for p in prompts:
        if p.id in by_id:
            raise InputError(f"evaluation prompt id {p.id} appears twice")
        if p.answer is None or not str(p.answer).strip():
            raise InputError(f"evaluation prompt {p.id}: no gold answer")
        by_id[p.id] = p
    check_disjoint(prompts, train_prompts)

    from persyn.scoring.quality import VerifierScorer
    from persyn.scoring.tasks import task_of

    start = time.perf_counter()
    tasks = {p.id: t for p in prompts if (t := task_of(p.metadata)) is not None}
    verifier = VerifierScorer({p.id: str(p.answer) for p in prompts}, tasks)
    records: dict[str, dict] = {}
    answers = greedy_answers(model, prompts, batch_size, max_new_tokens, prompt_template, dtype, progress)
    for batch in answers.batches:
        ok = [(pid, c) for pid, c in batch if c.error is None]
        items = [ScoreItem(pid, by_id[pid].text, c.text) for pid, c in ok]
        scores = {key: (s, note) for part in verifier.score(items) for key, s, note in part}
        for pid, c in batch:
            score, note = scores.get(pid, (None, None))
            records[pid] = {
                "id": pid,
                "prompt": by_id[pid].text,
                "response": c.text,
                "gold": by_id[pid].answer,
                "correct": score == 1.0,
                "error": c.error,
                "note": note,
                "finish_reason": c.finish_reason,
                "completion_tokens": c.completion_tokens,
            }
    resolved, reason = answers.dtype
    rows = [records[p.id] for p in prompts]
    n, correct = len(rows), sum(r["correct"] for r in rows)
    lo, hi = wilson_interval(correct, n)
    failed = sum(r["error"] is not None for r in rows)
    seconds = time.perf_counter() - start
    return EvalResult(model, n, correct, correct / n, lo, hi, seconds, failed, rows, resolved, reason)


class GreedyAnswers:
    """A model's greedy answers to prompts, batch by batch (``batches``: lists of ``(prompt
    id, Completion)``), and the weights' dtype with why (``dtype``), set once loaded."""

    def __init__(self, model, prompts, batch_size, max_new_tokens, prompt_template, dtype, progress):
        from persyn.core.hardware import DTYPE_SETTINGS

        if dtype not in DTYPE_SETTINGS:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPE_SETTINGS)}, got {dtype!r}")
        self.args = (model, prompts, batch_size, max_new_tokens, prompt_template, dtype, progress)
        self.dtype: tuple[str, str] = ("", "")

    @property
    def batches(self):
        from tqdm.auto import tqdm

        from persyn.engines.transformers_engine import TransformersEngine, TransformersTeacher
        from persyn.models.loading import load_tokenizer, model_dtype, scoped_model

        model, prompts, batch_size, max_new_tokens, prompt_template, dtype, progress = self.args
        chat = bool(getattr(load_tokenizer(model), "chat_template", None))
        teacher = TransformersTeacher(
            name="eval",
            model=model,
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            prompt_template=None if chat else prompt_template,
            dtype=dtype,
        )
        self.dtype = model_dtype(dtype)
        with scoped_model(model, dtype):  # e.g. a fine-tuned student, evaluated once: freed after
            engine = TransformersEngine(teacher, seed=0)
            check_rendering(engine, prompts[0].text, prompt_template)
            desc = f"evaluate · {Path(model).name}"
            with tqdm(total=len(prompts), desc=desc, unit="prompt", disable=not progress) as bar:
                for batch in engine.generate(prompts):
                    yield batch
                    bar.update(len(batch))


def greedy_answers(
    model: str,
    prompts: list[Prompt],
    batch_size: int,
    max_new_tokens: int,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    dtype: str = "auto",
    progress: bool = True,
) -> GreedyAnswers:
    """``model``'s greedy answers to ``prompts`` as the student sees them (the module
    docstring): ``TransformersEngine`` at temperature 0, ``batch_size`` prompts at a time, at
    most ``max_new_tokens`` new tokens, the weights in ``dtype`` (``auto``: bf16 where the
    hardware runs it natively); a model already in the shared cache is left there, one loaded
    here is released after the last batch.

    Raises:
        ConfigError: an unknown ``dtype``.
        MissingAssetError: the model is not installed (when the batches are read).
    """
    return GreedyAnswers(model, prompts, batch_size, max_new_tokens, prompt_template, dtype, progress)


def check_rendering(engine, prompt: str, template: str) -> None:
    """Warn when the engine's prompt tokens (``TransformersEngine.prompt_ids``) differ from those
    ``persyn.training.sft`` fine-tunes on (``student_tokens``). Both follow ``persyn.tokenization``'s
    BOS rule, so a difference means a rendering difference (e.g. a chat template that rewrites
    earlier turns)."""
    from persyn.tokenization import student_tokens

    seen = engine.prompt_ids(prompt)
    trained = student_tokens(engine.tokenizer, prompt, "x", template)[0]
    if seen != trained:
        warnings.warn(
            f"evaluate: the prompt tokens of {engine.teacher.model} differ from the fine-tuning "
            f"format ({len(seen)} vs {len(trained)} tokens); accuracy may be "
            "understated",
            stacklevel=3,
        )


def write_eval(result: EvalResult, path: str | Path) -> None:
    """Write ``{"summary": result.summary(), "records": result.records}`` as JSON to ``path``
    (parent directories created), atomically: a temporary file renamed into place.

    Raises:
        PersynError: the file cannot be written.
    """
    from persyn.core.io import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"summary": result.summary(), "records": result.records}, indent=1) + "\n")
