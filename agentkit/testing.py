"""Backends for unit-testing agents without a model.

- `ScriptedBackend` replays a fixed list of replies, one per model call.
- `FunctionBackend` asks a Python function for each reply, given the request (messages and schema).
- `ReplayBackend` replays the model outputs recorded in a run trace (`Agent(trace=...)`), so a run can
  be re-executed against changed tools without the model.

Replies may be dicts (serialised as JSON, like a model following the step format) or raw strings (to
test how the loop handles malformed output).
"""

from __future__ import annotations

import json
import os
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


class ReplayBackend:
    """Replays the model outputs of one run in a trace file, in order (invalid attempts included).

    `run_id` picks the run when the file holds several (default: the last one started).

    Example:
        >>> import tempfile, pathlib
        >>> from agentkit import Agent
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.jsonl"
        >>> Agent(ScriptedBackend([{"final_answer": "4"}]), trace=path).run("2 + 2?").output
        '4'
        >>> Agent(ReplayBackend(path)).run("2 + 2?").output
        '4'
    """

    def __init__(self, path: str | os.PathLike[str], *, run_id: str | None = None) -> None:
        from agentkit.trace import last_run_id, read_trace

        events = read_trace(path)
        self.run_id = run_id or last_run_id(events)
        if self.run_id is None:
            raise ValueError(f"{path} holds no run (no run_start event); record one with Agent(..., trace=path).")
        self.events = [e for e in events if e.get("run_id") == self.run_id]
        self.calls = [e for e in self.events if e.get("event") == "model_call"]
        self.task = next(e.get("task") for e in self.events if e.get("event") == "run_start")
        self.context_window = 0
        self.name = f"replay of {os.fspath(path)}"
        self._next = 0
        self._lock = threading.Lock()

    def generate(self, request: GenerationRequest) -> Generation:
        with self._lock:
            if self._next >= len(self.calls):
                raise IndexError(
                    f"The trace recorded {len(self.calls)} model calls and the agent asked for call {self._next + 1}: "
                    "the run took a different path than the recorded one (e.g. a tool now returns something else)."
                )
            call = self.calls[self._next]
            self._next += 1
        return Generation(
            text=call["output"],
            prompt_tokens=call.get("prompt_tokens", 0),
            completion_tokens=call.get("completion_tokens", 0),
            finish_reason=call.get("finish_reason", "stop"),
        )

    async def agenerate(self, request: GenerationRequest) -> Generation:
        return self.generate(request)


__all__ = ["FunctionBackend", "ReplayBackend", "ScriptedBackend"]
