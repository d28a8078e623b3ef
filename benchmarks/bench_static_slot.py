"""The static KV cache slot vs the dynamic cache, one token at a time, as the context grows.

Side by side in one run: decode tokens/s with the dynamic cache (the CPU default), the static slot
run eagerly, and the static slot with its one-token step compiled (`torch.compile`, CUDA graphs on
CUDA); plus the one-time compile cost and how many graphs were compiled while the context grew from
the prompt to `--context` tokens (the target: none after warm-up).

    .venv/bin/python benchmarks/bench_static_slot.py                  # CPU, embedded SmolLM2
    python3 benchmarks/bench_static_slot.py --device cuda --dtype bfloat16 --random-8b --tokenizer DIR
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def load(args: argparse.Namespace):
    from agentkit.engine import LocalEngine

    if not args.random_8b:
        return LocalEngine.default(device=args.device, dtype=args.dtype, static_cache=False)
    from transformers import AutoTokenizer

    from agentkit.engine.loading import cached_conversion, embedded_gguf_path, torch_dtype
    from bench_agent import random_8b  # the random-weight Llama-3.1-8B shape used by every GPU bench

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or cached_conversion(embedded_gguf_path()))
    return random_8b(tokenizer, args.device, torch_dtype(args.dtype, args.device), 32)


def dynamic_rate(model, prompt: list[int], tokens: int) -> float:
    from transformers import DynamicCache

    cache = DynamicCache()
    device = model.device
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt], device=device), past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1]
        started = time.perf_counter()
        for _ in range(tokens):
            token = int(logits.argmax())
            logits = model(input_ids=torch.tensor([[token]], device=device), past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1]
    return tokens / (time.perf_counter() - started)


def slot_rate(slot, prompt: list[int], tokens: int) -> float:
    slot.truncate(0)
    with torch.inference_mode():
        logits = slot.forward(prompt)
        started = time.perf_counter()
        for _ in range(tokens):
            logits = slot.forward([int(logits.argmax())])
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--random-8b", action="store_true")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder for --random-8b")
    parser.add_argument("--tokens", type=int, default=48, help="decode tokens per measurement")
    parser.add_argument("--context", type=int, default=1024, help="grow the context to this many tokens")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from agentkit.engine.static_cache import StaticSlot

    engine = load(args)
    model = engine.model
    prompt = engine.tokenizer("The history of the Roman empire is a long story, and it begins")["input_ids"]
    figures: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name() if model.device.type == "cuda" else f"CPU {platform.machine()}, {torch.get_num_threads()} threads",
        "model": engine.name,
        "torch": torch.__version__,
    }
    figures["dynamic_tok_s"] = dynamic_rate(model, prompt, args.tokens)
    eager = StaticSlot(model, args.context + 64, compile=False)
    figures["static_eager_tok_s"] = slot_rate(eager, prompt, args.tokens)
    del eager
    started = time.perf_counter()
    compiled = StaticSlot(model, args.context + 64, compile=True)
    figures["compile_seconds"] = time.perf_counter() - started
    slot_rate(compiled, prompt, 4)  # first replays settle (CUDA graph trees record on early calls)
    figures["static_compiled_tok_s"] = slot_rate(compiled, prompt, args.tokens)

    counters = torch._dynamo.utils.counters
    graphs = counters["stats"]["unique_graphs"]
    compiled.truncate(0)
    with torch.inference_mode():
        logits = compiled.forward(prompt)
        while len(compiled.ids) < args.context:
            logits = compiled.forward([int(logits.argmax())])
    figures["graphs_compiled_while_growing_to_context"] = counters["stats"]["unique_graphs"] - graphs
    figures["context_tokens"] = len(compiled.ids)
    figures["compiled_vs_dynamic"] = figures["static_compiled_tok_s"] / figures["dynamic_tok_s"]
    for key, value in figures.items():
        print(f"{key:42s} {value:.3f}" if isinstance(value, float) else f"{key:42s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
