"""Decode speed, side by side in one run: HF generate (dynamic, static cache [+ compile on CUDA],
+ outlines, + xgrammar) vs agentkit (unconstrained, constrained).

CPU (default): the embedded SmolLM2-135M-Instruct, fp32, greedy, batch 1, on the math assistant's
real prompts. GPU: `--device cuda --random-8b --tokenizer DIR` (a random-weight Llama-3.1-8B shape,
bf16). Reports decode tokens/s (prefill excluded; for agentkit's constrained steps, tokens forced by
jump-forward count as generated tokens, as they are in the output), the grammar mask's cost per
token, the ratios, and on CUDA the fraction of the HBM roofline (`--hbm-gbps`, H100 SXM: 3350).
The xgrammar row runs only where xgrammar is installed (the GPU run carries its wheel).

Run: `.venv/bin/python benchmarks/bench_decode.py [--tokens 64] [--threads 2]`
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from math_assistant import build_agent  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _models import add_model_options, device_label, load_engine  # noqa: E402

from agentkit import GenerationRequest, JsonSchemaConstraint  # noqa: E402
from agentkit.engine import LocalEngine  # noqa: E402

QUESTIONS = ["What is 17 * 23?", "What is 45 + 78?", "How much is 1200 / 16?", "Compute 2 to the power of 10."]


def hf_generate_rate(engine: LocalEngine, prompt_ids: list[int], tokens: int, **generate_options) -> float:
    """Decode tokens/s of `model.generate` (greedy), prefill subtracted. `cache_implementation="static"`
    gives HF's static cache, which transformers compiles automatically on CUDA."""
    ids = torch.tensor([prompt_ids], device=engine.device)
    eos = sorted(engine.eos_ids)
    options = {"do_sample": False, "attention_mask": torch.ones_like(ids), "pad_token_id": eos[0] if eos else 0, **generate_options}
    with torch.inference_mode():
        _sync(engine)
        started = time.perf_counter()
        engine.model.generate(ids, max_new_tokens=1, min_new_tokens=1, **options)
        _sync(engine)
        prefill = time.perf_counter() - started
        started = time.perf_counter()
        out = engine.model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, **options)
        _sync(engine)
        total = time.perf_counter() - started
    new = out.shape[1] - ids.shape[1]
    return (new - 1) / max(total - prefill, 1e-9)


def _sync(engine: LocalEngine) -> None:
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)


def xgrammar_processor(engine: LocalEngine, schema: dict):
    """xgrammar's HF logits processor for `schema`, or None (with the reason printed) when unavailable."""
    import importlib.util

    if importlib.util.find_spec("xgrammar") is None:
        print("hf_generate_xgrammar: skipped, xgrammar not installed")
        return None
    try:
        import xgrammar
        import xgrammar.contrib.hf

        info = xgrammar.TokenizerInfo.from_huggingface(engine.tokenizer, vocab_size=engine.model.config.vocab_size)
        compiled = xgrammar.GrammarCompiler(info).compile_json_schema(json.dumps(schema))
        return lambda: xgrammar.contrib.hf.LogitsProcessor(compiled)
    except Exception as exc:
        print(f"hf_generate_xgrammar: skipped ({type(exc).__name__}: {exc})")
        return None


