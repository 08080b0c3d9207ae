"""experiments/cut_responses.py: the instruction probe's length rule reads how many cut responses
are repetition loops, in a real store written by persyn's Store."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import cut_responses as cr  # noqa: E402

from persyn.core.records import Generation  # noqa: E402
from persyn.store import Store  # noqa: E402

LOOP = "Here is the list. " + " ".join(f"{i}. Do 10 dips and stretch." for i in range(1, 20))
LONG = " ".join("w" + "".join(chr(97 + int(d)) for d in str(i)) for i in range(200))  # no span repeats


def test_looping_reads_numbered_repeats_as_loops_and_varied_text_not():
    assert cr.looping(LOOP)  # the numbers differ, the items repeat
    assert not cr.looping(LONG)
    assert not cr.looping("ok ok ok ok")  # too short to call
    # the repeat must be in the second half: a repeated opening followed by new text is not a loop
    assert not cr.looping("a b c d e f " * 3 + LONG)


def test_cut_table_from_a_store(tmp_path):
    with Store(tmp_path / "run" / "store.sqlite") as s:
        s.add_generations(
            [
                Generation("k1", "p1", "big", LOOP, "ok", None, 10, 384, "length", 1.0, "calibration"),
                Generation("k2", "p2", "big", LONG, "ok", None, 10, 384, "length", 1.0, "calibration"),
                Generation("k3", "p3", "big", "short answer", "ok", None, 10, 3, "stop", 1.0, "calibration"),
                Generation("k4", "p4", "big", LOOP, "ok", None, 10, 90, "stop", 1.0, "calibration"),
                Generation("k5", "p1", "small", None, "failed", "boom", None, None, None, 1.0, "calibration"),
                Generation("k6", "p2", "small", "fine", "ok", None, 10, 1, "stop", 1.0, "calibration"),
            ]
        )
    t = cr.cut_table(cr.store_rows(tmp_path))
    assert t["big"] == {
        "responses": 4,
        "cut": 2,
        "cut_looping": 1,
        "cut_share": 0.5,
        "cut_not_looping_share": 0.25,
        "finished_looping": 1,
    }
    assert t["small"]["responses"] == 1 and t["small"]["cut"] == 0  # the failed one is not counted


def test_no_store_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no store.sqlite"):
        cr.store_rows(tmp_path)
