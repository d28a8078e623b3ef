"""Math assistant: the embedded SmolLM2-135M answers arithmetic questions with the calculator tool.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/math_assistant.py "What is 17 * 23?"
"""

from __future__ import annotations

import sys
import time

from agentkit import Agent, Example, ExampleCall
from agentkit.engine import LocalEngine
from agentkit.tools import calculator

INSTRUCTIONS = "You are a math assistant. Use the calculator for every computation."

# Two worked examples: the 135M model copies their shape (one call, then the answer from the result).
EXAMPLES = [
    Example(
        task="What is 12 * 31?",
        calls=[ExampleCall(name="calculator", arguments={"expression": "12 * 31"}, result="372")],
        answer="372",
    ),
    Example(
        task="Add 150 and 47.",
        calls=[ExampleCall(name="calculator", arguments={"expression": "150 + 47"}, result="197")],
        answer="197",
    ),
]


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
        if step.is_final:
            print(f"answer: {step.output}")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "What is 17 * 23?")
