"""Quality r_q of a response: answer correctness (verifier) or a reward model's score.

PerSyn uses a reward model (Skywork-Reward) for instruction data and final-answer correctness
for math (1 if correct, else 0). No reward model ships offline; any
``AutoModelForSequenceClassification`` with one output (an HF id or local path) works.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from pydantic import Field

from persyn.core.hashing import stable_hash
from persyn.core.plugins import QUALITY_SCORERS, load
from persyn.core.records import ScoreItem
from persyn.core.settings import Dtype, StrictModel
from persyn.models.loading import load_tokenizer, resolve_model
from persyn.scoring.base import Scorer
from persyn.scoring.learnability import token_budget_batches
from persyn.scoring.tasks import IFEVAL, task_check

# Two numbers joined by an arithmetic operator: an expression left for the reader to compute.
_OPERATION = re.compile(r"\d\s*(?:[-+*/×÷^]|\\times|\\cdot|\\div)\s*\(?-?\d")


def unevaluated(parsed: list) -> bool:
    """Whether math-verify's extraction (``parse`` output: ``[value, extracted text]``) is an
    arithmetic expression of numbers rather than a value."""
    return len(parsed) > 1 and isinstance(parsed[-1], str) and bool(_OPERATION.search(parsed[-1]))


def quality_scorer_class(kind: str) -> Any:
    """The scorer class of quality kind ``kind`` (a name of ``core.plugins.QUALITY_SCORERS``;
    its module is imported now).

    Raises:
        ValueError: an unknown kind (config validation names it first).
    """
    return load(QUALITY_SCORERS, kind, "quality kind")


class NoQualitySettings(StrictModel):
    """The settings of a quality kind that has none of its own (``verifier``, ``majority``)."""


class RewardModelSettings(StrictModel):
    """``reward_model``'s own settings: the sequence classifier (``model``, an HF id or local
    path, required), its batch size and the dtype of its weights."""

    model: str | None = None
    batch_size: Annotated[int, Field(ge=1)] = 8
    dtype: Dtype = "auto"  # the reward model's weights


class QualityScorer(Scorer):
    """A quality scorer: one per ``quality.kind``, listed in ``core.plugins.QUALITY_SCORERS``
    and built by ``make_quality_scorer`` as ``Cls.of(...)``. What the rest of persyn asks of a
    kind, each scorer answers here (never by comparing its name):"""

    #: Whether it loads a model (``quality.model`` required; its dtype is a model slot).
    NEEDS_MODEL: ClassVar[bool] = False
    #: Whether it checks a response against each prompt's gold answer (``prompts.answer_field``).
    NEEDS_GOLD_ANSWER: ClassVar[bool] = False
    #: Whether its gold is the other teachers' majority answer (it scores a prompt's responses
    #: together, so it cannot check one routed response alone: no ``verify:``).
    PEER_GOLD: ClassVar[bool] = False
    #: Whether its scores are 0 or 1.
    BINARY: ClassVar[bool] = False
    #: The quality a response needs to pass by default (``verify.pass_quality`` unset); None when
    #: its scale is a model's own, so there is no default.
    DEFAULT_PASS: ClassVar[float | None] = 1.0
    #: Whether its scores lie in [0, 1] (CAR then divides them as they are; a reward model's are
    #: rescaled to [0, 1] first).
    BOUNDED: ClassVar[bool] = True
    #: The kind's own settings model: ``config.QualityConfig`` is composed of every kind's
    #: (flat, so the ``quality:`` keys are as before), and a field of another kind's set away
    #: from its default is refused.
    Settings: ClassVar[type[StrictModel]] = NoQualitySettings

    @classmethod
    def check_settings(cls, cfg) -> None:
        """Refuse settings (``cfg``: the run's ``QualityConfig``) this kind cannot work with,
        before anything runs.

        Raises:
            ValueError: names the missing or wrong field.
        """
        if cls.NEEDS_MODEL and not getattr(cfg, "model", None):
            raise ValueError(f"kind '{cfg.kind}' needs 'model'")

    @classmethod
    @abstractmethod
    def of(
        cls,
        cfg,
        answers: dict[str, str | None],
        notes: dict[str, str] | None,
        pool,
        tasks: dict[str, tuple[str, dict]] | None,
    ) -> QualityScorer:
        """The scorer for ``cfg`` (the run's ``QualityConfig``, an instance of every kind's
        ``Settings``; the other arguments as ``make_quality_scorer``'s; each kind takes what it
        needs)."""


class VerifierScorer(QualityScorer):
    """r_q = 1.0 when the response's final answer equals the reference answer under
    math-verify (``verify(parse(gold), parse(response))``), else 0.0.

    A response with no parsable answer scores 0.0 (recorded with a note); so does a response
    whose final answer is an unevaluated arithmetic expression (``23 + 60 + 71 =``: an echo of
    the question, which math-verify would evaluate and accept) when the reference answer is not
    one; a prompt without a reference answer is a failed item. An item of a non-numeric
    reasoning_gym task (in ``tasks``) is checked by that task's own ``score_answer`` instead
    (``scoring.tasks``).
    """

    NEEDS_GOLD_ANSWER: ClassVar[bool] = True
    BINARY: ClassVar[bool] = True

    key = stable_hash(["quality/verifier/math-verify/v2", "tasks/v1"])

    def __init__(self, answers: dict[str, str | None], tasks: dict[str, tuple[str, dict]] | None = None):
        """``answers``: item key → reference answer; ``tasks``: item key → (reasoning_gym task,
        entry metadata) for the items its own check scores (``scoring.tasks.task_of``)."""
        self.answers = answers
        self.tasks = {k: t for k, t in (tasks or {}).items() if t[0] != IFEVAL}  # not a gold check

    @classmethod
    def of(cls, cfg, answers, notes, pool, tasks) -> VerifierScorer:
        return cls(answers, tasks)

    def score(self, items: list[ScoreItem]) -> Iterator[list[tuple[str, float | None, str | None]]]:
        from math_verify import parse, verify

        out = []
        for it in items:
            gold = self.answers.get(it.key)
            if gold is None:
                out.append((it.key, None, "no reference answer for this prompt"))
                continue
            if it.key in self.tasks:
                task, metadata = self.tasks[it.key]
                out.append((it.key, *task_check(task, it.response, gold, metadata)))
                continue
            pred, gold_parsed = parse(it.response), parse(gold)
            if not pred:
                out.append((it.key, 0.0, "no answer found in the response"))
                continue
            if unevaluated(pred) and not unevaluated(gold_parsed):
                out.append((it.key, 0.0, "the final answer is an unevaluated expression"))
                continue
            out.append((it.key, 1.0 if verify(gold_parsed, pred) else 0.0, None))
        yield out


class RewardModelScorer(QualityScorer):
    """r_q = the first logit of a sequence-classification reward model on (prompt, response).

    The pair is rendered with the reward model's chat template when it has one, else as
    ``prompt + "\\n\\n" + response``. Batched, length-sorted, right-padded.
    """

    NEEDS_MODEL: ClassVar[bool] = True
    DEFAULT_PASS: ClassVar[float | None] = None  # the model's own scale
    BOUNDED: ClassVar[bool] = False
    Settings = RewardModelSettings

    def __init__(self, cfg: RewardModelSettings):
        assert cfg.model is not None
        self.cfg = cfg
        self.model = None  # loaded on first use

    @classmethod
    def of(cls, cfg, answers, notes, pool, tasks) -> RewardModelScorer:
        return cls(cfg)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        from persyn.models.loading import (
            from_pretrained_kwargs,
            inference_device,
            model_dtype,
            not_local_error,
        )

        if self.model is not None:
            return
        cfg = self.cfg
        path = resolve_model(cfg.model)
        self.tokenizer = load_tokenizer(cfg.model, padding_side="right")
        try:
            self.model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=getattr(torch, model_dtype(cfg.dtype)[0]), **from_pretrained_kwargs(path)
            )
        except OSError as exc:
            raise not_local_error(cfg.model, exc) from None
        self.model.to(inference_device()).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    @property
    def key(self) -> str:
        from persyn.models.fingerprint import model_fingerprint
        from persyn.models.loading import dtype_key

        cfg = self.cfg
        return stable_hash(
            ["quality/reward_model/v1", cfg.model, model_fingerprint(cfg.model), *dtype_key(cfg.dtype)]
        )

    def _render(self, prompt: str, response: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            return self.tokenizer.apply_chat_template(msgs, tokenize=False)
        return f"{prompt}\n\n{response}"

    def _encode(self, items: list[ScoreItem]):
        """(rows of pairs too long for the model, [(index in items, token ids)] that fit)."""
        self._load()
        texts = [self._render(it.prompt, it.response) for it in items]
        limit = getattr(self.model.config, "max_position_embeddings", None) or 4096
        enc = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        too_long = [
            (items[i].key, None, f"too long for the reward model: {len(e)} tokens, limit {limit}")
            for i, e in enumerate(enc)
            if len(e) > limit
        ]
        return too_long, [(i, e) for i, e in enumerate(enc) if len(e) <= limit]

    def _batches(self, fits: list[tuple[int, list[int]]]) -> list[list[int]]:
        lengths = [len(e) for _, e in fits]
        return [
            [fits[b][0] for b in batch] for batch in token_budget_batches(lengths, 512 * self.cfg.batch_size)
        ]

    def work_units(self, items: list[ScoreItem]) -> list[list[ScoreItem]]:
        """The padded batches ``score`` forms (pairs too long for the model first, as one
        group); scoring any run of whole batches forms the same batches."""
        too_long, fits = self._encode(items)
        by_key = {it.key: it for it in items}
        units = [[by_key[k] for k, _, _ in too_long]] if too_long else []
        return units + [[items[i] for i in batch] for batch in self._batches(fits)]

    def score(self, items: list[ScoreItem]) -> Iterator[list[tuple[str, float | None, str | None]]]:
        import torch

        too_long, fits = self._encode(items)
        if too_long:
            yield too_long
        enc = dict(fits)
        for idx in self._batches(fits):
            padded = self.tokenizer.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
            with torch.inference_mode():
                logits = self.model(**{k: v.to(self.model.device) for k, v in padded.items()}).logits
            yield [(items[i].key, float(logits[j, 0]), None) for j, i in enumerate(idx)]


class MajorityScorer(VerifierScorer):
    """``quality.kind: majority``: the verifier against a pseudo-gold, the answer most
    calibration teachers give for the prompt (``persyn.synthesis.answers.majority_answer``,
    computed by the score stage over all of a prompt's responses). An item whose prompt has no
    majority (a tie, or fewer than 2 parsable answers) is a failed item with the reason."""

    NEEDS_GOLD_ANSWER: ClassVar[bool] = False
    PEER_GOLD: ClassVar[bool] = True

    def __init__(self, answers: dict[str, str | None], notes: dict[str, str] | None = None, pool=()):
        """``answers``: item key → pseudo-gold (None: no majority, reason in ``notes``);
        ``pool``: the teacher names that vote (part of the cache key)."""
        super().__init__(answers)
        self.notes = notes or {}
        self.key = stable_hash(["quality/majority/v1", VerifierScorer.key, sorted(pool)])

    @classmethod
    def of(cls, cfg, answers, notes, pool, tasks) -> MajorityScorer:
        return cls(answers, notes, pool)

    def score(self, items: list[ScoreItem]) -> Iterator[list[tuple[str, float | None, str | None]]]:
        no_gold = [it for it in items if self.answers.get(it.key) is None]
        rows = [
            (it.key, None, self.notes.get(it.key, "no majority answer for this prompt")) for it in no_gold
        ]
        has_gold = [it for it in items if self.answers.get(it.key) is not None]
        for batch in super().score(has_gold):
            rows.extend((k, v, note or self.notes.get(k)) for k, v, note in batch)  # + the agreement
        yield rows


def make_quality_scorer(
    cfg, answers: dict[str, str | None], notes=None, pool=(), tasks=None
) -> QualityScorer:
    """The quality scorer ``cfg.kind`` names (``cfg``: a ``config.QualityConfig``; the kinds in
    ``core.plugins.QUALITY_SCORERS``); ``answers``
    maps item keys to reference answers (for ``majority``: to the pseudo-gold, with ``notes``
    for the items without one, and ``pool`` the voting teachers); ``tasks``: the items checked
    by their reasoning_gym task's own check, and the IFEval instructions of the items that
    carry them (``scoring.tasks.task_of``; ``ifeval`` reads these).

    Raises:
        KeyError: ``cfg.kind`` is not in the table (names it and the known kinds; the config
            validates the kind first, so this is a programming error).
    """
    return load(QUALITY_SCORERS, cfg.kind, "quality scorer").of(cfg, answers, notes, pool, tasks)
