"""The run configuration: YAML in, validated by pydantic, errors that name the field.

Example (the packaged demo is ``persyn/configs/demo.yaml``)::

    output_dir: runs/demo
    seed: 0
    prompts: {source: reasoning_gym, task: gsm_symbolic, size: 120}
    student: {model: smollm2-135m-instruct}
    teachers:
      - {name: smollm2-cot, engine: transformers, model: smollm2-135m-instruct}
      - {name: reference, engine: reference}
    quality: {kind: verifier}
    alpha: 0.4
    normalize: minmax
    calibration: {size: 0.2}
    router: {encoder: minilm-l6}
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from persyn.core.errors import ConfigError
from persyn.core.plugins import ENGINES, ROUTERS
from persyn.core.plugins import STRATEGIES as STRATEGY_TABLE
from persyn.core.templates import DEFAULT_PROMPT_TEMPLATE


def registered(table: dict[str, str], name: str, what: str) -> str:
    """``name`` when it is in plug-in ``table`` (``persyn.core.plugins``).

    Raises:
        ValueError: an unknown name; the message gives it and the known ones (pydantic turns it
            into a field error).
    """
    if name not in table:
        raise ValueError(f"unknown {what} '{name}' (known: {', '.join(table)})")
    return name


class StrictModel(BaseModel):
    # Unknown keys are almost always typos: reject them instead of ignoring them.
    model_config = ConfigDict(extra="forbid")


class TaskMix(StrictModel):
    """One task of a mixed reasoning_gym prompt set: its name, its share of ``size``
    (``weight``, relative to the others') and its generator arguments."""

    task: str
    weight: Annotated[float, Field(gt=0)] = 1.0
    task_kwargs: dict[str, Any] = Field(default_factory=dict)


class PromptsConfig(StrictModel):
    """Where the prompts come from.

    ``source: reasoning_gym`` draws ``size`` problems of ``task``, seeded by ``seed`` when given,
    else by the run seed (an experiment pins it, so that its seeds share one prompt set); with
    ``tasks`` (a list of ``TaskMix``) it draws a mixed set instead, each task's share of
    ``size`` in proportion to its ``weight`` (rounded, at least 1), task after task;
    ``jsonl`` / ``parquet`` read ``path`` with the named fields; ``hf`` reads a Hugging Face
    dataset with the ``datasets`` library: ``path`` a ``save_to_disk`` directory, or ``name``
    (and ``config_name``) from the local HF cache (never downloaded), and its ``split``
    (needed when the dataset has several).

    ``prompt_field`` names a string column, or a chat ``messages`` column (a list of
    ``{role, content}`` ending with a user turn: the whole conversation is the prompt).
    ``input_field`` (Alpaca): appended to the prompt field's text after a blank line when
    non-empty. ``solution_field`` names a worked solution used by the ``reference`` teacher
    (default: the answer itself).
    """

    source: Literal["reasoning_gym", "jsonl", "parquet", "hf", "synthetic"] = "reasoning_gym"
    task: str = "gsm_symbolic"
    size: Annotated[int, Field(ge=1)] | None = None
    task_kwargs: dict[str, Any] = Field(default_factory=dict)
    tasks: list[TaskMix] | None = None
    seed: int | None = None
    path: Path | None = None
    name: str | None = None
    config_name: str | None = None
    split: str | None = None
    prompt_field: str = "prompt"
    input_field: str | None = None
    answer_field: str | None = "answer"
    solution_field: str | None = None
    id_field: str | None = None
    # Two prompts with the same id and different content: an error, or keep the first (skip),
    # or keep both, the later ones as ID~2, ID~3... (rename). Exact duplicates are skipped.
    on_duplicate: Literal["error", "skip", "rename"] = "error"

    @model_validator(mode="after")
    def _check_source(self) -> PromptsConfig:
        if self.source in ("jsonl", "parquet") and self.path is None:
            raise ValueError(f"source '{self.source}' needs 'path'")
        if self.source == "hf" and (self.path is None) == (self.name is None):
            raise ValueError(
                "source 'hf' needs 'path' (a save_to_disk directory) or 'name' (a cached dataset)"
            )
        if self.source == "reasoning_gym" and self.size is None:
            self.size = 120
        if self.tasks is not None:
            if self.source != "reasoning_gym":
                raise ValueError(f"'tasks' (a mixed set) needs source 'reasoning_gym', got '{self.source}'")
            if not self.tasks:
                raise ValueError("tasks: the list is empty")
            names = [t.task for t in self.tasks]
            if len(set(names)) != len(names):
                raise ValueError(f"tasks: a task is listed twice ({', '.join(names)})")
        return self


#: A model slot's weights dtype: ``auto`` is bf16 where the hardware runs it natively (a CPU with
#: AMX-BF16 or AVX512-BF16, a CUDA device with bf16), else fp32 (``persyn.core.hardware``).
Dtype = Literal["auto", "float32", "bfloat16"]


class TrainingPrecision(StrictModel):
    """The ``dtype`` of a fine-tuning run (SFT, DPO): ``bfloat16`` is mixed precision (bf16
    autocast, fp32 master weights), ``auto`` bf16 where the hardware runs it natively."""

    dtype: Dtype = "auto"

    def key_fields(self) -> dict:
        """The settings as a dict for cache keys, ``dtype`` resolved on this machine (``auto``
        is not a dtype: a bf16 and an fp32 run must never share a key)."""
        from persyn.models.loading import model_dtype

        return {**self.model_dump(), "dtype": model_dtype(self.dtype)[0]}


class ResourcesConfig(StrictModel):
    """What one Ray worker of a model asks the cluster for (``executor: ray`` only).

    ``num_cpus`` / ``num_gpus`` are passed to Ray as the actor's resources (fractions allowed,
    e.g. ``num_gpus: 0.5`` puts two workers on one GPU); ``replicas`` is the number of workers
    (each loads the model once) that share the model's shards.
    """

    num_cpus: Annotated[float, Field(ge=0.0)] = 1.0
    num_gpus: Annotated[float, Field(ge=0.0)] = 0.0
    replicas: Annotated[int, Field(ge=1)] = 1


class StudentConfig(StrictModel):
    """The student whose learnability is measured (Eq. 1).

    ``model``: alias, HF id or local path. ``prompt_template`` (with ``{prompt}``) is used only
    when the tokenizer has no chat template (a base model). ``batching``: how log-likelihoods
    are computed (see ``LearnabilityScorer``); ``batch_tokens`` bounds the padded tokens of one
    ``padded`` batch (memory). ``dtype``: the scorer's weights (log-softmax and the mean
    log-likelihood are computed in fp32 over the logits either way).
    """

    model: str
    # ``students:`` only: the directory ``OUTPUT_DIR/students/NAME`` (default: from ``model``).
    name: str | None = None
    family: str | None = None
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    batch_tokens: Annotated[int, Field(ge=64)] = 8192
    batching: Literal["auto", "per_prompt", "padded"] = "auto"
    max_length: Annotated[int, Field(ge=16)] | None = None
    # ``llamacpp``: log-likelihoods from llama.cpp on the student's GGUF (a GGUF alias or a
    # .gguf path as ``gguf``), tokenised exactly as with transformers (persyn[llamacpp]).
    backend: Literal["transformers", "llamacpp"] = "transformers"
    gguf: str | None = None
    dtype: Dtype = "auto"
    # executor: ray (the student's scoring workers)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)


class TeacherConfig(StrictModel):
    """One teacher: a response generator (model + prompt rendering + decoding settings).

    ``engine: transformers`` runs ``model`` in-process; ``engine: reference`` answers with the
    prompt set's own reference solution (``style: solution``), only its final-answer line
    (``style: answer``, ``#### <answer>``), its computation lines (``terse``) or the steps in
    full sentences (``verbose``): not models, but teachers of a known style (see
    ``persyn.engines.reference``). Chat models render the prompt with their chat template
    (with ``system_prompt`` if given); base models (no chat template) use ``prompt_template``
    with ``{prompt}``. Generation stops at EOS or at any string of ``stop`` (which is cut off).
    ``dtype``: the weights of a ``transformers`` teacher (other engines ignore it).
    """

    name: str
    engine: str
    model: str | None = None
    family: str | None = None
    system_prompt: str | None = None
    prompt_template: str | None = None
    temperature: Annotated[float, Field(ge=0.0)] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    max_new_tokens: Annotated[int, Field(ge=1)] = 256
    batch_size: Annotated[int, Field(ge=1)] = 8
    stop: list[str] = Field(default_factory=list)
    style: Literal["solution", "answer", "terse", "verbose"] = "solution"
    dtype: Dtype = "auto"
    # engine: openai (any OpenAI-compatible chat-completions server; see engines.openai_engine)
    base_url: str | None = None
    api_key_env: str | None = None  # the NAME of an environment variable, never the key itself
    concurrency: Annotated[int, Field(ge=1)] = 8
    requests_per_minute: Annotated[float, Field(gt=0)] | None = None
    tokens_per_minute: Annotated[float, Field(gt=0)] | None = None
    timeout: Annotated[float, Field(gt=0)] = 60.0
    max_retries: Annotated[int, Field(ge=0)] = 5
    # USD per million tokens, for the cost figures in summary.json
    price_input_per_million: Annotated[float, Field(ge=0)] | None = None
    price_output_per_million: Annotated[float, Field(ge=0)] | None = None
    # A local teacher's price per second of generation (e.g. a GPU-second), for ``budget:``
    price_per_second: Annotated[float, Field(ge=0)] | None = None
    # The most routed prompts this teacher may answer (``budget:``; e.g. a server's night)
    max_prompts: Annotated[int, Field(ge=0)] | None = None
    # executor: ray (the teacher's workers; not part of any cache key)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, v: str) -> str:
        return registered(ENGINES, v, "engine")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v, "teacher name")

    @model_validator(mode="after")
    def _check_engine(self) -> TeacherConfig:
        if self.engine == "transformers" and not self.model:
            raise ValueError("engine 'transformers' needs 'model' (alias, HF id or local path)")
        if self.engine == "llamacpp" and not self.model:
            raise ValueError("engine 'llamacpp' needs 'model' (a GGUF alias or a .gguf file)")
        if self.engine == "openai" and (not self.model or not self.base_url):
            raise ValueError("engine 'openai' needs 'base_url' (e.g. http://127.0.0.1:8000/v1) and 'model'")
        if self.prompt_template is not None and "{prompt}" not in self.prompt_template:
            raise ValueError("prompt_template must contain '{prompt}'")
        return self


