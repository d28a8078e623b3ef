"""agentkit tools served over MCP: examples/mcp_server.py as a real process (stdio and streamable HTTP),
a served agent (`agent_as_tool`), and the server in-process through the SDK's own client."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentkit import Agent, ToolCall, ToolRegistry, tool
from agentkit.testing import ScriptedBackend
from agentkit.tools import calculator

pytest.importorskip("mcp", reason="the MCP SDK is not installed: pip install 'agentkit[mcp]'")

from agentkit.tools.mcp import MCPClient, RemoteToolError
from agentkit.tools.mcp_server import agent_as_tool, mcp_server, serve_mcp

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_server.py"

AGENTS_SERVER = r'''
import asyncio
from agentkit import Agent, ToolRegistry, tool
from agentkit.testing import ScriptedBackend
from agentkit.tools import calculator
from agentkit.tools.mcp_server import agent_as_tool, serve_mcp


@tool(timeout=0.5)
async def slow() -> str:
    """Take far longer than its time limit."""
    await asyncio.sleep(30)
    return "late"


@tool
def chatty() -> str:
    """Return a long text."""
    return "word " * 2000


mathematician = Agent(ScriptedBackend([
    {"calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]},
    {"final_answer": "17 * 23 = 391"},
]), tools=[calculator])
stuck = Agent(ScriptedBackend([{"calls": [{"name": "calculator", "arguments": {"expression": "1 + 1"}}]}]),
              tools=[calculator], max_steps=1)
registry = ToolRegistry([
    agent_as_tool(mathematician, name="mathematician", description="Solves arithmetic problems."),
    agent_as_tool(stuck, name="stuck", description="Never reaches an answer."),
    slow,
    chatty,
], max_output_chars=100)
serve_mcp(registry, name="agents")
'''


def _load_example():
    spec = importlib.util.spec_from_file_location("mcp_server_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    """One stdio connection to examples/mcp_server.py, shared by the tests that only call it."""
    with MCPClient([sys.executable, str(EXAMPLE)]) as client:
        yield client


@pytest.fixture
def agents_server(tmp_path):
    path = tmp_path / "agents_server.py"
    path.write_text(AGENTS_SERVER)
    with MCPClient([sys.executable, str(path)], timeout=10) as client:
        yield client


# -- the example, over stdio ----------------------------------------------------------------------


def test_the_example_lists_its_tools_with_their_agentkit_schemas(example):
    served = {t.name: t for t in _load_example().TOOLS}
    listed = {t.remote_name: t for t in example.tools()}
    assert set(listed) == set(served) == {"calculator", "current_time"}
    assert example.server_name == "agentkit-example"
    for name, original in served.items():
        assert listed[name].input_schema == original.parameters
        assert listed[name].description == original.description


def test_the_calculator_answers_over_mcp(example):
    assert example.call("calculator", {"expression": "17 * 23"}) == "391"
    assert example.call("calculator", {"expression": "2 ** 10 / 7"}) == calculator(expression="2 ** 10 / 7")
    stamp = example.call("current_time", {"timezone": "Asia/Tokyo"})
    assert stamp.endswith("+09:00"), stamp


def test_failures_come_back_as_mcp_error_results(example):
    with pytest.raises(RemoteToolError, match="calculator failed: CalculatorError: Division by zero"):
        example.call("calculator", {"expression": "1 / 0"})
    # Sent as is (client.call does not validate): the server's registry rejects them.
    with pytest.raises(RemoteToolError, match="invalid arguments for calculator: expression: Field required"):
        example.call("calculator", {"expr": "1 + 1"})
    with pytest.raises(RemoteToolError, match="no tool named 'nope'"):
        example.call("nope", {})
    with pytest.raises(RemoteToolError, match="unknown time zone 'Mars/Base'"):
        example.call("current_time", {"timezone": "Mars/Base"})
    assert example.call("calculator", {"expression": "1 + 1"}) == "2"  # the server lives on


def test_an_agent_uses_the_served_calculator_end_to_end(example):
    backend = ScriptedBackend([
        {"calls": [{"name": "calculator", "arguments": {"expression": "(4 + 6) * 12"}}]},
        {"final_answer": "120"},
    ])
    result = Agent(backend, tools=example.tools()).run("What is (4 + 6) * 12?")
    assert result.steps[0].observations[0].content == "120"
    assert not result.steps[0].observations[0].is_error
    assert result.output == "120"


# -- the example, over streamable HTTP -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_listening(port: int, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {process.communicate()[1][-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on port {port} within {seconds} s")


def test_the_example_serves_streamable_http():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--http", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_until_listening(port, process)
        with MCPClient(url=f"http://127.0.0.1:{port}/mcp") as client:
            assert {t.name for t in client.tools()} == {"calculator", "current_time"}
            observation = ToolRegistry(client.tools()).run(ToolCall(id="1", name="calculator", arguments={"expression": "6 * 7"}))
            assert observation.content == "42" and not observation.is_error
            with pytest.raises(RemoteToolError, match="Division by zero"):
                client.call("calculator", {"expression": "1 / 0"})
        with MCPClient(url=f"http://127.0.0.1:{port}/mcp", headers={"X-Agentkit-Test": "1"}) as client:
            assert client.call("calculator", {"expression": "2 + 2"}) == "4"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
    out, _ = process.communicate()
    assert f"http://127.0.0.1:{port}/mcp" in out


# -- a served agent, registry limits ---------------------------------------------------------------


def test_a_served_agent_answers_a_task(agents_server):
    tools = {t.name: t for t in agents_server.tools()}
    assert tools["mathematician"].input_schema["required"] == ["task"]
    assert tools["mathematician"].description == "Solves arithmetic problems."
    assert agents_server.call("mathematician", {"task": "What is 17 * 23?"}) == "17 * 23 = 391"
    with pytest.raises(RemoteToolError, match="MaxStepsExceeded"):
        agents_server.call("stuck", {"task": "What is 1 + 1?"})


def test_the_served_registry_applies_its_limits(agents_server):
    started = time.perf_counter()
    with pytest.raises(RemoteToolError, match="slow did not finish within 0.5 s"):
        agents_server.call("slow")
    assert time.perf_counter() - started < 5
    text = agents_server.call("chatty")
    assert text.startswith("word word") and "[output truncated: showing 100 of 10000 characters" in text


def test_agent_as_tool_in_a_registry_and_in_another_agent():
    inner = Agent(ScriptedBackend([
        {"calls": [{"name": "calculator", "arguments": {"expression": "2 ** 8"}}]},
        {"final_answer": "256"},
    ]), tools=[calculator])
    helper = agent_as_tool(inner, name="helper", description="Does arithmetic.")
    outer = Agent(ScriptedBackend([
        {"calls": [{"name": "helper", "arguments": {"task": "What is 2 ** 8?"}}]},
        {"final_answer": "2 ** 8 is 256"},
    ]), tools=[helper])
    result = outer.run("Ask the helper for 2 ** 8.")
    assert result.steps[0].observations[0].content == "256"
    assert inner.backend.requests[0].messages[-1].content.endswith("What is 2 ** 8?")
    invalid = ToolRegistry([helper]).run(ToolCall(id="1", name="helper", arguments={}))
    assert invalid.error_type == "invalid_arguments"


# -- in process, through the SDK's own client ------------------------------------------------------


def test_the_server_in_process_with_the_sdk_client():
    from mcp import Client

    @tool
    def shout(text: str) -> str:
        """Upper-case a text."""
        if not text:
            raise ValueError("nothing to shout")
        return text.upper()

    async def main():
        async with Client(mcp_server([shout, calculator], name="inproc")) as client:
            listing = await client.list_tools()
            ok = await client.call_tool("shout", {"text": "hi"})
            failed = await client.call_tool("shout", {"text": ""})
            return listing, ok, failed

    listing, ok, failed = asyncio.run(main())
    assert {t.name: t.input_schema for t in listing.tools} == {"shout": shout.parameters, "calculator": calculator.parameters}
    assert not ok.is_error and ok.content[0].text == "HI"
    assert failed.is_error and failed.content[0].text == "Error: shout failed: ValueError: nothing to shout"


def test_serve_mcp_rejects_an_unknown_transport():
    with pytest.raises(ValueError, match="transport must be"):
        serve_mcp([calculator], transport="carrier-pigeon")  # type: ignore[arg-type]


def test_the_example_script_prints_its_usage():
    out = subprocess.run([sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--http PORT" in out
