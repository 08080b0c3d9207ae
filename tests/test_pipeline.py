import json
import os
import sqlite3
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
import yaml
from conftest import best_single_teacher_of_rows, tiny_config
from typer.testing import CliRunner

from persyn.cli import app
from persyn.config import parse_config
from persyn.core.records import Completion
from persyn.pipeline import Pipeline
from persyn.router.base import fold_of, load_router, router_figures


def run(cfg_dict):
    p = Pipeline(parse_config(cfg_dict))
    try:
        return p.run().model_dump(), p
    finally:
        p.close()


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_route_then_generate_end_to_end_and_resume(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    summary, p = run(cfg)
    n, n_cal, n_t = 12, 6, 3
    assert summary["n_prompts"] == n and summary["n_calibration"] == n_cal
    assert summary["teachers"] == ["a", "b", "reference"]
    assert summary["generations"] == n_cal * n_t + (n - n_cal)
    assert summary["generations_new"] == summary["generations"]
    assert summary["generations_generate_then_select"] == n * n_t
    assert sum(summary["routing"].values()) == summary["n_dataset"] == n
    ev = summary["router_eval"]
    # Cross-validation: each of the 6 calibration prompts held out once, in 5 folds.
    assert ev["n_eval"] == ev["n"] == n_cal and ev["folds"] == 5 and ev["requested"] == "auto"
    assert set(ev["kinds"]) == {"prior", "bt-linear", "knn"}
    # The figures recomputed from calibration.jsonl: the prior's out-of-fold picks (the best
    # single teacher of the other folds) and its figures exactly.
    rewards = defaultdict(dict)
    for row in read_jsonl(tmp_path / "run/calibration.jsonl"):
        rewards[row["id"]][row["teacher"]] = row["reward"]
    ids, names = list(rewards), summary["teachers"]
    folds = fold_of(len(ids), 5, 0 + 1)
    picks = [
        best_single_teacher_of_rows(
            names, [[rewards[j][t] for t in names] for k, j in enumerate(ids) if folds[k] != folds[i]]
        )
        for i in range(len(ids))
    ]
    figs = router_figures(picks, [rewards[i] for i in ids])
    assert ev["kinds"]["prior"]["top1"] == figs["top1"]
    assert ev["kinds"]["prior"]["regret"] == pytest.approx(figs["regret"])
    best = best_single_teacher_of_rows(names, [[rewards[i][t] for t in names] for i in ids])
    assert ev["best_single_teacher"] == {"name": best, "top1": figs["top1"], "regret": figs["regret"]}
    # The reference is the Oracle's pick on every calibration prompt: the prior has no regret,
    # so no learned kind can beat it and auto keeps it.
    assert figs["regret"] == 0.0 and ev["kind"] == "prior" and ev["kinds"]["knn"]["gain"] is None
    assert (ev["top1"], ev["regret"]) == (1.0, 0.0)
    # every stage that did work was timed (summary["seconds"] lists every registered stage)
    assert all(summary["seconds"][s] > 0 for s in ("calibrate", "score", "train_router", "export"))

    out = tmp_path / "run"
    lines = read_jsonl(out / "dataset.jsonl")
    assert len({x["id"] for x in lines}) == n
    db = sqlite3.connect(out / "store.sqlite")
    learn = {
        (pid, teacher, phase): value
        for pid, teacher, phase, value in db.execute(
            "SELECT g.prompt_id, g.teacher, g.phase, s.value FROM scores s JOIN generations g "
            "ON g.key = s.gen_key WHERE s.kind = 'learnability' AND s.status = 'ok'"
        )
    }
    for x in lines:
        assert [m["role"] for m in x["messages"]] == ["user", "assistant"]
        assert x["messages"][1]["content"]
        if x["source"] == "calibration":
            assert x["quality"] in (0.0, 1.0) and x["reward"] is not None
            # the line carries the student's score of exactly this response, from the store
            assert x["learnability"] == pytest.approx(learn[(x["id"], x["teacher"], "calibration")])
        else:
            assert x["source"] == "routed" and x["quality"] is None and x["reward"] is None
    # The reference solutions are always correct and the random teachers never are: the Oracle
    # picks the reference on every calibration prompt.
    assert {x["teacher"] for x in lines if x["source"] == "calibration"} == {"reference"}
    routing = read_jsonl(out / "routing.jsonl")
    assert len(routing) == n - n_cal
    for r in routing:
        assert set(r["coefficients"]) == {"a", "b", "reference"}
        assert r["teacher"] == max(r["coefficients"], key=r["coefficients"].get)
    assert load_router(out / "router").teachers == ["a", "b", "reference"]
    ok = dict(db.execute("SELECT teacher, COUNT(*) FROM generations WHERE status='ok' GROUP BY teacher"))
    assert ok["a"] >= 4 and ok["b"] >= 4  # the model teachers really answered (and were scored)
    notes = {r[0] for r in db.execute("SELECT error FROM scores WHERE kind='quality' AND value=0.0")}
    assert "no answer found in the response" in notes  # unparsable answers: quality 0, recorded
    a_scores = [v for (_, t, phase), v in learn.items() if t == "a" and phase == "calibration"]
    assert summary["calibration_means"]["a"]["learnability"] == pytest.approx(sum(a_scores) / len(a_scores))
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["generations"] == summary["generations"]

    # Re-running the same config resumes: nothing is generated again, the dataset is the same.
    before = (out / "dataset.jsonl").read_text()
    again, _ = run(cfg)
    assert again["generations_new"] == 0
    assert (out / "dataset.jsonl").read_text() == before


def test_changing_one_teacher_regenerates_only_that_teacher(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    run(cfg)
    cfg["teachers"][1]["max_new_tokens"] = 5
    summary, _ = run(cfg)
    db = sqlite3.connect(tmp_path / "run" / "store.sqlite")
    counts = dict(
        db.execute("SELECT teacher, COUNT(*) FROM generations WHERE phase='calibration' GROUP BY teacher")
    )
    assert counts == {"a": 6, "b": 12, "reference": 6}
    assert summary["generations"] == 6 * 3 + 6


def test_stage_commands_share_the_store_and_match_run(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    staged = tmp_path / "staged"
    for cmd in (["calibrate"], ["train-router"], ["route"], ["generate"], ["export"]):
        res = runner.invoke(app, [*cmd, str(cfg_path), "-o", str(staged)])
        assert res.exit_code == 0, res.output
    # 6 calibration prompts x 3 teachers + 6 routed, against 12 x 3 for Generate-then-Select
    said = " ".join(res.output.split())
    assert "generations: 24 (Route-then-Generate) vs 36 (Generate-then-Select): 66.7% of the cost" in said
    res = runner.invoke(app, ["run", str(cfg_path)])
    assert res.exit_code == 0, res.output
    # a run into a fresh output directory makes all 24 responses itself
    assert "24 made by this command" in " ".join(res.output.split())
    assert (staged / "dataset.jsonl").read_text() == (tmp_path / "run" / "dataset.jsonl").read_text()


def test_stage_out_of_order_says_what_to_run(tiny_models, tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(tiny_models, tmp_path)))
    res = CliRunner().invoke(app, ["train-router", str(cfg_path)])
    assert res.exit_code == 2
    assert "run `persyn calibrate` first" in res.output


def test_bad_config_is_a_clear_error(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path, alpha=2.0)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["run", str(cfg_path)])
    assert res.exit_code == 2
    assert "alpha" in res.output and "Traceback" not in res.output
    cfg = tiny_config(tiny_models, tmp_path, calibration={"size": 50})
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["run", str(cfg_path)])
    assert res.exit_code == 2 and "calibration.size" in res.output


