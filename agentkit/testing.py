"""Backends for unit-testing agents without a model.

- `ScriptedBackend` replays a fixed list of replies, one per model call.
- `FunctionBackend` asks a Python function for each reply, given the request (messages and schema).

Replies may be dicts (serialised as JSON, like a model following the step format) or raw strings (to
test how the loop handles malformed output).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from agentkit.backend import Generation, GenerationRequest

Reply = dict[str, Any] | str


def _as_text(reply: Reply) -> str:
    return reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)


class ScriptedBackend:
    """Replays `replies` in order; raises `IndexError` (a test bug) when they run out.

    `requests` records every request received, so tests can assert on prompts.

    Example:
        >>> backend = ScriptedBackend([{"final_answer": "hi"}])
        >>> backend.generate(GenerationRequest(messages=[])).text
        '{"final_answer": "hi"}'
    """

    def __init__(self, replies: Iterable[Reply], *, context_window: int = 0) -> None:
        self._replies = list(replies)
        self._lock = threading.Lock()
        self.context_window = context_window
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> Generation:
        with self._lock:
            if len(self.requests) >= len(self._replies):
                raise IndexError(
                    f"ScriptedBackend has {len(self._replies)} replies but was asked for reply "
                    f"{len(self.requests) + 1}. Add replies to the script."
                )
            reply = self._replies[len(self.requests)]
            self.requests.append(request)
        text = _as_text(reply)
        return Generation(text=text, completion_tokens=len(text.split()))

    async def agenerate(self, request: GenerationRequest) -> Generation:
        return self.generate(request)


class FunctionBackend:
    """Calls `fn(request)` for each reply; `fn` returns a dict or a string.

    Example:
        >>> backend = FunctionBackend(lambda request: {"final_answer": str(len(request.messages))})
        >>> backend.generate(GenerationRequest(messages=[])).text
        '{"final_answer": "0"}'
    """

    def __init__(self, fn: Callable[[GenerationRequest], Reply], *, context_window: int = 0) -> None:
        self.fn = fn
        self.context_window = context_window
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        text = _as_text(self.fn(request))
        return Generation(text=text, completion_tokens=len(text.split()))

    async def agenerate(self, request: GenerationRequest) -> Generation:
        return self.generate(request)


__all__ = ["FunctionBackend", "ScriptedBackend"]
