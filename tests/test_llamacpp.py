"""Real llama.cpp: the in-process engine, and its OpenAI-compatible server
(`python -m llama_cpp.server`) on 127.0.0.1 with the packaged SmolLM2 GGUF driven through
`engine: openai` in a real `persyn run`. Skipped where llama-cpp-python is not installed
(`pip install 'persyn[llamacpp]'`).

Tests that load llama.cpp in-process are ``isolated`` (a child process each): llama.cpp's AMX
path segfaults on some CPUs, and a segfault must fail one test, not end the suite. The server
already runs in a process of its own."""

import json
import socket
import subprocess
import sys
import time

import pytest
from conftest import tiny_config

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

from persyn.config import make_teacher, parse_config  # noqa: E402
from persyn.core.records import Prompt  # noqa: E402
from persyn.engines.llamacpp_engine import LlamaCppEngine  # noqa: E402
from persyn.models.aliases import gguf_path  # noqa: E402
from persyn.pipeline import Pipeline  # noqa: E402

PROMPTS = [Prompt("a", "What is 2 + 3?", "5"), Prompt("b", "What is 10 - 4?", "6")]


@pytest.mark.isolated
def test_the_installed_llamacpp_is_the_safe_build(capfd):
    """The build the install line makes: llama.cpp reports no AMX feature, loading the packaged
    SmolLM2 GGUF allocates no AMX buffer, and a 4-token greedy completion returns. Fails on any
    machine (AMX or not) if the install line regresses to the native build on an AMX CPU, or to
    a build with the AMX options on."""
    from llama_cpp import Llama

    from persyn.core.hardware import amx_in_system_info, llamacpp_system_info

    info = llamacpp_system_info()
    assert "CPU" in info and not amx_in_system_info(info), info
    llm = Llama(model_path=str(gguf_path("smollm2-135m-instruct")), n_ctx=256, seed=0, verbose=True)
    out = llm.create_completion("1, 2, 3, 4, 5,", max_tokens=4, temperature=0, top_k=1)
    log = capfd.readouterr().err
    assert "model buffer size" in log, log[-2000:]  # the load log was captured...
    assert "AMX" not in log, [x for x in log.splitlines() if "AMX" in x]  # ...and names no AMX buffer
    assert out["usage"]["completion_tokens"] == 4 and out["choices"][0]["text"].strip()


@pytest.mark.isolated
def test_in_process_llamacpp_teacher():
    t = make_teacher(
        name="l", engine="llamacpp", model="smollm2-135m-instruct", max_new_tokens=16, batch_size=1
    )
    eng = LlamaCppEngine(t, seed=0)
    out = [item for batch in eng.generate(PROMPTS) for item in batch]
    assert [pid for pid, _ in out] == ["a", "b"]
    for _, c in out:
        assert c.error is None and c.text and 0 < c.completion_tokens <= 16 and c.prompt_tokens > 5
    again = [c.text for batch in LlamaCppEngine(t, seed=0).generate(PROMPTS) for _, c in batch]
    assert again == [c.text for _, c in out]  # greedy: reproducible


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    import httpx

    port = _free_port()
    gguf = gguf_path("smollm2-135m-instruct")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_persyn_run_against_the_real_llama_cpp_server(tiny_models, tmp_path, llama_server):
    cfg = tiny_config(tiny_models, tmp_path, n=6)
    cfg["teachers"][1] = {
        "name": "served-smollm2",
        "engine": "openai",
        "base_url": llama_server,
        "model": "smollm2",
        "max_new_tokens": 24,
        "concurrency": 2,
        "price_input_per_million": 0.1,
        "price_output_per_million": 0.2,
    }
    cfg["calibration"] = {"size": 4}
    with Pipeline(parse_config(cfg)) as p:
        summary = p.run().model_dump()
    assert summary["n_dataset"] + summary["failed"] >= 6
    lines = [json.loads(x) for x in (tmp_path / "run/dataset.jsonl").read_text().splitlines()]
    assert len({x["id"] for x in lines}) == len(lines) == summary["n_dataset"]
    tok = summary["tokens"]["served-smollm2"]
    assert tok["prompt"] > 0 and tok["completion"] > 0 and summary["cost_usd"]["served-smollm2"] > 0


