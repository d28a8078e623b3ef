"""`ToolRegistry`: the tools an agent may call, and the one place where calls are validated and run.

Every failure (unknown tool, invalid arguments, a call the policy denies, any exception, a return
value that cannot be shown, a timeout) becomes an `Observation` with `is_error=True` that the model
reads next; nothing a tool raises or returns can crash the agent loop. The one exception is a tool
raising KeyboardInterrupt or SystemExit: those are requests to stop the program and propagate.

The calls of one step run concurrently: async tools on the event loop, sync tools in threads of a
small pool per tool (`tool_threads`, see `agentkit._tool_pool`). Each call has one deadline (the
tool's time limit, else the registry's) covering the call and the rendering of its value, and the
step as a whole may have one too (`step_timeout`). An async call past its deadline is cancelled. A
sync call cannot be killed from outside its thread: it is abandoned (its result discarded) and
finishes in the background, which is why the built-in tools bound their own work (`agentkit.tools`);
a tool whose threads are all stuck in abandoned calls is reported busy, and other tools never wait.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from agentkit._tool_pool import DEFAULT_TOOL_THREADS, Failed, Shown, ToolPool, describe, execute, raised, type_name
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

    `timeout` is each call's deadline unless the tool sets its own; `tool_threads` is how many calls of
    one sync tool may run at once (calls beyond wait for a thread, within their deadline).

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
        tool_threads: int = DEFAULT_TOOL_THREADS,
    ) -> None:
        if tool_threads < 1:
            raise ValueError(f"tool_threads must be at least 1 (threads per sync tool), got {tool_threads}.")
        self.timeout = timeout
        self.step_timeout = step_timeout
        self.max_output_chars = max_output_chars
        self.max_output_bytes = max_output_bytes
        self.policy = policy or ToolPolicy()
        self.tool_threads = tool_threads
        self._pools: dict[str, ToolPool] = {}
        self._pools_lock = threading.Lock()  # calls may come from several threads' event loops
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
        """Validate and run one call; always return an Observation, never raise for tool failures.

        Whatever the tool raises or returns becomes an observation, except `KeyboardInterrupt` and
        `SystemExit`: raised by a tool, they are the user's or the interpreter's request to stop the
        program, so they propagate (out of `Agent.run` too) instead of being shown to the model.
        """
        started = time.perf_counter()
        found = self._tools.get(call.name)
        limits = self._limits(found)

        def failed(error_type: str, message: str) -> Observation:
            content, truncated = _truncate(message, *limits)  # an exception's message can be huge too
            return Observation(call_id=call.id, name=call.name, content=content, is_error=True, error_type=error_type,
                               truncated=truncated, duration_seconds=time.perf_counter() - started)  # fmt: skip

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
        outcome = await execute(found, kwargs, timeout, self._pool(found.name), functools.partial(_show, limits=limits))
        if isinstance(outcome, Failed):
            return failed(outcome.error_type, outcome.message)
        return Observation(call_id=call.id, name=call.name, content=outcome.content, images=outcome.images,
                           truncated=outcome.truncated, value=outcome.value,
                           duration_seconds=time.perf_counter() - started)  # fmt: skip

    def _limits(self, found: Tool | None) -> tuple[int, int]:
        """The (characters, UTF-8 bytes) an observation of `found` may have: the tool's own, else the registry's."""
        chars = found.max_output_chars if found is not None and found.max_output_chars is not None else self.max_output_chars
        nbytes = found.max_output_bytes if found is not None and found.max_output_bytes is not None else self.max_output_bytes
        return chars, nbytes

    def _pool(self, name: str) -> ToolPool:
        # One bounded pool per tool: calls of a tool that hangs can only use up that tool's threads.
        with self._pools_lock:
            if name not in self._pools:
                self._pools[name] = ToolPool(name, self.tool_threads)
            return self._pools[name]

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
        return [self._collect(call, task, stopped=task not in done) for call, task in zip(calls, tasks)]

    def _collect(self, call: ToolCall, task: asyncio.Future[Observation], *, stopped: bool) -> Observation:
        if stopped:
            message = f"Error: {call.name} was stopped: the step's {self.step_timeout:g} s time limit ran out."
            return Observation(call_id=call.id, name=call.name, content=message, is_error=True, error_type="timeout",
                               duration_seconds=float(self.step_timeout or 0.0))  # fmt: skip
        failure = None if task.cancelled() else task.exception()
        if task.cancelled() or failure is not None:  # a bug in agentkit or the policy, not the tool's: still no crash
            if isinstance(failure, (KeyboardInterrupt, SystemExit)):
                raise failure
            reason = describe(failure) if failure is not None else "it was cancelled"
            return Observation(call_id=call.id, name=call.name, content=f"Error: {call.name} could not be run: {reason}",
                               is_error=True, error_type="exception")  # fmt: skip
        return task.result()

    def run(self, call: ToolCall) -> Observation:
        """Synchronous `arun`, for scripts and tests outside an event loop."""
        # Not asyncio.run: it would wait at exit for whatever a timed-out call left behind.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self.arun(call))
        finally:
            loop.close()


class _Unusable(ValueError):
    """A return value that cannot be shown to the model; the message says what it is and what to return instead."""

    def __init__(self, message: str, *, what: str = "a value", reason: str = "") -> None:
        super().__init__(message)
        self.what, self.reason = what, reason


def _show(name: str, value: Any, limits: tuple[int, int]) -> Shown | Failed:
    """Render `value` (text and images) within the limits; a value that cannot be rendered is a failure."""
    try:
        text, images = split_images(value)
        content, truncated = _truncate(text, *limits)
    except (KeyboardInterrupt, SystemExit) as exc:
        return raised(name, exc)
    except _Unusable as exc:
        return Failed("exception", f"Error: {name} returned {exc}")
    except BaseException as exc:
        return Failed("exception", f"Error: {name} returned {_a(type_name(value))} that cannot be shown ({describe(exc)}). {_RETURN_HINT}")
    return Shown(value, content, images, truncated)


_RETURN_HINT = "The tool should return a str, or JSON-like data (dict, list, numbers, strings) without cycles or deep nesting."


def split_images(value: Any) -> tuple[str, list[Image]]:
    """A tool's return value as (text, images): images (alone or in a list/tuple) go to vision models.

    Raises ValueError when the value (or an image in it) cannot be shown, saying what to return instead.

    Example:
        >>> split_images("42")
        ('42', [])
    """
    items = value if isinstance(value, (list, tuple)) and any(_is_image(v) for v in value) else [value]
    if not any(_is_image(v) for v in items):
        return _render(value), []
    try:
        images = [to_image(v) for v in items if _is_image(v)]
    except Exception as exc:
        raise _Unusable(f"an image that cannot be used: {describe(exc)}") from None
    texts = [_render(v) for v in items if not _is_image(v)]
    described = [i.describe() for i in images]
    return "\n".join([*texts, *described]), images


def _is_image(value: Any) -> bool:
    try:
        return is_image(value)
    except Exception:
        return False


def format_value(value: Any) -> str:
    """Render a tool's return value as the text the model reads; never raises.

    Strings as they are, pydantic models and JSON-like data as JSON, bytes as UTF-8 text (binary data
    summarised), anything else as its `str()` (else `repr()`). A value that has no text at all comes
    back as a bracketed note saying so.

    Example:
        >>> format_value({"city": "Paris", "tags": {1}})
        '{"city": "Paris", "tags": "{1}"}'
    """
    try:
        return _render(value)
    except _Unusable as exc:
        return f"[{exc}]"
    except Exception as exc:
        return f"[{_a(type_name(value))} that cannot be shown ({describe(exc)})]"


def _render(value: Any) -> str:
    """`format_value`, raising `_Unusable` (or whatever the value's own code raises) when there is no text."""
    if isinstance(value, str):
        return str.__str__(value)  # a plain copy: a str subclass may override slicing and encoding
    if isinstance(value, (bytes, bytearray)):
        return _render_bytes(value)
    if inspect.iscoroutine(value) or inspect.isawaitable(value):
        if inspect.iscoroutine(value) and inspect.getcoroutinestate(value) == inspect.CORO_CREATED:
            value.close()  # never started, so closing runs none of its code; avoids "never awaited"
        raise _Unusable("an awaitable instead of a value: declare the tool with `async def` or await it inside the tool.")
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        raise _Unusable("a generator instead of a value: return a list (e.g. `list(...)`) or a str.")
    if isinstance(value, BaseModel):
        try:
            return value.model_dump_json()
        except Exception:
            pass
    if not isinstance(value, (dict, list, tuple, int, float)) and value is not None:
        return _text_of(value)  # no JSON form: its own text, unquoted
    try:
        return json.dumps(value, ensure_ascii=False, default=_jsonable)
    except Exception:
        if not isinstance(value, (dict, list, tuple)):
            return _text_of(value)
    return json.dumps(_repaired(value, 0, set()), ensure_ascii=False, default=_jsonable)


_MAX_DEPTH = 64  # deeper data is cut with a note: no model reads it, and rendering it overflows the stack


def _repaired(value: Any, depth: int, active: set[int]) -> Any:
    """A copy of JSON-like data with cycles, excess depth, odd keys and unprintable numbers replaced by notes."""
    if isinstance(value, (str, float, bool)) or value is None:
        return value
    if isinstance(value, int):
        try:
            int.__str__(value)  # Python refuses to print ints of more than 4300 digits
            return value
        except ValueError:
            return f"<an int of about {int(int.bit_length(value) * 0.30103) + 1} digits>"
    if not isinstance(value, (dict, list, tuple)):
        return _jsonable(value)
    if id(value) in active:
        return "<cycle: this item contains itself>"
    if depth >= _MAX_DEPTH:
        return f"<nested more than {_MAX_DEPTH} levels deep: not shown>"
    active.add(id(value))
    try:
        if isinstance(value, dict):
            return {_key(k): _repaired(v, depth + 1, active) for k, v in value.items()}
        return [_repaired(v, depth + 1, active) for v in value]
    finally:
        active.discard(id(value))


def _key(key: Any) -> Any:
    return key if isinstance(key, (str, float, bool)) or key is None or type(key) is int else str(_jsonable(key))


def _jsonable(value: Any) -> Any:
    """`json.dumps` fallback for what JSON has no type for: one unprintable item does not spoil the rest."""
    try:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        if isinstance(value, (bytes, bytearray)):
            return _render_bytes(value)
        return _text_of(value)
    except _Unusable as exc:
        return f"<{exc.what} that cannot be shown: {exc.reason}>"
    except Exception as exc:
        return f"<{_a(type_name(value))} that cannot be shown: {describe(exc)}>"


def _text_of(value: Any) -> str:
    """`str(value)`, else `repr(value)`, as a plain str; `_Unusable` when both fail."""
    try:
        return str.__str__(str(value))
    except Exception as exc:
        first = exc
    try:
        return str.__str__(repr(value))
    except Exception:
        pass
    what, reason = _a(type_name(value)), describe(first)
    raise _Unusable(f"{what} that cannot be shown as text ({reason}). {_RETURN_HINT}", what=what, reason=reason)


def _render_bytes(data: bytes | bytearray) -> str:
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        return f"[{len(data)} bytes of binary data, not shown: the model reads text only]"
    return text


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _truncate(text: str, max_chars: int, max_bytes: int) -> tuple[str, bool]:
    """Cut `text` to both limits, noting the cut so the model knows it did not see everything."""
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)  # lone surrogates cannot be encoded, so no model can read them
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


_SURROGATE = re.compile("[\ud800-\udfff]")


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
