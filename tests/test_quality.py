import pytest

from persyn.config import QualityConfig
from persyn.core.records import ScoreItem
from persyn.scoring.quality import RewardModelScorer, VerifierScorer, make_quality_scorer


def collect(scorer, items):
    out = {}
    for rows in scorer.score(items):
        for k, v, e in rows:
            out[k] = (v, e)
    return out


def test_verifier_scores_final_answer_correctness():
    items = [
        ScoreItem("right", "q", "3 * 4 = 12.\n#### 12"),
        ScoreItem("boxed", "q", "so the answer is \\boxed{12}"),
        ScoreItem("wrong", "q", "The answer is 13."),
        ScoreItem("none", "q", "I do not know."),
        ScoreItem("nogold", "q", "12"),
    ]
    answers = {"right": "12", "boxed": "12", "wrong": "12", "none": "12", "nogold": None}
    got = collect(VerifierScorer(answers), items)
    assert got["right"] == (1.0, None) and got["boxed"] == (1.0, None)
    assert got["wrong"] == (0.0, None)
    assert got["none"] == (0.0, "no answer found in the response")
    assert got["nogold"] == (None, "no reference answer for this prompt")


def test_final_answer_and_a_task_s_own_check():
    from persyn.scoring.tasks import final_answer, task_check

    assert final_answer("Steps\nThe answer is **42**.") == "42"
    assert final_answer("1 + 2 = 3\n#### -7\n") == "-7"
    assert final_answer("<answer>b, a</answer> then more") == "b, a"
    assert final_answer("first\nsuon") == "suon" and final_answer("  ") is None
    assert task_check("spell_backward", "Backward:\n#### nus", "nus", {}) == (1.0, None)
    # reasoning-gym gives "sun" partial credit against "nus": still wrong, and said so
    assert task_check("spell_backward", "#### sun", "nus", {}) == (
        0.0,
        "partial credit 0.33 counted as wrong",
    )
    assert task_check("spell_backward", "#### xyz", "nus", {}) == (0.0, None)
    assert task_check("spell_backward", "", "nus", {})[1] == "no answer found in the response"


def test_verifier_uses_the_task_check_for_non_numeric_tasks():
    items = [
        ScoreItem("word", "Spell sun backward", "The answer is nus."),
        ScoreItem("word-wrong", "Spell sun backward", "The answer is sun."),
        ScoreItem("num", "2 + 3", "#### 5.0"),  # math-verify: 5.0 equals 5
    ]
    answers = {"word": "nus", "word-wrong": "nus", "num": "5"}
    tasks = {"word": ("spell_backward", {}), "word-wrong": ("spell_backward", {})}
    got = collect(VerifierScorer(answers, tasks), items)
    assert got["word"] == (1.0, None) and got["num"] == (1.0, None) and got["word-wrong"][0] == 0.0
    # without the task check math-verify finds no number in "nus"
    assert collect(VerifierScorer(answers), items[:1])["word"][0] == 0.0


def test_verifier_refuses_an_echoed_expression_as_the_answer():
    # A small model often echoes the question ("23 + 60 + 71 =") and stops: math-verify would
    # evaluate that expression and call it right. A value is needed, unless the gold answer is
    # itself an expression.
    items = [
        ScoreItem("echo", "q", "23 + 60 + 71 ="),
        ScoreItem("cut", "q", "To calculate 88 * 53, we need"),
        ScoreItem("worked", "q", "23 + 60 = 83\n83 + 71 = 154"),
        ScoreItem("negative", "q", "#### -154"),
        ScoreItem("fraction", "q", "1/2"),
    ]
    answers = {"echo": "154", "cut": "4664", "worked": "154", "negative": "-154", "fraction": "1/2"}
    got = collect(VerifierScorer(answers), items)
    assert got["echo"] == got["cut"] == (0.0, "the final answer is an unevaluated expression")
    assert got["worked"] == got["negative"] == got["fraction"] == (1.0, None)


