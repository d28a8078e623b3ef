"""The `Backend` protocol: the only thing the agent loop knows about models.

A backend turns messages (plus, optionally, the constraint a reply must satisfy) into text. The
local engine, a remote OpenAI-compatible server and the test fakes all implement it; the loop never
imports torch or transformers.

Example: any object with `context_window`, `generate` and `agenerate` is a backend.
    >>> class Echo:
    ...     context_window = 0
    ...     def generate(self, request):
    ...         return Generation(text='{"final_answer": "' + request.messages[-1].content + '"}')
    ...     async def agenerate(self, request):
    ...         return self.generate(request)
    >>> isinstance(Echo(), Backend)
    True
    >>> from agentkit import Agent
    >>> Agent(Echo(), examples=[]).run("hello").output
    'hello'
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agentkit.constraints import Constraint
from agentkit.types import Message


class GenerationRequest(BaseModel):
    """What the agent asks of a backend for one step.

    `constraint`, when set, is what the reply must satisfy: a `JsonSchemaConstraint` (one JSON value)
    or a `LarkConstraint` (any other syntax, such as `<tool_call>{...}</tool_call>` or `[f(a=1)]`;
    see `agentkit.constraints`). A backend that can constrain its decoding to it (like the local
    engines) guarantees a parseable reply; one that cannot decodes freely and the agent parses what
    comes back. None means free decoding. `tools`, when set, are OpenAI-style function specs for
    backends whose chat template renders tools itself (the model's own tool prompt).

    Example:
        >>> from agentkit.constraints import JsonSchemaConstraint
        >>> request = GenerationRequest(messages=[Message(role="user", content="Pick a number.")],
        ...                             constraint=JsonSchemaConstraint(json_schema={"type": "integer"}))
        >>> GenerationRequest.model_validate_json(request.model_dump_json()) == request
        True
        >>> request.constraint.kind
        'json_schema'
    """

    model_config = ConfigDict(extra="forbid")  # a misspelt field would otherwise be dropped in silence

    messages: list[Message]
    constraint: Constraint | None = None
    tools: list[dict[str, Any]] | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


class Generation(BaseModel):
    """A backend's reply with its token counts and time."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: Literal["stop", "length"] = "stop"
    details: dict[str, Any] = Field(default_factory=dict)  # backend-specific timings and counters


@runtime_checkable
class Backend(Protocol):
    """Anything that can produce the next step's text.

    `context_window` is the model's maximum sequence length in tokens (0 if unknown).
    """

    context_window: int

    def generate(self, request: GenerationRequest) -> Generation:
        """Produce one reply (blocking)."""
        ...

    async def agenerate(self, request: GenerationRequest) -> Generation:
        """Produce one reply without blocking the event loop."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """A backend that can also say how likely given replies are (the local engine can; remote servers can't).

    Step checks use it: to weigh a step's extra tool calls against the same step without them
    (`agentkit.checks.PruneCalls`), and to have the model judge a call (`agentkit.checks.JudgedCalls`).
    """

    def score(self, request: GenerationRequest, replies: list[str]) -> list[float]:
        """The log-probability of each reply as the model's whole reply to `request`."""
        ...
