"""Approval, allow/deny lists, per-step time limits and byte limits: decided before or around a call."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from agentkit import Agent, Tool, ToolCall, ToolPolicy, ToolRegistry, tool
from agentkit.testing import ScriptedBackend

deleted: list[str] = []


@tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file.

    Args:
        path: the file to delete.
    """
    deleted.append(path)
    return f"deleted {path}"


@tool
def echo(text: str) -> str:
    """Repeat the text."""
    return text


@pytest.fixture(autouse=True)
def _clear():
    deleted.clear()


def _call(name: str, **arguments) -> ToolCall:
    return ToolCall(id=f"call_{name}", name=name, arguments=arguments)


def test_a_tool_that_needs_approval_is_denied_without_an_approver():
    observation = ToolRegistry([delete_file]).run(_call("delete_file", path="a.txt"))
    assert observation.is_error and observation.error_type == "denied"
    assert "needs approval" in observation.content
    assert deleted == []


def test_the_approver_sees_the_call_and_decides():
    seen = []

    def approve(call: ToolCall, found: Tool) -> bool:
        seen.append((call.name, call.arguments, found.name))
        return call.arguments["path"].startswith("tmp/")

    registry = ToolRegistry([delete_file], policy=ToolPolicy(approve=approve))
    yes = registry.run(_call("delete_file", path="tmp/a.txt"))
    no = registry.run(_call("delete_file", path="/etc/passwd"))
    assert not yes.is_error and yes.content == "deleted tmp/a.txt"
    assert no.is_error and "declined" in no.content
    assert deleted == ["tmp/a.txt"]
    assert seen == [("delete_file", {"path": "tmp/a.txt"}, "delete_file"), ("delete_file", {"path": "/etc/passwd"}, "delete_file")]


def test_only_true_approves_and_a_failing_approver_denies():
    truthy = ToolRegistry([delete_file], policy=ToolPolicy(approve=lambda call, t: "yes"))
    assert truthy.run(_call("delete_file", path="x")).is_error

    def broken(call, found):
        raise RuntimeError("approval service down")

    observation = ToolRegistry([delete_file], policy=ToolPolicy(approve=broken)).run(_call("delete_file", path="x"))
    assert observation.is_error and "approval service down" in observation.content
    assert deleted == []


def test_async_approver_and_approve_all():
    async def approve(call, found):
        await asyncio.sleep(0)
        return call.arguments.get("text") != "forbidden"

    registry = ToolRegistry([echo], policy=ToolPolicy(approve=approve, approve_all=True))
    assert registry.run(_call("echo", text="hello")).content == "hello"
    assert registry.run(_call("echo", text="forbidden")).error_type == "denied"


def test_tools_without_requires_approval_run_without_asking():
    asked = []
    registry = ToolRegistry([echo], policy=ToolPolicy(approve=lambda call, t: asked.append(call) or False))
    assert registry.run(_call("echo", text="hi")).content == "hi"
    assert asked == []


def test_approvals_of_one_step_are_asked_one_at_a_time():
    active, most = 0, 0
    lock = threading.Lock()

    def approve(call, found):
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.05)  # e.g. waiting for a human at the console
        with lock:
            active -= 1
        return True

    registry = ToolRegistry([delete_file], policy=ToolPolicy(approve=approve))
    calls = [_call("delete_file", path=f"tmp/{i}") for i in range(4)]
    observations = asyncio.run(registry.arun_all(calls))
    assert [o.content for o in observations] == [f"deleted tmp/{i}" for i in range(4)]
    assert most == 1


def test_deny_and_allow_lists():
    registry = ToolRegistry([echo, delete_file], policy=ToolPolicy(deny=["echo"], approve=lambda c, t: True))
    assert "blocked" in registry.run(_call("echo", text="x")).content
    only = ToolRegistry([echo, delete_file], policy=ToolPolicy(allow=["echo"], approve=lambda c, t: True))
    assert only.run(_call("echo", text="x")).content == "x"
    assert "not in the agent's list" in only.run(_call("delete_file", path="x")).content
    assert deleted == []


def test_a_registry_approver_turns_a_denial_into_an_observation_and_the_run_goes_on():
    backend = ScriptedBackend([
        {"calls": [{"name": "delete_file", "arguments": {"path": "/important"}}]},
        {"final_answer": "I was not allowed to delete it."},
    ])
    registry = ToolRegistry([delete_file], policy=ToolPolicy(approve=lambda call, found: False))
    result = Agent(backend, tools=registry).run("Delete /important")
    assert result.output == "I was not allowed to delete it."
    assert result.steps[0].observations[0].error_type == "denied"
    assert deleted == []


@pytest.mark.parametrize("policy", [ToolPolicy(deny=["rm"]), ToolPolicy(allow=["echo", "ecko"])])
def test_agent_rejects_unknown_names_in_policy_lists(policy):
    """A misspelt name in a deny list would otherwise let the tool run."""
    with pytest.raises(ValueError, match="unknown tools"):
        Agent(ScriptedBackend([]), tools=ToolRegistry([echo], policy=policy))


def test_step_timeout_stops_the_whole_step_and_keeps_finished_results():
    @tool
    async def slow(seconds: float) -> str:
        """Wait, then answer."""
        await asyncio.sleep(seconds)
        return "done"

    registry = ToolRegistry([slow], timeout=30, step_timeout=0.3)
    started = time.perf_counter()
    fast, hung = asyncio.run(registry.arun_all([_call("slow", seconds=0.01), _call("slow", seconds=20)]))
    assert time.perf_counter() - started < 2
    assert fast.content == "done" and not fast.is_error
    assert hung.is_error and hung.error_type == "timeout" and "step" in hung.content


def test_a_hung_async_call_is_cancelled_not_left_running():
    cancelled = threading.Event()

    @tool(timeout=0.2)
    async def hang() -> str:
        """Never returns."""
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    observation = ToolRegistry([hang]).run(_call("hang"))
    assert observation.error_type == "timeout"
    assert cancelled.is_set()


def test_byte_limit_truncates_multibyte_output_without_splitting_a_character():
    @tool(max_output_bytes=100)
    def emoji() -> str:
        """Lots of emoji."""
        return "😀" * 1000

    observation = ToolRegistry([emoji]).run(_call("emoji"))
    assert observation.truncated
    shown = observation.content.split("\n[output truncated")[0]
    assert shown == "😀" * 25  # 4 bytes each
    assert "1000 characters (4000 bytes)" in observation.content
