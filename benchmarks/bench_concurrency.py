"""Concurrent agents on one engine: aggregate constrained tokens/s and p50/p99 step latency.

N math-assistant agents run at once with `asyncio.gather(agent.arun(...))` on one shared
`LocalEngine` (the embedded SmolLM2 on CPU by default), once per `max_batch` setting: 1 (requests
take turns, each with jump-forward) and 8 (continuous batching: concurrent decodes share forward
passes; forced tokens are fed one per pass in a batch).

Run: `.venv/bin/python benchmarks/bench_concurrency.py [--agents 1,4,8]`; on a GPU:
`python3 benchmarks/bench_concurrency.py --device cuda --random-8b --tokenizer DIR` (1, 8 and 32
agents, max_batch 32).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from math_assistant import build_agent

from agentkit.engine import LocalEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import add_model_options, device_label, load_engine

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
    parser.add_argument("--agents", default=None, help="comma-separated concurrency levels (default: 1,8,32 on CUDA, 1,4,8 on CPU)")
    parser.add_argument("--max-batch", default=None, help="comma-separated engine max_batch settings (default: 32 on CUDA, 1,8 on CPU)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    add_model_options(parser)
    args = parser.parse_args()
    cuda = args.device == "cuda"
    levels = [int(x) for x in (args.agents or ("1,8,32" if cuda else "1,4,8")).split(",")]
    figures = []
    for max_batch in (int(x) for x in (args.max_batch or ("32" if cuda else "1,8")).split(",")):
        engine = load_engine(args, max_batch=max_batch)
        figures += report(engine, levels)
        del engine
    if args.json:
        import json

        args.json.write_text(json.dumps(figures, indent=2))


def report(engine: LocalEngine, levels: list[int]) -> list[dict]:
    asyncio.run(run_many(engine, 1))  # warm-up: compile the grammar, fill the shared-prefix cache
    print(f"date {datetime.date.today().isoformat()}, {device_label(engine)}, {engine.name}, max_batch={engine.max_batch}")
    print(f"{'agents':>6} {'wall s':>8} {'tokens':>7} {'agg tok/s':>10} {'p50 step s':>11} {'p99 step s':>11}")
    rows = []
    for n in levels:
        wall, tokens, latencies = asyncio.run(run_many(engine, n))
        p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
        print(f"{n:>6} {wall:>8.2f} {tokens:>7} {tokens / wall:>10.1f} {p50:>11.2f} {p99:>11.2f}")
        rows.append({"date": datetime.date.today().isoformat(), "device": device_label(engine), "max_batch": engine.max_batch,
                     "agents": n, "wall_s": wall, "tokens": tokens, "aggregate_tok_s": tokens / wall, "p50_step_s": p50, "p99_step_s": p99})
    print(f"largest batch decoded together: {engine._scheduler.largest_batch}")
    return rows


if __name__ == "__main__":
    main()
