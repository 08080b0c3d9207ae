"""Student fine-tuning on a persyn dataset with TRL's SFTTrainer (loss on response tokens only).

Each dataset line becomes a TRL *prompt-completion* example: for a chat student
``{"prompt": [user turn], "completion": [assistant turn]}`` (TRL renders it with the student's
chat template, exactly as learnability scoring and evaluation render the prompt: the user turn
alone, with the generation prompt); for a base student the plain ``prompt_template`` text and the
response followed by EOS. TRL's ``completion_only_loss`` then masks the prompt tokens, so the
loss is on the response tokens only (PerSyn §3, "SFT the student with loss on responses").
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from persyn.errors import InputError


class SFTSettings(BaseModel):
    """Fine-tuning settings. ``learning_rate`` None means 5e-5 for full fine-tuning and 2e-4
    for LoRA. LoRA adapters are merged into the weights before saving, so the output is a plain
    model directory. ``epochs`` may be fractional."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["full", "lora"] = "full"
    epochs: Annotated[float, Field(gt=0)] = 2.0
    learning_rate: Annotated[float, Field(gt=0)] | None = None
    batch_size: Annotated[int, Field(ge=1)] = 8
    grad_accum: Annotated[int, Field(ge=1)] = 1
    max_length: Annotated[int, Field(ge=16)] = 512
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    lr_scheduler: str = "linear"
    lora_r: Annotated[int, Field(ge=1)] = 16
    lora_alpha: Annotated[int, Field(ge=1)] = 32
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    lora_target_modules: str | list[str] = "all-linear"
    seed: int = 0
    logging_steps: Annotated[int, Field(ge=1)] = 5

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 5e-5 if self.method == "full" else 2e-4


def read_dataset(dataset: str | Path | list[dict]) -> list[tuple[str, str]]:
    """(prompt, response) pairs of a persyn dataset (path to ``dataset.jsonl`` or its lines).

    Raises:
        InputError: a missing file, malformed JSON, or a line without a non-empty user and
            assistant turn, naming the file and line.
    """
    if isinstance(dataset, list):
        where, lines = "<dataset>", [(i + 1, r) for i, r in enumerate(dataset)]
    else:
        path = Path(dataset)
        if not path.exists():
            raise InputError(f"{path}: dataset not found")
        where, lines = str(path), []
        with open(path, encoding="utf-8") as f:
            for i, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    lines.append((i, json.loads(raw)))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{where}:{i}: malformed JSON ({exc.msg})") from None
    out = []
    for i, rec in lines:
        msgs = rec.get("messages") if isinstance(rec, dict) else None
        if not isinstance(msgs, list):
            raise InputError(f"{where}:{i}: missing field 'messages'")
        turns = {m.get("role"): m.get("content") for m in msgs if isinstance(m, dict)}
        for role in ("user", "assistant"):
            if not isinstance(turns.get(role), str) or not turns[role].strip():
                raise InputError(f"{where}:{i}: 'messages' has no non-empty {role} turn")
        out.append((turns["user"], turns["assistant"]))
    if not out:
        raise InputError(f"{where}: the dataset is empty")
    return out


def to_trl_examples(pairs: list[tuple[str, str]], tokenizer, prompt_template: str) -> list[dict]:
    """TRL prompt-completion examples: conversational for a chat student, plain text (the
    ``prompt_template`` and the response + EOS) for a base one."""
    if getattr(tokenizer, "chat_template", None):
        return [
            {"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": r}]}
            for p, r in pairs
        ]
    eos = tokenizer.eos_token or ""
    return [{"prompt": prompt_template.replace("{prompt}", p), "completion": r + eos} for p, r in pairs]


def sft(
    dataset: str | Path | list[dict],
    model: str,
    output_dir: str | Path,
    settings: SFTSettings | None = None,
    prompt_template: str = "Question: {prompt}\nAnswer: ",
) -> dict:
    """Fine-tune ``model`` (alias, HF id or local path) on ``dataset`` and save the result
    (weights + tokenizer, safetensors) to ``output_dir``, a directory every persyn model slot
    accepts. Trains in a temporary sibling directory renamed at the end, so a killed run never
    leaves a half-written model. Runs on a GPU when one is visible, else on the CPU.

    Returns (and writes to ``output_dir/persyn_sft.json``): settings, ``n_examples``, ``steps``,
    ``losses`` (per logging step), ``final_loss``, ``seconds``.

    Raises:
        InputError: a malformed dataset (file and line).
        MissingAssetError: the model or TRL/PEFT are not installed.
    """
    import importlib.util

    from persyn.errors import MissingAssetError

    for pkg in ("trl",) + (("peft",) if settings and settings.method == "lora" else ()):
        if importlib.util.find_spec(pkg) is None:
            raise MissingAssetError(f"persyn sft needs '{pkg}': run `pip install 'persyn[train]'`")
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from persyn.assets import load_causal_lm, load_tokenizer

    settings = settings or SFTSettings()
    pairs = read_dataset(dataset)
    out = Path(output_dir)
    tmp = out.with_name(f".{out.name}.training")
    shutil.rmtree(tmp, ignore_errors=True)
    set_seed(settings.seed)
    tokenizer = load_tokenizer(model, padding_side="right")
    net = load_causal_lm(model, shared=False)
    net.train()
    examples = to_trl_examples(pairs, tokenizer, prompt_template)
    peft_config = None
    if settings.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=settings.lora_target_modules,
            task_type="CAUSAL_LM",
        )
    cpu = not torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(tmp),
        num_train_epochs=settings.epochs,
        learning_rate=settings.lr,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        max_length=settings.max_length,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=settings.weight_decay,
        lr_scheduler_type=settings.lr_scheduler,
        completion_only_loss=True,
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="no",
        report_to=[],
        use_cpu=cpu,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        disable_tqdm=False,
    )
    start = time.perf_counter()
    trainer = SFTTrainer(
        model=net,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    seconds = time.perf_counter() - start
    trained = trainer.model
    if settings.method == "lora":
        trained = trained.merge_and_unload()
    trained.eval()
    final = tmp / "model"
    trained.save_pretrained(final, safe_serialization=True)
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(final)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    info = {
        "model": model,
        "settings": settings.model_dump(),
        "n_examples": len(pairs),
        "steps": trainer.state.global_step,
        "losses": losses,
        "final_loss": losses[-1] if losses else None,
        "seconds": round(seconds, 2),
        "device": "cpu" if cpu else "cuda",
    }
    (final / "persyn_sft.json").write_text(json.dumps(info, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(final, out)
    shutil.rmtree(tmp, ignore_errors=True)
    return info
