"""``persyn demo``: the packaged config is valid with the packaged models, and the command runs
it into ``--output-dir`` (here with the config swapped for the tiny one, so it is fast)."""

import json

import yaml
from conftest import tiny_config
from typer.testing import CliRunner

from persyn.cli import app, commands
from persyn.config import load_config


def test_the_packaged_demo_config_is_valid_and_names_packaged_models():
    cfg = load_config(commands.demo_config_path())  # also resolves every model alias
    assert [t.name for t in cfg.teachers] == ["smollm2-direct", "terse-steps", "verbose-steps"]
    assert cfg.student.model == "smollm2-135m-instruct" and cfg.router.kind == "auto"


def test_demo_runs_its_config_into_the_output_dir(tiny_models, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_models, tmp_path)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(commands, "demo_config_path", lambda: path)
    out = tmp_path / "elsewhere"
    res = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    lines = (out / "dataset.jsonl").read_text().splitlines()
    assert len(lines) == summary["n_dataset"] == 12
    assert not (tmp_path / "run").exists()  # the config's own output_dir is overridden
