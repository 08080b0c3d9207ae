import json

import pytest

from persyn.config import PromptsConfig
from persyn.core.errors import InputError
from persyn.core.hashing import content_id
from persyn.prompts import load_prompts


def jsonl(tmp_path, lines, name="p.jsonl"):
    p = tmp_path / name
    p.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return p


def load(path, **kw):
    return load_prompts(PromptsConfig(source="jsonl", path=path, **kw), seed=0)


def test_jsonl_fields_ids_and_blank_lines(tmp_path):
    p = jsonl(
        tmp_path,
        [
            json.dumps({"prompt": "2+2?", "answer": 4, "src": "x"}),
            "",
            "  ",
            json.dumps({"prompt": "3+3?", "answer": "6"}),
        ],
    )
    prompts, report = load(p)
    assert [x.text for x in prompts] == ["2+2?", "3+3?"]
    assert prompts[0].answer == "4" and prompts[0].solution == "4"
    assert prompts[0].id == content_id("2+2?") and len(prompts[0].id) == 16
    assert prompts[0].metadata == {"src": "x"}
    assert report.empty == [] and report.duplicates == []


def test_malformed_json_names_file_and_line(tmp_path):
    p = jsonl(tmp_path, [json.dumps({"prompt": "a", "answer": 1}), '{"prompt": "b", "answer": '])
    with pytest.raises(InputError, match=r"p\.jsonl:2: malformed JSON"):
        load(p)


def test_missing_prompt_and_answer_fields(tmp_path):
    p = jsonl(tmp_path, [json.dumps({"question": "a", "answer": 1})])
    with pytest.raises(InputError, match=r"p\.jsonl:1: missing prompt field 'prompt'"):
        load(p)
    p = jsonl(tmp_path, [json.dumps({"prompt": "a", "answer": 1}), json.dumps({"prompt": "b"})])
    with pytest.raises(InputError, match=r"p\.jsonl:2: missing answer field 'answer'"):
        load(p)
    # Not needed (e.g. reward-model quality and no reference teacher): then it is optional.
    prompts, _ = load_prompts(PromptsConfig(source="jsonl", path=p), 0, require_answer=False)
    assert prompts[1].answer is None


def test_non_utf8_line(tmp_path):
    p = jsonl(tmp_path, [json.dumps({"prompt": "a", "answer": 1}), b'{"prompt": "\xff\xfe", "answer": 1}'])
    with pytest.raises(InputError, match=r"p\.jsonl:2: not valid UTF-8"):
        load(p)


def test_empty_and_duplicate_prompts_are_reported_not_kept(tmp_path):
    p = jsonl(
        tmp_path,
        [
            json.dumps({"id": "q1", "prompt": "a", "answer": 1}),
            json.dumps({"id": "q2", "prompt": "   ", "answer": 1}),
            json.dumps({"id": "q1", "prompt": "c", "answer": 1}),
            json.dumps({"id": "q3", "prompt": "d", "answer": 1}),
        ],
    )
    # The same id for a different prompt: an error naming both lines, unless asked otherwise.
    with pytest.raises(
        InputError, match=rf"{p}:3: prompt id 'q1' is also used at {p}:1 by a different prompt \('c' vs 'a'\)"
    ):
        load(p, id_field="id")
    prompts, report = load(p, id_field="id", on_duplicate="skip")
    assert [x.id for x in prompts] == ["q1", "q3"]
    assert report.empty == [f"{p}:2"]
    assert report.duplicates == [(f"{p}:3", f"{p}:1", "q1")]
    prompts, report = load(p, id_field="id", on_duplicate="rename")
    assert [(x.id, x.text) for x in prompts] == [("q1", "a"), ("q1~2", "c"), ("q3", "d")]
    assert report.renamed == [(f"{p}:3", "q1", "q1~2")] and report.duplicates == []


def test_an_exact_duplicate_line_is_skipped_with_a_notice(tmp_path):
    line = json.dumps({"id": "q1", "prompt": "a", "answer": 1})
    p = jsonl(tmp_path, [line, line])
    prompts, report = load(p, id_field="id")
    assert [x.id for x in prompts] == ["q1"] and report.duplicates == [(f"{p}:2", f"{p}:1", "q1")]


def test_size_caps_a_file_and_missing_file(tmp_path):
    p = jsonl(tmp_path, [json.dumps({"prompt": str(i), "answer": i}) for i in range(5)])
    prompts, _ = load(p, size=3)
    assert len(prompts) == 3
    with pytest.raises(InputError, match="prompt file not found"):
        load(tmp_path / "nope.jsonl")


