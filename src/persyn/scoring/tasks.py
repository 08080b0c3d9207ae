"""Answer checks per reasoning_gym task, for mixed prompt sets.

A task whose answer is one number (``NUMERIC_TASKS``) is checked by math-verify, which reads a
number out of free text (``#### 12``, ``\\boxed{12}``, ``12 legs``) and equates ``1/2`` with
``0.5``. Any other reasoning_gym task (a word spelled backward, a sorted list) is checked by
the task's own ``score_answer`` (reasoning-gym's verifier for that task) on the response's final
answer (``final_answer``); the prompt carries the entry's metadata (``task_metadata``) that
the check may read. A score below 1 (reasoning-gym gives partial credit to some near misses)
counts as wrong: quality is answer correctness.
"""

from __future__ import annotations

import re

# reasoning_gym tasks whose gold answer is a single number.
NUMERIC_TASKS = frozenset(
    {
        "basic_arithmetic",
        "chain_sum",
        "count_bits",
        "count_primes",
        "decimal_arithmetic",
        "decimal_chain_sum",
        "gcd",
        "gsm_symbolic",
        "lcm",
        "leg_counting",
        "letter_counting",
        "products",
        "simple_equations",
    }
)

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_ANSWER_IS = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*(.+)", re.I)


def final_answer(response: str) -> str | None:
    """The final answer written in a free-text response: the last ``<answer>…</answer>``, else
    the rest of the line after the last ``####``, else after the last "answer is" / "Answer:",
    else the last non-empty line; stripped of surrounding markup (``**``, backticks, quotes)
    and a closing period. None for an empty response."""
    text = response.strip()
    if not text:
        return None
    if tags := _ANSWER_TAG.findall(text):
        ans = tags[-1]
    elif "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        ans = tail.splitlines()[0] if tail else ""
    elif found := _ANSWER_IS.findall(text):
        ans = found[-1]
    else:
        ans = text.splitlines()[-1]
    for _ in range(2):  # "**42**." and "42.**" alike
        ans = ans.strip().strip("*`\"' ").strip()
        ans = ans[:-1] if ans.endswith(".") else ans
    return ans.strip()


def task_check(task: str, response: str, gold: str, metadata: dict) -> tuple[float, str | None]:
    """Correctness of ``response`` for a prompt of reasoning_gym ``task`` by the task's own
    ``score_answer`` on ``final_answer(response)``, with the entry rebuilt from ``gold`` and
    ``metadata``.

    Returns:
        (1.0 or 0.0, a note: no answer found, or the partial credit that was not counted).

    Raises:
        MissingAssetError: reasoning-gym is not installed.
        InputError: ``task`` is not a reasoning_gym task.
    """
    from persyn.core.deps import require
    from persyn.core.errors import InputError

    require("reasoning_gym", f"checking task '{task}'", "pip install reasoning-gym", "reasoning-gym")
    import reasoning_gym

    try:
        score_fn = reasoning_gym.get_score_answer_fn(task)
    except (KeyError, ValueError) as exc:
        raise InputError(f"no answer check for task '{task}': {exc}") from None
    answer = final_answer(response)
    if not answer:
        return 0.0, "no answer found in the response"
    score = float(score_fn(answer, {"answer": gold, "metadata": metadata}))
    if score >= 1.0:
        return 1.0, None
    return 0.0, (f"partial credit {score:.2f} counted as wrong" if score > 0 else None)


#: The task ``task_of`` gives a prompt that carries IFEval's instructions (its record's
#: ``instruction_id_list`` and ``kwargs``, kept in the prompt's metadata): ``quality.kind:
#: ifeval`` checks them (``scoring.ifeval``); the verifier leaves such items to math-verify.
IFEVAL = "ifeval"


def task_of(metadata: dict) -> tuple[str, dict] | None:
    """``(task, entry metadata)`` of a prompt checked by its task's own ``score_answer`` (a
    reasoning_gym prompt of a non-numeric task), ``(IFEVAL, {"instruction_id_list", "kwargs"})``
    of a prompt with IFEval's instructions, else None (math-verify checks it)."""
    if "instruction_id_list" in metadata:
        return IFEVAL, {
            "instruction_id_list": metadata["instruction_id_list"],
            "kwargs": metadata.get("kwargs"),
        }
    task = str(metadata.get("source_dataset"))
    if "task_metadata" not in metadata or task in NUMERIC_TASKS:
        return None
    return task, metadata["task_metadata"]
