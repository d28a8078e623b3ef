"""Use the tools of any MCP server as agentkit tools: `MCPClient`.

`MCPClient` connects to a Model Context Protocol server, over stdio (it starts the server as a
subprocess: `command`, `args`, `env`) or over streamable HTTP (`url`), lists the server's tools and
gives them to you as agentkit `Tool`s. Each one's `parameters` is the server's input schema (made
grammar-safe, see `agentkit.tools._mcp_schema`), so the step grammar constrains the model to valid
arguments; before each call the arguments are also checked against the server's full schema with
`jsonschema`, so invalid ones come back to the model as an error observation without reaching the
server. A result the server marks as an error, a server that crashed and a call that takes too long
become error observations too.

The session runs on its own event loop in a background thread, so the tools work from any thread and
any event loop: from `Agent.run` (sync), from `Agent.arun` inside your own loop, from a notebook.
Use the client as a context manager (`with` or `async with`) so the session is closed and the
server process ends when you are done.

It needs the MCP SDK: `pip install 'agentkit[mcp]'`. Importing this module does not import it.

Example:
    >>> from agentkit import Agent
    >>> from agentkit.engine import LocalEngine  # doctest: +SKIP
    >>> with MCPClient("mcp-server-time", ["--local-timezone", "UTC"], prefix="time_") as time_server:  # doctest: +SKIP
    ...     agent = Agent(LocalEngine.default(), tools=time_server.tools())
    ...     print(agent.run("What time is it in Tokyo?").output)
    >>> async with MCPClient(url="http://127.0.0.1:8000/mcp") as remote:  # doctest: +SKIP
    ...     print(await remote.acall("calculator", {"expression": "2 ** 10"}))
    1024

Nothing starts until you connect:
    >>> MCPClient(["mcp-server-time", "--local-timezone", "UTC"], prefix="time_")
    MCPClient('mcp-server-time --local-timezone UTC', prefix='time_', connected=False)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from agentkit.errors import InvalidArgumentsError, ToolDefinitionError
from agentkit.tool import Tool
from agentkit.tools._mcp_schema import grammar_safe_schema, safe_tool_name, schema_without_remote_refs
from agentkit.tools._mcp_session import (
    CLOSE_SECONDS,
    MCPConnectionError,
    RemoteToolError,
    SessionThread,
    http_transport,
    require_mcp,
)

if TYPE_CHECKING:
    from types import EllipsisType

__all__ = ["MCPClient", "MCPConnectionError", "MCPTool", "RemoteToolError", "require_mcp"]


class MCPTool(Tool):
    """One tool of an MCP server, as an agentkit `Tool` (made by `MCPClient.tools()`).

    Attributes:
        client: the `MCPClient` the calls go through.
        remote_name: the tool's name on the server (`name` may carry a prefix or be sanitised).
        input_schema: the server's input schema, as listed; `parameters` is its grammar-safe copy.
    """

    def __init__(
        self,
        client: MCPClient,
        remote: Any,
        *,
        name: str,
        timeout: float | None,
        max_output_chars: int | None = None,
        max_output_bytes: int | None = None,
    ) -> None:
        remote_name = remote.name

        async def call_remote(**arguments: Any) -> str:
            return await client.acall(remote_name, arguments, timeout=timeout)

        description = (remote.description or "").strip() or f"The {remote_name!r} tool of the MCP server {client.label}."
        call_remote.__doc__ = description
        super().__init__(
            call_remote,
            name=name,
            description=description,
            parameters=grammar_safe_schema(remote.input_schema, tool_name=remote_name),
            timeout=timeout,
            max_output_chars=max_output_chars,
            max_output_bytes=max_output_bytes,
        )
        self.client = client
        self.remote_name = remote_name
        self.input_schema = remote.input_schema
        self._validator = _validator(remote.input_schema, remote_name)

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check `arguments` against the server's input schema; raise `InvalidArgumentsError` if they don't fit."""
        try:
            errors = sorted(self._validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.absolute_path])
        except Exception:
            return dict(arguments)
        if errors:
            raise InvalidArgumentsError("; ".join(_explain(error) for error in errors[:5]))
        return dict(arguments)

    def __repr__(self) -> str:
        return f"MCPTool(name={self.name!r}, server={self.client.label!r})"


