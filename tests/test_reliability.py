"""Caches that never serve stale results, failed writes that lose nothing, and bad input."""

import json
import os
import shutil
import sqlite3

import pytest
import yaml
from conftest import tiny_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from persyn.cli import app
from persyn.config import CalibrationConfig, PromptsConfig, parse_config
from persyn.core.errors import ConfigError, InputError, PersynError
from persyn.core.hashing import content_id
from persyn.core.summary import TeacherCache
from persyn.pipeline import Pipeline
from persyn.prompts import load_prompts


def run(cfg):
    with Pipeline(parse_config(cfg)) as p:
        return p.run().model_dump()


def test_changed_weights_regenerate_that_teacher_only(tiny_models, tmp_path):
    # A copy of model "chat2" for teacher b, which is then re-saved with other weights.
    b_path = tmp_path / "b-model"
    shutil.copytree(tiny_models["chat2"], b_path)
    cfg = tiny_config(tiny_models, tmp_path)
    cfg["teachers"][1]["model"] = str(b_path)
    first = run(cfg)
    assert first["generations_new"] == first["generations"]

    from persyn.models.fingerprint import model_fingerprint

    weights = next(b_path.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    model_fingerprint.cache_clear()
    again = run(cfg)
    db = sqlite3.connect(tmp_path / "run" / "store.sqlite")
    counts = dict(
        db.execute("SELECT teacher, COUNT(*) FROM generations WHERE phase='calibration' GROUP BY 1")
    )
    assert counts == {"a": 6, "b": 12, "reference": 6}  # only b's calibration responses were remade
    assert again["generations"] == first["generations"]

    # And in the other direction: nothing changed, nothing regenerated.
    assert run(cfg)["generations_new"] == 0


def test_cache_info_and_clear_one_teacher(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    run(cfg)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    with Pipeline(parse_config(cfg)) as p:
        info = p.cache_info()
    assert info.teachers["a"].ok + info.teachers["a"].failed >= 6
    assert info.teachers["reference"].stale == 0
    assert info.scores["learnability"].current > 0
    res = CliRunner().invoke(app, ["cache", "info", str(cfg_path)])
    assert res.exit_code == 0
    said = " ".join(res.output.split())
    learn = info.scores["learnability"]
    assert f"scores · learnability: {learn.current} current, {learn.stale} stale" in said

    b_stored = info.teachers["b"].ok + info.teachers["b"].failed
    res = CliRunner().invoke(app, ["cache", "clear", str(cfg_path), "--teacher", "b"])
    assert res.exit_code == 0 and f"deleted {b_stored} stored response(s) of b" in res.output
    with Pipeline(parse_config(cfg)) as p:
        info = p.cache_info()
    assert info.teachers["b"] == TeacherCache(ok=0, failed=0, stale=0)
    assert info.teachers["a"].ok + info.teachers["a"].failed >= 6
    summary = run(cfg)
    assert summary["generations_new"] == 6 + summary["routing_routed"]["b"]  # only b is remade

    res = CliRunner().invoke(app, ["cache", "clear", str(cfg_path), "--teacher", "nobody"])
    assert res.exit_code == 2 and "unknown teacher 'nobody'" in res.output
    res = CliRunner().invoke(app, ["cache", "clear", str(cfg_path)])
    assert res.exit_code == 0
    assert run(cfg)["generations_new"] == summary["generations"]


class _FullDisk:
    """A connection proxy whose N-th ``executemany`` fails like a full disk."""

    def __init__(self, db, fail_at):
        self._db, self._n, self._fail_at = db, 0, fail_at

    def executemany(self, *a):
        self._n += 1
        if self._n == self._fail_at:
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.executemany(*a)

    def __enter__(self):
        return self._db.__enter__()

    def __exit__(self, *exc):
        return self._db.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_full_disk_stops_cleanly_and_the_rerun_resumes(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    p = Pipeline(parse_config(cfg))
    p.prepare()
    p.store.db = _FullDisk(p.store.db, fail_at=2)
    with pytest.raises(PersynError, match="disk is full.*everything stored before is kept"):
        p.run()
    stored = p.store.count_generations()
    p.close()
    assert stored == 4  # the first batch of teacher a (batch_size 4); the failed 2nd rolled back
    summary = run(cfg)
    assert summary["generation_calls"] == summary["generations"]  # nothing stored was remade
    assert summary["n_dataset"] == 12


def test_export_write_error_keeps_the_store(tiny_models, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_models, tmp_path)
    run(cfg)
    import persyn.pipeline as pl

    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("dataset.jsonl"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(pl.os, "replace", failing_replace)
    with pytest.raises(PersynError, match=r"dataset\.jsonl: cannot write.*No space left"):
        run(cfg)
    monkeypatch.undo()
    assert not list((tmp_path / "run").glob(".dataset.jsonl.tmp*"))  # no half-written leftovers
    assert run(cfg)["generations_new"] == 0


def test_jsonl_with_a_header_line(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text("prompt,answer\n" + json.dumps({"prompt": "a", "answer": 1}) + "\n")
    with pytest.raises(InputError, match=r"h\.jsonl:1: malformed JSON"):
        load_prompts(PromptsConfig(source="jsonl", path=p), 0)
    p.write_text(
        json.dumps({"columns": ["prompt", "answer"]}) + "\n" + json.dumps({"prompt": "a", "answer": 1})
    )
    with pytest.raises(InputError, match=r"h\.jsonl:1: missing prompt field"):
        load_prompts(PromptsConfig(source="jsonl", path=p), 0)


def test_seeds_are_recorded(tiny_models, tmp_path):
    summary = run(tiny_config(tiny_models, tmp_path, seed=7))
    assert summary["seeds"]["calibration_draw"] == 7 and summary["seeds"]["router_cv_folds"] == 8


# -- property-based: the prompt loader and the config ------------------------------------------
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.tuples(texts, st.one_of(st.integers(), texts)), max_size=12))
def test_loader_keeps_each_nonempty_prompt_once_in_order(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("h") / "p.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": t, "answer": a}) + "\n" for t, a in records), encoding="utf-8"
    )
    expected, seen = [], set()
    for t, _ in records:
        if t.strip() and content_id(t) not in seen:
            seen.add(content_id(t))
            expected.append(t)
    try:
        prompts, report = load_prompts(PromptsConfig(source="jsonl", path=path, on_duplicate="skip"), 0)
    except InputError as exc:
        assert not expected and "no usable prompts" in str(exc)
        return
    assert [p.text for p in prompts] == expected
    assert len({p.id for p in prompts}) == len(prompts)
    assert len(report.empty) == sum(1 for t, _ in records if not t.strip())
    assert len(prompts) + len(report.empty) + len(report.duplicates) == len(records)


