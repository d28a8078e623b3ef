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
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _models import add_model_options, device_label, load_engine

from agentkit.engine.kv_cache import cache_argument


def dynamic_rate(model, prompt: list[int], tokens: int) -> float:
    from transformers import DynamicCache

    cache = DynamicCache()
    device = model.device
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt], device=device), **cache_argument(model, cache), use_cache=True, logits_to_keep=1).logits[0, -1]
        started = time.perf_counter()
        for _ in range(tokens):
            token = int(logits.argmax())
            logits = model(input_ids=torch.tensor([[token]], device=device), **cache_argument(model, cache), use_cache=True, logits_to_keep=1).logits[0, -1]
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
    add_model_options(parser)
    parser.add_argument("--tokens", type=int, default=48, help="decode tokens per measurement")
    parser.add_argument("--context", type=int, default=1024, help="grow the context to this many tokens")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from agentkit.engine.static_cache import StaticSlot

    engine = load_engine(args, static_cache=False)
    model = engine.model
    prompt = engine.tokenizer("The history of the Roman empire is a long story, and it begins")["input_ids"]
    figures: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "device": device_label(engine),
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
