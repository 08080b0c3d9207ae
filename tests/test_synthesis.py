"""Prompt synthesis (issue 14): NormSim, ROUGE dedup, majority quality, computed answers, the
generator's label mask, and ``persyn synthesize`` end to end against a local fake server."""

import hashlib
import json
import math
import re

import numpy as np
import pytest
from conftest import tiny_config

from persyn.config import parse_config
from persyn.core.errors import InputError, PersynError
from persyn.core.records import Generation, Prompt, ScoreItem
from persyn.pipeline import Pipeline
from persyn.prompts import load_prompts
from persyn.router.embeddings import PromptEncoder
from persyn.runtime.embeddings import prompt_embeddings
from persyn.runtime.scores import majority_golds
from persyn.scoring.quality import MajorityScorer
from persyn.synthesis.answers import computed_answer, majority_answer
from persyn.synthesis.dedup import RougeDedup, cosine_duplicates
from persyn.synthesis.nomad import generator_example, generator_examples, parse_generated
from persyn.synthesis.normsim import normsim, novelty, percentile_band, relevance
from persyn.synthesis.self_instruct import fewshot_request, parse_fewshot
from persyn.testing.fake_openai import FakeOpenAIServer


def _unit(rng, n, d=6):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_normsim_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    target, x = _unit(rng, 7), _unit(rng, 5)
    for p in (1.0, 2.0, 3.0):
        direct = [sum(abs(float(t @ v)) ** p for t in target) ** (1 / p) for v in x]
        assert np.allclose(normsim(target, x, p), direct)
    nearest = [max(abs(float(t @ v)) for t in target) for v in x]
    assert np.allclose(normsim(target, x, math.inf), nearest)
    assert np.allclose(novelty(target, x), 1 - np.array(nearest))
    assert np.allclose(novelty(target, target), 0.0)  # a seed is not novel against itself


def test_normsim_rejects_bad_input():
    rng = np.random.default_rng(1)
    with pytest.raises(InputError, match="target set is empty"):
        normsim(np.zeros((0, 6)), _unit(rng, 2))
    with pytest.raises(InputError, match="width"):
        normsim(_unit(rng, 3, 6), _unit(rng, 2, 4))
    with pytest.raises(InputError, match="p must be"):
        normsim(_unit(rng, 3), _unit(rng, 2), 0.5)


def test_percentile_band_keeps_the_middle():
    values = np.arange(1.0, 101.0)  # 1..100
    kept = percentile_band(values, 25, 75)
    assert values[kept].min() == 26 and values[kept].max() == 75 and kept.sum() == 50
    with pytest.raises(InputError, match="0 <= low < high <= 100"):
        percentile_band(values, 80, 20)


def test_rouge_dedup_drops_near_duplicates_of_seeds_and_of_kept():
    d = RougeDedup(0.7, seen=["What is 12 plus 30 minus 7?"])
    assert not d.add("What is 12 plus 30 minus 8?")  # 6 of 7 words shared with the seed
    assert d.add("A train leaves at noon and travels 60 km per hour; how far by 3 pm?")
    assert not d.add("A train leaves at noon and travels 60 km per hour; how far by 4 pm?")
    assert d.add("Spell the word garden backwards.")
    assert d.kept[1:] == [
        "A train leaves at noon and travels 60 km per hour; how far by 3 pm?",
        "Spell the word garden backwards.",
    ]
    loose = RougeDedup(0.95, seen=["What is 12 plus 30 minus 7?"])
    assert loose.add("What is 12 plus 30 minus 8?")  # below a looser threshold


def test_cosine_duplicates_greedy_in_order():
    e = np.array([[1.0, 0.0], [0.999, 0.0447], [0.0, 1.0], [0.6, 0.8]])
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    assert cosine_duplicates(e, 0.95).tolist() == [False, True, False, False]
    assert cosine_duplicates(e[2:], 0.95, seen=e[2:3]).tolist() == [True, False]


def test_computed_answer_evaluates_the_one_expression():
    assert computed_answer("What is 12 + 7 - 30?") == "-11"
    assert computed_answer("Compute 1/4 + 1/2.") == "3/4"
    assert computed_answer("What is (3 + 4) * 2?") == "14"
    assert computed_answer("No numbers here.") is None
    assert computed_answer("What is 5 / 0?") is None
    assert computed_answer("Add 3 + 4, then 5 + 6.") is None  # two expressions: ambiguous
    assert computed_answer("Solve x^3 + 4x^2 = 4x^3.") is None  # algebra, not "3 + 4"
    assert (
        computed_answer("State the final answer to the following arithmetic problem: 23 + 60 - 71 =") == "12"
    )


