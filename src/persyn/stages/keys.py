"""Cache keys of teacher responses: what changes a response is in the key, nothing else."""

from __future__ import annotations

from typing import Any

from persyn.config import TeacherConfig
from persyn.core.hashing import stable_hash
from persyn.core.records import Prompt

#: Teacher settings that do not change a response (throughput, retries, prices, placement).
NOT_IN_KEY = {
    "resources",
    "batch_size",
    "family",
    "api_key_env",
    "concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "timeout",
    "max_retries",
    "price_input_per_million",
    "price_output_per_million",
    "price_per_second",
    "max_prompts",
}


#: Prompt metadata that numbers the samples of one generator request (``persyn synthesize``):
#: the same request text sampled n times gives n keys.
SAMPLE = "synthesis_sample"


def generation_key(teacher: TeacherConfig, prompt: Prompt, seed: int) -> str:
    """Cache key of one teacher response: hashes the teacher's name and every setting that
    changes its output (model and its weights' fingerprint, templates, decoding, stop strings,
    the seed when sampling) and the prompt text (a chat prompt's whole conversation; for
    ``reference`` also the reference solution and answer)."""
    from persyn.models.bos import bos_policy_key
    from persyn.models.fingerprint import model_fingerprint
    from persyn.models.loading import dtype_key

    settings = teacher.model_dump(
        exclude=NOT_IN_KEY | {"dtype"} | ({"base_url"} if teacher.engine != "openai" else set())
    )
    if teacher.model and teacher.engine in ("transformers", "llamacpp"):
        settings["weights"] = model_fingerprint(teacher.model)
        settings["bos"] = bos_policy_key(teacher.model)  # the tokenization rule (issue #17)
    if teacher.engine == "transformers" and (dt := dtype_key(teacher.dtype)):
        settings["dtype"] = dt  # the resolved dtype (fp32 adds nothing: older keys stay valid)
    if teacher.engine == "reference":
        payload: Any = [prompt.text, prompt.solution, prompt.answer]
        if prompt.metadata.get("expression"):  # the terse / verbose styles spell it out
            payload.append(prompt.metadata["expression"])
        if prompt.metadata.get("task_metadata"):  # ... and the worked steps of other tasks
            payload.append(["task_metadata", prompt.metadata["task_metadata"]])
    else:
        payload = [prompt.text, seed if teacher.temperature > 0 else None]
        if SAMPLE in prompt.metadata:  # the n-th sample of one synthesis request
            payload.append(["sample", prompt.metadata[SAMPLE]])
    if prompt.messages is not None:  # every turn, roles included (text prompts keep their keys)
        payload.append(prompt.messages)
    return stable_hash(["generation/v1", settings, payload])
