"""In-process generation with transformers: batched, left-padded, length-sorted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from persyn.core.hashing import stable_hash
from persyn.core.records import Completion, Prompt
from persyn.core.settings import Dtype
from persyn.engines.base import NOT_IN_KEY, Engine, ModelTeacher, base_model_prompt, teacher_messages
from persyn.models.loading import context_length, load_causal_lm, load_tokenizer
from persyn.tokenization import encode_prompt, encode_text, wants_bos


class TransformersTeacher(ModelTeacher):
    """``engine: transformers``: ``model`` (alias, HF id or local path) run in-process; ``dtype``
    its weights (``auto``: bf16 where the hardware runs it natively, else fp32). Other settings:
    ``ModelTeacher``."""

    TRAINABLE: ClassVar[bool] = True

    engine: Literal["transformers"] = "transformers"
    dtype: Annotated[Dtype, NOT_IN_KEY] = "auto"  # in the key resolved, see key_settings

    def local_model(self) -> str | None:
        """``model``: loaded in this process."""
        return self.model

    def local_dtype(self) -> str | None:
        """``dtype``."""
        return self.dtype

    def key_settings(self) -> dict[str, Any]:
        """``ModelTeacher.key_settings`` and the resolved dtype (fp32 adds nothing: the keys made
        before dtypes existed stay valid)."""
        from persyn.models.loading import dtype_key

        settings = super().key_settings()
        if dt := dtype_key(self.dtype):
            settings["dtype"] = dt
        return settings


def render_teacher_prompt(tokenizer, teacher: ModelTeacher, prompt: str | Prompt) -> str:
    """The text a teacher model sees for ``prompt`` (a string, or a ``Prompt`` whose chat
    conversation is kept whole).

    Chat models: the chat template over ``engines.base.teacher_messages`` (``system_prompt``,
    the conversation, ``prompt_template`` on its last user turn) with the generation prompt.
    Base models (no chat template): ``prompt_template`` (default ``"{prompt}\\n"``) filled with
    the prompt's text (a conversation's ``render_conversation``), after ``system_prompt``.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = teacher_messages(teacher, prompt)
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return base_model_prompt(teacher, prompt)


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; returns (text, whether a stop was found)."""
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class TransformersEngine(Engine):
    """A teacher run in-process. Prompts are sorted by length and generated ``batch_size`` at a
    time with left padding; greedy when ``temperature == 0``, else sampled with a seed derived
    from the run seed and the batch's prompt ids (so a resumed batch samples the same way)."""

    Settings: ClassVar[type[TransformersTeacher]] = TransformersTeacher

    def __init__(self, teacher: TransformersTeacher, seed: int):
        assert teacher.model is not None
        self.teacher = teacher
        self.seed = seed
        self.tokenizer = load_tokenizer(teacher.model, padding_side="left")
        self.model = load_causal_lm(teacher.model, dtype=teacher.dtype)
        self.ctx = context_length(self.model)
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_ids = set(eos)
        self.bos = wants_bos(self.tokenizer)  # the model's BOS policy (persyn.tokenization)

    def prompt_ids(self, prompt: str | Prompt) -> list[int]:
        """The token ids the model is fed for ``prompt``: ``render_teacher_prompt``, encoded by
        ``persyn.tokenization.encode_prompt`` (BOS once when the model wants it, never twice)."""
        return encode_prompt(
            self.tokenizer, render_teacher_prompt(self.tokenizer, self.teacher, prompt), self.bos
        )

    def _encode(self, prompts: list[Prompt]):
        """(failed items, [(prompt, token ids)] in generation order: shortest first)."""
        ids = [self.prompt_ids(p) for p in prompts]
        failed, todo = [], []
        for p, x in zip(prompts, ids, strict=True):
            if len(x) >= self.ctx:
                failed.append(
                    (
                        p,
                        Completion(
                            "",
                            len(x),
                            error=f"prompt too long: {len(x)} tokens, teacher context is {self.ctx}",
                        ),
                    )
                )
            else:
                todo.append((p, x))
        todo.sort(key=lambda item: len(item[1]))  # stable: ties keep the given order
        return failed, todo

    def work_units(self, prompts: list[Prompt]) -> list[list[Prompt]]:
        """The batches ``generate`` forms from ``prompts`` (prompts too long for the context
        first, as one group): generating any run of whole batches forms the same batches."""
        failed, todo = self._encode(prompts)
        size = self.teacher.batch_size
        units = [[p for p, _ in failed]] if failed else []
        return units + [[p for p, _ in todo[i : i + size]] for i in range(0, len(todo), size)]

    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]:
        import torch

        t = self.teacher
        failed, encoded = self._encode(prompts)
        if failed:
            yield [(p.id, c) for p, c in failed]
        todo = [(p.id, x) for p, x in encoded]
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(todo), t.batch_size):
            batch = todo[start : start + t.batch_size]
            width = max(len(x) for _, x in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (_, x) in enumerate(batch):
                input_ids[i, width - len(x) :] = torch.tensor(x)
                mask[i, width - len(x) :] = 1
            max_new = min(t.max_new_tokens, self.ctx - width)
            kwargs = {"max_new_tokens": max_new, "pad_token_id": pad}
            if t.temperature > 0:
                kwargs.update(do_sample=True, temperature=t.temperature, top_p=t.top_p)
                seed = int(stable_hash([self.seed, [pid for pid, _ in batch]])[:8], 16)
                torch.manual_seed(seed)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if t.stop:
                kwargs.update(stop_strings=t.stop, tokenizer=self.tokenizer)
            started = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(self.model.device),
                    attention_mask=mask.to(self.model.device),
                    **kwargs,
                )
            seconds = (time.perf_counter() - started) / len(batch)
            results = []
            for i, (pid, x) in enumerate(batch):
                new = out[i, width:].tolist()
                n = next((j for j, tok in enumerate(new) if tok in self.eos_ids), len(new))
                text = self.tokenizer.decode(new[:n], skip_special_tokens=True)
                text, stopped = cut_at_stop(text, t.stop)
                finish = "stop" if n < len(new) or stopped else "length"
                if stopped:  # count only the tokens that were kept
                    n = len(encode_text(self.tokenizer, text))
                c = Completion(text.strip(), len(x), n, finish, seconds=seconds)
                if not c.text:
                    c.error = "empty response"
                results.append((pid, c))
            yield results
