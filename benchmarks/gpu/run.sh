#!/usr/bin/env bash
# Run THERE (the GPU machine), from the repository root, with .gpuwheels carried:
#   bash benchmarks/gpu/run.sh        # writes logs and JSON figures under $OUT (or ./gpu-out)
# Installs the carried wheels and agentkit (no network), runs the GPU tests and the model-free suite,
# then the agent, decode, static-slot, concurrency and long-context benchmarks on a random-weight Llama-3.1-8B-shaped
# model (bf16). Each benchmark writes a log and a JSON file under $OUT.
set -uo pipefail
out=${OUT:-gpu-out}; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpuwheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.gpu-src PYTHONUNBUFFERED=1 AGENTKIT_TEST_TOKENIZER=$PWD/.gpuwheels/tokenizer
# agentkit itself, laid out like the wheel (agentkit/, engine/, tools/, prompts/ -> agentkit.*), and
# python3 -P so the source folder ./agentkit (without its subpackages) can't shadow it.
rm -rf .gpu-src && mkdir -p .gpu-src && cp -r agentkit .gpu-src/agentkit
for sub in engine tools prompts; do cp -r "$sub" ".gpu-src/agentkit/$sub"; done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -P -m pytest -q -p no:cacheprovider tests -m "not slow" --deselect tests/test_packaging.py 2>&1 | tee "$out/tests.log"
python3 -P benchmarks/bench_agent.py --device cuda --dtype bfloat16 --random-8b --tokenizer .gpuwheels/tokenizer \
  --system-tokens 1500 --observation-tokens 650 --json "$out/bench_agent.json" 2>&1 | tee "$out/bench_agent.log"
python3 -P benchmarks/bench_decode.py --device cuda --dtype bfloat16 --random-8b --tokenizer .gpuwheels/tokenizer \
  --json "$out/bench_decode.json" 2>&1 | tee "$out/bench_decode.log"
python3 -P benchmarks/bench_static_slot.py --device cuda --dtype bfloat16 --random-8b --tokenizer .gpuwheels/tokenizer \
  --context 4096 --json "$out/bench_static_slot.json" 2>&1 | tee "$out/bench_static_slot.log"
python3 -P benchmarks/bench_concurrency.py --device cuda --dtype bfloat16 --random-8b --tokenizer .gpuwheels/tokenizer \
  --json "$out/bench_concurrency.json" 2>&1 | tee "$out/bench_concurrency.log"
python3 -P benchmarks/bench_long.py --device cuda --shape 1b --lengths 8192,32768,131072 --single-pass-up-to 32768 \
  --tokenizer .gpuwheels/tokenizer --json "$out/bench_long.json" 2>&1 | tee "$out/bench_long.log"
