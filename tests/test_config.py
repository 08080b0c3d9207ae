import re
from pathlib import Path

import pytest
import yaml

from persyn.config import CalibrationConfig, load_config, parse_config
from persyn.core.errors import ConfigError, PersynError

BASE = {
    "output_dir": "runs/x",
    "student": {"model": "smollm2-135m-instruct"},
    "teachers": [
        {"name": "a", "engine": "transformers", "model": "smollm2-135m-instruct"},
        {"name": "reference", "engine": "reference"},
    ],
}


def cfg(**over):
    d = {**BASE, **over}
    return parse_config(d, "c.yaml")


def test_defaults_follow_the_paper():
    c = cfg()
    assert c.alpha == 0.4
    assert c.normalize == "minmax"
    assert c.calibration.size == 0.2
    assert c.teacher_names == ["a", "reference"]


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_unit_interval_names_the_field(alpha):
    with pytest.raises(ConfigError, match=r"c.yaml[\s\S]*alpha"):
        cfg(alpha=alpha)


def test_fewer_than_two_teachers():
    with pytest.raises(ConfigError, match="teachers: .*at least 2 teachers"):
        cfg(teachers=[BASE["teachers"][1]])


def test_duplicate_teacher_names():
    t = BASE["teachers"][1]
    with pytest.raises(ConfigError, match="duplicate teacher name 'reference'"):
        cfg(teachers=[t, t])


def test_unknown_engine_names_the_teacher_index():
    bad = [BASE["teachers"][0], {"name": "x", "engine": "magic"}]
    with pytest.raises(ConfigError, match=r"teachers\.1\.engine"):
        cfg(teachers=bad)


def test_unknown_model_alias_names_the_field():
    bad = [BASE["teachers"][0], {"name": "x", "engine": "transformers", "model": "no-such-alias"}]
    with pytest.raises(ConfigError, match=r"teachers\.1\.model: unknown model 'no-such-alias'"):
        cfg(teachers=bad)


def test_hf_id_and_local_path_are_accepted(tmp_path):
    c = cfg(student={"model": str(tmp_path)}, router={"encoder": "sentence-transformers/all-MiniLM-L6-v2"})
    assert c.router.encoder.startswith("sentence-transformers/")


def test_transformers_teacher_needs_a_model():
    with pytest.raises(ConfigError, match=r"teachers\.0.*needs 'model'"):
        cfg(teachers=[{"name": "a", "engine": "transformers"}, BASE["teachers"][1]])


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigError, match="alpah"):
        cfg(alpah=0.3)


def test_type_error_gives_the_field_path():
    with pytest.raises(ConfigError, match=r"teachers\.0\.max_new_tokens"):
        cfg(teachers=[{**BASE["teachers"][0], "max_new_tokens": "many"}, BASE["teachers"][1]])


@pytest.mark.parametrize("size", [0, 1, -3, 1.5, 0.0])
def test_calibration_size_invalid(size):
    with pytest.raises(ConfigError, match="calibration.size"):
        cfg(calibration={"size": size})


def test_calibration_count_against_prompt_set():
    assert CalibrationConfig(size=0.25).count(10) == 3
    assert CalibrationConfig(size=4).count(10) == 4
    assert CalibrationConfig(size=1.0).count(7) == 7
    with pytest.raises(ConfigError, match="calibration.size: 11 asks for 11.*only 10"):
        CalibrationConfig(size=11).count(10)
    with pytest.raises(ConfigError, match="at least 2"):
        CalibrationConfig(size=0.05).count(10)


def test_load_config_yaml_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("output_dir: x\nteachers: [\n  - a\n")
    with pytest.raises(ConfigError, match=r"c.yaml: YAML syntax error at line \d+"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    p.write_text(yaml.safe_dump(BASE))
    assert load_config(p).student.model == "smollm2-135m-instruct"
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)


def test_students_list_names_and_one_form():
    c = cfg(student=None, students=[{"model": "HuggingFaceTB/SmolLM2-135M"}, {"model": "x", "name": "b"}])
    assert [s.name for s in c.students] == ["SmolLM2-135M", "b"] and c.student is c.students[0]
    with pytest.raises(ConfigError, match="either 'student'.*or 'students'"):
        cfg(students=[{"model": "x"}])
    with pytest.raises(ConfigError, match="students: duplicate name 'b'"):
        cfg(student=None, students=[{"model": "x", "name": "b"}, {"model": "y", "name": "b"}])
    with pytest.raises(ConfigError, match=r"students.0.name: .\.\./evil. is not a valid name:.*e.g. .evil."):
        cfg(student=None, students=[{"model": "x", "name": "../evil"}])


