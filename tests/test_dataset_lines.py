"""Dataset lines have one builder (``DatasetLine.of``), one writer (``core.io.jsonl_text``) and
one reader (``DatasetLine.from_dict``, over a file ``core.io.dataset_lines``); JSONL has one
reader (``core.io.jsonl_records``)."""

import json

import pytest

from persyn.core.errors import InputError
from persyn.core.io import dataset_lines, jsonl_records, jsonl_text
from persyn.core.records import DatasetLine, Prompt

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Und 2 + 2?"}]
PROMPTS = [
    Prompt("p1", "What is 0.1 + 0.2? ✓"),
    Prompt("p2", "system: Be brief.\n\nuser: Und 2 + 2?", messages=CHAT),
]


def built() -> list[DatasetLine]:
    return [
        DatasetLine.of(
            PROMPTS[0],
            "a",
            "0.30000000000000004 — «so»",
            "calibration",
            (1.0, -1.2345678901234567, 0.1 + 0.2),
        ),
        DatasetLine.of(PROMPTS[1], "b", "4", "routed"),
    ]


def test_a_line_is_written_as_it_always_was():
    # Key order, float repr, UTF-8 kept (not \\u escapes), one object per line.
    assert jsonl_text([x.to_dict() for x in built()]) == (
        '{"id": "p1", "messages": [{"role": "user", "content": "What is 0.1 + 0.2? ✓"}, '
        '{"role": "assistant", "content": "0.30000000000000004 — «so»"}], "teacher": "a", '
        '"quality": 1.0, "learnability": -1.2345678901234567, "reward": 0.30000000000000004, '
        '"source": "calibration"}\n'
        '{"id": "p2", "messages": [{"role": "system", "content": "Be brief."}, '
        '{"role": "user", "content": "Und 2 + 2?"}, {"role": "assistant", "content": "4"}], '
        '"teacher": "b", "quality": null, "learnability": null, "reward": null, "source": "routed"}\n'
    )


def test_a_line_round_trips_byte_identically(tmp_path):
    text = jsonl_text([x.to_dict() for x in built()])
    path = tmp_path / "dataset.jsonl"
    path.write_text(text, encoding="utf-8")
    lines = [line for _, _, line in dataset_lines(path)]
    assert lines == built()
    assert jsonl_text([x.to_dict() for x in lines]).encode() == path.read_bytes()
    # As SFT examples: a text line is (prompt, response), a chat line carries its turns.
    pairs = [line.pair for _, _, line in dataset_lines(path, training=True)]
    assert pairs == [(PROMPTS[0].text, built()[0].response), (PROMPTS[1].text, "4", CHAT)]


def test_the_reader_names_the_line_and_what_is_wrong(tmp_path):
    ok = built()[0].to_dict()
    cases = [
        ({"id": "x"}, "missing field 'messages'"),
        ({**ok, "messages": [{"role": "assistant", "content": "4"}]}, "'messages' has no user turn"),
        ({**ok, "messages": [{"role": "user", "content": " "}]}, "the user turn has empty or non-text"),
        ({k: v for k, v in ok.items() if k != "teacher"}, "missing field 'teacher'"),
    ]
    for row, why in cases:
        with pytest.raises(InputError, match=rf"<dataset>:2: not a dataset line: {why}"):
            list(dataset_lines([ok, row]))
    # A persyn line need not end with a response; an SFT example must, and needs no id.
    asked = {**ok, "messages": ok["messages"][:1]}
    assert next(dataset_lines([asked]))[2].response == ""
    with pytest.raises(InputError, match=r"<dataset>:1: 'messages' has no assistant turn"):
        list(dataset_lines([asked], training=True))
    follow_up = {**ok, "messages": [*ok["messages"], {"role": "user", "content": "Sure?"}]}
    assert next(dataset_lines([follow_up]))[2].conversation == follow_up["messages"]
    with pytest.raises(InputError, match=r"<dataset>:1: 'messages' must end with the assistant turn"):
        list(dataset_lines([follow_up], training=True))
    empty = {"messages": [*ok["messages"][:1], {"role": "assistant", "content": ""}]}
    with pytest.raises(InputError, match=r"<dataset>:1: the assistant turn has empty or non-text"):
        list(dataset_lines([empty], training=True))
    bare = {"messages": ok["messages"]}
    assert next(dataset_lines([bare], training=True))[2].pair == (PROMPTS[0].text, built()[0].response)


def test_jsonl_records_names_file_and_line_and_can_skip_a_torn_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(jsonl_text([{"a": 1}]) + "\n" + '{"url": "https://user:pw@host/x", "b": ' + "\n")
    with pytest.raises(InputError, match=r"x\.jsonl:3: malformed JSON: .*https://\*\*\*@host") as err:
        list(jsonl_records(path, "things"))
    assert "pw" not in str(err.value)
    assert list(jsonl_records(path, "things", skip_malformed=True)) == [(f"{path}:1", {"a": 1})]
    with pytest.raises(InputError, match=r"cannot read things"):
        list(jsonl_records(tmp_path / "missing.jsonl", "things"))
    assert jsonl_text([{"é": 1}], ascii_only=True) == json.dumps({"é": 1}) + "\n"
