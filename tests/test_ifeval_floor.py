"""experiments/ifeval_floor.py: IFEval accuracy beyond what responses that follow nothing pass,
on synthetic evaluation records over IFEval's real prompts."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import ifeval_floor as fl  # noqa: E402

from persyn.core.errors import InputError  # noqa: E402
from persyn.evaluate_ifeval import ifeval_prompt_set  # noqa: E402
from persyn.ifeval import follows  # noqa: E402


@pytest.fixture(scope="module")
def prompts():
    return ifeval_prompt_set(40)


def _records(root: Path, prompts, correct: dict) -> None:
    (root / "evals").mkdir(parents=True)
    lines = ["student,strategy,seed,eval_key,train_seconds"]
    for (arm, seed), c in correct.items():
        recs = [{"id": q.id, "prompt": q.text, "correct": bool(x)} for q, x in zip(prompts, c, strict=True)]
        (root / "evals" / f"{arm}-{seed}.json").write_text(json.dumps({"records": recs}))
        lines.append(f"smol,{arm},{seed},{arm}-{seed},60")
    (root / "results.csv").write_text("\n".join(lines) + "\n")


def test_the_floor_is_what_a_degenerate_response_passes_and_the_split_follows_it(tmp_path, prompts):
    passes = fl.degenerate_passes(prompts)
    floor = fl.floor_mask([q.id for q in prompts], passes)
    # the floor is exactly the prompts some degenerate response passes, checked directly
    direct = [any(all(follows(r(q.text), q.metadata["instruction_id_list"], q.metadata["kwargs"], q.text))
                  for r in fl.DEGENERATE.values()) for q in prompts]  # fmt: skip
    assert floor.tolist() == direct and 0 < floor.sum() < len(prompts)
    # an arm right exactly on the floor prompts, another exactly on the rest
    on_floor = floor.astype(int).tolist()
    _records(tmp_path, prompts, {("lazy", 0): on_floor, ("able", 0): [1 - x for x in on_floor]})
    res = fl.main([str(tmp_path), "--compare", "able:lazy", "--n-boot", "200"])
    assert res["accuracy"]["lazy"]["floor"] == [1.0] and res["accuracy"]["lazy"]["rest"] == [0.0]
    assert res["accuracy"]["able"]["rest"] == [1.0]
    (c,) = res["comparisons"]
    assert c["rest"]["mean"] == pytest.approx(1.0)
    assert c["all"]["mean"] == pytest.approx(float(np.mean(1 - floor)) - float(np.mean(floor)))
    assert set(res["floor_prompts"]) == {q.id for q, f in zip(prompts, floor, strict=True) if f}
    assert json.loads((tmp_path / "floor.json").read_text())["n_prompts"] == 40


def test_records_that_are_not_the_benchmark_are_refused():
    with pytest.raises(InputError, match=r"1 held-out prompt ids are not IFEval's \(e\.g\. 'q-7'\)"):
        fl.benchmark_prompts(["q-7"])
