"""Selection strategies: which teacher's response each prompt of the dataset gets.

- ``persyn``: the Bradley–Terry router (Route-then-Generate; calibration prompts take the Oracle
  pick). Only the routed teacher answers a routed prompt.
- Generate-then-Select (every teacher answers every prompt, then one response is kept):
  ``oracle`` (per-prompt argmax of the Eq. 2 reward), ``grape`` (highest student
  length-normalised log-likelihood, i.e. α = 1; GRAPE, arXiv 2502.04194), ``best-of-n``
  (highest quality, i.e. α = 0).
- One teacher, or a fixed mix, chosen from the calibration set: ``strongest`` (highest mean
  quality), ``family-strong`` (the strongest teacher of the student's ``family``), ``car``
  (highest CAR = mean quality / (1 + β · mean student NLL); arXiv 2411.07133), ``mix``
  (strong : weak data in a fixed ratio, 1 : 4 by default, prompts assigned at random; Mix
  Distillation, arXiv 2502.12143).
- ``random``: a uniformly random teacher per prompt (seeded).

Ties always go to the teacher listed first in the config. Responses are shared through the
store's cache keys, so running several strategies on one output directory never generates a
response twice.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from persyn.config import STRATEGIES
from persyn.errors import ConfigError, PersynError
from persyn.scoring.combine import Candidate, oracle_pick
from persyn.store import stable_hash

if TYPE_CHECKING:
    from persyn.pipeline import Pipeline

GENERATE_THEN_SELECT = ("oracle", "grape", "best-of-n")


# -- selection logic on scores (pure) ----------------------------------------------------------
@dataclass
class TeacherMeans:
    """A teacher's calibration means: ``quality`` over every calibration prompt (a failed
    response counts as quality 0), ``learnability`` (mean log-prob per token, nats ≤ 0) over its
    valid responses (None when it has none)."""

    quality: float
    learnability: float | None


def teacher_means(table: dict[str, list[Candidate]], names: list[str]) -> dict[str, TeacherMeans]:
    """Per-teacher calibration means from ``table`` (prompt id → candidates in teacher order).

    Raises:
        PersynError: an empty table.
    """
    if not table:
        raise PersynError("no calibration prompts: the strategy needs calibration scores")
    out = {}
    for i, name in enumerate(names):
        cands = [cands[i] for cands in table.values()]
        q = [c.quality if c.quality is not None else 0.0 for c in cands]
        lv = [c.learnability for c in cands if c.learnability is not None]
        out[name] = TeacherMeans(sum(q) / len(q), sum(lv) / len(lv) if lv else None)
    return out


def _argmax(names: list[str], value: dict[str, float | None]) -> str | None:
    best = None
    for n in names:  # strict > keeps the first in order on a tie
        v = value.get(n)
        if v is not None and (best is None or v > value[best]):
            best = n
    return best


def strongest(means: dict[str, TeacherMeans], names: list[str]) -> str:
    """The teacher with the highest mean calibration quality (first in order on a tie)."""
    pick = _argmax(names, {n: means[n].quality for n in names})
    assert pick is not None
    return pick


def family_members(names: list[str], families: dict[str, str | None], family: str | None) -> list[str]:
    """The teachers (in order) whose ``family`` is the student's ``family``.

    Raises:
        ConfigError: the student has no family, or no teacher has it.
    """
    if not family:
        raise ConfigError("strategy 'family-strong' needs student.family (e.g. family: smollm2)")
    same = [n for n in names if families.get(n) == family]
    if not same:
        known = sorted({f for f in families.values() if f})
        raise ConfigError(
            f"strategy 'family-strong': no teacher has family '{family}' "
            f"(teachers' families: {', '.join(known) or 'none set'}); set teachers.N.family"
        )
    return same


def family_strongest(
    means: dict[str, TeacherMeans], names: list[str], families: dict[str, str | None], family: str | None
) -> str:
    """The strongest teacher whose ``family`` equals the student's ``family``.

    Raises:
        ConfigError: see ``family_members``.
    """
    return strongest(means, family_members(names, families, family))


def weakest(means: dict[str, TeacherMeans], names: list[str], exclude: str) -> str:
    """The teacher with the lowest mean calibration quality other than ``exclude`` (first in
    order on a tie)."""
    pick = _argmax([n for n in names if n != exclude], {n: -means[n].quality for n in names})
    assert pick is not None
    return pick


def car_scores(means: dict[str, TeacherMeans], beta: float) -> dict[str, float | None]:
    """CAR per teacher (Compatibility-Adjusted Reward, arXiv 2411.07133, §3):

        CAR = r̄ / (1 + β · L̄),  L̄ = −(mean log-prob per response token) ≥ 0 (student NLL)

    with r̄ the teacher's mean calibration quality (our reward; it must be ≥ 0: ``select``
    rescales reward-model quality to [0, 1] first). None for a teacher without a scored
    response."""
    return {
        n: None if m.learnability is None else m.quality / (1.0 + beta * -m.learnability)
        for n, m in means.items()
    }


def rescaled_quality(means: dict[str, TeacherMeans]) -> dict[str, TeacherMeans]:
    """Teacher means with quality min-max rescaled across teachers to [0, 1] (all 1.0 when
    they tie), learnability unchanged."""
    qs = [m.quality for m in means.values()]
    lo, hi = min(qs), max(qs)
    return {
        n: TeacherMeans((m.quality - lo) / (hi - lo) if hi > lo else 1.0, m.learnability)
        for n, m in means.items()
    }


def per_prompt_pick(cands: list[Candidate], by: str) -> str | None:
    """Generate-then-Select pick for one prompt: the candidate with the highest ``by``
    (``reward``, ``quality`` or ``learnability``) among those that have it; first in teacher
    order on a tie; None when none has it."""
    values = {c.teacher: getattr(c, by) for c in cands}
    return _argmax([c.teacher for c in cands], values)


def random_pick(prompt_id: str, names: list[str], seed: int) -> str:
    """A uniformly random teacher for one prompt, a pure function of (seed, prompt id), so the
    draw does not depend on the order or number of other prompts."""
    return names[int(stable_hash(["random", seed, prompt_id]), 16) % len(names)]


def mix_assign(
    prompt_ids: list[str], strong: str, weak: str, ratio: tuple[int, int], seed: int
) -> dict[str, str]:
    """Mix Distillation: exactly round(n · s / (s + w)) prompts (ratio = (s, w)) go to
    ``strong``, the rest to ``weak``; which ones is a seeded random draw."""
    order = sorted(prompt_ids, key=lambda pid: stable_hash(["mix", seed, pid]))
    n_strong = round(len(order) * ratio[0] / (ratio[0] + ratio[1]))
    return {pid: strong if i < n_strong else weak for i, pid in enumerate(order)}


# -- running a strategy on an output directory -------------------------------------------------
def needs_calibration(cfg, name: str) -> bool:
    """Whether ``name`` chooses from calibration scores (then calibration is part of its cost)."""
    if name == "mix":
        mix = cfg.strategy_options.mix
        return mix.strong is None or mix.weak is None
    return name in ("persyn", "strongest", "family-strong", "car")


def select(pipe: Pipeline, name: str, seed: int | None = None) -> tuple[dict[str, str], dict]:
    """Run whatever ``name`` needs on ``pipe``'s store (calibration, scoring, router, the
    Generate-then-Select responses; all reused when stored) and return
    ``({prompt_id: teacher}, details)``; ``details`` holds the strategy's own figures (e.g. CAR
    per teacher). A prompt with no valid candidate is left out (recorded by the caller).
    ``seed`` (default: the run seed) draws the ``random`` and ``mix`` assignments.

    Raises:
        ConfigError: unknown strategy, or a family no teacher has.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy: unknown strategy '{name}' (known: {', '.join(STRATEGIES)})")
    cfg = pipe.cfg
    names = cfg.teacher_names
    seed = cfg.seed if seed is None else seed
    pipe.prepare()
    prompts = pipe.store.prompts()
    details: dict = {}
    means = None
    if name == "family-strong":  # fail before any generation
        family_members(names, {t.name: t.family for t in cfg.teachers}, cfg.student.family)
    if needs_calibration(cfg, name):
        pipe.calibrate()
        pipe.score()
        _, table, _ = pipe.reward_table()
        means = teacher_means(table, names)
        details["calibration_means"] = {n: vars(m) for n, m in means.items()}

    if name == "persyn":
        pipe.train_router()
        pipe.route()
        pipe.generate()
        _, table, _ = pipe.reward_table()
        picks = {pid: oracle_pick(cands) for pid, cands in table.items()}
        picks.update({pid: t for pid, (t, _) in pipe._assignments().items()})
        return {k: v for k, v in picks.items() if v is not None}, details
    if name in GENERATE_THEN_SELECT:
        table = pipe.full_reward_table()
        by = {"oracle": "reward", "grape": "learnability", "best-of-n": "quality"}[name]
        picks = {pid: per_prompt_pick(cands, by) for pid, cands in table.items()}
        return {k: v for k, v in picks.items() if v is not None}, details
    if name == "random":
        return {p.id: random_pick(p.id, names, seed) for p in prompts}, details
    if name == "mix":
        mix = cfg.strategy_options.mix
        others = [n for n in names if n != mix.weak]
        strong = mix.strong or strongest(means, others)  # type: ignore[arg-type]
        weak = mix.weak or weakest(means, names, strong)  # type: ignore[arg-type]
        details.update(strong=strong, weak=weak, ratio=list(mix.ratio))
        return mix_assign([p.id for p in prompts], strong, weak, mix.ratio, seed), details
    assert means is not None
    if name == "strongest":
        teacher = strongest(means, names)
    elif name == "family-strong":
        families = {t.name: t.family for t in cfg.teachers}
        teacher = family_strongest(means, names, families, cfg.student.family)
        details["family"] = cfg.student.family
    else:  # car
        if cfg.quality.kind == "reward_model":
            # Raw reward-model scores can be negative, where r̄ / (1 + β·L̄) would favour a
            # *higher* NLL: rescale the teachers' mean quality to [0, 1] first.
            means = rescaled_quality(means)
        car = car_scores(means, cfg.strategy_options.car.beta)
        details.update(car=car, beta=cfg.strategy_options.car.beta)
        teacher = _argmax(names, car)
        if teacher is None:
            raise PersynError("strategy 'car': no teacher has a scored calibration response")
    details["teacher"] = teacher
    return {p.id: teacher for p in prompts}, details


