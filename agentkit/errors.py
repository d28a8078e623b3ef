"""One exception tree for agentkit. Every message says what went wrong and what to do about it.

Catch `AgentkitError` to handle anything agentkit raises on purpose.

Example:
    >>> from agentkit import Agent, MaxStepsExceeded
    >>> from agentkit.testing import ScriptedBackend
    >>> backend = ScriptedBackend([{"calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}])
    >>> from agentkit.tools import calculator
    >>> try:
    ...     Agent(backend, tools=[calculator], max_steps=1).run("Add 1 and 1")
    ... except MaxStepsExceeded as exc:
    ...     print(len(exc.partial.steps), exc.partial.steps[0].observations[0].content)
    1 2
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentkit.types import RunResult


class AgentkitError(Exception):
    """Base class of every error agentkit raises on purpose."""


class ToolDefinitionError(AgentkitError, TypeError):
    """A Python function cannot become a tool (missing annotation, `*args`, unsupported type...)."""


class ToolError(AgentkitError):
    """A tool could not be registered or looked up (e.g. two tools with the same name)."""


class InvalidArgumentsError(ToolError, ValueError):
    """A tool call's arguments do not fit its schema (raised by `Tool.validate_arguments` of tools
    whose schema comes from elsewhere, e.g. MCP; the registry turns it into an error observation)."""


class ModelCapabilityError(AgentkitError, ValueError):
    """The model cannot take this input (e.g. images passed to a model without a vision tower)."""


class ModelLoadError(AgentkitError):
    """A model or tokenizer could not be loaded (missing path, unreadable GGUF, missing package)."""


class GrammarError(AgentkitError):
    """The step schema could not be compiled into a grammar, or decoding left the grammar."""


class ContextOverflowError(AgentkitError):
    """The prompt does not fit in the model's context window.

    Attributes:
        prompt_tokens: tokens in the prompt.
        context_window: the model's maximum sequence length.
        reserved_tokens: tokens kept free for the model's reply.
        partial: the run so far, when raised by an agent.
    """

    def __init__(
        self,
        message: str,
        *,
        prompt_tokens: int = 0,
        context_window: int = 0,
        reserved_tokens: int = 0,
        partial: RunResult | None = None,
    ) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window
        self.reserved_tokens = reserved_tokens
        self.partial = partial


class InvalidStepError(AgentkitError):
    """The backend kept returning text that is not a valid step, after every retry.

    Attributes:
        outputs: the rejected texts, oldest first.
        partial: the run so far (no completed step is lost).
    """

    def __init__(self, message: str, *, outputs: list[str], partial: RunResult | None = None) -> None:
        super().__init__(message)
        self.outputs = outputs
        self.partial = partial


class MaxStepsExceeded(AgentkitError):
    """The agent used all of `max_steps` without a final answer.

    Attributes:
        partial: the run so far: every step, message and token count.
    """

    def __init__(self, message: str, *, partial: RunResult) -> None:
        super().__init__(message)
        self.partial = partial
