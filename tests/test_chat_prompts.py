"""Prompts as users have them: a Hugging Face dataset (save_to_disk) of chat conversations,
Alpaca instruction + input, and the dataset written back as Parquet / a HF dataset."""

import json

import pytest
import torch
from conftest import PROBLEMS, tiny_config, tiny_teacher_server

from persyn.config import PromptsConfig, parse_config
from persyn.core.errors import InputError
from persyn.models.loading import load_causal_lm, load_tokenizer
from persyn.pipeline import Pipeline
from persyn.prompts import load_prompts

datasets = pytest.importorskip("datasets")


def conversation(q):
    return [
        {"role": "system", "content": "You are a patient tutor."},
        {"role": "user", "content": "Can you help me with some homework?"},
        {"role": "assistant", "content": "Of course. What is the question?"},
        {"role": "user", "content": q},
    ]


def save_chat_dataset(path, n=8, **extra_splits):
    rows = [
        {"messages": conversation(q), "answer": a, "solution": f"Let us compute.\n#### {a}"}
        for q, a in PROBLEMS[:n]
    ]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), **extra_splits}).save_to_disk(str(path))
    return path


def reply_logprob(model_path, turns, reply):
    """Eq. 1 by the book: the mean log-probability of the reply's tokens after the student's
    chat template renders the prompt turns (with the generation prompt)."""
    tok, model = load_tokenizer(model_path), load_causal_lm(model_path)
    head = tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template([*turns, {"role": "assistant", "content": reply}], tokenize=False)
    assert full.startswith(head)
    p = tok(head, add_special_tokens=False)["input_ids"]
    r = tok(full[len(head) :].rstrip(), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + r])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    return float(logp.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)[-len(r) :].mean())


def test_a_chat_dataset_goes_through_the_run_whole(tiny_models, tmp_path):
    server = tiny_teacher_server()
    try:
        cfg = tiny_config(tiny_models, tmp_path, n=8)
        cfg["prompts"] = {
            "source": "hf",
            "path": str(save_chat_dataset(tmp_path / "chat_ds")),
            "split": "train",
            "prompt_field": "messages",
            "solution_field": "solution",
        }
        cfg["teachers"][1] = {
            "name": "served",
            "engine": "openai",
            "base_url": server.url,
            "model": "tiny-teacher",
        }
        cfg["calibration"] = {"size": 4}
        cfg["dataset_formats"] = ["parquet", "hf"]
        cfg["student"]["dtype"] = "float32"  # learnability is checked against an fp32 computation
        with Pipeline(parse_config(cfg)) as p:
            summary = p.run().model_dump()
        assert summary["n_dataset"] == 8
        # The served teacher received every conversation whole: system message, earlier turns.
        questions = {q for q, _ in PROBLEMS[:8]}
        assert len(server.bodies) == 4 + summary["routing_routed"]["served"]
        for body in server.bodies:
            assert body["messages"] == conversation(body["messages"][-1]["content"])
            assert body["messages"][-1]["content"] in questions
    finally:
        server.close()
    out = tmp_path / "run"
    lines = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    for x in lines:
        *turns, reply = x["messages"]
        assert turns == conversation(turns[-1]["content"])
        assert reply["role"] == "assistant" and reply["content"]
    # Learnability: exactly the reply's tokens, under the student's chat template, after the
    # whole conversation (not after the last user turn alone).
    cal = [json.loads(x) for x in (out / "calibration.jsonl").read_text().splitlines()]
    row = next(r for r in cal if r["teacher"] == "a" and r["learnability"] is not None)
    assert row["messages"] == conversation(row["messages"][-1]["content"])
    expected = reply_logprob(tiny_models["chat"], row["messages"], row["response"])
    assert row["learnability"] == pytest.approx(expected, abs=1e-4)
    alone = reply_logprob(tiny_models["chat"], row["messages"][-1:], row["response"])
    assert abs(alone - expected) > 1e-3
    # The same lines as Parquet and as a HF dataset, loadable as they are.
    assert datasets.load_from_disk(str(out / "dataset_hf")).to_list() == lines
    assert datasets.Dataset.from_parquet(str(out / "dataset.parquet")).to_list() == lines


