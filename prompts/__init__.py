"""Prompt templates (jinja2, shipped as package data).

Templates use `StrictUndefined`: a missing variable is an error at render time, never a silently
empty prompt.

Example:
    >>> from agentkit.prompts import render
    >>> render("observation.jinja", name="calculator", content="391", is_error=False)
    'calculator returned: 391'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE_DIR = Path(__file__).parent


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared jinja2 environment for agentkit's templates."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,  # prompts are plain text, not HTML
    )


def render(template: str, **context: Any) -> str:
    """Render one of the package's templates with `context`."""
    return environment().get_template(template).render(**context).strip()


__all__ = ["TEMPLATE_DIR", "environment", "render"]