class QualityConfig(StrictModel):
    """Quality r_q. ``verifier``: 1 if the final answer matches the reference (math-verify),
    else 0. ``majority``: the same check against a pseudo-gold, the final answer most of the
    calibration teachers give for the prompt (for prompts without answers; wrong when most
    teachers are wrong alike; a tie or fewer than 2 parsable answers leaves the prompt's
    responses unscored). ``reward_model``: the scalar of a sequence classifier (``model``)."""

    kind: Literal["verifier", "majority", "reward_model"] = "verifier"
    model: str | None = None
    batch_size: Annotated[int, Field(ge=1)] = 8
    dtype: Dtype = "auto"  # the reward model's weights
    # executor: ray (the quality scorer's workers)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @model_validator(mode="after")
    def _check_model(self) -> QualityConfig:
        if self.kind == "reward_model" and not self.model:
            raise ValueError("kind 'reward_model' needs 'model'")
        return self


class CalibrationConfig(StrictModel):
    """Calibration set X_cal: ``size``, a fraction of the prompts in (0, 1] (float) or a count
    >= 2, chosen by ``select``:

    - ``random``: drawn uniformly (seeded by the run seed);
    - ``diverse``: k-center greedy on the prompts' ``router.encoder`` embeddings, the first
      center drawn with the run seed, so the set covers the prompt distribution;
    - ``active``: a diverse seed set of ``seed_fraction`` of ``size``, then ``rounds`` rounds
      that each add the prompts on which routers trained on the set so far are least certain
      or disagree most.
    """

    size: float | int = 0.2
    select: Literal["random", "diverse", "active"] = "random"
    rounds: Annotated[int, Field(ge=1)] = 3
    seed_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5

    @field_validator("size")
    @classmethod
    def _check_size(cls, v: float | int) -> float | int:
        if isinstance(v, bool):
            raise ValueError("must be a fraction in (0, 1] or a count >= 2")
        if isinstance(v, float):
            if 0.0 < v <= 1.0:
                return v
            if not v.is_integer():
                raise ValueError(f"fraction {v} is outside (0, 1]")
            v = int(v)
        if v < 2:
            raise ValueError(f"count {v} is smaller than 2")
        return int(v)

    def count(self, n_prompts: int) -> int:
        """Number of calibration prompts for a set of ``n_prompts``.

        Raises:
            ConfigError: when the result is below 2 or above ``n_prompts``.
        """
        if isinstance(self.size, float):
            n = int(math.ceil(self.size * n_prompts - 1e-9))
        else:
            n = self.size
        if n > n_prompts:
            raise ConfigError(
                f"calibration.size: {self.size} asks for {n} calibration prompts, "
                f"but the prompt set has only {n_prompts}"
            )
        if n < 2:
            raise ConfigError(
                f"calibration.size: {self.size} gives {n} calibration prompt(s) of "
                f"{n_prompts}; at least 2 are needed"
            )
        return n

    def first_count(self, n_prompts: int) -> int:
        """Prompts chosen by ``prepare``: all ``count`` of them, or for ``active`` the seed
        set (at least 2)."""
        n = self.count(n_prompts)
        return n if self.select != "active" else min(n, max(2, round(self.seed_fraction * n)))


