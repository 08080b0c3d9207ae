"""Tiny randomly initialised models built from a config (no download, fast) for the unit tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# `@pytest.mark.isolated`: the test runs in a child process (a native crash fails it alone).
from isolation import pytest_configure, pytest_runtest_logreport, pytest_runtest_protocol  # noqa: F401

# `make test` runs the suite on two pytest-xdist workers (--dist loadgroup), then the tests
# marked `serial` alone. Serial: the Ray tests (a local Ray cluster each; Ray runs its workers at
# a low priority, so a busy neighbour test starves them and their kill timing breaks; helpers find
# Ray workers by process title). Grouped on one worker: the llama.cpp / GGUF tests (converted
# models cached under the user's persyn home).
SERIAL_MODULES = {
    "test_ray_executor": "serial",
    "test_ray_run": "serial",
    "test_llamacpp": "gguf",
    "test_split_gguf": "gguf",
    "test_qwen_models": "gguf",
    "test_bos": "gguf",
    "test_engines": "gguf",
    "test_hardware": "gguf",
}


# The slowest tests (CI's --durations), started first so that the two workers end together
# (a long test picked up last leaves the other worker idle); the rest keep their order.
SLOW_FIRST = (
    "test_readme_own_data.py::test_own_data_section_runs_as_written",
    "test_ray_run.py::",
    "test_crash_safety.py::test_kill_at_every_point_then_resume_gives_the_uninterrupted_result",
    "test_experiment.py::test_experiment_smallest_scale",
    "test_kill.py::test_sigkill_during_generation_then_resume",
    "test_reliability.py::test_cache_info_and_clear_one_teacher",
    "test_integration.py::test_persyn_run_with_real_smollm2",
    "test_qwen_models.py::",
    "test_calibration_select.py::test_active_selection_grows",
    "test_experiment.py::test_experiment_two_students_personalisation_matrix",
    "test_experiment.py::test_experiment_alpha_and_epochs_by_validation",
    "test_reliability.py::test_rerun_retries_only_failed_items",
)


def _slow_rank(item) -> int:
    nodeid = item.nodeid.rpartition("/")[2]
    return next((i for i, prefix in enumerate(SLOW_FIRST) if nodeid.startswith(prefix)), len(SLOW_FIRST))


def pytest_collection_modifyitems(config, items):
    import inspect

    items.sort(key=_slow_rank)  # stable: the other tests keep their collection order
    for item in items:
        group = SERIAL_MODULES.get(item.module.__name__.rpartition(".")[2]) if item.module else None
        if group is None and getattr(item, "function", None) is not None:
            try:
                source = inspect.getsource(item.function)
            except (OSError, TypeError):
                source = ""
            if 'importorskip("ray")' in source or 'executor="ray"' in source:
                group = "serial"
        if group == "serial":
            item.add_marker(pytest.mark.serial)
        elif group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "What is 2 + 3? The answer is 5.",
    "Tom has 3 boxes of 4 apples. 3 * 4 = 12 apples. #### 12",
    "Solve step by step, then write the final line as #### number.",
    "Question: how many legs do 2 dogs have? Answer: 8",
] * 20


def _tokenizer(chat: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<eos>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>" if chat else "<eos>"
    )
    if chat:
        fast.chat_template = CHATML
    return fast


def _save_causal_lm(path: Path, chat: bool, seed: int, max_positions: int = 512) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer(chat)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        initializer_range=0.5,  # wide init: varied, non-blank output
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """Paths of tiny models: ``chat`` (causal LM with a chat template), ``chat2`` (another
    seed), ``base`` (no chat template), ``encoder`` (BERT-like) and ``reward`` (classifier)."""
    import torch
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForSequenceClassification

    root = tmp_path_factory.mktemp("tiny")
    out = {
        "chat": str(_save_causal_lm(root / "chat", True, 0)),
        "chat2": str(_save_causal_lm(root / "chat2", True, 1)),
        "base": str(_save_causal_lm(root / "base", False, 2)),
    }
    tok = _tokenizer(chat=False)
    torch.manual_seed(3)
    enc = BertModel(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
        )
    )
    enc.save_pretrained(root / "encoder")
    tok.save_pretrained(root / "encoder")
    out["encoder"] = str(root / "encoder")
    chat_tok = _tokenizer(chat=True)
    torch.manual_seed(4)
    rm = LlamaForSequenceClassification(
        LlamaConfig(
            vocab_size=len(chat_tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_labels=1,
            pad_token_id=chat_tok.pad_token_id,
            max_position_embeddings=512,
        )
    )
    rm.save_pretrained(root / "reward")
    chat_tok.save_pretrained(root / "reward")
    out["reward"] = str(root / "reward")
    return out


PROBLEMS = [
    ("Tom has 3 boxes of 4 apples. How many apples?", "12"),
    ("What is 2 + 3?", "5"),
    ("How many legs do 2 dogs have?", "8"),
    ("What is 10 - 4?", "6"),
    ("What is 7 * 3?", "21"),
    ("Anna has 5 pens and buys 4 more. How many pens?", "9"),
    ("What is 100 / 4?", "25"),
    ("What is 9 + 9?", "18"),
    ("How many wheels do 3 cars have?", "12"),
    ("What is 15 - 7?", "8"),
    ("What is 6 * 6?", "36"),
    ("Ben reads 4 pages a day for 5 days. How many pages?", "20"),
]


def tiny_teacher_server(script=()):
    """The loopback OpenAI-compatible fake (persyn.testing) serving ``tiny-teacher``: the right
    answer to each of PROBLEMS (``#### 0`` otherwise), 10 / 3 tokens, a 0.2 s Retry-After, a
    1.5 s stall; prompts containing ``ALWAYS500`` always fail. ``script`` (also settable as
    ``server.script``) is consumed one fault per chat request, then it answers normally."""
    from persyn.testing.fake_openai import FakeOpenAIServer

    answers = dict(PROBLEMS)
    return FakeOpenAIServer(
        answer=lambda user: f"#### {answers.get(user, '0')}",
        usage=lambda user, text: (10, 3),
        retry_after_s=0.2,
        stall_s=1.5,
        script=script,
        fault_of=lambda user: "500" if "ALWAYS500" in user else None,
        model="tiny-teacher",
    )


def write_prompts(path: Path, n: int = 12, wrong_every: int = 0) -> Path:
    """A JSONL prompt file with ``prompt``, ``answer`` and a worked ``solution``; with
    ``wrong_every`` k, every k-th solution (from the first) ends on a wrong answer, so the
    ``reference`` teacher fails the verifier there."""
    with open(path, "w") as f:
        for i, (q, a) in enumerate(PROBLEMS[:n]):
            final = str(int(a) + 1) if wrong_every and i % wrong_every == 0 else a
            f.write(
                json.dumps({"prompt": q, "answer": a, "solution": f"Let us compute.\n#### {final}"}) + "\n"
            )
    return path


def tiny_config(tiny: dict[str, str], tmp: Path, n: int = 12, **over) -> dict:
    """A run config (as a dict) on the tiny models and a JSONL prompt file."""
    cfg = {
        "output_dir": str(tmp / "run"),
        "seed": 0,
        "prompts": {
            "source": "jsonl",
            "path": str(write_prompts(tmp / "prompts.jsonl", n)),
            "solution_field": "solution",
        },
        "student": {"model": tiny["chat"]},
        "teachers": [
            {
                "name": "a",
                "engine": "transformers",
                "model": tiny["chat"],
                "max_new_tokens": 12,
                "batch_size": 4,
            },
            {
                "name": "b",
                "engine": "transformers",
                "model": tiny["chat2"],
                "system_prompt": "Be brief.",
                "max_new_tokens": 8,
                "batch_size": 4,
            },
            {"name": "reference", "engine": "reference"},
        ],
        "quality": {"kind": "verifier"},
        "calibration": {"size": 0.5},
        "router": {"encoder": tiny["encoder"], "epochs": 2, "batch_size": 4},
    }
    cfg.update(over)
    return cfg


def best_single_teacher_of_rows(names: list[str], rewards: list[list[float | None]]) -> str | None:
    """The teacher with the highest mean combined reward over prompts (one row per prompt in
    teacher order), a failed response counted as the prompt's lowest valid reward (a prompt
    with none skipped), by ``core.ranking``'s rules: what the router evaluation's
    ``best_single_teacher`` must name, computed independently of the router."""
    import numpy as np

    from persyn.core import ranking

    filled = [f for row in rewards if (f := ranking.filled_rewards(row)) is not None]
    means = np.array(filled, dtype=np.float64).mean(0) if filled else np.zeros(len(names))
    return ranking.best_single_teacher(names, means)