def test_long_prompt_and_empty_response_are_recorded_not_fatal(tiny_models, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_models, tmp_path)
    with open(cfg["prompts"]["path"], "a") as f:
        f.write(json.dumps({"prompt": "apples " * 600, "answer": "1", "solution": "#### 1"}) + "\n")
    cfg["calibration"] = {"size": 1.0}

    from persyn.engines import reference

    real = reference.ReferenceEngine.generate

    def flaky(self, prompts):  # the reference teacher returns nothing for one prompt
        for batch in real(self, prompts):
            yield [
                (pid, Completion("", error="empty response") if i == 0 else c)
                for i, (pid, c) in enumerate(batch)
            ]

    monkeypatch.setattr(reference.ReferenceEngine, "generate", flaky)
    summary, _ = run(cfg)
    errors = [f["error"] for f in summary["failures"]]
    assert any(e.startswith("prompt too long") for e in errors)
    assert "empty response" in errors
    # The long prompt: both model teachers fail, and the reference response is too long for
    # the student, so no teacher has a valid scored response.
    assert "no teacher gave a valid response to this calibration prompt" in errors
    assert summary["failed"] == len(summary["failures"])
    assert summary["n_dataset"] == 12


def test_import_persyn_is_light():
    code = (
        "import sys, persyn, persyn.config; print(any(m in sys.modules for m in ('torch', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_second_run_on_a_live_output_dir_is_refused(tiny_models, tmp_path):
    from persyn.core.errors import PersynError

    cfg = parse_config(tiny_config(tiny_models, tmp_path))
    with Pipeline(cfg):
        try:
            Pipeline(cfg)
        except PersynError as exc:
            assert "in use by another persyn process" in str(exc) and str(os.getpid()) in str(exc)
        else:
            raise AssertionError("a second pipeline on a held output_dir was allowed")
    Pipeline(cfg).close()  # released once the first one is closed


def test_output_dir_that_is_a_file(tiny_models, tmp_path):
    from persyn.core.errors import PersynError

    (tmp_path / "file").write_text("x")
    cfg = parse_config(tiny_config(tiny_models, tmp_path, output_dir=str(tmp_path / "file")))
    try:
        Pipeline(cfg)
    except PersynError as exc:
        assert "output_dir" in str(exc) and "not a directory" in str(exc)
    else:
        raise AssertionError("expected an error")


def test_failed_jsonl_and_require_all(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    with open(cfg["prompts"]["path"], "a") as f:
        f.write(json.dumps({"prompt": "apples " * 600, "answer": "1", "solution": "#### 1"}) + "\n")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["run", str(cfg_path), "--require-all"])
    assert res.exit_code == 1 and "--require-all" in res.output
    failed = read_jsonl(tmp_path / "run" / "failed.jsonl")
    assert failed and all({"stage", "prompt_id", "teacher", "error"} <= set(x) for x in failed)
    assert any("prompt too long" in x["error"] for x in failed)
    res = CliRunner().invoke(app, ["run", str(cfg_path)])
    assert res.exit_code == 0 and "failed item(s)" in res.output


def test_ray_address_cannot_go_with_executor_local(tiny_models, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_models, tmp_path)))
    res = CliRunner().invoke(app, ["run", str(path), "--executor", "local", "--ray-address", "auto"])
    assert res.exit_code == 2
    assert "--ray-address joins a Ray cluster: it cannot go with --executor local" in res.output
    assert not (tmp_path / "run" / "store.sqlite").exists()  # refused before any work


