"""The scorers' settings: the student (learnability, Eq. 1) and quality."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from persyn.core.settings import Dtype, ResourcesConfig, StrictModel
from persyn.core.templates import DEFAULT_PROMPT_TEMPLATE


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


class QualityConfig(StrictModel):
    """Quality r_q. ``verifier``: 1 if the final answer matches the reference (math-verify),
    else 0. ``majority``: the same check against a pseudo-gold, the final answer most of the
    calibration teachers give for the prompt (for prompts without answers; wrong when most
    teachers are wrong alike; a tie or fewer than 2 parsable answers leaves the prompt's
    responses unscored). ``reward_model``: the scalar of a sequence classifier (``model``).
    ``ifeval``: the share of the prompt's IFEval instructions (its record's
    ``instruction_id_list`` and ``kwargs``) the response follows, checked strictly, or with
    ``loose`` by IFEval's loose check (``persyn[ifeval]``)."""

    kind: Literal["verifier", "majority", "reward_model", "ifeval"] = "verifier"
    model: str | None = None
    # ifeval: IFEval's loose check (a response passes an instruction when it, or it without its
    # first line, last line, both, or markdown asterisks, does). Left out of dumps when off, so
    # the configs and result keys of before stay as they were.
    loose: bool = False
    batch_size: Annotated[int, Field(ge=1)] = 8
    dtype: Dtype = "auto"  # the reward model's weights
    # executor: ray (the quality scorer's workers)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @model_validator(mode="after")
    def _check_model(self) -> QualityConfig:
        if self.kind == "reward_model" and not self.model:
            raise ValueError("kind 'reward_model' needs 'model'")
        if self.loose and self.kind != "ifeval":
            raise ValueError(f"'loose' is IFEval's loose check: it needs kind 'ifeval' (got '{self.kind}')")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        data = handler(self)
        if isinstance(data, dict) and not self.loose:
            data.pop("loose", None)
        return data
