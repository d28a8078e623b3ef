"""Split a function's docstring into a description and per-argument descriptions.

Understands Google style (`Args:` sections) and reST style (`:param name: text`), the two styles
tool authors actually write.
"""

from __future__ import annotations

import inspect
import re

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Returns|Return|Raises|Yields|Example|Examples|Note|Notes)\s*:\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Return `(description, {argument: description})` from a docstring.

    Example:
        >>> parse_docstring('''Add numbers.
        ...
        ...     Args:
        ...         a: the first number.
        ...         b: the second.
        ...     ''')
        ('Add numbers.', {'a': 'the first number.', 'b': 'the second.'})
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    section_indent = 0
    arg_indent: dict[str, int] = {}  # indent of each argument's first line, to tell args from wrapped text
    for raw in lines:
        line = raw.strip()
        rest = _REST_PARAM.match(line)
        if rest:
            current, section = rest.group(1), "rest"
            args[current] = rest.group(2).strip()
            continue
        if line.startswith(":"):  # other reST fields (:returns:, :raises:) end a param
            current, section = None, "rest-other"
            continue
        header = _SECTION.match(line)
        if header:
            section = "args" if header.group(1) in {"Args", "Arguments", "Parameters", "Params"} else "other"
            current = None
            section_indent = len(raw) - len(raw.lstrip())
            continue
        if section is None:
            description.append(line)
        elif section == "args":
            indent = len(raw) - len(raw.lstrip())
            match = _ARG_LINE.match(line)
            if match and indent > section_indent and (current is None or indent <= arg_indent[current]):
                current = match.group(1).lstrip("*")
                args[current] = match.group(3).strip()
                arg_indent[current] = indent
            elif line and current is not None:
                args[current] = f"{args[current]} {line}".strip()
            elif not line:
                continue
        elif section == "rest" and current is not None and line:
            args[current] = f"{args[current]} {line}".strip()
    text = "\n".join(description).strip()
    # Keep paragraphs but join wrapped lines: the prompt shows a compact description. Only ASCII
    # whitespace is layout; an ideographic or no-break space inside the text is kept.
    paragraphs = [" ".join(re.split(r"[ \t\r\n\f\v]+", p.strip(" \t\r\n\f\v"))) for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    return "\n\n".join(paragraphs), args
