"""MCPClient against real MCP servers run as processes: mcp-server-time, mcp-server-sqlite and a tiny
server written here (for errors, crashes, hangs and tricky schemas). No part of MCP is mocked."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from agentkit import Agent, InvalidArgumentsError, JsonSchemaConstraint, StepFormat, ToolCall, ToolDefinitionError, ToolRegistry
from agentkit.testing import ScriptedBackend

pytest.importorskip("mcp", reason="the MCP SDK is not installed: pip install 'agentkit[mcp]'")

from agentkit.tools._mcp_schema import grammar_safe_schema, safe_tool_name
from agentkit.tools.mcp import MCPClient, MCPConnectionError, MCPTool

TINY_SERVER = r'''
import json, os, sys
import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server

if sys.argv[1:] == ["exit-at-start"]:
    print("tiny server: cannot open its database", file=sys.stderr, flush=True)
    sys.exit(2)

TRICKY = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "uniqueItems": True},
        "point": {"$ref": "#/definitions/Point"},
        "mode": {"enum": ["fast", "slow"]},
        "when": {"type": "string", "format": "date-time"},
        "code": {"type": "string", "format": "regex", "pattern": "^(?!x)"},
        "extra": {"type": "object", "additionalProperties": {"type": "integer"}},
        "child": {"$ref": "#"},
        "anything": {},
        "not_b": {"type": "string", "not": {"const": "b"}},
        "remote": {"$ref": "https://example.com/schemas/thing.json", "description": "defined elsewhere"},
    },
    "required": ["tags"],
    "additionalProperties": True,
    "$defs": {"Tag": {"type": "string", "minLength": 1}},
    "definitions": {"Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                              "required": ["x", "y"]}},
}
NO_ARGS = {"type": "object", "properties": {}}
TOOLS = [
    types.Tool(name="echo", description="Echo a short text.", input_schema={
        "type": "object", "properties": {"text": {"type": "string", "maxLength": 20}}, "required": ["text"],
        "additionalProperties": False}),
    types.Tool(name="calls", description="How many calls this server got before this one.", input_schema={"type": "object"}),
    types.Tool(name="crash", description="Exit at once.", input_schema=NO_ARGS),
    types.Tool(name="hang", description="Never answer.", input_schema=NO_ARGS),
    types.Tool(name="nap", description="Answer after 0.5 s.", input_schema=NO_ARGS),
    types.Tool(name="fail", description="Report an error.", input_schema=NO_ARGS),
    types.Tool(name="weird.name", description="A name agentkit must sanitise.", input_schema=NO_ARGS),
    types.Tool(name="tricky", description="Schema features.", input_schema=TRICKY),
]
received = []


async def list_tools(ctx, params):
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx, params):
    received.append(params.name)
    args = params.arguments or {}
    if params.name == "calls":
        return types.CallToolResult(content=[types.TextContent(text=str(len(received) - 1))])
    if params.name == "crash":
        print("tiny server: crashing on purpose", file=sys.stderr, flush=True)
        os._exit(3)
    if params.name == "hang":
        await anyio.sleep(3600)
    if params.name == "nap":
        await anyio.sleep(0.5)
        return types.CallToolResult(content=[types.TextContent(text="rested")])
    if params.name == "fail":
        return types.CallToolResult(content=[types.TextContent(text="the disk is full")], is_error=True)
    if params.name == "echo":
        return types.CallToolResult(content=[types.TextContent(text=args["text"])])
    return types.CallToolResult(content=[types.TextContent(text=json.dumps({"tool": params.name, "arguments": args}))])


server = Server("tiny", on_list_tools=list_tools, on_call_tool=call_tool)


async def main():
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


anyio.run(main)
'''


def _executable(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it comes with the test extra: pip install 'agentkit[test]')")
    return found


def _children() -> set[int]:
    """PIDs of this process's live (non-zombie) children, from /proc."""
    me, kids = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == me and state != "Z":
            kids.add(int(entry))
    return kids


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts child processes through /proc")


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory) -> list[str]:
    path = tmp_path_factory.mktemp("mcp") / "tiny_server.py"
    path.write_text(TINY_SERVER)
    return [sys.executable, str(path)]


@pytest.fixture(scope="module")
def time_server() -> list[str]:
    return [_executable("mcp-server-time"), "--local-timezone", "UTC"]


