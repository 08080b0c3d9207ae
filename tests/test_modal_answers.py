"""experiments/modal_answers.py: accuracy on the modal-answer prompts and on the rest, from
tiny synthetic evaluation records."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import modal_answers as ma  # noqa: E402
import verified_report as vr  # noqa: E402

from persyn.core.errors import InputError  # noqa: E402

# 8 held-out prompts: q0-q3 task A (answers 1, 1, 1, 2), q4-q7 task B (5, 6, 7, 7)
GOLD = ["1", "1", "1", "2", "5", "6", "7", "7"]
EVAL_TASK = {f"q{i}": ("A" if i < 4 else "B") for i in range(8)}
CORRECT = {
    # says the modal answer everywhere: right exactly where the gold is modal
    ("const", 0): [1, 1, 1, 0, 0, 0, 1, 1],
    ("const", 1): [1, 1, 1, 0, 0, 0, 1, 1],
    # right on the non-modal prompts only
    ("skill", 0): [0, 0, 0, 1, 1, 1, 0, 0],
    ("skill", 1): [0, 0, 0, 1, 1, 0, 0, 0],
}


def _records(root: Path, gold_missing: bool = False) -> None:
    (root / "evals").mkdir(parents=True)
    lines = ["student,strategy,seed,eval_key,train_seconds"]
    for (arm, seed), correct in CORRECT.items():
        key = f"{arm}-{seed}"
        recs = [
            {"id": f"e{i}", "prompt": f"q{i}", "correct": bool(c), "gold": None if gold_missing else GOLD[i]}
            for i, c in enumerate(correct)
        ]
        (root / "evals" / f"{key}.json").write_text(json.dumps({"records": recs}))
        lines.append(f"smol,{arm},{seed},{key},60")
    (root / "results.csv").write_text("\n".join(lines) + "\n")


def _load(root: Path):
    rows = vr.read_results(root)
    ev = vr.load_evals(root, rows, EVAL_TASK)
    return rows, ev, ma.golds(root, rows[0], ev.ids)


def test_a_constant_answer_scores_on_the_modal_prompts_only(tmp_path):
    _records(tmp_path)
    _, ev, gold = _load(tmp_path)
    modal = ma.modal_answers(ev.tasks, gold)
    assert (modal["A"]["modal"], modal["A"]["share"]) == ("1", 0.75)
    assert (modal["B"]["modal"], modal["B"]["share"]) == ("7", 0.5)
    assert modal["A"]["mask"].tolist() == [True, True, True, False, False, False, False, False]
    acc = ma.split_accuracy(ev, modal)
    assert acc["const"]["tasks"]["A"]["on_modal"] == [1.0, 1.0]
    assert acc["const"]["tasks"]["A"]["off_modal"] == [0.0, 0.0]
    assert acc["skill"]["tasks"]["B"]["off_modal"] == [1.0, 0.5]
    assert acc["skill"]["tasks"]["all"]["off_modal"] == [1.0, 2 / 3]
    assert acc["const"]["tasks"]["all"]["all"] == [5 / 8, 5 / 8]


def test_the_difference_on_the_non_modal_prompts_is_the_paired_one_there(tmp_path):
    _records(tmp_path)
    _, ev, gold = _load(tmp_path)
    modal = ma.modal_answers(ev.tasks, gold)
    (c,) = ma.comparisons(ev, modal, [("const", "skill"), ("const", "absent")], n_boot=200)
    assert (c["a"], c["b"]) == ("const", "skill")
    # all prompts: const 5/8 both seeds, skill 3/8 and 2/8
    assert c["rows"]["all"]["all"]["mean"] == pytest.approx(np.mean([5 / 8 - 3 / 8, 5 / 8 - 2 / 8]))
    # non-modal prompts (q3, q4, q5): const 0, skill 1 and 2/3
    assert c["rows"]["all"]["off_modal"]["mean"] == pytest.approx(np.mean([-1.0, -2 / 3]))
    assert c["rows"]["A"]["off_modal"]["mean"] == pytest.approx(-1.0)
    md = "\n".join(ma.markdown(modal, ma.split_accuracy(ev, modal), [c], ["const", "skill"]))
    assert "| A | 4 | 1 | 0.750 |" in md
    assert "| const | 0, 1 | 1.000 ± 0.000 / 0.000 ± 0.000 |" in md


def test_records_without_gold_answers_are_refused_naming_the_file(tmp_path):
    _records(tmp_path, gold_missing=True)
    rows = vr.read_results(tmp_path)
    ev = vr.load_evals(tmp_path, rows, EVAL_TASK)
    with pytest.raises(InputError, match=r"evals/const-0\.json: prompt 'e0' has no gold answer"):
        ma.golds(tmp_path, rows[0], ev.ids)


def test_balanced_accuracy_gives_a_constant_answer_one_over_the_classes(tmp_path):
    _records(tmp_path)
    _, ev, gold = _load(tmp_path)
    # one prompt per class is enough here: A has classes 1 (3 prompts) and 2 (1); B 5, 6, 7
    bal = ma.balanced_accuracy(ev, ["A", "B"], gold, min_prompts=1)
    assert bal["const"]["classes"] == {"A": 2, "B": 3}
    assert bal["const"]["tasks"]["A"] == [0.5, 0.5]  # class 1 all right, class 2 none
    assert bal["const"]["tasks"]["B"] == pytest.approx([1 / 3, 1 / 3])
    assert bal["skill"]["tasks"]["B"] == pytest.approx([2 / 3, 1 / 3])  # seed 1: q5 wrong
    # a class below the threshold is left out: with 2 prompts needed, A keeps class 1, B class 7
    strict = ma.balanced_accuracy(ev, ["A", "B"], gold, min_prompts=2)
    assert strict["const"]["classes"] == {"A": 1, "B": 1} and strict["skill"]["tasks"]["A"] == [0.0, 0.0]
    md = "\n".join(
        ma.markdown(
            ma.modal_answers(ev.tasks, gold),
            ma.split_accuracy(ev, ma.modal_answers(ev.tasks, gold)),
            [],
            ["const"],
            bal,
        )
    )
    assert "| const | 0.500 ± 0.000 | 0.333 ± 0.000 |" in md
