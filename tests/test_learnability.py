import pytest
import torch

from persyn.config import StudentConfig
from persyn.core.records import ScoreItem
from persyn.models.loading import load_causal_lm, load_tokenizer
from persyn.scoring.learnability import LearnabilityScorer, token_budget_batches
from persyn.tokenization import student_tokens

PAIRS = [
    ("What is 2 + 3?", "The answer is 5."),
    ("Tom has 3 boxes of 4 apples. How many apples?", "3 * 4 = 12 apples.\n#### 12"),
    ("Hi", "Hello there, how can I help with the apples and the boxes today?"),
    ("What is 9 + 9?", "18"),
    ("Question: how many legs?", "8"),
]


SHARED = [  # several teachers' responses to the same prompts (the calibration case)
    ("What is 2 + 3?", "5"),
    ("What is 2 + 3?", "2 + 3 = 5.\n#### 5"),
    ("What is 2 + 3?", "The answer is 5, because two apples and three apples make five apples."),
    ("Hi", "Hello"),
    ("Hi", "Hello there!"),
    ("Tom has 3 boxes of 4 apples. How many apples?", "12"),
]


def reference_loop(model_path: str, template: str, pairs=PAIRS):
    """Eq. 1 by the book: one unpadded forward pass per example."""
    tok = load_tokenizer(model_path)
    model = load_causal_lm(model_path)
    out = []
    for prompt, response in pairs:
        p, r = student_tokens(tok, prompt, response, template)
        ids = torch.tensor([p + r])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        tgt = ids[0, 1:]
        tok_lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        out.append(float(tok_lp[-len(r) :].mean()))
    return out


def run(scorer, pairs):
    items = [ScoreItem(str(i), p, r) for i, (p, r) in enumerate(pairs)]
    got = {}
    for rows in scorer.score(items):
        for k, v, e in rows:
            got[k] = (v, e)
    return [got[str(i)] for i in range(len(pairs))]


@pytest.mark.parametrize("batching", ["padded", "per_prompt"])
@pytest.mark.parametrize("which", ["chat", "base"])
def test_batched_scores_equal_the_per_example_definition(tiny_models, which, batching):
    cfg = StudentConfig(
        model=tiny_models[which], batch_tokens=96, batching=batching, dtype="float32"
    )  # several batches
    scores = run(LearnabilityScorer(cfg), PAIRS)
    expected = reference_loop(tiny_models[which], cfg.prompt_template)
    assert [e for _, e in scores] == [None] * len(PAIRS)
    assert [v for v, _ in scores] == pytest.approx(expected, abs=1e-4)
    assert all(v < 0 for v, _ in scores)


@pytest.mark.parametrize("batching", ["padded", "per_prompt", "auto"])
def test_shared_prompt_scores_equal_the_per_example_definition(tiny_models, batching):
    cfg = StudentConfig(model=tiny_models["chat"], batch_tokens=64, batching=batching, dtype="float32")
    scores = run(LearnabilityScorer(cfg), SHARED)
    expected = reference_loop(tiny_models["chat"], cfg.prompt_template, SHARED)
    assert [v for v, _ in scores] == pytest.approx(expected, abs=1e-4)


def test_response_tokens_include_end_of_turn_not_the_prompt(tiny_models):
    tok = load_tokenizer(tiny_models["chat"])
    p, r = student_tokens(tok, "What is 2 + 3?", "5", "")
    assert tok.decode(r) == "5<|im_end|>"
    assert tok.decode(p).endswith("<|im_start|>assistant\n")
    tok = load_tokenizer(tiny_models["base"])
    p, r = student_tokens(tok, "What is 2 + 3?", "5", "Q: {prompt}\nA: ")
    assert tok.decode(p) == "Q: What is 2 + 3?\nA: " and tok.decode(r) == "5<eos>"


def test_too_long_and_empty_are_failed_items(tiny_models):
    cfg = StudentConfig(model=tiny_models["chat"], max_length=40, dtype="float32")
    scores = run(LearnabilityScorer(cfg), [("What is 2 + 3?", "5"), ("long " * 50, "5")])
    assert scores[0][1] is None
    assert scores[0][0] == pytest.approx(
        reference_loop(tiny_models["chat"], cfg.prompt_template, [("What is 2 + 3?", "5")])[0], abs=1e-4
    )
    assert scores[1][0] is None and "too long for the student" in scores[1][1]


def test_token_budget_batches():
    batches = token_budget_batches([5, 1, 10, 3, 10], 20)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    lengths = [5, 1, 10, 3, 10]
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 20
