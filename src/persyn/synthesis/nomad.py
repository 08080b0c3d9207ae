"""NOMAD-style generators (arXiv 2410.20362): a model fine-tuned to *write* training examples.

A generator example is one seed (prompt, response) pair written after a fixed task header:

    [header, rendered as the generator's prompt] <prompt text> "\n### Response:\n" <response> <end>

Sampling from the header alone, the trained generator writes a new prompt and its response,
which ``parse_generated`` splits at the marker. NOMAD's recipe is **no prompt masking**: the loss
covers the prompt text as well as the response, so the model learns to write prompts. The
ablation (``prompt_masking=True``) is the usual SFT: the loss on the response part only. The
header is never in the loss (it is the same in every example).
"""

from __future__ import annotations

import random
import re
from typing import Any

from persyn.core.errors import InputError
from persyn.core.records import Prompt
from persyn.synthesis.generator import Generator

MARKER = "### Response:"
_MARKER_SPLIT = re.compile(r"\n?###\s*Response:\s*\n?")


def generator_example(tokenizer, header: str, prompt: str, response: str, prompt_masking: bool) -> dict:
    """One tokenized generator training example: ``{"input_ids", "completion_mask"}`` (TRL's
    completion-only loss trains on the tokens whose mask is 1).

    The header is rendered as ``persyn.tokenization.student_tokens`` renders a prompt
    (the chat template's user turn with the generation prompt, or the header and a newline for a
    base model), so sampling from the header with a teacher engine sees the same tokens. The
    prompt text and the rest (marker, response, end of turn) are tokenized separately, so the
    mask boundary falls on a token boundary. Mask: 0 on the header; on the prompt text 1 without
    masking, 0 with; 1 on the rest.
    """
    from persyn.tokenization import encode_text, student_tokens

    completion = f"{prompt}\n{MARKER}\n{response}"
    head, tail = student_tokens(tokenizer, header, completion, "{prompt}\n")
    p_ids = encode_text(tokenizer, prompt)
    if tail[: len(p_ids)] == p_ids:  # the usual case: no token spans the prompt's end
        r_ids = tail[len(p_ids) :]
    else:  # re-encode the rest on its own, so that the boundary is a token boundary
        text = tokenizer.decode(tail, skip_special_tokens=False)
        r_ids = encode_text(tokenizer, text[len(prompt) :] if text.startswith(prompt) else text)
    return {
        "input_ids": head + p_ids + r_ids,
        "completion_mask": [0] * len(head) + [0 if prompt_masking else 1] * len(p_ids) + [1] * len(r_ids),
    }


def parse_generated(text: str) -> tuple[str, str] | None:
    """``(prompt, response)`` from what a generator wrote (split at the first ``### Response:``
    marker), or None when there is no marker or either side is empty."""
    parts = _MARKER_SPLIT.split(text.strip(), maxsplit=1)
    if len(parts) != 2:
        return None
    prompt, response = parts[0].strip(), parts[1].strip()
    if not prompt or not response:
        return None
    return prompt, response


def generator_examples(tokenizer, header: str, seeds: list[Prompt], prompt_masking: bool) -> list[dict]:
    """The generator examples of ``seeds`` (each needs a response: its ``solution``, else its
    ``answer``).

    Raises:
        InputError: no seeds, or a seed without a response.
    """
    if not seeds:
        raise InputError("train-generator: the seed set is empty (synthesis.seeds)")
    out = []
    for p in seeds:
        response = p.solution if p.solution and str(p.solution).strip() else p.answer
        if response is None or not str(response).strip():
            raise InputError(
                f"train-generator: seed prompt '{p.id}' has no response (solution or answer) to learn from"
            )
        out.append(generator_example(tokenizer, header, p.text, str(response), prompt_masking))
    return out


def train_generator(
    seeds: list[Prompt],
    model: str,
    output_dir,
    settings=None,
    *,
    prompt_masking: bool = False,
    header: str,
    progress: bool = True,
) -> dict:
    """Fine-tune ``model`` into a generator on ``seeds`` (TRL SFT through ``persyn.training.sft.sft``)
    and save it to ``output_dir``, a model directory any model slot takes (``synthesis.model``
    with ``generator: nomad``). ``prompt_masking`` False is NOMAD's recipe (loss on prompt and
    response), True the usual response-only SFT. Returns ``sft``'s info plus
    ``prompt_masking``, ``header`` and ``loss_tokens`` (tokens in the loss, summed over the
    examples).

    Raises:
        InputError: an empty seed set or a seed without a response.
        MissingAssetError: the model, or TRL, is not installed.
    """
    import json
    from pathlib import Path

    from persyn.models.loading import load_tokenizer
    from persyn.training.sft import sft
    from persyn.training.sft_config import SFTSettings

    settings = settings or SFTSettings()
    tokenizer = load_tokenizer(model, padding_side="right")
    examples = generator_examples(tokenizer, header, seeds, prompt_masking)
    lines = [
        {"messages": [{"role": "user", "content": header}, {"role": "assistant", "content": p.text}]}
        for p in seeds
    ]
    info = sft(lines, model, output_dir, settings, progress=progress, examples=examples)
    info.update(
        prompt_masking=prompt_masking,
        header=header,
        loss_tokens=sum(sum(e["completion_mask"]) for e in examples),
    )
    (Path(output_dir) / "persyn_sft.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


class NomadGenerator(Generator):
    """``generator: nomad``: a generator fine-tuned on the seeds (``train_generator``) answers
    one fixed request, ``synthesis.header``, many times; each sample is numbered across the run,
    and it writes a prompt and its answer (``parse_generated``)."""

    def request(self, syn: Any, seeds: list[str], kept: list[str], rng: random.Random) -> str:
        return syn.header

    def sample_id(self, round_no: int, request: int, sample: int) -> str | int:
        return f"r{round_no}q{request}s{sample}"  # one request text: number the samples

    def parse(self, text: str) -> tuple[str, str | None] | None:
        return parse_generated(text)
