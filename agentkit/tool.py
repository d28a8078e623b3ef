"""`@tool`: a typed, documented Python function becomes a tool the model can call.

The function's signature gives the JSON Schema (through pydantic), its docstring gives the
description and each argument's description. Anything that cannot become a well-defined schema fails
here, at decoration, naming the parameter and the fix.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, TypeAdapter, create_model

from agentkit._docstring import parse_docstring
from agentkit.errors import ToolDefinitionError
from agentkit.schema import RESERVED_TOOL_NAMES, tidy_schema, valid_tool_name


class Tool:
    """A callable tool: a name, a description, a JSON Schema for its arguments, and the function.

    Build one with `@tool`; construct `Tool` directly only for tools whose schema comes from
    elsewhere (e.g. a remote server). Calling a `Tool` calls the underlying function.

    Example:
        >>> @tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add two integers.'''
        ...     return a + b
        >>> add.name, add(2, 3)
        ('add', 5)
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        args_model: type[BaseModel] | None = None,
        timeout: float | None = None,
        max_output_chars: int | None = None,
        max_output_bytes: int | None = None,
        requires_approval: bool = False,
        examples: list[dict[str, Any]] | None = None,
    ) -> None:
        if not valid_tool_name(name):
            raise ToolDefinitionError(
                f"Tool name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-', starting with a "
                f"letter or '_', and not one of {sorted(RESERVED_TOOL_NAMES)}. Pass name='...' to @tool."
            )
        self.fn = fn
        self.name = name
        self.description = description
        self.parameters = parameters
        self.args_model = args_model
        self.timeout = timeout
        self.max_output_chars = max_output_chars
        self.max_output_bytes = max_output_bytes
        self.requires_approval = requires_approval
        self.examples = list(examples or [])
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check and coerce `arguments`; return the keyword arguments to call the function with.

        Raises `pydantic.ValidationError` when they do not fit the schema.
        """
        if self.args_model is None:
            return dict(arguments)
        validated = self.args_model.model_validate(arguments)
        # Only pass what the model sent or what has a default: keep nested models as instances.
        return {field: getattr(validated, field) for field in type(validated).model_fields}


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_output_chars: int | None = None,
    max_output_bytes: int | None = None,
    requires_approval: bool = False,
    examples: list[dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_output_chars: int | None = None,
    max_output_bytes: int | None = None,
    requires_approval: bool = False,
    examples: list[dict[str, Any]] | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function (sync or async) into a `Tool`.

    Use it bare (`@tool`) or with options (`@tool(timeout=5, examples=[{"city": "Paris"}])`).
    `examples` are argument dicts shown to the model in the prompt; `timeout` (seconds),
    `max_output_chars` and `max_output_bytes` (UTF-8) override the registry's defaults for this tool.
    `requires_approval=True` makes every call wait for the agent's `approve` callback (see
    `ToolPolicy`); without one, the call is denied.

    Example:
        >>> from typing import Literal
        >>> @tool
        ... def convert(amount: float, unit: Literal["km", "mi"]) -> float:
        ...     '''Convert a distance to the other unit.
        ...
        ...     Args:
        ...         amount: the distance to convert.
        ...         unit: the unit `amount` is in.
        ...     '''
        ...     return amount / 1.609344 if unit == "km" else amount * 1.609344
        >>> convert.parameters["properties"]["unit"]
        {'description': 'the unit `amount` is in.', 'enum': ['km', 'mi'], 'type': 'string'}
    """

    def decorate(func: Callable[..., Any]) -> Tool:
        return _tool_from_function(
            func,
            name=name,
            description=description,
            timeout=timeout,
            max_output_chars=max_output_chars,
            max_output_bytes=max_output_bytes,
            requires_approval=requires_approval,
            examples=examples,
        )

    return decorate(fn) if fn is not None else decorate


def _tool_from_function(
    fn: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    timeout: float | None,
    max_output_chars: int | None,
    max_output_bytes: int | None,
    requires_approval: bool,
    examples: list[dict[str, Any]] | None,
) -> Tool:
    if isinstance(fn, Tool):
        return fn
    if not callable(fn):
        raise ToolDefinitionError(f"@tool needs a function, got {type(fn).__name__}.")
    tool_name: str = name or str(getattr(fn, "__name__", ""))
    doc_description, arg_docs = parse_docstring(inspect.getdoc(fn))
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolvable forward reference, typo in an annotation...
        raise ToolDefinitionError(
            f"Cannot read the type hints of {tool_name!r}: {exc}. Make every annotation importable "
            "at module level."
        ) from exc

    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        where = f"parameter {param.name!r} of tool {tool_name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star, hint = ("*", "list[str]") if param.kind is param.VAR_POSITIONAL else ("**", "dict[str, str]")
            raise ToolDefinitionError(
                f"{where} is {star}{param.name}: a tool needs named, typed parameters. "
                f"Replace it with a typed list or dict parameter, e.g. `{param.name}: {hint}`."
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"{where} is positional-only: tools are called with keyword arguments. Remove the '/'."
            )
        if param.name not in hints:
            raise ToolDefinitionError(
                f"{where} has no type annotation. Annotate it, e.g. `{param.name}: str`, so the model "
                "knows what to send."
            )
        annotation = hints[param.name]
        _check_annotation(annotation, where)
        field_info = Field(
            default=... if param.default is param.empty else param.default,
            description=arg_docs.get(param.name) or None,
        )
        fields[param.name] = (annotation, field_info)

    model_name = "".join(part.capitalize() for part in re.split(r"[_-]", tool_name) if part) + "Arguments"
    try:
        args_model = create_model(
            model_name, __config__=ConfigDict(extra="forbid"), **fields
        )
        schema = tidy_schema(args_model.model_json_schema())
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"Tool {tool_name!r} has arguments pydantic cannot describe: {exc}") from exc

    return Tool(
        fn,
        name=tool_name,
        description=description if description is not None else doc_description,
        parameters=schema,
        args_model=args_model,
        timeout=timeout,
        max_output_chars=max_output_chars,
        max_output_bytes=max_output_bytes,
        requires_approval=requires_approval,
        examples=examples,
    )


def _check_annotation(annotation: Any, where: str) -> None:
    """Reject types that have no JSON Schema (callables, arbitrary classes) with a precise message."""
    if annotation is Any:
        raise ToolDefinitionError(
            f"{where} is typed `Any`: the model needs a concrete type. Use str, int, float, bool, a "
            "Literal, an Enum, a list/dict of those, or a pydantic model."
        )
    try:
        TypeAdapter(annotation).json_schema()
    except Exception as exc:
        type_name = getattr(annotation, "__name__", repr(annotation))
        raise ToolDefinitionError(
            f"{where} has type {type_name}, which has no JSON Schema ({type(exc).__name__}). Use str, int, "
            "float, bool, a Literal, an Enum, a list/dict of those, or a pydantic model."
        ) from exc
