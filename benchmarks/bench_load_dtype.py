"""Loading a GGUF (first conversion vs cached) and decode speed in fp32 vs bf16, side by side in one run.

    .venv/bin/python benchmarks/bench_load_dtype.py --model qwen2.5-coder-0.5b [--tokens 48]

Load time is `LocalEngine.from_pretrained(path)` wall time (the first call converts the GGUF and
caches it; run once with an empty cache to see that, again for the cached load). Decode: one warm-up
request, then a different short prompt of `--tokens` new tokens, unconstrained, greedy; tok/s is
completion tokens over the engine's own decode seconds (`Generation.details`), prefill reported apart.
"""

from __future__ import annotations

import argparse
import time

from _models import device_label, model_path

from agentkit import GenerationRequest, Message
from agentkit.engine import LocalEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="reference model name or a .gguf file")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    path = model_path(args.model)
    print(f"{path.name}; {time.strftime('%Y-%m-%d')}")
    for dtype in args.dtypes.split(","):
        started = time.perf_counter()
        engine = LocalEngine.from_pretrained(path, dtype=dtype)
        loaded = time.perf_counter() - started
        warm = GenerationRequest(messages=[Message(role="user", content="Write a short poem about the sea.")], max_tokens=args.tokens)
        engine.generate(warm)
        request = warm.model_copy(update={"messages": [Message(role="user", content="Write a short story about a cat.")]})
        g = engine.generate(request)
        d = g.details
        print(f"| {dtype} | load {loaded:.1f} s | decode {g.completion_tokens / d['decode_seconds']:.1f} tok/s | "
              f"prefill {g.prompt_tokens} tokens in {d['prefill_seconds']:.2f} s | {device_label(engine)} |", flush=True)


if __name__ == "__main__":
    main()
