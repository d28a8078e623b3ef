"""Frame messages with the model's own chat template; fall back to ChatML when it has none.

Templates disagree on roles: some reject a `tool` role or demand strict user/assistant alternation.
When the model's template refuses the conversation, tool results are re-sent as user messages and
neighbouring messages of the same role are merged, which every template accepts.
"""

from __future__ import annotations

from typing import Any

from agentkit.types import Message

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def render_prompt(tokenizer: Any, messages: list[Message]) -> str:
    """The prompt text for `messages`, ending where the assistant's reply starts.

    Example:
        >>> render_prompt(tokenizer, [Message(role="user", content="hi")])  # doctest: +SKIP
        '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    dicts = [{"role": m.role, "content": m.content} for m in messages]
    template = getattr(tokenizer, "chat_template", None) or CHATML
    try:
        return tokenizer.apply_chat_template(dicts, chat_template=template, tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - templates raise anything (jinja errors, TemplateError...)
        merged = _merge_roles(dicts)
        try:
            return tokenizer.apply_chat_template(merged, chat_template=template, tokenize=False, add_generation_prompt=True)
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
