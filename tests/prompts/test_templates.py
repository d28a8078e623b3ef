"""Prompt templates: strict about missing variables, and the system prompt tells the model what it needs."""

from __future__ import annotations

import jinja2
import pytest

from agentkit import Example, ExampleCall, StepFormat, StepLimits, ToolRegistry, tool
from agentkit.prompting import example_messages, system_prompt
from agentkit.prompts import render
from agentkit.tools import calculator


def test_missing_variable_is_an_error_not_an_empty_prompt():
    with pytest.raises(jinja2.UndefinedError):
        render("observation.jinja", name="calculator")


def test_system_prompt_lists_tools_with_types_descriptions_and_examples():
    @tool
    def weather(city: str, days: int = 1) -> str:
        """Forecast for a city.

        Args:
            city: the city, e.g. "Paris".
            days: how many days ahead.
        """
        return "sunny"

    registry = ToolRegistry([calculator, weather])
    prompt = system_prompt("You help travellers.", registry, StepFormat(registry))
    assert prompt.startswith("You help travellers.")
    assert "- weather(city: string, days: integer = optional): Forecast for a city." in prompt
    assert 'city: the city, e.g. "Paris".' in prompt
    assert 'example: {"name": "calculator", "arguments": {"expression": "(4 + 6) * 12"}}' in prompt
    assert '"final_answer"' in prompt and '"calls"' in prompt


def test_thought_appears_in_the_format_only_when_enabled():
    registry = ToolRegistry([calculator])
    assert '"thought"' not in system_prompt("", registry, StepFormat(registry))
    assert '"thought"' in system_prompt("", registry, StepFormat(registry, limits=StepLimits(thought_chars=100)))


def test_examples_render_exactly_as_the_grammar_writes_steps():
    registry = ToolRegistry([calculator])
    fmt = StepFormat(registry)
    example = Example(task="What is 2 + 3?", calls=[ExampleCall(name="calculator", arguments={"expression": "2 + 3"}, result="5")], answer="5")
    messages = example_messages([example], fmt)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1].content == '{"calls": [{"name": "calculator", "arguments": {"expression": "2 + 3"}}]}'
    assert messages[2].content == "calculator returned: 5"
    assert messages[3].content == '{"final_answer": "5"}'
    assert fmt.parse(messages[1].content, step_index=0).calls[0].arguments == {"expression": "2 + 3"}
