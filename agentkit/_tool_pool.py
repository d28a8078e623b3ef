"""How one tool call runs: under one deadline, sync tools in bounded threads of their own (`ToolPool`).

A thread cannot be killed from outside. When a sync call passes its deadline the registry abandons it
(its result is dropped) and its thread runs on until the tool returns, if ever. With one shared
executor, enough hung calls (a server trickling its headers, a lock never released) occupy every worker
and every later sync tool, however trivial, times out waiting for a thread. Here each sync tool has its
own budget of threads: hung calls exhaust only that tool's budget, and once every one of its threads is
held by an abandoned call, further calls to that tool fail at once (`ToolPoolFull`) instead of waiting.

Threads are daemons started per call: unlike a ThreadPoolExecutor's workers, which the interpreter
joins at exit, an abandoned call never keeps the process from exiting. Calls may come from different
event loops (`ToolRegistry.run` makes one per call): results and free slots are handed to the waiting
loop with `call_soon_threadsafe`, and a loop that has closed meanwhile is skipped.

`execute` runs one call and its rendering under the call's deadline and turns every outcome (value,
exception of any kind, timeout, full pool) into `Shown` or `Failed`, never an exception, except for the
stop requests KeyboardInterrupt and SystemExit.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from agentkit.tool import Tool

DEFAULT_TOOL_THREADS = 8
T = TypeVar("T")


class ToolPoolFull(Exception):
    """Every thread of the tool's pool is still held by a call that timed out: the tool appears hung."""


class _Job:
    __slots__ = ("abandoned", "finished")

    def __init__(self) -> None:
        self.abandoned = False
        self.finished = False


