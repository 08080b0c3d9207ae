import pytest

from persyn.config import make_teacher
from persyn.core.records import Prompt
from persyn.engines import make_engine
from persyn.engines.transformers_engine import cut_at_stop, render_teacher_prompt

PROMPTS = [
    Prompt(str(i), q)
    for i, q in enumerate(
        [
            "What is 2 + 3?",
            "Tom has 3 boxes of 4 apples. How many apples are there in all?",
            "Hi",
            "What is 9 + 9?",
        ]
    )
]


def gen(engine, prompts):
    out = {}
    for batch in engine.generate(prompts):
        for pid, c in batch:
            out[pid] = c
    return out


def test_batched_left_padded_greedy_equals_one_at_a_time(tiny_models):
    t = make_teacher(
        name="a", engine="transformers", model=tiny_models["chat"], max_new_tokens=10, batch_size=4
    )
    e = make_engine(t, seed=0)
    batched = gen(e, PROMPTS)
    single = {p.id: gen(e, [p])[p.id] for p in PROMPTS}
    assert {k: c.text for k, c in batched.items()} == {k: c.text for k, c in single.items()}
    for c in batched.values():
        assert c.prompt_tokens > 0 and 0 < c.completion_tokens <= 10
        # "length" exactly when the token budget ran out, "stop" when the model ended first
        assert c.finish_reason == ("length" if c.completion_tokens == 10 else "stop")


def test_sampling_is_seeded(tiny_models):
    t = make_teacher(
        name="a", engine="transformers", model=tiny_models["chat"], max_new_tokens=10, temperature=1.0
    )
    first = {k: c.text for k, c in gen(make_engine(t, seed=1), PROMPTS).items()}
    again = {k: c.text for k, c in gen(make_engine(t, seed=1), PROMPTS).items()}
    assert first == again
    # ...and it is sampling: another seed, and greedy decoding, give other responses.
    other = {k: c.text for k, c in gen(make_engine(t, seed=2), PROMPTS).items()}
    greedy_t = t.model_copy(update={"temperature": 0.0})
    greedy = {k: c.text for k, c in gen(make_engine(greedy_t, seed=1), PROMPTS).items()}
    assert other != first and greedy != first


def test_prompt_longer_than_context_is_a_failed_item(tiny_models):
    t = make_teacher(name="a", engine="transformers", model=tiny_models["chat"], max_new_tokens=4)
    out = gen(make_engine(t, 0), [Prompt("long", "apples " * 600), PROMPTS[0]])
    assert out["long"].error.startswith("prompt too long") and out["long"].text == ""
    # the short prompt was generated (a tiny model may still answer it with nothing)
    assert out["0"].prompt_tokens > 0 and out["0"].finish_reason in ("stop", "length")


def test_render_uses_chat_template_or_plain_template(tiny_models):
    from persyn.models.loading import load_tokenizer

    chat = load_tokenizer(tiny_models["chat"])
    t = make_teacher(
        name="a", engine="transformers", model="x/y", system_prompt="Be brief.", prompt_template="Q: {prompt}"
    )
    text = render_teacher_prompt(chat, t, "2+2?")
    assert (
        text
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ: 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    base = load_tokenizer(tiny_models["base"])
    t = make_teacher(
        name="a", engine="transformers", model="x/y", prompt_template="Question: {prompt}\nAnswer:"
    )
    assert render_teacher_prompt(base, t, "2+2?") == "Question: 2+2?\nAnswer:"


def test_cut_at_stop():
    assert cut_at_stop("12\n#### 12\nQuestion: next", ["\nQuestion:"]) == ("12\n#### 12", True)
    assert cut_at_stop("a b", ["\nQuestion:", "zz"]) == ("a b", False)
    assert cut_at_stop("x zz y \nQuestion:", ["\nQuestion:", "zz"]) == ("x ", True)


def test_reference_engine():
    e = make_engine(make_teacher(name="reference", engine="reference"), 0)
    out = gen(
        e,
        [
            Prompt("1", "q", answer="4", solution="2+2=4\n#### 4"),
            Prompt("2", "q", answer="5"),
            Prompt("3", "q"),
        ],
    )
    assert out["1"].text == "2+2=4\n#### 4" and out["2"].text == "5"
    assert out["3"].error == "no reference solution for this prompt"
    e = make_engine(make_teacher(name="short", engine="reference", style="answer"), 0)
    out = gen(e, [Prompt("1", "q", answer="4", solution="2+2=4\n#### 4"), Prompt("3", "q")])
    assert out["1"].text == "#### 4" and out["3"].error


def test_the_engine_contract_gives_work_units_and_requires_generate():
    from persyn.core.plugins import ENGINES, load
    from persyn.engines.base import Engine

    class OneByOne(Engine):
        def generate(self, prompts):
            yield [(p.id, None) for p in prompts]

    assert OneByOne().work_units(PROMPTS) == [[p] for p in PROMPTS]  # the default: one group each

    class NoGenerate(Engine):
        pass

    with pytest.raises(TypeError, match="generate"):
        NoGenerate()
    for name in ("transformers", "reference", "openai"):  # llamacpp needs its extra to import
        assert issubclass(load(ENGINES, name, "engine"), Engine), name
