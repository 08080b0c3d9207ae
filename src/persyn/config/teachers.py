"""A teacher's settings: a response generator (model + prompt rendering + decoding)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from persyn.config.base import Dtype, StrictModel
from persyn.config.execution import ResourcesConfig
from persyn.config.naming import check_name
from persyn.core.plugins import ENGINES, check


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
        return check(ENGINES, v, "engine")

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
