"""persyn sft on the tiny random models: response-only loss, loss goes down, LoRA merges into a
loadable directory, seeds reproduce, bad lines are named."""

import json

import pytest

from persyn.errors import InputError
from persyn.train import SFTSettings, read_dataset, sft, to_trl_examples


def lines(n=8):
    return [
        {
            "id": f"p{i}",
            "messages": [
                {"role": "user", "content": f"What is {i} + 2?"},
                {"role": "assistant", "content": f"{i} + 2 = {i + 2}\n#### {i + 2}"},
            ],
        }
        for i in range(n)
    ]


def test_bad_dataset_lines_are_named(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps(lines(1)[0])
    path.write_text(good + "\n{not json\n")
    with pytest.raises(InputError, match="d.jsonl:2: malformed JSON"):
        read_dataset(path)
    path.write_text(good + "\n" + json.dumps({"id": "x"}) + "\n")
    with pytest.raises(InputError, match="d.jsonl:2: missing field 'messages'"):
        read_dataset(path)
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(InputError, match="d.jsonl:1: 'messages' has no non-empty assistant turn"):
        read_dataset(path)
    with pytest.raises(InputError, match="not found"):
        read_dataset(tmp_path / "missing.jsonl")


def test_loss_is_on_response_tokens_only(tiny_models):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from persyn.assets import load_causal_lm, load_tokenizer
    from persyn.scoring.learnability import student_tokens

    tok = load_tokenizer(tiny_models["chat"])
    pairs = read_dataset(lines(2))
    trainer = SFTTrainer(
        model=load_causal_lm(tiny_models["chat"], shared=False),
        args=SFTConfig(
            output_dir="/tmp/persyn-sft-mask", completion_only_loss=True, report_to=[], use_cpu=True
        ),
        train_dataset=Dataset.from_list(to_trl_examples(pairs, tok, "{prompt}")),
        processing_class=tok,
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0].tolist()
    prompt_ids, response_ids = student_tokens(tok, *pairs[0], "{prompt}")
    # The prompt (as learnability scoring renders it) is masked; the response is trained on.
    assert batch["input_ids"][0].tolist()[: len(prompt_ids)] == prompt_ids
    assert all(x == -100 for x in labels[: len(prompt_ids)])
    trained = [x for x in labels if x != -100]
    assert trained[: len(response_ids)] == response_ids


def test_full_sft_lowers_the_loss_and_reproduces(tiny_models, tmp_path):
    from persyn.assets import load_causal_lm, resolve_model

    s = SFTSettings(epochs=6, batch_size=4, learning_rate=3e-3, logging_steps=1, seed=0)
    info = sft(lines(), tiny_models["chat"], tmp_path / "m1", s)
    assert info["n_examples"] == 8 and info["steps"] == 12
    assert info["losses"][-1] < info["losses"][0]
    assert resolve_model(str(tmp_path / "m1")) and load_causal_lm(str(tmp_path / "m1"), shared=False)
    assert not list(tmp_path.glob(".m1.training*"))
    sft(lines(), tiny_models["chat"], tmp_path / "m2", s)
    import safetensors.torch as st

    a = st.load_file(tmp_path / "m1/model.safetensors")
    b = st.load_file(tmp_path / "m2/model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)  # same seed, same weights
    c = st.load_file(
        sft(lines(), tiny_models["chat"], tmp_path / "m3", s.model_copy(update={"seed": 1}))
        and tmp_path / "m3/model.safetensors"
    )
    assert any((a[k] != c[k]).any() for k in a)


def test_lora_merges_into_a_plain_model_dir(tiny_models, tmp_path):
    from persyn.assets import load_causal_lm

    info = sft(
        lines(4),
        tiny_models["base"],
        tmp_path / "lora",
        SFTSettings(method="lora", epochs=1, batch_size=2, lora_r=4),
    )
    assert info["settings"]["method"] == "lora" and info["steps"] == 2
    assert not (tmp_path / "lora/adapter_config.json").exists()
    model = load_causal_lm(str(tmp_path / "lora"), shared=False)
    assert not any("lora" in n for n, _ in model.named_parameters())
