"""What a model writes on its own: free decoding in its own chat template with its own tool rendering.

    .venv/bin/python benchmarks/study_native.py --model qwen2.5-coder-0.5b --dtype bfloat16

Before a grammar steers a model it should know the model's habits: tags or bare JSON, fenced JSON,
several calls, text before a call, answers from imagination. Each question goes to the model with
only the user message and the tools, rendered by the model's template (no agentkit prompt, no
grammar), greedy; the reply is printed with the shape it has. Questions that need a tool, several
calls, and none at all.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Literal

from _models import add_model_options, device_label, load_engine

from agentkit import GenerationRequest, Message, ToolRegistry, tool
from agentkit.tools import calculator


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather in a city.

    Args:
        city: the city's name, e.g. "Paris".
        unit: temperature unit.
    """
    return ""


@tool
def get_exchange_rate(base: str, quote: str) -> float:
    """How many units of `quote` one unit of `base` buys.

    Args:
        base: currency code, e.g. "USD".
        quote: currency code, e.g. "EUR".
    """
    return 0.0


QUESTIONS = [
    ("call", "What is 17 * 23?"),
    ("calls", "What's the weather in Oslo and in Lima?"),
    ("none", "What is the capital of France?"),
    ("call", "How many euros is one US dollar?"),
    ("none", "Tell me a short joke."),
    ("calls", "Is it warmer in Rome or in Madrid right now?"),
    ("calls", "What is (12 + 30) / 7, and what's the weather in Tokyo?"),
    ("none", "Who wrote Hamlet?"),
]


NAME_KEY = '"name"'


def shape(text: str) -> str:
    """A coarse label of what the reply looks like."""
    t = text.strip()
    if "<tool_call>" in t:
        return "tagged" + (" (text first)" if not t.startswith("<tool_call>") else "") + f" x{t.count('<tool_call>')}"
    if t.startswith("```"):
        return "fenced"
    if re.match(r"^\{\s*\"name\"", t):
        return f"bare JSON x{t.count(NAME_KEY)}"
    if re.match(r"^\[\s*\{", t):
        return "JSON list"
    if "{\"name\"" in t or "{ \"name\"" in t:
        return "text, then JSON"
    return "text"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_options(parser)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    engine = load_engine(args)
    specs = ToolRegistry([calculator, get_weather, get_exchange_rate]).function_specs()
    print(f"{engine.name}; {device_label(engine)}; {time.strftime('%Y-%m-%d')}; template convention: {engine.tool_call_convention}\n")
    for needs, question in QUESTIONS:
        request = GenerationRequest(messages=[Message(role="user", content=question)], tools=specs, max_tokens=args.max_tokens)
        generation = engine.generate(request)
        print(json.dumps({"needs": needs, "question": question, "shape": shape(generation.text), "reply": generation.text,
                          "seconds": round(generation.seconds, 1)}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
