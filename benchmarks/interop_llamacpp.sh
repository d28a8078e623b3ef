#!/usr/bin/env bash
# Interop with a server nobody here wrote: llama.cpp's OpenAI-compatible server (llama-cpp-python)
# serves the embedded SmolLM2 GGUF, and an agentkit agent runs through RemoteBackend against it.
#
#   bash benchmarks/interop_llamacpp.sh        # after `make test` or `make demo` (uses .venv)
#
# Not in CI: llama-cpp-python compiles llama.cpp from source (about 10 minutes on 2 cores). The
# server gets its own virtualenv (.venv/llamacpp) so its dependencies never touch agentkit's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SERVER_VENV=.venv/llamacpp
PORT=${PORT:-8093}
if [ ! -x "$SERVER_VENV/bin/python" ] || ! "$SERVER_VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  python3 -m venv "$SERVER_VENV"
  CMAKE_ARGS="-DGGML_NATIVE=ON" "$SERVER_VENV/bin/pip" install -q 'llama-cpp-python[server]'
fi
GGUF=$($PY -c "from agentkit.engine.loading import embedded_gguf_path; print(embedded_gguf_path())")
"$SERVER_VENV/bin/python" -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$PORT" --n_ctx 4096 \
  --model_alias smollm2 > /tmp/llamacpp-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break; sleep 0.5; done
$PY - "$PORT" <<'PYEOF'
import datetime, sys, time
from agentkit import Agent, RemoteBackend
from agentkit.tools import calculator
from agentkit.tools.calculator import CALCULATOR_EXAMPLES

backend = RemoteBackend(f"http://127.0.0.1:{sys.argv[1]}/v1", model="smollm2")
agent = Agent(backend, tools=[calculator], examples=CALCULATOR_EXAMPLES, max_steps=4)
for question, expected in [("What is 17 * 23?", "391"), ("What is 45 + 78?", "123"), ("How much is 1200 / 16?", "75")]:
    started = time.perf_counter()
    result = agent.run(question)
    steps = [s.raw_output for s in result.steps]
    invalid = sum(len(s.rejected_outputs) for s in result.steps)
    ok = str(result.output).strip() == expected
    print(f"{datetime.date.today()} llama.cpp server, SmolLM2 Q4_1 GGUF: {question!r} -> {result.output!r} "
          f"({'right' if ok else 'WRONG'}), {len(steps)} steps, {invalid} invalid replies, {time.perf_counter() - started:.2f} s, "
          f"schema sent as: {backend.strategy}")
    for step in steps:
        print("   ", step)
PYEOF
