"""Teacher settings per engine: the cache keys of stored responses stay the same, each engine
accepts its own settings only, and what enters a key is read from the fields' marks."""

from typing import Literal

import pytest

from persyn.config import make_teacher, parse_config
from persyn.core.errors import ConfigError
from persyn.core.records import Prompt
from persyn.engines.base import NOT_IN_KEY, TeacherSettings
from persyn.models import bos, fingerprint, loading
from persyn.runtime.keys import generation_key

TEACHERS = {
    "tf-default": dict(name="tf", engine="transformers", model="org/model-a", dtype="float32"),
    "tf-full": dict(
        name="tf-full",
        engine="transformers",
        model="org/model-a",
        family="fam",
        system_prompt="Be brief.",
        prompt_template="Q: {prompt}\nA:",
        temperature=0.7,
        top_p=0.9,
        max_new_tokens=64,
        batch_size=4,
        stop=["\n\n"],
        dtype="bfloat16",
        price_per_second=0.1,
        max_prompts=10,
        resources={"num_cpus": 2, "replicas": 2},
    ),
    "llama-default": dict(name="ll", engine="llamacpp", model="/models/a.gguf"),
    "llama-full": dict(
        name="ll-full",
        engine="llamacpp",
        model="/models/a.gguf",
        system_prompt="S",
        temperature=0.3,
        top_p=0.5,
        max_new_tokens=32,
        stop=["###"],
        batch_size=2,
        family="f",
    ),
    "openai-default": dict(name="oa", engine="openai", model="gpt-x", base_url="http://127.0.0.1:8000/v1"),
    "openai-full": dict(
        name="oa-full",
        engine="openai",
        model="gpt-x",
        base_url="http://h:1/v1",
        api_key_env="MY_KEY",
        concurrency=3,
        requests_per_minute=60,
        tokens_per_minute=1000,
        timeout=5,
        max_retries=1,
        price_input_per_million=1.0,
        price_output_per_million=2.0,
        temperature=0.5,
        system_prompt="S",
        prompt_template="{prompt}!",
        max_new_tokens=99,
        stop=["x"],
    ),
    "ref-default": dict(name="reference", engine="reference"),
    "ref-terse": dict(name="ref-terse", engine="reference", style="terse", family="f", max_prompts=3),
}

PROMPTS = {
    "text": Prompt("p1", "What is 2 + 3?", answer="5", solution="2 + 3 = 5\n#### 5"),
    "chat": Prompt(
        "p2",
        "USER: hi\n\nUSER: more",
        answer="1",
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
    ),
    "meta": Prompt(
        "p3",
        "Sum 1+2",
        answer="3",
        metadata={"expression": "1 + 2", "task_metadata": {"x": 1}, "synthesis_sample": 2},
    ),
}