@pytest.fixture(scope="module")
def tiny(tiny_server):
    """One connection to the tiny server shared by the tests that neither crash nor stop it."""
    with MCPClient(tiny_server, prefix="t_", timeout=5) as client:
        yield client


# -- mcp-server-time ------------------------------------------------------------------------------


@needs_proc
def test_time_server_tools_answer_and_the_process_exits_on_close(time_server):
    before = _children()
    with MCPClient(time_server, prefix="time_") as client:
        server_pids = _children() - before
        assert len(server_pids) == 1, "the stdio server should run as one child process"
        tools = {t.name: t for t in client.tools()}
        assert {"time_get_current_time", "time_convert_time"} <= set(tools)
        get_time = tools["time_get_current_time"]
        assert isinstance(get_time, MCPTool) and get_time.remote_name == "get_current_time"
        assert get_time.parameters["required"] == ["timezone"]
        assert get_time.parameters["properties"]["timezone"]["type"] == "string"

        observation = ToolRegistry(client.tools()).run(
            ToolCall(id="1", name="time_get_current_time", arguments={"timezone": "Asia/Tokyo"})
        )
        assert not observation.is_error, observation.content
        answer = json.loads(observation.content)
        assert answer["timezone"] == "Asia/Tokyo"
        stamp = datetime.fromisoformat(answer["datetime"])
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 9 * 3600
        assert abs(stamp.timestamp() - time.time()) < 120

        converted = json.loads(client.call("convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Kolkata"}))
        assert converted["target"]["datetime"].endswith("17:30:00+05:30"), converted
    assert not (_children() & server_pids), "the server process is still running after close()"
    with pytest.raises(MCPConnectionError, match="not connected"):
        client.call("get_current_time", {"timezone": "UTC"})


def test_invalid_arguments_are_an_error_observation(time_server):
    with MCPClient(time_server) as client:
        registry = ToolRegistry(client.tools())
        wrong_type = registry.run(ToolCall(id="1", name="get_current_time", arguments={"timezone": 5}))
        missing = registry.run(ToolCall(id="2", name="get_current_time", arguments={}))
        unknown_zone = registry.run(ToolCall(id="3", name="get_current_time", arguments={"timezone": "Mars/Olympus"}))
    assert wrong_type.is_error and wrong_type.error_type == "invalid_arguments"
    assert "timezone: 5 is not of type 'string'" in wrong_type.content
    assert missing.error_type == "invalid_arguments" and "'timezone' is a required property" in missing.content
    # Valid by the schema, refused by the server: the server's own message comes back.
    assert unknown_zone.is_error and unknown_zone.error_type == "exception"
    assert "Mars/Olympus" in unknown_zone.content


def test_an_agent_run_calls_the_remote_tool_and_finishes(time_server):
    backend = ScriptedBackend([
        {"calls": [{"name": "time_get_current_time", "arguments": {"timezone": "Europe/Paris"}}]},
        {"final_answer": "It is evening in Paris."},
    ])
    with MCPClient(time_server, prefix="time_") as client:
        result = Agent(backend, tools=client.tools()).run("What time is it in Paris?")
    assert result.output == "It is evening in Paris."
    observation = result.steps[0].observations[0]
    assert not observation.is_error, observation.content
    assert json.loads(observation.content)["timezone"] == "Europe/Paris"
    # The model saw the remote tool, with its schema, in its prompt.
    prompt = backend.requests[0].messages[0].content
    assert "time_get_current_time" in prompt and "IANA timezone" in prompt


def test_tools_work_from_async_code_and_from_other_event_loops(time_server):
    async def main() -> list[str]:
        async with MCPClient(time_server) as client:
            tools = client.tools()
            script = [{"calls": [{"name": "get_current_time", "arguments": {"timezone": "UTC"}}]}, {"final_answer": "done"}]
            # Agent.arun: the tool runs on this loop, the session on the client's own loop.
            first = await Agent(ScriptedBackend(script), tools=tools).arun("time?")
            # Agent.run inside a running loop: the agent drives its own loop in a helper thread.
            second = Agent(ScriptedBackend(script), tools=tools).run("time?")
            direct = await client.acall("get_current_time", {"timezone": "UTC"})
            return [first.steps[0].observations[0].content, second.steps[0].observations[0].content, direct]

    for content in asyncio.run(main()):
        assert json.loads(content)["timezone"] == "UTC", content


# -- the step grammar from remote schemas --------------------------------------------------------