def hf_outlines_rate(engine: LocalEngine, processor, prompt_ids: list[int], max_tokens: int) -> tuple[float, int]:
    """Decode tokens/s of `model.generate` + a JSON-schema logits processor, prefill subtracted.

    `processor` is outlines' processor (has .reset()) or a factory of fresh processors (xgrammar)."""
    from transformers import LogitsProcessorList

    ids = torch.tensor([prompt_ids], device=engine.device)
    eos = sorted(engine.eos_ids)

    def run(n: int) -> tuple[float, int]:
        nonlocal processor
        if hasattr(processor, "reset"):
            processor.reset()
        current = processor() if callable(processor) and not hasattr(processor, "reset") else processor
        _sync(engine)
        started = time.perf_counter()
        with torch.inference_mode():
            out = engine.model.generate(
                ids, attention_mask=torch.ones_like(ids), logits_processor=LogitsProcessorList([current]),
                max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=eos[0],
            )
        _sync(engine)
        return time.perf_counter() - started, out.shape[1] - ids.shape[1]

    prefill, _ = run(1)
    total, new = run(max_tokens)
    return (new - 1) / max(total - prefill, 1e-9), new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per unconstrained run")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--hbm-gbps", type=float, default=3350.0, help="GPU memory bandwidth for the roofline (H100 SXM: 3350)")
    add_model_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    engine = load_engine(args, backend="torch")  # HF generate runs on the same torch model
    agent = build_agent(engine)
    schema = agent.tool_format.grammar_schema()

    import outlines
    from outlines.backends import get_json_schema_logits_processor

    # outlines_core with "[ ]?" whitespace comes closest to agentkit's compact JSON. Its first call runs
    # torch.compile of the mask kernel: done once here, untimed.
    processor = get_json_schema_logits_processor(
        "outlines_core", outlines.from_transformers(engine.model, engine.tokenizer), json.dumps(schema), r"[ ]?"
    )
    warm_ids = engine._prompt_ids(agent.first_messages("What is 1 + 1?"))
    hf_outlines_rate(engine, processor, warm_ids, 4)
    xgrammar = xgrammar_processor(engine, schema)
    if xgrammar is not None:
        hf_outlines_rate(engine, xgrammar, warm_ids, 4)
    hf_generate_rate(engine, warm_ids, 8, cache_implementation="static")  # warm-up: compiles on CUDA

    rows: dict[str, list[float]] = {key: [] for key in ("hf", "hf_static", "outlines", "xgrammar", "free", "constrained", "mask")}
    for question in QUESTIONS:
        messages = agent.first_messages(question)
        prompt_ids = engine._prompt_ids(messages)
        rows["hf"].append(hf_generate_rate(engine, prompt_ids, args.tokens))
        rows["hf_static"].append(hf_generate_rate(engine, prompt_ids, args.tokens, cache_implementation="static"))
        rows["outlines"].append(hf_outlines_rate(engine, processor, prompt_ids, 64)[0])
        if xgrammar is not None:
            rows["xgrammar"].append(hf_outlines_rate(engine, xgrammar, prompt_ids, 64)[0])

        # agentkit unconstrained: the engine's own path (static slot + CUDA graph on CUDA), no grammar.
        saved_eos, engine.eos_ids = engine.eos_ids, set()
        free = engine.generate(GenerationRequest(messages=messages, max_tokens=args.tokens))
        engine.eos_ids = saved_eos
        rows["free"].append(free.completion_tokens / free.details["decode_seconds"])

        request = GenerationRequest(messages=messages, constraint=JsonSchemaConstraint(json_schema=schema), max_tokens=256)
        generation = engine.generate(request)  # the real agent step, under the step grammar
        details = generation.details
        rows["constrained"].append(generation.completion_tokens / details["decode_seconds"])
        rows["mask"].append(1000 * details["mask_seconds"] / generation.completion_tokens)

    on_cuda = engine.device.type == "cuda"
    figures: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "device": device_label(engine),
        "model": engine.name,
        "agentkit_static_cache": getattr(engine, "static_cache", None),
        "agentkit_compiled": getattr(engine, "compiled", None),
        "hf_generate_tok_s": statistics.median(rows["hf"]),
        ("hf_static_compile_tok_s" if on_cuda else "hf_static_tok_s"): statistics.median(rows["hf_static"]),
        "hf_generate_outlines_tok_s": statistics.median(rows["outlines"]),
        "agentkit_unconstrained_tok_s": statistics.median(rows["free"]),
        "agentkit_constrained_tok_s": statistics.median(rows["constrained"]),
        "mask_ms_per_token": statistics.median(rows["mask"]),
    }
    if rows["xgrammar"]:
        figures["hf_generate_xgrammar_tok_s"] = statistics.median(rows["xgrammar"])
    constrained = figures["agentkit_constrained_tok_s"]
    for key in [k for k in figures if k.endswith("_tok_s") and k != "agentkit_constrained_tok_s"]:
        figures[f"constrained_vs_{key[:-6]}"] = constrained / figures[key]
    if on_cuda:
        weight_bytes = sum(p.numel() * p.element_size() for p in engine.model.parameters())
        roofline = args.hbm_gbps * 1e9 / weight_bytes
        figures["hbm_roofline_tok_s"] = roofline
        figures["constrained_roofline_fraction"] = constrained / roofline
    for key, value in figures.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
