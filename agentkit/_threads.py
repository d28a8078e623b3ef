"""Driving the agent's async loop from synchronous code that is itself called from a running event loop.

Example:
    >>> async def numbers():
    ...     yield 1
    ...     yield 2
    >>> list(iterate_in_thread(numbers()))
    [1, 2]
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def iterate_in_thread(steps: AsyncGenerator[T, None]) -> Iterator[T]:
    """Drive an async generator on its own event loop in a worker thread, one item per request.

    Lockstep, so leaving the loop early (`break`) stops the agent instead of letting it run on, and
    the worker's loop is closed without waiting for abandoned (timed-out) tool threads.
    """
    requests: queue.Queue[str] = queue.Queue()
    replies: queue.Queue[tuple[str, Any]] = queue.Queue()

    def worker() -> None:
        loop = asyncio.new_event_loop()
        try:
            while requests.get() == "next":
                try:
                    item = loop.run_until_complete(steps.__anext__())
                except StopAsyncIteration:
                    replies.put(("done", None))
                    return
                except BaseException as exc:
                    replies.put(("error", exc))
                    return
                replies.put(("item", item))
            loop.run_until_complete(steps.aclose())  # asked to stop early
        finally:
            loop.close()

    thread = threading.Thread(target=worker, name="agentkit-loop", daemon=True)
    thread.start()
    try:
        while True:
            requests.put("next")
            kind, value = replies.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        requests.put("stop")
        thread.join()