class RouterConfig(StrictModel):
    """The router: ``kind`` is a router kind of ``persyn.core.plugins.ROUTERS`` or ``auto``.

    - ``bt-encoder``: the paper's router (PerSyn Eq. 3): ``encoder`` fine-tuned with a linear
      coefficient head (``epochs``, ``batch_size``, ``encoder_lr``, ``head_lr``,
      ``freeze_encoder``);
    - ``bt-linear``: the same Bradley–Terry head on frozen ``encoder`` embeddings, L2 λ chosen
      among ``l2``;
    - ``knn``: mean reward of the k nearest calibration prompts, k chosen among ``knn_k``;
    - ``prior``: the best single teacher by mean calibration reward;
    - ``auto`` (default): ``cv_folds``-fold cross-validation over the calibration prompts,
      repeated ``cv_repeats`` times with other folds (per-prompt regrets averaged), picks,
      among ``auto_kinds``, the learned kind whose regret beats ``prior``'s with a paired
      bootstrap 95% interval (``bootstrap`` resamples) below 0, else ``prior``.

    Every kind's cross-validated figures are reported, whatever ``kind`` is. ``ties``: ``drop``
    tied pairs or count them as half a win. ``pooling``/``max_length``: how ``encoder`` turns a
    prompt into a vector."""

    kind: str = "auto"
    auto_kinds: list[str] = Field(default_factory=lambda: ["prior", "bt-linear", "knn"], min_length=1)
    encoder: str = "minilm-l6"
    pooling: Literal["mean", "cls"] = "mean"
    max_length: Annotated[int, Field(ge=8)] = 256
    epochs: Annotated[int, Field(ge=1)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 16
    encoder_lr: Annotated[float, Field(ge=0.0)] = 2e-5
    head_lr: Annotated[float, Field(gt=0.0)] = 1e-2
    freeze_encoder: bool = False
    knn_k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 3, 5, 9, 15, 25], min_length=1
    )
    l2: list[Annotated[float, Field(gt=0.0)]] = Field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0], min_length=1
    )
    cv_folds: Annotated[int, Field(ge=2)] = 5
    cv_repeats: Annotated[int, Field(ge=1)] = 5
    bootstrap: Annotated[int, Field(ge=100)] = 2000
    ties: Literal["drop", "half"] = "drop"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return v if v == "auto" else registered(ROUTERS, v, "router kind")

    @field_validator("auto_kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        return [registered(ROUTERS, k, "router kind") for k in v]

    def cv_kinds(self) -> list[str]:
        """The kinds cross-validated: ``prior`` first, then ``auto_kinds`` (for ``auto``) or
        ``kind``."""
        asked = self.auto_kinds if self.kind == "auto" else [self.kind]
        return list(dict.fromkeys(["prior", *asked]))


STRATEGIES = tuple(STRATEGY_TABLE)  # names, in the order of the docs


class MixConfig(StrictModel):
    """Mix Distillation (arXiv 2502.12143): ``strong`` and ``weak`` teachers (default: the
    highest and lowest mean calibration quality) in the ratio ``ratio`` = [strong, weak]."""

    strong: str | None = None
    weak: str | None = None
    ratio: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] = (1, 4)

    @field_validator("ratio")
    @classmethod
    def _check_ratio(cls, v: tuple[int, int]) -> tuple[int, int]:
        if sum(v) == 0:
            raise ValueError("ratio [strong, weak] must not be [0, 0]")
        return v


