"""``core.io.replace_dir``: the one directory swap (router, dataset_hf, SFT and DPO models), a
kill between its renames included, and the atomic done-marker of ``persyn adapt-generator``."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from persyn.core import faults
from persyn.core.errors import PersynError
from persyn.core.io import REPLACE_DIR, replace_dir


def model_dir(path, tag):
    """A stand-in model directory: two files and a subfolder, all naming ``tag``."""
    (path / "sub").mkdir(parents=True)
    (path / "weights.bin").write_text(f"weights {tag}")
    (path / "config.json").write_text(json.dumps({"tag": tag}))
    (path / "sub" / "tokenizer.json").write_text(f"tokenizer {tag}")
    return path


def contents(path):
    return {str(f.relative_to(path)): f.read_text() for f in sorted(path.rglob("*")) if f.is_file()}


def aside(dest):
    return dest.with_name(f".{dest.name}.old")


def test_the_crash_point_is_registered():
    assert REPLACE_DIR == "io.replace_dir" and REPLACE_DIR in faults.POINTS


def test_replace_dir_without_an_existing_dest(tmp_path):
    tmp, dest = model_dir(tmp_path / ".model.tmp", "new"), tmp_path / "model"
    want = contents(tmp)
    replace_dir(tmp, dest)
    assert contents(dest) == want
    assert not tmp.exists() and not aside(dest).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_replace_dir_replaces_an_existing_dest_and_removes_the_old_one(tmp_path):
    dest = model_dir(tmp_path / "model", "old")
    (dest / "only-in-old.txt").write_text("stale")
    tmp = model_dir(tmp_path / ".model.tmp", "new")
    want = contents(tmp)
    replace_dir(tmp, dest)
    assert contents(dest) == want  # the new files only: nothing of the old one is merged in
    assert not tmp.exists() and not aside(dest).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_missing_tmp_raises_and_leaves_dest(tmp_path):
    dest = model_dir(tmp_path / "model", "old")
    want = contents(dest)
    with pytest.raises(FileNotFoundError):
        replace_dir(tmp_path / "nothing", dest)
    assert contents(dest) == want and not aside(dest).exists()


def _kill_between_renames(tmp, dest):
    """Run ``replace_dir(tmp, dest)`` in a child process killed at ``io.replace_dir``."""
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from persyn.core.io import replace_dir
        replace_dir(Path({str(tmp)!r}), Path({str(dest)!r}))
        """
    )
    env = {**os.environ, "PERSYN_CRASH_AT": REPLACE_DIR}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_a_kill_between_the_renames_keeps_the_old_model_and_the_next_call_finishes(tmp_path):
    dest = model_dir(tmp_path / "model", "old")
    old = contents(dest)
    tmp = model_dir(tmp_path / ".model.tmp", "new")
    new = contents(tmp)
    res = _kill_between_renames(tmp, dest)
    assert res.returncode == -9, res.stderr
    # Killed mid-swap: no dest, but the complete old model at the aside name and the new one
    # still whole at tmp.
    assert not dest.exists()
    assert contents(aside(dest)) == old
    assert contents(tmp) == new
    # The next call (a resumed run re-writing its output) completes the swap.
    fresh = model_dir(tmp_path / ".model.tmp2", "newer")
    newer = contents(fresh)
    replace_dir(fresh, dest)
    assert contents(dest) == newer and not aside(dest).exists()
    # The crashed run's tmp is the caller's to clear (each site clears its own before writing).
    assert contents(tmp) == new


def test_a_kill_then_the_same_tmp_completes_the_swap(tmp_path):
    dest = model_dir(tmp_path / "model", "old")
    tmp = model_dir(tmp_path / ".model.tmp", "new")
    new = contents(tmp)
    assert _kill_between_renames(tmp, dest).returncode == -9
    replace_dir(tmp, dest)
    assert contents(dest) == new
    assert not tmp.exists() and not aside(dest).exists()


def test_after_a_kill_with_no_new_directory_the_old_one_is_restored(tmp_path):
    dest = model_dir(tmp_path / "model", "old")
    old = contents(dest)
    tmp = model_dir(tmp_path / ".model.tmp", "new")
    assert _kill_between_renames(tmp, dest).returncode == -9
    import shutil

    shutil.rmtree(tmp)  # e.g. a resumed run that clears its work directory, then fails
    with pytest.raises(FileNotFoundError):
        replace_dir(tmp, dest)
    assert contents(dest) == old and not aside(dest).exists()