def test_router_kind_auto_is_the_default_and_kinds_are_checked():
    c = cfg()
    assert c.router.kind == "auto" and c.router.cv_kinds() == ["prior", "bt-linear", "knn"]
    assert cfg(router={"kind": "bt-encoder"}).router.cv_kinds() == ["prior", "bt-encoder"]
    with pytest.raises(ConfigError, match="router.auto_kinds.*unknown router kind 'svm'"):
        cfg(router={"auto_kinds": ["prior", "svm"]})


def test_every_refused_value_is_shown_and_secrets_are_not():
    with pytest.raises(ConfigError) as err:
        cfg(
            teachers=[
                {"name": "a", "engine": "telepathy"},
                {
                    "name": "b",
                    "engine": "openai",
                    "model": "m",
                    "base_url": "https://user:hunter2@host/v1",
                    "api_key_env": "sk-live-1234567890abcdef",
                    "temperature": "hot",
                },
            ],
            normalize="cube",
            alpha=7,
        )
    text = str(err.value)
    assert "teachers.0.engine: unknown engine 'telepathy'" in text and "(given: telepathy)" in text
    assert "normalize: Input should be 'minmax' or 'zscore' (given: cube)" in text
    assert "alpha: Input should be less than or equal to 1 (given: 7)" in text
    assert "teachers.1.temperature:" in text and "(given: hot)" in text
    # A key pasted where an environment variable's name belongs, and URL credentials, are never echoed.
    assert "sk-live" not in text and "hunter2" not in text


def test_redact_masks_keys_and_url_credentials_and_shortens():
    from persyn.config import redact

    assert redact("https://user:pw@h/v1") == "https://***@h/v1"
    assert redact("sk-abc-123", "teachers.0.api_key_env").startswith("<redacted")
    assert redact("OPENAI_API_KEY", "teachers.0.api_key_env") == "OPENAI_API_KEY"
    assert (
        redact({"api_key_env": "sk-1", "base_url": "http://u:p@x"})
        == "{'api_key_env': '<redacted: looks like a key, not the name of an environment variable>', 'base_url': 'http://***@x'}"[
            :77
        ]
        + "..."
    )
    assert len(redact("x" * 500)) == 80


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("../../evil", "evil"), ("org/model", "org-model"), ("a b", "a-b"), (".hidden", "hidden")],
)
def test_names_that_could_escape_a_directory_are_refused_with_a_valid_form(name, suggestion):
    with pytest.raises(
        ConfigError,
        match=rf"teachers.0.name: teacher name '{re.escape(name)}' is not a valid name.*e.g. '{suggestion}'",
    ):
        cfg(teachers=[{"name": name, "engine": "reference"}, BASE["teachers"][1]])


def test_influence_sft_is_typed_and_checked_with_the_config():
    influence = {"warmup": "w.jsonl", "reference": "r.jsonl"}
    assert (
        cfg(influence=influence).influence.sft.key_fields()
        == cfg(
            influence={**influence, "sft": {"epochs": 1, "learning_rate": 5e-6}}
        ).influence.sft.key_fields()
    )  # the default: Montessori-Instruct's 1 epoch at lr 5e-6
    with pytest.raises(ConfigError, match=r"influence\.sft\.epochs: Input should be greater than 0"):
        cfg(influence={**influence, "sft": {"epochs": 0}})


def test_a_misspelled_key_gets_the_nearest_known_key_at_its_place():
    from persyn.config import parse_config
    from persyn.core.errors import ConfigError

    cfg = {
        "output_dir": "x",
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {"name": "a", "engine": "reference"},
            {"name": "b", "engine": "transformers", "model": "smollm2-135m-instruct", "max_new_token": 3},
        ],
        "calibraton": {"size": 3},
        "router": {"knn_kk": [1]},
        "verify": {"max_try": 2},
        "zzzz": 1,
    }
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    text = str(err.value)
    assert (
        "teachers.1.max_new_token: Extra inputs are not permitted (given: 3) — did you mean 'max_new_tokens'?"
        in text
    )
    assert "router.knn_kk: Extra inputs are not permitted (given: [1]) — did you mean 'knn_k'?" in text
    assert "verify.max_try: Extra inputs are not permitted (given: 2) — did you mean 'max_tries'?" in text
    assert "calibraton: Extra inputs are not permitted — did you mean 'calibration'?" in text
    assert "zzzz: Extra inputs are not permitted (given: 1)\n" in text + "\n"  # nothing near: no guess


def test_persyn_version():
    from typer.testing import CliRunner

    from persyn import __version__
    from persyn.cli import app

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"persyn {__version__}"