class CarConfig(StrictModel):
    """CAR (arXiv 2411.07133): CAR = mean quality / (1 + beta · mean student NLL)."""

    beta: Annotated[float, Field(ge=0.0)] = 1.0


class StrategyOptions(StrictModel):
    """Settings of the selection strategies that have any (see ``persyn.strategies``)."""

    mix: MixConfig = Field(default_factory=MixConfig)
    car: CarConfig = Field(default_factory=CarConfig)


NOMAD_HEADER = "Write a new problem of the same kind as the training examples, then its solution."


class DPOSettings(TrainingPrecision):
    """DPO of the generator (TRL ``DPOTrainer``; reference model: the generator before DPO).
    Montessori-Instruct's code: β 0.1, lr 1e-6, 1 epoch, batch 2. ``method``: ``full`` or
    ``lora`` (adapters merged before saving)."""

    method: Literal["full", "lora"] = "full"
    beta: Annotated[float, Field(gt=0)] = 0.1
    learning_rate: Annotated[float, Field(gt=0)] = 1e-6
    epochs: Annotated[float, Field(gt=0)] = 1.0
    batch_size: Annotated[int, Field(ge=1)] = 2
    max_length: Annotated[int, Field(ge=16)] = 512
    lora_r: Annotated[int, Field(ge=1)] = 16
    lora_alpha: Annotated[int, Field(ge=1)] = 32
    seed: int = 0


