"""Secrets never written: an API key (from api_key_env) and credentials in a base_url are not
in any output file, the store, captured output, or an error message."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import tiny_config, tiny_teacher_server

from persyn.config import make_teacher
from persyn.core.errors import PersynError
from persyn.engines.openai_engine import OpenAIEngine

KEY = "sk-PLANTED-7f3c9a1e5b"
PASSWORD = "pw-PLANTED-41d2"


def test_a_planted_key_and_url_password_appear_nowhere(tiny_models, tmp_path):
    # The first calibration request of each teacher gets an error body that echoes the
    # credentials it got: a Bearer key from api_key_env for one teacher, Basic user:password
    # from the base_url for the other (the others succeed: a teacher that fails on every
    # request would stop the run).
    server = tiny_teacher_server(script=["echo", None, None, None] * 2)
    try:
        cfg = tiny_config(tiny_models, tmp_path, n=8)
        served = {"engine": "openai", "model": "tiny-teacher", "max_retries": 1, "concurrency": 1}
        cfg["teachers"][0] = {
            **served,
            "name": "keyed",
            "base_url": server.url,
            "api_key_env": "PERSYN_PLANTED_KEY",
        }
        cfg["teachers"][1] = {
            **served,
            "name": "userinfo",
            "base_url": server.url.replace("http://", f"http://user:{PASSWORD}@"),
        }
        cfg["calibration"] = {"size": 4}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "PERSYN_PLANTED_KEY": KEY}
        res = subprocess.run(
            [sys.executable, "-m", "persyn", "run", str(path)], env=env, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        server.close()
    out = tmp_path / "run"
    failed = (out / "failed.jsonl").read_text()
    # Recorded as failed items, with the echoed credentials masked.
    assert "bad credentials: Bearer ***" in failed and "bad credentials: Basic ***" in failed
    basic = base64.b64encode(f"user:{PASSWORD}".encode())  # how the password travels
    planted = [KEY.encode(), PASSWORD.encode(), basic]
    files = [f for f in out.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {
        "store.sqlite",
        "run_config.json",
        "summary.json",
        "failed.jsonl",
        "calibration.jsonl",
    }
    for f in files:
        data = f.read_bytes()
        assert not any(p in data for p in planted), f
    assert not any(p.decode() in res.stdout + res.stderr for p in planted)


def test_an_unreachable_server_error_masks_the_url_password(monkeypatch):
    monkeypatch.setenv("PERSYN_PLANTED_KEY", KEY)
    t = make_teacher(
        name="served",
        engine="openai",
        base_url=f"http://user:{PASSWORD}@127.0.0.1:9/v1",
        model="m",
        api_key_env="PERSYN_PLANTED_KEY",
        timeout=0.5,
    )
    try:
        OpenAIEngine(t, 0)
    except PersynError as exc:
        text = str(exc)
    else:
        raise AssertionError("no error for an unreachable server")
    assert "is unreachable" in text
    assert PASSWORD not in text and KEY not in text and "http://***@127.0.0.1:9/v1" in text


def test_a_planted_key_is_not_in_the_ray_logs(tiny_models, tmp_path):
    import glob

    import pytest

    pytest.importorskip("ray")
    # two of its four calibration requests echo the credentials (all four failing would stop the run)
    server = tiny_teacher_server(script=["echo", "echo", None, None])
    import tempfile

    # This run's own Ray session directory (logs included); short: Ray's socket paths must fit
    # in 107 bytes.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    try:
        cfg = tiny_config(tiny_models, tmp_path, n=6, executor="ray")
        cfg["ray"] = {"num_cpus": 2, "shard_size": 2}
        cfg["teachers"][1] = {
            "name": "keyed",
            "engine": "openai",
            "model": "tiny-teacher",
            "max_retries": 1,
            "concurrency": 1,
            "base_url": server.url.replace("http://", f"http://user:{PASSWORD}@"),
            "api_key_env": "PERSYN_PLANTED_KEY",
        }
        cfg["calibration"] = {"size": 4}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(PERSYN_PLANTED_KEY=KEY, RAY_TMPDIR=str(ray_tmp))
        res = subprocess.run(
            [sys.executable, "-m", "persyn", "run", str(path)], env=env, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        server.close()
    logs = [f for f in glob.glob(str(ray_tmp / "**" / "*"), recursive=True) if os.path.isfile(f)]
    assert any("logs" in f for f in logs)  # the session really wrote its logs here
    basic = base64.b64encode(f"user:{PASSWORD}".encode())
    for f in logs:
        data = open(f, "rb").read()
        assert KEY.encode() not in data and PASSWORD.encode() not in data and basic not in data, f
