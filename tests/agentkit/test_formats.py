"""Tool formats: every syntax round-trips tricky values through its grammar and parser to the same ToolCall."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from agentkit import Agent, LarkConstraint, tool
from agentkit.errors import ToolDefinitionError
from agentkit.formats import FORMATS, make_tool_format
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep, StepLimits, StepParseError
from agentkit.testing import ScriptedBackend
from agentkit.tools import calculator
from agentkit.types import ToolCall


class Address(BaseModel):
    street: str
    city: str
    floor: int | None = None


@tool
def register(
    name: str,
    age: int,
    height_m: float,
    vip: bool,
    address: Address,
    tags: list[str],
    scores: dict[str, float],
    unit: Literal["metric", "imperial"] = "metric",
    note: str | None = None,
) -> str:
    """Register a person.

    Args:
        name: full name.
        age: years.
        height_m: height in metres.
        vip: whether they are a VIP.
        address: where they live.
        tags: labels.
        scores: test name to score.
        unit: measurement system.
        note: anything else.
    """
    return name


@tool
def ping() -> str:
    """Check the service is up."""
    return "pong"


REGISTRY = ToolRegistry([register, ping, calculator])

TRICKY_CALLS = [
    ToolCall(id="a", name="register", arguments={
        "name": 'Zoë "Z" O\'Brien \\ 東京 القاهرة Москва 🎉',
        "age": -3,
        "height_m": 1.5e-07,
        "vip": True,
        "address": {"street": "Line1\nLine2\ttab", "city": "Zürich", "floor": None},
        "tags": ["a,b", "[x]", "{y}", ")(", ""],
        "scores": {"maths é": 9.75, "art": 0.0},
        "unit": "imperial",
        "note": None,
    }),
    ToolCall(id="b", name="ping", arguments={}),
    ToolCall(id="c", name="calculator", arguments={"expression": "(1 + 2) * 3.5"}),
]


def _matches_grammar(tokenizer, fmt, text: str) -> bool:
    from agentkit.engine.grammar import GrammarCompiler

    matcher = GrammarCompiler(tokenizer).matcher(fmt.constraint())
    return all(matcher.consume_token(t) for t in tokenizer.encode(text)) and matcher.is_accepting()


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_tricky_values_round_trip_through_grammar_and_parser(name, smollm2_tokenizer):
    fmt = make_tool_format(name, REGISTRY)
    text = fmt.render(ParsedStep(thought=None, calls=TRICKY_CALLS))
    assert _matches_grammar(smollm2_tokenizer, fmt, text), text
    parsed = fmt.parse(text, step_index=3)
    assert [(c.name, c.arguments) for c in parsed.calls] == [(c.name, c.arguments) for c in TRICKY_CALLS]
    assert [c.id for c in parsed.calls] == ["call_3_0", "call_3_1", "call_3_2"]
    for call in parsed.calls:  # and the registry accepts what came back
        REGISTRY.get(call.name).validate_arguments(call.arguments)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_final_answer_round_trips(name, smollm2_tokenizer):
    fmt = make_tool_format(name, REGISTRY)
    answer = "Zürich is 1.5 km away: «ok» 🎉\nSecond line."
    text = fmt.render(ParsedStep(thought=None, calls=[], final_answer=answer, is_final=True))
    assert _matches_grammar(smollm2_tokenizer, fmt, text)
    step = fmt.parse(text, step_index=1)
    assert step.is_final and step.final_answer == answer and step.calls == []


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_structured_answer_round_trips(name, smollm2_tokenizer):
    fmt = make_tool_format(name, REGISTRY, output_type=Address)
    answer = Address(street="1 Rue de l'Été", city="Paris")
    text = fmt.render(ParsedStep(thought=None, calls=[], final_answer=answer, is_final=True))
    assert _matches_grammar(smollm2_tokenizer, fmt, text)
    assert fmt.parse(text, step_index=1).final_answer == answer


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("hermes", '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1"}}\n</tool_call>'),
        ("llama3_json", '{"name": "calculator", "parameters": {"expression": "1"}}'),
        ("pythonic", '[calculator(expression="1")]'),
    ],
)
def test_native_formats_write_the_documented_syntax(name, text):
    fmt = make_tool_format(name, REGISTRY)
    call = ToolCall(id="x", name="calculator", arguments={"expression": "1"})
    assert fmt.render(ParsedStep(thought=None, calls=[call])) == text


@pytest.mark.parametrize(
    ("name", "opener"),
    [("hermes", "<tool_call>"), ("hermes", "{"), ("hermes", "```json"), ("llama3_json", "{"), ("pythonic", "[")],
)
def test_an_answer_cannot_start_like_a_call(name, opener, smollm2_tokenizer):
    """The choice between calling and answering is made at the first token; a started call must finish."""
    fmt = make_tool_format(name, REGISTRY)
    assert not _matches_grammar(smollm2_tokenizer, fmt, opener + " just kidding")
    assert not _matches_grammar(smollm2_tokenizer, fmt, " leading space")


# What Qwen2.5-Coder 0.5B and 1.5B write in their own template (benchmarks/study_native.py): no tags.
QWEN_HABITS = {
    "bare": '{"name": "calculator", "arguments": {"expression": "17 * 23"}}',
    "fenced": '```json\n{"name": "calculator", "arguments": {"expression": "17 * 23"}}\n```',
    "two bare": '{"name": "ping", "arguments": {}}\n{"name": "calculator", "arguments": {"expression": "1"}}',
    "tagged": '<tool_call>\n{"name": "calculator", "arguments": {"expression": "17 * 23"}}\n</tool_call>',
}


@pytest.mark.parametrize("habit", sorted(QWEN_HABITS))
def test_hermes_takes_the_untagged_calls_qwen_writes_as_calls_never_as_the_answer(habit, smollm2_tokenizer):
    fmt = make_tool_format("hermes", REGISTRY)
    text = QWEN_HABITS[habit]
    assert _matches_grammar(smollm2_tokenizer, fmt, text)
    step = fmt.parse(text, step_index=1)
    assert not step.is_final and step.calls
    assert step.calls[-1].name == "calculator"
    # Written back (history, examples) always with the tags the template documents.
    assert fmt.render(step).startswith("<tool_call>\n")


@pytest.mark.parametrize("habit", sorted(QWEN_HABITS))
def test_hermes_calls_may_end_with_a_newline_and_the_newline_forces_no_further_call(habit, smollm2_tokenizer):
    """Qwen's likeliest ending after a call is a newline, then the end token (measured: the 0.5B scores
    "call\n" above "call"). If that newline could only open another call, the model would be forced to
    write calls it never meant (it did: 17 * 23 * 429 * ...)."""
    fmt = make_tool_format("hermes", REGISTRY)
    text = QWEN_HABITS[habit] + "\n"
    assert _matches_grammar(smollm2_tokenizer, fmt, text)  # accepting: the end token may follow the newline
    step = fmt.parse(text, step_index=1)
    assert step.calls[-1].name == "calculator" and not step.is_final


def test_hermes_takes_prose_before_the_calls_as_qwen_writes_it(smollm2_tokenizer):
    """Qwen often announces a call first: "To answer this, I'll need to ...", then the call on its own line."""
    fmt = make_tool_format("hermes", REGISTRY)
    for call in QWEN_HABITS.values():
        text = "To answer this question, I'll need to run the calculator.\n" + call
        assert _matches_grammar(smollm2_tokenizer, fmt, text), text
        step = fmt.parse(text, step_index=1)
        assert not step.is_final and step.calls[-1].name == "calculator"
    # A blank line before the calls is fine; a bad call after prose is still refused by the grammar.
    assert _matches_grammar(smollm2_tokenizer, fmt, "Let me compute it.\n\n" + QWEN_HABITS["fenced"])
    assert not _matches_grammar(smollm2_tokenizer, fmt, 'Let me compute it.\n{"name": "calculator", "arguments": {"expression": 5}}')
    # Prose that only mentions the tags, or paragraphs and other fences, stays an answer.
    for answer in ["Qwen wraps calls in <tool_call> tags.", "First:\n\n```python\nx = 1\n```", "a\n  {indented}"]:
        assert _matches_grammar(smollm2_tokenizer, fmt, answer), answer
        assert fmt.parse(answer, step_index=1).is_final
    # ...but no line of an answer may start like a call (it would be a call, held to its schema).
    for sneaky in ["Result:\n{not a call}", "`\n{not a call}", "```\n{not a call}", "```j\n{x}", "x\n<tool_call> no"]:
        assert not _matches_grammar(smollm2_tokenizer, fmt, sneaky), sneaky


@pytest.mark.parametrize(
    ("name", "call"),
    [("hermes", QWEN_HABITS["tagged"]), ("hermes", QWEN_HABITS["fenced"]), ("llama3_json", '{"name": "ping", "parameters": {}}'),
     ("pythonic", "[ping()]")],
)
def test_a_calls_only_step_must_call_a_tool(name, call, smollm2_tokenizer):
    """After a step check says "call again with the real value", the next step may not be an answer."""
    fmt = FORMATS[name](REGISTRY, calls_only=True)
    assert _matches_grammar(smollm2_tokenizer, fmt, call)
    assert not _matches_grammar(smollm2_tokenizer, fmt, "Please tell me the department.")
    if name == "hermes":  # Qwen's announcement before the call is still allowed
        assert _matches_grammar(smollm2_tokenizer, fmt, "Let me look it up.\n" + call)
    with pytest.raises(ValueError, match="both"):
        FORMATS[name](REGISTRY, answer_only=True, calls_only=True)


def test_hermes_untagged_calls_are_held_to_the_schema_and_other_fences_stay_answers(smollm2_tokenizer):
    fmt = make_tool_format("hermes", REGISTRY)
    assert not _matches_grammar(smollm2_tokenizer, fmt, '{"name": "short joke", "arguments": {}}')  # no such tool
    assert not _matches_grammar(smollm2_tokenizer, fmt, '```json\n{"name": "calculator", "arguments": {"expression": 5}}\n```')
    code = "```python\nprint(1)\n```"
    assert _matches_grammar(smollm2_tokenizer, fmt, code)
    assert fmt.parse(code, step_index=1).final_answer == code
    assert _matches_grammar(smollm2_tokenizer, fmt, "`x` is a variable")
    # With a structured output type the answer is JSON, so only the tagged spelling is a call.
    typed = make_tool_format("hermes", REGISTRY, output_type=list[int])
    assert typed.parse("[1, 2]", step_index=1).final_answer == [1, 2]


def test_grammar_rejects_wrong_argument_types_in_every_format(smollm2_tokenizer):
    bad = {
        "agentkit": '{"calls": [{"name": "calculator", "arguments": {"expression": 5}}]}',
        "llama3_json": '{"name": "calculator", "parameters": {"expression": 5}}',
        "pythonic": "[calculator(expression=5)]",
        "hermes": '<tool_call>\n{"name": "calculator", "arguments": {"expression": 5}}\n</tool_call>',
    }
    for name, text in bad.items():
        assert not _matches_grammar(smollm2_tokenizer, make_tool_format(name, REGISTRY), text), name


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_runaway_integers_are_cut_off_by_the_grammar_in_every_format(name, smollm2_tokenizer):
    """A small model writes 1000000... until the token limit; the grammar stops it at `int_digits`."""
    fmt = make_tool_format(name, REGISTRY, limits=StepLimits(int_digits=6))

    def step(age: int) -> str:
        call = TRICKY_CALLS[0].model_copy(update={"arguments": {**TRICKY_CALLS[0].arguments, "age": age}})
        return fmt.render(ParsedStep(thought=None, calls=[call]))

    assert _matches_grammar(smollm2_tokenizer, fmt, step(999999)) and _matches_grammar(smollm2_tokenizer, fmt, step(-999999))
    assert not _matches_grammar(smollm2_tokenizer, fmt, step(1000000))


def test_pythonic_optional_arguments_may_be_left_out_but_keep_their_order(smollm2_tokenizer):
    fmt = make_tool_format("pythonic", REGISTRY)
    base = 'name="A", age=1, height_m=1.0, vip=False, address={"street": "s", "city": "c"}, tags=[], scores={}'
    assert _matches_grammar(smollm2_tokenizer, fmt, f"[register({base})]")
    assert _matches_grammar(smollm2_tokenizer, fmt, f'[register({base}, note="n")]')
    assert not _matches_grammar(smollm2_tokenizer, fmt, f'[register(note="n", {base})]')  # out of order
    assert not _matches_grammar(smollm2_tokenizer, fmt, '[register(name="A")]')  # required ones missing


def test_pythonic_parser_reads_literals_without_evaluating():
    fmt = make_tool_format("pythonic", REGISTRY)
    step = fmt.parse('[ping(), calculator(expression="2" )]', step_index=1)
    assert [c.name for c in step.calls] == ["ping", "calculator"]
    # JSON spellings written out of habit (unconstrained decoding) are read too.
    lenient = fmt.parse('[register(vip=true, note=null, age=-2)]', step_index=1).calls[0].arguments
    assert lenient == {"vip": True, "note": None, "age": -2}
    for text, message in [
        ('[calculator("1 + 1")]', "by name"),
        ("[calculator(expression=__import__('os').system('id'))]", "literal"),
        ("[os.system(cmd='id')]", "plain tool name"),
        ("[calculator(expression=", "not a valid Python list"),
    ]:
        with pytest.raises(StepParseError, match=message):
            fmt.parse(text, step_index=1)


def test_parsers_accept_what_models_add_around_calls():
    hermes = make_tool_format("hermes", REGISTRY)
    text = 'Let me check.\n<tool_call>\n{"name": "ping", "arguments": {}}\n</tool_call>\n<tool_call>{"name": "calculator", "arguments": {"expression": "1"}}'
    assert [c.name for c in hermes.parse(text, step_index=1).calls] == ["ping", "calculator"]
    llama = make_tool_format("llama3_json", REGISTRY)
    text = '<|python_tag|>{"name": "ping", "parameters": {}}; {"name": "calculator", "parameters": {"expression": "1"}}'
    assert [c.name for c in llama.parse(text, step_index=1).calls] == ["ping", "calculator"]
    pythonic = make_tool_format("pythonic", REGISTRY)
    assert pythonic.parse("<|python_start|>[ping()]<|python_end|>", step_index=1).calls[0].name == "ping"


def test_pythonic_refuses_tool_names_that_are_not_identifiers():
    @tool(name="get-weather")
    def weather(city: str) -> str:
        """Weather."""
        return city

    with pytest.raises(ToolDefinitionError, match="not a Python identifier"):
        make_tool_format("pythonic", ToolRegistry([weather]))


def test_unknown_format_name_lists_the_choices():
    with pytest.raises(ValueError, match="agentkit.*hermes.*llama3_json.*pythonic"):
        Agent(ScriptedBackend([]), tools=[calculator], tool_format="xml")


@pytest.mark.parametrize(
    ("name", "outputs"),
    [
        ("hermes", ['<tool_call>\n{"name": "calculator", "arguments": {"expression": "17 * 23"}}\n</tool_call>', "It is 391."]),
        ("llama3_json", ['{"name": "calculator", "parameters": {"expression": "17 * 23"}}', "It is 391."]),
        ("pythonic", ['[calculator(expression="17 * 23")]', "It is 391."]),
    ],
)
def test_agent_runs_in_each_native_format(name, outputs):
    backend = ScriptedBackend(outputs)
    result = Agent(backend, tools=[calculator], tool_format=name).run("What is 17 * 23?")
    assert result.output == "It is 391."
    assert result.steps[0].observations[0].content == "391"
    assert backend.requests[0].constraint == LarkConstraint(grammar=make_tool_format(name, ToolRegistry([calculator])).grammar)
    system = result.messages[0].content
    assert "calculator(expression" in system and "plain text" in system
    # The few-shot example is written in the same syntax the model must use.
    assert result.messages[4].content.startswith(make_tool_format(name, REGISTRY).opener)  # the default example's calls


def test_auto_picks_the_templates_own_format_and_lets_the_template_render_tools():
    class HermesTemplateBackend(ScriptedBackend):
        tool_call_convention = "hermes"

    backend = HermesTemplateBackend(["<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>", "up"])
    agent = Agent(backend, tools=[ping], examples=[])
    assert agent.tool_format.name == "hermes"
    assert agent.run("Is it up?").output == "up"
    request = backend.requests[0]
    assert request.tools == [{"type": "function", "function": {"name": "ping", "description": "Check the service is up.",
                                                               "parameters": ping.parameters}}]
    assert "ping" not in request.messages[0].content  # the template lists the tools, not our prompt
    # Forcing another format uses agentkit's own tool prompt instead.
    forced = Agent(HermesTemplateBackend([]), tools=[ping], tool_format="pythonic", examples=[])
    assert forced.tool_format.name == "pythonic" and "ping()" in forced.first_messages("x")[0].content
    # Without a native format, auto means the agentkit JSON step.
    assert Agent(ScriptedBackend([]), tools=[ping]).tool_format.name == "agentkit"


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_identical_calls_in_one_step_are_made_once(name):
    from agentkit.steps import StepLimits

    repeated = [ToolCall(id=str(i), name="calculator", arguments={"expression": "1 + 1"}) for i in range(3)]
    repeated.insert(1, ToolCall(id="x", name="ping", arguments={}))
    text = make_tool_format(name, REGISTRY).render(ParsedStep(thought=None, calls=repeated))
    assert [c.name for c in make_tool_format(name, REGISTRY).parse(text, step_index=1).calls] == ["calculator", "ping"]
    keep_all = make_tool_format(name, REGISTRY, limits=StepLimits(distinct_calls=False))
    assert len(keep_all.parse(text, step_index=1).calls) == 4