class MontessoriConfig(StrictModel):
    """``synthesis.generator: montessori``: Montessori-Instruct (arXiv 2410.14208, Sec. 3) run as
    ``iterations`` rounds before the synthesis itself (``persyn.stages.montessori``). Each round
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

    generator: Literal["self-instruct", "nomad", "montessori"] = "self-instruct"
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

    @model_validator(mode="after")
    def _check(self) -> SynthesisConfig:
        if self.model.engine == "reference":
            raise ValueError(
                "model: the generator must be a model (engine 'reference' writes no new prompts)"
            )
        if self.generator == "montessori":
            if self.model.engine != "transformers":
                raise ValueError(
                    f"model.engine: the montessori generator is trained by DPO, so it must be a local "
                    f"'transformers' model, got '{self.model.engine}'"
                )
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
    (Montessori-Instruct; see ``persyn.influence``).

    ``warmup`` and ``reference`` are persyn dataset files (JSONL lines with ``messages``).
    The student is fine-tuned on ``warmup`` with ``sft`` (``persyn.train.SFTSettings``;
    Montessori-Instruct: 1 epoch, lr 5e-6), keeping its optimizer state; ``reference`` (a
    validation split, never an evaluation set) holds D_ref, its first ``reference_size`` lines
    (the paper's code: 256). ``probe_lr``: the probing step's learning rate (None: the
    warm-up's). ``signals``: what is measured per example. ``max_length``: tokens per example;
    ``batch_size``: of the passes over the reference set.
    """

    warmup: Path
    reference: Path
    reference_size: Annotated[int, Field(ge=1)] = 64
    sft: dict[str, Any] = Field(default_factory=lambda: {"epochs": 1.0, "learning_rate": 5e-6})
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


