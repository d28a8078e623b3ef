"""`ToolRegistry`: the tools an agent may call, and the one place where calls are validated and run.

Every failure (unknown tool, invalid arguments, a call the policy denies, exception, timeout)
becomes an `Observation` with `is_error=True` that the model reads next; nothing a tool does can
crash the agent loop.

The calls of one step run concurrently: async tools on the event loop, sync tools in worker
threads. Each call has a time limit (the tool's, else the registry's) and the step as a whole may
have one too (`step_timeout`); an async call past its limit is cancelled. A sync call cannot be
killed from outside its thread: it is abandoned (its result discarded) and finishes in the
background, which is why the built-in tools bound their own work (`agentkit.tools`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from agentkit.errors import InvalidArgumentsError, ToolError
from agentkit.images import Image, is_image, to_image
from agentkit.policy import ToolPolicy
from agentkit.tool import Tool, tool
from agentkit.types import Observation, ToolCall

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_OUTPUT_CHARS = 4000
DEFAULT_MAX_OUTPUT_BYTES = 16_000  # UTF-8: 4000 characters of CJK or emoji are 12-16 KB


class ToolRegistry:
    """A set of uniquely named tools plus the rules for running them.

    Example:
        >>> from agentkit.tools import calculator
        >>> registry = ToolRegistry([calculator])
        >>> registry.names
        ['calculator']
        >>> registry.run(ToolCall(id="1", name="calculator", arguments={"expression": "2 ** 10"})).content
        '1024'
    """

    def __init__(
        self,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        step_timeout: float | None = None,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        policy: ToolPolicy | None = None,
    ) -> None:
        self.timeout = timeout
        self.step_timeout = step_timeout
        self.max_output_chars = max_output_chars
        self.max_output_bytes = max_output_bytes
        self.policy = policy or ToolPolicy()
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.register(item)

    def register(self, item: Tool | Callable[..., Any]) -> Tool:
        """Add a tool (or a plain typed function, wrapped with `@tool`). Names must be unique."""
        new = item if isinstance(item, Tool) else tool(item)
        if new.name in self._tools:
            raise ToolError(
                f"Two tools are named {new.name!r}. Tool names must be unique: rename one with "
                f"@tool(name='...')."
            )
        self._tools[new.name] = new
        return new

    def get(self, name: str) -> Tool:
        """Return the tool called `name`; raise `ToolError` listing the known names if there is none."""
        try:
            return self._tools[name]
        except KeyError:
            raise ToolError(f"No tool named {name!r}. Known tools: {self.names}.") from None

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def function_specs(self) -> list[dict[str, Any]]:
        """The tools as OpenAI-style function specs, the shape chat templates render (`tools=`).

        Example:
            >>> from agentkit.tools import calculator
            >>> ToolRegistry([calculator]).function_specs()[0]["function"]["name"]
            'calculator'
        """
        return [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in self
        ]

    def fingerprint(self) -> str:
        """A short hash of every tool's name, description and schema: same tools, same grammar."""
        spec = [[t.name, t.description, t.parameters] for t in self]
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    # -- execution -------------------------------------------------------------------------------

    async def arun(self, call: ToolCall) -> Observation:
        """Validate and run one call; always return an Observation, never raise for tool failures."""
        started = time.perf_counter()

        def failed(error_type: str, message: str) -> Observation:
            return Observation(
                call_id=call.id,
                name=call.name,
                content=message,
                is_error=True,
                error_type=error_type,
                duration_seconds=time.perf_counter() - started,
            )

        found = self._tools.get(call.name)
        if found is None:
            return failed("unknown_tool", f"Error: there is no tool named {call.name!r}. Use one of: {', '.join(self.names)}.")
        try:
            kwargs = found.validate_arguments(call.arguments)
        except ValidationError as exc:
            return failed("invalid_arguments", f"Error: invalid arguments for {call.name}: {_explain(exc)}. Fix them and call again.")
        except InvalidArgumentsError as exc:
            return failed("invalid_arguments", f"Error: invalid arguments for {call.name}: {exc}. Fix them and call again.")
        denial = await self.policy.check(call, found)
        if denial is not None:
            return failed("denied", f"Error: the call to {call.name} was not run: {denial}. Do not repeat it; answer without it or use another tool.")

        timeout = found.timeout if found.timeout is not None else self.timeout
        try:
            if found.is_async:
                value = await asyncio.wait_for(found.fn(**kwargs), timeout)
            else:
                # A sync tool runs in a worker thread so a slow one cannot stall the event loop. A thread
                # cannot be killed: on timeout it is abandoned and finishes in the background.
                value = await asyncio.wait_for(asyncio.to_thread(found.fn, **kwargs), timeout)
        except asyncio.TimeoutError:
            return failed("timeout", f"Error: {call.name} did not finish within {timeout:g} s and was stopped.")
        except Exception as exc:  # noqa: BLE001 - every tool failure becomes an observation
            return failed("exception", f"Error: {call.name} failed: {type(exc).__name__}: {exc}")

        chars = found.max_output_chars if found.max_output_chars is not None else self.max_output_chars
        nbytes = found.max_output_bytes if found.max_output_bytes is not None else self.max_output_bytes
        try:
            text, images = split_images(value)
        except (ValueError, TypeError) as exc:
            return failed("exception", f"Error: {call.name} returned an image that cannot be used: {exc}")
        content, truncated = _truncate(text, chars, nbytes)
        return Observation(
            call_id=call.id,
            name=call.name,
            content=content,
            images=images,
            truncated=truncated,
            value=value,
            duration_seconds=time.perf_counter() - started,
        )

    async def arun_all(self, calls: Sequence[ToolCall]) -> list[Observation]:
        """Run the calls of one step concurrently; the observations come back in call order.

        With `step_timeout`, calls still running when it expires are cancelled and reported as timeouts.
        """
        tasks = [asyncio.ensure_future(self.arun(call)) for call in calls]
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, timeout=self.step_timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)  # let cancelled calls unwind before the step moves on
        observations = []
        for call, task in zip(calls, tasks):
            if task in done:
                observations.append(task.result())
            else:
                observations.append(
                    Observation(
                        call_id=call.id,
                        name=call.name,
                        content=f"Error: {call.name} was stopped: the step's {self.step_timeout:g} s time limit ran out.",
                        is_error=True,
                        error_type="timeout",
                        duration_seconds=float(self.step_timeout or 0.0),
                    )
                )
        return observations

    def run(self, call: ToolCall) -> Observation:
        """Synchronous `arun`, for scripts and tests outside an event loop."""
        # Not asyncio.run: on exit it waits for the default executor, i.e. for a timed-out sync tool's
        # abandoned thread, so the timeout would not return until the tool finished anyway.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self.arun(call))
        finally:
            loop.close()  # shuts the executor down without waiting