def test_the_step_schema_is_built_from_remote_schemas(time_server, tiny):
    with MCPClient(time_server) as time_client:
        registry = ToolRegistry([*time_client.tools(), *tiny.tools()])
        schema = StepFormat(registry).grammar_schema()
    tricky = next(v for v in schema["anyOf"][0]["properties"]["calls"]["items"]["anyOf"]
                  if v["properties"]["name"] == {"const": "t_tricky"})["properties"]["arguments"]
    # Refs were made to resolve inside the step schema ($defs hoisted under the tool's name).
    assert tricky["properties"]["point"] == {"$ref": "#/$defs/t_tricky.Point"}
    assert tricky["properties"]["child"] == {"$ref": "#/$defs/t_tricky._root"}
    assert {"t_tricky.Point", "t_tricky.Tag", "t_tricky._root"} <= set(schema["$defs"])
    text = json.dumps(schema)
    assert "#/definitions/" not in text and "example.com" not in text and '"$schema"' not in text
    for keyword in ('"uniqueItems"', '"not"', '"regex"', "(?!"):
        assert keyword not in text


def test_the_step_grammar_compiles_with_llguidance(time_server, tiny, smollm2_tokenizer):
    if importlib.util.find_spec("llguidance") is None:
        pytest.skip("llguidance is not installed (local extra)")
    import llguidance
    import llguidance.hf

    with MCPClient(time_server) as time_client:
        schema = StepFormat(ToolRegistry([*time_client.tools(), *tiny.tools()])).grammar_schema()
    tokenizer = llguidance.hf.from_tokenizer(smollm2_tokenizer, eos_token=smollm2_tokenizer.eos_token_id)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JsonSchemaConstraint(json_schema=schema).whitespace())
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    assert not is_error, messages

    def accepts(step: dict) -> bool:
        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        return matcher.consume_tokens(tokenizer.tokenize_str(json.dumps(step))) and matcher.is_accepting()

    tricky = {"tags": ["a"], "point": {"x": 1, "y": 2}, "child": {"tags": ["b"]}}
    assert accepts({"calls": [{"name": "t_tricky", "arguments": tricky}]})
    assert accepts({"calls": [{"name": "get_current_time", "arguments": {"timezone": "UTC"}}]})
    assert not accepts({"calls": [{"name": "t_tricky", "arguments": {"point": {"x": 1, "y": 2}}}]})  # tags required
    assert not accepts({"calls": [{"name": "get_current_time", "arguments": {"timezone": 5}}]})


# -- the tiny server: validation, names, errors, timeouts, crashes --------------------------------


def test_invalid_arguments_never_reach_the_server(tiny):
    registry = ToolRegistry(tiny.tools())
    before = int(tiny.call("calls"))
    bad = [
        ("t_echo", {"text": "x" * 21}, "text: 'xxxxxxxxxxxxxxxxxxxxx' is too long"),
        ("t_echo", {"text": "hi", "loud": True}, "Additional properties are not allowed ('loud' was unexpected)"),
        ("t_tricky", {"tags": ["a", "a"]}, "tags: ['a', 'a'] has non-unique elements"),  # dropped from the grammar, still checked
        ("t_tricky", {"tags": ["a"], "point": {"x": 1}}, "point: 'y' is a required property"),
        ("t_tricky", {"tags": ["a"], "not_b": "b"}, "not_b: 'b' should not be valid"),
    ]
    for name, arguments, message in bad:
        observation = registry.run(ToolCall(id="1", name=name, arguments=arguments))
        assert observation.is_error and observation.error_type == "invalid_arguments", observation.content
        assert message in observation.content
    assert int(tiny.call("calls")) == before + 1, "an invalid call reached the server"
    good = {"tags": ["a"], "point": {"x": 1, "y": 2}, "child": {"tags": []}, "extra": {"k": 1}, "more": True}
    observation = registry.run(ToolCall(id="2", name="t_tricky", arguments=good))
    assert json.loads(observation.content) == {"tool": "tricky", "arguments": good}


def test_validate_arguments_raises_a_clear_pydantic_free_error(tiny):
    echo = next(t for t in tiny.tools() if t.name == "t_echo")
    assert echo.validate_arguments({"text": "hi"}) == {"text": "hi"}
    with pytest.raises(InvalidArgumentsError, match=r"^text: 3 is not of type 'string'$"):
        echo.validate_arguments({"text": 3})


