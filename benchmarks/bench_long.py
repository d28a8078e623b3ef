"""Long context: prefill and decode speed, and peak memory, at 8K / 32K / 128K tokens.

A random-weight Llama with a 128K-token configuration (Llama 3.1 RoPE scaling, GQA) needs no
download. Side by side in one run, per length: the engine's chunked prefill (`prefill_chunk`
tokens per pass) against one single pass over the whole prompt (where that fits in memory), then
greedy decoding through the engine's decode loop at that context, with the mask of a real step
grammar applied at every token (the agent's situation: a long conversation, a short step), once with
agentkit's KV cache (appends in place) and once with transformers' DynamicCache (copies the whole
cache with torch.cat for every token).

    .venv/bin/python benchmarks/bench_long.py                        # CPU: a small model, 8K and 32K
    python3 benchmarks/bench_long.py --device cuda --shape 1b --lengths 8192,32768,131072

Peak memory is the CUDA allocator's high-water mark (not measured on CPU).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {
    # hidden, layers, heads, kv heads, intermediate: "1b" is Llama-3.2-1B's shape with a 49K vocabulary.
    "tiny": (256, 4, 8, 2, 768),
    "1b": (2048, 16, 32, 8, 8192),
}


def random_long_llama(vocab: int, shape: str, device: str, dtype: torch.dtype) -> object:
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, kv_heads, intermediate = SHAPES[shape]
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, intermediate_size=intermediate, max_position_embeddings=131072,
        rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.to(dtype).eval()


def measure_prefill(model, ids: list[int], chunk: int) -> dict:
    from agentkit.engine.forward import prefill
    from agentkit.engine.kv_cache import new_cache

    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with torch.inference_mode():
        cache = new_cache()
        prefill(model, ids, cache, chunk=chunk)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return {"seconds": round(seconds, 3), "tok_s": round(len(ids) / seconds, 1), "peak_gib": None if peak is None else round(peak, 2)}, cache


def measure_decode(model, tokenizer, ids: list[int], tokens: int, cache) -> dict:
    """Greedy decode at this context through the engine's loop, under a real step grammar's mask.

    `cache` holds the KV state of `ids[:-1]`; only the last prompt token is run before decoding.
    """
    from agentkit import Agent
    from agentkit.engine.decode import decode
    from agentkit.engine.grammar import GrammarCompiler, TokenMask
    from agentkit.testing import ScriptedBackend
    from agentkit.tools import calculator

    constraint = Agent(ScriptedBackend([]), tools=[calculator]).constraint
    compiler = GrammarCompiler(tokenizer)
    matcher = compiler.matcher(constraint)
    mask = TokenMask(compiler.vocab_size, pin_memory=model.device.type == "cuda")
    result = decode(
        model, ids, max_new_tokens=tokens, eos_ids=set(), matcher=matcher, mask=mask, jump_forward=False,
        cache=cache, cached_tokens=len(ids) - 1,
    )
    steps = max(1, result.forward_passes - 1)
    return {"tokens": len(result.tokens), "tok_s": round(steps / result.decode_seconds, 1), "mask_ms": round(1000 * result.mask_seconds / steps, 3)}


def _as_concatenating_cache(cache):
    """A copy of `cache` as a plain transformers DynamicCache (appends by torch.cat), for comparison."""
    from transformers import DynamicCache

    plain = DynamicCache()
    for index, layer in enumerate(cache.layers):
        plain.update(layer.keys.clone(), layer.values.clone(), index)
    return plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (CUDA default)")
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--lengths", default="8192,32768", help="prompt lengths in tokens, comma-separated")
    parser.add_argument("--chunk", type=int, default=2048, help="prefill_chunk")
    parser.add_argument("--single-pass-up-to", type=int, default=8192, help="longest prompt also prefilled in one pass")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the embedded SmolLM2's)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from agentkit.engine.loading import torch_dtype

    if args.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    else:
        from agentkit.engine.loading import cached_conversion, embedded_gguf_path

        tokenizer = AutoTokenizer.from_pretrained(str(cached_conversion(embedded_gguf_path())))
    dtype = torch_dtype(args.dtype, args.device)
    model = random_long_llama(len(tokenizer), args.shape, args.device, dtype)
    generator = torch.Generator().manual_seed(1)
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        ids = torch.randint(100, len(tokenizer) - 100, (length,), generator=generator).tolist()
        measure_prefill(model, ids[:256], args.chunk)  # warm-up: kernels, allocator
        single = None
        if length <= args.single_pass_up_to:
            single, cache = measure_prefill(model, ids, length)
            del cache
        chunked, cache = measure_prefill(model, ids, args.chunk)
        cache.crop(-1)
        plain = _as_concatenating_cache(cache)  # transformers' DynamicCache: torch.cat on every token
        decoding = measure_decode(model, tokenizer, ids, args.decode_tokens, cache)
        del cache
        baseline = measure_decode(model, tokenizer, ids, args.decode_tokens, plain)
        del plain
        row = {
            "tokens": length, "chunked_prefill": chunked, "single_pass_prefill": single, "decode": decoding,
            "decode_concatenating_cache": baseline, "decode_speedup": round(decoding["tok_s"] / baseline["tok_s"], 2),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU {platform.machine()}, {torch.get_num_threads()} threads"
    report = {
        "date": datetime.date.today().isoformat(), "device": device, "torch": torch.__version__,
        "model": f"random Llama, shape {args.shape} {SHAPES[args.shape]}, 128K config, {str(dtype).replace('torch.', '')}",
        "prefill_chunk": args.chunk, "rows": rows,
    }
    print(
        "\n| tokens | chunked prefill tok/s | peak GiB | one-pass prefill tok/s | peak GiB "
        "| decode tok/s (agentkit cache) | decode tok/s (torch.cat cache) | x | mask ms/token |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        c, s, d, b = row["chunked_prefill"], row["single_pass_prefill"] or {}, row["decode"], row["decode_concatenating_cache"]
        print(
            f"| {row['tokens']:,} | {c['tok_s']} | {c['peak_gib']} | {s.get('tok_s', 'skipped')} | {s.get('peak_gib', '')} "
            f"| {d['tok_s']} | {b['tok_s']} | {row['decode_speedup']} | {d['mask_ms']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
