"""The dataset card written beside a run's ``dataset.jsonl`` (``README.md``, the file a dataset
hub shows): where each line came from (the teachers with their model ids and decoding
settings, the student, the router), how many lines each teacher gave, how many passed the
quality check, and the persyn version and config hash that reproduce it, so a pushed dataset
explains itself (as distilabel's and curator's cards do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from persyn.core.io import write_atomic
from persyn.core.summary import RunSummary

MARKER = "<!-- dataset card written by persyn; it is rewritten by every export -->"

# The decoding settings a card lists for a model teacher, in this order.
DECODING = ("temperature", "top_p", "max_new_tokens", "stop")


def teacher_model_id(teacher: dict[str, Any]) -> str:
    """What a dataset line names as its teacher's model: the model id or path of a model
    teacher, ``reference:STYLE`` for the prompt set's own solutions (``teacher``: a teacher's
    settings as ``model_dump`` gives them)."""
    if teacher.get("engine") == "reference":
        return f"reference:{teacher.get('style', 'solution')}"
    return str(teacher.get("model") or teacher.get("engine"))


def name_teacher_models(lines: list, teachers: list) -> None:
    """Set each dataset line's ``teacher_model`` (``teacher_model_id``) from ``teachers`` (the
    run's teacher settings, with ``name`` and ``model_dump``), in place; a line whose teacher is
    not among them keeps None."""
    ids = {t.name: teacher_model_id(t.model_dump()) for t in teachers}
    for x in lines:
        x.teacher_model = ids.get(x.teacher)


def dataset_card(
    summary: RunSummary, teachers: list[dict[str, Any]], student: str, version: str, config_hash: str
) -> str:
    """The card's Markdown: a YAML header (the data file, the tags a hub indexes) and sections
    for the sources, the counts and the checks.

    Args:
        summary: the run's summary (counts, router, quality and truncation shares).
        teachers: each teacher's settings (``model_dump``), in the run's order.
        student: the student's model reference.
        version: persyn's version; ``config_hash``: the hash of the run's config key.
    """
    lines = [
        "---",
        "configs:",
        "  - config_name: default",
        "    data_files: dataset.jsonl",
        "tags: [persyn, synthetic, distillation]",
        "task_categories: [text-generation]",
        "---",
        MARKER,
        "",
        "# Distillation data built by persyn",
        "",
        f"{summary.n_dataset} SFT examples (TRL's conversational `messages` format) for the student "
        f"`{student}`, each answered by the teacher a router chose for its prompt (PerSyn, Route then "
        "Generate, arXiv 2510.10925). Each line names its `teacher`, the teacher's model id "
        "(`teacher_model`) and its `source`: `calibration` (the best of every teacher's answers on the "
        "calibration set) or `routed` (the router's teacher).",
        "",
        "## Teachers",
        "",
        "| teacher | model | engine | decoding | lines |",
        "|---|---|---|---|---|",
    ]
    for t in teachers:
        decoding = ", ".join(f"{k} {t[k]!r}" for k in DECODING if k in t and t[k] not in (None, []))
        if t.get("system_prompt"):
            decoding += ", system prompt"
        if t.get("prompt_template"):
            decoding += ", prompt template"
        lines.append(
            f"| {t['name']} | `{teacher_model_id(t)}` | {t.get('engine')} | {decoding or '-'} "
            f"| {summary.routing.get(t['name'], 0)} |"
        )
    ev = summary.router_eval
    router = (ev.kind if ev is not None else None) or "-"
    if ev is not None and ev.requested and ev.requested != router:
        router = f"{ev.requested} → {router}"
    lines += [
        "",
        "## How it was built",
        "",
        f"- prompts: {summary.n_prompts} ({summary.n_calibration} calibration, {summary.n_routed} routed)",
        f"- router: {router}; reward weight of learnability (alpha): {summary.alpha}",
        f"- teacher responses generated: {summary.generations} (every teacher on every prompt would be "
        f"{summary.generations_generate_then_select})",
    ]
    if summary.verify is not None:
        v = summary.verify
        lines.append(
            f"- verified: each routed answer checked, up to {v['max_tries']} teacher(s) per prompt, "
            f"on_fail {v['on_fail']}"
        )
    q = summary.data_quality
    if q:
        lines.append(
            f"- quality check (pass at {q['pass_quality']}): {q['passed']} passed, {q['failed']} failed, "
            f"{q['unknown']} never checked, of {q['lines']} lines"
        )
    cut = [f"{n} {f['cut']}/{f['responses']}" for n, f in (summary.truncation or {}).items() if f.get("cut")]
    lines.append(f"- responses cut at max_new_tokens: {', '.join(cut) if cut else 'none'}")
    lines += [f"- failed items: {summary.failed} (listed in failed.jsonl)", ""]
    lines += ["## Reproduce", "", f"persyn {version}; config hash `{config_hash}` (`run_config.json`).", ""]
    return "\n".join(lines)


def write_dataset_card(out: Path, text: str) -> Path:
    """Write ``text`` as ``out/README.md``, or as ``out/dataset_card.md`` when a ``README.md``
    persyn did not write is already there (it is never overwritten). Returns the path written."""
    path = Path(out) / "README.md"
    if path.exists() and MARKER not in path.read_text(encoding="utf-8", errors="replace"):
        path = Path(out) / "dataset_card.md"
    write_atomic(path, text)
    return path