def test_names_are_prefixed_and_sanitised_and_calls_use_the_remote_name(tiny):
    names = [t.name for t in tiny.tools()]
    assert names == ["t_echo", "t_calls", "t_crash", "t_hang", "t_nap", "t_fail", "t_weird_name", "t_tricky"]
    observation = ToolRegistry(tiny.tools()).run(ToolCall(id="1", name="t_weird_name", arguments={}))
    assert json.loads(observation.content)["tool"] == "weird.name"


def test_include_and_exclude_pick_tools(tiny_server):
    with MCPClient(tiny_server, include=["echo", "fail"]) as client:
        assert [t.name for t in client.tools()] == ["echo", "fail"]
    with MCPClient(tiny_server, exclude=["crash", "hang"]) as client:
        assert "crash" not in [t.name for t in client.tools()] and "echo" in [t.name for t in client.tools()]
    with pytest.raises(ToolDefinitionError, match="does not have"):
        MCPClient(tiny_server, include=["echo", "nope"]).connect()


def test_the_calls_of_one_step_run_concurrently_on_one_session(tiny):
    registry = ToolRegistry(tiny.tools())
    calls = [ToolCall(id=str(i), name="t_echo", arguments={"text": f"call {i}"}) for i in range(6)]
    naps = [ToolCall(id=f"n{i}", name="t_nap", arguments={}) for i in range(4)]

    async def step(batch):
        return await registry.arun_all(batch)

    assert [o.content for o in asyncio.run(step(calls))] == [f"call {i}" for i in range(6)]
    started = time.perf_counter()
    assert [o.content for o in asyncio.run(step(naps))] == ["rested"] * 4
    assert time.perf_counter() - started < 1.5, "four 0.5 s calls did not overlap"


def test_an_error_result_becomes_an_error_observation(tiny):
    observation = ToolRegistry(tiny.tools()).run(ToolCall(id="1", name="t_fail", arguments={}))
    assert observation.is_error and observation.error_type == "exception"
    assert "RemoteToolError: the disk is full" in observation.content


def test_a_call_past_its_timeout_is_stopped_and_the_session_lives_on(tiny_server):
    with MCPClient(tiny_server, timeout=1) as client:
        registry = ToolRegistry(client.tools())
        started = time.perf_counter()
        observation = registry.run(ToolCall(id="1", name="hang", arguments={}))
        assert time.perf_counter() - started < 4
        assert observation.is_error and observation.error_type == "timeout", observation.content
        assert registry.run(ToolCall(id="2", name="echo", arguments={"text": "still here"})).content == "still here"
        with pytest.raises(TimeoutError):
            client.call("hang", timeout=0.5)


@needs_proc
def test_a_server_that_crashes_mid_call_gives_an_error_observation_not_a_hang(tiny_server):
    before = _children()
    with MCPClient(tiny_server) as client:
        registry = ToolRegistry(client.tools(), timeout=10)
        started = time.perf_counter()
        crashed = registry.run(ToolCall(id="1", name="crash", arguments={}))
        after = registry.run(ToolCall(id="2", name="echo", arguments={"text": "anyone?"}))
        assert time.perf_counter() - started < 5
    assert crashed.is_error and crashed.error_type == "exception"
    assert "closed the connection (it exited or crashed)" in crashed.content
    assert "tiny server: crashing on purpose" in crashed.content  # the server's stderr is quoted
    assert after.is_error and "MCPConnectionError" in after.content
    assert _children() == before


@needs_proc
def test_a_server_that_exits_at_start_is_a_clear_connection_error(tiny_server):
    before = _children()
    started = time.perf_counter()
    with pytest.raises(MCPConnectionError) as caught:
        MCPClient([*tiny_server, "exit-at-start"]).connect()
    assert time.perf_counter() - started < 10
    message = str(caught.value)
    assert "before the MCP handshake finished" in message and "tiny server: cannot open its database" in message
    assert _children() == before


@needs_proc
def test_a_server_that_never_answers_times_out_and_is_stopped():
    silent = [sys.executable, "-c", "import sys, time; print('warming up', file=sys.stderr, flush=True); time.sleep(60)"]
    before = _children()
    started = time.perf_counter()
    with pytest.raises(MCPConnectionError, match=r"not ready within connect_timeout=1 s(.|\n)*warming up"):
        MCPClient(silent, connect_timeout=1).connect()
    assert time.perf_counter() - started < 8
    assert _children() == before


