"""Frame messages with the model's own chat template; fall back to ChatML when it has none.

Templates disagree on roles: some reject a `tool` role or demand strict user/assistant alternation.
When the model's template refuses the conversation, tool results are re-sent as user messages and
neighbouring messages of the same role are merged, which every template accepts.

Message contents are data, never markup: a tool output (a web page, a file) that contains the text
of a special token such as `<|im_end|>` would otherwise be tokenised as that token and could close
the tool message and open a fake system turn. Such text is defanged with a zero-width space, so it
reads the same but tokenises as plain text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from agentkit.types import Message

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def render_prompt(tokenizer: Any, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
    """The prompt text for `messages`, ending where the assistant's reply starts.

    `tools` (OpenAI-style function specs) are handed to the model's own template, which renders its
    native tool prompt; they are only sent for templates that know tools (see `native_tool_format`).

    Example:
        >>> render_prompt(tokenizer, [Message(role="user", content="hi")])  # doctest: +SKIP
        '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    specials = _special_texts(tokenizer)
    dicts = [{"role": m.role, "content": _defang(m.content, specials)} for m in messages]
    template = getattr(tokenizer, "chat_template", None) or CHATML
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    try:
        return tokenizer.apply_chat_template(dicts, chat_template=template, tokenize=False, add_generation_prompt=True, **extra)
    except Exception:  # noqa: BLE001 - templates raise anything (jinja errors, TemplateError...)
        merged = _merge_roles(dicts)
        try:
            return tokenizer.apply_chat_template(merged, chat_template=template, tokenize=False, add_generation_prompt=True, **extra)
        except Exception:  # noqa: BLE001
            return tokenizer.apply_chat_template(merged, chat_template=CHATML, tokenize=False, add_generation_prompt=True)


def _merge_roles(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    merged: list[dict[str, str]] = []
    for message in messages:
        role = "user" if message["role"] == "tool" else message["role"]
        if merged and merged[-1]["role"] == role:
            merged[-1] = {"role": role, "content": merged[-1]["content"] + "\n\n" + message["content"]}
        else:
            merged.append({"role": role, "content": message["content"]})
    return merged


ZERO_WIDTH_SPACE = "\u200b"


def _defang(text: str, specials: tuple[str, ...]) -> str:
    """Break every special-token text in `text` so the tokenizer sees plain characters."""
    for special in specials:
        if special in text:
            text = text.replace(special, special[0] + ZERO_WIDTH_SPACE + special[1:])
    return text


@lru_cache(maxsize=16)
def _special_texts(tokenizer: Any) -> tuple[str, ...]:
    texts = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            texts.add(str(added.content))
    # Longest first, so a token that contains another is broken as a whole.
    return tuple(sorted((t for t in texts if len(t) > 1), key=len, reverse=True))