# generation_key(...) of each (teacher, prompt, seed) above, computed on the code before teachers
# had per-engine settings (commit abd8a7a, one flat TeacherConfig): stores made then must keep
# hitting.
PINNED = {
    "llama-default/chat/0": "ee3d08d2a01d315e2a560b42",
    "llama-default/chat/7": "ee3d08d2a01d315e2a560b42",
    "llama-default/meta/0": "501ad82caf27bc10b9f3c0aa",
    "llama-default/meta/7": "501ad82caf27bc10b9f3c0aa",
    "llama-default/text/0": "6471837dcaa4678c8bbe0d1f",
    "llama-default/text/7": "6471837dcaa4678c8bbe0d1f",
    "llama-full/chat/0": "3de5bd79b89799952bbf57bd",
    "llama-full/chat/7": "58efd7ca675fdacd60f9eb94",
    "llama-full/meta/0": "f6851df3a9f0fcd04fe5dbe0",
    "llama-full/meta/7": "813676f8704970c21c954ea9",
    "llama-full/text/0": "a1312cf2393c056bfef7c41a",
    "llama-full/text/7": "a977d4a716c3641028bb0308",
    "openai-default/chat/0": "01f152ec84f189185dac79aa",
    "openai-default/chat/7": "01f152ec84f189185dac79aa",
    "openai-default/meta/0": "aa8f4ec91dfbcbcb2db11a68",
    "openai-default/meta/7": "aa8f4ec91dfbcbcb2db11a68",
    "openai-default/text/0": "6439e010f3e4f1786b5f6aec",
    "openai-default/text/7": "6439e010f3e4f1786b5f6aec",
    "openai-full/chat/0": "0d3326c46aa3584b69c35618",
    "openai-full/chat/7": "7b500f6b98977407ff9ea388",
    "openai-full/meta/0": "883b9b8be8a96cd7920f7734",
    "openai-full/meta/7": "e2819d6c40e94448e90cb596",
    "openai-full/text/0": "45535de433bf413de15a1bc1",
    "openai-full/text/7": "a152ba246345053318106774",
    "ref-default/chat/0": "af80a706df43338dc70ca908",
    "ref-default/chat/7": "af80a706df43338dc70ca908",
    "ref-default/meta/0": "ff55b76db0cac5dea8fa8a3a",
    "ref-default/meta/7": "ff55b76db0cac5dea8fa8a3a",
    "ref-default/text/0": "35c7d77b33692977da1a9a42",
    "ref-default/text/7": "35c7d77b33692977da1a9a42",
    "ref-terse/chat/0": "79cf0967331ee94a52247bd2",
    "ref-terse/chat/7": "79cf0967331ee94a52247bd2",
    "ref-terse/meta/0": "939d142a9744197b4140d86d",
    "ref-terse/meta/7": "939d142a9744197b4140d86d",
    "ref-terse/text/0": "65f1bdd13404f7b2f9891d66",
    "ref-terse/text/7": "65f1bdd13404f7b2f9891d66",
    "tf-default/chat/0": "0f0075aa63ea9b4489103310",
    "tf-default/chat/7": "0f0075aa63ea9b4489103310",
    "tf-default/meta/0": "19092dd5bf5eff8b33d9ac03",
    "tf-default/meta/7": "19092dd5bf5eff8b33d9ac03",
    "tf-default/text/0": "9dc44148e5c1eac898cf2086",
    "tf-default/text/7": "9dc44148e5c1eac898cf2086",
    "tf-full/chat/0": "925bf0709a2af4fbd22e82d3",
    "tf-full/chat/7": "b02396fca43a97f1dc040766",
    "tf-full/meta/0": "859e6697c83f929fdb2080bb",
    "tf-full/meta/7": "ff7fe6f3be6c28d3ed2c9a22",
    "tf-full/text/0": "c566779799d55319a6dca57c",
    "tf-full/text/7": "61b3d9ccdc0b91ea00b05e8d",
}


@pytest.fixture
def fixed_assets(monkeypatch):
    # What the weights and the machine add to a key, made constant: the pins test the settings.
    monkeypatch.setattr(fingerprint, "model_fingerprint", lambda ref: f"weights-of:{ref}")
    monkeypatch.setattr(bos, "bos_policy_key", lambda ref: "rule:bos")
    monkeypatch.setattr(loading, "dtype_key", lambda s: [] if s == "float32" else ["dtype", s])


def test_generation_keys_are_those_of_the_flat_teacher_config(fixed_assets):
    got = {
        f"{tn}/{pn}/{seed}": generation_key(make_teacher(t), p, seed)
        for tn, t in TEACHERS.items()
        for pn, p in PROMPTS.items()
        for seed in (0, 7)
    }
    assert got == PINNED


def test_what_enters_a_key_is_read_from_the_field_marks(fixed_assets):
    t = TEACHERS["openai-full"]
    key = generation_key(make_teacher(t), PROMPTS["text"], 0)
    cls = type(make_teacher(t))
    marked = {n for n, f in cls.model_fields.items() if NOT_IN_KEY in f.metadata}
    assert {"batch_size", "concurrency", "api_key_env", "timeout", "resources"} <= marked
    assert generation_key(make_teacher(t, batch_size=1, concurrency=1, timeout=1), PROMPTS["text"], 0) == key
    assert generation_key(make_teacher(t, top_p=0.5), PROMPTS["text"], 0) != key
    assert generation_key(make_teacher(t, base_url="http://other/v1"), PROMPTS["text"], 0) != key


def run_with(teacher: dict) -> dict:
    return {
        "output_dir": "out",
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [teacher, {"name": "reference", "engine": "reference"}],
    }


def test_a_setting_of_another_engine_is_an_error_naming_teacher_field_and_engine():
    with pytest.raises(ConfigError) as err:
        parse_config(run_with({"name": "ref2", "engine": "reference", "temperature": 0.7}))
    assert (
        "teachers.0.temperature: teacher 'ref2' has engine 'reference', which has no setting "
        "'temperature' (a setting of engines 'transformers', 'openai', 'llamacpp') (given: 0.7)"
    ) in str(err.value)
    with pytest.raises(
        ConfigError, match="teachers.0.style: teacher 'tf' has engine 'transformers'.*engine 'reference'"
    ):
        parse_config(run_with({"name": "tf", "engine": "transformers", "model": "gpt2", "style": "terse"}))
    with pytest.raises(ConfigError, match="teachers.0.stylo: Extra inputs are not permitted"):  # a typo
        parse_config(run_with({"name": "tf", "engine": "transformers", "model": "gpt2", "stylo": 1}))


