"""``engine: llamacpp``: in-process generation from a GGUF file with llama.cpp
(llama-cpp-python, the optional extra ``persyn[llamacpp]``), fast on a CPU.

``model`` is a GGUF path or a GGUF alias (``smollm2-135m-instruct``, ``gemma3-270m-base``: the
packaged files themselves, not their converted HF copies). Chat models (a chat template in the
GGUF metadata) get ``create_chat_completion`` over [system?, user]; base models get
``create_completion`` over ``prompt_template``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator

from persyn.assets import gguf_path
from persyn.config import TeacherConfig
from persyn.core.errors import MissingAssetError
from persyn.core.records import Completion, Prompt


class LlamaCppEngine:
    """A teacher run by llama.cpp in this process; prompts one at a time (llama.cpp's Python
    API decodes one sequence), yielded ``batch_size`` at a time. Greedy at temperature 0."""

    def __init__(self, teacher: TeacherConfig, seed: int):
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingAssetError(
                "engine 'llamacpp' needs llama-cpp-python: run `pip install 'persyn[llamacpp]'` "
                "(it compiles llama.cpp, about 5 minutes)"
            )
        from llama_cpp import Llama

        assert teacher.model
        self.teacher = teacher
        self.seed = seed
        self.llm = Llama(model_path=str(gguf_path(teacher.model)), n_ctx=0, seed=seed, verbose=False)
        self.chat = bool((self.llm.metadata or {}).get("tokenizer.chat_template"))

    def _one(self, p: Prompt) -> Completion:
        t = self.teacher
        content = t.prompt_template.replace("{prompt}", p.text) if t.prompt_template else p.text
        kwargs = {
            "temperature": t.temperature,
            "top_p": t.top_p,
            "max_tokens": t.max_new_tokens,
            "stop": t.stop or None,
            "seed": self.seed,
        }
        if t.temperature == 0:
            kwargs["top_k"] = 1
        started = time.perf_counter()
        try:
            if self.chat:
                msgs = [{"role": "system", "content": t.system_prompt}] if t.system_prompt else []
                out = self.llm.create_chat_completion(
                    messages=msgs + [{"role": "user", "content": content}], **kwargs
                )
                text = out["choices"][0]["message"]["content"] or ""
            else:
                prompt = content if t.prompt_template else f"{p.text}\n"
                if t.system_prompt:
                    prompt = f"{t.system_prompt}\n\n{prompt}"
                out = self.llm.create_completion(prompt=prompt, **kwargs)
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
