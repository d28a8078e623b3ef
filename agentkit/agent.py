"""The planner loop: ask the model for a step, run its tool calls, feed the results back, repeat.

One async generator (`Agent.aiter`) is the loop; `iter`, `run` and `arun` are thin drivers over it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from typing import Any

from agentkit._step_checking import CheckedStep, StepChecking, trace_model_call
from agentkit._threads import iterate_in_thread
from agentkit.backend import Backend, Generation, GenerationRequest
from agentkit.checks import DEFAULT_STEP_CHECKS, StepCheck, describe_check
from agentkit.checks.answering import answer_only_format, calls_only_format, unrun_note
from agentkit.context import ContextKeeper, ContextPolicy, context_policy
from agentkit.errors import ContextOverflowError, InvalidStepError, MaxStepsExceeded, ModelCapabilityError
from agentkit.formats import ToolFormat, format_for_convention, make_tool_format
from agentkit.images import to_image
from agentkit.prompting import DEFAULT_EXAMPLES, Example, example_messages, invalid_step_message, observation_message, system_prompt
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep, StepLimits, StepParseError
from agentkit.tool import Tool
from agentkit.trace import TraceWriter
from agentkit.types import (
    Message,
    RunResult,
    SamplingSettings,
    Step,
    ToolCall,  # noqa: F401  # the docstring examples use it
    Usage,
)


class Agent:
    """An agent: a backend, tools and instructions, run as a loop of typed steps.

    Args:
        backend: any `Backend` (e.g. `agentkit.engine.LocalEngine`, or `agentkit.testing.ScriptedBackend`).
        tools: `Tool`s or plain typed functions (wrapped with `@tool`), or a ready `ToolRegistry`.
        instructions: the agent's role and rules, put first in the system prompt.
        output_type: type of the final answer: `str` (default), or e.g. a pydantic model.
        max_steps: model calls that may produce a step before `MaxStepsExceeded` is raised.
        examples: few-shot `Example`s rendered as conversation turns before the task; None uses
            generic ones (`agentkit.prompting.DEFAULT_EXAMPLES`) for models without a tool format of
            their own, and none for tool-tuned models whose template renders the tools (they know
            how to call; a generic example only gives them a fictional tool to copy); [] uses none.
        limits: bounds the grammar puts on a step (thought length, calls per step, string sizes).
        sampling: `SamplingSettings` (max_step_tokens, temperature, top_p, seed); the default is
            greedy decoding with at most 512 tokens a step.
        max_invalid_retries: how often an unparseable reply is fed back for a retry (remote backends).
        step_checks: checks run on each step's calls before they run, in order; each may discard
            calls (`agentkit.checks`). The default, `DEFAULT_STEP_CHECKS`, prunes extra calls
            (`agentkit` format only), discards calls with invented values (every format) and has
            the model judge a first step's calls (native formats only); () turns them all off.
        trace: a JSONL file every run appends its events to (see `agentkit.trace`).
        tool_format: the syntax the model writes steps in (see `agentkit.formats`): "auto" (the
            default) picks the format the backend's chat template was tuned on, else "agentkit";
            or "agentkit", "llama3_json", "pythonic", "hermes", or a `ToolFormat` instance.
        context: what a run does when it would overflow the model's context window (see
            `agentkit.context`): "error" (the default: `ContextOverflowError` with the partial
            run), "drop_oldest", "summarize", or a `ContextPolicy`.

    How tools run (time limits, output sizes, allow/deny lists, approval) is the `ToolRegistry`'s
    to say: pass `tools=ToolRegistry([...], timeout=..., step_timeout=..., policy=ToolPolicy(...))`.

    Example:
        >>> from agentkit.testing import ScriptedBackend
        >>> from agentkit.tools import calculator
        >>> backend = ScriptedBackend([
        ...     {"calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]},
        ...     {"final_answer": "391"},
        ... ])
        >>> Agent(backend, tools=[calculator]).run("What is 17 * 23?").output
        '391'
    """

    def __init__(
        self,
        backend: Backend,
        tools: Iterable[Tool | Callable[..., Any]] | ToolRegistry = (),
        *,
        instructions: str = "",
        output_type: Any = str,
        max_steps: int = 10,
        examples: Iterable[Example] | None = None,
        limits: StepLimits | None = None,
        sampling: SamplingSettings = SamplingSettings(),
        max_invalid_retries: int = 2,
        step_checks: Sequence[StepCheck] = DEFAULT_STEP_CHECKS,
        trace: str | os.PathLike[str] | None = None,
        tool_format: str | ToolFormat = "auto",
        context: ContextPolicy | str | None = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}.")
        self.backend = backend
        self.registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        policy = self.registry.policy
        unknown = set(policy.deny | (policy.allow or set())) - set(self.registry.names)
        if unknown:
            raise ValueError(f"The ToolPolicy's allow/deny lists name unknown tools {sorted(unknown)}; the tools are {self.registry.names}.")
        self.instructions = instructions
        self.output_type = output_type
        self.max_steps = max_steps
        native = format_for_convention(getattr(backend, "tool_call_convention", None))  # the format the model's template renders tools in
        if isinstance(tool_format, str):
            name = (native or "agentkit") if tool_format == "auto" else tool_format
            tool_format = make_tool_format(name, self.registry, output_type=output_type, limits=limits)
        self.tool_format: ToolFormat = tool_format
        # The model's own template describes the tools when it was tuned on this very format.
        self.native_tools = bool(native) and native == tool_format.name and len(self.registry) > 0
        if examples is None:
            examples = [] if self.native_tools else DEFAULT_EXAMPLES
        self.examples = list(examples)
        self.sampling = sampling
        self.max_invalid_retries = max_invalid_retries
        self.step_checks = tuple(step_checks)
        for check in self.step_checks:
            if not callable(check) or not isinstance(getattr(check, "name", None), str):
                raise TypeError(f"step_checks holds {check!r}: a step check has a `name` and is awaited as check(context, step).")
        self.constraint = tool_format.constraint()  # what every step is decoded under
        # The same format that must call: the step after one whose calls were discarded with `call_again`.
        calls_format = calls_only_format(tool_format, output_type)
        self._calls_constraint = calls_format.constraint() if calls_format is not None else self.constraint
        self._tool_specs = self.registry.function_specs() if self.native_tools else None
        self.trace_path = trace
        self.context = context_policy(context)
        self._prefix = [
            Message(role="system", content=system_prompt(instructions, self.registry, tool_format, native_tools=self.native_tools)),
            *example_messages(self.examples, tool_format),
        ]
        # The answer-only format is asked for an answer when the step checks discarded every call of a step.
        self._checking = StepChecking(
            self.step_checks, self.backend, self.registry, tool_format, answer_only_format(tool_format, output_type), len(self._prefix)
        )

    def first_messages(self, task: str, history: Sequence[Message] = (), images: Sequence[Any] = ()) -> list[Message]:
        """The messages the model sees at step 1: system prompt, few-shot turns, history, then the task.

        `history` continues an earlier conversation: pass a previous run's `messages` (its system
        prompt and examples are recognised and not repeated). `images` (paths, bytes, PIL images)
        go with the task, for vision-language models.

        Example:
            >>> from agentkit.testing import ScriptedBackend
            >>> agent = Agent(ScriptedBackend([{"final_answer": "Hello!"}]), examples=[])
            >>> [m.role for m in agent.first_messages("Hi")]
            ['system', 'user']
            >>> earlier = agent.run("Hi")
            >>> [m.role for m in agent.first_messages("And again?", history=earlier.messages)]
            ['system', 'user', 'assistant', 'user']
        """
        earlier = list(history)
        if earlier[: len(self._prefix)] == self._prefix:
            earlier = earlier[len(self._prefix) :]
        return [*self._prefix, *earlier, Message(role="user", content=task, images=tuple(to_image(i) for i in images))]

    def as_tool(self, name: str, description: str, *, timeout: float | None = None) -> Tool:
        """This agent as one tool taking a `task` and returning its final answer: agents delegating to agents.

        A run that fails (e.g. `MaxStepsExceeded`) becomes an error observation for the calling
        agent. `timeout` bounds the whole run (None: the calling registry's default, 30 s).

        Example:
            >>> from agentkit.testing import ScriptedBackend
            >>> geographer = Agent(ScriptedBackend([{"final_answer": "Paris"}]))
            >>> ask = geographer.as_tool("geographer", "Answers geography questions.")
            >>> ToolRegistry([ask]).run(ToolCall(id="1", name="geographer", arguments={"task": "Capital of France?"})).content
            'Paris'
        """
        from agentkit.registry import format_value
        from agentkit.tool import tool

        async def run_agent(task: str) -> str:
            """Give the agent a task.

            Args:
                task: the task in plain words, with everything the agent needs to know.
            """
            output = (await self.arun(task)).output
            return output if isinstance(output, str) else format_value(output)

        return tool(name=name, description=description, timeout=timeout)(run_agent)

    # -- drivers ---------------------------------------------------------------------------------

    def run(self, task: str, *, history: Sequence[Message] = (), images: Sequence[Any] = ()) -> RunResult:
        """Run the task to its final answer and return the whole run.

        `history`: an earlier run's `messages`, to continue that conversation (see `first_messages`).
        `images`: file paths, bytes or PIL images shown with the task (a vision-language model only;
        others raise `ModelCapabilityError`).
        Raises `MaxStepsExceeded` (with `.partial`) when `max_steps` pass without an answer.
        """
        result = RunResult()
        for _ in self._iter(task, result, history, images):
            pass
        return result

    async def arun(self, task: str, *, history: Sequence[Message] = (), images: Sequence[Any] = ()) -> RunResult:
        """Async `run`: async tools run on the caller's event loop."""
        result = RunResult()
        async for _ in self._aiter(task, result, history, images):
            pass
        return result

    def iter(
        self, task: str, *, history: Sequence[Message] = (), result: RunResult | None = None, images: Sequence[Any] = ()
    ) -> Iterator[Step]:
        """Yield each `Step` as soon as its tool calls have run; the last one has `is_final=True`.

        Pass a `RunResult()` as `result` to read the whole run (messages, usage) as it fills in.
        """
        return self._iter(task, RunResult() if result is None else result, history, images)

    def aiter(
        self, task: str, *, history: Sequence[Message] = (), result: RunResult | None = None, images: Sequence[Any] = ()
    ) -> AsyncGenerator[Step, None]:
        """Async `iter`."""
        return self._aiter(task, RunResult() if result is None else result, history, images)

    def _iter(self, task: str, result: RunResult, history: Sequence[Message] = (), images: Sequence[Any] = ()) -> Iterator[Step]:
        self._check_images(images)
        steps = self._aiter(task, result, history, images)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # No loop running here: drive the async loop on a private event loop in this thread.
            loop = asyncio.new_event_loop()
            try:
                while True:
                    try:
                        yield loop.run_until_complete(steps.__anext__())
                    except StopAsyncIteration:
                        return
            finally:
                loop.run_until_complete(steps.aclose())
                loop.close()
        else:
            # Called from async code (e.g. a notebook): run the loop in a helper thread instead.
            yield from iterate_in_thread(steps)

    # -- the loop --------------------------------------------------------------------------------

    def _check_images(self, images: Sequence[Any]) -> None:
        for image in images:
            to_image(image)  # a missing file or bad bytes is reported first: it is the user's to fix either way
        if images and not getattr(self.backend, "supports_images", False):
            name = getattr(self.backend, "name", type(self.backend).__name__)
            raise ModelCapabilityError(
                f"{name} has no vision tower: it cannot read the {len(images)} image(s) passed to the run. Use a "
                "vision-language model (e.g. a LLaVA, Qwen2-VL or Llama 4 folder), RemoteBackend(..., supports_images=True) "
                "for a server with one, or describe the image in the task instead."
            )

    async def _aiter(
        self, task: str, result: RunResult, history: Sequence[Message] = (), images: Sequence[Any] = ()
    ) -> AsyncGenerator[Step, None]:
        self._check_images(images)
        trace = TraceWriter(self.trace_path) if self.trace_path is not None else None
        try:
            if trace:
                trace.event("run_start", task=task, **self.describe())
            async for step in self._steps(task, result, trace, history, images):
                yield step
            if trace:
                trace.event("run_end", output=result.output, steps=len(result.steps), usage=result.usage, seconds=result.seconds)
        except GeneratorExit:  # the caller stopped iterating early: not an error
            if trace:
                trace.event("stopped", steps=len(result.steps))
            raise
        except BaseException as exc:
            if trace:
                trace.event("error", type=type(exc).__name__, message=str(exc))
            raise
        finally:
            if trace:
                trace.close()

    async def _steps(
        self, task: str, result: RunResult, trace: TraceWriter | None, history: Sequence[Message], images: Sequence[Any]
    ) -> AsyncGenerator[Step, None]:
        started = time.perf_counter()
        messages = self.first_messages(task, history, images)
        result.messages = messages
        keeper = ContextKeeper(
            self.context, self.backend, first_droppable=len(self._prefix), reserve=self.sampling.max_step_tokens, tools=self._tool_specs
        )
        for index in range(1, self.max_steps + 1):
            step = await self._next_step(index, messages, result, trace, keeper)
            result.steps.append(step)
            result.usage = result.usage + step.usage
            if step.is_final:
                result.output = step.output
                result.seconds = time.perf_counter() - started
                yield step
                return
            step_started = time.perf_counter()
            for call in step.calls:
                if trace:
                    trace.event("tool_call", step=index, call=call)
            step.observations = await self.registry.arun_all(step.calls)
            step.tool_seconds = time.perf_counter() - step_started
            for o in step.observations:
                if trace:
                    trace.event(
                        "observation", step=index, call_id=o.call_id, name=o.name, content=o.content, is_error=o.is_error,
                        error_type=o.error_type, truncated=o.truncated, seconds=o.duration_seconds,
                    )
            sees = bool(getattr(self.backend, "supports_images", False))
            messages.extend(observation_message(o, images=sees) for o in step.observations)
            messages.extend(unrun_note(d.call.name, d.reason, answer=False) for d in step.discarded if d.call_again)
            result.seconds = time.perf_counter() - started
            yield step
        result.seconds = time.perf_counter() - started
        raise MaxStepsExceeded(
            f"No final answer after max_steps={self.max_steps} steps. Raise max_steps, or make the task or "
            "instructions more direct. The run so far is in `.partial`.",
            partial=result,
        )

    def describe(self) -> dict[str, Any]:
        """The agent's settings as a trace's `run_start` event records them: enough to tell whether a replay matches.

        Example:
            >>> from agentkit.testing import ScriptedBackend
            >>> described = Agent(ScriptedBackend([])).describe()
            >>> described["tool_format"], described["step_checks"][:3]
            ('agentkit', ['more_calls(first_step_only=True)', "prune_calls(formats=('agentkit',))", 'grounded_calls'])
        """
        schema = json.dumps(self.constraint.model_dump(mode="json"), sort_keys=True).encode()
        return {
            "backend": getattr(self.backend, "name", type(self.backend).__name__),
            "tools": self.registry.names,
            "tool_format": self.tool_format.name,
            "schema_hash": hashlib.sha256(schema).hexdigest()[:16],
            "max_steps": self.max_steps,
            "sampling": self.sampling.model_dump(),
            "step_checks": [describe_check(c) for c in self.step_checks],
        }

    async def _next_step(
        self, index: int, messages: list[Message], result: RunResult, trace: TraceWriter | None, keeper: ContextKeeper
    ) -> Step:
        """Fit the context, generate, parse (feeding errors back up to `max_invalid_retries` times), check the calls, record."""
        usage = Usage()
        rejected: list[str] = []
        retry_messages: list[Message] = []  # rejected replies and their feedback, for this step only
        await self._fit_context(keeper, keeper.fit(messages, index), result, trace)
        # Told to call again with real values, the model must call a tool (a small model answers "please tell me...").
        must_call = bool(result.steps) and any(d.call_again for d in result.steps[-1].discarded)
        while True:
            request = GenerationRequest(
                messages=[*messages, *retry_messages],
                constraint=self._calls_constraint if must_call else self.constraint,
                tools=self._tool_specs,
                **self._sampling_fields(index + len(rejected)),
            )
            generation = await self._generate(request, index, messages, result, trace, keeper)
            if generation is None:
                continue  # the conversation was compacted after an overflow: ask again
            usage = usage + Usage.of(generation)
            try:
                parsed = self._parse(generation, index)
                break
            except StepParseError as exc:
                if trace:
                    trace_model_call(trace, index, len(rejected) + 1, generation, error=str(exc))
                rejected.append(generation.text)
                self._give_up_after(rejected, exc, index, result, usage)
                retry_messages += [Message(role="assistant", content=generation.text), invalid_step_message(str(exc), self.tool_format)]
        if trace:
            trace_model_call(trace, index, len(rejected) + 1, generation, error=None)
        checked = CheckedStep(parsed, generation, usage)
        context = self._checking.context(request, index, messages, result.steps)
        await self._checking.run(checked, context, result.steps, trace, attempt=len(rejected) + 2)
        result.context_tokens = checked.generation.prompt_tokens or keeper.last_tokens
        # The history shows the step as carried out (without the discarded calls), and calls in the
        # format's own spelling: Qwen writes bare JSON, its template documents <tool_call> tags, and
        # a model that sees its bare calls answered keeps writing calls instead of answering.
        step = checked.step
        # Calls discarded with `call_again` stay in view: the model reads why they did not run (after the others' results).
        carried_out = self._checking.shown(step, checked.discarded) if checked.discarded or step.calls else checked.generation.text
        messages.append(Message(role="assistant", content=carried_out))
        return Step(
            index=index, thought=step.thought, calls=step.calls, is_final=step.is_final, output=step.final_answer,
            raw_output=checked.generation.text, discarded=checked.discarded, rejected_outputs=rejected, usage=checked.usage,
        )

    def _sampling_fields(self, seed_offset: int) -> dict[str, Any]:
        """The request's sampling fields; each model call of a run gets its own seed (`seed + seed_offset`)."""
        s = self.sampling
        seed = None if s.seed is None else s.seed + seed_offset
        return {"max_tokens": s.max_step_tokens, "temperature": s.temperature, "top_p": s.top_p, "seed": seed}

    async def _generate(
        self, request: GenerationRequest, index: int, messages: list[Message], result: RunResult, trace: TraceWriter | None,
        keeper: ContextKeeper,
    ) -> Generation | None:
        """The backend's reply; None when it reported an overflow and the conversation was compacted (ask again)."""
        try:
            return await self.backend.agenerate(request)
        except ContextOverflowError:
            try:
                compacted = await self._fit_context(keeper, keeper.after_overflow(messages, index), result, trace)
            except ContextOverflowError as inner:
                exc, compacted = inner, False
            if compacted:
                return None
            exc.partial = result
            raise exc from None

    def _parse(self, generation: Generation, index: int) -> ParsedStep:
        if generation.finish_reason == "length":
            raise StepParseError(
                f"The reply was cut off at max_step_tokens={self.sampling.max_step_tokens}. Write a shorter step."
            )
        return self.tool_format.parse(generation.text, step_index=index)

    def _give_up_after(self, rejected: list[str], exc: StepParseError, index: int, result: RunResult, usage: Usage) -> None:
        """Raise `InvalidStepError` once more replies were rejected than `max_invalid_retries` allows."""
        if len(rejected) <= self.max_invalid_retries:
            return
        result.usage = result.usage + usage  # the rejected attempts cost tokens too
        raise InvalidStepError(
            f"Step {index}: the model returned {len(rejected)} replies that are not valid steps; the "
            f"last error was: {exc} Use a backend with constrained decoding, raise "
            "max_invalid_retries, or raise max_step_tokens if replies are cut off.",
            outputs=rejected,
            partial=result,
        ) from None

    @staticmethod
    async def _fit_context(keeper: ContextKeeper, fitting: Any, result: RunResult, trace: TraceWriter | None) -> bool:
        """Await a keeper's compaction; record it on the run (and trace). True if anything changed.

        A `ContextOverflowError` it raises carries the partial run.
        """
        try:
            compaction, usage = await fitting
        except ContextOverflowError as exc:
            exc.partial = result
            raise
        result.usage = result.usage + usage
        if compaction is None:
            return False
        result.compactions.append(compaction)
        if trace:
            trace.event("context_compacted", **compaction.model_dump())
        return True
