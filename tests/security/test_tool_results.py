"""A tool's return value or exception never crashes the registry or the agent loop.

Hostile values (objects whose __str__/__repr__/__format__/model_dump raise, huge strings, deep nesting,
cycles, bytes, generators, lone surrogates, pydantic models that cannot serialise...) are generated as
a table: every hostile leaf alone and inside every container shape, from sync and async tools. Each must
come back as an Observation whose content is plain, size-bounded, encodable text. Hypothesis is not a
dependency of this project, so the table is generated here instead.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import threading

import pytest
from pydantic import BaseModel, field_serializer

from agentkit import Agent, Observation, ToolCall, ToolRegistry, tool
from agentkit.registry import format_value
from agentkit.testing import ScriptedBackend

MAX_CHARS, MAX_BYTES = 300, 900
NOTE = 120  # the truncation note's length, at most


class _Raises:
    """__str__, __repr__ and __format__ all raise."""

    def __str__(self) -> str:
        raise RuntimeError("no __str__")

    def __repr__(self) -> str:
        raise RuntimeError("no __repr__")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("no __format__")


class _StrRaisesReprWorks:
    def __str__(self) -> str:
        raise ValueError("no __str__")

    def __repr__(self) -> str:
        return "<repr works>"


class _FormatRaises:
    def __format__(self, spec: str) -> str:
        raise RuntimeError("no __format__")

    def __str__(self) -> str:
        return "formatted without __format__"


class _NonStr:
    def __str__(self):
        return 42

    def __repr__(self):
        return b"bytes"


class _BaseExceptionStr:
    def __str__(self) -> str:
        raise _Custom("raised by __str__")

    __repr__ = __str__


class _SlicingStr(str):
    def __getitem__(self, item):
        raise RuntimeError("no slicing")

    def encode(self, *args, **kwargs):
        raise RuntimeError("no encoding")


class _Custom(BaseException):
    """A BaseException subclass that is neither KeyboardInterrupt nor SystemExit."""


class _ClassRaises:
    @property
    def __class__(self):
        raise RuntimeError("no __class__")

    def __getattr__(self, name: str):
        raise RuntimeError(f"no attribute {name}")


class _Broken(BaseModel):
    x: int = 1

    @field_serializer("x")
    def _fail(self, value: int) -> int:
        raise RuntimeError("cannot serialise x")


class _Holder(BaseModel):
    model_config = {"arbitrary_types_allowed": True}
    item: object = None


class _DumpRaises:
    """Looks like a pydantic model to duck-typing code; model_dump raises."""

    def model_dump(self, *args, **kwargs):
        raise RuntimeError("no model_dump")

    def model_dump_json(self, *args, **kwargs):
        raise RuntimeError("no model_dump_json")


def _deep(depth: int) -> list:
    outer = inner = []
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


def _cyclic_list() -> list:
    items: list = [1]
    items.append(items)
    return items


def _cyclic_dict() -> dict:
    mapping: dict = {"a": 1}
    mapping["self"] = mapping
    return mapping


def _generator():
    yield from range(3)


async def _async_generator():
    yield 1


LEAVES = {  # name -> factory (generators and cycles must be fresh for every case)
    "str-raises": _Raises,
    "str-raises-repr-works": _StrRaisesReprWorks,
    "format-raises": _FormatRaises,
    "str-returns-non-str": _NonStr,
    "str-raises-base-exception": _BaseExceptionStr,
    "str-subclass-hostile": lambda: _SlicingStr("abc" * 2000),
    "isinstance-raises": _ClassRaises,
    "huge-str": lambda: "x" * 5_000_000,
    "huge-cjk": lambda: "北京" * 1_000_000,
    "lone-surrogates": lambda: "a\ud800b\udfff" * 500,
    "deep-list": lambda: _deep(100_000),
    "deep-dict": lambda: {"k": _deep(5_000)},
    "cyclic-list": _cyclic_list,
    "cyclic-dict": _cyclic_dict,
    "bytes-binary": lambda: b"\x89PNG\r\n\x1a\n\x00" * 1000,
    "bytes-utf8": lambda: "héllo".encode(),
    "bytearray-huge": lambda: bytearray(3_000_000),
    "generator": _generator,
    "async-generator": _async_generator,
    "pydantic-serializer-raises": _Broken,
    "pydantic-holding-hostile": lambda: _Holder(item=_Raises()),
    "model-dump-raises": _DumpRaises,
    "huge-int": lambda: 10**5000,
    "nan": lambda: float("nan"),
    "non-str-keys": lambda: {(1, 2): "tuple key", None: 1},
    "set": lambda: {1, 2, 3},
    "exception-instance": lambda: RuntimeError("returned, not raised"),
    "type": lambda: int,
}

WRAPPERS = {
    "bare": lambda v: v,
    "in-list": lambda v: [1, v, "after"],
    "in-tuple": lambda v: (v,),
    "in-dict": lambda v: {"ok": True, "value": v},
    "in-nested": lambda v: {"a": [{"b": v}]},
    "in-model": lambda v: _Holder(item=v),
}

CASES = [pytest.param(leaf, wrap, id=f"{leaf}-{wrap}") for leaf, wrap in itertools.product(LEAVES, WRAPPERS)]


def _registry(value_factory, *, is_async: bool) -> ToolRegistry:
    if is_async:

        @tool(name="produce", timeout=10)
        async def produce() -> str:
            """Return a hostile value."""
            return value_factory()

    else:

        @tool(name="produce", timeout=10)
        def produce() -> str:
            """Return a hostile value."""
            return value_factory()

    return ToolRegistry([produce], max_output_chars=MAX_CHARS, max_output_bytes=MAX_BYTES)


def _assert_readable(observation: Observation) -> None:
    """What reaches the model: plain, encodable text within the limits."""
    assert isinstance(observation, Observation)
    assert type(observation.content) is str
    assert len(observation.content) <= MAX_CHARS + NOTE, len(observation.content)
    assert len(observation.content.encode("utf-8")) <= MAX_BYTES + NOTE  # raises on lone surrogates
    if observation.is_error:
        assert observation.content.startswith("Error: produce ")
        assert observation.error_type in ("exception", "timeout")  # a TimeoutError the tool raised is a timeout


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("leaf", "wrap"), CASES)
def test_any_return_value_becomes_a_bounded_observation(leaf, wrap, is_async):
    value = lambda: WRAPPERS[wrap](LEAVES[leaf]())  # noqa: E731
    observation = _registry(value, is_async=is_async).run(ToolCall(id="1", name="produce", arguments={}))
    _assert_readable(observation)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("leaf", "words"),
    [
        ("str-raises", ["_Raises", "RuntimeError: no __str__", "should return a str"]),
        ("generator", ["generator", "list(...)"]),
        ("huge-int", ["int", "4300 digits"]),
        ("isinstance-raises", ["_ClassRaises", "cannot be shown"]),
    ],
)
def test_a_value_with_no_text_is_an_error_that_says_what_to_return(leaf, words, is_async):
    observation = _registry(LEAVES[leaf], is_async=is_async).run(ToolCall(id="1", name="produce", arguments={}))
    assert observation.is_error and observation.error_type == "exception"
    for word in words:
        assert word in observation.content, observation.content


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_one_hostile_item_does_not_hide_the_rest(is_async):
    value = lambda: {"city": "Paris", "bad": _Raises(), "cycle": _cyclic_list(), "data": b"ok"}  # noqa: E731
    observation = _registry(value, is_async=is_async).run(ToolCall(id="1", name="produce", arguments={}))
    assert not observation.is_error
    assert '"city": "Paris"' in observation.content and '"data": "ok"' in observation.content
    assert "<a _Raises that cannot be shown: RuntimeError: no __str__>" in observation.content
    assert '"cycle": [1, "<cycle: this item contains itself>"]' in observation.content


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_deep_nesting_and_huge_numbers_are_cut_with_a_note(is_async):
    value = lambda: {"deep": _deep(100_000), "big": 10**5000, (1, 2): "key"}  # noqa: E731
    observation = _registry(value, is_async=is_async).run(ToolCall(id="1", name="produce", arguments={}))
    assert not observation.is_error
    assert "<nested more than 64 levels deep: not shown>" in observation.content
    assert '"big": "<an int of about 5001 digits>"' in observation.content
    assert '"(1, 2)": "key"' in observation.content
    assert "value=" not in repr(observation) and observation.content in str(observation)  # printing it is safe too


def test_readable_forms_are_kept():
    assert format_value(_FormatRaises()) == "formatted without __format__"
    assert format_value(_StrRaisesReprWorks()) == "<repr works>"
    assert format_value(_cyclic_list()) == '[1, "<cycle: this item contains itself>"]'
    assert format_value("héllo".encode()) == "héllo"
    assert format_value(b"\x00\x01") == "[2 bytes of binary data, not shown: the model reads text only]"
    assert format_value(_Raises()).startswith("[a _Raises that cannot be shown as text (RuntimeError: no __str__)")


def test_huge_and_malformed_strings_are_cut_to_the_limits():
    observation = _registry(lambda: "a\ud800" * 3_000_000, is_async=False).run(ToolCall(id="1", name="produce", arguments={}))
    assert observation.truncated and not observation.is_error
    assert observation.content.startswith("a\ufffd" * 10)
    assert "of 6000000 characters" in observation.content


class _MessageRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


class _HugeMessage(Exception):
    def __str__(self) -> str:
        return "m" * 1_000_000


RAISED = {
    "message-raises": _MessageRaises(),
    "huge-message": _HugeMessage(),
    "base-exception-subclass": _Custom("custom stop"),
    "generator-exit": GeneratorExit(),
    "cancelled-error": asyncio.CancelledError(),
    "stop-iteration": StopIteration(),
    "stop-async-iteration": StopAsyncIteration(),
    "recursion-error": RecursionError("too deep"),
    "memory-error": MemoryError(),
    "timeout-error": asyncio.TimeoutError(),
}
if hasattr(builtins, "BaseExceptionGroup"):  # Python 3.11+
    RAISED["base-exception-group"] = builtins.BaseExceptionGroup("many", [ValueError("a"), _Custom("b")])


def _raiser(exc: BaseException, *, is_async: bool) -> ToolRegistry:
    if is_async:

        @tool(name="produce", timeout=10)
        async def produce() -> str:
            """Raise."""
            await asyncio.sleep(0)
            raise exc

    else:

        @tool(name="produce", timeout=10)
        def produce() -> str:
            """Raise."""
            raise exc

    return ToolRegistry([produce], max_output_chars=MAX_CHARS, max_output_bytes=MAX_BYTES)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(RAISED))
def test_any_exception_a_tool_raises_becomes_an_error_observation(name, is_async):
    observation = _raiser(RAISED[name], is_async=is_async).run(ToolCall(id="1", name="produce", arguments={}))
    _assert_readable(observation)
    # A tool's own TimeoutError (an MCP server that did not answer in time) is reported as a timeout.
    assert observation.is_error and observation.error_type == ("timeout" if name == "timeout-error" else "exception")
    assert "failed" in observation.content


def test_exception_messages_are_named_even_when_they_cannot_be_shown():
    observation = _raiser(_MessageRaises(), is_async=False).run(ToolCall(id="1", name="produce", arguments={}))
    assert observation.content == "Error: produce failed: _MessageRaises: (its message cannot be shown: RuntimeError)"


def test_a_cancelled_error_raised_by_a_tool_does_not_cancel_the_step():
    @tool
    async def quits() -> str:
        """Raises CancelledError although nobody cancelled it."""
        raise asyncio.CancelledError()

    @tool
    def fine() -> str:
        """Works."""
        return "fine"

    calls = [ToolCall(id="1", name="quits", arguments={}), ToolCall(id="2", name="fine", arguments={})]
    observations = asyncio.run(ToolRegistry([quits, fine]).arun_all(calls))
    assert [o.is_error for o in observations] == [True, False]
    assert "CancelledError" in observations[0].content and observations[1].content == "fine"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_propagate_as_stop_requests(stop, is_async):
    """The documented exception: these are the user's/interpreter's requests to stop the program."""
    registry = _raiser(stop(), is_async=is_async)
    with pytest.raises(stop):
        registry.run(ToolCall(id="1", name="produce", arguments={}))


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_agent_run_survives_hostile_values_and_exceptions(is_async):
    hostile = [LEAVES["str-raises"], LEAVES["deep-list"], LEAVES["cyclic-dict"], LEAVES["generator"], LEAVES["huge-str"]]
    produced = iter(hostile)
    registry = _registry(lambda: next(produced)(), is_async=is_async)
    replies = [{"calls": [{"name": "produce", "arguments": {}}]} for _ in hostile] + [{"final_answer": "survived"}]
    result = Agent(ScriptedBackend(replies), tools=registry, max_steps=len(hostile) + 1).run("Call the tool.")
    assert result.output == "survived"
    errors = [step.observations[0].is_error for step in result.steps[:-1]]
    assert errors == [True, False, False, True, False]


def test_a_hanging_str_is_bounded_by_the_call_deadline():
    release = threading.Event()

    class Slow:
        def __str__(self) -> str:
            release.wait(5)
            return "late"

    @tool(timeout=0.2)
    async def slow_value() -> str:
        """Returns an object whose __str__ blocks."""
        return Slow()

    try:
        observation = ToolRegistry([slow_value]).run(ToolCall(id="1", name="slow_value", arguments={}))
    finally:
        release.set()
    assert observation.error_type == "timeout" and "0.2 s" in observation.content