class FaultProxy:
    """Forwards to the real server, answering the first requests with injected faults instead:
    429 with Retry-After, 500, a stall past the client timeout, a dropped connection, malformed
    JSON."""

    def __init__(self, upstream: str, faults: list[str]):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        self.faults, self.lock, self.seen = list(faults), threading.Lock(), []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _relay(self, r):
                self.send_response(r.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_GET(self):
                self._relay(httpx.get(upstream + self.path.removeprefix("/v1"), timeout=30))

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with proxy.lock:
                    fault = proxy.faults.pop(0) if proxy.faults else None
                    proxy.seen.append(fault)
                if fault == "429":
                    self.send_response(429)
                    self.send_header("Retry-After", "0.2")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "stall":
                    time.sleep(4)
                if fault == "drop":
                    self.connection.shutdown(2)
                    return
                if fault == "badjson":
                    self.send_response(200)
                    self.send_header("Content-Length", "9")
                    self.end_headers()
                    self.wfile.write(b"{not json")
                    return
                r = httpx.post(
                    upstream + self.path.removeprefix("/v1"),
                    content=body,
                    timeout=60,
                    headers={"Content-Type": "application/json"},
                )
                self._relay(r)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_faults_in_front_of_the_real_server(tiny_models, tmp_path, llama_server):
    proxy = FaultProxy(llama_server, ["429", "500", "stall", "drop", "badjson"])
    cfg = tiny_config(tiny_models, tmp_path, n=6)
    cfg["teachers"][1] = {
        "name": "served",
        "engine": "openai",
        "base_url": proxy.url,
        "model": "smollm2",
        "max_new_tokens": 16,
        "concurrency": 2,
        "timeout": 2.5,
        "max_retries": 6,
    }
    cfg["calibration"] = {"size": 4}
    with Pipeline(parse_config(cfg)) as p:
        summary = p.run().model_dump()
        served = [g for g in p.store.generations(p.store.generation_keys()).values() if g.teacher == "served"]
    assert proxy.seen[:5] == ["429", "500", "stall", "drop", "badjson"]  # every fault was served
    # Every prompt the served teacher was asked is answered or a recorded failure; none lost.
    assert len({g.prompt_id for g in served}) == len(served) >= 4
    assert all(g.ok for g in served)  # every fault was retried away (max_retries 6 > 5 faults)
    lines = (tmp_path / "run/dataset.jsonl").read_text().splitlines()
    assert len(lines) + sum(1 for f in summary["failures"] if f["stage"] == "export") == 6


@pytest.mark.isolated
def test_llamacpp_student_scorer_matches_transformers():
    from persyn.config import StudentConfig
    from persyn.core.records import ScoreItem
    from persyn.scoring.learnability import LearnabilityScorer

    items = [
        ScoreItem("k1", "What is 2 + 3?", "2 + 3 = 5\n#### 5"),
        ScoreItem("k2", "What is 10 - 4?", "The answer is 6."),
        ScoreItem("k3", "Name a colour.", "Blue."),
    ]
    hf = LearnabilityScorer(StudentConfig(model="smollm2-135m-instruct"))
    ll = LearnabilityScorer(StudentConfig(model="smollm2-135m-instruct", backend="llamacpp"))
    assert hf.key != ll.key  # cached apart
    a = {k: v for rows in hf.score(items) for k, v, _ in rows}
    b = {k: v for rows in ll.score(items) for k, v, _ in rows}
    for k in a:  # same tokens, same (dequantised) weights: the numbers agree closely
        assert b[k] == pytest.approx(a[k], abs=0.05), (k, a[k], b[k])
    assert a["k1"] != pytest.approx(a["k3"], abs=0.05)
