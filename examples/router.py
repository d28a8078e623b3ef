"""Router: one agent delegates to two specialist agents, each used as a tool (`Agent.as_tool`).

The router sees two tools, `arithmetic_expert` and `timezone_expert`; each is a whole agent with its own
tools and examples (the calculator; the clock's timezone conversion). All three run on the same
engine, so they share its prefix cache. The router passes the question through as `task` and
answers from what the specialist returned.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/router.py "What is 45 * 12?"
    .venv/bin/python examples/router.py "It is 2026-05-04T15:00 in Europe/London. What time is it in Asia/Tokyo?"

What the 135M model does not do well: it sends timezone questions to the arithmetic expert too (it
follows the arithmetic example whatever the order of the examples). The time expert itself answers
them ("2026-05-04T23:00:00+09:00" for the second command's question when called directly; see
tests/examples/test_router.py); routing between specialists needs a bigger router model.

Output on 2026-11-24 (2 CPU cores, model cached):
    loading the embedded model (the first run converts its GGUF once, about 20 s)...
    loaded SmolLM2-135M-Instruct in 2.3 s
    task: What is 45 * 12?
    step 1 (32 tokens, 1.2 s): {"calls": [{"name": "arithmetic_expert", "arguments": {"task": "What is 45 * 12?"}}]}
      -> arithmetic_expert: 540
    step 2 (10 tokens, 0.3 s): {"final_answer": "540"}
    answer: 540
    total 2.8 s
"""

from __future__ import annotations

from agentkit import Agent, Example, ExampleCall, StepLimits
from agentkit.engine import LocalEngine
from agentkit.tools import calculator, convert_time
from agentkit.tools.calculator import CALCULATOR_EXAMPLES

TIME_EXAMPLES = [
    Example(
        task="It is 2026-03-10T09:00 in Europe/Paris. What time is it in Asia/Tokyo?",
        calls=[ExampleCall(name="convert_time", arguments={"time": "2026-03-10T09:00", "from_timezone": "Europe/Paris", "to_timezone": "Asia/Tokyo"},
                           result="2026-03-10T17:00:00+09:00 (Tuesday, Asia/Tokyo, JST)")],
        answer="2026-03-10T17:00:00+09:00",
    ),
]

ROUTER_EXAMPLES = [
    Example(
        task="It is 2026-01-05T08:30 in America/New_York. What time is it in Europe/Berlin?",
        calls=[ExampleCall(name="timezone_expert", arguments={"task": "It is 2026-01-05T08:30 in America/New_York. What time is it in Europe/Berlin?"},
                           result="2026-01-05T14:30:00+01:00")],
        answer="2026-01-05T14:30:00+01:00",
    ),
    Example(
        task="What is 19 * 21?",
        calls=[ExampleCall(name="arithmetic_expert", arguments={"task": "What is 19 * 21?"}, result="399")],
        answer="399",
    ),
]


def build_agent(engine: LocalEngine) -> Agent:
    """The router over two specialists built on the same engine."""
    math = Agent(engine, tools=[calculator], instructions="You are a math assistant. Use the calculator.",
                 examples=CALCULATOR_EXAMPLES, max_steps=3)
    clock = Agent(engine, tools=[convert_time], instructions="You convert times between timezones with convert_time.",
                  examples=TIME_EXAMPLES, max_steps=3)
    experts = [
        clock.as_tool("timezone_expert", "Converts a time from one timezone to another.", timeout=120),
        math.as_tool("arithmetic_expert", "Solves arithmetic questions.", timeout=120),
    ]
    return Agent(engine, tools=experts, instructions="You pass each question to the right expert, then give its answer.",
                 examples=ROUTER_EXAMPLES, max_steps=3, limits=StepLimits(max_calls=1))


def main(question: str) -> None:
    from _show import load_engine, show_run

    show_run(build_agent(load_engine()), question)


if __name__ == "__main__":
    from _show import question

    main(question("What is 45 * 12?"))
