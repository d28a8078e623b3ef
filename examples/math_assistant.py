"""Math assistant: the embedded SmolLM2-135M answers arithmetic questions with the calculator tool.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/math_assistant.py "What is 17 * 23?"
    .venv/bin/python examples/math_assistant.py --model ~/.cache/agentkit/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

import time

from agentkit import Agent, MaxStepsExceeded
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
    from _show import load_engine, print_step

    started = time.perf_counter()
    engine = load_engine()
    agent = build_agent(engine)
    print(f"question: {question}")
    try:
        for step in agent.iter(question):
            print_step(step)
    except MaxStepsExceeded as exc:  # a model that never answers: one clear line, no traceback
        raise SystemExit(f"no answer: {exc}") from None
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    from _show import question

    main(question("What is 17 * 23?"))
