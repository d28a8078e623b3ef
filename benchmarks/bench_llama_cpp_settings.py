"""The measurements behind the llama.cpp engine's defaults (`engine/llama_context.py`), in one run.

1. Flash attention on/off and llama.cpp's repacked weight copy on/off: decode tok/s at 32, 300 and
   1,000 tokens of context, raw `llama_decode` loop (no sampling), each setting in a child process.
2. Thread contention: the engine's decode tok/s alone, beside an idle torch engine, and after the
   torch engine has run a `generate` in the same process.

Run: `.venv/bin/python benchmarks/bench_llama_cpp_settings.py [--model qwen2.5-coder-0.5b]`
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import model_path

SETTING_CHILD = """
import sys, time
from pathlib import Path
from agentkit.engine.llama_context import _init_backend
lib = _init_backend()
path, flash, repack = sys.argv[1], int(sys.argv[2]), bool(int(sys.argv[3]))
params = lib.llama_model_default_params(); params.use_extra_bufts = repack
model = lib.llama_model_load_from_file(path.encode(), params)
c = lib.llama_context_default_params()
c.n_ctx, c.n_batch, c.n_ubatch, c.n_seq_max, c.kv_unified = 8192, 512, 512, 8, True
c.n_threads = c.n_threads_batch = 2; c.flash_attn_type = flash
ctx = lib.llama_init_from_model(model, c); batch = lib.llama_batch_init(512, 0, 1)
def decode(tokens, pos):
    batch.n_tokens = len(tokens)
    for i, t in enumerate(tokens):
        batch.token[i] = t; batch.pos[i] = pos + i; batch.n_seq_id[i] = 1; batch.seq_id[i][0] = 0; batch.logits[i] = i == len(tokens) - 1
    assert lib.llama_decode(ctx, batch) == 0
rates = []
for length in (32, 300, 1000):
    lib.llama_memory_seq_rm(lib.llama_get_memory(ctx), -1, -1, -1)
    for start in range(0, length, 512):
        decode(list(range(100 + start, 100 + min(length, start + 512))), start)
    started = time.perf_counter()
    for i in range(64):
        decode([1000 + i], length + i)
    rates.append(64 / (time.perf_counter() - started))
print(" ".join(f"{r:.1f}" for r in rates))
"""

CONTENTION_CHILD = """
from agentkit import GenerationRequest, Message
from agentkit.engine import GGUFEngine, LocalEngine
engine = GGUFEngine.default(); engine.eos_ids = set()
messages = [Message(role="user", content="Write a story about the sea.")]
def rate():
    g = engine.generate(GenerationRequest(messages=messages, max_tokens=64))
    return 64 / g.details["decode_seconds"]
alone = max(rate(), rate())
torch_engine = LocalEngine.default(backend="torch")
idle = max(rate(), rate())
torch_engine.generate(GenerationRequest(messages=messages, max_tokens=8))
after = max(rate(), rate())
print(f"{alone:.1f} {idle:.1f} {after:.1f}")
"""


def child(code: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a .gguf file or reference model name (default: the embedded SmolLM2)")
    args = parser.parse_args()
    from agentkit.engine.loading import embedded_gguf_path

    path = str(embedded_gguf_path() if args.model is None else model_path(args.model))
    print(f"bench_llama_cpp_settings  {datetime.datetime.now().isoformat(timespec='seconds')}  {Path(path).name}, 2 threads")
    print("decode tok/s at context 32 / 300 / 1000 tokens:")
    for flash, repack in ((1, 0), (0, 0), (0, 1)):
        label = f"flash attention {'on ' if flash else 'off'}, repacked weights {'on ' if repack else 'off'}"
        print(f"  {label}: {child(SETTING_CHILD, path, str(flash), str(repack))}")
    alone, idle, after = child(CONTENTION_CHILD).split()
    print(f"GGUFEngine decode, embedded model: alone {alone}, beside an idle torch engine {idle}, "
          f"after the torch engine ran a generate {after} tok/s")


if __name__ == "__main__":
    main()
