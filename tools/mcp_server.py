"""Serve agentkit tools (or a whole agent) to any MCP client: `serve_mcp`, `mcp_server`, `agent_as_tool`.

Each tool is listed with its name, description and JSON Schema (`Tool.parameters`), and every call
runs through a `ToolRegistry`: arguments are validated, the tool's (or registry's) time limit and
output limits apply, and a failure (invalid arguments, exception, timeout, denied by the registry's
policy) comes back as an MCP tool result with `isError` set and agentkit's explanation as its text.
Tools marked `requires_approval=True` are denied unless the registry you pass has an approver.

Transports: "stdio" (the client starts this program; nothing else may write to stdout, which the
SDK takes care of while serving) and "streamable-http" (an HTTP endpoint, by default
http://127.0.0.1:8000/mcp).

It needs the MCP SDK: `pip install 'agentkit[mcp]'`. Importing this module does not import it.

Example:
    >>> from agentkit.tools import calculator
    >>> serve_mcp([calculator], name="math")                                    # doctest: +SKIP
    >>> serve_mcp([calculator], transport="streamable-http", port=8000)         # doctest: +SKIP

An agent is a tool too (here one whose model is scripted):
    >>> from agentkit import Agent
    >>> from agentkit.testing import ScriptedBackend
    >>> helper = Agent(ScriptedBackend([{"final_answer": "Paris"}]))
    >>> ask = agent_as_tool(helper, name="geography", description="Answers geography questions.")
    >>> ask.parameters["required"], ask.parameters["properties"]["task"]["type"]
    (['task'], 'string')
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from agentkit.registry import ToolRegistry, format_value
from agentkit.tool import Tool, tool
from agentkit.tools.mcp import require_mcp
from agentkit.types import ToolCall

if TYPE_CHECKING:
    from agentkit.agent import Agent

__all__ = ["agent_as_tool", "aserve_mcp", "mcp_server", "serve_mcp"]

Transport = Literal["stdio", "streamable-http"]


def mcp_server(
    tools: Iterable[Tool | Callable[..., Any]] | ToolRegistry,
    *,
    name: str = "agentkit",
    version: str | None = None,
    instructions: str | None = None,
) -> Any:
    """The MCP SDK's low-level `mcp.server.Server` exposing `tools`, to run or mount yourself.

    `serve_mcp` runs one for you. With a list, the tools run in a `ToolRegistry` with its default
    limits; pass your own registry to choose limits and policy.
    """
    require_mcp()
    import mcp_types as types
    from mcp.server import Server

    import agentkit

    registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)

    def listed(t: Tool) -> Any:
        return types.Tool(name=t.name, description=t.description or None, input_schema=t.parameters)

    async def on_list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[listed(t) for t in registry])

    async def on_call_tool(ctx: Any, params: Any) -> Any:
        call_id = str(ctx.request_id) if ctx.request_id is not None else uuid.uuid4().hex
        observation = await registry.arun(ToolCall(id=call_id, name=params.name, arguments=params.arguments or {}))
        return types.CallToolResult(
            content=[types.TextContent(text=observation.content)],
            is_error=observation.is_error,
        )

    def input_schema(tool_name: str) -> dict[str, Any] | None:
        return registry.get(tool_name).parameters if tool_name in registry else None

    return Server(
        name,
        version=version or agentkit.__version__,
        instructions=instructions,
        get_tool_input_schema=input_schema,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


async def aserve_mcp(
    tools: Iterable[Tool | Callable[..., Any]] | ToolRegistry,
    *,
    name: str = "agentkit",
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/mcp",
    instructions: str | None = None,
    log_level: str = "warning",
) -> None:
    """Async `serve_mcp`: serve until the client disconnects (stdio) or the process is stopped (HTTP)."""
    if transport not in ("stdio", "streamable-http"):
        raise ValueError(f"transport must be 'stdio' or 'streamable-http', got {transport!r}.")
    server = mcp_server(tools, name=name, instructions=instructions)
    if transport == "stdio":
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
        return
    import uvicorn

    app = server.streamable_http_app(streamable_http_path=path, host=host)
    await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level)).serve()


def serve_mcp(
    tools: Iterable[Tool | Callable[..., Any]] | ToolRegistry,
    *,
    name: str = "agentkit",
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/mcp",
    instructions: str | None = None,
    log_level: str = "warning",
) -> None:
    """Serve `tools` over MCP and block until done.

    Args:
        tools: `Tool`s or typed functions, or a `ToolRegistry` (its limits and policy then apply).
        name: the server's name, as clients see it.
        transport: "stdio" (default; for clients that start this program) or "streamable-http".
        host, port, path: where the HTTP endpoint listens (http://host:port/path); HTTP only.
            Served on a loopback host, requests from other origins are refused (DNS-rebinding guard).
        instructions: text the server gives clients about how to use it.
        log_level: the HTTP server's log level (uvicorn).
    """
    import anyio

    require_mcp()
    anyio.run(
        functools.partial(
            aserve_mcp, tools, name=name, transport=transport, host=host, port=port, path=path,
            instructions=instructions, log_level=log_level,
        )
    )


def agent_as_tool(
    agent: Agent,
    name: str = "agent",
    description: str | None = None,
    *,
    timeout: float | None = None,
) -> Tool:
    """Wrap `agent` as one tool that takes a `task` (text) and returns the agent's final answer as text.

    Serve it with `serve_mcp`, or give it to another agent. A run that fails (e.g. `MaxStepsExceeded`)
    becomes an error result. `timeout` bounds the whole run; None uses the registry's default (30 s),
    so set it for agents that take longer.

    Example:
        >>> from agentkit import Agent, ToolRegistry
        >>> from agentkit.testing import ScriptedBackend
        >>> helper = Agent(ScriptedBackend([{"final_answer": "4"}]))
        >>> registry = ToolRegistry([agent_as_tool(helper, name="helper", description="Does sums.")])
        >>> registry.run(ToolCall(id="1", name="helper", arguments={"task": "2 + 2?"})).content
        '4'
    """

    async def run_agent(task: str) -> str:
        """Run the agent on a task.

        Args:
            task: the task, in plain words, with everything the agent needs to know.
        """
        result = await agent.arun(task)
        output = result.output
        return output if isinstance(output, str) else format_value(output)

    default = "Give this agent a task in plain words; it works on it and answers with its final answer."
    return tool(name=name, description=description or default, timeout=timeout)(run_agent)