def test_all_empty_is_an_error(tmp_path):
    p = jsonl(tmp_path, [json.dumps({"prompt": " ", "answer": 1})])
    with pytest.raises(InputError, match="no usable prompts"):
        load(p)


def test_reasoning_gym_prompts_carry_answer_and_worked_solution():
    prompts, _ = load_prompts(PromptsConfig(source="reasoning_gym", task="gsm_symbolic", size=4), seed=0)
    again, _ = load_prompts(PromptsConfig(source="reasoning_gym", task="gsm_symbolic", size=4), seed=0)
    assert len(prompts) == 4
    assert [p.id for p in prompts] == [p.id for p in again]
    for p in prompts:
        assert p.answer and p.solution.endswith(f"#### {p.answer}")
        assert "answer_cot" not in p.metadata


def test_unknown_reasoning_gym_task():
    with pytest.raises(InputError, match="prompts: task 'no_such_task'"):
        load_prompts(PromptsConfig(source="reasoning_gym", task="no_such_task", size=2), seed=0)


def test_a_mixed_reasoning_gym_set_follows_the_weights_and_pins_its_seed():
    from pydantic import ValidationError

    mix = [
        {"task": "chain_sum", "task_kwargs": {"min_terms": 2, "max_terms": 2}},
        {"task": "spell_backward", "weight": 2},
    ]
    cfg = PromptsConfig(source="reasoning_gym", size=9, tasks=mix, seed=5)
    prompts, _ = load_prompts(cfg, seed=0)
    tasks = [p.metadata["source_dataset"] for p in prompts]
    assert tasks == ["chain_sum"] * 3 + ["spell_backward"] * 6
    # prompts.seed, not the run seed, draws the set
    assert [p.id for p in load_prompts(cfg, seed=1)[0]] == [p.id for p in prompts]
    # every entry carries its task's metadata; only the non-numeric task is checked with it
    from persyn.scoring.tasks import task_of

    assert all("task_metadata" in p.metadata for p in prompts)
    assert [task_of(p.metadata) is not None for p in prompts] == [t == "spell_backward" for t in tasks]
    assert prompts[3].metadata["task_metadata"]["word"][::-1] == prompts[3].answer
    with pytest.raises(InputError, match=r"prompts.tasks.1: task 'nope'"):
        load_prompts(PromptsConfig(source="reasoning_gym", size=4, tasks=[mix[0], {"task": "nope"}]), 0)
    with pytest.raises(ValidationError, match="listed twice"):
        PromptsConfig(source="reasoning_gym", tasks=[mix[0], mix[0]])
    with pytest.raises(ValidationError, match="needs source 'reasoning_gym'"):
        PromptsConfig(source="jsonl", path="x.jsonl", tasks=mix)


def test_missing_solution_and_id_fields(tmp_path):
    p = jsonl(tmp_path, [json.dumps({"prompt": "a", "answer": 1})])
    with pytest.raises(
        InputError, match=r"p\.jsonl:1: missing solution field 'sol' \(prompts.solution_field\)"
    ):
        load(p, solution_field="sol")
    with pytest.raises(InputError, match=r"p\.jsonl:1: missing id field 'uid' \(prompts.id_field\)"):
        load(p, id_field="uid")


def test_prompts_sample_draws_a_seeded_subset_of_the_pool_in_source_order():
    from persyn.config import PromptsConfig
    from persyn.prompts import load_prompts

    pool_cfg = PromptsConfig(source="reasoning_gym", task="chain_sum", size=40, seed=7)
    pool, _ = load_prompts(pool_cfg, 0)
    sub = pool_cfg.model_copy(update={"sample": 10})
    a, _ = load_prompts(sub, 0)
    a_again, _ = load_prompts(sub, 0)
    b, _ = load_prompts(sub, 1)
    order = {p.id: i for i, p in enumerate(pool)}
    assert len(a) == len(b) == 10 and [p.id for p in a] == [p.id for p in a_again]
    assert {p.id for p in a} <= set(order) and {p.id for p in b} <= set(order)  # drawn from the pool
    assert [order[p.id] for p in a] == sorted(order[p.id] for p in a)  # in source order
    assert {p.id for p in a} != {p.id for p in b}  # another run seed, another draw
    # the pool itself does not depend on the run seed (prompts.seed pins it)
    assert [p.id for p in load_prompts(pool_cfg, 1)[0]] == [p.id for p in pool]
    assert len(load_prompts(pool_cfg.model_copy(update={"sample": 100}), 0)[0]) == 40
