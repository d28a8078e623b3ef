"""`ToolPolicy`: who decides, before a call runs, whether it may run at all.

Three rules, checked in this order for every call:
1. `deny`: tool names that never run.
2. `allow`: when given, only these tool names run.
3. Approval: a call to a tool marked `@tool(requires_approval=True)` (or to any tool when
   `approve_all=True`) runs only if the `approve` callback returns True. Without a callback such
   calls are denied: a tool that asks for a human's yes never runs on nobody's yes.

A denied call becomes an error observation the model reads ("not approved: ..."), never an
exception in the loop. Approvals are asked one at a time, so console prompts from the calls of one
step do not interleave.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from agentkit.types import ToolCall

if TYPE_CHECKING:
    from agentkit.tool import Tool

Approver = Callable[[ToolCall, "Tool"], bool | Awaitable[bool]]


class ToolPolicy:
    """Allow/deny lists and an approval callback, checked before each call.

    Example:
        >>> from agentkit import ToolCall, tool
        >>> @tool(requires_approval=True)
        ... def delete_file(path: str) -> str:
        ...     '''Delete a file.'''
        ...     return "deleted"
        >>> policy = ToolPolicy(approve=lambda call, tool: call.arguments["path"].startswith("tmp/"))
        >>> import asyncio
        >>> asyncio.run(policy.check(ToolCall(id="1", name="delete_file", arguments={"path": "tmp/a"}), delete_file)) is None
        True
        >>> asyncio.run(policy.check(ToolCall(id="2", name="delete_file", arguments={"path": "/etc"}), delete_file))
        'the approver declined this call'
    """

    def __init__(
        self,
        *,
        allow: Iterable[str] | None = None,
        deny: Iterable[str] = (),
        approve: Approver | None = None,
        approve_all: bool = False,
    ) -> None:
        self.allow = None if allow is None else set(allow)
        self.deny = set(deny)
        self.approve = approve
        self.approve_all = approve_all
        # One lock per event loop (Agent.run drives each run on a fresh loop; a lock belongs to one).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    async def check(self, call: ToolCall, tool: Tool) -> str | None:
        """None when `call` may run; otherwise the reason it may not, in words for the model."""
        if call.name in self.deny:
            return "this tool is blocked by the agent's policy"
        if self.allow is not None and call.name not in self.allow:
            return "this tool is not in the agent's list of allowed tools"
        if not (tool.requires_approval or self.approve_all):
            return None
        if self.approve is None:
            return "this tool needs approval and no approver is configured"
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            try:
                if inspect.iscoroutinefunction(self.approve):
                    verdict = await self.approve(call, tool)
                else:
                    # A sync approver may block on a console prompt: keep the event loop free.
                    verdict = await asyncio.to_thread(self.approve, call, tool)
                    if inspect.isawaitable(verdict):
                        verdict = await verdict
            except Exception as exc:
                return f"the approver failed ({type(exc).__name__}: {exc})"
        return None if verdict is True else "the approver declined this call"
