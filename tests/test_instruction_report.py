"""experiments/instruction_report.py: the instruction run's tables from synthetic records over
IFEval's real prompts."""

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import instruction_report as ir  # noqa: E402
import verified_report as vr  # noqa: E402
from ifeval_floor import floor_mask  # noqa: E402
from instruction_probe import degenerate_passes  # noqa: E402

from persyn.core.errors import InputError  # noqa: E402
from persyn.evaluate_ifeval import ifeval_prompt_set  # noqa: E402
from persyn.experiment.comparisons import UNTRAINED  # noqa: E402

N = 30


@pytest.fixture(scope="module")
def prompts():
    return ifeval_prompt_set(N)


def _checks(q, k: int, loose_extra: bool = False) -> tuple[list[bool], list[bool]]:
    """Strict checks of prompt ``q`` with the first ``k`` instructions followed; loose the same
    plus, with ``loose_extra``, every instruction."""
    n = len(q.metadata["instruction_id_list"])
    strict = [i < k for i in range(n)]
    return strict, ([True] * n if loose_extra else strict)


# per arm and seed: how many instructions of each prompt are followed (a function of the prompt index)
PLAN = {"persyn": [0, 1], "car-verified": [0, 1], "car": [0, 1], "oracle-verified": [0], "strongest": [0]}
FOLLOWED = {
    ("persyn", 0): lambda i, n: n if i % 2 == 0 else 0,
    ("persyn", 1): lambda i, n: n if i % 3 != 2 else 0,
    ("car-verified", 0): lambda i, n: n if i % 4 == 0 else 0,
    ("car-verified", 1): lambda i, n: n if i % 5 == 0 else 0,
    ("car", 0): lambda i, n: 1 if i % 2 == 0 else 0,  # only the first instruction, on even prompts
    ("car", 1): lambda i, n: 0,
    ("oracle-verified", 0): lambda i, n: n,  # every instruction of every prompt
    (UNTRAINED, None): lambda i, n: 0,
}


