"""Decode speed, side by side in one run: HF generate (plain and + outlines) vs agentkit.

CPU (default): the embedded SmolLM2-135M-Instruct, fp32, greedy, batch 1, on the math assistant's
real prompts. Reports decode tokens/s (prefill excluded; for agentkit's constrained steps, tokens
forced by jump-forward count as generated tokens, as they are in the output), the grammar mask's cost
per token, and the ratios. Not measured here yet: HF static cache + torch.compile and the xgrammar
processor (xgrammar pulls a 1 GB triton that the CPU never uses); both belong to the GPU run. Run: `.venv/bin/python benchmarks/bench_decode.py [--tokens 64] [--threads 2]`
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from math_assistant import build_agent  # noqa: E402

from agentkit import GenerationRequest  # noqa: E402
from agentkit.engine import LocalEngine  # noqa: E402
from agentkit.engine.decode import decode  # noqa: E402

QUESTIONS = ["What is 17 * 23?", "What is 45 + 78?", "How much is 1200 / 16?", "Compute 2 to the power of 10."]


def hf_generate_rate(engine: LocalEngine, prompt_ids: list[int], tokens: int) -> float:
    """Decode tokens/s of `model.generate` (dynamic cache, greedy), prefill subtracted."""
    ids = torch.tensor([prompt_ids])
    with torch.inference_mode():
        started = time.perf_counter()
        engine.model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
        prefill = time.perf_counter() - started
        started = time.perf_counter()
        out = engine.model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        total = time.perf_counter() - started
    new = out.shape[1] - ids.shape[1]
    return (new - 1) / max(total - prefill, 1e-9)


def hf_outlines_rate(engine: LocalEngine, processor, prompt_ids: list[int], max_tokens: int) -> tuple[float, int]:
    """Decode tokens/s of `model.generate` + outlines' JSON-schema logits processor, prefill subtracted."""
    from transformers import LogitsProcessorList

    ids = torch.tensor([prompt_ids])
    eos = sorted(engine.eos_ids)

    def run(n: int) -> tuple[float, int]:
        processor.reset()
        started = time.perf_counter()
        with torch.inference_mode():
            out = engine.model.generate(
                ids, attention_mask=torch.ones_like(ids), logits_processor=LogitsProcessorList([processor]),
                max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=eos[0],
            )
        return time.perf_counter() - started, out.shape[1] - ids.shape[1]

    prefill, _ = run(1)
    total, new = run(max_tokens)
    return (new - 1) / max(total - prefill, 1e-9), new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per unconstrained run")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    engine = LocalEngine.default()
    agent = build_agent(engine)
    schema = agent.step_format.grammar_schema()

    import outlines
    from outlines.backends import get_json_schema_logits_processor

    # outlines_core with "[ ]?" whitespace comes closest to agentkit's compact JSON. Its first call runs
    # torch.compile of the mask kernel: done once here, untimed.
    processor = get_json_schema_logits_processor(
        "outlines_core", outlines.from_transformers(engine.model, engine.tokenizer), json.dumps(schema), r"[ ]?"
    )
    warm_ids = engine._prompt_ids(agent.first_messages("What is 1 + 1?"))
    hf_outlines_rate(engine, processor, warm_ids, 4)

    hf_rates, outlines_rates, free_rates, constrained_rates, mask_ms = [], [], [], [], []
    for question in QUESTIONS:
        messages = agent.first_messages(question)
        prompt_ids = engine._prompt_ids(messages)
        hf_rates.append(hf_generate_rate(engine, prompt_ids, args.tokens))
        outlines_rates.append(hf_outlines_rate(engine, processor, prompt_ids, 64)[0])

        free = decode(engine.model, prompt_ids, max_new_tokens=args.tokens, eos_ids=set())
        free_rates.append(len(free.tokens) / free.decode_seconds)

        request = GenerationRequest(messages=messages, json_schema=schema, max_tokens=256)
        generation = engine.generate(request)  # the real agent step, under the step grammar
        details = generation.details
        constrained_rates.append(generation.completion_tokens / details["decode_seconds"])
        mask_ms.append(1000 * details["mask_seconds"] / generation.completion_tokens)

    figures = {
        "date": datetime.date.today().isoformat(),
        "device": f"CPU {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}",
        "model": engine.name,
        "hf_generate_tok_s": statistics.median(hf_rates),
        "hf_generate_outlines_tok_s": statistics.median(outlines_rates),
        "agentkit_unconstrained_tok_s": statistics.median(free_rates),
        "agentkit_constrained_tok_s": statistics.median(constrained_rates),
        "mask_ms_per_token": statistics.median(mask_ms),
    }
    figures["constrained_vs_unconstrained"] = figures["agentkit_constrained_tok_s"] / figures["agentkit_unconstrained_tok_s"]
    figures["constrained_vs_hf_generate"] = figures["agentkit_constrained_tok_s"] / figures["hf_generate_tok_s"]
    figures["constrained_vs_hf_outlines"] = figures["agentkit_constrained_tok_s"] / figures["hf_generate_outlines_tok_s"]
    for key, value in figures.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
