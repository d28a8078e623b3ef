"""Prompt prefill speed of the llama.cpp engine at 256 and 512 tokens per `llama_decode` call, side by side.

Chooses `DEFAULT_BATCH_TOKENS` (engine/llama_context.py): llama.cpp's compute buffers grow with the
batch, so the smaller batch is kept when it prefills as fast. Alternating rounds, cold KV cells each
time, the same ~930-token prompt for both.

    .venv/bin/python benchmarks/bench_batch_tokens.py                         # the embedded SmolLM2
    .venv/bin/python benchmarks/bench_batch_tokens.py --model qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics

from bench_llama_cpp import gguf_file

from agentkit import GenerationRequest, Message
from agentkit.engine import GGUFEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a .gguf file or a reference model name (default: the embedded SmolLM2)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = gguf_file(args.model)
    engines = {batch: GGUFEngine(path, batch_tokens=batch, context_tokens=2048) for batch in (256, 512)}
    prompt = "Trains and travel policies, meals and hotels. " * 90 + "Summarise."
    request = GenerationRequest(messages=[Message(role="user", content=prompt)], max_tokens=1)
    speeds: dict[int, list[float]] = {batch: [] for batch in engines}
    for _ in range(args.rounds):
        for batch, engine in engines.items():
            engine.llama.reset()
            generation = engine.generate(request)
            speeds[batch].append(generation.prompt_tokens / generation.details["prefill_seconds"])
    print(f"{path.name}, {generation.prompt_tokens}-token prompt, {datetime.date.today()}, {platform.processor() or platform.machine()}")
    for batch, values in speeds.items():
        print(f"  {batch} tokens per call: {statistics.median(values):.1f} tok/s prefill (median of {args.rounds})")


if __name__ == "__main__":
    main()
