"""A real crash: SIGKILL a `persyn run` subprocess during generation, then resume it."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import yaml
from conftest import tiny_config


def _write_prompts(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "prompt": f"What is {i} + {i + 1}?",
                        "answer": str(2 * i + 1),
                        "solution": f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}",
                    }
                )
                + "\n"
            )


def _stored(db_path):
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def _persyn(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "persyn", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def test_sigkill_during_generation_then_resume(tiny_models, tmp_path):
    n = 40
    cfg = tiny_config(tiny_models, tmp_path)
    _write_prompts(tmp_path / "many.jsonl", n)
    cfg["prompts"]["path"] = str(tmp_path / "many.jsonl")
    for t in cfg["teachers"][:2]:
        t.update(max_new_tokens=48, batch_size=1)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    db = tmp_path / "run" / "store.sqlite"

    proc = _persyn("run", str(cfg_path))
    deadline = time.time() + 300
    while _stored(db) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = _stored(db)
    total = 20 * 3 + 20  # calibration: 20 prompts x 3 teachers; routed: 20 prompts, one each
    assert 5 <= at_kill < 20 * 2, "killed during calibration generation"

    resumed = _persyn("run", str(cfg_path))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["generations"] == total
    assert summary["generations_new"] == total - at_kill  # nothing stored was generated again
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == total
    ids = [json.loads(x)["id"] for x in (tmp_path / "run" / "dataset.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == n

    # The same config run without interruption gives the same dataset (greedy decoding).
    clean = _persyn("run", str(cfg_path), "-o", str(tmp_path / "clean"))
    out, _ = clean.communicate(timeout=600)
    assert clean.returncode == 0, out
    assert (tmp_path / "clean" / "dataset.jsonl").read_text() == (
        tmp_path / "run" / "dataset.jsonl"
    ).read_text()