class MCPClient:
    """A connection to one MCP server; `tools()` returns its tools as agentkit `Tool`s.

    Args:
        command: the server's executable (stdio transport), or a list: executable then arguments.
        args: more arguments for `command`.
        url: the server's streamable-HTTP endpoint (e.g. "http://127.0.0.1:8000/mcp"), instead of a command.
        env: environment variables for the server process, on top of a minimal safe set (PATH, HOME...).
        cwd: working directory of the server process.
        headers: HTTP headers for every request (e.g. authorisation), with `url`.
        prefix: put before every tool name (e.g. "github_"), to avoid clashes between servers.
        include, exclude: the server's tool names to keep / to leave out.
        timeout: seconds one call may take (also each tool's `timeout` in the registry); None: the
            registry's default, and no limit for `call`.
        connect_timeout: seconds to start the server, handshake and list the tools.
        max_output_chars, max_output_bytes: per-tool output limits (None: the registry's).
        errlog: where the server's stderr goes (stdio); by default it is kept in a temporary file
            whose end is quoted in connection errors.

    Tool names are `prefix + the server's name`, with characters agentkit does not allow replaced by '_'.
    """

    def __init__(
        self,
        command: str | Sequence[str] | None = None,
        args: Sequence[str] = (),
        *,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
        prefix: str = "",
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        timeout: float | None = 30.0,
        connect_timeout: float = 30.0,
        max_output_chars: int | None = None,
        max_output_bytes: int | None = None,
        errlog: IO[Any] | None = None,
    ) -> None:
        executable: str | None
        if command is None or isinstance(command, str):
            executable = command
        else:  # a command line: the executable, then its arguments
            executable, args = (command[0] if command else None), [*command[1:], *args]
        if (executable is None) == (url is None):
            raise ValueError("Pass either command=... (a server to start, over stdio) or url=... (streamable HTTP), not both.")
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}.")
        self.command = executable
        self.args = [str(a) for a in args]
        self.url = url
        self.env = dict(env) if env is not None else None
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.headers = dict(headers or {})
        self.prefix = prefix
        self.include = set(include) if include is not None else None
        self.exclude = set(exclude)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_output_chars = max_output_chars
        self.max_output_bytes = max_output_bytes
        self.errlog = errlog
        self._session: SessionThread | None = None
        self._tools: list[MCPTool] = []

    @property
    def label(self) -> str:
        """The server as a short string: its URL, or its command line."""
        return self.url if self.url is not None else shlex.join([str(self.command), *self.args])

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.client is not None

    @property
    def server_name(self) -> str | None:
        """The name the server gave in the handshake (None before connecting, or if it gave none)."""
        return self._session.server_name if self._session is not None else None

    def __repr__(self) -> str:
        prefix = f", prefix={self.prefix!r}" if self.prefix else ""
        return f"MCPClient({self.label!r}{prefix}, connected={self.connected})"

    # -- lifecycle -------------------------------------------------------------------------------

    def connect(self) -> MCPClient:
        """Start the session (and the server, for stdio) and list the tools; blocks until ready."""
        session = self._open()
        try:
            self._tools = self._make_tools(session.start().result(timeout=self.connect_timeout))
        except BaseException as exc:
            error = session.connect_error(exc, connect_timeout=self.connect_timeout, command=self.command)
            self.close()  # after making the error: it quotes the server's stderr
            raise error from None
        return self

    async def aconnect(self) -> MCPClient:
        """Async `connect`: waits without blocking the caller's event loop."""
        session = self._open()
        try:
            ready = asyncio.shield(asyncio.wrap_future(session.start()))
            self._tools = self._make_tools(await asyncio.wait_for(ready, self.connect_timeout))
        except BaseException as exc:
            error = session.connect_error(exc, connect_timeout=self.connect_timeout, command=self.command)
            await self.aclose()
            raise error from None
        return self

    def close(self) -> None:
        """End the session and stop the server process (for stdio). Safe to call twice."""
        session, self._session = self._session, None
        if session is None:
            return
        stop = session.stop()
        if stop is not None:
            try:
                stop.result(timeout=2 * CLOSE_SECONDS)
            except Exception:
                pass
        session.join()

    async def aclose(self) -> None:
        """Async `close`."""
        session, self._session = self._session, None
        if session is None:
            return
        stop = session.stop()
        if stop is not None:
            try:
                await asyncio.wait_for(asyncio.wrap_future(stop), 2 * CLOSE_SECONDS)
            except Exception:
                pass
        await asyncio.to_thread(session.join)

    def __enter__(self) -> MCPClient:
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def __aenter__(self) -> MCPClient:
        return await self.aconnect()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    # -- tools and calls -------------------------------------------------------------------------

    def tools(self) -> list[MCPTool]:
        """The server's tools (as listed when connecting), ready for `Agent(tools=...)` or a `ToolRegistry`."""
        if self._session is None:
            raise MCPConnectionError(f"{self!r} is not connected: use `with MCPClient(...) as client:` or call .connect() first.")
        return list(self._tools)

    def call(self, name: str, arguments: Mapping[str, Any] | None = None, *, timeout: float | EllipsisType | None = ...) -> str:
        """Call the server's tool `name` (its own name, without prefix) and return its text. Blocks.

        Raises `RemoteToolError` when the tool reports an error, `MCPConnectionError` when the server is
        gone, `TimeoutError` past `timeout` (default: the client's). Arguments are not validated here.
        """
        limit = self.timeout if timeout is ... else timeout
        future = self._submit(name, arguments, limit)
        try:
            return future.result(timeout=None if limit is None else limit + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"The MCP tool {name!r} did not answer within {limit:g} s.") from None

    async def acall(self, name: str, arguments: Mapping[str, Any] | None = None, *, timeout: float | EllipsisType | None = ...) -> str:
        """Async `call`, from any event loop (the call itself runs on the session's loop)."""
        limit = self.timeout if timeout is ... else timeout
        return await asyncio.wrap_future(self._submit(name, arguments, limit))  # cancelling this cancels the request

    # -- internals -------------------------------------------------------------------------------

    def _open(self) -> SessionThread:
        require_mcp()
        if self._session is not None:
            raise RuntimeError(f"{self!r} is already connected; close it first.")
        self._session = SessionThread(self._transport, label=self.label, capture_stderr=self.url is None and self.errlog is None)
        return self._session

    def _transport(self, session: SessionThread) -> Any:
        if self.url is not None:
            return self.url if not self.headers else http_transport(self.url, self.headers)
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=str(self.command), args=self.args, env=self.env, cwd=self.cwd)
        return stdio_client(params, errlog=self.errlog or session.errlog)  # type: ignore[arg-type]

    def _submit(self, name: str, arguments: Mapping[str, Any] | None, timeout: float | None) -> concurrent.futures.Future[str]:
        session = self._session
        future = session.submit(session.call_tool(name, dict(arguments or {}), timeout)) if session is not None else None
        if future is None:
            raise MCPConnectionError(
                f"{self!r} is not connected: use the tools inside `with MCPClient(...)`, or call .connect()."
            )
        return future

    def _make_tools(self, listing: list[Any]) -> list[MCPTool]:
        tools: dict[str, MCPTool] = {}
        for remote in listing:
            if remote.name in self.exclude or (self.include is not None and remote.name not in self.include):
                continue
            name = safe_tool_name(remote.name, self.prefix)
            if name in tools:
                raise ToolDefinitionError(
                    f"The MCP tools {tools[name].remote_name!r} and {remote.name!r} of {self.label} both become {name!r}. "
                    "Leave one out with exclude=[...]."
                )
            tools[name] = MCPTool(
                self, remote, name=name, timeout=self.timeout,
                max_output_chars=self.max_output_chars, max_output_bytes=self.max_output_bytes,
            )
        missing = (self.include or set()) - {t.remote_name for t in tools.values()}
        if missing:
            raise ToolDefinitionError(
                f"include= names tools that {self.label} does not have: {sorted(missing)}. It has: {sorted(r.name for r in listing)}."
            )
        return list(tools.values())


def _validator(schema: Any, tool_name: str) -> Any:
    """A jsonschema validator for the server's schema (its draft, format checks on; refs to other documents dropped)."""
    from jsonschema import exceptions, validators

    if not isinstance(schema, dict):
        raise ToolDefinitionError(f"The MCP tool {tool_name!r} has an input schema that is not a JSON object.")
    checked = schema_without_remote_refs(schema)
    cls = validators.validator_for(checked, default=validators.Draft202012Validator)
    try:
        cls.check_schema(checked)
    except exceptions.SchemaError as exc:
        raise ToolDefinitionError(
            f"The MCP tool {tool_name!r} has an invalid input schema ({exc.message}). Leave it out with exclude=[{tool_name!r}]."
        ) from None
    return cls(checked, format_checker=cls.FORMAT_CHECKER)


def _explain(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "arguments"
    return f"{where}: {error.message}"
