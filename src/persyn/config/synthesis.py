"""The settings of prompt synthesis (``persyn synthesize``) and of data influence (``persyn influence``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from persyn.config.prompts import PromptsConfig
from persyn.config.teachers import TeacherConfig
from persyn.core.plugins import GENERATORS, check
from persyn.core.settings import StrictModel
from persyn.synthesis.generator import generator_class
from persyn.training.dpo_config import DPOSettings
from persyn.training.sft_config import SFTSettings

NOMAD_HEADER = "Write a new problem of the same kind as the training examples, then its solution."


class MontessoriConfig(StrictModel):
    """``synthesis.generator: montessori``: Montessori-Instruct (arXiv 2410.14208, Sec. 3) run as
    ``iterations`` rounds before the synthesis itself (``persyn.montessori.loop``). Each round
    the current generator writes ``probe_count`` prompts Self-Instruct's way (``samples`` per
    request: a request's kept samples are a group), PerSyn routes and answers them, the run's
    ``influence`` section measures ``signal`` per example, ``rule`` pairs the examples within
    each group (``fraction``: the share taken as chosen and as rejected by ``rank``), and DPO
    (``dpo``: ``DPOSettings``) tunes the generator. The last tuned
    generator then writes the run's synthetic prompts.
    """

    iterations: Annotated[int, Field(ge=1)] = 1
    probe_count: Annotated[int, Field(ge=2)] = 64
    signal: Literal["influence", "loss", "learnability"] = "influence"
    rule: Literal["auto", "sign", "rank"] = "auto"
    fraction: Annotated[float, Field(gt=0.0, le=0.5)] = 1 / 3
    dpo: DPOSettings = Field(default_factory=DPOSettings)

    @model_validator(mode="after")
    def _check_rule(self) -> MontessoriConfig:
        if self.rule == "sign" and self.signal != "influence":
            raise ValueError(
                f"rule 'sign' needs signal 'influence' (a zero that means no effect), got '{self.signal}'"
            )
        return self


class SynthesisConfig(StrictModel):
    """``persyn synthesize``: a generator writes new prompts from seed examples (see
    ``persyn.stages.synthesize``); ``prompts.source: synthetic`` then reads them.

    - ``generator: self-instruct``: ``model`` (any teacher-style model slot; a base model
      continues the few-shot list best) is shown ``shots`` seed prompts and writes one more;
      ``samples`` samples per request at ``model.temperature`` / ``model.top_p``
      (Montessori-Instruct: 8 shots, n = 4, temperature 1.0, top_p 0.9).
    - ``generator: nomad``: ``model`` is a generator fine-tuned by ``persyn train-generator`` on
      seed (prompt, response) pairs; sampled from ``header`` alone, it writes a prompt and its
      response.
    - ``generator: montessori``: ``model`` (a local model: it is trained) is first tuned to the
      student by ``montessori`` (``MontessoriConfig``; needs the run's ``influence`` section),
      then writes Self-Instruct's way.

    A candidate is dropped as a near-duplicate when its ROUGE-L F-measure with a seed prompt or a
    kept candidate exceeds ``rouge_threshold`` (0.7 as in Self-Instruct), or its embedding
    cosine (``router.encoder``) exceeds ``embed_threshold`` (None: off). ``count`` candidates are
    kept, from at most ``max_requests`` generator requests. ``answers: computed`` gives each
    synthetic prompt the value of the arithmetic expression it states (sympy); ``none`` leaves
    answers to ``quality.kind: majority``. ``target`` (a prompt source disjoint from every
    evaluation set) enables relevance (NormSim_``normsim_p`` to the target); novelty is always
    measured against the seeds; ``relevance_band`` [low, high] keeps the candidates whose
    relevance lies between those percentiles (e.g. [25, 75]: NOMAD's median finding).
    """

    generator: str = "self-instruct"  # a name of persyn.core.plugins.GENERATORS
    model: TeacherConfig
    montessori: MontessoriConfig | None = None
    seeds: PromptsConfig
    count: Annotated[int, Field(ge=1)] = 100
    max_requests: Annotated[int, Field(ge=1)] | None = None
    shots: Annotated[int, Field(ge=1)] = 8
    samples: Annotated[int, Field(ge=1)] = 4
    header: str = NOMAD_HEADER
    rouge_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.7
    embed_threshold: Annotated[float, Field(gt=0.0, le=1.0)] | None = 0.95
    answers: Literal["none", "computed"] = "none"
    target: PromptsConfig | None = None
    normsim_p: Annotated[float, Field(ge=1.0)] = math.inf
    relevance_band: tuple[float, float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            data = {**data, "model": {"name": "generator", **data["model"]}}
        return data

    @field_validator("generator")
    @classmethod
    def _known_generator(cls, v: str) -> str:
        return check(GENERATORS, v, "generator")

    @model_validator(mode="after")
    def _check(self) -> SynthesisConfig:
        if not self.model.RUNS_A_MODEL:
            raise ValueError(
                f"model: the generator must be a model (engine '{self.model.engine}' writes no new prompts)"
            )
        generator = generator_class(self.generator)
        if generator.NEEDS_TRAINABLE_MODEL and not self.model.TRAINABLE:
            raise ValueError(
                f"model.engine: the {self.generator} generator is trained by DPO, so it must be a local "
                f"'transformers' model, got '{self.model.engine}'"
            )
        if generator.ADAPTS_TO_STUDENT:
            self.montessori = self.montessori or MontessoriConfig()
        elif self.montessori is not None:
            raise ValueError(f"montessori: only read with generator 'montessori', got '{self.generator}'")
        if self.relevance_band is not None:
            low, high = self.relevance_band
            if not (0 <= low < high <= 100):
                raise ValueError(
                    f"relevance_band needs 0 <= low < high <= 100, got {list(self.relevance_band)}"
                )
            if self.target is None:
                raise ValueError("relevance_band needs 'target' (the set relevance is measured against)")
        return self

    def request_budget(self) -> int:
        """Generator requests allowed: ``max_requests``, else 10 per candidate to keep."""
        return self.max_requests or 10 * self.count


class InfluenceConfig(StrictModel):
    """``persyn influence``: the local data influence of examples on the run's student
    (Montessori-Instruct; see ``persyn.montessori.probe``).

    ``warmup`` and ``reference`` are persyn dataset files (JSONL lines with ``messages``).
    The student is fine-tuned on ``warmup`` with ``sft`` (``persyn.training.sft_config.SFTSettings``,
    its ``max_length`` and ``seed`` those of this section and of the run; Montessori-Instruct: 1
    epoch, lr 5e-6), keeping its optimizer state; ``reference`` (a
    validation split, never an evaluation set) holds D_ref, its first ``reference_size`` lines
    (the paper's code: 256). ``probe_lr``: the probing step's learning rate (None: the
    warm-up's). ``signals``: what is measured per example. ``max_length``: tokens per example;
    ``batch_size``: of the passes over the reference set.
    """

    warmup: Path
    reference: Path
    reference_size: Annotated[int, Field(ge=1)] = 64
    sft: SFTSettings = Field(default_factory=lambda: SFTSettings(epochs=1.0, learning_rate=5e-6))
    probe_lr: Annotated[float, Field(gt=0)] | None = None
    signals: list[Literal["influence", "loss", "learnability"]] = Field(
        default_factory=lambda: ["influence", "loss", "learnability"]
    )
    max_length: Annotated[int, Field(ge=16)] = 512
    batch_size: Annotated[int, Field(ge=1)] = 8

    @field_validator("signals")
    @classmethod
    def _check_signals(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"needs at least one signal, each once, got {v}")
        return v
