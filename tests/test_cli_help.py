"""The CLI agrees with itself (issue 49): each stage command's help names the stage numbers of
the stage registry, help text shows no raw RST backticks, and report takes -o like the rest."""

import re

import pytest
from test_report import make_run
from typer.testing import CliRunner

import persyn.stages.calibrate  # noqa: F401 - each registers its stage
import persyn.stages.export  # noqa: F401
import persyn.stages.generate  # noqa: F401
import persyn.stages.route  # noqa: F401
import persyn.stages.score  # noqa: F401
import persyn.stages.train_router  # noqa: F401
from persyn.cli import app
from persyn.runtime.context import STAGES

COMMANDS = {
    "calibrate": ["calibrate", "score"],
    "train-router": ["train_router"],
    "route": ["route"],
    "generate": ["generate"],
    "export": ["export"],
}


def help_of(*args):
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return " ".join(res.output.replace("│", " ").split())


@pytest.mark.parametrize("command", COMMANDS)
def test_stage_numbers_in_help_match_the_stage_registry(command):
    m = re.search(r"Stages? (\d+)(?:-(\d+))? \(([a-z_, ]+)\)", help_of(command))
    assert m, help_of(command)
    names = COMMANDS[command]
    assert m.group(3).split(", ") == names
    numbers = [int(m.group(1))] + ([int(m.group(2))] if m.group(2) else [])
    assert numbers == sorted({STAGES[n][0] for n in names})


def test_help_shows_no_raw_backticks():
    for command in ("run", "synthesize", "influence", "select"):
        assert "``" not in help_of(command)


@pytest.mark.parametrize("args", [(), ("run",), ("select",), ("cache",), ("cache", "info")])
def test_flags_show_no_type_in_help(args):
    text = help_of(*args)
    assert "--help Show this message" in text and "<bool>" not in text


def test_report_takes_dash_o(tmp_path):
    run = make_run(tmp_path)
    out = tmp_path / "page.html"
    res = CliRunner().invoke(app, ["report", str(run), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_library_deprecation_warnings_are_logged_not_printed(monkeypatch, caplog):
    import logging
    import warnings

    from persyn.cli.commands import quiet_library_warnings

    printed = []  # what reaches the console's warning printer
    monkeypatch.setattr(warnings, "showwarning", lambda message, *a, **k: printed.append(str(message)))
    quiet_library_warnings()
    lib = "/x/site-packages/transformers/training_args.py"
    with caplog.at_level(logging.DEBUG, logger="py.warnings"), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn_explicit("`gradient_checkpointing` is deprecated", FutureWarning, lib, 1541)
        warnings.warn_explicit("your prompt file has 3 empty lines", UserWarning, "/x/persyn/prompts.py", 9)
        warnings.warn_explicit("renamed in v6", FutureWarning, "/home/me/my_script.py", 3)
    assert printed == ["your prompt file has 3 empty lines", "renamed in v6"]  # not a library's
    assert "gradient_checkpointing" in caplog.text