def test_majority_answer_counts_equivalent_answers_and_refuses_ties():
    m = majority_answer(["#### 42", "The answer is 42.", "#### 41"])
    assert (m.answer, m.votes, m.voters) == ("42", 2, 3) and m.agreement == pytest.approx(2 / 3)
    half = majority_answer(["#### 0.5", "#### 1/2", "#### 3"])
    assert half.votes == 2 and half.answer is not None
    tie = majority_answer(["#### 42", "#### 41"])
    assert tie.answer is None and "tie between 42 (1), 41 (1)" in tie.note
    few = majority_answer(["#### 7", "no number at all"])
    assert few.answer is None and "1 parsable answer(s)" in few.note


def test_majority_quality_scores_against_the_pseudo_gold():
    def gen(key, pid, teacher, text):
        return Generation(key=key, prompt_id=pid, teacher=teacher, response=text, status="ok")

    gens = [
        gen("k1", "p1", "a", "#### 12"),
        gen("k2", "p1", "b", "so 12"),
        gen("k3", "p1", "c", "#### 13"),
        gen("k4", "p2", "a", "#### 5"),
        gen("k5", "p2", "b", "#### 6"),
    ]
    answers, notes = majority_golds(gens)
    assert answers == {"k1": "12", "k2": "12", "k3": "12", "k4": None, "k5": None}
    assert "2 of 3 answers agree" in notes["k1"] and "tie" in notes["k4"]
    scorer = MajorityScorer(answers, notes, pool=["a", "b", "c"])
    rows = {
        k: (v, n)
        for batch in scorer.score([ScoreItem(g.key, "q", g.response) for g in gens])
        for k, v, n in batch
    }
    assert [rows[k][0] for k in ("k1", "k2", "k3", "k4", "k5")] == [1.0, 1.0, 0.0, None, None]
    assert "tie" in rows["k4"][1] and "agree" in rows["k1"][1]
    assert MajorityScorer({}, pool=["a", "b"]).key != MajorityScorer({}, pool=["a", "c"]).key


@pytest.mark.parametrize("chat", [True, False])
def test_generator_loss_covers_prompt_tokens_exactly_when_masking_is_off(tiny_models, chat):
    from persyn.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_models["chat" if chat else "base"])
    header, prompt, response = "Write a new problem.", "What is 2 + 3?", "2 + 3 = 5\n#### 5"
    off = generator_example(tok, header, prompt, response, prompt_masking=False)
    on = generator_example(tok, header, prompt, response, prompt_masking=True)
    assert off["input_ids"] == on["input_ids"]
    ids, m_off, m_on = off["input_ids"], off["completion_mask"], on["completion_mask"]
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    first = m_off.index(1)  # the header is never in the loss
    assert ids[first : first + len(prompt_ids)] == prompt_ids
    head = ids[:first]
    assert tok.decode(head).strip().endswith(("assistant", header)) or header in tok.decode(head)
    in_prompt = range(first, first + len(prompt_ids))
    assert all(m_off[i] == 1 for i in in_prompt) and all(m_on[i] == 0 for i in in_prompt)
    # outside the prompt text the two masks agree: response part 1, header 0
    assert [m for i, m in enumerate(m_off) if i not in in_prompt] == [
        m for i, m in enumerate(m_on) if i not in in_prompt
    ]
    rest = tok.decode([t for i, t in enumerate(ids) if m_on[i] == 1])
    assert rest.startswith("\n### Response:\n2 + 3 = 5") and prompt not in rest


def test_generator_examples_reject_empty_or_unanswered_seeds(tiny_models):
    from persyn.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_models["chat"])
    with pytest.raises(InputError, match="seed set is empty"):
        generator_examples(tok, "h", [], False)
    with pytest.raises(InputError, match="seed prompt 'p9' has no response"):
        generator_examples(tok, "h", [Prompt("p9", "What is 1 + 1?")], False)


def test_parsers_of_generator_output():
    assert parse_generated("What is 4 + 4?\n### Response:\n4 + 4 = 8\n#### 8") == (
        "What is 4 + 4?",
        "4 + 4 = 8\n#### 8",
    )
    assert parse_generated("What is 4 + 4? no marker") is None
    assert parse_generated("### Response:\n8") is None
    assert parse_fewshot(" What is 9 - 2?\n\nProblem 10: What is 1 + 1?") == "What is 9 - 2?"
    assert parse_fewshot("Problem 9: What is 9 - 2?\nProblem 10: x") == "What is 9 - 2?"
    assert parse_fewshot("   \n") is None
    import random

    req = fewshot_request([f"s{i}" for i in range(10)], ["k1", "k2", "k3"], 8, random.Random(0))
    lines = [ln for ln in req.splitlines() if ln.startswith("Problem")]
    assert len(lines) == 9 and lines[-1] == "Problem 9:"
    assert sum(ln.split(": ", 1)[1].startswith("k") for ln in lines[:-1]) == 2  # 8 // 4 from kept


