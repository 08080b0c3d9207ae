"""The HTML report on a run directory written by hand: self-contained, escaped, and tolerant of
missing optional files; clear errors for missing or malformed required ones."""

import base64
import io
import json
import re

import matplotlib.pyplot as plt
import pytest

from persyn.core.errors import PersynError
from persyn.report.write import write_report

TEACHERS = ["alpha-cot", "beta-fewshot", "reference"]
EVIL = 'Is 3 < 4 & "5 > 2"? <script>alert(1)</script>'


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def make_run(tmp_path, quality=(0.0, 1.0, 1.0)):
    """A run with 3 calibration prompts (p0-p2) and 3 routed ones (p3-p5)."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    prompts = {f"p{i}": f"What is {i} + {i}?" for i in range(6)}
    prompts["p1"] = EVIL
    prompts["p4"] = "Tom & Anna <b>share</b> 3 apples"
    cal, dataset = [], []
    for i in range(3):
        pid = f"p{i}"
        rows = []
        for j, t in enumerate(TEACHERS):
            q = quality[(i + j) % 3]
            lv = -1.0 - 0.5 * j - 0.1 * i
            rows.append(
                {
                    "id": pid,
                    "teacher": t,
                    "prompt": prompts[pid],
                    "response": f"{t} says <i>{2 * i}</i>",
                    "error": None,
                    "quality": q,
                    "learnability": lv,
                    "quality_norm": q,
                    "learnability_norm": 1.0 - j / 2,
                    "reward": 0.6 * q + 0.4 * (1.0 - j / 2),
                    "oracle": False,
                }
            )
        best = max(rows, key=lambda r: r["reward"])
        best["oracle"] = True
        cal += rows
        dataset.append(
            {
                "id": pid,
                "messages": [
                    {"role": "user", "content": prompts[pid]},
                    {"role": "assistant", "content": best["response"]},
                ],
                "teacher": best["teacher"],
                "quality": best["quality"],
                "learnability": best["learnability"],
                "reward": best["reward"],
                "source": "calibration",
            }
        )
    routing = []
    for i, t in zip(range(3, 6), ["alpha-cot", "reference", "reference"], strict=True):
        pid = f"p{i}"
        routing.append(
            {"id": pid, "teacher": t, "coefficients": {n: (0.5 if n == t else -0.2) for n in TEACHERS}}
        )
        dataset.append(
            {
                "id": pid,
                "messages": [
                    {"role": "user", "content": prompts[pid]},
                    {"role": "assistant", "content": f"{t}: 5 < 6 & done"},
                ],
                "teacher": t,
                "quality": None,
                "learnability": None,
                "reward": None,
                "source": "routed",
            }
        )
    summary = {
        "n_prompts": 6,
        "n_calibration": 3,
        "n_routed": 3,
        "n_dataset": 6,
        "teachers": TEACHERS,
        "generations": 12,
        "generations_new": 12,
        "generation_calls": 12,
        "generations_generate_then_select": 18,
        "routing": {"alpha-cot": 1, "beta-fewshot": 1, "reference": 4},
        "routing_routed": {"alpha-cot": 1, "beta-fewshot": 0, "reference": 2},
        "oracle_calibration": {"alpha-cot": 0, "beta-fewshot": 1, "reference": 2},
        "calibration_means": {t: {"quality": 0.5, "learnability": -1.5, "valid": 3} for t in TEACHERS},
        "router_eval": {
            "requested": "auto",
            "kind": "knn",
            "reason": "knn beats prior",
            "folds": 3,
            "n": 3,
            "n_train": 3,
            "n_eval": 3,
            "top1": 0.8125,
            "regret": 0.0421,
            "best_single_teacher": {"name": "reference", "top1": 0.5, "regret": 0.125},
            "kinds": {
                "prior": {"top1": 0.5, "regret": 0.125, "regret_vs_prior": None, "gain": None},
                "knn": {
                    "top1": 0.8125,
                    "regret": 0.0421,
                    "regret_vs_prior": {"mean": -0.0829, "low": -0.15, "high": -0.01},
                    "gain": {"mean": 0.6632, "low": 0.2, "high": 0.95},
                },
            },
        },
        "tokens": {t: {"prompt": 10, "completion": 20} for t in TEACHERS},
        "cost_usd": {t: None for t in TEACHERS},
        "seeds": {"calibration": 0, "router": 0},
        "alpha": 0.4,
        "normalize": "minmax",
        "skipped_prompts": {},
        "failed": 1,
        "failures": [
            {"stage": "generate", "prompt_id": "p9", "teacher": "beta-fewshot", "error": "<too long>"}
        ],
        "seconds": {"calibrate": 1.5, "score": 0.25, "export": 0.01},
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    _jsonl(run / "dataset.jsonl", dataset)
    _jsonl(run / "calibration.jsonl", cal)
    _jsonl(run / "routing.jsonl", routing)
    return run


def images(page):
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def section(page, anchor):
    """The HTML of one section (its ``<h2 id=anchor>`` up to the next ``<h2``), images removed:
    base64 data holds digits and slashes, so text such as "2/3" could match inside one."""
    body = page.split(f'<h2 id="{anchor}">', 1)[1].split("<h2", 1)[0]
    return re.sub(r"<img [^>]*>", "", body)


def row_of(html, first_cell):
    """The cells' texts (tags stripped) of the table row whose first cell ends in ``first_cell``."""
    for tr in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, flags=re.S)]
        if cells and cells[0].endswith(first_cell):
            return cells
    raise AssertionError(f"no table row for {first_cell!r}")