def test_a_leftover_aside_next_to_a_present_dest_is_deleted(tmp_path):
    # Killed after the final rename, while the old directory was being removed.
    model_dir(aside(tmp_path / "model"), "old")
    dest = model_dir(tmp_path / "model", "current")
    tmp = model_dir(tmp_path / ".model.tmp", "new")
    new = contents(tmp)
    replace_dir(tmp, dest)
    assert contents(dest) == new and not aside(dest).exists()


def test_the_crash_point_sits_after_the_aside_rename(tmp_path, monkeypatch):
    # In-process view of the same instant: at the crash point the old directory is aside, the
    # new one not yet in place, and both are complete.
    dest = model_dir(tmp_path / "model", "old")
    old = contents(dest)
    tmp = model_dir(tmp_path / ".model.tmp", "new")
    new = contents(tmp)
    seen = []

    def at(name):
        if name == REPLACE_DIR:
            seen.append((dest.exists(), contents(aside(dest)), contents(tmp)))

    monkeypatch.setattr("persyn.core.io.crash_point", at)
    replace_dir(tmp, dest)
    assert seen == [(False, old, new)]
    assert contents(dest) == new


# --- the done-marker of persyn adapt-generator -------------------------------------------------


@pytest.fixture
def fake_adapt(monkeypatch):
    """``adapt_generator`` with its inputs and its DPO replaced by fakes; returns the list of
    DPO calls."""
    import persyn.montessori.adapt as adapt

    calls = []
    examples = [
        {"id": "x", "raw": {"request": "write one"}, "generated": "good"},
        {"id": "y", "raw": {"request": "write one"}, "generated": "bad"},
    ]
    monkeypatch.setattr(adapt, "read_examples", lambda path: examples)
    monkeypatch.setattr(adapt, "stored_signals", lambda d: [{"id": "x"}, {"id": "y"}])
    monkeypatch.setattr(adapt, "preference_pairs", lambda *a: ([("x", "y")], {"rule": "sign", "pairs": 1}))

    def dpo(rows, generator, output, settings):
        calls.append(rows)
        output.mkdir(parents=True, exist_ok=True)
        info = {"model": generator, "pairs": len(rows)}
        (output / "persyn_dpo.json").write_text(json.dumps(info))
        return info

    monkeypatch.setattr(adapt, "dpo_generator", dpo)
    return adapt, calls


def test_the_adapt_marker_is_written_atomically(tmp_path, monkeypatch, fake_adapt):
    adapt, calls = fake_adapt
    out = tmp_path / "gen"

    real_replace = os.replace

    def fail(src, dst):  # the new marker's bytes are written, then its rename fails
        if os.path.basename(dst) == "persyn_dpo.json":
            raise OSError("disk full")
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr("persyn.core.io.os.replace", fail)
        with pytest.raises(PersynError, match="disk full"):
            adapt.adapt_generator(tmp_path / "ex.jsonl", tmp_path / "inf", "gen-model", out)
    # No torn marker: the one there is the whole (unkeyed) file DPO wrote, and no temporary.
    assert json.loads((out / "persyn_dpo.json").read_text()) == {"model": "gen-model", "pairs": 1}
    assert sorted(p.name for p in out.iterdir()) == ["pairs.json", "persyn_dpo.json"]

    info = adapt.adapt_generator(tmp_path / "ex.jsonl", tmp_path / "inf", "gen-model", out)
    assert len(calls) == 2  # the unkeyed marker is not a finished run: trained again
    assert json.loads((out / "persyn_dpo.json").read_text()) == info and info["key"]
    assert json.loads((out / "pairs.json").read_text())["pairs"] == [["x", "y"]]
    assert adapt.adapt_generator(tmp_path / "ex.jsonl", tmp_path / "inf", "gen-model", out) == info
    assert len(calls) == 2  # finished with the same inputs: kept


def test_a_torn_adapt_marker_means_train_again_not_a_crash(tmp_path, fake_adapt):
    adapt, calls = fake_adapt
    out = tmp_path / "gen"
    out.mkdir()
    (out / "persyn_dpo.json").write_text('{"model": "gen-model", "ke')  # an older, torn write
    info = adapt.adapt_generator(tmp_path / "ex.jsonl", tmp_path / "inf", "gen-model", out)
    assert len(calls) == 1 and json.loads((out / "persyn_dpo.json").read_text()) == info