def split_images(value: Any) -> tuple[str, list[Image]]:
    """A tool's return value as (text, images): images (alone or in a list/tuple) go to vision models.

    Example:
        >>> split_images("42")
        ('42', [])
    """
    items = value if isinstance(value, (list, tuple)) and any(is_image(v) for v in value) else [value]
    images = [to_image(v) for v in items if is_image(v)]
    if not images:
        return format_value(value), []
    texts = [format_value(v) for v in items if not is_image(v)]
    described = [i.describe() for i in images]
    return "\n".join([*texts, *described]), images


def format_value(value: Any) -> str:
    """Render a tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, ensure_ascii=False, default=_jsonable)
    except (TypeError, ValueError):
        return str(value)


def _jsonable(value: Any) -> Any:
    """`json.dumps` fallback: pydantic models nested in lists/dicts as JSON objects, the rest as text."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else str(value)


def _truncate(text: str, max_chars: int, max_bytes: int) -> tuple[str, bool]:
    """Cut `text` to both limits, noting the cut so the model knows it did not see everything."""
    kept = text[:max_chars]
    encoded = kept.encode("utf-8")
    if len(encoded) > max_bytes:
        kept = encoded[:max_bytes].decode("utf-8", errors="ignore")  # never split a character
    if len(kept) < len(text):
        kept = kept[: _cluster_start(text, len(kept))]  # nor what a reader sees as one (emoji, syllables)
    if len(kept) == len(text):
        return text, False
    size = len(text.encode("utf-8"))
    return f"{kept}\n[output truncated: showing {len(kept)} of {len(text)} characters ({size} bytes)]", True


def _cluster_start(text: str, cut: int) -> int:
    """Move a cut at `cut` back to the start of the grapheme cluster it falls in (an approximation of
    Unicode's rules covering emoji ZWJ sequences, skin tones, variation selectors, flags and combining marks)."""

    def joins(index: int) -> bool:  # does text[index] continue the cluster before it?
        char = text[index]
        return (
            unicodedata.category(char).startswith("M")  # combining marks, Indic vowel signs
            or char in ("\u200d", "\ufe0f", "\ufe0e")
            or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin tones
            or text[index - 1] == "\u200d"  # the character after a zero-width joiner
        )

    while 0 < cut < len(text) and joins(cut):
        cut -= 1
    if 0 < cut < len(text) and _is_flag_letter(text[cut]):  # regional indicators pair up from the run's start
        start = cut
        while start > 0 and _is_flag_letter(text[start - 1]):
            start -= 1
        if (cut - start) % 2:
            cut -= 1
    return cut


def _is_flag_letter(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _explain(exc: ValidationError) -> str:
    """One line per problem, with the argument's path: short enough for a small model to act on."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