def test_a_flat_run_config_json_of_before_still_loads():
    # The teachers of a run_config.json written by the flat TeacherConfig: every engine's settings,
    # the other engines' at their defaults (which mean nothing and are dropped).
    flat = {
        "model": None,
        "family": None,
        "system_prompt": None,
        "prompt_template": None,
        "temperature": 0.0,
        "top_p": 1.0,
        "max_new_tokens": 256,
        "batch_size": 8,
        "stop": [],
        "style": "solution",
        "dtype": "auto",
        "base_url": None,
        "api_key_env": None,
        "concurrency": 8,
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "timeout": 60.0,
        "max_retries": 5,
        "price_input_per_million": None,
        "price_output_per_million": None,
        "price_per_second": None,
        "max_prompts": None,
        "resources": {"num_cpus": 1.0, "num_gpus": 0.0, "replicas": 1},
    }
    data = run_with({**flat, "name": "tf", "engine": "transformers", "model": "smollm2-135m-instruct"})
    data["teachers"][1] = {**flat, "name": "reference", "engine": "reference", "style": "terse"}
    cfg = parse_config(data)
    assert [type(t).__name__ for t in cfg.teachers] == ["TransformersTeacher", "ReferenceTeacher"]
    assert cfg.teachers[1].style == "terse"


def pinned_run() -> dict:
    """The run config whose whole-run key is pinned (``PINNED_KEY``)."""
    return {
        "output_dir": "/tmp/x",
        "student": {"model": "smollm2-135m-instruct"},
        "teachers": [
            {
                "name": "a",
                "engine": "transformers",
                "model": "smollm2-135m-instruct",
                "temperature": 0.5,
                "dtype": "float32",
                "resources": {"num_cpus": 2},
            },
            {"name": "b", "engine": "openai", "model": "m", "base_url": "http://h/v1", "concurrency": 2},
            {"name": "c", "engine": "llamacpp", "model": "smollm2-135m-instruct", "stop": ["x"]},
            {"name": "reference", "engine": "reference", "style": "terse", "max_prompts": 4},
        ],
        "synthesis": {
            "model": {"engine": "transformers", "model": "smollm2-135m-instruct", "temperature": 1.0},
            "seeds": {"source": "reasoning_gym", "size": 5},
        },
    }


#: Its key, computed at abd8a7a as stable_hash(cfg.model_dump(mode="json", exclude=WHERE_IT_RUNS)).
PINNED_KEY = "7a76bb5e9e225232ba4bd846"


def test_the_whole_run_key_dump_is_that_of_the_flat_teacher_config():
    # An experiment's sweep point key hashes the whole run config.
    from persyn.core.hashing import stable_hash

    assert stable_hash(parse_config(pinned_run()).key_dump()) == PINNED_KEY


class NewSettings(TeacherSettings):
    """A plug-in engine added after the keys were made, with a setting of its own."""

    engine: Literal["new-engine"] = "new-engine"
    shard_url: str | None = None


class NewEngine:
    Settings = NewSettings


def test_a_new_engine_with_a_new_setting_changes_no_existing_key(monkeypatch):
    from persyn.core import plugins

    monkeypatch.setitem(plugins.ENGINES, "new-engine", f"{__name__}:NewEngine")
    from persyn.core.hashing import stable_hash

    data = pinned_run()
    assert stable_hash(parse_config(data).key_dump()) == PINNED_KEY  # the same key
    # the new engine's teacher has its setting in its own key dump, when set
    new = {"name": "n", "engine": "new-engine", "shard_url": "http://s"}
    dump = parse_config({**data, "teachers": [*data["teachers"], new]}).key_dump()
    assert dump["teachers"][-1]["shard_url"] == "http://s" and "shard_url" not in dump["teachers"][0]


def test_a_run_config_json_round_trips_every_engines_settings():
    # run_config.json (public_config_json) holds each teacher's own engine's settings, and the
    # commands that take an output directory rebuild the same teachers from it.
    import json

    from persyn.config import public_config_json

    data = run_with(
        {"name": "oa", "engine": "openai", "model": "m", "base_url": "http://h/v1", "concurrency": 2}
    )
    data["teachers"].append({"name": "tf", "engine": "transformers", "model": "smollm2-135m-instruct"})
    cfg = parse_config(data)
    written = json.loads(public_config_json(cfg))
    assert written["teachers"][0]["base_url"] == "http://h/v1" and "style" not in written["teachers"][0]
    assert parse_config(written).teachers == cfg.teachers
