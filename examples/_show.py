"""Shared by the examples: load the embedded model and print a run step by step."""

from __future__ import annotations

import time

from agentkit import Agent
from agentkit.engine import LocalEngine


def load_engine() -> LocalEngine:
    started = time.perf_counter()
    print("loading the embedded model (the first run converts its GGUF once, about 20 s)...")
    engine = LocalEngine.default()
    print(f"loaded {engine.name} in {time.perf_counter() - started:.1f} s")
    return engine


def show_run(agent: Agent, task: str) -> object:
    """Run `task`, printing each step as it completes; return the final answer."""
    started = time.perf_counter()
    print(f"task: {task}")
    output = None
    for step in agent.iter(task):
        print(f"step {step.index} ({step.usage.completion_tokens} tokens, {step.usage.generation_seconds:.1f} s): {step.raw_output}")
        for observation in step.observations:
            print(f"  -> {observation.name}: {observation.content[:300]}")
        for call in step.dropped_calls:
            print(f"  (not run, less likely than stopping: {call.name}({call.arguments}))")
        for call in step.guessed_calls:
            print(f"  (not run, its values are not in the conversation: {call.name}({call.arguments}))")
        if step.is_final:
            output = step.output
            print(f"answer: {output!r}" if not isinstance(output, str) else f"answer: {output}")
    print(f"total {time.perf_counter() - started:.1f} s")
    return output