def _reply(prompt: str) -> str:
    """A deterministic fake generator: one arithmetic problem per request text."""
    h = int(hashlib.sha256(prompt.encode()).hexdigest()[:12], 16)
    return f"What is {h % 90 + 10} + {h // 90 % 90 + 10} - {h // 8100 % 9 + 1}?"


def synthetic_config(tiny_models, tmp_path, url, **syn):
    cfg = tiny_config(tiny_models, tmp_path)
    seeds = cfg["prompts"]
    cfg["prompts"] = {"source": "synthetic"}
    cfg["calibration"] = {"size": 2}
    cfg["synthesis"] = {
        "generator": "self-instruct",
        "model": {
            "engine": "openai",
            "model": "fake-teacher",
            "base_url": url,
            "temperature": 1.0,
            "batch_size": 2,
        },
        "seeds": seeds,
        "count": 8,
        "samples": 1,
        "shots": 4,
        "answers": "computed",
        "embed_threshold": None,
        **syn,
    }
    return cfg


def test_synthesize_writes_prompts_with_computed_answers_and_resumes(tiny_models, tmp_path):
    server = FakeOpenAIServer(answer=_reply)
    try:
        data = synthetic_config(
            tiny_models,
            tmp_path,
            server.url,
            target=dict(source="jsonl", path=str(tmp_path / "prompts.jsonl")),
            relevance_band=[25, 75],
        )
        cfg = parse_config(data)
        with Pipeline(cfg) as p:
            s = p.synthesize()
        calls = server.requests
        rows = [
            json.loads(x)
            for x in (tmp_path / "run" / "synthetic" / "candidates.jsonl").read_text().splitlines()
        ]
        assert s.kept == len(rows) == 8 and s.samples == calls
        # novelty and relevance recomputed from the prompts: NormSim_inf to the seed set, NormSim_p
        # to the target set, on the run's own prompt encoder
        with Pipeline(cfg) as p:
            encoder = PromptEncoder.of(cfg.router)
            emb = prompt_embeddings(p.ctx, [r["prompt"] for r in rows], encoder)
            seeds = [x.text for x in load_prompts(cfg.synthesis.seeds, cfg.seed, require_answer=False)[0]]
            target = [x.text for x in load_prompts(cfg.synthesis.target, cfg.seed, require_answer=False)[0]]
            want_nov = novelty(prompt_embeddings(p.ctx, seeds, encoder), emb)
            want_rel = relevance(prompt_embeddings(p.ctx, target, encoder), emb, cfg.synthesis.normsim_p)
        np.testing.assert_allclose([r["novelty"] for r in rows], want_nov, atol=2e-6)
        np.testing.assert_allclose([r["relevance"] for r in rows], want_rel, atol=2e-6)
        assert np.ptp(want_nov) > 0  # the prompts differ, so a constant would not pass
        for r in rows:
            assert r["answer"] == computed_answer(r["prompt"]) and r["answer_source"] == "computed (sympy)"
            # the request that produced it, for Montessori-Instruct's pairs within a request
            assert r["group"] == r["from_sample"].rsplit(":s", 1)[0] and r["prompt"] in r["generated"]
            assert r["request"].rstrip().endswith(f"Problem {cfg.synthesis.shots + 1}:")  # few-shot request
        by_group = {}
        for r in rows:
            by_group.setdefault(r["group"], set()).add(r["request"])
        assert all(len(v) == 1 for v in by_group.values())  # one request text per group
        chosen = [
            json.loads(x) for x in (tmp_path / "run" / "synthetic" / "prompts.jsonl").read_text().splitlines()
        ]
        assert [c["id"] for c in chosen] == [r["id"] for r in rows if r["selected"]]
        assert 2 <= s.selected == len(chosen) < 8  # the 25-75 relevance band leaves some out
        with Pipeline(cfg) as p:  # all stored: nothing is asked again, the same prompts come out
            again = p.synthesize()
        assert server.requests == calls and again.kept == 8
        # the command prints the same counts (everything stored: nothing asked again)
        from typer.testing import CliRunner

        from persyn.cli import app

        cfg_path = tmp_path / "syn.yaml"
        cfg_path.write_text(json.dumps(data))
        res = CliRunner().invoke(app, ["synthesize", str(cfg_path)])
        assert res.exit_code == 0, res.output
        assert re.search(r"synthetic/prompts\.jsonl\(\d+s\)", "".join(res.output.split()))
        assert server.requests == calls
        # the synthetic prompts go through PerSyn unchanged
        with Pipeline(cfg) as p:
            p.prepare()
            got = p.store.prompts()
        assert sorted(x.text for x in got) == sorted(c["prompt"] for c in chosen)
        assert all(x.answer == computed_answer(x.text) for x in got)
    finally:
        server.close()


