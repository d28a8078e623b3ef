"""run() and iter() called from inside a running event loop (notebooks, async apps)."""

from __future__ import annotations

import asyncio
import threading
import time

from agentkit import Agent, tool
from agentkit.testing import ScriptedBackend
from agentkit.tools import calculator


def calc(expression: str) -> dict:
    return {"calls": [{"name": "calculator", "arguments": {"expression": expression}}]}


def final(answer) -> dict:
    return {"final_answer": answer}




def test_sync_tool_timeout_inside_a_running_loop_returns_promptly():
    release = threading.Event()
    timer = threading.Timer(0.8, release.set)  # bounds the cost of the bug to 0.8 s

    @tool(timeout=0.1)
    def slow() -> str:
        """Slow."""
        release.wait(2)
        return "late"

    async def main() -> float:
        agent = Agent(ScriptedBackend([{"calls": [{"name": "slow", "arguments": {}}]}, final("x")]), tools=[slow], examples=[])
        started = time.perf_counter()
        agent.run("go")
        return time.perf_counter() - started

    timer.start()
    try:
        elapsed = asyncio.run(main())
    finally:
        release.set()
        timer.cancel()
    assert elapsed < 0.6, f"run() returned after {elapsed:.2f} s although the tool timed out after 0.1 s"


def test_leaving_iter_early_inside_a_running_loop_stops_the_agent():
    backend = ScriptedBackend([calc("1 + 1"), calc("2 + 2"), final("4")])

    async def main() -> None:
        for _ in Agent(backend, tools=[calculator], examples=[]).iter("x"):
            break
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert len(backend.requests) == 1, f"the agent went on to make {len(backend.requests)} model calls"