BASE = {
    "output_dir": "x",
    "student": {"model": "smollm2-135m-instruct"},
    "teachers": [{"name": "a", "engine": "reference"}, {"name": "b", "engine": "reference"}],
}


@settings(max_examples=80, deadline=None)
@given(alpha=st.floats(allow_nan=False, allow_infinity=False, min_value=-3, max_value=3))
def test_alpha_is_valid_exactly_in_the_unit_interval(alpha):
    if 0.0 <= alpha <= 1.0:
        assert parse_config({**BASE, "alpha": alpha}).alpha == alpha
    else:
        with pytest.raises(ConfigError, match="alpha"):
            parse_config({**BASE, "alpha": alpha})


@settings(max_examples=120, deadline=None)
@given(size=st.one_of(st.integers(-5, 60), st.floats(-1, 2, allow_nan=False)), n=st.integers(1, 50))
def test_calibration_count_is_between_2_and_the_prompt_count_or_an_error(size, n):
    try:
        cal = CalibrationConfig(size=size)
    except ValueError:
        assert not (isinstance(size, float) and 0 < size <= 1) and not (int(size) == size and size >= 2)
        return
    try:
        k = cal.count(n)
    except ConfigError as exc:
        assert "calibration.size" in str(exc)
        return
    assert 2 <= k <= n


def test_rerun_retries_only_failed_items(tiny_models, tmp_path, monkeypatch):
    from persyn.core.records import Completion
    from persyn.engines import reference

    cfg = tiny_config(tiny_models, tmp_path)
    real = reference.ReferenceEngine.generate

    def flaky(self, prompts):  # the first response of each call fails
        for batch in real(self, prompts):
            yield [
                (pid, Completion("", error="server error") if i == 0 else c)
                for i, (pid, c) in enumerate(batch)
            ]

    monkeypatch.setattr(reference.ReferenceEngine, "generate", flaky)
    first = run(cfg)
    assert sum(f["error"] == "server error" for f in first["failures"]) == 2  # calibration + routed
    monkeypatch.undo()
    second = run(cfg)
    assert second["generations_new"] == 2  # just the two failed items
    assert second["failed"] == 0
    assert second["generation_calls"] == first["generations"] + 2
