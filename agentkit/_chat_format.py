"""OpenAI chat-completions requests in, agentkit prompts and grammars out, and back again.

The server decodes tool calls under agentkit's step grammar: the request's tools become a tool set,
`tool_choice` picks which branches of the step schema are allowed (any tool or an answer, only
calls, one named function), and the generated step is turned back into OpenAI `tool_calls`.
Every problem with a request raises `RequestError` with the HTTP status and the OpenAI error shape.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from agentkit.errors import AgentkitError, ToolDefinitionError
from agentkit.images import Image, to_image
from agentkit.prompting import system_prompt
from agentkit.registry import ToolRegistry
from agentkit.steps import StepFormat, StepLimits, StepParseError
from agentkit.tool import Tool
from agentkit.types import Message

ROLES = {"system", "developer", "user", "assistant", "tool"}
DEFAULT_MAX_TOKENS = 1024


class RequestError(AgentkitError):
    """A request the server refuses, with the status code and OpenAI error fields to send back."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Plan:
    """How to answer one request: the prompt, the grammar (if any), and how to read the output back."""

    messages: list[Message]
    json_schema: dict[str, Any] | None
    step_format: StepFormat | None  # set when the output is an agentkit step (tools in play)
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str] = field(default_factory=list)


def plan_request(body: Any) -> Plan:
    """Validate a chat-completions body and decide the prompt and grammar; raise `RequestError`.

    Example:
        >>> plan = plan_request({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8})
        >>> [m.role for m in plan.messages], plan.json_schema, plan.max_tokens
        (['user'], None, 8)
    """
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise RequestError("`messages` must be a non-empty list of {role, content} objects.", param="messages")
    if body.get("n", 1) != 1:
        raise RequestError("Only n=1 is supported: send one request per completion.", param="n")
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise RequestError("`max_tokens` must be a positive integer.", param="max_tokens")
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0) or 1.0
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise RequestError("`stop` must be a string or a list of non-empty strings.", param="stop")
    seed = body.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise RequestError("`seed` must be an integer.", param="seed")

    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice", "auto" if tools else "none")
    names = [t.name for t in tools]
    forced: str | None = None
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
        if forced not in names:
            raise RequestError(f"tool_choice names function {forced!r}, which is not in `tools` ({names}).", param="tool_choice")
        choice = "required"
    elif choice not in ("auto", "none", "required"):
        raise RequestError("`tool_choice` must be 'auto', 'none', 'required' or {type: function, function: {name}}.", param="tool_choice")
    if choice == "required" and not tools:
        raise RequestError("tool_choice requires a tool but `tools` is empty.", param="tool_choice")

    as_steps = bool(tools) and choice != "none"
    instructions, conversation = _conversation(raw_messages, as_steps=as_steps)
    if as_steps:
        chosen = [t for t in tools if forced is None or t.name == forced]
        registry = ToolRegistry(chosen)
        limits = StepLimits(max_calls=1 if (forced or body.get("parallel_tool_calls") is False) else 4)
        step_format = StepFormat(registry, limits=limits)
        schema = step_format.grammar_schema()
        if choice == "required" and "anyOf" in schema:  # calls only: drop the final-answer branch
            schema = {**schema["anyOf"][0], **({"$defs": schema["$defs"]} if "$defs" in schema else {})}
        prompt = [Message(role="system", content=system_prompt(instructions, registry, step_format)), *conversation]
        return Plan(prompt, schema, step_format, max_tokens, temperature, top_p, seed, stop)

    schema = _response_format(body.get("response_format"))
    prompt = ([Message(role="system", content=instructions)] if instructions else []) + conversation
    return Plan(prompt, schema, None, max_tokens, temperature, top_p, seed, stop)


def read_output(plan: Plan, text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(content, tool_calls) in OpenAI's shape from the generated text."""
    if plan.step_format is None:
        return text, []
    try:
        step = plan.step_format.parse(text, step_index=0)
    except StepParseError:  # only when cut off by max_tokens: return the text as it is
        return text, []
    if step.is_final:
        return str(step.final_answer), []
    calls = [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
        }
        for c in step.calls
    ]
    return None, calls


def apply_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut `text` at the first stop string (the engine has no stop strings: applied afterwards)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(f"`{key}` must be a number between {low:g} and {high:g}.", param=key)
    return float(value)


