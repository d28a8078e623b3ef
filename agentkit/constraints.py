"""What a reply's decoding is held to: one JSON Schema, or one Lark grammar (or nothing: free decoding).

`GenerationRequest.constraint` holds one of these. A backend that can enforce it (the local engines
compile it with llguidance) guarantees a reply that parses; one that cannot decodes freely and the
agent parses what comes back. The agent layer builds constraints (each tool format's
`constraint()`), the engines compile them: this module imports neither, so neither imports the other.

Example:
    >>> from pydantic import TypeAdapter
    >>> constraint = JsonSchemaConstraint(json_schema={"type": "integer"})
    >>> constraint.model_dump()
    {'kind': 'json_schema', 'json_schema': {'type': 'integer'}, 'whitespace_flexible': False, 'item_separator': ', ', 'key_separator': ': '}
    >>> TypeAdapter(Constraint).validate_python({"kind": "lark", "grammar": 'start: "yes" | "no"'})
    LarkConstraint(kind='lark', grammar='start: "yes" | "no"')
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, model_validator


class JsonSchemaConstraint(BaseModel):
    """The reply is one JSON value that satisfies `json_schema`, written with the given whitespace.

    The defaults write JSON exactly as `json.dumps` does (`", "` and `": "`, no other whitespace), so
    few-shot examples rendered with `json.dumps` look like what the model is made to write, and a
    model cannot pad a reply with newlines until the token limit. With `whitespace_flexible` the
    separators default to "," and ":" and any JSON whitespace may surround them; separators given
    explicitly are written exactly as given. An `x-guidance` object inside the schema itself
    (llguidance's options) takes precedence over these fields.

    Example:
        >>> JsonSchemaConstraint(json_schema={"type": "object"}, whitespace_flexible=True).whitespace()
        {'whitespace_flexible': True, 'item_separator': ',', 'key_separator': ':'}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any]
    whitespace_flexible: bool = False  # True: any JSON whitespace between tokens; False: only the separators
    item_separator: str = ", "  # between array items and between object members
    key_separator: str = ": "  # between an object key and its value

    @model_validator(mode="before")
    @classmethod
    def _separators_follow_flexibility(cls, data: Any) -> Any:
        # llguidance writes separators literally: ", " would leave a flexible constraint no flexibility.
        if isinstance(data, dict) and data.get("whitespace_flexible"):
            return {"item_separator": ",", "key_separator": ":", **data}
        return data

    def whitespace(self) -> dict[str, Any]:
        """The whitespace options, as llguidance's JSON compiler takes them (`x-guidance`)."""
        return {"whitespace_flexible": self.whitespace_flexible, "item_separator": self.item_separator, "key_separator": self.key_separator}

    def lark_rule(self) -> str:
        """This constraint as a Lark `%json` lexeme, to embed in a `LarkConstraint`'s grammar.

        Example:
            >>> JsonSchemaConstraint(json_schema={"type": "boolean"}).lark_rule()
            '%json {"x-guidance": {"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}, "type": "boolean"}'
        """
        return "%json " + json.dumps({"x-guidance": self.whitespace(), **self.json_schema}, ensure_ascii=False)


class LarkConstraint(BaseModel):
    """The reply is a sentence of `grammar`: Lark in llguidance's dialect (github.com/guidance-ai/llguidance).

    Used for replies that are not one JSON value, such as `<tool_call>{...}</tool_call>` or
    `[f(a=1)]`. JSON inside it is written with `%json {schema}` lexemes (`JsonSchemaConstraint.lark_rule`),
    which carry their own whitespace options.

    Example:
        >>> LarkConstraint(grammar='start: "[" /[a-z]+/ "]"').kind
        'lark'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["lark"] = "lark"
    grammar: str


def _kind(value: Any) -> Any:
    """The `kind` of a constraint or of its dict form; None (a clear error) when there is none."""
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


# One tagged union: `kind` says which constraint it is, so a JSON form (a trace, an HTTP body) reads back
# to the same type. A dict without a known kind fails with a message naming the two forms.
Constraint = Annotated[
    Annotated[JsonSchemaConstraint, Tag("json_schema")] | Annotated[LarkConstraint, Tag("lark")],
    Discriminator(
        _kind,
        custom_error_type="constraint_kind",
        custom_error_message=(
            "A constraint needs kind 'json_schema' (with a json_schema object) or kind 'lark' (with a grammar "
            "string): build one with JsonSchemaConstraint(json_schema=...) or LarkConstraint(grammar=...)."
        ),
    ),
]

__all__ = ["Constraint", "JsonSchemaConstraint", "LarkConstraint"]
