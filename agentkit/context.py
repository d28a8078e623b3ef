"""Context policy: what a run does when its conversation would overflow the model's context window.

Before every model call the agent counts the prompt's tokens exactly (the backend's own tokenizer,
`count_tokens`) and checks them, plus the reply's reserve (`max_step_tokens`), against the window
(the model's, or a smaller `max_tokens` budget). When they do not fit, the policy's strategy applies:

- `"error"` (default): stop with `ContextOverflowError`; its `.partial` holds the run so far.
- `"drop_oldest"`: replace the oldest tool observations with a one-line note, oldest first, until
  the prompt fits; the newest `keep_recent` observations are never touched.
- `"summarize"`: ask the model to summarise the older observations in at most `summary_tokens`
  tokens and put that summary in their place (then drop, if it still does not fit).

Only the conversation the model reads shrinks: every observation stays whole in `run.steps`, and
each compaction is recorded in `run.compactions` (and the trace). A backend that cannot count tokens
(a remote server) is compacted when it reports an overflow, one observation at a time.

Example:
    >>> from agentkit import Agent, ContextPolicy
    >>> from agentkit.testing import ScriptedBackend
    >>> agent = Agent(ScriptedBackend([{"final_answer": "ok"}]), context=ContextPolicy(strategy="drop_oldest"))
    >>> agent.context.strategy
    'drop_oldest'
"""

from __future__ import annotations

from typing import Any, Literal, TypeGuard, get_args

from pydantic import BaseModel, ConfigDict, Field

from agentkit.backend import Backend, GenerationRequest
from agentkit.errors import ContextOverflowError
from agentkit.prompts import render
from agentkit.types import Compaction, Message, Usage

Strategy = Literal["error", "drop_oldest", "summarize"]


