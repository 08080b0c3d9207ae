"""persyn sft and persyn evaluate from the command line, on the tiny models."""

import json

from typer.testing import CliRunner

from persyn.cli import app


def test_sft_then_evaluate_commands(tiny_models, tmp_path):
    ds = tmp_path / "dataset.jsonl"
    ds.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"p{i}",
                    "messages": [
                        {"role": "user", "content": f"What is {i} + 1?"},
                        {"role": "assistant", "content": f"#### {i + 1}"},
                    ],
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    runner = CliRunner()
    model = tmp_path / "student"
    res = runner.invoke(
        app,
        [
            "sft",
            str(ds),
            "-o",
            str(model),
            "--model",
            tiny_models["chat"],
            "--epochs",
            "1",
            "--batch-size",
            "1",
            "--max-steps",
            "2",  # of the 4 an epoch has at batch size 1
            "--max-length",
            "32",
        ],
    )
    assert res.exit_code == 0, res.output
    info = json.loads((model / "persyn_sft.json").read_text())
    assert info["n_examples"] == 4  # every line of the dataset was trained on
    assert info["steps"] == 2 and info["settings"]["max_steps"] == 2 and info["settings"]["max_length"] == 32
    shown = " ".join(res.output.split())
    assert f"on {info['n_examples']} examples: 2 step(s)" in shown
    assert f"training loss {info['train_loss']:.4f} (TRL's mean over the run" in shown

    held_out = tmp_path / "eval.jsonl"
    held_out.write_text(json.dumps({"prompt": "What is 7 + 5?", "answer": "12"}) + "\n")
    out = tmp_path / "eval.json"
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(model),
            "--prompts",
            str(held_out),
            "--train",
            str(ds),
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(out.read_text())["summary"]
    assert summary["n"] == 1
    # the printed figure is the written one
    said = " ".join(res.output.split())
    assert f"accuracy {summary['accuracy']:.3f} ({summary['correct']}/1)" in said

    overlapping = tmp_path / "overlap.jsonl"
    overlapping.write_text(json.dumps({"prompt": "What is 2 + 1?", "answer": "3"}) + "\n")
    res = runner.invoke(app, ["evaluate", str(model), "--prompts", str(overlapping), "--train", str(ds)])
    assert res.exit_code == 2 and "overlaps the training prompts" in res.output

    res = runner.invoke(
        app,
        ["sft", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "x"), "--model", tiny_models["chat"]],
    )
    assert res.exit_code == 2 and "missing.jsonl" in res.output
    res = runner.invoke(app, ["sft", str(ds), "-o", str(tmp_path / "y"), "--method", "qlora"])
    assert res.exit_code == 2 and "method" in res.output


def test_max_steps_left_out_of_the_settings_keys_when_unset():
    from persyn.training.sft_config import SFTSettings

    assert "max_steps" not in SFTSettings().model_dump()  # fine-tune records keyed before stay valid
    assert SFTSettings(max_steps=3).model_dump()["max_steps"] == 3