def test_async_connect_failures_are_clear_too(tiny_server):
    async def main():
        async with MCPClient([*tiny_server, "exit-at-start"]):
            pass

    with pytest.raises(MCPConnectionError, match="cannot open its database"):
        asyncio.run(main())


def test_a_missing_command_is_a_clear_connection_error():
    with pytest.raises(MCPConnectionError, match="installed and on PATH"):
        MCPClient("/nonexistent/mcp-server").connect()


def test_nothing_listening_at_the_url_is_a_clear_connection_error():
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago, and nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MCPConnectionError, match=rf"127\.0\.0\.1:{port}"):
        MCPClient(url=f"http://127.0.0.1:{port}/mcp", connect_timeout=10).connect()


def test_a_client_used_before_connecting_or_after_closing_says_so(tiny_server):
    client = MCPClient(tiny_server)
    with pytest.raises(MCPConnectionError, match="not connected"):
        client.tools()
    with client:
        tools = client.tools()
    observation = ToolRegistry(tools).run(ToolCall(id="1", name="echo", arguments={"text": "late"}))
    assert observation.is_error and "not connected" in observation.content
    client.close()  # closing twice is harmless


# -- mcp-server-sqlite --------------------------------------------------------------------------


def _sqlite_server() -> str:
    """mcp-server-sqlite lives in its own virtualenv (`make test` builds .venv/mcp-sqlite): its last
    release (2025.4.25) needs mcp 1.x and crashes under the mcp 2.x agentkit uses. A third-party
    server with its own dependencies, talked to over stdio, is exactly the MCP use case."""
    path = os.environ.get("AGENTKIT_MCP_SQLITE") or str(Path(__file__).resolve().parents[2] / ".venv" / "mcp-sqlite" / "bin" / "mcp-server-sqlite")
    if not Path(path).exists():
        message = f"{path} is missing: `make test` installs mcp-server-sqlite into .venv/mcp-sqlite"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_sqlite_server_creates_writes_and_reads_a_table(tmp_path):
    command = [_sqlite_server(), "--db-path", str(tmp_path / "shop.db")]
    client = MCPClient(command, prefix="db_")
    with client:
        registry = ToolRegistry(client.tools())
        assert {"db_create_table", "db_write_query", "db_read_query"} <= set(registry.names)

        def run(name: str, query: str) -> str:
            observation = registry.run(ToolCall(id="1", name=name, arguments={"query": query}))
            assert not observation.is_error, observation.content
            return observation.content

        run("db_create_table", "CREATE TABLE fruit (name TEXT, price REAL)")
        run("db_write_query", "INSERT INTO fruit VALUES ('apple', 1.5), ('pear', 2.25)")
        assert "pear" in run("db_read_query", "SELECT name FROM fruit WHERE price > 2")


# -- pure parts: names, schemas, the optional dependency -------------------------------------------


def test_safe_tool_names():
    assert safe_tool_name("search", "gh_") == "gh_search"
    assert safe_tool_name("files/read all") == "files_read_all"
    assert safe_tool_name("3d") == "_3d"
    long = safe_tool_name("x" * 100)
    assert len(long) == 64 and long != safe_tool_name("x" * 99)
    with pytest.raises(ToolDefinitionError, match="prefix="):
        safe_tool_name("final_answer")


def test_grammar_safe_schema_fills_in_what_remote_schemas_leave_out():
    assert grammar_safe_schema({"properties": {"n": {"type": "integer"}}})["type"] == "object"
    assert grammar_safe_schema({"type": "object"}) == {"type": "object", "properties": {}}
    assert grammar_safe_schema({"type": "object", "additionalProperties": True}) == {"type": "object", "additionalProperties": True}
    with pytest.raises(ToolDefinitionError, match="takes 'array' arguments"):
        grammar_safe_schema({"type": "array"})
    # A property named like a keyword is data, not a keyword.
    schema = grammar_safe_schema({"type": "object", "properties": {"not": {"type": "string", "title": "Not"}}})
    assert schema == {"type": "object", "properties": {"not": {"type": "string"}}}


def test_importing_the_modules_does_not_import_mcp():
    code = "import sys, agentkit.tools, agentkit.tools.mcp, agentkit.tools.mcp_server; print('mcp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_without_the_sdk_the_error_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "mcp", None)  # makes `import mcp` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'agentkit\[mcp\]'"):
        MCPClient("mcp-server-time").connect()
