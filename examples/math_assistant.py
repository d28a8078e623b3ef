"""Math assistant: the embedded SmolLM2-135M answers arithmetic questions with the calculator tool.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/math_assistant.py "What is 17 * 23?"
    .venv/bin/python examples/math_assistant.py --model ~/.cache/agentkit/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

import time

from agentkit import Agent, MaxStepsExceeded, Step
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
    from _show import load_engine

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


def print_step(step: Step) -> None:
    """One step: what the model wrote, what the tools returned, what was not run, and the answer."""
    print(f"step {step.index} ({step.usage.completion_tokens} tokens, {step.usage.generation_seconds:.1f} s): {step.raw_output}")
    for observation in step.observations:
        print(f"  -> {observation.name}: {observation.content}")
    for call in step.dropped_calls:
        print(f"  (not run, less likely than stopping: {call.name}({call.arguments}))")
    for call in step.guessed_calls:
        print(f"  (not run, its values are not in the conversation: {call.name}({call.arguments}))")
    if step.is_final:
        print(f"answer: {step.output}")


if __name__ == "__main__":
    from _show import question

    main(question("What is 17 * 23?"))