def _write(root: Path, prompts, loose_arm: str = "car", followed: dict = FOLLOWED) -> None:
    (root / "evals").mkdir(parents=True)
    rows = []
    for (arm, seed), f in followed.items():
        recs = []
        for i, q in enumerate(prompts):
            n = len(q.metadata["instruction_id_list"])
            strict, loose = _checks(q, f(i, n), loose_extra=(arm == loose_arm and seed == 0))
            recs.append(
                {
                    "id": q.id,
                    "prompt": q.text,
                    "instruction_id_list": q.metadata["instruction_id_list"],
                    "strict": strict,
                    "loose": loose,
                    "correct": all(strict),
                    "finish_reason": "length" if (arm == "car" and i < 3) else "stop",
                }
            )
        key = f"{arm.split()[0]}-{seed}"
        (root / "evals" / f"{key}.json").write_text(json.dumps({"records": recs}))
        rows.append(
            {
                "student": "smol",
                "strategy": arm,
                "seed": "" if seed is None else seed,
                "eval_key": key,
                "train_seconds": "" if seed is None else "120",
            }
        )
    with open(root / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["student", "strategy", "seed", "eval_key", "train_seconds"])
        w.writeheader()
        w.writerows(rows)
    d = root / "datasets" / "smol" / "seed-0" / "car"
    d.mkdir(parents=True)
    lines = [
        {"id": "p1", "messages": [{"role": "user", "content": "a"}], "teacher": "t", "quality": 1.0},
        {"id": "p2", "messages": [{"role": "user", "content": "b"}], "teacher": "t", "quality": 0.5},
    ]
    (d / "dataset.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (d / "summary.json").write_text(json.dumps({"generations": 2, "dataset_hash": "h"}))
    with open(root / "validation.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["sweep", "value", "student", "strategy", "steps", "accuracy", "ci_low", "ci_high", "eval_key"]
        )
        for e, a, b in ((1, 0.20, 0.30), (2, 0.30, 0.30), (3, 0.35, 0.25)):  # 2 and 3 tie on the mean
            w.writerow(["sft_epochs", float(e), "smol", "persyn", 10 * e, a, a - 0.1, a + 0.1, f"k{e}"])
            w.writerow(["sft_epochs", float(e), "smol", "car-verified", 10 * e, b, b - 0.1, b + 0.1, f"c{e}"])


def _write_run(root: Path, seed: int) -> None:
    """PerSyn's run files of one seed where ``persyn experiment --records`` keeps them
    (``runs/STUDENT/seed-S``): p1 accepted at the first try, p2 escalated and accepted at the second."""
    d = root / "runs" / "smol" / f"seed-{seed}"
    d.mkdir(parents=True)
    att = [{"teacher": "t", "status": "accepted"}]
    esc = [{"teacher": "t", "status": "rejected"}, {"teacher": "u", "status": "accepted"}]
    routing = [{"id": "p1", "teacher": "t", "attempts": att}, {"id": "p2", "teacher": "t", "attempts": esc}]
    (d / "routing.jsonl").write_text("".join(json.dumps(x) + "\n" for x in routing))
    teachers = {"t": {"first_answers": 2, "escalations": 0, "rejected": 1, "accepted": 1}}
    summary = {
        "generations": 7,
        "router_eval": {"kind": "prior", "reason": "no learned kind beats prior"},
        "verify": {"routed_prompts": 2, "accepted_at_try": [1, 1], "dropped": 0, "teachers": teachers},
    }
    (d / "summary.json").write_text(json.dumps(summary))


def _labels(prompts) -> vr.Labels:
    return vr.Labels(
        eval_task={q.text: ir.n_label(q.metadata["instruction_id_list"]) for q in prompts},
        pool_task={"p1": "1 instruction", "p2": "2 instructions"},
        pool_text={},
    )


def test_ifevals_four_numbers_against_a_direct_count(prompts):
    recs = []
    for i, q in enumerate(prompts):
        n = len(q.metadata["instruction_id_list"])
        strict, loose = _checks(q, i % (n + 1), loose_extra=(i % 3 == 0))
        recs.append(
            {
                "id": q.id,
                "instruction_id_list": q.metadata["instruction_id_list"],
                "strict": strict,
                "loose": loose,
            }
        )
    got = ir.ifeval_numbers(recs)
    flat = [
        (r["instruction_id_list"][j], r["strict"][j], r["loose"][j])
        for r in recs
        for j in range(len(r["strict"]))
    ]
    assert got["prompt_strict"] == pytest.approx(np.mean([all(r["strict"]) for r in recs]))
    assert got["prompt_loose"] == pytest.approx(np.mean([all(r["loose"]) for r in recs]))
    assert got["instruction_strict"] == pytest.approx(np.mean([s for _, s, _ in flat]))
    assert got["instruction_loose"] == pytest.approx(np.mean([lo for _, _, lo in flat]))
    assert got["prompt_loose"] > got["prompt_strict"]  # the loose extras count
    g = got["groups"]["punctuation"]
    assert g["n"] == sum(iid.startswith("punctuation:") for iid, _, _ in flat)
    assert g["accuracy"] == pytest.approx(
        np.mean([s for iid, s, _ in flat if iid.startswith("punctuation:")])
    )


def test_a_record_with_mismatched_checks_is_named(prompts):
    q = prompts[0]
    bad = {"id": q.id, "instruction_id_list": q.metadata["instruction_id_list"], "strict": [], "loose": []}
    with pytest.raises(InputError, match=rf"evals/k.json: record '{q.id}' has \d instructions, 0 strict"):
        ir.ifeval_numbers([bad], "evals/k.json")
    with pytest.raises(InputError, match="has no 'loose'"):
        ir.ifeval_numbers([{"id": q.id, "instruction_id_list": [], "strict": []}])


def test_report_tables_from_records(tmp_path, prompts):
    _write(tmp_path, prompts)
    # the run's own word on the epochs, and its run files
    (tmp_path / "results.md").write_text("Notes. SFT epochs chosen on validation: 3.0.\n")
    _write_run(tmp_path, 0)
    t = ir.build(tmp_path, _labels(prompts), PLAN, n_boot=200, eval_max_new_tokens=512)
    ns = [len(q.metadata["instruction_id_list"]) for q in prompts]
    # IFEval's numbers per seed: persyn seed 0 follows everything on even prompts
    p0 = t["ifeval"]["persyn"]["by_seed"][0]
    assert p0["prompt_strict"] == pytest.approx(np.mean([i % 2 == 0 for i in range(N)]))
    assert p0["instruction_strict"] == pytest.approx(sum(n for i, n in enumerate(ns) if i % 2 == 0) / sum(ns))
    # car seed 0: one instruction on even prompts, loose everything
    c0 = t["ifeval"]["car"]["by_seed"][0]
    assert c0["prompt_strict"] == pytest.approx(np.mean([i % 2 == 0 and n == 1 for i, n in enumerate(ns)]))
    assert c0["prompt_loose"] == 1.0 and c0["truncated"] == pytest.approx(3 / N)
    # the primaries are the plan's, Holm over the two; the secondaries include every arm − the untouched student
    assert [(d["a"], d["b"]) for d in t["primary"]] == [("persyn", "car-verified"), ("persyn", "car")]
    assert all(d["holm_note"] == "Holm over 2" for d in t["primary"])
    names = [(d["a"], d["b"]) for d in t["secondary"]]
    assert ("persyn", "strongest") in names and ("car", UNTRAINED) in names
    assert next(d for d in t["secondary"] if d["b"] == "strongest")["missing"]  # strongest not evaluated
    # the untouched student's one evaluation stands for each of the arm's seeds
    vs_untouched = {d["a"]: d for d in t["secondary"] if d["b"] == UNTRAINED and not d["missing"]}
    assert vs_untouched["persyn"]["seeds"] == [0, 1] and vs_untouched["oracle-verified"]["seeds"] == [0]
    assert vs_untouched["persyn"]["per_seed"] == pytest.approx(
        [np.mean([i % 2 == 0 for i in range(N)]), np.mean([i % 3 != 2 for i in range(N)])]
    )
    # the stop rule (oracle-verified − car, seed 0) and the Oracle gain on the seed the three share
    assert t["stop_rule"]["headroom"] and t["stop_rule"]["mean"] == pytest.approx(
        1 - t["ifeval"]["car"]["by_seed"][0]["prompt_strict"]
    )
    assert t["gain"]["car"]["seeds"] == [0]
    # the labels are numbers of instructions, and the per-label accuracy follows them
    assert set(t["tasks"]) == {ir.n_label([0] * n) for n in set(ns)}
    one = [i for i, n in enumerate(ns) if n == 1]
    assert t["accuracy"]["persyn"]["by_task"]["1 instruction"][0] == pytest.approx(
        np.mean([i % 2 == 0 for i in one])
    )
    # the floor split is ifeval_floor's, computed directly, and its comparisons are there
    f = t["floor"]
    direct = floor_mask([q.id for q in prompts], degenerate_passes(prompts))
    assert f["floor_prompts"] == [q.id for q, x in zip(prompts, direct, strict=True) if x]
    assert 0 < f["n_floor"] < N
    assert {(c["a"], c["b"]) for c in f["comparisons"]} >= {("persyn", "car"), ("persyn", "car-verified")}
    # validation: 2 and 3 epochs tie on the mean (0.30), the fewer is chosen
    assert t["validation"]["mean"] == pytest.approx({1: 0.25, 2: 0.30, 3: 0.30})
    assert t["validation"]["chosen"] == 2 and t["validation"]["chosen_by_run"] == 3.0
    assert t["right_share"]["car"]["share"]["all"] == [0.5]
    # the run files kept under runs/STUDENT/seed-S are read (round 3's runs/seed-S is the fallback)
    r = t["routing"]
    assert r["seeds"] == [0] and r["mismatches"] == []
    assert r["counts"]["2 instructions"] == {"routed": 1, "first:t": 1, "escalated": 1, "accepted_try_2": 1}
    md = ir.markdown(t, "cfg.yaml")
    heads = [x for x in md.splitlines() if x.startswith("## ")]
    assert [h.split(". ", 1)[0] for h in heads] == [f"## {k}" for k in range(1, 14)]
    assert "## 3. Accuracy per number of instructions" in md
    # the teacher behind car's dataset, from its lines
    assert t["single_teachers"] == {"car": {0: {"t": 2}}}
    assert "| car | t 2 |" in md
    assert "| 2 (chosen) |" in md and "persyn-prior" not in md
    assert "3 epochs, which differs from the recomputation above" in md


def test_main_writes_report_json_and_markdown(tmp_path, prompts, monkeypatch):
    _write(tmp_path, prompts)
    labels = _labels(prompts)
    monkeypatch.setattr(ir, "labels_from_config", lambda config: (labels, PLAN, 512))
    ir.main(["cfg.yaml", str(tmp_path), "--n-boot", "100"])
    assert json.loads((tmp_path / "report.json").read_text())["floor"]["n_prompts"] == N
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# The instruction run (issue 46)") and "cut at the evaluation's 512 tokens" in md
    assert "## 6. Oracle gain recovered (exploratory)" in md and "## 4. Paired comparisons\n" in md


def test_a_run_with_only_the_untouched_student_evaluated(tmp_path, prompts):
    """The first record of a run: no arm, no dataset, no runs/, no validation.csv."""
    _write(tmp_path, prompts, followed={(UNTRAINED, None): FOLLOWED[(UNTRAINED, None)]})
    shutil.rmtree(tmp_path / "datasets")
    (tmp_path / "validation.csv").unlink()
    t = ir.build(tmp_path, _labels(prompts), PLAN, n_boot=50, eval_max_new_tokens=512)
    assert t["evaluated"] == {a: [] for a in ir.ARMS}
    assert all(d["missing"] for d in t["primary"]) and t["validation"] is None
    md = ir.markdown(t, "cfg.yaml")
    assert "not evaluated yet" in md and "No sweep recorded yet" in md
    assert t["single_teachers"] == {} and "No single-teacher dataset recorded yet" in md


def test_labels_from_the_run_config_count_instructions():
    cfg = Path(__file__).resolve().parents[1] / "src/persyn/configs/evidence-instruction.yaml"
    labels, plan, budget = ir.labels_from_config(cfg)
    assert budget == 512
    assert plan == {
        "persyn": [0, 1, 2],
        "car-verified": [0, 1, 2],
        "car": [0, 1, 2],
        "oracle-verified": [0],
    }  # strongest was cut for time (docs/experiments.md, the log of 2026-12-08)
    assert len(labels.eval_task) == 541 and len(labels.pool_task) == 520
    assert set(labels.pool_task.values()) == {"1 instruction", "2 instructions", "3 instructions"}
