"""experiments/verified_report.py: the round-3 write-up's tables from tiny synthetic records."""

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import verified_report as vr  # noqa: E402

from persyn.experiment.paired import holm, paired_difference  # noqa: E402

# 12 held-out prompts: e0-e5 are task A, e6-e11 task B
EVAL_TASK = {f"q{i}": ("A" if i < 6 else "B") for i in range(12)}
LABELS = vr.Labels(
    eval_task=EVAL_TASK,
    pool_task={"p1": "A", "p2": "A", "p3": "B", "p4": "B"},
    pool_text={"text p1": "A", "text p2": "A", "text p3": "B", "text p4": "B"},
)
PLAN = {
    "persyn": [0, 1],
    "car-verified": [0, 1],
    "car": [0, 1],
    "oracle-verified": [0, 1],
    "persyn-plain": [0],
}
CORRECT = {
    ("persyn", 0): [1] * 11 + [0],
    ("persyn", 1): [1] * 10 + [0, 1],
    ("car-verified", 0): [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    ("car-verified", 1): [0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    ("car", 0): [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ("car", 1): [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    ("oracle-verified", 0): [1] * 12,  # oracle-verified has seed 0 only so far
    ("student (no SFT)", None): [0] * 11 + [1],
}
TRUNCATED = {("persyn", 0): {11}, ("student (no SFT)", None): {6, 7}}  # prompt indices cut


def _write_evals(root: Path) -> None:
    (root / "evals").mkdir(parents=True)
    rows = []
    for (arm, seed), correct in CORRECT.items():
        key = f"{arm.split()[0]}-{seed}"
        cut = TRUNCATED.get((arm, seed), set())
        recs = [
            {
                "id": f"e{i}",
                "prompt": f"q{i}",
                "correct": bool(c),
                "finish_reason": "length" if i in cut else "stop",
            }
            for i, c in enumerate(correct)
        ]
        (root / "evals" / f"{key}.json").write_text(json.dumps({"records": recs}))
        secs = "" if seed is None else str(60.0 * (seed + 1))
        rows.append(
            {
                "student": "smol",
                "strategy": arm,
                "seed": "" if seed is None else seed,
                "eval_key": key,
                "train_seconds": secs,
            }
        )
    with open(root / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["student", "strategy", "seed", "eval_key", "train_seconds"])
        w.writeheader()
        w.writerows(rows)


def _line(pid, teacher, quality, text=None):
    msgs = [{"role": "user", "content": text or f"text {pid}"}, {"role": "assistant", "content": "#### 1"}]
    return {"id": pid, "messages": msgs, "teacher": teacher, "quality": quality}


def _write_dataset(root: Path, seed: int, arm: str, lines: list[dict], generations: int, h: str) -> None:
    d = root / "datasets" / "smol" / f"seed-{seed}" / arm
    d.mkdir(parents=True)
    (d / "dataset.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (d / "summary.json").write_text(json.dumps({"generations": generations, "dataset_hash": h}))


def _attempt(teacher, status):
    return {"teacher": teacher, "status": status, "quality": 1.0 if status == "accepted" else 0.0}


def _write_run(root: Path, seed: int, dropped: int = 1) -> None:
    d = root / "runs" / f"seed-{seed}"
    d.mkdir(parents=True)
    routing = [
        {"id": "p1", "teacher": "t1", "attempts": [_attempt("t1", "accepted")], "accepted": "t1"},
        {
            "id": "p2",
            "teacher": "t1",
            "attempts": [_attempt("t1", "rejected"), _attempt("t2", "accepted")],
            "accepted": "t2",
        },
        {
            "id": "p3",
            "teacher": "t2",
            "attempts": [_attempt("t2", "rejected"), _attempt("t1", "rejected")],
            "accepted": None,
        },
        {"id": "p4", "teacher": "t1", "attempts": [_attempt("t1", "accepted")], "accepted": "t1"},
    ]
    (d / "routing.jsonl").write_text("".join(json.dumps(x) + "\n" for x in routing))
    teachers = {
        "t1": {"first_answers": 3, "escalations": 1, "rejected": 1, "accepted": 2, "failed": 0},
        "t2": {"first_answers": 1, "escalations": 1, "rejected": 1, "accepted": 1, "failed": 0},
    }
    summary = {
        "generations": 13,
        "seconds": {"calibrate": 60.0, "generate": 60.0},
        "router_eval": {"kind": "prior", "reason": "no learned kind beats prior"},
        "verify": {"routed_prompts": 4, "accepted_at_try": [2, 1], "dropped": dropped, "teachers": teachers},
    }
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "router.json").write_text(json.dumps({"kind": "prior"}))


@pytest.fixture
def records(tmp_path):
    _write_evals(tmp_path)
    seed0 = [
        _line("p1", "t1", 1.0),
        _line("p2", "t2", 0.0),
        _line("p3", "t1", None),
        _line("x9", "t2", 1.0, text="text p4"),  # no pool id: labelled by its text (task B)
    ]
    _write_dataset(tmp_path, 0, "persyn", seed0, 10, "h0")
    _write_dataset(tmp_path, 1, "persyn", [_line("p1", "t1", 1.0), _line("p3", "t1", 1.0)], 10, "h1")
    _write_dataset(tmp_path, 0, "persyn-prior", seed0, 10, "h0")
    _write_dataset(tmp_path, 0, "car", [_line("p1", "t1", 0.0), _line("p3", "t1", 1.0)], 8, "c0")
    _write_run(tmp_path, 1)
    return tmp_path


def test_accuracy_and_truncation_per_task_mean_over_seeds(records):
    t = vr.build(records, LABELS, PLAN)
    car = t["accuracy"]["car"]
    assert car["seeds"] == [0, 1]
    assert car["by_task"]["A"] == pytest.approx([2 / 6, 4 / 6])
    assert car["by_task"]["B"] == [0.0, 0.0]
    assert car["by_task"]["all"] == pytest.approx([2 / 12, 4 / 12])
    assert t["accuracy"]["persyn"]["by_task"]["B"] == pytest.approx([5 / 6, 5 / 6])
    assert t["truncated"]["persyn"]["by_task"]["B"] == pytest.approx([1 / 6, 0.0])
    assert t["truncated"]["student (no SFT)"]["by_task"]["B"] == pytest.approx([2 / 6])
    assert t["n_prompts"] == {"A": 6, "B": 6, "all": 12}
    md = vr.markdown(t, "cfg.yaml")
    # car on A: mean 0.5, sample std of (1/3, 2/3) = 0.236
    assert "| car | 2 of 2 (0–1) | 0.500 ± 0.236 | 0.000 ± 0.000 | 0.250 ± 0.118 |" in md
    assert "- persyn-plain: not evaluated yet (planned seeds 0)" in md
    # an arm of the report that the config does not list was cut, not pending
    assert "- strongest: not run (cut: not in the config's strategies)" in md
    assert "persyn-plain 0 of 1 seeds; strongest not run (cut: not in the config's strategies)" in md
    assert "| car − strongest | secondary | – | not run (strongest cut) |" in md


def test_holm_is_applied_to_the_two_primaries_only(records):
    t = vr.build(records, LABELS, PLAN)
    prim, sec = t["primary"], t["secondary"]
    assert [(r["a"], r["b"]) for r in prim] == [("persyn", "car-verified"), ("persyn", "car")]
    assert [r["p_holm"] for r in prim] == holm([r["p"] for r in prim])
    assert prim[0]["p_holm"] == pytest.approx(2 * prim[0]["p"])  # both p at the bootstrap's floor
    assert prim[0]["mean"] == pytest.approx(0.75)  # per seed 9/12 and 9/12
    assert prim[1]["per_seed"] == pytest.approx([9 / 12, 7 / 12])
    cv_car = next(r for r in sec if (r["a"], r["b"]) == ("car-verified", "car"))
    assert cv_car["p_holm"] is None
    ref = paired_difference(
        np.array([CORRECT[("car-verified", s)] for s in (0, 1)], float),
        np.array([CORRECT[("car", s)] for s in (0, 1)], float),
    )
    assert cv_car["p"] == ref["p"] and cv_car["mean"] == pytest.approx(-1 / 12)
    # oracle-verified − persyn on the one seed both have
    ovp = next(r for r in sec if r["a"] == "oracle-verified")
    assert ovp["seeds"] == [0] and ovp["mean"] == pytest.approx(1 / 12)
    missing = {(r["a"], r["b"]) for r in sec if r["missing"]}
    assert missing == {("persyn-plain", "car"), ("car", "strongest"), ("persyn", "persyn-prior")}
    md = vr.markdown(t, "cfg.yaml")
    assert md.count("(Holm)") == 2


def test_one_primary_alone_gets_the_holm_bound_not_its_raw_p():
    rng = np.random.default_rng(0)
    found = {
        "persyn": {0: np.ones(30)},
        "car": {0: (rng.random(30) < 0.5).astype(float)},
    }
    prim = vr.primaries(found, n_boot=200)
    assert prim[0]["missing"] and not prim[1]["missing"]
    assert prim[1]["p_holm"] == pytest.approx(min(1.0, 2 * prim[1]["p"]))
    assert "not evaluated yet" in prim[1]["holm_note"]


def test_gain_recovered_on_the_seeds_all_three_share(records):
    t = vr.build(records, LABELS, PLAN)
    g = t["gain"]["car"]
    assert g["seeds"] == [0]
    # seed 0: persyn − car 9/12, oracle − car 10/12
    assert g["ratio"] == pytest.approx(0.9)
    assert g["oracle_minus_base"]["mean"] == pytest.approx(10 / 12)
    assert t["gain"]["car-verified"]["ratio"] == pytest.approx((9 / 12) / (10 / 12))


def test_escalation_counts_per_task_and_the_check_against_summary(records):
    t = vr.build(records, LABELS, PLAN)
    r = t["routing"]
    assert r["seeds"] == [1] and r["missing_seeds"] == [0]
    assert r["counts"]["A"] == {
        "routed": 2,
        "first:t1": 2,
        "escalated": 1,
        "accepted_try_1": 1,
        "accepted_try_2": 1,
    }
    assert r["counts"]["B"] == {
        "routed": 2,
        "first:t2": 1,
        "first:t1": 1,
        "escalated": 1,
        "dropped": 1,
        "accepted_try_1": 1,
    }
    assert r["mismatches"] == []
    assert r["teachers"]["t1"]["first_answers"] == 3
    md = vr.markdown(t, "cfg.yaml")
    assert "| A | 2 | 1.000 (2) | 0.000 (0) | 0.500 (1) | 0.500 (1) | 0.500 (1) | 0.000 (0) |" in md
    assert "no run records for seed 0 (seed 0's were lost" in md
    assert t["auto"]["kinds"][1]["kind"] == "prior" and t["auto"]["same_dataset"] == {0: True}


def test_a_routing_record_that_disagrees_with_its_summary_is_reported(tmp_path):
    _write_run(tmp_path, 3, dropped=2)
    r = vr.routing_table(tmp_path, "smol", LABELS.pool_task)
    assert len(r["mismatches"]) == 1 and "dropped 2 in summary.json, 1 in routing.jsonl" in r["mismatches"][0]


def test_right_line_share_counts_unchecked_lines_apart(records):
    t = vr.build(records, LABELS, PLAN)
    p = t["right_share"]["persyn"]
    assert p["seeds"] == [0, 1]
    # seed 0: A 1 of 2 right, B 1 of 1 checked (one null); seed 1: all right
    assert p["share"]["A"] == pytest.approx([0.5, 1.0])
    assert p["share"]["B"] == pytest.approx([1.0, 1.0])
    assert p["share"]["all"] == pytest.approx([2 / 3, 1.0])
    assert p["unchecked"] == 1
    assert p["right"] == {"A": [1, 1], "B": [1, 1], "all": [2, 2]}  # counts (seed 0: A 1 of 2), not shares
    assert t["right_share"]["car"]["share"]["all"] == [0.5]
    md = vr.markdown(t, "cfg.yaml")
    assert "| persyn | 0–1 | 1.0 ± 0.0 | 1.0 ± 0.0 | 2.0 ± 0.0 |" in md
    assert "| car | 0 | 0.0 ± 0.0 | 1.0 ± 0.0 | 1.0 ± 0.0 |" in md  # A: its one line wrong
    lines = t["lines_by_task"]["persyn"]["mean"]
    assert lines["A"] == {"t1": 1.0, "t2": 0.5} and lines["B"] == {"t1": 1.0, "t2": 0.5}


def test_generations_recorded_and_made_and_sft_minutes(records):
    g = vr.build(records, LABELS, PLAN)["generations"]
    p = g["persyn"]
    assert p["lines"] == 3.0 and p["generations"] == 10.0
    assert p["per_line"] == pytest.approx(np.mean([10 / 4, 10 / 2]))
    assert p["cascade_seeds"] == [1] and p["cascade_generations"] == 13.0 and p["cascade_per_line"] == 6.5
    assert p["pipeline_seconds"] == {1: 120.0}
    assert p["sft_minutes"] == pytest.approx(1.5)  # 60 s and 120 s
    assert g["car"]["generations"] == 8.0 and "cascade_generations" not in g["car"]


def test_run_records_rebuilt_without_stage_times_are_named_not_read_as_zero(records):
    # rebuild_run_records.py drops `seconds`: the wall time is "not kept", never "0.0 min"
    summary = records / "runs" / "seed-1" / "summary.json"
    summary.write_text(
        json.dumps({k: v for k, v in json.loads(summary.read_text()).items() if k != "seconds"})
    )
    t = vr.build(records, LABELS, PLAN)
    p = t["generations"]["persyn"]
    assert p["pipeline_seconds"] == {} and p["pipeline_seconds_missing"] == [1]
    md = vr.markdown(t, "cfg.yaml")
    assert "wall time of seeds 1: not kept" in md and "seed 1 0.0 min" not in md


def test_detectable_uses_the_observed_sds_at_holm_over_two(records):
    d = vr.build(records, LABELS, PLAN)["detectable"]["persyn − car"]
    assert d["estimable"] and d["n_seeds"] == 2
    diff = np.array([CORRECT[("persyn", s)] for s in (0, 1)], float) - np.array(
        [CORRECT[("car", s)] for s in (0, 1)], float
    )
    seed_sd, prompt_sd = np.std(diff.mean(1), ddof=1), np.std(diff.mean(0), ddof=1)
    assert d["seed_sd"] == pytest.approx(seed_sd) and d["prompt_sd"] == pytest.approx(prompt_sd)
    se = math.sqrt(seed_sd**2 / 2 + prompt_sd**2 / 12)
    assert d["now"]["mde_80"] == pytest.approx((norm.ppf(1 - 0.05 / 4) + norm.ppf(0.8)) * se)


def test_detectable_with_one_seed_says_it_cannot_be_estimated():
    found = {
        "persyn": {0: np.array([1, 1, 0, 1.0])},
        "car": {0: np.array([0, 1, 0, 0.0])},
        "car-verified": {},
    }
    d = vr.detectable_primaries(found, {"persyn": [0, 1], "car": [0, 1]})
    assert not d["persyn − car"]["estimable"] and "cannot be estimated" in d["persyn − car"]["why"]
    assert d["persyn − car"]["prompt_sd"] == pytest.approx(np.std([1, 0, 0, 1], ddof=1))
    assert not d["persyn − car-verified"]["estimable"]


def test_a_missing_evaluation_record_names_its_key(records):
    (records / "evals" / "car-1.json").unlink()
    with pytest.raises(FileNotFoundError, match="car-1.json.*car seed 1"):
        vr.build(records, LABELS, PLAN)


def test_a_prompt_without_a_task_label_is_an_error(records):
    labels = vr.Labels({k: v for k, v in EVAL_TASK.items() if k != "q3"}, LABELS.pool_task, LABELS.pool_text)
    with pytest.raises(KeyError, match="no task label"):
        vr.build(records, labels, PLAN)


def test_seed_ranges():
    assert vr._seeds([0, 1, 2, 5]) == "0–2, 5"
    assert vr._seeds([1]) == "1" and vr._seeds([]) == "none"


def test_lines_by_source_tell_escalation_from_the_calibration_picks(tmp_path):
    def line(pid, teacher, source):
        return {**_line(pid, teacher, 1.0), "source": source}

    _write_dataset(
        tmp_path,
        0,
        "persyn",
        [line("p1", "t1", "calibration"), line("p2", "t2", "routed"), line("p3", "t2", "routed")],
        5,
        "h0",
    )
    _write_dataset(
        tmp_path, 1, "persyn", [line("p1", "t2", "calibration"), line("p4", "t1", "routed")], 5, "h1"
    )
    lt = vr.teacher_lines_by_task(tmp_path, "smol", "persyn", LABELS)
    assert lt["by_source"] == {
        "A": {"calibration · t1": 0.5, "calibration · t2": 0.5, "routed · t1": 0.0, "routed · t2": 0.5},
        "B": {"calibration · t1": 0.0, "calibration · t2": 0.0, "routed · t1": 0.5, "routed · t2": 0.5},
    }
    md = "\n".join(vr.md_lines({"student": "smol", "lines_by_task": {"persyn": lt}}))
    assert "| task | calibration · t1 | calibration · t2 | routed · t1 | routed · t2 |" in md
    assert "| A | 0.5 | 0.5 | 0.0 | 0.5 |" in md