class RayConfig(StrictModel):
    """How ``executor: ray`` cuts and retries the work.

    ``shard_size``: prompts (generation) or responses (scoring) per Ray task; a shard is made
    of whole batches, so its results equal the local executor's. ``num_cpus``: CPUs of a
    local Ray instance started by persyn (default: all; ignored when joining a cluster).
    ``max_retries``: times a shard is re-run after its worker process died (the worker is
    restarted each time) before its items are recorded as failed.
    """

    shard_size: Annotated[int, Field(ge=1)] = 32
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    max_retries: Annotated[int, Field(ge=0)] = 3


def student_dir_name(model: str) -> str:
    """A directory name for a student model reference: its last path part, with characters
    outside ``[A-Za-z0-9._-]`` replaced by ``-`` (``HuggingFaceTB/SmolLM2-135M`` → ``SmolLM2-135M``)."""
    tail = model.rstrip("/").split("/")[-1] or "student"
    return re.sub(r"[^A-Za-z0-9._-]", "-", tail).lstrip(".-_") or "student"


class BudgetConfig(StrictModel):
    """Limits on what the routed generations spend (``persyn.budget``): ``max_cost`` in the
    currency of the teachers' prices (in tokens when no teacher has a price), ``max_output_tokens``
    in expected output tokens. The calibration's spend comes before the router and is reported
    beside these, not counted in them. ``solver``: ``auto``, ``lagrangian`` (one limit, no
    capacities) or ``lp`` (exact, HiGHS). Teachers' ``max_prompts`` are capacities."""

    max_cost: Annotated[float, Field(ge=0)] | None = None
    max_output_tokens: Annotated[float, Field(ge=0)] | None = None
    solver: Literal["auto", "lagrangian", "lp"] = "auto"


