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
from typing import Any, cast

from agentkit.types import Message

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def render_prompt(tokenizer: Any, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
    """The prompt text for `messages`, ending where the assistant's reply starts.

    `tools` (OpenAI-style function specs) are handed to the model's own template, which renders its
    native tool prompt; they are only sent for templates that know tools (see `tool_call_convention`).

    Example:
        >>> render_prompt(tokenizer, [Message(role="user", content="hi")])  # doctest: +SKIP
        '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    specials = _special_texts(tokenizer)
    dicts = [{"role": m.role, "content": _defang(m.content, specials)} for m in messages]
    template = getattr(tokenizer, "chat_template", None) or CHATML
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    try:
        return _template_text(tokenizer, dicts, chat_template=template, **extra)
    except Exception:
        merged = _merge_roles(dicts)
        try:
            return _template_text(tokenizer, merged, chat_template=template, **extra)
        except Exception:
            return _template_text(tokenizer, merged, chat_template=CHATML)


def render_multimodal_prompt(processor: Any, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
    """The prompt text for a vision-language model: each message's images as placeholders before its text.

    The processor's chat template gets OpenAI-style content parts (`{"type": "image"}`,
    `{"type": "text"}`); without one, the tokenizer's template gets the processor's image token
    in the text. The processor later expands each placeholder into the image's patch tokens.

    Example:
        >>> render_multimodal_prompt(processor, [Message(role="user", content="What is this?", images=(img,))])  # doctest: +SKIP
        '<|im_start|>user\\n<image>What is this?<|im_end|>\\n<|im_start|>assistant\\n'
    """
    tokenizer = processor.tokenizer
    specials = _special_texts(tokenizer)
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    if getattr(processor, "chat_template", None):
        parts = [
            {"role": m.role, "content": [*({"type": "image"} for _ in m.images), {"type": "text", "text": _defang(m.content, specials)}]}
            for m in messages
        ]
        try:
            return _template_text(processor, parts, **extra)
        except Exception:
            merged: list[dict[str, Any]] = []
            for part in parts:
                role = "user" if part["role"] == "tool" else part["role"]
                if merged and merged[-1]["role"] == role:
                    merged[-1] = {"role": role, "content": merged[-1]["content"] + part["content"]}
                else:
                    merged.append({"role": role, "content": list(part["content"])})
            return _template_text(processor, merged, **extra)
    token = getattr(processor, "image_token", None) or "<image>"
    texted = [Message(role=m.role, name=m.name, content=token * len(m.images) + _defang(m.content, specials)) for m in messages]
    # The placeholders were added after defanging, so they stay real image tokens.
    return render_prompt(_Undefanged(tokenizer), texted, tools=tools)


def _template_text(templater: Any, conversation: list[dict[str, Any]], **options: Any) -> str:
    """`templater.apply_chat_template` of `conversation` as text, ending where the assistant's reply starts."""
    text = templater.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True, **options)
    return cast(str, text)  # tokenize=False: text, not token ids


class _Undefanged:
    """A tokenizer proxy whose special texts are empty, so `render_prompt` leaves content as it is."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.all_special_tokens: list[str] = []
        self.added_tokens_decoder: dict[int, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


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


def special_token_texts(tokenizer: Any) -> set[str]:
    """The texts of `tokenizer`'s special tokens: its named ones and every added token marked special.

    Non-special added tokens (Qwen2.5's `<tool_call>`) are ordinary text and not among them.

    Example:
        >>> class Tok: all_special_tokens = ["<|im_end|>"]; added_tokens_decoder = {}
        >>> special_token_texts(Tok())
        {'<|im_end|>'}
    """
    texts = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            texts.add(str(added.content))
    return texts


@lru_cache(maxsize=16)
def _special_texts(tokenizer: Any) -> tuple[str, ...]:
    # Longest first, so a token that contains another is broken as a whole.
    return tuple(sorted((t for t in special_token_texts(tokenizer) if len(t) > 1), key=len, reverse=True))