def test_reward_model_batched_equals_one_at_a_time(tiny_models):
    cfg = QualityConfig(kind="reward_model", model=tiny_models["reward"], batch_size=2)
    scorer = make_quality_scorer(cfg, {})
    assert isinstance(scorer, RewardModelScorer)
    items = [ScoreItem(str(i), "What is 2 + 3?", "5" * (i + 1)) for i in range(5)]
    batched = collect(scorer, items)
    single = {it.key: collect(scorer, [it])[it.key] for it in items}
    assert set(batched) == set(single) == {str(i) for i in range(5)}
    for k in batched:
        assert batched[k][0] == pytest.approx(single[k][0], abs=1e-5)
    assert len({round(v, 6) for v, _ in batched.values()}) > 1  # not a constant
    assert scorer.key != VerifierScorer.key


def test_quality_scorers_are_found_by_name_in_the_plugin_table():
    from persyn.core.plugins import QUALITY_SCORERS
    from persyn.scoring.base import Scorer
    from persyn.scoring.quality import MajorityScorer, QualityScorer

    assert set(QUALITY_SCORERS) == {"verifier", "majority", "reward_model", "ifeval"}
    verifier = make_quality_scorer(QualityConfig(kind="verifier"), {"k": "1"}, tasks={"t": ("x", {})})
    assert type(verifier) is VerifierScorer and verifier.tasks == {"t": ("x", {})}
    majority = make_quality_scorer(QualityConfig(kind="majority"), {"k": None}, {"k": "a tie"}, ["b", "a"])
    assert type(majority) is MajorityScorer and majority.notes == {"k": "a tie"}
    assert majority.key == MajorityScorer({}, pool=["a", "b"]).key
    reward = make_quality_scorer(QualityConfig(kind="reward_model", model="org/rm"), {})
    assert type(reward) is RewardModelScorer and reward.model is None  # loaded on first use
    for s in (verifier, majority, reward):
        assert isinstance(s, QualityScorer) and isinstance(s, Scorer)
    assert verifier.work_units([1, 2]) == [[1], [2]]  # the contract's default


def test_an_unknown_quality_kind_is_an_error_that_names_it():
    cfg = QualityConfig(kind="verifier").model_copy(update={"kind": "telepathy"})
    with pytest.raises(KeyError, match="unknown quality scorer 'telepathy' \\(known: verifier, majority"):
        make_quality_scorer(cfg, {})


def test_each_quality_kind_owns_its_settings_and_the_config_is_composed_of_them():
    # the reward model's fields live in scoring/quality.py, ifeval's `loose` in scoring/ifeval.py;
    # QualityConfig (config/quality.py) is their union through the plug-in table, flat
    from persyn.core.plugins import QUALITY_SCORERS
    from persyn.scoring.ifeval import IFEvalScorer, IFEvalSettings
    from persyn.scoring.quality import RewardModelScorer, RewardModelSettings, quality_scorer_class

    assert RewardModelScorer.Settings is RewardModelSettings and IFEvalScorer.Settings is IFEvalSettings
    owned = {f for k in QUALITY_SCORERS for f in quality_scorer_class(k).Settings.model_fields}
    assert owned == {"model", "batch_size", "dtype", "loose"}
    assert set(QualityConfig.model_fields) == owned | {"kind", "resources"}
    # the dump keeps today's keys: `loose` only when on, `kind` first, `resources` last
    assert list(QualityConfig(kind="reward_model", model="org/rm").model_dump()) == [
        "kind", "model", "batch_size", "dtype", "resources"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "given, field",
    [
        ({"kind": "verifier", "model": "org/rm"}, "model"),
        ({"kind": "majority", "dtype": "bfloat16"}, "dtype"),
    ],
)
def test_a_setting_of_another_quality_kind_is_refused_naming_it_and_its_value(given, field):
    from pydantic import ValidationError

    value = given[field]
    with pytest.raises(
        ValidationError,
        match=rf"'{field}' is a setting of quality kind 'reward_model', not of .*\(got {field}='{value}'\)",
    ):
        QualityConfig(**given)
    QualityConfig(**{**given, "kind": "reward_model", "model": "org/rm"})  # its own kind takes it
    QualityConfig(kind="verifier", batch_size=8)  # another kind's field at its default: harmless


def test_reward_model_needs_its_model():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="kind 'reward_model' needs 'model'"):
        QualityConfig(kind="reward_model")