class ToolPool:
    """At most `size` threads running one sync tool's calls; the calls beyond wait for a free thread.

    Example:
        >>> pool = ToolPool("add", size=2)
        >>> asyncio.run(pool.run(lambda: 1 + 1))
        2
    """

    def __init__(self, name: str, size: int = DEFAULT_TOOL_THREADS) -> None:
        if size < 1:
            raise ValueError(f"A tool needs at least one thread, got size={size}.")
        self.name = name
        self.size = size
        self._lock = threading.Lock()
        self._running = 0  # threads started and not yet finished, abandoned ones included
        self._abandoned = 0  # of those, the ones whose caller gave up on them (timed out)
        self._waiters: collections.deque[_Ticket] = collections.deque()

    @property
    def stuck(self) -> int:
        """How many threads are still running calls that were abandoned at their deadline."""
        return self._abandoned

    async def run(self, fn: Callable[[], T]) -> T | BaseException:
        """Run `fn()` in a thread of this pool and return what it returns.

        `fn` should not raise: whatever it raises comes back as the result (so that even a
        `CancelledError` or `KeyboardInterrupt` raised by a tool stays a value, not a signal to this
        loop). Cancelling the awaiting task abandons the call: its thread finishes in the background.
        Raises `ToolPoolFull` at once when every thread is held by an abandoned call.
        """
        await self._acquire()
        loop = asyncio.get_running_loop()
        result: asyncio.Future[T | BaseException] = loop.create_future()
        job = _Job()
        thread = threading.Thread(target=self._work, args=(fn, loop, result, job), name=f"agentkit-tool-{self.name}", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._release()  # no thread, so no slot held (e.g. "can't start new thread")
            raise
        try:
            return await result
        except BaseException:  # cancelled at the deadline (or the loop went away): the thread runs on
            self._abandon(job)
            raise

    def _work(
        self, fn: Callable[[], T], loop: asyncio.AbstractEventLoop, result: asyncio.Future[T | BaseException], job: _Job
    ) -> None:
        try:
            try:
                value: T | BaseException = fn()
            except BaseException as exc:
                value = exc
            try:
                loop.call_soon_threadsafe(_settle, result, value)
            except RuntimeError:
                pass  # the caller's loop is closed: nobody is waiting for this result any more
        finally:
            with self._lock:
                job.finished = True
                if job.abandoned:
                    self._abandoned -= 1
            self._release()

    def _abandon(self, job: _Job) -> None:
        with self._lock:
            if not job.finished:
                job.abandoned = True
                self._abandoned += 1

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._running < self.size and not self._waiters:
                self._running += 1
                return
            if self._abandoned >= self.size:
                raise ToolPoolFull(
                    f"all {self.size} threads of {self.name} are still busy with earlier calls that did not finish "
                    "in time"
                )
            ticket = _Ticket(loop)
            self._waiters.append(ticket)
        try:
            await ticket.woken
        except BaseException:  # cancelled (deadline) or the loop went away
            with self._lock:
                owned = ticket.granted  # decided under the lock, whatever callbacks are still in flight
                if not owned:
                    self._waiters.remove(ticket)
            if owned:
                self._release()  # the slot arrived just as the caller gave up: pass it on
            raise

    def _release(self) -> None:
        """Hand the freed slot to the first waiter whose loop still runs, or give it back."""
        with self._lock:
            while self._waiters:
                ticket = self._waiters.popleft()
                try:
                    ticket.loop.call_soon_threadsafe(_settle, ticket.woken, None)
                except RuntimeError:
                    continue  # its loop is closed: nobody is waiting there any more
                ticket.granted = True  # the slot now belongs to that waiter
                return
            self._running -= 1


class _Ticket:
    """A call waiting for a free thread, on `loop`."""

    __slots__ = ("granted", "loop", "woken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.woken: asyncio.Future[None] = loop.create_future()
        self.granted = False


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # cancelled meanwhile: the call was abandoned
        future.set_result(value)


# -- one call under one deadline -------------------------------------------------------------------

UNWIND_SECONDS = 0.5  # how long a cancelled async tool may take to unwind before it is left behind
_PLAIN = (str, int, float, bool, type(None))  # values whose rendering runs no code of the tool's


@dataclass(frozen=True)
class Shown:
    """A tool's value, rendered for the model."""

    value: Any
    content: str
    images: list[Any]
    truncated: bool


@dataclass(frozen=True)
class Failed:
    """A call that failed: the tool raised, returned something unusable, timed out or could not start."""

    error_type: str
    message: str
    stop: BaseException | None = None  # KeyboardInterrupt or SystemExit, re-raised in the caller's thread


Show = Callable[[str, Any], "Shown | Failed"]  # renders a tool's value; must not raise


async def execute(found: Tool, kwargs: dict[str, Any], timeout: float, pool: ToolPool, show: Show) -> Shown | Failed:
    """Run the tool and render its value under one deadline that covers both (a `__str__` can hang too).

    Every outcome is a value, whatever the tool raises or returns, except a KeyboardInterrupt or
    SystemExit raised by the tool: those are requests to stop the program and are re-raised here.
    """
    stopping = asyncio.Event()  # set when we cancel the call: unlike a CancelledError the tool raises itself
    if found.is_async:
        work = asyncio.ensure_future(_await_tool(found, kwargs, pool, show, stopping))
    else:
        work = asyncio.ensure_future(pool.run(functools.partial(_call_sync_tool, found, kwargs, show)))
    try:
        done, _ = await asyncio.wait({work}, timeout=timeout)
    except BaseException:  # our caller stopped this call (e.g. the step's time limit): stop the tool too
        stopping.set()
        work.cancel()
        raise
    if not done:
        stopping.set()
        work.cancel()
        # An async tool unwinds at its next await; one that swallows the cancellation is left behind.
        await asyncio.wait({work}, timeout=UNWIND_SECONDS)
        work.add_done_callback(_discard)
        return Failed("timeout", f"Error: {found.name} did not finish within {timeout:g} s and was stopped. "
                                 "Try a smaller request, or answer without it.")  # fmt: skip
    if work.cancelled():  # nobody cancelled it: the tool raised CancelledError itself
        return raised(found.name, asyncio.CancelledError())
    failure = work.exception()
    if isinstance(failure, ToolPoolFull):
        return Failed("busy", f"Error: {found.name} was not run: {failure}; it seems to hang. Do not call it "
                              "again for now: answer without it or use another tool.")  # fmt: skip
    outcome = failure if failure is not None else work.result()
    if isinstance(outcome, BaseException):  # raised outside the tool's own guard (e.g. KeyboardInterrupt)
        outcome = raised(found.name, outcome)
    if isinstance(outcome, Failed) and outcome.stop is not None:
        raise outcome.stop
    return outcome


def _call_sync_tool(found: Tool, kwargs: dict[str, Any], show: Show) -> Shown | Failed:
    """Run in a pool thread: the call and the rendering of its value, neither of which may raise."""
    try:
        value = found.fn(**kwargs)
    except BaseException as exc:
        return raised(found.name, exc)
    return show(found.name, value)


async def _await_tool(
    found: Tool, kwargs: dict[str, Any], pool: ToolPool, show: Show, stopping: asyncio.Event
) -> Shown | Failed | BaseException:  # an exception: what `show` raised (see `ToolPool.run`)
    try:
        value = await found.fn(**kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError) and stopping.is_set():
            raise
        return raised(found.name, exc)
    if type(value) in _PLAIN:
        return show(found.name, value)
    # Rendering runs the value's own code (__str__, model_dump...): off the event loop, like a sync tool.
    return await pool.run(functools.partial(show, found.name, value))


def raised(name: str, exc: BaseException) -> Failed:
    """The observation for an exception the tool raised (a stop request for KeyboardInterrupt/SystemExit)."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return Failed("exception", f"Error: {name} asked the program to stop.", stop=exc)
    # A tool's own time limit (an MCP server that did not answer in time) is a timeout like the registry's.
    kind = "timeout" if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) else "exception"
    return Failed(kind, f"Error: {name} failed: {describe(exc)}")


def describe(exc: BaseException) -> str:
    """'TypeName: message' for an exception, even one whose message cannot be turned into text."""
    try:
        message = str.__str__(str(exc))
    except Exception as inner:
        message = f"(its message cannot be shown: {type_name(inner)})"
    name = type_name(exc)
    return f"{name}: {message}" if message else name


def type_name(value: Any) -> str:
    """The name of `value`'s type, or 'object' when even that cannot be read (a hostile metaclass)."""
    try:
        name = type(value).__name__
        return name if type(name) is str else "object"
    except Exception:
        return "object"


def _discard(task: asyncio.Future[Any]) -> None:
    """Retrieve the result of a call that was left behind, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
