"""Decode speed, side by side in one run: HF generate vs agentkit, unconstrained vs grammar-constrained.

CPU (default): the embedded SmolLM2-135M-Instruct, fp32, greedy, batch 1, on the math assistant's
real prompts. Reports decode tokens/s (prefill excluded), the grammar mask's cost per token, and the
ratios. Run: `.venv/bin/python benchmarks/bench_decode.py [--tokens 64] [--threads 2]`
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

from agentkit import GenerationRequest, Message  # noqa: E402
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

    hf_rates, free_rates, constrained_rates, mask_ms = [], [], [], []
    for question in QUESTIONS:
        messages = [*agent._prefix, Message(role="user", content=question)]
        prompt_ids = engine._prompt_ids(messages)
        hf_rates.append(hf_generate_rate(engine, prompt_ids, args.tokens))

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
        "agentkit_unconstrained_tok_s": statistics.median(free_rates),
        "agentkit_constrained_tok_s": statistics.median(constrained_rates),
        "mask_ms_per_token": statistics.median(mask_ms),
    }
    figures["constrained_vs_unconstrained"] = figures["agentkit_constrained_tok_s"] / figures["agentkit_unconstrained_tok_s"]
    figures["constrained_vs_hf_generate"] = figures["agentkit_constrained_tok_s"] / figures["hf_generate_tok_s"]
    for key, value in figures.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
