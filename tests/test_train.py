"""persyn sft on the tiny random models: bad lines are named, the loss is on the response tokens
only (and is exactly -r_l of learnability scoring), the loss goes down, full and merged-LoRA
outputs are plain loadable model directories, seeds reproduce, a failed run leaves no half model."""

import json

import pytest
import torch

from persyn.core.errors import ConfigError, InputError
from persyn.training.sft import make_trainer, read_training_pairs, sft
from persyn.training.sft_config import SFTSettings


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train fastest on one thread (two threads on a busy 2-core machine are ~10x
    slower); the previous setting is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def weights(path):
    import safetensors.torch as st

    return st.load_file(path / "model.safetensors")


def test_bad_dataset_lines_are_named(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps(lines(1)[0])

    def check(second_line, match):
        path.write_text(good + "\n\n" + second_line + "\n")
        with pytest.raises(InputError, match=match):
            read_training_pairs(path)

    check("{not json", r"d.jsonl:3: malformed JSON")
    check(json.dumps({"id": "x"}), r"d.jsonl:3: missing field 'messages'")
    check(json.dumps(["a list"]), r"d.jsonl:3: missing field 'messages'")
    check(json.dumps({"messages": [{"role": "user", "content": "q"}]}), r"d.jsonl:3: .* no assistant turn")
    check(json.dumps({"messages": [{"role": "assistant", "content": "a"}]}), r"d.jsonl:3: .* no user turn")
    msgs = [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]
    check(json.dumps({"messages": msgs}), r"d.jsonl:3: the user turn has empty")
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5}]
    check(json.dumps({"messages": msgs}), r"d.jsonl:3: the assistant turn has empty or non-text")
    with pytest.raises(InputError, match=r"<dataset>:2: missing field 'messages'"):
        read_training_pairs([lines(1)[0], {}])
    with pytest.raises(InputError, match="not found"):
        read_training_pairs(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="empty"):
        read_training_pairs(tmp_path / "empty.jsonl")
    path.write_text(good + "\n")
    assert read_training_pairs(path) == [("What is 0 + 2?", "0 + 2 = 2\n#### 2")]
    with pytest.raises(ConfigError, match="prompt"):
        sft(path, "unused", tmp_path / "out", prompt_template="no placeholder")


@pytest.mark.parametrize("kind", ["chat", "base"])
def test_loss_is_on_response_tokens_only(tiny_models, tmp_path, kind):
    """The prompt tokens are those the engine generates from at evaluation and learnability
    scoring conditions on; only the response tokens have labels; and the training loss of one
    example is exactly -r_l (learnability's mean response-token log-probability)."""
    import torch

    from persyn.config import StudentConfig, make_teacher
    from persyn.core.records import ScoreItem
    from persyn.engines.transformers_engine import render_teacher_prompt
    from persyn.scoring.learnability import LearnabilityScorer
    from persyn.tokenization import student_tokens

    ref, template = tiny_models[kind], "Question: {prompt}\nAnswer: "
    pairs = read_training_pairs(lines(3))
    padded = SFTSettings(padding_free=False, lm_head="all", dtype="float32")  # the padded recipe
    trainer, tok, stats = make_trainer(pairs, ref, tmp_path / "w", padded, template, progress=False)
    assert stats["n_truncated"] == stats["n_dropped"] == 0
    # What evaluation feeds the model (as persyn.evaluate builds the engine's teacher).
    teacher = make_teacher(
        name="eval", engine="transformers", model=ref, prompt_template=None if kind == "chat" else template
    )
    expected = {}
    for i, (prompt, response) in enumerate(pairs):
        p, r = student_tokens(tok, prompt, response, template)
        engine_ids = tok(render_teacher_prompt(tok, teacher, prompt), add_special_tokens=False)["input_ids"]
        assert engine_ids == p
        row = trainer.train_dataset[i]
        assert row["input_ids"] == p + r
        assert row["labels"] == [-100] * len(p) + r  # response tokens only, end of turn / EOS included
        expected[prompt] = (p, r)
    if kind == "chat":
        assert tok.convert_ids_to_tokens(r)[-1] == "<|im_end|>"
    else:
        assert r[-1] == tok.eos_token_id
    # The padded batch keeps the masking; its loss on one example is -r_l.
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    p0, r0 = expected[pairs[0][0]]
    assert batch["labels"][0].tolist()[: len(p0) + len(r0)] == [-100] * len(p0) + r0
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    one = trainer.data_collator([trainer.train_dataset[0]])
    model = trainer.model.eval()
    with torch.no_grad():
        loss = float(
            model(**{k: v for k, v in one.items() if k in ("input_ids", "attention_mask", "labels")}).loss
        )
    scorer = LearnabilityScorer(
        StudentConfig(model=ref, prompt_template=template, batching="per_prompt", dtype="float32")
    )
    [[(_, r_l, err)]] = list(scorer.score([ScoreItem("k", *pairs[0])]))
    assert err is None and loss == pytest.approx(-r_l, rel=1e-5)