class RunConfig(StrictModel):
    """A whole PerSyn run. See the module docstring for the YAML shape."""

    output_dir: Path
    seed: int = 0
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    # One student (``student``), or several sharing one calibration (``students``: the first is
    # also ``student``; see ``persyn.students``).
    student: StudentConfig | None = None
    students: list[StudentConfig] | None = None
    teachers: list[TeacherConfig]
    quality: QualityConfig = Field(default_factory=QualityConfig)
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4
    normalize: Literal["minmax", "zscore"] = "minmax"
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    # Route under spend limits (see BudgetConfig); teachers' max_prompts apply with or without it.
    budget: BudgetConfig | None = None
    strategy: str = "persyn"
    strategy_options: StrategyOptions = Field(default_factory=StrategyOptions)
    # Also write the dataset as Parquet (dataset.parquet) and/or a Hugging Face dataset
    # (dataset_hf/, save_to_disk), with dataset.jsonl's columns: they load straight into TRL.
    dataset_formats: list[Literal["parquet", "hf"]] = Field(default_factory=list)
    # Where the heavy stages run: in this process, or as Ray tasks (persyn[ray]).
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # a cluster to join; else $RAY_ADDRESS; else a local instance
    ray: RayConfig = Field(default_factory=RayConfig)
    # persyn synthesize: new prompts from seed examples (prompts.source: synthetic reads them).
    synthesis: SynthesisConfig | None = None
    # persyn influence: local data influence of examples on the student (Montessori-Instruct).
    influence: InfluenceConfig | None = None

    @model_validator(mode="after")
    def _montessori_needs_influence(self) -> RunConfig:
        if self.synthesis is not None and self.synthesis.generator == "montessori" and self.influence is None:
            raise ValueError(
                "synthesis.generator 'montessori' needs an 'influence' section (warmup, reference): "
                "the signal is measured on the student"
            )
        return self

    @model_validator(mode="after")
    def _synthetic_source(self) -> RunConfig:
        if self.prompts.source == "synthetic":
            if self.synthesis is None:
                raise ValueError("prompts.source 'synthetic' needs a 'synthesis' section")
            if self.prompts.path is None:  # what ``persyn synthesize`` writes
                self.prompts.path = Path(self.output_dir) / "synthetic" / "prompts.jsonl"
            self.prompts.id_field = self.prompts.id_field or "id"
            self.prompts.solution_field = self.prompts.solution_field or "solution"
        return self

    @field_validator("strategy")
    @classmethod
    def _check_strategy(cls, v: str) -> str:
        if v not in STRATEGIES:
            raise ValueError(f"unknown strategy '{v}' (known: {', '.join(STRATEGIES)})")
        return v

    @model_validator(mode="after")
    def _check_students(self) -> RunConfig:
        if (self.student is None) == (self.students is None):
            raise ValueError(
                "give either 'student' (one student) or 'students' (a list), not both or neither"
            )
        if self.students is not None:
            if not self.students:
                raise ValueError("students: the list is empty")
            seen: dict[str, int] = {}
            for i, st in enumerate(self.students):
                st.name = st.name or student_dir_name(st.model)
                check_name(st.name, f"students.{i}.name:")
                if st.name in seen:
                    raise ValueError(
                        f"students: duplicate name '{st.name}' (students {seen[st.name]} and {i})"
                    )
                seen[st.name] = i
            self.student = self.students[0]
        return self

    @model_validator(mode="after")
    def _check_strategy_teachers(self) -> RunConfig:
        names = [t.name for t in self.teachers]
        mix = self.strategy_options.mix
        for field in ("strong", "weak"):
            name = getattr(mix, field)
            if name is not None and name not in names:
                raise ValueError(
                    f"strategy_options.mix.{field}: unknown teacher '{name}' (known: {', '.join(names)})"
                )
        if mix.strong is not None and mix.strong == mix.weak:
            raise ValueError("strategy_options.mix: strong and weak must be different teachers")
        return self

    @field_validator("teachers")
    @classmethod
    def _check_teachers(cls, v: list[TeacherConfig]) -> list[TeacherConfig]:
        if len(v) < 2:
            raise ValueError(f"needs at least 2 teachers, got {len(v)}")
        seen: dict[str, int] = {}
        for i, t in enumerate(v):
            if t.name in seen:
                raise ValueError(f"duplicate teacher name '{t.name}' (teachers {seen[t.name]} and {i})")
            seen[t.name] = i
        return v

    def teacher(self, name: str) -> TeacherConfig:
        """The teacher called ``name``. Raises ConfigError for an unknown name."""
        for t in self.teachers:
            if t.name == name:
                return t
        raise ConfigError(f"unknown teacher '{name}' (known: {', '.join(self.teacher_names)})")

    @property
    def teacher_names(self) -> list[str]:
        return [t.name for t in self.teachers]


# The settings that say where a run's work runs, not what it computes: left out of result keys.
WHERE_IT_RUNS: dict = {
    "executor": True,
    "ray_address": True,
    "ray": True,
    "student": {"resources"},
    "quality": {"resources"},
    "teachers": {"__all__": {"resources"}},
}


#: Names that become directories, file names, store keys or HTML ids (teachers, students).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"


def check_name(value: str, what: str) -> str:
    """``value`` when it matches ``NAME_PATTERN`` (a letter or digit, then up to 63 letters,
    digits, ``.``, ``_`` or ``-``), so it cannot escape a directory or break an id.

    Raises:
        ValueError: naming the value and suggesting a valid form (``org/model`` → ``org-model``).
    """
    if re.fullmatch(NAME_PATTERN, value):
        return value
    suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip(".-_")[:64] or "name"
    raise ValueError(
        f"{what} '{value}' is not a valid name: use letters, digits, '.', '_' and '-', starting with a "
        f"letter or digit, at most 64 characters (e.g. '{suggestion}')"
    )