def test_an_embedding_router_routes_from_stored_embeddings(tiny_models, tmp_path):

    from persyn.router.embeddings import PromptEncoder

    cfg = tiny_config(tiny_models, tmp_path, router={"encoder": tiny_models["encoder"], "kind": "knn"})
    summary, _ = run(cfg)
    ev = summary["router_eval"]
    assert ev["kind"] == "knn" and ev["requested"] == "knn" and set(ev["kinds"]) == {"prior", "knn"}
    out = tmp_path / "run"
    db = sqlite3.connect(out / "store.sqlite")
    # Each of the 12 prompts is embedded once: the 6 calibration prompts for training, the 6
    # others while routing.
    assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 12
    router = load_router(out / "router")
    routing = read_jsonl(out / "routing.jsonl")
    prompts = {p["id"]: p["messages"][0]["content"] for p in read_jsonl(out / "dataset.jsonl")}
    texts = [prompts[r["id"]] for r in routing]
    expect = router.scores(texts, PromptEncoder.from_meta(router.encoder).embed(texts))
    for r, s in zip(routing, expect, strict=True):
        assert [r["coefficients"][t] for t in router.teachers] == pytest.approx(s.tolist(), abs=1e-5)
    # A second run routes nothing again and embeds nothing again.
    run(cfg)
    assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 12