def _first_batch_loss_and_grads(trainer):
    """The loss ``trainer.compute_loss`` gives its first training batch, and every parameter's
    gradient of it."""
    model = trainer.model.train()
    model.zero_grad()
    batch = next(iter(trainer.get_train_dataloader()))
    n = int((batch["labels"][:, 1:] != -100).sum())
    loss = trainer.compute_loss(model, batch, num_items_in_batch=n)
    loss.backward()
    return float(loss), {
        k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize("kind", ["chat", "base"])
def test_padding_free_response_head_loss_equals_the_padded_recipe(tiny_models, tmp_path, kind):
    """In fp32, the new recipe (one padding-free row, the LM head on response positions only)
    gives the padded recipe's loss (TRL's head over every position) to 1e-5 and the same
    gradient for every parameter; and it does compute fewer head positions."""
    from persyn.response_loss import response_nll, supports_response_head

    pairs = read_training_pairs(lines(4))
    ref, template = tiny_models[kind], "Question: {prompt}\nAnswer: "
    old = SFTSettings(batch_size=4, padding_free=False, lm_head="all", dtype="float32")
    new = SFTSettings(batch_size=4, dtype="float32")  # padding_free + lm_head: response by default
    t_old, _, _ = make_trainer(pairs, ref, tmp_path / "old", old, template, progress=False)
    t_new, _, _ = make_trainer(pairs, ref, tmp_path / "new", new, template, progress=False)
    assert type(t_new).__name__ == "ResponseHeadSFTTrainer" and supports_response_head(t_new.model)
    loss_old, g_old = _first_batch_loss_and_grads(t_old)
    loss_new, g_new = _first_batch_loss_and_grads(t_new)
    batch_new = next(iter(t_new.get_train_dataloader()))
    assert batch_new["input_ids"].shape[0] == 1 and "attention_mask" not in batch_new  # no padding
    assert loss_new == pytest.approx(loss_old, abs=1e-5)
    assert g_new.keys() == g_old.keys() and len(g_new) > 5
    for k in g_old:
        assert torch.allclose(g_new[k], g_old[k], atol=1e-5, rtol=1e-4), k
    _, n_head = response_nll(t_new.model, batch_new)
    assert 0 < n_head < batch_new["input_ids"].shape[1] - 1  # only the response positions


def test_bf16_sft_is_mixed_precision_and_close_to_fp32(tiny_models, tmp_path):
    """``dtype: bfloat16`` trains with bf16 autocast over fp32 master weights (the saved model is
    fp32) and its first-batch loss is within bf16 rounding of the fp32 one."""
    pairs = read_training_pairs(lines(4))
    t32, _, s32 = make_trainer(
        pairs, tiny_models["chat"], tmp_path / "a", SFTSettings(dtype="float32"), progress=False
    )
    t16, _, s16 = make_trainer(
        pairs, tiny_models["chat"], tmp_path / "b", SFTSettings(dtype="bfloat16"), progress=False
    )
    assert (s32["precision"], s16["precision"]) == ("fp32", "bf16-mixed")
    assert t16.args.bf16 and not t32.args.bf16
    assert all(p.dtype == torch.float32 for p in t16.model.parameters())  # master weights
    l32, _ = _first_batch_loss_and_grads(t32)
    l16, _ = _first_batch_loss_and_grads(t16)
    assert l16 != l32 and l16 == pytest.approx(l32, rel=2e-2)
    info = sft(
        lines(2), tiny_models["chat"], tmp_path / "m", SFTSettings(epochs=1, dtype="bfloat16"), progress=False
    )
    assert info["precision"] == "bf16-mixed" and info["dtype_reason"] == "set in the config"
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_full_sft_lowers_the_loss_and_reproduces(tiny_models, tmp_path):
    from persyn.models.loading import load_causal_lm, load_tokenizer, resolve_model

    s = SFTSettings(epochs=6, batch_size=4, learning_rate=3e-3, logging_steps=1, seed=0)
    ds = tmp_path / "dataset.jsonl"
    ds.write_text("".join(json.dumps(x) + "\n" for x in lines()))
    info = sft(ds, tiny_models["chat"], tmp_path / "m1", s, progress=False)
    assert info["n_examples"] == info["n_trained"] == 8 and info["steps"] == 12
    assert info["loss_steps"][0] == 1 and info["losses"][-1] < 0.7 * info["losses"][0]
    assert info["final_loss"] == info["losses"][-1] and info["device"] == "cpu"
    assert json.loads((tmp_path / "m1/persyn_sft.json").read_text()) == info
    assert resolve_model(str(tmp_path / "m1")) == str(tmp_path / "m1")
    model = load_causal_lm(str(tmp_path / "m1"), shared=False)
    assert model.config.use_cache and load_tokenizer(str(tmp_path / "m1")).chat_template
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # Reproducibility (a shorter run): same seed, same weights; another seed, other weights.
    short = s.model_copy(update={"epochs": 1})

    def run(name, seed):
        sft(
            lines(),
            tiny_models["chat"],
            tmp_path / name,
            short.model_copy(update={"seed": seed}),
            progress=False,
        )
        return weights(tmp_path / name)

    a, b, c = run("m2", 0), run("m3", 0), run("m4", 1)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)


