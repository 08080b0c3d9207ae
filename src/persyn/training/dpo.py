"""DPO of a generator on preference pairs with TRL's ``DPOTrainer`` (Montessori-Instruct's step
that tunes the generator to the student; the pairs come from ``persyn.synthesis.montessori``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from persyn.core.errors import InputError
from persyn.core.io import replace_dir
from persyn.training.base import lora_config, trained_model, trl_args
from persyn.training.dpo_config import DPOSettings


def dpo_generator(
    rows: list[dict], model: str, output_dir: str | Path, settings: DPOSettings | None = None
) -> dict:
    """Train ``model`` (alias, HF id or local path) by DPO on ``rows`` (``{"prompt", "chosen",
    "rejected"}`` texts: the generation request and two of its outputs) and save a plain model
    directory at ``output_dir`` that any persyn model slot loads.

    Returns (and writes to ``output_dir/persyn_dpo.json``): ``model``, ``settings``, ``pairs``,
    ``steps``, ``seconds``, and from TRL's log, per logged step: ``loss``, ``margins``
    (mean of β·(log-ratio chosen − log-ratio rejected)) and ``accuracies`` (share of pairs with a
    positive margin).

    Raises:
        InputError: no rows, or a row without non-empty prompt / chosen / rejected text.
        MissingAssetError: the model, or TRL / PEFT, is not installed.
    """
    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from persyn.assets import load_causal_lm, load_tokenizer, model_dtype

    settings = settings or DPOSettings()
    if not rows:
        raise InputError("DPO needs at least one preference pair")
    for i, r in enumerate(rows):
        for k in ("prompt", "chosen", "rejected"):
            if not isinstance(r.get(k), str) or not r[k].strip():
                raise InputError(f"preference pair {i}: empty or missing '{k}'")
    set_seed(settings.seed)
    out = Path(output_dir)
    work = out.with_name(f".{out.name}.dpo")
    shutil.rmtree(work, ignore_errors=True)
    tokenizer = load_tokenizer(model, padding_side="left")
    net = load_causal_lm(model, shared=False)
    net.train()
    args = trl_args(
        DPOConfig,
        settings,
        work,
        bf16=model_dtype(settings.dtype)[0] == "bfloat16",  # mixed precision, CPU included
        beta=settings.beta,
        max_length=settings.max_length,
        logging_steps=1,
        gradient_checkpointing=False,
    )
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    trainer = DPOTrainer(
        model=net,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora_config(settings),
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trained = trained_model(trainer, settings)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    info = {
        "model": model,
        "settings": settings.key_fields(),
        "pairs": len(rows),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 3),
        "loss": [float(h["loss"]) for h in logs],
        "margins": [float(h.get("rewards/margins", float("nan"))) for h in logs],
        "accuracies": [float(h.get("rewards/accuracies", float("nan"))) for h in logs],
    }
    tmp = work / "model"
    trained.save_pretrained(tmp, safe_serialization=True)
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(tmp)
    (tmp / "persyn_dpo.json").write_text(json.dumps(info, indent=2) + "\n")
    replace_dir(tmp, out)
    shutil.rmtree(work, ignore_errors=True)
    return info
