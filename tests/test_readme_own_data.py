"""The README's "Your own prompts and teachers in five minutes" runs as written: its commands,
read from the README itself, on the packaged example (``persyn init``) with the real packaged
models, from a directory of their own."""

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from persyn.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def own_data_commands() -> list[list[str]]:
    """The persyn command lines of the section's first bash block, comments removed."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Your own prompts and teachers in five minutes", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    lines = [ln.split("#", 1)[0].strip() for ln in block.splitlines()]
    return [shlex.split(ln)[1:] for ln in lines if ln.startswith("persyn ")]


def test_the_section_starts_from_init_and_runs_the_config_it_writes():
    commands = own_data_commands()
    assert commands[0][0] == "init" and ["run", "my-run/run.yaml"] in commands


@pytest.mark.integration
def test_own_data_section_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in own_data_commands():
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
    out = tmp_path / "runs" / "own-data"
    summary = json.loads((out / "summary.json").read_text())
    lines = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert summary["n_prompts"] == 16 and len(lines) == summary["n_dataset"] > 0
    # verify: drops what fails, so every line of the dataset passed the check
    assert summary["data_quality"]["passed"] == len(lines)
    assert (out / "README.md").exists() and (out / "report.html").exists()
    assert json.loads((out / "student" / "persyn_sft.json").read_text())["steps"] > 0
