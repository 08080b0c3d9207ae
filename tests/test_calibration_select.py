"""Calibration selection: random, diverse (k-center greedy on embeddings) and active rounds."""

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import yaml
from conftest import tiny_config

from persyn.calibration.active import uncertainty_order
from persyn.calibration.draw import k_center
from persyn.config import parse_config
from persyn.pipeline import Pipeline


def clusters(seed=0):
    """Four tight clusters of unit vectors, of very different sizes (40, 5, 3, 2)."""
    rng = np.random.default_rng(seed)
    centers = np.eye(8)[:4]
    x = np.concatenate(
        [c + 0.01 * rng.normal(size=(m, 8)) for c, m in zip(centers, (40, 5, 3, 2), strict=True)]
    )
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(4), (40, 5, 3, 2))


def test_k_center_covers_every_cluster_where_a_uniform_draw_misses_the_small_ones():
    x, label = clusters()
    for seed in range(5):
        picked = k_center(x, 4, seed)
        assert sorted(label[picked].tolist()) == [0, 1, 2, 3]
    # Different seeds start from different prompts.
    assert len({k_center(x, 4, s)[0] for s in range(5)}) > 1
    # Rows already taken are covered, never returned again.
    more = k_center(x, 3, 0, taken=[0, 40, 45, 48])
    assert not set(more) & {0, 40, 45, 48} and len(set(more)) == 3


def test_uncertainty_order_puts_disagreement_first_then_small_margins():
    picks = np.array([[0, 0, 1, 0], [0, 1, 1, 0]])  # the routers disagree on prompt 1 only
    scores = np.array([[0.9, 0.1], [0.9, 0.0], [0.55, 0.5], [0.6, 0.5]])
    assert uncertainty_order(picks, scores).tolist() == [1, 2, 3, 0]


def calibration_ids(out):
    db = sqlite3.connect(out / "store.sqlite")
    return sorted(r[0] for r in db.execute("SELECT id FROM prompts WHERE calibration=1"))


def test_diverse_selection_is_k_center_on_the_stored_embeddings_and_follows_the_seed(tiny_models, tmp_path):
    from persyn.router.embeddings import PromptEncoder

    picked = {}
    for seed in (0, 1, 2):
        (tmp_path / str(seed)).mkdir()
        cfg = tiny_config(tiny_models, tmp_path / str(seed), calibration={"size": 4, "select": "diverse"})
        cfg["seed"] = seed
        with Pipeline(parse_config(cfg)) as p:
            p.prepare()
            prompts = p.store.prompts()
        out = tmp_path / str(seed) / "run"
        texts = [q.text for q in prompts]
        x = PromptEncoder(tiny_models["encoder"]).embed(texts)
        assert calibration_ids(out) == sorted(prompts[i].id for i in k_center(x, 4, seed))
        picked[seed] = tuple(calibration_ids(out))
    assert len(set(picked.values())) > 1


def active_config(tiny_models, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    return tiny_config(
        tiny_models, tmp_path, calibration={"size": 8, "select": "active", "rounds": 2, "seed_fraction": 0.5}
    )


def test_active_selection_grows_the_set_in_rounds_and_resumes_after_a_kill(tiny_models, tmp_path):
    cfg = active_config(tiny_models, tmp_path / "clean")
    with Pipeline(parse_config(cfg)) as p:
        summary = p.run().model_dump()
        rounds = p.store.calibration_rounds()
    clean = tmp_path / "clean" / "run"
    assert summary["n_calibration"] == 8 and [len(r) for r in rounds] == [2, 2]
    # Every teacher answered the 8 calibration prompts; the 4 others got one routed response.
    assert summary["generations"] == 8 * 3 + 4
    seed_set = set(calibration_ids(clean)) - {i for r in rounds for i in r}
    assert len(seed_set) == 4

    # Killed right after its first round is stored, then resumed: the same set, and every
    # response generated once.
    cfg = active_config(tiny_models, tmp_path / "killed")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PERSYN_CRASH_AT": "calibrate.round"}
    res = subprocess.run(
        [sys.executable, "-m", "persyn", "run", str(path)], env=env, capture_output=True, text=True
    )
    assert res.returncode == -9, res.stderr
    out = tmp_path / "killed" / "run"
    assert len(calibration_ids(out)) == 6
    env.pop("PERSYN_CRASH_AT")
    res = subprocess.run(
        [sys.executable, "-m", "persyn", "run", str(path)], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert calibration_ids(out) == calibration_ids(clean)
    again = json.loads((out / "summary.json").read_text())
    assert again["generation_calls"] == again["generations"] == summary["generations"]
    assert (out / "dataset.jsonl").read_text() == (clean / "dataset.jsonl").read_text()


def test_next_round_asks_where_the_routers_disagree_and_not_twice_the_same_place():
    """``active``'s choice: calibration prompts say teacher a suits e0 > 0 and b suits e0 < 0;
    prior routes everything to a, so the learned kinds disagree with it only where e0 < 0.
    Of the pool, a tight cluster A (3 near-copies) and a point B lie there, four points C on
    the side where every router agrees: two prompts are added, one from A and B itself."""
    from persyn.calibration.active import next_round
    from persyn.config import RouterConfig
    from persyn.router.base import RouterExample
    from persyn.scoring.combine import pair_labels

    rng = np.random.default_rng(0)
    dim = 8

    def unit(v):
        v = np.asarray(v, dtype=np.float32)
        return v / np.linalg.norm(v)

    examples = []
    for i in range(20):
        side = 1.0 if i < 12 else -1.0  # 12 prompts suit a, 8 suit b: prior is a
        e = unit([side, *(0.2 * rng.normal(size=dim - 1))])
        r = [0.9, 0.1, 0.5] if side > 0 else [0.1, 0.9, 0.5]
        examples.append(RouterExample(f"cal {i}", pair_labels(r), r, e))
    a_dir = np.array([-1.0, 0, 2.0, 0, 0, 0, 0, 0])
    pool = [unit(a_dir + 0.01 * rng.normal(size=dim)) for _ in range(3)]  # A: rows 0-2
    pool.append(unit([-1.0, 0, 0, 2.0, 0, 0, 0, 0]))  # B: row 3
    pool += [unit([1.0, 0, 0, 0, 0, 0.3 * k, 0, 0]) for k in range(4)]  # C: rows 4-7
    added = next_round(RouterConfig(), ["a", "b", "c"], examples, np.stack(pool), add=2, seed=0)
    assert len(added) == 2 and 3 in added
    assert len([i for i in added if i in (0, 1, 2)]) == 1
