"""An experiment's HTML report (persyn.report.experiment) from its CSV files and plots."""

import base64
import csv
import html
import json
import re

import pytest
from typer.testing import CliRunner

from persyn.cli import app
from persyn.core.errors import InputError, PersynError
from persyn.report.experiment import write_experiment_report

RESULTS = ["student", "strategy", "seed", "accuracy", "correct", "n_eval", "n_train", "generations",
           "routing", "truncated", "train_seconds", "eval_key"]  # fmt: skip
PAIRED = ["student", "a", "b", "role", "mean", "low", "high", "p", "prompt_low", "prompt_high",
          "per_seed", "seed_std", "n_prompts", "n_seeds", "p_holm"]  # fmt: skip


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture
def exp_dir(tmp_path):
    d = tmp_path / "records"
    d.mkdir()
    _write(
        d / "results.csv",
        RESULTS,
        [
            ["s", "persyn", 0, 0.2, 20, 100, 50, 70, "", 0.01, 120, "k1"],
            ["s", "persyn", 1, 0.3, 30, 100, 50, 70, "", 0.03, 60, "k2"],
            ["s", "strongest", 0, 0.1, 10, 100, 50, 60, "", 0.0, 30, "k3"],
        ],
    )
    # The exploratory row comes first in the file; the report puts the primary one first.
    _write(
        d / "paired.csv",
        PAIRED,
        [
            ["s", "persyn", "random", "exploratory", 0.01, -0.02, 0.04, 0.5, -0.01, 0.03, "[0.0, 0.02]", 0.014, 100, 2, ""],
            ["s", "persyn", "strongest", "primary", 0.1, 0.05, 0.15, 0.01, 0.07, 0.13, "[0.1]", 0.0, 100, 1, 0.02],
        ],
    )  # fmt: skip
    (d / "tables.json").write_text(
        json.dumps({"accuracy": {"s": {"strongest": {"all": [0.1], "t1": [0.1]}, "persyn": {"all": [0.2, 0.3], "t1": [0.4, 0.6]}}}})
    )  # fmt: skip
    (d / "progress.txt").write_text("3/4 fine-tunes, 0:10 elapsed, ETA 0:03\n")
    (d / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\nnot-really-a-png")
    return d


def _rows(page):
    # Each table row's cells, tags stripped and entities unescaped.
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr)]
        for tr in re.findall(r"<tr>(.*?)</tr>", page)
    ]


def test_experiment_report_shows_the_csv_figures(exp_dir):
    page = write_experiment_report(exp_dir).read_text()
    rows = _rows(page)
    # mean ± sample std over seeds (0.2, 0.3: std 0.0707), mean truncation, SFT min summed.
    assert ["persyn", "2", "0.250 ± 0.071", "0.200, 0.300", "2.0%", "50", "70", "3.0"] in rows
    assert ["strongest", "1", "0.100 ± 0.000", "0.100", "0.0%", "50", "60", "0.5"] in rows
    primary = rows.index(["persyn − strongest", "primary", "+0.100 ✓", "[+0.050, +0.150]", "[+0.070, +0.130]", "+0.100", "0.000", "0.020 (Holm)"])  # fmt: skip
    exploratory = rows.index(["persyn − random", "exploratory", "+0.010", "[-0.020, +0.040]", "[-0.010, +0.030]", "+0.000, +0.020", "0.014", "0.500"])  # fmt: skip
    assert primary < exploratory
    # Per task in the results' strategy order, mean ± std of the per-seed values.
    tasks = rows.index(["strategy", "t1", "all"])
    assert rows[tasks + 1 : tasks + 3] == [
        ["persyn", "0.500 ± 0.141", "0.250 ± 0.071"],
        ["strongest", "0.100 ± 0.000", "0.100 ± 0.000"],
    ]
    assert base64.b64encode((exp_dir / "accuracy.png").read_bytes()).decode() in page
    assert "3/4 fine-tunes, 0:10 elapsed" in page

    (exp_dir / "progress.txt").write_text("done\n")  # a finished run: no partial note
    assert "Partial results" not in write_experiment_report(exp_dir).read_text()


def test_experiment_report_names_the_bad_cell(exp_dir):
    text = (exp_dir / "paired.csv").read_text().replace(",0.05,0.15,", ",0.05,oops,")
    (exp_dir / "paired.csv").write_text(text)
    with pytest.raises(InputError, match=r"paired\.csv:3: high is not a number: 'oops'"):
        write_experiment_report(exp_dir)
    (exp_dir / "paired.csv").unlink()
    with pytest.raises(PersynError, match="no results.csv and paired.csv"):
        write_experiment_report(exp_dir)


def test_persyn_report_on_an_experiment_directory(exp_dir):
    res = CliRunner().invoke(app, ["report", str(exp_dir), "--out", str(exp_dir / "page.html")])
    assert res.exit_code == 0, res.output
    assert ["persyn", "2", "0.250 ± 0.071", "0.200, 0.300", "2.0%", "50", "70", "3.0"] in _rows(
        (exp_dir / "page.html").read_text()
    )