# Field names whose values are secrets (``api_key``, ``hf_token``, ``password``...; not
# ``max_new_tokens``). ``api_key_env`` holds a variable's name, which is not secret.
_SECRET_FIELD = re.compile(r"(^|_)(api_key|token|password|secret)$", re.IGNORECASE)


def redact(value: Any, field: str = "") -> str:
    """A value as an error message may show it: shortened to 80 characters, with credentials
    in a URL (``https://user:pass@host``) masked and the whole value masked when the field holds
    a secret (an ``api_key_env`` that is not an environment variable name is taken to be a key
    pasted by mistake)."""
    value = _scrub(value, field.rsplit(".", 1)[-1])
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _scrub(value: Any, key: str) -> Any:
    """``value`` with secrets masked, recursively through mappings and lists (see ``redact``)."""
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, key) for v in value]
    if not isinstance(value, str):
        return value
    if key == "api_key_env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return "<redacted: looks like a key, not the name of an environment variable>"
    if _SECRET_FIELD.search(key):
        return "<redacted>"
    return redact_url(value)


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it masked (``https://u:p@h`` →
    ``https://***@h``)."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", text)


def public_config_json(cfg: BaseModel) -> str:
    """``cfg`` as JSON for files persyn writes (``run_config.json``): credentials in URLs and
    secret fields masked as ``redact`` masks them (a command given the output directory then
    runs without them: generating again needs the original config)."""
    return json.dumps(_scrub(cfg.model_dump(mode="json"), ""), indent=2) + "\n"


def format_validation_error(err: ValidationError, source: str) -> str:
    """The lines of a config validation error: per error the field path, what was wrong and
    the value given (through ``redact``)."""
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        # The value given, for a field (a whole section's mapping would only repeat the file).
        value = e.get("input")
        shown = e["type"] != "missing" and e["loc"] and not isinstance(value, dict)
        given = f" (given: {redact(value, loc)})" if shown else ""
        lines.append(f"  {loc}: {msg}{given}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<config>", base_dir: Path | None = None) -> RunConfig:
    """Validate a mapping into a RunConfig.

    Relative ``output_dir`` and ``prompts.path`` are resolved against ``base_dir`` when given.

    Raises:
        ConfigError: naming ``source`` and each offending field path.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
    _check_model_refs(cfg, source)
    if base_dir is not None and cfg.prompts.path is not None and not cfg.prompts.path.is_absolute():
        cfg.prompts.path = base_dir / cfg.prompts.path
    return cfg


def _check_model_refs(cfg: RunConfig, source: str) -> None:
    from persyn.models.aliases import check_model_ref

    slots = [("student.model", cfg.student.model), ("router.encoder", cfg.router.encoder)]
    # An openai teacher's model is a name on its server, not a local model.
    slots += [
        (f"teachers.{i}.model", t.model)
        for i, t in enumerate(cfg.teachers)
        if t.model and t.engine != "openai"
    ]
    if cfg.quality.model:
        slots.append(("quality.model", cfg.quality.model))
    for field, ref in slots:
        problem = check_model_ref(ref)
        if problem:
            raise ConfigError(f"{source}: {field}: {problem}")


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """The parsed YAML document at ``path``.

    Raises:
        ConfigError: a missing or unreadable file, or a YAML syntax error (with its line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "unknown line"
        raise ConfigError(f"{path}: YAML syntax error at {where}: {exc}") from None


def load_config(source: str | Path | dict) -> RunConfig:
    """Read and validate a run configuration: a YAML file's path, or the same content as a
    dict (e.g. built in a notebook).

    Relative ``prompts.path`` is taken relative to the current directory, like ``output_dir``.

    Raises:
        ConfigError: unreadable file, YAML syntax error (with line), or invalid fields (the
            field path is named).
    """
    if isinstance(source, dict):
        return parse_config(source, source="<dict>")
    return parse_config(read_yaml(source), source=str(source))