def test_synthesize_says_clearly_when_nothing_parses(tiny_models, tmp_path):
    server = FakeOpenAIServer(answer=lambda prompt: "Here is a problem about apples.")
    try:  # a nomad generator must write the response marker: without it nothing parses
        cfg = parse_config(
            synthetic_config(tiny_models, tmp_path, server.url, generator="nomad", max_requests=3)
        )
        with (
            Pipeline(cfg) as p,
            pytest.raises(
                PersynError,
                match=r"no usable prompt in 3 sample\(s\) \(3 unparsable.*it wrote: 'Here is a problem about apples.'",
            ),
        ):
            p.synthesize()
    finally:
        server.close()


def test_synthesize_rejects_an_empty_seed_set(tiny_models, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    cfg = synthetic_config(tiny_models, tmp_path, "http://127.0.0.1:9/v1")
    cfg["synthesis"]["seeds"] = {"source": "jsonl", "path": str(tmp_path / "empty.jsonl")}
    with Pipeline(parse_config(cfg)) as p, pytest.raises(InputError, match="empty.jsonl: no usable prompts"):
        p.synthesize()


def test_train_generator_cli_trains_on_prompt_tokens_only_without_masking(tiny_models, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from persyn.cli import app

    cfg = synthetic_config(tiny_models, tmp_path, "http://127.0.0.1:9/v1", generator="nomad")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    infos = {}
    for masking in ("off", "on"):
        out = tmp_path / f"gen-{masking}"
        res = CliRunner().invoke(
            app,
            [
                "train-generator",
                str(path),
                "--output",
                str(out),
                "--prompt-masking",
                masking,
                "--epochs",
                "1",
            ],
        )
        assert res.exit_code == 0, res.output
        infos[masking] = json.loads((out / "persyn_sft.json").read_text())
        assert (out / "config.json").exists() and infos[masking]["prompt_masking"] == (masking == "on")
    from persyn.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_models["chat"])
    prompt_tokens = sum(
        len(tok(q, add_special_tokens=False)["input_ids"]) for q, _ in __import__("conftest").PROBLEMS
    )
    assert infos["off"]["loss_tokens"] - infos["on"]["loss_tokens"] == prompt_tokens
    bad = CliRunner().invoke(
        app, ["train-generator", str(path), "--output", str(tmp_path / "x"), "--prompt-masking", "maybe"]
    )
    assert bad.exit_code != 0 and "--prompt-masking must be 'on' or 'off', got 'maybe'" in bad.output


def test_paired_difference_matches_a_direct_computation():
    from persyn.experiment.paired import paired_difference

    rng = np.random.default_rng(5)
    a = (rng.random((3, 40)) < 0.6).astype(float)
    b = (rng.random((3, 40)) < 0.4).astype(float)
    got = paired_difference(a, b, n_boot=500, seed=9)
    d = a.mean(0) - b.mean(0)
    idx = np.random.default_rng(9).integers(0, 40, size=(500, 40))
    boot = d[idx].mean(1)
    assert got["mean"] == pytest.approx(a.mean() - b.mean())
    assert (got["prompt_low"], got["prompt_high"]) == pytest.approx(
        (np.percentile(boot, 2.5), np.percentile(boot, 97.5))
    )
    assert got["per_seed"] == pytest.approx(list(a.mean(1) - b.mean(1)))
    assert got["seed_std"] == pytest.approx(np.std(a.mean(1) - b.mean(1), ddof=1))
    same = paired_difference(a, a)
    assert same["mean"] == same["low"] == same["high"] == 0.0
    with pytest.raises(InputError, match="equal"):
        paired_difference(a, b[:, :10])


def test_a_resumed_synthesize_does_not_retry_failed_samples(tiny_models, tmp_path):
    # Every third request gets an empty reply (a failed sample). Retrying it on resume would draw
    # a new sample, change what is kept and so every later round's requests.
    calls = {"n": 0}

    def reply(prompt: str) -> str:
        calls["n"] += 1
        return "" if calls["n"] % 3 == 0 else _reply(prompt)

    server = FakeOpenAIServer(answer=reply)
    try:
        cfg = parse_config(synthetic_config(tiny_models, tmp_path, server.url))
        with Pipeline(cfg) as p:
            first = p.synthesize()
        assert first.failed > 0
        asked = server.requests
        with Pipeline(cfg) as p:
            again = p.synthesize()
        assert server.requests == asked
        assert (again.samples, again.failed, again.kept) == (first.samples, first.failed, first.kept)
    finally:
        server.close()
