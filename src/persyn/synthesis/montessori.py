"""Montessori-Instruct (arXiv 2410.14208): preference pairs from per-example signals (the DPO of
the generator on them: ``persyn.training.dpo``).

Examples are grouped by the generation request that produced them. Within a group, an example's
*helpfulness* is its signal turned so that higher is better:

- ``influence`` (local data influence, ``persyn.influence``): −influence (a step on a helpful
  example lowers the reference loss);
- ``loss`` (the warm-up student's loss on the example): −loss;
- ``learnability`` (PerSyn's r_l, Eq. 1): r_l.

Pairing rules (``preference_pairs``):

- ``sign`` (the paper's, influence only): chosen = influence < 0, rejected = influence > 0, every
  chosen × rejected pair of a group; a group lacking a side gives none;
- ``rank``: in each group of at least 2 examples, the top ``fraction`` by helpfulness (at least
  one) are chosen, the bottom ``fraction`` rejected, every pair between them (for signals without
  a natural zero, and for an influence where nearly every step helps);
- ``auto``: ``sign`` for influence when at least half of the groups of 2 or more examples have
  both sides, else ``rank``. The rule used and the counts are returned with the pairs.
"""

from __future__ import annotations

import math
from collections import defaultdict

from persyn.core.errors import InputError

__all__ = ["DIRECTION", "preference_pairs"]

#: Signal → sign that turns it into helpfulness (higher is better).
DIRECTION = {"influence": -1.0, "loss": -1.0, "learnability": 1.0}


def preference_pairs(
    records: list[dict], signal: str = "influence", rule: str = "auto", fraction: float = 1 / 3
) -> tuple[list[tuple[str, str]], dict]:
    """``[(chosen id, rejected id)]`` and a note: ``rule`` (the one used), ``groups``,
    ``groups_with_pairs``, ``pairs``, ``both_sides`` (groups with a helpful and a harmful
    example under the sign rule).

    Args:
        records: ``{"id", "group", SIGNAL}`` per example (``influence.jsonl`` lines); lines
            without the signal (failed examples) are left out.
        signal: ``influence`` | ``loss`` | ``learnability``.
        rule: ``auto`` | ``sign`` | ``rank`` (see the module docstring).
        fraction: the share of a group taken as chosen and as rejected by ``rank``.

    Raises:
        InputError: an unknown signal or rule, ``sign`` with another signal than influence, no
            record with the signal, or no group that yields a pair (the message says why).
    """
    if signal not in DIRECTION:
        raise InputError(f"unknown signal '{signal}' (known: {', '.join(DIRECTION)})")
    if rule not in ("auto", "sign", "rank"):
        raise InputError(f"unknown pairing rule '{rule}' (known: auto, sign, rank)")
    if rule == "sign" and signal != "influence":
        raise InputError(
            f"the sign rule needs the influence signal (a zero that means 'no effect'), got '{signal}'"
        )
    if not 0 < fraction <= 0.5:
        raise InputError(f"fraction must be in (0, 0.5], got {fraction}")
    groups: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in records:
        value = r.get(signal)
        if value is not None and math.isfinite(value):
            groups[str(r["group"])].append((DIRECTION[signal] * value, str(r["id"])))
    if not groups:
        raise InputError(f"no example has the signal '{signal}'")
    multi = {g: v for g, v in groups.items() if len(v) >= 2}
    both = [g for g, v in multi.items() if any(h > 0 for h, _ in v) and any(h < 0 for h, _ in v)]
    used = rule
    if rule == "auto":
        used = "sign" if signal == "influence" and multi and len(both) * 2 >= len(multi) else "rank"
    pairs: list[tuple[str, str]] = []
    with_pairs = 0
    for g in sorted(multi):
        items = sorted(multi[g], key=lambda x: (-x[0], x[1]))  # most helpful first; ties by id
        if used == "sign":
            chosen = [i for h, i in items if h > 0]
            rejected = [i for h, i in items if h < 0]
        else:
            k = max(1, int(len(items) * fraction))
            chosen = [i for _, i in items[:k]]
            rejected = [i for h, i in items[-k:] if h < items[k - 1][0]]  # strictly less helpful
        new = [(c, r) for c in chosen for r in rejected]
        with_pairs += bool(new)
        pairs += new
    note = {
        "rule": used,
        "signal": signal,
        "groups": len(groups),
        "groups_of_two_or_more": len(multi),
        "both_sides": len(both),
        "groups_with_pairs": with_pairs,
        "pairs": len(pairs),
    }
    if not pairs:
        why = (
            "no group has both a helpful (influence < 0) and a harmful (influence > 0) example"
            if used == "sign"
            else "no group has 2 or more examples with different values"
        )
        raise InputError(
            f"no preference pair: {why} ({len(groups)} groups, {len(multi)} with 2 or more examples)"
        )
    return pairs, note