def test_report_is_self_contained_and_escaped(tmp_path):
    run = make_run(tmp_path)
    path = write_report(run, sample=6)
    assert path == run / "report.html" and path.exists()
    page = path.read_text(encoding="utf-8")
    for t in TEACHERS:
        assert t in page
    imgs = images(page)
    assert len(imgs) >= 4  # routing, calibration, router eval, Oracle vs router
    # each is a real, non-blank image, and each plot is its own (no figure drawn twice)
    assert len(set(imgs)) == len(imgs)
    for b in imgs:
        pixels = plt.imread(io.BytesIO(base64.b64decode(b)), format="png")
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100 and pixels.std() > 0.01
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Is 3 &lt; 4 &amp; &quot;5 &gt; 2&quot;?" in page
    assert "Tom &amp; Anna &lt;b&gt;share&lt;/b&gt;" in page
    assert "&lt;i&gt;" in page and "<i>" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page
    # summary: generations, ratio, failed item (escaped), seconds
    assert "12 Route-then-Generate vs 18 Generate-then-Select" in page and "66.7%" in page
    assert "&lt;too long&gt;" in page
    assert "1.50" in page and "calibrate" in page
    # router kinds vs the prior, formatted, with their intervals; the routing kind marked
    assert row_of(page, "knn (routes)") == [
        "knn (routes)",
        "0.81",
        "0.042",
        "-0.083 [-0.150, -0.010]",
        "0.66 [0.20, 0.95]",
    ]
    assert row_of(page, "prior") == ["prior", "0.50", "0.125", "–", "n/a"]
    assert "router.kind: auto → knn: knn beats prior." in page
    # verifier quality → accuracy per teacher: each teacher is right on 2 of its 3 responses
    calibration = section(page, "calibration")
    assert "<th>correct</th><th>accuracy</th>" in calibration
    for t in TEACHERS:
        assert row_of(calibration, t)[1:5] == [
            "3",
            "0",
            "2/3",
            "66.7%",
        ]  # responses, failed, correct, accuracy
    assert "not available" not in page.split('id="strategies"')[0]
    assert 'id="strategies"' in page  # no strategies/: the section says so
    assert "not available" in page.split('id="strategies"')[1]


def test_sample_is_seeded_and_bounded(tmp_path):
    run = make_run(tmp_path)
    a = write_report(run, out=tmp_path / "a.html", sample=2, seed=3).read_text(encoding="utf-8")
    b = write_report(run, out=tmp_path / "b.html", sample=2, seed=3).read_text(encoding="utf-8")
    assert a == b
    assert a.count('class="sample"') == 2
    many = write_report(run, out=tmp_path / "c.html", sample=50).read_text(encoding="utf-8")
    assert many.count('class="sample"') == 6
    with pytest.raises(PersynError, match="sample"):
        write_report(run, sample=-1)


def test_missing_optional_files_still_give_a_page(tmp_path):
    run = make_run(tmp_path)
    (run / "calibration.jsonl").unlink()
    (run / "routing.jsonl").unlink()
    page = write_report(run).read_text(encoding="utf-8")
    assert "calibration.jsonl: not available" in page
    assert "routing.jsonl: not available" in page
    assert images(page)
    for t in TEACHERS:
        assert t in page


