"""The OpenAI chat-completions request as one pydantic model, checked whole before any work.

Every field has its type and range here, tool and response-format schemas are bounded (see
`agentkit.server.limits`), and cross-field rules (unique tool names, a `tool_choice` that names a
listed tool) run in the same pass, so a request is refused before a generation is spent on it.
Validation errors become one `RequestError`: the deepest failing field as `param`, what is wrong
with it, and how to write it. Unknown fields are ignored, as OpenAI-compatible servers do.

Example:
    >>> parse_request(b'{"messages": [{"role": "user", "content": "Hi"}], "seed": 42}').seed
    42
    >>> try:
    ...     parse_request(b'{"messages": [{"role": "user", "content": "Hi"}], "stream_options": "yes"}')
    ... except RequestError as exc:
    ...     print(exc.status, exc.param)
    400 stream_options
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError, from_json

from agentkit.server.limits import RequestError, ServeLimits, check_schema

Role = Literal["system", "developer", "user", "assistant", "tool"]
MAX_TOOLS = 128  # OpenAI's own limit
JSON_DEPTH = 200  # pydantic_core.from_json's fixed nesting limit
# Schema bounds apply while validating; `create_app(limits=...)` passes its own through the context.
DEFAULT_LIMITS = ServeLimits()

HINTS = {
    "messages": "Send `messages` as a non-empty list of {role, content} objects.",
    "role": "A message's role is one of system, developer, user, assistant or tool.",
    "content": "A message's content is a string or a list of parts; only text and image_url parts are supported: "
               "{type: 'text', text: '...'} or {type: 'image_url', image_url: {url: 'data:image/png;base64,...'}}.",
    "tool_calls": "An assistant message's tool_calls is a list of {id: '...', type: 'function', function: {name: '...', arguments: '{...}'}}.",
    "arguments": "A tool call's arguments is a string holding a JSON object, such as '{\"city\": \"Paris\"}' (json.dumps it).",
    "tool_call_id": "A tool message's tool_call_id is the string id of the call it answers.",
    "tools": "`tools` is a list of {type: 'function', function: {name, description, parameters}}.",
    "parameters": "A function's parameters is a JSON Schema object, such as {type: 'object', properties: {...}}.",
    "tool_choice": "`tool_choice` is 'auto', 'none', 'required' or {type: 'function', function: {name: '...'}}.",
    "response_format": "response_format is {type: 'text'}, {type: 'json_object'} or {type: 'json_schema', json_schema: {name, schema}}.",
    "stream_options": "stream_options is an object such as {include_usage: true}.",
    "stop": "`stop` is a string or a list of non-empty strings.",
    "seed": "`seed` is an integer that fits in 64 bits (signed).",
    "max_tokens": "`max_tokens` must be a positive integer.",
    "max_completion_tokens": "`max_completion_tokens` must be a positive integer.",
    "temperature": "`temperature` is a number between 0 and 2.",
    "top_p": "`top_p` is a number between 0 and 1.",
    "model": "`model` is the served model's name, as GET /v1/models lists it.",
}


class _Strict(BaseModel):
    # strict: no "1" for 1, no true for 1; JSON's 1e400 (inf) and NaN are refused in number fields.
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class ImageUrl(_Strict):
    url: str
    detail: str | None = None


class ContentPart(_Strict):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _has_its_field(self) -> ContentPart:
        if getattr(self, self.type) is None:
            raise _error(f"a {self.type!r} part needs its {self.type!r} field")
        return self


class FunctionCall(_Strict):
    name: str
    arguments: str = "{}"
    _parsed: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _arguments_are_json(self) -> FunctionCall:
        try:  # pydantic's parser: bounded nesting, so a deep string cannot exhaust the stack
            self._parsed = from_json(self.arguments or "{}", allow_inf_nan=False)
        except ValueError as exc:
            raise _error(f"arguments is not JSON ({exc})", param_tail="arguments") from None
        return self

    @property
    def parsed_arguments(self) -> Any:
        return self._parsed


class ToolCall(_Strict):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Strict):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionSpec(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters", mode="after")
    @classmethod
    def _bounded_object_schema(cls, parameters: dict[str, Any] | None, info: Any) -> dict[str, Any] | None:
        if parameters is None:
            return None
        if parameters.get("type", "object") != "object":
            raise _error("parameters must be a JSON Schema of type 'object'")
        _check_schema(parameters, info, local_refs_only=True)
        return parameters


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(_Strict):
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")  # llama-cpp-python's json_object form; not enforced

    @model_validator(mode="after")
    def _schema_when_needed(self, info: Any) -> ResponseFormat:
        if self.type != "json_schema":
            return self
        schema = self.json_schema.schema_ if self.json_schema else None
        if schema is None:
            raise _error("a JSON Schema object is required here: the schema the reply must match", param_tail="json_schema.schema")
        _check_schema(schema, info, local_refs_only=False, param_tail="json_schema.schema")
        return self


class StreamOptions(_Strict):
    include_usage: bool | None = None


class ChatRequest(_Strict):
    """A chat-completions request body (OpenAI's fields that this server implements)."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolSpec] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[Annotated[str, Field(min_length=1)]] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # int64, as OpenAI documents it
    n: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None

    @field_validator("n", mode="after")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n not in (None, 1):
            raise _error("Only n=1 is supported: send one request per completion")
        return n

    @model_validator(mode="after")
    def _tools_agree(self) -> ChatRequest:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise _error("Function names in `tools` must be unique", param="tools")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.name not in names:
            raise _error(f"names function {self.tool_choice.function.name!r}, which is not in `tools` ({names}); name one of them",
                         param="tool_choice")
        if self.tool_choice == "required" and not names:
            raise _error("'required' needs a tool but `tools` is empty; send `tools` or use tool_choice 'auto'", param="tool_choice")
        return self


def parse_request(raw: bytes, limits: ServeLimits = DEFAULT_LIMITS) -> ChatRequest:
    """The body's JSON, validated; raise `RequestError` (400) naming the first problem and its fix."""
    try:  # pydantic's parser refuses nesting past 200 levels instead of recursing until the stack ends
        body = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise RequestError(f"The request body's JSON nests too deeply ({exc}); no request needs over {JSON_DEPTH} levels.") from None
        raise RequestError(f"The request body is not valid JSON: {exc}. Send one JSON object.") from None
    return validate_request(body, limits)


def validate_request(body: Any, limits: ServeLimits = DEFAULT_LIMITS) -> ChatRequest:
    """`body` (parsed JSON) as a `ChatRequest`, or `RequestError`."""
    if not isinstance(body, dict):
        raise RequestError(f"The request body must be a JSON object, not {_json_type(body)}: send {{\"messages\": [...], ...}}.")
    try:
        return ChatRequest.model_validate(body, context={"limits": limits})
    except ValidationError as exc:
        raise _request_error(exc) from None


# -- errors ---------------------------------------------------------------------------------------


def _error(message: str, *, param: str | None = None, param_tail: str | None = None) -> PydanticCustomError:
    """A validation error carrying our own message (and, for model-level rules, the field it is about)."""
    return PydanticCustomError("agentkit", "{message}", {"message": message, "param": param, "tail": param_tail})


def _check_schema(schema: dict[str, Any], info: Any, *, local_refs_only: bool, param_tail: str | None = None) -> None:
    limits = (info.context or {}).get("limits", DEFAULT_LIMITS)
    try:
        check_schema(schema, limits, local_refs_only=local_refs_only)
    except ValueError as exc:
        raise _error(str(exc), param_tail=param_tail) from None


def _request_error(exc: ValidationError) -> RequestError:
    errors = exc.errors(include_url=False)
    # Unions report one error per branch: the branch that got furthest names the real problem.
    error = max(errors, key=lambda e: len(_path(e["loc"])))
    path = _path(error["loc"])
    context = error.get("ctx") or {}
    if error["type"] == "agentkit":
        path = [*path, *(context.get("tail") or "").split(".")] if context.get("tail") else path
        param = context.get("param") or _dotted(path) or None
        return RequestError(f"`{param}`: {context['message']}." if param else f"{context['message']}.", param=param)
    param = _dotted(path)
    hint = next((HINTS[p] for p in reversed(path) if isinstance(p, str) and p in HINTS), "")
    problem = _problem(error)
    return RequestError(f"`{param}`: {problem}. {hint}".strip(), param=param or None)


def _problem(error: Any) -> str:
    if error["type"] == "missing":
        return "a required field is missing"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):  # pydantic names our classes here
        return f"expected a JSON object, got {_json_type(error['input'])}"
    return str(error["msg"])


def _path(loc: tuple[Any, ...]) -> list[Any]:
    """The loc without pydantic's union-branch labels (like 'str' or "literal['auto',...]")."""
    return [p for p in loc if isinstance(p, int) or p in FIELD_NAMES]


def _dotted(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _json_type(value: Any) -> str:
    names = {list: "an array", dict: "an object", str: "a string", bool: "a boolean", int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


FIELD_NAMES = {
    name
    for model in (ImageUrl, ContentPart, FunctionCall, ToolCall, ChatMessage, FunctionSpec, ToolSpec, NamedFunction,
                  NamedToolChoice, JsonSchemaSpec, ResponseFormat, StreamOptions, ChatRequest)
    for field_name, field in model.model_fields.items()
    for name in (field_name, field.alias)
    if name
}
