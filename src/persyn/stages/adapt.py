"""``persyn adapt-generator``: one Montessori-Instruct step (arXiv 2410.14208, Sec. 3): preference
pairs from the stored per-example signals of a ``persyn influence`` run, then DPO of the
generator on them (``persyn.synthesis.montessori``).

A pair's DPO prompt is the generation request both examples answered (the example line's
``request``); chosen and rejected are what the generator wrote (``generated``). Writes the tuned
generator to ``output`` (a plain model directory) with ``pairs.json`` (the pairing note and the
pairs by example id) beside its ``persyn_dpo.json``. A finished output with the same inputs is
kept, not trained again.
"""

from __future__ import annotations

import json
from pathlib import Path

from persyn.core.errors import InputError
from persyn.core.hashing import stable_hash
from persyn.core.io import write_atomic
from persyn.stages.influence import read_examples, stored_signals
from persyn.synthesis.montessori import preference_pairs
from persyn.training.dpo import dpo_generator
from persyn.training.dpo_config import DPOSettings


def dpo_rows(examples: dict[str, dict], pairs: list[tuple[str, str]], where: Path | str) -> list[dict]:
    """``{"prompt", "chosen", "rejected"}`` texts for ``pairs`` of example ids (``examples`` as
    ``read_examples`` gives them, by id).

    Raises:
        InputError: an example without a non-empty ``request`` (names ``where`` and the id).
    """
    rows = []
    for c, r in pairs:
        request = examples[c]["raw"].get("request")
        if not isinstance(request, str) or not request.strip():
            raise InputError(f"{where}: example '{c}' has no 'request' (the generator's prompt)")
        rows.append(
            {"prompt": request, "chosen": examples[c]["generated"], "rejected": examples[r]["generated"]}
        )
    return rows


def adapt_generator(
    examples_path: Path,
    influence_dir: Path,
    generator: str,
    output: Path,
    settings: DPOSettings | None = None,
    signal: str = "influence",
    rule: str = "auto",
    fraction: float = 1 / 3,
) -> dict:
    """Pair, then DPO ``generator`` (alias, HF id or local path) into ``output``. Returns
    ``persyn_dpo.json``'s content plus ``note`` (``preference_pairs``'s: the rule used, groups,
    groups with both sides, pairs).

    Raises:
        InputError: no finished influence run in ``influence_dir``, no pair (the message says
            why: e.g. no group with both a helpful and a harmful example), an example without a
            ``request``; see ``dpo_generator`` for the model's errors.
    """
    settings = settings or DPOSettings()
    examples = {e["id"]: e for e in read_examples(examples_path)}
    records = [r for r in stored_signals(influence_dir) if r.get("id") in examples]
    pairs, note = preference_pairs(records, signal, rule, fraction)
    rows = dpo_rows(examples, pairs, examples_path)
    key = stable_hash(["adapt/v1", generator, rows, settings.key_fields()])
    done = output / "persyn_dpo.json"
    if done.exists():
        try:
            info = json.loads(done.read_text())
        except ValueError:  # not a finished marker (e.g. torn by an older persyn): train again
            info = {}
        if isinstance(info, dict) and info.get("key") == key:
            return info
    info = dpo_generator(rows, generator, output, settings)
    info.update(key=key, note=note)
    # pairs.json first: the keyed marker, written last and atomically, is what says "finished".
    write_atomic(output / "pairs.json", json.dumps({"note": note, "pairs": pairs}, indent=2) + "\n")
    write_atomic(done, json.dumps(info, indent=2) + "\n")
    return info
