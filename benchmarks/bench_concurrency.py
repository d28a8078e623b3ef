"""Concurrent agents on one engine: aggregate constrained tokens/s and p50/p99 step latency.

N math-assistant agents run at once with `asyncio.gather(agent.arun(...))` on one shared
`LocalEngine` (the embedded SmolLM2 on CPU by default), once per `max_batch` setting: 1 (requests
take turns, each with jump-forward) and 8 (continuous batching: concurrent decodes share forward
passes; forced tokens are fed one per pass in a batch).

Run: `.venv/bin/python benchmarks/bench_concurrency.py [--agents 1,4,8]`
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from math_assistant import build_agent  # noqa: E402

from agentkit.engine import LocalEngine  # noqa: E402

QUESTIONS = ["What is 17 * 23?", "What is 45 + 78?", "How much is 1200 / 16?", "Compute 2 to the power of 10."]


async def run_many(engine: LocalEngine, n: int) -> tuple[float, int, list[float]]:
    agents = [build_agent(engine) for _ in range(n)]
    started = time.perf_counter()
    results = await asyncio.gather(*(a.arun(QUESTIONS[i % len(QUESTIONS)]) for i, a in enumerate(agents)))
    wall = time.perf_counter() - started
    tokens = sum(r.usage.completion_tokens for r in results)
    step_latencies = [s.usage.generation_seconds for r in results for s in r.steps]
    return wall, tokens, step_latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", default="1,4,8", help="comma-separated concurrency levels")
    parser.add_argument("--max-batch", default="1,8", help="comma-separated engine max_batch settings to compare")
    args = parser.parse_args()
    base = LocalEngine.default()
    for max_batch in (int(x) for x in args.max_batch.split(",")):
        engine = LocalEngine.from_model(base.model, base.tokenizer, name=base.name, max_batch=max_batch)
        report(engine, [int(x) for x in args.agents.split(",")])


def report(engine: LocalEngine, levels: list[int]) -> None:
    asyncio.run(run_many(engine, 1))  # warm-up: compile the grammar, fill the shared-prefix cache
    print(f"date {datetime.date.today().isoformat()}, CPU {platform.machine()}, {torch.get_num_threads()} threads, {engine.name}, max_batch={engine.max_batch}")
    print(f"{'agents':>6} {'wall s':>8} {'tokens':>7} {'agg tok/s':>10} {'p50 step s':>11} {'p99 step s':>11}")
    for n in levels:
        wall, tokens, latencies = asyncio.run(run_many(engine, n))
        print(
            f"{n:>6} {wall:>8.2f} {tokens:>7} {tokens / wall:>10.1f} "
            f"{statistics.median(latencies):>11.2f} {percentile(latencies, 0.99):>11.2f}"
        )
    print(f"largest batch decoded together: {engine._scheduler.largest_batch}")


if __name__ == "__main__":
    main()
