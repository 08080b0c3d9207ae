"""Which responses a teacher's token limit cut, and how many of those were repetition loops
(issue 46; the instruction probe's length rule, docs/instruction-probe.md, rule 2: a limit is
raised only when more than 15% of a teacher's responses are cut *and not looping*, since a
higher limit finishes a long answer but only lengthens a loop).

A response is **looping** when, with every run of digits read as one symbol (so "21. Do 10
dips." and "22. Do 10 dips." repeat), some span of ``n`` words (6) occurs at least ``times``
(3) times in its second half. A rule of thumb, not a parser: a long list of like items ("Known
for its ... and vibrant nightlife") counts as a loop, and code that repeats a line can too; the
per-teacher count of finished responses it calls looping is printed beside, as its false-alarm
scale.

    python experiments/cut_responses.py RUN_DIR [--json OUT]

Reads every ``store.sqlite`` under ``RUN_DIR`` (read only) and prints, per teacher: the
successful responses, the share cut by the limit (``finish_reason == "length"``), how many cut
ones loop, the share cut and not looping (the rule's figure), and the finished ones that loop.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path


def looping(text: str, n: int = 6, times: int = 3) -> bool:
    """Whether ``text`` repeats itself: some ``n``-word span (digit runs read as one symbol)
    occurs at least ``times`` times in its second half (by words). Text whose second half is
    shorter than ``n * times`` words is never looping."""
    words = re.sub(r"\d+", "0", text).split()
    tail = words[len(words) // 2 :]
    if len(tail) < n * times:
        return False
    spans = Counter(tuple(tail[i : i + n]) for i in range(len(tail) - n + 1))
    return spans.most_common(1)[0][1] >= times


def cut_table(rows: list[tuple[str, str | None, str]]) -> dict[str, dict]:
    """Per teacher, from ``(teacher, finish_reason, response)`` of successful responses:
    ``{"responses", "cut", "cut_looping", "cut_share", "cut_not_looping_share",
    "finished_looping"}`` (shares of all the teacher's responses)."""
    by: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for teacher, finish, text in rows:
        by[teacher].append((finish == "length", looping(text or "")))
    out = {}
    for teacher, v in by.items():
        cut = sum(c for c, _ in v)
        cut_looping = sum(c and lp for c, lp in v)
        out[teacher] = {
            "responses": len(v),
            "cut": cut,
            "cut_looping": cut_looping,
            "cut_share": cut / len(v),
            "cut_not_looping_share": (cut - cut_looping) / len(v),
            "finished_looping": sum(lp and not c for c, lp in v),
        }
    return out


def store_rows(run_dir: Path) -> list[tuple[str, str | None, str]]:
    """``(teacher, finish_reason, response)`` of every successful response in the stores under
    ``run_dir``, opened read only (a running job keeps writing).

    Raises:
        SystemExit: no store under ``run_dir`` (the message names it).
    """
    stores = sorted(run_dir.rglob("store.sqlite"))
    if not stores:
        raise SystemExit(f"{run_dir}: no store.sqlite under it")
    rows = []
    for path in stores:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows += db.execute(
                "SELECT teacher, finish_reason, response FROM generations WHERE status = 'ok'"
            ).fetchall()
        finally:
            db.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    table = cut_table(store_rows(args.run_dir))
    print("| teacher | responses | cut | cut, looping | cut, not looping | finished, looping |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t, r in table.items():
        print(
            f"| {t} | {r['responses']} | {r['cut_share']:.1%} | {r['cut_looping']} of {r['cut']} | "
            f"{r['cut_not_looping_share']:.1%} | {r['finished_looping']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
