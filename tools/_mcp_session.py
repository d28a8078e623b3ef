"""The MCP session behind `MCPClient`: the SDK's `Client` on a private event loop in a background thread.

Why a thread: agentkit calls tools from whatever event loop is running the agent (`Agent.run` makes a
private one, `Agent.arun` uses the caller's, a notebook has its own), while an MCP session is bound
to the loop it was opened on, and its transport tasks must keep running between calls. So the session
lives on its own loop, and every call is handed to that loop (`asyncio.run_coroutine_threadsafe`)
and awaited from the caller's (`asyncio.wrap_future`), which also carries a cancellation across.

Also here: the errors the client raises, the check that the SDK is installed, and turning results
and failures into text a model (or a person) can act on. Nothing here imports `mcp` at import time.

Example:
    >>> str(MCPConnectionError("The MCP server my-server closed the connection."))
    'The MCP server my-server closed the connection.'
    >>> issubclass(MCPConnectionError, ConnectionError), issubclass(RemoteToolError, RuntimeError)
    (True, True)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import tempfile
import threading
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from typing import IO, Any, TypeVar

from agentkit.errors import AgentkitError

INSTALL_HINT = "pip install 'agentkit[mcp]'"
CLOSE_SECONDS = 10.0  # the SDK bounds its own stdio shutdown at about 6.5 s (close stdin, SIGTERM, SIGKILL)
_STDERR_TAIL_BYTES = 2000
T = TypeVar("T")


class MCPConnectionError(AgentkitError, ConnectionError):
    """The MCP server could not be reached, did not start, or went away (exited, crashed, closed)."""


class RemoteToolError(AgentkitError, RuntimeError):
    """The MCP server ran the tool and reported an error (its message is the error's text)."""


MCPConnectionError.__module__ = RemoteToolError.__module__ = "agentkit.tools.mcp"  # where users import them


def require_mcp() -> Any:
    """Import and return the `mcp` SDK (2.x), or raise ImportError naming the install command."""
    try:
        import mcp
    except ImportError as exc:
        raise ImportError(f"MCP support needs the MCP Python SDK, which is not installed: {INSTALL_HINT}") from exc
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("mcp")
    except PackageNotFoundError:  # a vendored copy without metadata: trust it
        return mcp
    if int(found.split(".")[0]) < 2:
        raise ImportError(f"agentkit's MCP support needs mcp>=2.3, found mcp {found}: {INSTALL_HINT} --upgrade")
    return mcp


class SessionThread:
    """One MCP session on its own loop and thread: `start`, then `submit` calls, then `stop` and `join`.

    `transport()` is called on the session's loop and returns what `mcp.Client` accepts (a URL or a
    transport context manager); `label` names the server in error messages. With `capture_stderr`,
    a stdio server's stderr goes to a temporary file (`errlog`) whose end `stderr_note` quotes.
    """

    def __init__(self, transport: Callable[[SessionThread], Any], *, label: str, capture_stderr: bool) -> None:
        self._transport = transport
        self.label = label
        self.errlog: IO[bytes] | None = tempfile.TemporaryFile() if capture_stderr else None  # noqa: SIM115  # closed in stop()
        self.client: Any = None  # the connected mcp.Client, while the session is up
        self.server_name: str | None = None
        self.failure: BaseException | None = None
        self.ready: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._closing: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"agentkit-mcp {label}"[:60], daemon=True)

    def start(self) -> concurrent.futures.Future[list[Any]]:
        """Start the thread; the future gets the server's tool listing, or the connection error."""
        self._thread.start()
        return self.ready

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T] | None:
        """Run `coroutine` on the session's loop; None (and the coroutine closed) if the loop is gone."""
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # loop closed
            coroutine.close()
            return None

    def stop(self) -> concurrent.futures.Future[None] | None:
        """Ask the session to close (gracefully if it is up, by cancelling it if it is still starting)."""
        return self.submit(self._shutdown()) if self._closing is not None else None

    def join(self) -> None:
        """Stop the loop and wait for the thread; then release the stderr file."""
        try:
            self._loop.call_soon_threadsafe(self._loop.stop)
        except RuntimeError:
            pass  # already closed
        if self._thread.is_alive():
            self._thread.join(timeout=CLOSE_SECONDS)
        self.client = None
        if self.errlog is not None:
            self.errlog.close()
            self.errlog = None

    async def call_tool(self, name: str, arguments: dict[str, Any], timeout: float | None) -> str:
        """Call a tool (on the session's loop) and return its text; raise on an error result or failure."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        client = self.client
        if client is None:
            why = f" ({type(self.failure).__name__}: {self.failure})" if self.failure is not None else ""
            raise MCPConnectionError(f"The MCP session with {self.label} is closed{why}.")
        try:
            result = await client.call_tool(name, arguments, read_timeout_seconds=timeout)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise MCPConnectionError(
                    f"The MCP server {self.label} closed the connection (it exited or crashed){self.stderr_note()}"
                ) from None
            if exc.code == REQUEST_TIMEOUT:
                raise TimeoutError(f"The MCP server {self.label} did not answer within {timeout:g} s.") from None
            raise RemoteToolError(f"The MCP server refused the call: {exc.message}") from None
        text = result_text(result)
        if result.is_error:
            raise RemoteToolError(text or "the tool reported an error without a message")
        return text

    def connect_error(self, exc: BaseException, *, connect_timeout: float, command: str | None) -> BaseException:
        """`exc` (raised while connecting) as an `MCPConnectionError` that says what happened and quotes stderr."""
        if isinstance(exc, (AgentkitError, KeyboardInterrupt, SystemExit)):
            return exc
        if isinstance(exc, (concurrent.futures.TimeoutError, asyncio.TimeoutError, TimeoutError)):
            return MCPConnectionError(
                f"The MCP server {self.label} was not ready within connect_timeout={connect_timeout:g} s{self.stderr_note()}"
            )
        leaf = _leaf_exception(exc)
        if str(leaf) == "Connection closed":
            return MCPConnectionError(
                f"The MCP server {self.label} closed the connection before the MCP handshake finished (it exited "
                f"or crashed, or is not an MCP server){self.stderr_note()}"
            )
        hint = f". Is {command!r} installed and on PATH (or give its full path)?" if isinstance(leaf, FileNotFoundError) else ""
        return MCPConnectionError(
            f"Could not connect to the MCP server {self.label}: {type(leaf).__name__}: {leaf}{hint}{self.stderr_note()}"
        )

    def stderr_note(self) -> str:
        """'. The end of its stderr: ...' when the server's stderr was captured and is not empty, else '.'."""
        log, pread = self.errlog, getattr(os, "pread", None)
        if log is None or pread is None:
            return "."
        try:
            fd = log.fileno()
            size = os.fstat(fd).st_size
            data = pread(fd, _STDERR_TAIL_BYTES, max(0, size - _STDERR_TAIL_BYTES))  # leaves the shared offset alone
        except (OSError, ValueError):
            return "."
        tail = data.decode("utf-8", errors="replace")
        if size > _STDERR_TAIL_BYTES and "\n" in tail:
            tail = tail.split("\n", 1)[1]  # start on a whole line
        tail = tail.strip()
        return f". The end of its stderr:\n{tail}" if tail else " (it wrote nothing on stderr)."

    # -- on the session's thread -----------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        self._closing = asyncio.Event()
        self._task = loop.create_task(self._serve())
        try:
            loop.run_forever()
        finally:
            leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        from mcp import Client
        from mcp.types import Implementation

        import agentkit

        assert self._closing is not None
        try:
            info = Implementation(name="agentkit", version=agentkit.__version__)
            async with Client(self._transport(self), client_info=info) as client:
                listing = await _list_all_tools(client)
                server = client.server_info
                self.server_name = server.name if server is not None else None
                self.client = client
                self.ready.set_result(listing)
                await self._closing.wait()
        except BaseException as exc:
            self.failure = exc
            if not self.ready.done():
                self.ready.set_exception(exc)
        finally:
            self.client = None

    async def _shutdown(self) -> None:
        assert self._closing is not None and self._task is not None
        self._closing.set()
        if self.client is None:  # not up (yet): stuck starting or in the handshake, so cancel it
            self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_SECONDS)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=CLOSE_SECONDS)


@asynccontextmanager
async def http_transport(url: str, headers: dict[str, str]) -> Any:
    """Streamable HTTP with extra headers: the SDK's transport over an HTTP client of ours."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


async def _list_all_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):  # a server whose cursor never ends cannot hang the connect
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def result_text(result: Any) -> str:
    """A tool result as the text the model reads: text blocks as they are, other blocks described."""
    parts = []
    for block in result.content:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(text if text is not None else f"[resource {resource.uri}: {resource.mime_type or 'binary data'}]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _leaf_exception(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, skipping the SDK's generic 'Connection closed'."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        inner = getattr(e, "exceptions", None)
        if isinstance(inner, (list, tuple)) and inner:
            for sub in inner:
                walk(sub)
        else:
            leaves.append(e)

    walk(exc)
    return next((leaf for leaf in leaves if str(leaf) != "Connection closed"), leaves[0] if leaves else exc)
