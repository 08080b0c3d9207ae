"""experiments/store_records.py: a run's responses and scores survive a machine without the run."""

import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import store_records  # noqa: E402

from persyn.core.records import Generation  # noqa: E402
from persyn.store import Store  # noqa: E402


def test_dump_then_load_gives_a_bare_run_directory_the_same_rows(tmp_path):
    run = tmp_path / "run"
    with Store(run / "seed-1" / "students" / "s" / "store.sqlite") as st:
        st.add_generations(
            [
                Generation("k1", "p1", "t", "#### 5", prompt_tokens=7, completion_tokens=3, seconds=0.5),
                Generation("k2", "p2", "t", "", status="failed", error="HTTP 500"),
            ]
        )
        st.add_scores("quality", "verifier/v1", [("k1", 1.0, None), ("k2", None, "failed")])
    records = tmp_path / "records"
    counts = store_records.dump(run, records)
    rel = Path("seed-1/students/s")
    assert counts == {str(rel / "generations"): 2, str(rel / "scores"): 2}
    assert b"#### 5" in gzip.decompress((records / rel / "generations.jsonl.gz").read_bytes())

    bare = tmp_path / "bare"
    with Store(bare / rel / "store.sqlite") as st:  # a row the new run made already is kept
        st.add_generations([Generation("k1", "p1", "t", "#### 6")])
    assert store_records.load(records, bare) == {str(rel / "generations"): 1, str(rel / "scores"): 2}
    with Store(bare / rel / "store.sqlite") as st:
        got = st.generations(["k1", "k2"])
        assert got["k1"].response == "#### 6"  # not overwritten
        assert (got["k2"].status, got["k2"].error) == ("failed", "HTTP 500")
        assert st.scores("quality", "verifier/v1") == {"k1": (1.0, None), "k2": (None, "failed")}
    # loading again inserts nothing
    assert set(store_records.load(records, bare).values()) == {0}
