"""OpenAI chat-completions requests in, agentkit prompts and grammars out, and back again.

The server decodes tool calls under agentkit's step grammar: the request's tools become a tool set,
`tool_choice` picks which branches of the step schema are allowed (any tool or an answer, only
calls, one named function), and the generated step is turned back into OpenAI `tool_calls`.
The request arrives validated as a whole (`agentkit.server.request.ChatRequest`); every problem
with it raises `RequestError` with the HTTP status and the OpenAI error shape, before any generation.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, TypedDict

from agentkit.constraints import JsonSchemaConstraint
from agentkit.errors import ToolDefinitionError
from agentkit.formats import StepFormat
from agentkit.images import Image, to_image
from agentkit.prompting import system_prompt
from agentkit.registry import ToolRegistry
from agentkit.server.limits import RequestError
from agentkit.server.request import ChatMessage, ChatRequest, ContentPart, ImageUrl, ResponseFormat, ToolSpec, validate_request
from agentkit.steps import StepLimits, StepParseError
from agentkit.tool import Tool
from agentkit.types import Message

DEFAULT_MAX_TOKENS = 1024
__all__ = ["Plan", "RequestError", "apply_stop", "plan_request", "read_output"]


@dataclass
class Plan:
    """How to answer one request: the prompt, the grammar (if any), and how to read the output back."""

    messages: list[Message]
    constraint: JsonSchemaConstraint | None  # None: free text
    step_format: StepFormat | None  # set when the output is an agentkit step (tools in play)
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False  # streaming: send a last chunk with the token counts


class _PlanOptions(TypedDict):
    """The request's sampling and delivery options, the same whether or not tools are in play."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str]
    stream: bool
    include_usage: bool


def plan_request(body: Any) -> Plan:
    """Validate a chat-completions body (or take a validated `ChatRequest`) and decide the prompt and grammar.

    Raises `RequestError`.

    Example:
        >>> plan = plan_request({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8})
        >>> [m.role for m in plan.messages], plan.constraint, plan.max_tokens
        (['user'], None, 8)
    """
    request = body if isinstance(body, ChatRequest) else validate_request(body)
    max_tokens = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
    temperature = 1.0 if request.temperature is None else request.temperature
    top_p = request.top_p or 1.0
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    stop = [s for s in stop if s]  # stop="" means no stop string
    # The engines seed unsigned generators: a negative int64 seed maps to the same 64 bits, unsigned.
    seed = None if request.seed is None else request.seed % 2**64
    options: _PlanOptions = {
        "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "seed": seed, "stop": stop,
        "stream": bool(request.stream),
        "include_usage": bool(request.stream and request.stream_options and request.stream_options.include_usage),
    }

    tools = _tools(request.tools or [])
    choice = request.tool_choice or ("auto" if tools else "none")
    forced = None if isinstance(choice, str) else choice.function.name
    as_steps = bool(tools) and choice != "none"
    instructions, conversation = _conversation(request.messages, as_steps=as_steps)
    schema: dict[str, Any] | None  # the step grammar's schema, else the response_format's (None: free text)
    if as_steps:
        chosen = [t for t in tools if forced is None or t.name == forced]
        registry = ToolRegistry(chosen)
        limits = StepLimits(max_calls=1 if (forced or request.parallel_tool_calls is False) else 4)
        step_format = StepFormat(registry, limits=limits)
        schema = step_format.grammar_schema()
        if choice != "auto" and "anyOf" in schema:  # required or a named function: calls only, no final answer
            schema = {**schema["anyOf"][0], **({"$defs": schema["$defs"]} if "$defs" in schema else {})}
        prompt = [Message(role="system", content=system_prompt(instructions, registry, step_format)), *conversation]
        return Plan(prompt, JsonSchemaConstraint(json_schema=schema), step_format, **options)

    schema = _response_format(request.response_format)
    prompt = ([Message(role="system", content=instructions)] if instructions else []) + conversation
    return Plan(prompt, None if schema is None else JsonSchemaConstraint(json_schema=schema), None, **options)


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


def _tools(specs: list[ToolSpec]) -> list[Tool]:
    tools: list[Tool] = []
    for i, spec in enumerate(specs):
        parameters = spec.function.parameters or {"type": "object", "properties": {}}
        try:
            tools.append(Tool(_never_called, name=spec.function.name, description=spec.function.description or "", parameters=parameters))
        except ToolDefinitionError as exc:
            raise RequestError(f"`tools[{i}].function.name`: {exc}", param=f"tools[{i}].function.name") from None
    return tools


def _never_called(**_: Any) -> None:
    """The server only decodes calls; the client runs its own functions."""


def _conversation(raw_messages: list[ChatMessage], *, as_steps: bool) -> tuple[str, list[Message]]:
    """System/developer text (joined) and the rest as agentkit messages, tool calls as step JSON.

    With `as_steps`, earlier assistant answers are shown in the step format the model must write.
    """
    instructions: list[str] = []
    messages: list[Message] = []
    call_names: dict[str, str] = {}
    for i, raw in enumerate(raw_messages):
        content, images = _content(raw.content, i)
        if raw.role in ("system", "developer"):
            instructions.append(content)
        elif raw.role == "assistant" and raw.tool_calls:
            calls = []
            for call in raw.tool_calls:
                call_names[call.id or ""] = call.function.name
                calls.append({"name": call.function.name, "arguments": call.function.parsed_arguments})
            messages.append(Message(role="assistant", content=json.dumps({"calls": calls}, ensure_ascii=False)))
        elif raw.role == "tool":
            name = call_names.get(raw.tool_call_id or "", raw.name or "tool")
            messages.append(Message(role="tool", content=f"{name} returned: {content}", images=images))
        elif raw.role == "assistant":
            text = json.dumps({"final_answer": content}, ensure_ascii=False) if as_steps else content
            messages.append(Message(role="assistant", content=text))
        else:
            messages.append(Message(role="user", content=content, images=images))
    return "\n\n".join(instructions), messages


def _content(content: str | list[ContentPart] | None, index: int) -> tuple[str, tuple[Image, ...]]:
    """A message's text and its images (OpenAI `image_url` parts holding base64 data URLs)."""
    if content is None or isinstance(content, str):
        return content or "", ()
    texts = [part.text or "" for part in content if part.type == "text"]
    images = [_data_url_image(part.image_url, index) for part in content if part.image_url is not None and part.type == "image_url"]
    return "".join(texts), tuple(images)


def _data_url_image(value: ImageUrl, index: int) -> Image:
    url = value.url
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


def _response_format(raw: ResponseFormat | None) -> dict[str, Any] | None:
    if raw is None or raw.type == "text":
        return None
    if raw.type == "json_object":
        return {"type": "object"}
    assert raw.json_schema is not None and raw.json_schema.schema_ is not None  # ResponseFormat checked it
    return raw.json_schema.schema_
