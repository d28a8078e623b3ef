"""`ToolRegistry`: unique names, and every way a call can fail becomes an error observation."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from pydantic import BaseModel

from agentkit import Observation, Tool, ToolCall, ToolDefinitionError, ToolError, ToolRegistry, tool
from agentkit.tools import calculator


@tool
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


class City(BaseModel):
    name: str
    population: int


def call(tool_name: str, /, **arguments) -> ToolCall:
    return ToolCall(id=f"call_{tool_name}", name=tool_name, arguments=arguments)


# -- registration ---------------------------------------------------------------------------------


def test_duplicate_names_raise_tool_error_naming_the_tool():
    @tool(name="echo")
    def other(text: str) -> str:
        """Another echo."""
        return text

    with pytest.raises(ToolError, match="'echo'.*rename"):
        ToolRegistry([echo, other])
    registry = ToolRegistry([echo])
    with pytest.raises(ToolError, match="'echo'"):
        registry.register(other)
    assert registry.names == ["echo"]  # the failed registration changed nothing


def test_plain_functions_are_wrapped_as_tools():
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    registry = ToolRegistry([shout, calculator])
    assert registry.names == ["shout", "calculator"]
    assert isinstance(registry.get("shout"), Tool)
    assert registry.get("shout").description == "Upper-case a text."
    assert "shout" in registry and "nope" not in registry and len(registry) == 2
    assert registry.run(call("shout", text="hi")).content == "HI"


def test_plain_function_that_cannot_be_a_tool_is_refused_at_registration():
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ToolDefinitionError, match="'x'"):
        ToolRegistry([untyped])


def test_get_unknown_tool_lists_the_known_ones():
    with pytest.raises(ToolError, match=r"'missing'.*\['echo', 'add'\]"):
        ToolRegistry([echo, add]).get("missing")


def test_fingerprint_changes_with_the_tools():
    assert ToolRegistry([echo, add]).fingerprint() == ToolRegistry([echo, add]).fingerprint()
    assert ToolRegistry([echo, add]).fingerprint() != ToolRegistry([echo]).fingerprint()


# -- successful calls -----------------------------------------------------------------------------


def test_successful_call_returns_content_value_and_call_id():
    observation = ToolRegistry([add]).run(ToolCall(id="c7", name="add", arguments={"a": 2, "b": "3"}))
    assert isinstance(observation, Observation)
    assert observation.is_error is False and observation.error_type is None
    assert observation.content == "5"
    assert observation.value == 5  # the raw value, coerced argument included
    assert observation.call_id == "c7" and observation.name == "add"
    assert observation.truncated is False
    assert observation.duration_seconds >= 0


# -- failures become observations ----------------------------------------------------------------


def test_unknown_tool_becomes_an_error_observation():
    observation = ToolRegistry([echo, add]).run(call("teleport", where="Mars"))
    assert observation.is_error is True
    assert observation.error_type == "unknown_tool"
    assert "'teleport'" in observation.content
    assert "echo" in observation.content and "add" in observation.content  # what to use instead


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        pytest.param({"a": 1}, ["b", "required"], id="missing"),
        pytest.param({"a": 1, "b": "two"}, ["b", "integer"], id="wrong-type"),
        pytest.param({"a": 1, "b": 2, "c": 3}, ["c", "not permitted"], id="extra"),
    ],
)
def test_invalid_arguments_become_an_error_observation(arguments, words):
    observation = ToolRegistry([add]).run(ToolCall(id="1", name="add", arguments=arguments))
    assert observation.is_error is True
    assert observation.error_type == "invalid_arguments"
    assert "add" in observation.content
    for word in words:
        assert word in observation.content, observation.content


def test_tool_exception_becomes_an_error_observation():
    observation = ToolRegistry([explode]).run(call("explode", reason="bad input"))
    assert observation.is_error is True
    assert observation.error_type == "exception"
    assert "explode" in observation.content
    assert "RuntimeError" in observation.content and "boom: bad input" in observation.content


def test_async_tool_exception_becomes_an_error_observation():
    @tool
    async def afail() -> str:
        """Fails asynchronously."""
        raise ValueError("no network")

    observation = ToolRegistry([afail]).run(call("afail"))
    assert (observation.is_error, observation.error_type) == (True, "exception")
    assert "afail" in observation.content and "ValueError: no network" in observation.content


def test_calculator_refusal_reaches_the_model_as_an_error():
    observation = ToolRegistry([calculator]).run(call("calculator", expression="__import__('os')"))
    assert observation.is_error is True and observation.error_type == "exception"
    assert "CalculatorError" in observation.content and "calculator" in observation.content


@pytest.fixture
def release():
    """An event that lets abandoned worker threads finish as soon as the test is over."""
    event = threading.Event()
    yield event
    event.set()


def test_slow_sync_tool_times_out_quickly(release):
    @tool(timeout=0.2)
    def slow() -> str:
        """Takes two seconds."""
        release.wait(2)  # a blocking call, like time.sleep(2), that the fixture can end early
        return "done"

    started = time.perf_counter()
    observation = ToolRegistry([slow]).run(call("slow"))
    elapsed = time.perf_counter() - started
    assert observation.is_error is True
    assert observation.error_type == "timeout"
    assert "slow" in observation.content and "0.2 s" in observation.content
    assert elapsed < 1.0, f"the timeout returned after {elapsed:.2f} s, not about 0.2 s"


def test_slow_sync_tool_times_out_inside_a_running_loop(release):
    @tool(timeout=0.1)
    def nap() -> str:
        """Sleeps."""
        release.wait(2)
        return "rested"

    async def main() -> tuple[Observation, float]:
        started = time.perf_counter()
        observation = await ToolRegistry([nap]).arun(call("nap"))
        return observation, time.perf_counter() - started

    loop = asyncio.new_event_loop()
    try:
        observation, elapsed = loop.run_until_complete(main())
    finally:
        loop.close()
    assert observation.error_type == "timeout" and observation.is_error
    assert elapsed < 0.5


def test_slow_async_tool_times_out():
    @tool(timeout=0.2)
    async def aslow() -> str:
        """Takes two seconds."""
        await asyncio.sleep(2)
        return "done"

    started = time.perf_counter()
    observation = ToolRegistry([aslow]).run(call("aslow"))
    assert time.perf_counter() - started < 1.0
    assert (observation.is_error, observation.error_type) == (True, "timeout")
    assert "aslow" in observation.content


def test_registry_timeout_applies_to_tools_without_their_own():
    @tool
    async def aslow() -> str:
        """Slow."""
        await asyncio.sleep(2)
        return "done"

    observation = ToolRegistry([aslow], timeout=0.1).run(call("aslow"))
    assert observation.error_type == "timeout" and "0.1 s" in observation.content


# -- output ---------------------------------------------------------------------------------------


def test_oversized_output_is_truncated_with_a_note():
    registry = ToolRegistry([echo], max_output_chars=50)
    observation = registry.run(call("echo", text="x" * 500))
    assert observation.truncated is True
    assert observation.is_error is False
    assert observation.content.startswith("x" * 50 + "\n")
    assert "x" * 51 not in observation.content
    assert "truncated" in observation.content and "50 of 500" in observation.content
    assert observation.value == "x" * 500  # user code still gets the whole value


def test_output_at_the_limit_is_not_truncated():
    observation = ToolRegistry([echo], max_output_chars=50).run(call("echo", text="y" * 50))
    assert (observation.truncated, observation.content) == (False, "y" * 50)


def test_per_tool_output_limit_overrides_the_registry():
    @tool(max_output_chars=10)
    def long() -> str:
        """Long text."""
        return "z" * 100

    observation = ToolRegistry([long], max_output_chars=1000).run(call("long"))
    assert observation.truncated is True and "10 of 100" in observation.content


def test_pydantic_return_values_are_rendered_as_json():
    @tool
    def lookup(name: str) -> City:
        """Look a city up."""
        return City(name=name, population=2_100_000)

    @tool
    def lookup_many(names: list[str]) -> list[City]:
        """Look cities up."""
        return [City(name=n, population=i) for i, n in enumerate(names)]

    registry = ToolRegistry([lookup, lookup_many])
    one = registry.run(call("lookup", name="Paris"))
    assert one.content == '{"name":"Paris","population":2100000}'
    assert isinstance(one.value, City)
    many = registry.run(call("lookup_many", names=["Oslo", "Rome"]))
    assert json.loads(many.content) == [{"name": "Oslo", "population": 0}, {"name": "Rome", "population": 1}]


def test_non_string_values_are_rendered_as_json():
    @tool
    def stats() -> dict:
        """Stats."""
        return {"mean": 2.5, "ok": True, "none": None, "items": [1, 2]}

    assert ToolRegistry([stats]).run(call("stats")).content == '{"mean": 2.5, "ok": true, "none": null, "items": [1, 2]}'


UNICODE = ["北京今天天气怎么样", "مرحبا بالعالم", "Привет, мир", "नमस्ते दुनिया", "🌍🚀✨ ok", "e\u0301 combining"]


@pytest.mark.parametrize("text", UNICODE)
def test_unicode_arguments_and_outputs_survive(text):
    @tool
    def wrap(text: str) -> dict[str, str]:
        """Wrap a text."""
        return {"got": text}

    registry = ToolRegistry([echo, wrap])
    assert registry.run(call("echo", text=text)).content == text
    assert registry.run(call("wrap", text=text)).content == f'{{"got": "{text}"}}'  # not \\u-escaped


def test_unicode_in_pydantic_output_is_not_escaped():
    @tool
    def city() -> City:
        """A city."""
        return City(name="東京", population=14_000_000)

    assert ToolRegistry([city]).run(call("city")).content == '{"name":"東京","population":14000000}'


# -- concurrency ----------------------------------------------------------------------------------


def test_arun_all_runs_calls_concurrently_and_keeps_call_order():
    @tool
    async def wait(seconds: float, label: str) -> str:
        """Wait, then return the label."""
        await asyncio.sleep(seconds)
        return label

    registry = ToolRegistry([wait, add])
    calls = [
        ToolCall(id="a", name="wait", arguments={"seconds": 0.5, "label": "slow"}),
        ToolCall(id="b", name="wait", arguments={"seconds": 0.5, "label": "also slow"}),
        ToolCall(id="c", name="add", arguments={"a": 1, "b": 1}),
        ToolCall(id="d", name="nope", arguments={}),
    ]
    started = time.perf_counter()
    observations = asyncio.run(registry.arun_all(calls))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.9, f"{elapsed:.2f} s: the calls ran one after the other"
    assert [o.call_id for o in observations] == ["a", "b", "c", "d"]
    assert [o.content for o in observations[:3]] == ["slow", "also slow", "2"]
    assert observations[3].is_error and observations[3].error_type == "unknown_tool"


def test_arun_all_runs_sync_tools_concurrently_too():
    @tool
    def block(seconds: float) -> str:
        """Block a thread."""
        time.sleep(seconds)
        return "ok"

    calls = [ToolCall(id=str(i), name="block", arguments={"seconds": 0.3}) for i in range(3)]
    started = time.perf_counter()
    observations = asyncio.run(ToolRegistry([block]).arun_all(calls))
    assert time.perf_counter() - started < 0.8
    assert [o.content for o in observations] == ["ok", "ok", "ok"]


def test_one_failing_call_does_not_affect_the_others():
    observations = asyncio.run(
        ToolRegistry([echo, explode]).arun_all([call("echo", text="first"), call("explode", reason="x"), call("echo", text="last")])
    )
    assert [o.is_error for o in observations] == [False, True, False]
    assert observations[0].content == "first" and observations[2].content == "last"


# -- hung sync tools ------------------------------------------------------------------------------


def test_ten_hung_calls_do_not_delay_an_unrelated_call(release):
    @tool(timeout=0.3)
    def hang() -> str:
        """Never returns on its own."""
        release.wait(10)
        return "late"

    calls = [ToolCall(id=str(i), name="hang", arguments={}) for i in range(10)]
    calls.append(ToolCall(id="add", name="add", arguments={"a": 2, "b": 3}))
    started = time.perf_counter()
    observations = asyncio.run(ToolRegistry([hang, add]).arun_all(calls))
    assert time.perf_counter() - started < 1.0
    assert [o.error_type for o in observations[:10]] == ["timeout"] * 10
    assert observations[10].content == "5" and observations[10].duration_seconds < 0.2


def test_a_tool_whose_threads_are_all_stuck_is_reported_busy_and_others_still_run(release):
    @tool(timeout=0.1)
    def hang() -> str:
        """Hangs until released."""
        release.wait(10)
        return "finally"

    registry = ToolRegistry([hang, add], tool_threads=3)
    for _ in range(3):  # each call times out and leaves its thread behind
        assert registry.run(call("hang")).error_type == "timeout"
    started = time.perf_counter()
    busy = registry.run(call("hang"))
    assert time.perf_counter() - started < 0.05, "a call to a tool with no free thread should fail at once"
    assert (busy.is_error, busy.error_type) == (True, "busy")
    assert "all 3 threads of hang are still busy" in busy.content and "another tool" in busy.content
    assert registry.run(call("add", a=1, b=1)).content == "2"  # other sync tools have threads of their own

    release.set()  # the hung calls end: the tool's threads come back
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and registry.run(call("hang")).error_type == "busy":
        time.sleep(0.01)
    assert registry.run(call("hang")).content == "finally"


def test_calls_beyond_the_thread_budget_wait_for_a_thread_within_their_deadline():
    @tool(timeout=2)
    def nap(seconds: float) -> str:
        """Sleeps."""
        time.sleep(seconds)
        return "ok"

    calls = [ToolCall(id=str(i), name="nap", arguments={"seconds": 0.2}) for i in range(4)]
    started = time.perf_counter()
    observations = asyncio.run(ToolRegistry([nap], tool_threads=2).arun_all(calls))
    elapsed = time.perf_counter() - started
    assert [o.content for o in observations] == ["ok"] * 4
    assert 0.35 < elapsed < 1.0, f"{elapsed:.2f} s: four 0.2 s calls on two threads take two rounds"


def test_tool_threads_must_be_positive():
    with pytest.raises(ValueError, match="tool_threads must be at least 1"):
        ToolRegistry([add], tool_threads=0)