def test_a_second_student_reuses_every_calibration_response(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    student = cfg.pop("student")
    cfg["students"] = [
        {**student, "name": "first"},
        {**student, "model": tiny_models["chat2"], "name": "second"},
    ]
    res = CliRunner().invoke(app, ["run", str(write_yaml(tmp_path / "c.yaml", cfg))])
    assert res.exit_code == 0, res.output
    out = tmp_path / "run"
    top = json.loads((out / "summary.json").read_text())
    first, second = top["students"]["first"], top["students"]["second"]
    assert first["generations_new"] == 6 * 3 + 6
    # The second student: no calibration response made again; only the routed responses its own
    # router asked for that the first student's dataset did not already have.
    db1, db2 = (sqlite3.connect(out / "students" / s / "store.sqlite") for s in ("first", "second"))
    gens1 = set(db1.execute("SELECT prompt_id, teacher FROM generations"))
    routed2 = {(r["id"], r["teacher"]) for r in read_jsonl(out / "students/second/routing.jsonl")}
    assert second["generations_new"] == len(routed2 - gens1)
    cal2 = db2.execute("SELECT COUNT(*) FROM generations WHERE phase='calibration'").fetchone()[0]
    assert cal2 == 6 * 3 and top["generations_shared"] == 6 * 3
    assert top["generations_if_separate"] == 2 * (6 * 3 + 6)
    assert top["generations_new"] == first["generations_new"] + second["generations_new"]
    # Each student has its own learnability scores (two scorers in the second store) and dataset.
    scorers = {r[0] for r in db2.execute("SELECT scorer FROM scores WHERE kind='learnability'")}
    assert len(scorers) == 2
    for s in ("first", "second"):
        assert len(read_jsonl(out / "students" / s / "dataset.jsonl")) == 12
    assert "18 calibration responses shared" in res.output
    # The top-level directory is not one run: the report says which directories are.
    res = CliRunner().invoke(app, ["report", str(out)])
    flat = "".join(res.output.split())
    assert res.exit_code == 2 and "arunof2students" in flat and str(out / "students" / "second") in flat


def write_yaml(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_commands_that_need_a_run_take_its_output_directory(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path)
    run(cfg)
    out = tmp_path / "run"
    before = (out / "dataset.jsonl").read_text()
    runner = CliRunner()
    for cmd in (["cache", "info"], ["estimate"], ["export"], ["train-router"], ["select", "-s", "car"]):
        res = runner.invoke(app, [*cmd, str(out)])
        assert res.exit_code == 0, (cmd, res.output)
        assert "Is a directory" not in res.output
    assert (out / "dataset.jsonl").read_text() == before
    res = runner.invoke(app, ["estimate", str(tmp_path)])
    assert res.exit_code == 2 and "isnotapersynoutputdirectory" in "".join(res.output.split())


def test_route_with_a_saved_router_directory_routes_by_that_router(tiny_models, tmp_path):
    """``persyn route --router DIR``: the run's own router sends every prompt to the reference
    (always right); a saved prior router whose best teacher is ``a`` sends them all to ``a``."""
    from persyn.router.prior import PriorRouter

    cfg = tiny_config(tiny_models, tmp_path)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    for cmd in (["calibrate"], ["train-router"], ["route"]):
        res = runner.invoke(app, [*cmd, str(cfg_path)])
        assert res.exit_code == 0, res.output
    assert "routed 6 prompt(s): {'reference': 6}" in res.output
    other = tmp_path / "other-router"
    PriorRouter(["a", "b", "reference"], np.array([0.9, 0.1, 0.5])).save(other)
    res = runner.invoke(app, ["route", str(cfg_path), "--router", str(other)])
    assert res.exit_code == 0, res.output
    assert "routed 6 prompt(s): {'a': 6}" in res.output
    for cmd in (["generate"], ["export"]):
        assert runner.invoke(app, [*cmd, str(cfg_path)]).exit_code == 0
    routing = read_jsonl(tmp_path / "run" / "routing.jsonl")
    assert len(routing) == 6 and {r["teacher"] for r in routing} == {"a"}


def test_zscore_normalisation_through_a_run(tiny_models, tmp_path):
    """``normalize: zscore``: each calibration prompt's terms are z-scored across the teachers
    that answered it (population std), then mixed by Eq. 2 with α; the Oracle takes the max."""
    cfg = tiny_config(tiny_models, tmp_path, normalize="zscore", alpha=0.3)
    run(cfg)
    rows = read_jsonl(tmp_path / "run" / "calibration.jsonl")
    by_prompt = defaultdict(list)
    for r in rows:
        by_prompt[r["id"]].append(r)
    assert len(by_prompt) == 6
    for cands in by_prompt.values():
        valid = [c for c in cands if c["reward"] is not None]
        assert len(valid) >= 2
        for term in ("quality", "learnability"):
            v = np.array([c[term] for c in valid])
            want = np.zeros_like(v) if np.ptp(v) == 0 else (v - v.mean()) / v.std()
            np.testing.assert_allclose([c[f"{term}_norm"] for c in valid], want, atol=1e-9)
        for c in valid:
            assert c["reward"] == pytest.approx(0.7 * c["quality_norm"] + 0.3 * c["learnability_norm"])
        oracle = [c for c in cands if c["oracle"]]
        assert len(oracle) == 1 and oracle[0]["reward"] == max(c["reward"] for c in valid)


@pytest.mark.parametrize("ties", ["half", "drop"])
def test_router_ties_through_a_run(tiny_models, tmp_path, ties):
    """``router.ties``: a twin of teacher ``a`` (same model, same settings) answers alike, so the
    two tie on every calibration prompt. ``half`` keeps that pair in the router's training pairs
    with C = 0.5 (P2L's bt-tie), ``drop`` leaves it out; the other pairs are the same either way."""
    from persyn.runtime.rewards import router_examples

    cfg = tiny_config(tiny_models, tmp_path)
    cfg["router"]["ties"] = ties
    cfg["teachers"].insert(1, {**cfg["teachers"][0], "name": "a-twin"})
    run(cfg)
    pipe = Pipeline(parse_config(cfg))
    try:
        examples = router_examples(pipe.ctx, embed=False)
    finally:
        pipe.close()
    assert len(examples) == 6
    for ex in examples:
        assert ex.rewards[0] == ex.rewards[1] and ex.rewards[0] is not None
        assert [p for p in ex.pairs if p[:2] == (0, 1)] == ([(0, 1, 0.5)] if ties == "half" else [])
        r = [-np.inf if x is None else x for x in ex.rewards]
        want = []
        for a in range(len(r)):
            for b in range(a + 1, len(r)):
                if r[a] != r[b]:
                    want.append((a, b, float(r[b] > r[a])))
                elif ties == "half" and r[a] > -np.inf:
                    want.append((a, b, 0.5))
        assert ex.pairs == want


def test_a_run_killed_after_its_router_cross_validation_does_not_run_it_again(
    tiny_models, tmp_path, monkeypatch
):
    import persyn.stages.train_router as tr

    for d in ("clean", "killed"):
        (tmp_path / d).mkdir()
    clean_cfg = parse_config(tiny_config(tiny_models, tmp_path / "clean"))
    with Pipeline(clean_cfg) as p:
        p.run_stages(through="score")
        clean = p.train_router()

    class Killed(Exception):
        pass

    def kill_at(point):
        if point == tr.ROUTER_CV:
            raise Killed(point)

    cfg = parse_config(tiny_config(tiny_models, tmp_path / "killed"))
    with Pipeline(cfg) as p:
        p.run_stages(through="score")
        with monkeypatch.context() as m:
            m.setattr(tr, "crash_point", kill_at)
            with pytest.raises(Killed):
                p.train_router()
        assert not (tmp_path / "killed/run/router").exists()

        def again(*args, **kwargs):
            raise AssertionError("the cross-validation ran again")

        monkeypatch.setattr(tr, "cross_validate", again)
        resumed = p.train_router()
    timing = {"train_seconds", "route_seconds"}

    def figures(ev):
        dump = ev.model_dump()
        for fig in dump["kinds"].values():
            for t in timing:
                fig.pop(t, None)
        return {k: v for k, v in dump.items() if k not in timing}

    assert figures(resumed) == figures(clean) and resumed.kind == clean.kind