def test_bad_chat_input_names_the_row_and_field(tmp_path):
    def load(rows, **cfg):
        path = tmp_path / "d"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
        return load_prompts(PromptsConfig(source="hf", path=path, prompt_field="messages", **cfg), 0, False)

    with pytest.raises(InputError, match=r"d:row 1: field 'messages' turn 0 must be \{role, content\}"):
        load([{"messages": conversation("q")}, {"messages": [{"role": "robot", "content": "hi"}]}])
    with pytest.raises(InputError, match=r"d:row 0: field 'messages' ends with a turn of role 'assistant'"):
        load([{"messages": [*conversation("q"), {"role": "assistant", "content": "a"}]}])
    with pytest.raises(InputError, match=r"d:row 0: prompt field 'messages' must be a string or a list"):
        load([{"messages": 5}])
    save_chat_dataset(tmp_path / "dd", n=2)
    with pytest.raises(InputError, match=r"unknown split 'test' \(prompts.split; available: train\)"):
        load_prompts(
            PromptsConfig(source="hf", path=tmp_path / "dd", prompt_field="messages", split="test"), 0, False
        )
    with pytest.raises(InputError, match="not a dataset saved with save_to_disk"):
        (tmp_path / "empty").mkdir()
        load_prompts(PromptsConfig(source="hf", path=tmp_path / "empty"), 0, False)


def test_ids_cover_the_whole_conversation_and_alpaca_fields_are_joined(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [
        {"messages": conversation("What is 2 + 3?")},
        {"messages": [*conversation("What is 2 + 3?")[:1], {"role": "user", "content": "What is 2 + 3?"}]},
        {"messages": [{"role": "user", "content": "What is 2 + 3?"}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts, _ = load_prompts(
        PromptsConfig(source="jsonl", path=path, prompt_field="messages", answer_field=None), 0, False
    )
    # Same last question, different conversations: three prompts, three ids. A lone user turn
    # is a text prompt: the same id as the plain string would get.
    assert len({p.id for p in prompts}) == 3
    assert prompts[2].messages is None and prompts[2].text == "What is 2 + 3?"
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"prompt": "What is 2 + 3?"}) + "\n")
    assert (
        load_prompts(PromptsConfig(source="jsonl", path=plain, answer_field=None), 0, False)[0][0].id
        == prompts[2].id
    )
    assert prompts[0].text.startswith("system: You are a patient tutor.\n\nuser: Can you help")

    alpaca = tmp_path / "a.jsonl"
    alpaca.write_text(
        json.dumps({"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"})
        + "\n"
        + json.dumps({"instruction": "Say hi.", "input": "", "output": "hi"})
        + "\n"
    )
    cfg = PromptsConfig(
        source="jsonl", path=alpaca, prompt_field="instruction", input_field="input", answer_field="output"
    )
    got, _ = load_prompts(cfg, 0, True)
    assert [p.text for p in got] == ["Add the numbers.\n\n2 and 3", "Say hi."]


def test_a_named_dataset_is_read_from_the_local_cache_only():
    from persyn.core.errors import MissingAssetError

    cfg = PromptsConfig(source="hf", name="nobody/no-such-dataset", split="train")
    with pytest.raises(MissingAssetError, match="not in the local Hugging Face cache.*OfflineModeIsEnabled"):
        load_prompts(cfg, 0, False)


def test_sft_trains_on_the_whole_conversation(tiny_models):
    from persyn.tokenization import student_tokens
    from persyn.training.sft import read_training_pairs, to_trl_examples

    turns = conversation("What is 2 + 3?")
    line = {"id": "x", "messages": [*turns, {"role": "assistant", "content": "#### 5"}]}
    plain = {"id": "y", "messages": [turns[-1], {"role": "assistant", "content": "#### 5"}]}
    examples = read_training_pairs([line, plain])
    assert examples[0] == (examples[0][0], "#### 5", turns) and examples[1] == ("What is 2 + 3?", "#### 5")
    tok = load_tokenizer(tiny_models["chat"])
    chat, single = to_trl_examples(examples, tok)
    p, r = student_tokens(tok, "", "#### 5", "", turns)
    assert chat["input_ids"] == p + r and chat["completion_mask"] == [0] * len(p) + [1] * len(r)
    # The earlier turns are in the prompt part: longer than the last question alone.
    assert chat["completion_mask"].count(0) > single["completion_mask"].count(0)
    with pytest.raises(InputError, match="must end with the assistant turn"):
        read_training_pairs(
            [{"messages": [*turns, {"role": "assistant", "content": "5"}, {"role": "user", "content": "?"}]}]
        )