def generations_needed(cfg, name: str, n_prompts: int, n_calibration: int, picks: dict[str, str]) -> int:
    """Teacher generations the strategy needs in total on a fresh run: the calibration set
    answered by every teacher when it chooses from calibration scores, every teacher on every
    prompt for Generate-then-Select, plus one response per other prompt."""
    n_t = len(cfg.teacher_names)
    if name in GENERATE_THEN_SELECT:
        return n_prompts * n_t
    if needs_calibration(cfg, name):
        return n_calibration * n_t + (n_prompts - n_calibration)
    return n_prompts


def build_strategy(pipe: Pipeline, name: str, out_dir: Path | None = None, seed: int | None = None) -> dict:
    """Select with ``name``, generate the chosen responses that are missing, and write
    ``dataset.jsonl`` (the pipeline's line format) and ``summary.json`` to ``out_dir``
    (default ``OUTPUT_DIR/strategies/NAME``). ``seed`` draws ``random`` / ``mix`` (default: the
    run seed). Returns the summary.

    Raises:
        ConfigError / PersynError: see ``select``.
    """
    from persyn.pipeline import write_atomic

    picks, details = select(pipe, name, seed)
    cfg = pipe.cfg
    names = cfg.teacher_names
    teachers = {t.name: t for t in cfg.teachers}
    prompts = pipe.store.prompts()
    cal_ids = {p.id for p in pipe.store.prompts(calibration=True)}
    by_teacher: dict[str, list] = {n: [] for n in names}
    for p in prompts:
        if p.id in picks:
            by_teacher[picks[p.id]].append(p)
    pipe._generate([(teachers[n], by_teacher[n]) for n in names if by_teacher[n]], name)
    keys = {p.id: pipe.key_of(teachers[picks[p.id]], p) for p in prompts if p.id in picks}
    gens = pipe.store.generations(keys.values())
    scores = pipe.stored_scores()
    rewards = pipe.stored_rewards(prompts)

    lines, failures = [], []
    count: Counter[str] = Counter()
    for p in prompts:
        if p.id not in picks:
            failures.append({"stage": name, "prompt_id": p.id, "teacher": None, "error": "no valid response"})
            continue
        g = gens.get(keys[p.id])
        if g is None or not g.ok:
            failures.append(
                {
                    "stage": name,
                    "prompt_id": p.id,
                    "teacher": picks[p.id],
                    "error": g.error if g else "no response",
                }
            )
            continue
        q, lv = scores.get(g.key, (None, None))
        count[picks[p.id]] += 1
        lines.append(
            {
                "id": p.id,
                "messages": [
                    {"role": "user", "content": p.text},
                    {"role": "assistant", "content": g.response},
                ],
                "teacher": picks[p.id],
                "quality": q,
                "learnability": lv,
                "reward": rewards.get((p.id, picks[p.id])),
                "source": "calibration" if p.id in cal_ids else "routed",
            }
        )
    out = out_dir or pipe.out / "strategies" / name
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "dataset.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    n, n_cal = len(prompts), len(cal_ids)
    summary = {
        "strategy": name,
        "seed": cfg.seed if seed is None else seed,
        "n_prompts": n,
        "n_calibration": n_cal if needs_calibration(cfg, name) else 0,
        "n_dataset": len(lines),
        "teachers": names,
        "generations": generations_needed(cfg, name, n, n_cal, picks),
        "generations_generate_then_select": n * len(names),
        "routing": {t: count.get(t, 0) for t in names},
        "details": details,
        "failed": len(failures),
        "failures": failures,
        "dataset_hash": stable_hash([[x["id"], x["messages"]] for x in lines]),
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
