"""``engine: llamacpp``: in-process generation from a GGUF file with llama.cpp
(llama-cpp-python, the optional extra ``persyn[llamacpp]``), fast on a CPU.

``model`` is a GGUF path or a GGUF alias (``smollm2-135m-instruct``, ``gemma3-270m-base``: the
packaged files themselves, not their converted HF copies). Chat models (a chat template in the
GGUF metadata) get that template over [system?, user] with the generation prompt (rendered as
llama-cpp-python's own chat handler renders it); base models get ``prompt_template``.

The rendered text is tokenized by llama.cpp without special tokens added, and BOS is put in
front by the one rule of ``persyn.tokenization`` (``apply_bos``) with the GGUF's
``tokenizer.ggml.add_bos_token``: once when the model wants it, never a second time after a
template that writes it. The token ids, not the text, go to ``create_completion`` (which then
adds nothing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import ClassVar, Literal

from persyn.core.deps import require
from persyn.core.records import Completion, Prompt
from persyn.engines.base import Engine, ModelTeacher, base_model_prompt, teacher_messages
from persyn.models.aliases import gguf_path
from persyn.tokenization import apply_bos


class LlamaCppTeacher(ModelTeacher):
    """``engine: llamacpp``: ``model`` (a GGUF alias or a .gguf file) run by llama.cpp in this
    process. Settings: ``ModelTeacher``."""

    MODEL_HINT: ClassVar[str] = "a GGUF alias or a .gguf file"

    engine: Literal["llamacpp"] = "llamacpp"

    def local_model(self) -> str | None:
        """``model``: loaded in this process."""
        return self.model


def llama_wants_bos(llm) -> bool:
    """The BOS policy of a loaded ``llama_cpp.Llama``: its GGUF's ``tokenizer.ggml.add_bos_token``
    (llama.cpp's own default for the vocabulary type when the field is absent)."""
    value = (llm.metadata or {}).get("tokenizer.ggml.add_bos_token")
    if value is not None:
        return str(value).lower() == "true"
    return bool(llm._model.add_bos_token())  # noqa: SLF001 - llama.cpp's reading of the vocab


class LlamaCppEngine(Engine):
    """A teacher run by llama.cpp in this process; prompts one at a time (llama.cpp's Python
    API decodes one sequence), yielded ``batch_size`` at a time. Greedy at temperature 0."""

    Settings: ClassVar[type[LlamaCppTeacher]] = LlamaCppTeacher

    def __init__(self, teacher: LlamaCppTeacher, seed: int):
        require(
            "llama_cpp",
            "engine 'llamacpp'",
            "pip install 'persyn[llamacpp]'",
            "llama-cpp-python",
        )
        from llama_cpp import Llama

        from persyn.core.hardware import warn_if_llamacpp_uses_amx

        warn_if_llamacpp_uses_amx()  # before the load that may crash (upstream AMX bug)
        assert teacher.model
        self.teacher = teacher
        self.seed = seed
        self.llm = Llama(model_path=str(gguf_path(teacher.model)), n_ctx=0, seed=seed, verbose=False)
        meta = self.llm.metadata or {}
        self.bos = llama_wants_bos(self.llm)
        self.formatter = None
        if meta.get("tokenizer.chat_template"):
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def text_of(tok: int) -> str:
                return self.llm.detokenize([tok], special=True).decode("utf-8", "replace") if tok >= 0 else ""

            self.formatter = Jinja2ChatFormatter(
                template=meta["tokenizer.chat_template"],
                eos_token=text_of(self.llm.token_eos()),
                bos_token=text_of(self.llm.token_bos()),
                stop_token_ids=[self.llm.token_eos()],
            )
        self.chat = self.formatter is not None

    def render(self, prompt: str | Prompt) -> tuple[str, list[str]]:
        """(the text the model is fed for ``prompt``, extra stop strings of its chat template):
        the GGUF's chat template over ``engines.base.teacher_messages``, or for a model without
        one the prompt's text as ``TransformersEngine`` renders it for a base model."""
        t = self.teacher
        if self.formatter is not None:
            out = self.formatter(messages=teacher_messages(t, prompt))
            stops = out.stop if isinstance(out.stop, list) else [out.stop] if out.stop else []
            return out.prompt, stops
        return base_model_prompt(t, prompt), []

    def prompt_ids(self, prompt: str | Prompt) -> list[int]:
        """The token ids the model is fed for ``prompt``: ``render``, tokenized by llama.cpp
        (special-token strings parsed, none added), then ``apply_bos`` with the GGUF's policy."""
        return self._ids(self.render(prompt)[0])

    def _ids(self, text: str) -> list[int]:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return apply_bos(ids, self.llm.token_bos(), self.bos)

    def _one(self, p: Prompt) -> Completion:
        t = self.teacher
        kwargs = {
            "temperature": t.temperature,
            "top_p": t.top_p,
            "max_tokens": t.max_new_tokens,
            "seed": self.seed,
        }
        if t.temperature == 0:
            kwargs["top_k"] = 1
        started = time.perf_counter()
        try:
            text, template_stops = self.render(p)
            stops = [s for s in [*(t.stop or []), *template_stops] if s]
            out = self.llm.create_completion(prompt=self._ids(text), stop=stops or None, **kwargs)
            text = out["choices"][0]["text"] or ""
        except ValueError as exc:  # llama.cpp: prompt longer than the context
            return Completion("", error=f"llama.cpp: {exc}", seconds=time.perf_counter() - started)
        usage = out.get("usage") or {}
        c = Completion(
            text.strip(),
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            "length" if out["choices"][0].get("finish_reason") == "length" else "stop",
            seconds=time.perf_counter() - started,
        )
        if not c.text:
            c.error = "empty response"
        return c

    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]:
        bs = self.teacher.batch_size
        for i in range(0, len(prompts), bs):
            yield [(p.id, self._one(p)) for p in prompts[i : i + bs]]