def test_lora_merges_into_a_plain_model_dir_and_reproduces(tiny_models, tmp_path):
    from persyn.models.loading import load_causal_lm

    s = SFTSettings(method="lora", epochs=1, batch_size=2, lora_r=4, learning_rate=1e-2)
    info = sft(lines(4), tiny_models["base"], tmp_path / "lora", s, progress=False)
    assert info["settings"]["method"] == "lora" and info["steps"] == 2 and info["learning_rate"] == 1e-2
    assert info["prompt_format"] == "template"
    assert not (tmp_path / "lora/adapter_config.json").exists()
    model = load_causal_lm(str(tmp_path / "lora"), shared=False)
    assert not any("lora" in n for n, _ in model.named_parameters())
    merged, base = weights(tmp_path / "lora"), load_causal_lm(tiny_models["base"], shared=False).state_dict()
    assert merged.keys() <= base.keys() and any((merged[k] != base[k]).any() for k in merged)
    sft(lines(4), tiny_models["base"], tmp_path / "lora2", s, progress=False)
    again = weights(tmp_path / "lora2")
    assert all((merged[k] == again[k]).all() for k in merged)
    assert SFTSettings(method="lora").lr == 2e-4 and SFTSettings().lr == 5e-5


def test_a_failed_run_keeps_the_previous_model(tiny_models, tmp_path, monkeypatch):
    from trl import SFTTrainer

    out = tmp_path / "m"
    out.mkdir()
    (out / "marker").write_text("previous model")

    def boom(self, *a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(SFTTrainer, "train", boom)
    with pytest.raises(RuntimeError, match="killed"):
        sft(lines(2), tiny_models["chat"], out, SFTSettings(epochs=1), progress=False)
    assert (out / "marker").read_text() == "previous model"
    monkeypatch.undo()
    sft(lines(2), tiny_models["chat"], out, SFTSettings(epochs=1), progress=False)  # replaces it
    assert not (out / "marker").exists() and (out / "model.safetensors").exists()
    assert not (tmp_path / ".m.training").exists()
