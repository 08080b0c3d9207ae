"""A run says what it wrote (issue 49): a teacher that fails on every prompt stops the run with
its status and first line; the share of dataset lines that failed or skipped the quality check
and the share of each teacher's responses cut at max_new_tokens are in summary.json (matching
the store and the dataset) and in the console."""

import json

import pytest
from conftest import PROBLEMS, tiny_config

from persyn.cli.render import print_summary
from persyn.config import parse_config
from persyn.core.errors import PersynError
from persyn.engines.http import first_line
from persyn.pipeline import Pipeline
from persyn.testing.fake_openai import FakeOpenAIServer

ANSWERS = dict(PROBLEMS)


def served(fault_of):
    return FakeOpenAIServer(
        answer=lambda user: f"#### {ANSWERS.get(user, '0')}",
        usage=lambda user, text: (10, 3),
        fault_of=fault_of,
        model="tiny-teacher",
    )


def served_teacher(url):
    return dict(
        name="served", engine="openai", base_url=url, model="tiny-teacher", timeout=2.0, max_retries=1
    )


def test_short_failure_reasons():
    page = "<!DOCTYPE html>\n<html><head><title>501 Not Implemented</title></head><body>x</body></html>"
    assert first_line(page) == "501 Not Implemented"
    assert first_line('{"error": {"message": "model not found", "type": "x"}}') == "model not found"
    assert first_line('{"detail": "Not Found"}') == "Not Found"
    assert first_line("") == "(empty body)"
    assert first_line("x" * 300) == "x" * 119 + "…"


def test_a_teacher_that_fails_on_every_prompt_stops_the_run(tiny_models, tmp_path):
    with served(lambda user: "501") as server:
        cfg = tiny_config(tiny_models, tmp_path, n=6)
        cfg["teachers"][2] = served_teacher(server.url)
        with Pipeline(parse_config(cfg)) as p:
            with pytest.raises(PersynError) as err:
                p.run()
            # the other teachers' responses are kept for the next run
            assert {g.teacher for g in p.store.generations(p.store.generation_keys()).values()} >= {"a", "b"}
    msg = str(err.value)
    assert "teacher 'served' failed on all 3 calibration request(s)" in msg
    assert "HTTP 501: 501 Not Implemented" in msg and "<html>" not in msg
    assert server.requests == 3  # a 501 is not retried


def test_summary_counts_unchecked_failed_and_cut_lines(tiny_models, tmp_path, capsys):
    cut = {PROBLEMS[i][0] for i in (0, 2, 3)}  # the served teacher's answers cut at max_tokens
    with served(lambda user: "length" if user in cut else None) as server:
        cfg = tiny_config(tiny_models, tmp_path, n=8)
        cfg["teachers"][2] = served_teacher(server.url)
        cfg["calibration"] = {"size": 4}
        with Pipeline(parse_config(cfg)) as p:
            summary = p.run()
            gens = p.store.generations(p.store.generation_keys())
            texts = {x.id: x.text for x in p.store.prompts()}
    lines = [json.loads(x) for x in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]

    q = summary.data_quality
    routed = [x for x in lines if x["source"] == "routed"]
    failed = [x for x in lines if x["quality"] is not None and x["quality"] < 1.0]
    assert routed and q["unknown"] == len(routed)  # without verify: no routed answer is checked
    assert q["failed"] == len(failed) and q["passed"] == len(lines) - len(routed) - len(failed)
    assert q["share_failed_or_unknown"] == pytest.approx((len(routed) + len(failed)) / len(lines))
    assert "verify:" in q["fix"]
    per = q["by_teacher"]
    assert sum(c["lines"] for t in per.values() for c in t.values()) == len(lines)
    for x in routed:
        assert per[x["teacher"]]["routed"]["unknown"] >= 1

    t = summary.truncation
    for name in ("a", "b", "served"):
        mine = [g for g in gens.values() if g.teacher == name and g.ok]
        assert t[name]["responses"] == len(mine)
        assert t[name]["cut"] == sum(g.finish_reason == "length" for g in mine)
    served_prompts = {g.prompt_id for g in gens.values() if g.teacher == "served"}
    assert t["served"]["cut"] == sum(texts[i] in cut for i in served_prompts) > 0
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["data_quality"] == q and on_disk["truncation"]["served"] == t["served"]

    # each line names its teacher's model; the card beside the dataset lists what made it
    models = {"a": tiny_models["chat"], "b": tiny_models["chat2"], "served": "tiny-teacher"}
    assert all(x["teacher_model"] == models[x["teacher"]] for x in lines)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "data_files: dataset.jsonl" in card and f"{len(lines)} SFT examples" in card
    for name, model in models.items():
        assert f"| {name} | `{model}` |" in card
        assert (
            card.split(f"| {name} | `{model}` |")[1].split("\n")[0].endswith(f"| {summary.routing[name]} |")
        )
    assert f"{q['passed']} passed, {q['failed']} failed, {q['unknown']} never checked" in card

    print_summary(summary, tmp_path / "run")
    out = " ".join(capsys.readouterr().out.split())
    bad = q["failed"] + q["unknown"]
    assert f"{bad} of {len(lines)} dataset lines" in out
    share = f"{t['served']['cut']} of {t['served']['responses']} responses"
    assert f"teacher 'served': {share}" in out


def test_a_verified_dropping_run_has_no_failed_or_unknown_line(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path, n=8, verify={"max_tries": 2})
    cfg["calibration"] = {"size": 4}
    with Pipeline(parse_config(cfg)) as p:
        summary = p.run()
    q = summary.data_quality
    assert q["lines"] == summary.n_dataset > 0
    assert q["passed"] == q["lines"] and q["share_failed_or_unknown"] == 0 and q["fix"] is None


def test_the_dataset_card_never_overwrites_a_users_readme(tmp_path):
    from persyn.core.card import MARKER, write_dataset_card

    assert write_dataset_card(tmp_path, f"{MARKER}\nv1") == tmp_path / "README.md"
    assert write_dataset_card(tmp_path, f"{MARKER}\nv2") == tmp_path / "README.md"  # its own: rewritten
    assert (tmp_path / "README.md").read_text().endswith("v2")
    (tmp_path / "README.md").write_text("my project\n")
    assert write_dataset_card(tmp_path, f"{MARKER}\nv3") == tmp_path / "dataset_card.md"
    assert (tmp_path / "README.md").read_text() == "my project\n"