def test_continuous_quality_and_strategies(tmp_path):
    run = make_run(tmp_path, quality=(0.25, 0.5, 0.875))
    summary = json.loads((run / "summary.json").read_text())
    summary["router_eval"] = {
        "n_train": 3,
        "n_eval": 0,
        "top1": None,
        "regret": None,
        "best_single_teacher": None,
        "note": "fewer than 4 calibration prompts",
    }
    (run / "summary.json").write_text(json.dumps(summary))
    for name, routing in (
        ("random", {"alpha-cot": 2, "beta-fewshot": 2, "reference": 2}),
        ("strongest", {"alpha-cot": 0, "beta-fewshot": 0, "reference": 6}),
    ):
        d = run / "strategies" / name
        d.mkdir(parents=True)
        (d / "summary.json").write_text(
            json.dumps(
                {
                    "strategy": name,
                    "seed": 0,
                    "n_prompts": 6,
                    "n_calibration": 3,
                    "n_dataset": 6,
                    "teachers": TEACHERS,
                    "generations": 7,
                    "generations_generate_then_select": 18,
                    "routing": routing,
                    "details": {},
                    "failed": 0,
                    "failures": [],
                    "dataset_hash": "0" * 16,
                }
            )
        )
        (d / "dataset.jsonl").write_text("")
    page = write_report(run).read_text(encoding="utf-8")
    assert "mean quality" in page and "accuracy" not in page
    assert "fewer than 4 calibration prompts" in page
    strategies = page.split('id="strategies"')[1]
    assert "random" in strategies and "strongest" in strategies and "38.9%" in strategies


def test_missing_summary_or_dataset(tmp_path):
    run = make_run(tmp_path)
    (run / "summary.json").unlink()
    with pytest.raises(PersynError, match=r"summary\.json.*persyn (run|export)"):
        write_report(run)
    run2 = make_run(tmp_path / "two")
    (run2 / "dataset.jsonl").unlink()
    with pytest.raises(PersynError, match=r"dataset\.jsonl"):
        write_report(run2)
    with pytest.raises(PersynError, match="not a run directory"):
        write_report(tmp_path / "nowhere")


def test_malformed_lines_name_file_and_line(tmp_path):
    run = make_run(tmp_path)
    lines = (run / "dataset.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-5]
    (run / "dataset.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(PersynError, match=r"dataset\.jsonl:3: malformed JSON"):
        write_report(run)
    run2 = make_run(tmp_path / "two")
    with open(run2 / "routing.jsonl", "a") as f:
        f.write("[1, 2]\n")
    with pytest.raises(PersynError, match=r"routing\.jsonl:4: expected a JSON object"):
        write_report(run2)
    (run2 / "routing.jsonl").unlink()
    (run2 / "summary.json").write_text("{not json")
    with pytest.raises(PersynError, match=r"summary\.json: line 1: invalid JSON"):
        write_report(run2)
    assert not (run2 / "report.html").exists()


def test_odd_text_does_not_break_the_page(tmp_path):
    run = make_run(tmp_path)
    rows = [json.loads(x) for x in (run / "dataset.jsonl").read_text().splitlines()]
    rows[0]["messages"][1]["content"] = "bad \x17 bytes \ud800 and $x$ and ]]>"
    rows[0]["teacher"] = "odd$name"
    _jsonl(run / "dataset.jsonl", rows)
    page = write_report(run, sample=6).read_text(encoding="utf-8")
    assert "\\x17" in page and "\x17" not in page
    assert "odd$name" in page


def test_report_shows_unchecked_failed_and_cut_lines(tmp_path):
    run = make_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    summary["data_quality"] = {
        "pass_quality": 1.0,
        "lines": 6,
        "passed": 2,
        "failed": 1,
        "unknown": 3,
        "share_failed_or_unknown": 0.6667,
        "by_teacher": {
            "reference": {
                "calibration": {"lines": 2, "passed": 2, "failed": 0, "unknown": 0},
                "routed": {"lines": 2, "passed": 0, "failed": 0, "unknown": 2},
            },
            "alpha-cot": {"routed": {"lines": 1, "passed": 0, "failed": 0, "unknown": 1}},
            "beta-fewshot": {"calibration": {"lines": 1, "passed": 0, "failed": 1, "unknown": 0}},
        },
        "fix": "set verify: to check every routed answer",
    }
    summary["truncation"] = {
        "alpha-cot": {"responses": 4, "cut": 3, "share": 0.75, "max_new_tokens": 64, "warn": True},
        "beta-fewshot": {"responses": 3, "cut": 0, "share": 0.0, "max_new_tokens": 64, "warn": False},
        "reference": {"responses": 5, "cut": 0, "share": 0.0, "max_new_tokens": None, "warn": False},
    }
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    page = write_report(run).read_text(encoding="utf-8")
    assert "4 of 6 dataset lines (67%) failed the quality check (1) or were never checked (3)" in page
    assert "set verify: to check every routed answer" in page
    assert row_of(page, "beta-fewshot")[1:6] == ["calibration", "1", "0", "1", "0"]
    assert row_of(page, "all")[2:6] == ["6", "2", "1", "3"]
    assert "teacher &#x27;alpha-cot&#x27;: 3 of 4 responses (75%) were cut at max_new_tokens 64" in page
    assert "teacher &#x27;beta-fewshot&#x27;: 0 of" not in page