class ContextPolicy(BaseModel):
    """How a run keeps within the context window.

    Args:
        strategy: "error", "drop_oldest" or "summarize" (see the module docstring).
        max_tokens: a budget for prompt + reply below the model's window (None: the whole window);
            smaller prompts are faster, and a remote model's window may be unknown (0).
        keep_recent: the newest observations that are never dropped or summarised.
        summary_tokens: most tokens a summary may take.

    Example:
        >>> ContextPolicy(strategy="summarize", max_tokens=8192, keep_recent=2).keep_recent
        2
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Strategy = "error"
    max_tokens: int | None = Field(default=None, ge=1)
    keep_recent: int = Field(default=1, ge=0)
    summary_tokens: int = Field(default=256, ge=16)


def context_policy(value: ContextPolicy | str | None) -> ContextPolicy:
    """A `ContextPolicy` from a policy, a strategy name, or None (the default policy).

    Example:
        >>> context_policy("drop_oldest").strategy
        'drop_oldest'
    """
    if value is None:
        return ContextPolicy()
    if isinstance(value, ContextPolicy):
        return value
    if not _is_strategy(value):
        raise ValueError(f"Unknown context strategy {value!r}: use 'error', 'drop_oldest' or 'summarize', or a ContextPolicy.")
    return ContextPolicy(strategy=value)


def _is_strategy(name: str) -> TypeGuard[Strategy]:
    return name in get_args(Strategy)


class ContextKeeper:
    """One run's context bookkeeping: counts the prompt, compacts it under the policy, records what it did.

    `first_droppable` is where the run's own messages start (the system prompt and few-shot turns
    before it are never touched); `reserve` is the reply's token budget.
    """

    def __init__(
        self, policy: ContextPolicy, backend: Backend, *, first_droppable: int, reserve: int, tools: list[dict[str, Any]] | None
    ) -> None:
        self.policy = policy
        self.backend = backend
        self.first_droppable = first_droppable
        self.reserve = reserve
        self.tools = tools
        self._compacted: set[int] = set()  # message indices already replaced by a note or a summary
        self.last_tokens = 0  # the last prompt's exact size, when the backend counts
        windows = [w for w in (getattr(backend, "context_window", 0) or 0, policy.max_tokens or 0) if w > 0]
        self.window = min(windows) if windows else 0

    def count(self, messages: list[Message]) -> int | None:
        """The prompt's exact token count, or None when the backend cannot count."""
        counter = getattr(self.backend, "count_tokens", None)
        if counter is None:
            return None
        return int(counter(messages, tools=self.tools) if self.tools else counter(messages))

    async def fit(self, messages: list[Message], step: int) -> tuple[Compaction | None, Usage]:
        """Make `messages` fit (in place) before step `step`'s model call; raise if the policy can't."""
        tokens = self.count(messages)
        self.last_tokens = tokens or 0
        budget = self.window - self.reserve
        if not self.window or tokens is None or tokens <= budget:
            return None, Usage()
        if self.policy.strategy == "error":
            raise self._overflow(tokens, "")
        before, usage = tokens, Usage()
        changed: list[int] = []
        if self.policy.strategy == "summarize":
            changed, usage = await self._summarize(messages, budget)
            tokens = self.count(messages) or 0
        while tokens > budget:
            index = self._drop_oldest(messages)
            if index is None:
                raise self._overflow(tokens, " after compacting every older observation")
            changed.append(index)
            tokens = self.count(messages) or 0
        self.last_tokens = tokens
        return Compaction(step=step, strategy=self.policy.strategy, tokens_before=before, tokens_after=tokens, messages=changed), usage

    async def after_overflow(self, messages: list[Message], step: int) -> tuple[Compaction | None, Usage]:
        """The backend reported an overflow it could not be warned of: compact one more piece, if allowed."""
        if self.policy.strategy == "error":
            return None, Usage()
        if self.policy.strategy == "summarize":
            changed, usage = await self._summarize(messages, None)
            if changed:
                return Compaction(step=step, strategy="summarize", messages=changed), usage
        index = self._drop_oldest(messages)
        if index is None:
            return None, Usage()
        return Compaction(step=step, strategy="drop_oldest", messages=[index]), Usage()

    # -- strategies ------------------------------------------------------------------------------

    def _candidates(self, messages: list[Message]) -> list[int]:
        """Indices of observations that may be compacted, oldest first."""
        tools = [i for i in range(self.first_droppable, len(messages)) if messages[i].role == "tool"]
        keep = set(tools[len(tools) - self.policy.keep_recent :]) if self.policy.keep_recent else set()
        return [i for i in tools if i not in keep and i not in self._compacted]

    def _drop_oldest(self, messages: list[Message]) -> int | None:
        candidates = self._candidates(messages)
        if not candidates:
            return None
        index = candidates[0]
        old = messages[index]
        messages[index] = Message(role="tool", name=old.name, content=render("dropped_observation.jinja", name=old.name or "the tool"))
        self._compacted.add(index)
        return index

    async def _summarize(self, messages: list[Message], budget: int | None) -> tuple[list[int], Usage]:
        """Replace the older observations with one summary written by the model."""
        candidates = self._candidates(messages)
        if len(candidates) < 1:
            return [], Usage()
        request = self._summary_request([messages[i] for i in candidates])
        window = self.window or 0
        while window and len(candidates) > 1 and (self.count(request.messages) or 0) + request.max_tokens > window:
            candidates = candidates[:-1]  # the summary request must fit too: summarise fewer at once
            request = self._summary_request([messages[i] for i in candidates])
        try:
            generation = await self.backend.agenerate(request)
        except ContextOverflowError:
            return [], Usage()  # too big to summarise: the caller drops instead
        usage = Usage.of(generation)
        summary = generation.text.strip() or "(empty summary)"
        first, rest = candidates[0], candidates[1:]
        messages[first] = Message(role="tool", name="summary", content=render("summary_observation.jinja", summary=summary, count=len(candidates)))
        for index in rest:
            old = messages[index]
            messages[index] = Message(role="tool", name=old.name, content=render("dropped_observation.jinja", name=old.name or "the tool", summarised=True))
        self._compacted.update(candidates)
        return candidates, usage

    def _summary_request(self, observations: list[Message]) -> GenerationRequest:
        text = render("summarize.jinja", observations=[m.content for m in observations])
        return GenerationRequest(
            messages=[Message(role="user", content=text)], max_tokens=self.policy.summary_tokens, temperature=0.0
        )

    def _overflow(self, tokens: int, how: str) -> ContextOverflowError:
        fixes = (
            "Use Agent(context='drop_oldest') or 'summarize', shorten tool outputs (max_output_chars), "
            "lower SamplingSettings.max_step_tokens, or use a model with a longer context."
            if self.policy.strategy == "error"
            else "Lower keep_recent, shorten tool outputs (max_output_chars) or the task, lower SamplingSettings.max_step_tokens, "
            "or use a model with a longer context."
        )
        return ContextOverflowError(
            f"The prompt has {tokens} tokens{how} and the reply needs up to {self.reserve} more, but the context "
            f"budget is {self.window} tokens. {fixes} The run so far is in `.partial`.",
            prompt_tokens=tokens,
            context_window=self.window,
            reserved_tokens=self.reserve,
        )
