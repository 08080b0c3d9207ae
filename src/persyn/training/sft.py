"""Student fine-tuning on a persyn dataset with TRL's SFTTrainer (loss on response tokens only).

Each dataset line ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`` becomes
one *prompt-completion* example, handed to TRL already tokenized as ``{"input_ids",
"completion_mask"}``. The tokens are those of ``persyn.tokenization.student_tokens``,
the function that learnability scoring uses, so the student is trained on exactly the token
sequences whose log-likelihood r_l measured, and sees at training the prompt it sees at
evaluation (``persyn.evaluate`` generates through ``TransformersEngine`` with no system prompt):

* chat student (the tokenizer has a chat template): prompt = the template over the user turn
  alone with the generation prompt; completion = the rest of the rendered conversation up to and
  including the end-of-turn token (trailing whitespace after it dropped);
* base student: prompt = ``prompt_template`` filled with the prompt; completion = the response
  followed by the EOS token; prompt and completion are tokenized separately (no token merges
  across the boundary, e.g. the space that ends ``"Answer: "``).

TRL's ``completion_only_loss`` turns ``completion_mask`` into labels (-100 on the prompt), so the
loss is the mean negative log-likelihood of the response tokens: -r_l, averaged over a batch's
response tokens (PerSyn §3: the student is fine-tuned on the responses).

Why not TRL's own text formats: TRL renders a conversational prompt-completion pair as
``template(prompt + completion)`` and so also trains on the newline the ChatML template writes
after ``<|im_end|>``; for plain text it tokenizes ``prompt + completion`` as one string (tokens
merge across the boundary: TRL then drops the prompt's last token from the training sequence)
and adds BOS by its own reading of the tokenizer. Here the BOS policy is the one rule of
``persyn.tokenization`` (the model's metadata; BOS once when the model wants it, e.g. Gemma,
never twice), the rule the teacher engines and evaluation also encode prompts with.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from persyn.core.deps import require
from persyn.core.errors import ConfigError, InputError
from persyn.core.io import dataset_lines, replace_dir
from persyn.core.templates import DEFAULT_PROMPT_TEMPLATE
from persyn.training.base import lora_config, trained_model, trl_args
from persyn.training.sft_config import SFTSettings


def read_training_pairs(dataset: str | Path | list[dict]) -> list[tuple]:
    """The SFT examples of a persyn dataset: a path to ``dataset.jsonl`` or its lines as dicts.
    Each line's ``messages`` ends with a non-empty assistant turn (the response) after at least
    one non-empty user turn; other fields and blank lines are skipped.

    Returns ``(prompt, response)`` for a line of one user turn and a response, and
    ``(prompt, response, turns)`` for a chat line (a system message or earlier turns): ``turns``
    are the messages before the response, ``prompt`` their ``render_conversation``.

    Raises:
        InputError: a missing file, malformed JSON, a line without ``messages``, without a
            non-empty user turn or a final non-empty assistant turn, or an empty dataset; the
            message names the file (``<dataset>`` for a list) and the 1-based line number.
    """
    if isinstance(dataset, list):
        where, source = "<dataset>", dataset
    else:
        where = source = Path(dataset)
        if not source.is_file():
            raise InputError(f"{source}: dataset not found")
    out = [line.pair for _, _, line in dataset_lines(source, training=True)]
    if not out:
        raise InputError(f"{where}: the dataset is empty")
    return out


def to_trl_examples(
    pairs: list[tuple], tokenizer, prompt_template: str = DEFAULT_PROMPT_TEMPLATE
) -> list[dict]:
    """Tokenized TRL prompt-completion examples ``{"input_ids": [...], "completion_mask":
    [0]*len(prompt) + [1]*len(response)}``, one per ``(prompt, response[, turns])`` of
    ``read_training_pairs``, rendered by ``student_tokens`` (see the module docstring: a chat example's
    turns go through the chat template whole); ``prompt_template`` is used only when the
    tokenizer has no chat template."""
    from persyn.tokenization import student_tokens

    out = []
    for prompt, response, *turns in pairs:
        p, r = student_tokens(tokenizer, prompt, response, prompt_template, turns[0] if turns else None)
        out.append({"input_ids": p + r, "completion_mask": [0] * len(p) + [1] * len(r)})
    return out


def make_trainer(
    pairs: list[tuple],
    model: str,
    work_dir: str | Path,
    settings: SFTSettings,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    progress: bool = True,
    examples: list[dict] | None = None,
):
    """The ``SFTTrainer`` that ``sft`` runs (model loaded, dataset tokenized and labelled),
    writing its scratch files under ``work_dir``. Seeds the RNGs with ``settings.seed`` first.
    ``examples`` (tokenized ``{"input_ids", "completion_mask"}``, the loss on the tokens where
    the mask is 1) replaces the rendering of ``pairs`` (e.g. a generator's examples).

    Returns ``(trainer, tokenizer, stats)``; ``stats``: ``n_truncated`` (examples longer than
    ``max_length``, cut) and ``n_dropped`` (examples whose prompt alone fills ``max_length``,
    left out: no response token would remain).

    Raises:
        MissingAssetError: the model, or TRL / PEFT, is not installed.
        InputError: every example's prompt is longer than ``max_length``.
    """
    for pkg in ("trl", "datasets") + (("peft",) if settings.method == "lora" else ()):
        require(pkg, "persyn sft", "pip install 'persyn[train]'")
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from persyn.models.loading import load_causal_lm, load_tokenizer, model_dtype
    from persyn.response_loss import response_head_trainer_class

    set_seed(settings.seed)
    tokenizer = load_tokenizer(model, padding_side="right")
    if examples is None:
        examples = to_trl_examples(pairs, tokenizer, prompt_template)
    cap = settings.max_length
    kept = [e for e in examples if e["completion_mask"].index(1) < cap]
    stats = {
        "n_truncated": sum(len(e["input_ids"]) > cap for e in kept),
        "n_dropped": len(examples) - len(kept),
    }
    if not kept:
        raise InputError(f"every prompt is at least max_length={cap} tokens long: nothing to train on")
    # Cut here, keeping the start (TRL's truncation_mode keep_start): TRL's padding-free collator
    # does not truncate.
    kept = [{k: e[k][:cap] for k in ("input_ids", "completion_mask")} for e in kept]
    dtype, dtype_reason = model_dtype(settings.dtype)
    net = load_causal_lm(model, shared=False)  # fp32 master weights; bf16 is autocast
    bf16 = dtype == "bfloat16"
    args = trl_args(
        SFTConfig,
        settings,
        work_dir,
        bf16=bf16,  # mixed precision (autocast) on the CPU too; TRL's default is True everywhere
        progress=progress,
        gradient_accumulation_steps=settings.grad_accum,
        max_length=None,  # cut above
        padding_free=settings.padding_free,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=settings.weight_decay,
        lr_scheduler_type=settings.lr_scheduler,
        completion_only_loss=True,
        gradient_checkpointing=settings.gradient_checkpointing,  # TRL's default is True
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        fp16=False,
        dataloader_num_workers=0,
    )
    trainer_class = response_head_trainer_class() if settings.lm_head == "response" else SFTTrainer
    trainer = trainer_class(
        model=net,
        args=args,
        train_dataset=Dataset.from_list(kept),
        processing_class=tokenizer,
        peft_config=lora_config(settings, settings.lora_dropout, settings.lora_target_modules),
    )
    stats["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    stats["precision"] = "bf16-mixed" if bf16 else "fp32"
    stats["dtype_reason"] = dtype_reason
    return trainer, tokenizer, stats


def sft(
    dataset: str | Path | list[dict],
    model: str,
    output_dir: str | Path,
    settings: SFTSettings | None = None,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    *,
    progress: bool = True,
    examples: list[dict] | None = None,
) -> dict:
    """Fine-tune ``model`` (alias, HF id or local path) on ``dataset`` (a persyn
    ``dataset.jsonl`` path or its lines as dicts) and save the result to ``output_dir``.

    The output is a plain model directory (fp32 safetensors weights, config, generation config,
    tokenizer) that every persyn model slot accepts; LoRA adapters are merged first. Training
    runs in the hidden sibling directory ``.<name>.training`` (cleared at the start), and the
    finished model is renamed into place at the end (``core.io.replace_dir``: a previous
    ``output_dir`` is replaced only then), so a killed run never leaves a half-written model at
    ``output_dir``, and the previous one stays whole (at ``.<name>.old`` if killed mid-swap).
    Runs on the GPU when one is visible; ``settings.dtype`` chooses fp32 or bf16 mixed precision
    (``auto``: bf16 where the hardware runs it natively). Deterministic on a CPU: the same data, settings and
    seed give identical weights.

    ``prompt_template`` (with ``{prompt}``) formats the prompt of a base student (no chat
    template); pass the run's ``student.prompt_template``. ``examples``: tokenized examples
    trained on instead of ``dataset``'s rendering (see ``make_trainer``; ``dataset`` then only
    counts the examples).

    Returns (and writes to ``output_dir/persyn_sft.json``) a dict: ``model``,
    ``prompt_format`` ("chat" | "template"), ``settings`` (``SFTSettings`` as a dict),
    ``learning_rate`` (the one used), ``n_examples`` (valid dataset lines), ``n_trained``
    (examples trained on), ``n_truncated``, ``n_dropped`` (see ``make_trainer``), ``steps``
    (optimizer steps), ``losses`` and ``loss_steps`` (the mean training loss, nats per response
    token, over each logging interval, and the step it was logged at), ``final_loss`` (the last
    of ``losses``), ``train_loss`` (mean over the whole run), ``seconds`` (the training loop,
    wall clock), ``seconds_per_step``, ``device``, ``precision`` (``fp32`` | ``bf16-mixed``),
    ``dtype_reason`` (why), ``versions``.

    Raises:
        InputError: a malformed dataset (names the file and line).
        ConfigError: ``prompt_template`` without ``{prompt}``.
        MissingAssetError: the model, or TRL / PEFT, is not installed.
    """
    import importlib.metadata

    if "{prompt}" not in prompt_template:
        raise ConfigError(f"prompt_template must contain '{{prompt}}', got {prompt_template!r}")
    settings = settings or SFTSettings()
    pairs = read_training_pairs(dataset)
    out = Path(output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.training")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    trainer, tokenizer, stats = make_trainer(
        pairs, model, tmp / "trainer", settings, prompt_template, progress=progress, examples=examples
    )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    trained = trained_model(trainer, settings)
    trained.config.use_cache = True
    final = tmp / "model"
    trained.save_pretrained(final, safe_serialization=True)
    tokenizer.save_pretrained(final)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    steps = trainer.state.global_step
    info = {
        "model": model,
        "prompt_format": "chat" if getattr(tokenizer, "chat_template", None) else "template",
        "prompt_template": prompt_template,
        "settings": settings.model_dump(),
        "learning_rate": settings.lr,
        "n_examples": len(pairs),
        "n_trained": len(pairs) - stats["n_dropped"],
        "n_truncated": stats["n_truncated"],
        "n_dropped": stats["n_dropped"],
        "steps": steps,
        "losses": [float(h["loss"]) for h in logged],
        "loss_steps": [int(h["step"]) for h in logged],
        "final_loss": float(logged[-1]["loss"]) if logged else None,
        "train_loss": float(result.training_loss),
        "seconds": round(seconds, 3),
        "seconds_per_step": round(seconds / max(1, steps), 4),
        "device": stats["device"],
        "precision": stats["precision"],
        "dtype_reason": stats["dtype_reason"],
        "versions": {
            pkg: importlib.metadata.version(pkg)
            for pkg in ("torch", "transformers", "trl") + (("peft",) if settings.method == "lora" else ())
        },
    }
    (final / "persyn_sft.json").write_text(json.dumps(info, indent=2) + "\n")
    del trainer, trained
    replace_dir(final, out)
    shutil.rmtree(tmp, ignore_errors=True)
    return info