def _tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RequestError("`tools` must be a list of {type: function, function: {...}}.", param="tools")
    tools: list[Tool] = []
    for i, item in enumerate(raw):
        function = item.get("function") if isinstance(item, dict) and item.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestError(f"tools[{i}] must be {{type: 'function', function: {{name, description, parameters}}}}.", param=f"tools[{i}]")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise RequestError(f"tools[{i}].function.parameters must be a JSON Schema object.", param=f"tools[{i}]")
        try:
            tools.append(Tool(_never_called, name=function["name"], description=function.get("description") or "", parameters=parameters))
        except ToolDefinitionError as exc:
            raise RequestError(str(exc), param=f"tools[{i}].function.name") from None
    if len({t.name for t in tools}) != len(tools):
        raise RequestError("Function names in `tools` must be unique.", param="tools")
    return tools


def _never_called(**_: Any) -> None:
    """The server only decodes calls; the client runs its own functions."""


def _conversation(raw_messages: list[Any], *, as_steps: bool) -> tuple[str, list[Message]]:
    """System/developer text (joined) and the rest as agentkit messages, tool calls as step JSON.

    With `as_steps`, earlier assistant answers are shown in the step format the model must write.
    """
    instructions: list[str] = []
    messages: list[Message] = []
    call_names: dict[str, str] = {}
    for i, raw in enumerate(raw_messages):
        if not isinstance(raw, dict) or raw.get("role") not in ROLES:
            raise RequestError(f"messages[{i}] must have a role among {sorted(ROLES)}.", param=f"messages[{i}].role")
        role, (content, images) = raw["role"], _content(raw.get("content"), i)
        if role in ("system", "developer"):
            instructions.append(content)
        elif role == "assistant" and raw.get("tool_calls"):
            calls = []
            for call in raw["tool_calls"]:
                function = call.get("function", {}) if isinstance(call, dict) else {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except json.JSONDecodeError:
                    raise RequestError(f"messages[{i}].tool_calls has arguments that are not JSON.", param=f"messages[{i}]") from None
                call_names[call.get("id", "")] = function.get("name", "")
                calls.append({"name": function.get("name", ""), "arguments": arguments})
            messages.append(Message(role="assistant", content=json.dumps({"calls": calls}, ensure_ascii=False)))
        elif role == "tool":
            name = call_names.get(raw.get("tool_call_id", ""), raw.get("name") or "tool")
            messages.append(Message(role="tool", content=f"{name} returned: {content}", images=images))
        elif role == "assistant":
            text = json.dumps({"final_answer": content}, ensure_ascii=False) if as_steps else content
            messages.append(Message(role="assistant", content=text))
        else:
            messages.append(Message(role="user", content=content, images=images))
    return "\n\n".join(instructions), messages


def _content(content: Any, index: int) -> tuple[str, tuple[Image, ...]]:
    """A message's text and its images (OpenAI `image_url` parts holding base64 data URLs)."""
    if content is None:
        return "", ()
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        raise RequestError(f"messages[{index}].content must be a string or a list of parts.", param=f"messages[{index}].content")
    texts: list[str] = []
    images: list[Image] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            images.append(_data_url_image(part.get("image_url"), index))
        else:
            raise RequestError(f"messages[{index}] has a {kind} part: only text and image_url parts are supported.", param=f"messages[{index}].content")
    return "".join(texts), tuple(images)


def _data_url_image(value: Any, index: int) -> Image:
    url = value.get("url", "") if isinstance(value, dict) else ""
    # The server never fetches URLs (no outbound requests on a client's behalf): images come inline.
    if not url.startswith("data:") or ";base64," not in url:
        raise RequestError(
            f"messages[{index}] has an image_url that is not a base64 data URL; send the image inline as "
            "data:image/png;base64,... (this server does not fetch URLs).", param=f"messages[{index}].content",
        )
    try:
        return to_image(base64.b64decode(url.split(";base64,", 1)[1], validate=True))
    except (ValueError, TypeError) as exc:
        raise RequestError(f"messages[{index}] has an image that cannot be used: {exc}", param=f"messages[{index}].content") from None


def _response_format(raw: Any) -> dict[str, Any] | None:
    if raw is not None and not isinstance(raw, dict):
        raise RequestError("response_format must be an object like {type: 'json_object'}.", param="response_format")
    if raw is None or raw.get("type") == "text":
        return None
    if raw.get("type") == "json_object":
        return {"type": "object"}
    if raw.get("type") == "json_schema":
        schema = (raw.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise RequestError("response_format.json_schema.schema must be a JSON Schema object.", param="response_format")
        return schema
    raise RequestError("response_format.type must be 'text', 'json_object' or 'json_schema'.", param="response_format")