def test_a_reference_teacher_without_solutions_is_refused_unless_asked_for(tmp_path):
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "prompts": {"source": "jsonl", "path": "problems.jsonl"},  # answers only
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {"name": "smollm2", "engine": "transformers", "model": "smollm2-135m-instruct"},
            {"name": "ref", "engine": "reference"},
        ],
    }
    with pytest.raises(ConfigError, match="teacher 'ref': engine 'reference' with style 'solution'") as err:
        parse_config(cfg)
    assert "prompts.solution_field is not set" in str(err.value) and "style: answer" in str(err.value)
    explicit = dict(
        cfg, teachers=[cfg["teachers"][0], {"name": "ref", "engine": "reference", "style": "answer"}]
    )
    assert parse_config(explicit).teachers[1].style == "answer"
    with_solutions = dict(cfg, prompts={**cfg["prompts"], "solution_field": "solution"})
    assert parse_config(with_solutions).prompts.solution_field == "solution"
    # a task set writes its own solutions: nothing to refuse
    assert parse_config(dict(cfg, prompts={"source": "reasoning_gym", "task": "chain_sum", "size": 4}))


def test_input_paths_resolve_from_the_config_file_folder(tmp_path, monkeypatch):
    from persyn.config import load_config
    from persyn.prompts import load_prompts

    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "data" / "problems.jsonl").write_text('{"prompt": "What is 2 + 3?", "answer": "5"}\n')
    (folder / "run.yaml").write_text(
        "output_dir: runs/mine\n"
        "prompts: {source: jsonl, path: data/problems.jsonl}\n"
        "student: {model: smollm2-135m-instruct}\n"
        "teachers:\n"
        "  - {name: a, engine: reference, style: answer}\n"
        "  - {name: b, engine: reference, style: terse}\n"
    )
    monkeypatch.chdir(tmp_path)  # run from elsewhere: the prompt file is still found
    cfg = load_config("project/configs/run.yaml")
    assert cfg.prompts.path == Path("project/configs/data/problems.jsonl")
    assert cfg.output_dir == Path("runs/mine")  # outputs stay where the command runs
    prompts, _ = load_prompts(cfg.prompts, 0)
    assert [p.answer for p in prompts] == ["5"]
    # a missing file is named by its resolved path
    (folder / "data" / "problems.jsonl").unlink()
    with pytest.raises(PersynError, match="project/configs/data/problems.jsonl"):
        load_prompts(load_config("project/configs/run.yaml").prompts, 0)
    # a dict's paths stay as given (no file to be relative to)
    as_dict = {
        "output_dir": "o",
        "prompts": {"source": "jsonl", "path": "data/problems.jsonl"},
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {"name": "a", "engine": "reference", "style": "answer"},
            {"name": "b", "engine": "reference", "style": "terse"},
        ],
    }
    assert load_config(as_dict).prompts.path == Path("data/problems.jsonl")


def test_experiment_input_paths_resolve_from_the_experiment_file_folder(tmp_path, monkeypatch):
    from persyn.experiment.config import load_experiment
    from persyn.experiment.runner import Experiment

    folder = tmp_path / "project" / "exp"
    folder.mkdir(parents=True)
    for name in ("train.jsonl", "held-out.jsonl"):
        (folder / name).write_text('{"prompt": "What is 2 + 3?", "answer": "5"}\n')
    (folder / "experiment.yaml").write_text(
        "output_dir: runs/exp\n"
        "run:\n"
        "  prompts: {source: jsonl, path: train.jsonl}\n"
        "  student: {model: smollm2-135m-instruct}\n"
        "  teachers:\n"
        "    - {name: a, engine: reference, style: answer}\n"
        "    - {name: b, engine: reference, style: terse}\n"
        "strategies: [persyn]\n"
        "variants: {other: {alpha: 0.5}}\n"
        "eval: {prompts: {source: jsonl, path: held-out.jsonl}}\n"
    )
    monkeypatch.chdir(tmp_path)  # run from elsewhere: every input file is still found
    exp = load_experiment("project/exp/experiment.yaml")
    assert exp.eval.prompts.path == Path("project/exp/held-out.jsonl")
    assert exp.output_dir == Path("runs/exp")  # outputs stay where the command runs
    runner = Experiment(exp, log=lambda _: None)
    for cfg in (runner.cfg, runner.seed_config(3)):
        assert cfg.prompts.path == Path("project/exp/train.jsonl")


def test_a_missing_dependency_names_the_feature_the_package_and_the_pip_line():
    from persyn.core.deps import require
    from persyn.core.errors import MissingAssetError

    require("json", "reading JSON", "pip install nothing")  # importable: nothing happens
    with pytest.raises(MissingAssetError) as err:
        require("no_such_module_xyz", "prompt synthesis", "pip install 'persyn[synth]'", "no-such-module")
    assert str(err.value) == (
        "prompt synthesis needs the package 'no-such-module': run `pip install 'persyn[synth]'`"
    )
