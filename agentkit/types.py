"""The typed records that cross every boundary: messages, tool calls, observations, steps and runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkit.images import Image

Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    """One chat message as the model sees it.

    Example:
        >>> Message(role="user", content="What is 2 + 2?").role
        'user'
    """

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str
    name: str | None = None  # the tool's name, for role="tool"
    images: tuple[Image, ...] = ()  # for vision-language models: shown with this message's text


class Usage(BaseModel):
    """Token counts and model time, for one model call or summed over a run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    generation_seconds: float = 0.0

    @classmethod
    def of(cls, generation: Any) -> Usage:
        """The usage of one model call (an `agentkit.backend.Generation`)."""
        return cls(
            prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens, model_calls=1,
            generation_seconds=generation.seconds,
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            model_calls=self.model_calls + other.model_calls,
            generation_seconds=self.generation_seconds + other.generation_seconds,
        )


class ToolCall(BaseModel):
    """A call the model asked for: a tool name and its arguments.

    Example:
        >>> ToolCall(id="call_1", name="calculator", arguments={"expression": "17 * 23"}).name
        'calculator'
    """

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Observation(BaseModel):
    """What a tool call returned, as the model will read it.

    `is_error` is true when the call failed (exception, timeout, invalid arguments, unknown tool);
    `content` then explains the failure so the model can react.
    """

    call_id: str
    name: str
    content: str
    is_error: bool = False
    error_type: str | None = None
    truncated: bool = False
    duration_seconds: float = 0.0
    images: list[Image] = Field(default_factory=list)  # images the tool returned (see `agentkit.images`)
    value: Any = Field(default=None, exclude=True, repr=False)  # the raw return value, for user code (never printed: it may be hostile)


class DiscardedCall(BaseModel):
    """A call the model wrote that a step check discarded (it never ran), why, and which check did.

    Example:
        >>> DiscardedCall(call=ToolCall(id="1", name="rm", arguments={}), reason="it deletes files", check="no_deletes").check
        'no_deletes'
    """

    call: ToolCall
    reason: str  # as the model reads it, when the step is left without calls and it is asked to answer
    check: str  # the check's `name` (see `agentkit.checks`)
    call_again: bool = False  # the model was shown the call with the reason as its result, and could call again


class Step(BaseModel):
    """One turn of the planner loop: the model's output and what came of it.

    A step either calls tools (`calls`, with one `observations` entry per call) or ends the run
    (`is_final`, with `output`). `discarded` holds the calls the model wrote that a step check
    kept from running (`agentkit.checks`); `raw_output` is the model's text as written.
    """

    index: int
    thought: str | None = None
    calls: list[ToolCall] = Field(default_factory=list)
    observations: list[Observation] = Field(default_factory=list)
    is_final: bool = False
    output: Any = None
    raw_output: str = ""
    discarded: list[DiscardedCall] = Field(default_factory=list)  # written, but not run: a step check discarded them
    rejected_outputs: list[str] = Field(default_factory=list)  # invalid replies that were retried
    usage: Usage = Field(default_factory=Usage)
    tool_seconds: float = 0.0


class SamplingSettings(BaseModel):
    """How the agent samples each step: `Agent(sampling=SamplingSettings(...))`.

    max_step_tokens: most tokens the model may write in one step (a longer reply is cut off and retried).
    temperature: 0 (the default) is greedy decoding.
    top_p: nucleus sampling's probability mass (1.0: all tokens).
    seed: makes sampled runs repeatable (each model call of a run gets its own seed from it).

    Example:
        >>> SamplingSettings(temperature=0.7, seed=1).max_step_tokens
        512
    """

    model_config = ConfigDict(frozen=True)

    max_step_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None


class Compaction(BaseModel):
    """One time a run's conversation was shrunk to fit the context window (see `agentkit.context`).

    `messages` are the indices (in `RunResult.messages`) of the observations that were replaced;
    token counts are exact when the backend counts tokens, else 0.
    """

    step: int
    strategy: str
    tokens_before: int = 0
    tokens_after: int = 0
    messages: list[int] = Field(default_factory=list)


class RunResult(BaseModel):
    """Everything a run produced: the answer, every step, the conversation and the token totals.

    `messages` is the conversation as the model last read it (older observations may have been
    compacted to fit its window; `steps` keep every observation whole). `context_tokens` is the
    last prompt's size in tokens.
    """

    output: Any = None
    steps: list[Step] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    seconds: float = 0.0
    context_tokens: int = 0
    compactions: list[Compaction] = Field(default_factory=list)
