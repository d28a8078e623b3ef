"""What a step check is: the `StepCheck` protocol, what it may look at (`CheckContext`) and its verdict (`Discard`).

A step check looks at the calls of a step the model wrote, before they run, and names the calls to
discard, each with a reason in words the model will read. The agent runs its checks in order, each
on the step as the previous ones left it, and only on steps with calls. A discarded call never runs;
when no call is left, the model is asked for its answer with a note saying which call was not run
and why (`agentkit.checks.answering`).

Example:
    >>> import asyncio
    >>> from agentkit.backend import Backend, Generation, GenerationRequest
    >>> from agentkit.formats import make_tool_format
    >>> from agentkit.registry import ToolRegistry
    >>> from agentkit.steps import ParsedStep
    >>> from agentkit.testing import ScriptedBackend
    >>> from agentkit.types import ToolCall, Usage
    >>> class NoDeletes:
    ...     name = "no_deletes"
    ...     async def __call__(self, context, step):
    ...         return [Discard(call=c, reason="deleting is not allowed") for c in step.calls if c.name == "delete"]
    >>> registry = ToolRegistry([])
    >>> context = CheckContext(
    ...     backend=ScriptedBackend([]), request=GenerationRequest(messages=[]), step_index=1, task="Tidy up",
    ...     conversation="Tidy up", registry=registry, tool_format=make_tool_format("agentkit", registry),
    ... )
    >>> step = ParsedStep(thought=None, calls=[ToolCall(id="1", name="delete", arguments={"path": "/"})])
    >>> [d.reason for d in asyncio.run(NoDeletes()(context, step))]
    ['deleting is not allowed']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from agentkit.backend import Backend, Generation, GenerationRequest
from agentkit.formats import ToolFormat
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep
from agentkit.types import ToolCall, Usage


class Discard(BaseModel):
    """A check's verdict on one call: do not run `call`, because `reason` (the model reads it, so write it for the model).

    `call_again=False` (a call that should not have been made: no tool fits) leaves the model to
    answer when no call of the step is left. `call_again=True` (a tool is needed, but not with these
    values) shows the model its call with the reason as its result, and the run goes on: it may call
    again, or answer. If the model then writes the same call again, it runs: the model insists, and the
    result settles it.

    Example:
        >>> Discard(call=ToolCall(id="1", name="rm", arguments={}), reason="it deletes files").reason
        'it deletes files'
    """

    model_config = ConfigDict(frozen=True)

    call: ToolCall
    reason: str
    call_again: bool = False


@dataclass(frozen=True)
class Extension:
    """What a check with `extend` did: the reply that now stands for the step (None: unchanged), and the usage of asking.

    A check may add calls as well as discard them: one with an `async def extend(context, step,
    reply)` method is asked first, with the step's reply (`Generation`), and returns the reply
    continued with its calls (`agentkit.checks.MoreCalls`); the checks after it see the calls added.

    Example:
        >>> Extension(reply=None, usage=Usage()).reply is None
        True
    """

    reply: Generation | None
    usage: Usage


@dataclass(frozen=True)
class CheckContext:
    """What a step check may look at.

    backend: the agent's backend (a `agentkit.backend.Scorer` can also score replies).
    request: the `GenerationRequest` the step was written for (conversation, constraint, sampling).
    step_index: the step's number in the run, from 1.
    task: the user's request of this run.
    conversation: the text of the conversation after the system prompt and the few-shot examples
        (the task, earlier turns, tool results): where a call's values may come from.
    registry: the agent's tools.
    tool_format: the syntax the model writes steps in (its `name` says which: "agentkit", "hermes"...).

    Example:
        >>> from agentkit.formats import make_tool_format
        >>> from agentkit.testing import ScriptedBackend
        >>> registry = ToolRegistry([])
        >>> CheckContext(ScriptedBackend([]), GenerationRequest(messages=[]), 1, "Hi", "Hi", registry,
        ...              make_tool_format("hermes", registry)).tool_format.name
        'hermes'
    """

    backend: Backend
    request: GenerationRequest
    step_index: int
    task: str
    conversation: str
    registry: ToolRegistry
    tool_format: ToolFormat


@runtime_checkable
class StepCheck(Protocol):
    """A step check: has a `name` (in traces and `Step.discarded`) and is awaited as `check(context, step)`.

    It returns the calls of `step` to discard (`Discard`), each with its reason; [] keeps them all.
    A check may also add calls: it then has `async def extend(context, step, reply)`, asked first
    with the step's reply, that returns an `Extension` (`agentkit.checks.MoreCalls`).
    Any object with these two works: a class with `name` and `async def __call__`, or a `ScopedCheck`
    subclass to limit it to some tool formats or to a run's first step.

    Example:
        >>> class Nothing:
        ...     name = "nothing"
        ...     async def __call__(self, context, step):
        ...         return []
        >>> isinstance(Nothing(), StepCheck)
        True
    """

    @property
    def name(self) -> str:
        """The check's name, as traces and `Step.discarded` record it."""
        ...

    async def __call__(self, context: CheckContext, step: ParsedStep) -> list[Discard]:
        """The calls of `step` not to run, each with the reason the model will read."""
        ...


@dataclass(frozen=True)
class ScopedCheck:
    """A step check that applies to some tool formats and steps only; subclasses write `check`.

    formats: the names of the tool formats it checks (None: every format).
    skip_formats: the names of tool formats it leaves alone.
    first_step_only: check only a run's first step (where "does a tool fit at all" is decided).

    Example:
        >>> import asyncio
        >>> class NoCalls(ScopedCheck):
        ...     name = "no_calls"
        ...     async def check(self, context, step):
        ...         return [Discard(call=c, reason="no tools today") for c in step.calls]
        >>> NoCalls(formats=("hermes",))
        NoCalls(formats=('hermes',))
        >>> describe_check(NoCalls(formats=("hermes",)))
        "no_calls(formats=('hermes',))"
    """

    formats: tuple[str, ...] | None = None
    skip_formats: tuple[str, ...] = ()
    first_step_only: bool = False

    name: ClassVar[str] = "scoped_check"

    def applies(self, context: CheckContext) -> bool:
        """Whether this check looks at steps of `context` (its format and step index)."""
        fmt = context.tool_format.name
        if self.formats is not None and fmt not in self.formats:
            return False
        return fmt not in self.skip_formats and not (self.first_step_only and context.step_index != 1)

    async def __call__(self, context: CheckContext, step: ParsedStep) -> list[Discard]:
        return await self.check(context, step) if self.applies(context) else []

    async def check(self, context: CheckContext, step: ParsedStep) -> list[Discard]:
        """The verdict on a step this check applies to."""
        raise NotImplementedError

    def scope(self) -> str:
        """The settings that differ from the defaults, as constructor arguments: `formats=('agentkit',)`."""
        return ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if getattr(self, f.name) != f.default
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scope()})"


def describe_check(check: StepCheck) -> str:
    """A check as `Agent.describe()` and traces list it: its name, with its scope if it has one.

    Example:
        >>> class Nothing:
        ...     name = "nothing"
        >>> describe_check(Nothing())
        'nothing'
    """
    scope = check.scope() if isinstance(check, ScopedCheck) else ""
    return f"{check.name}({scope})" if scope else check.name
