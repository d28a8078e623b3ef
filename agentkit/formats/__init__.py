"""Tool formats: the surface syntaxes a model may write its tool calls in, all parsed to the same `ToolCall`.

| name          | a call step looks like                                        | models tuned on it          |
|---------------|---------------------------------------------------------------|-----------------------------|
| `agentkit`    | `{"calls": [{"name": "f", "arguments": {...}}]}`              | none: works for any model   |
| `llama3_json` | `{"name": "f", "parameters": {...}}`                          | Llama 3.1                   |
| `pythonic`    | `[f(a=1, b="x")]`                                             | Llama 3.2 / 3.3 / 4         |
| `hermes`      | `<tool_call>{"name": "f", "arguments": {...}}</tool_call>`    | Hermes, Qwen 2.5/3, ChatML fine-tunes |

In the native formats (all but `agentkit`) the final answer is plain text. `Agent(tool_format="auto")`
(the default) uses the format the model's chat template was trained on, and `agentkit` for models
whose template knows no tools; `agentkit models PATH` shows what was detected.

Example:
    >>> from agentkit.registry import ToolRegistry
    >>> from agentkit.tools import calculator
    >>> fmt = make_tool_format("pythonic", ToolRegistry([calculator]))
    >>> fmt.parse('[calculator(expression="6 * 7")]', step_index=1).calls[0].name
    'calculator'
"""

from __future__ import annotations

from typing import Any

from agentkit.formats.base import TextAnswerFormat, ToolFormat
from agentkit.formats.hermes import HermesFormat
from agentkit.formats.llama_json import Llama3JsonFormat
from agentkit.formats.pythonic import PythonicFormat
from agentkit.formats.step_json import StepFormat
from agentkit.registry import ToolRegistry
from agentkit.steps import StepLimits

FORMATS: dict[str, type[Any]] = {
    "agentkit": StepFormat,
    "llama3_json": Llama3JsonFormat,
    "pythonic": PythonicFormat,
    "hermes": HermesFormat,
}

# The tool-call conventions `agentkit.engine.model_info` detects in chat templates -> our formats.
_CONVENTIONS = {"hermes": "hermes", "llama3-json": "llama3_json", "pythonic": "pythonic", "llama4-pythonic": "pythonic"}


def make_tool_format(name: str, registry: ToolRegistry, output_type: Any = str, limits: StepLimits | None = None) -> ToolFormat:
    """The `ToolFormat` called `name` for a tool set; `ValueError` naming the choices for an unknown name.

    Example:
        >>> make_tool_format("hermes", ToolRegistry([])).name
        'hermes'
    """
    try:
        cls = FORMATS[name]
    except KeyError:
        raise ValueError(f"Unknown tool_format {name!r}: use 'auto' or one of {sorted(FORMATS)}.") from None
    fmt: ToolFormat = cls(registry, output_type=output_type, limits=limits)
    return fmt


def format_for_convention(convention: str | None) -> str | None:
    """Our format for a template's tool-call convention (`ModelInfo.tool_call_format`), None if we have none.

    Example:
        >>> format_for_convention("hermes"), format_for_convention("mistral")
        ('hermes', None)
    """
    return _CONVENTIONS.get(convention or "")


__all__ = ["FORMATS", "HermesFormat", "Llama3JsonFormat", "PythonicFormat", "StepFormat", "TextAnswerFormat", "ToolFormat",
           "format_for_convention", "make_tool_format"]
