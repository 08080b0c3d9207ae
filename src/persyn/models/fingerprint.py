"""What identifies a model's weights in cache keys, without reading them."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path

from persyn.models.aliases import ALIASES, SPLITS


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
