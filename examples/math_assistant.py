"""Math assistant: the embedded SmolLM2-135M answers arithmetic questions with the calculator tool.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/math_assistant.py "What is 17 * 23?"
"""

from __future__ import annotations

import sys
import time

from agentkit import Agent
from agentkit.engine import LocalEngine
from agentkit.tools import calculator
from agentkit.tools.calculator import CALCULATOR_EXAMPLES

INSTRUCTIONS = "You are a math assistant. Use the calculator for every computation."

# Two worked examples (one call, then the answer from its result): the 135M model copies their shape.
EXAMPLES = CALCULATOR_EXAMPLES


def build_agent(engine: LocalEngine) -> Agent:
    """The math assistant: calculator tool, instructions and one few-shot example."""
    return Agent(engine, tools=[calculator], instructions=INSTRUCTIONS, examples=EXAMPLES, max_steps=4)


def main(question: str) -> None:
    started = time.perf_counter()
    print("loading the embedded model (the first run converts its GGUF once, about 20 s)...")
    engine = LocalEngine.default()
    print(f"loaded {engine.name} in {time.perf_counter() - started:.1f} s")
    agent = build_agent(engine)
    print(f"question: {question}")
    for step in agent.iter(question):
        tokens = step.usage.completion_tokens
        print(f"step {step.index} ({tokens} tokens, {step.usage.generation_seconds:.1f} s): {step.raw_output}")
        for observation in step.observations:
            print(f"  -> {observation.name}: {observation.content}")
        for call in step.dropped_calls:
            print(f"  (not run, less likely than stopping: {call.name}({call.arguments}))")
        for call in step.guessed_calls:
            print(f"  (not run, its values are not in the conversation: {call.name}({call.arguments}))")
        if step.is_final:
            print(f"answer: {step.output}")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "What is 17 * 23?")
