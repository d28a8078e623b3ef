"""What a model path holds, read from its metadata alone (no weights loaded): for `agentkit models`.

Architecture, context length, size, the chat template and whether it knows about tools, and which
tool-call convention the template uses. The engine reports conventions only; the agent layer maps
one to its tool format (`agentkit.formats.format_for_convention`, what `Agent(tool_format="auto")`
picks for the model).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentkit.engine.loading import resolve_model_path
from agentkit.errors import ModelLoadError

# Markers of the tool-call conventions found in chat templates, most specific first.
TOOL_CALL_FORMATS = [
    ("hermes", "<tool_call>"),  # Hermes, Qwen 2.5/3, many fine-tunes: <tool_call>{json}</tool_call>
    ("pythonic", "func_name1("),  # Llama 3.2/3.3 pythonic templates: [func_name1(params_name1=...), ...]
    ("llama3-json", "<|python_tag|>"),  # Llama 3.1+: JSON after <|python_tag|> / ipython role
    ("llama4-pythonic", "<|python_start|>"),
    ("mistral", "[TOOL_CALLS]"),
    ("functionary", ">>>"),
    ("command-r", "<|START_ACTION|>"),
]


class ModelInfo(BaseModel):
    """A model's identity and chat/tool conventions, as `agentkit models` prints them."""

    path: str
    format: str  # "gguf" or "huggingface"
    architecture: str
    name: str | None = None
    context_length: int | None = None
    layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    has_chat_template: bool = False
    template_mentions_tools: bool = False
    tool_call_format: str = "none"  # one of TOOL_CALL_FORMATS' names, "generic" or "none"


def describe_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model folder's config or a GGUF file's header; raise `ModelLoadError` with the fix.

    Example:
        >>> from agentkit.engine.loading import embedded_gguf_path      # doctest: +SKIP
        >>> describe_model(embedded_gguf_path()).architecture            # doctest: +SKIP
        'llama'
    """
    folder, gguf_file = resolve_model_path(path)
    if gguf_file:
        return _describe_gguf(folder / gguf_file)
    return _describe_folder(folder)


def detect_tool_call_format(template: str | None) -> tuple[bool, str]:
    """(template mentions tools, convention name) for a chat template's source text.

    Example:
        >>> detect_tool_call_format("{% for t in tools %}<tool_call>{{ t }}</tool_call>{% endfor %}")
        (True, 'hermes')
        >>> detect_tool_call_format("{{ '<|im_start|>' + message['content'] }}")
        (False, 'none')
    """
    if not template:
        return False, "none"
    mentions = "tools" in template or "tool_calls" in template
    for name, marker in TOOL_CALL_FORMATS:
        if marker in template:
            return True, name
    return mentions, "generic" if mentions else "none"


def _describe_gguf(path: Path) -> ModelInfo:
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelLoadError("Reading GGUF files needs the `gguf` package: pip install 'agentkit[local]'.") from None
    try:
        reader = GGUFReader(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}). Re-download it.") from exc

    def field(key: str) -> Any:
        item = reader.fields.get(key)
        if item is None:
            return None
        value = item.contents()
        return value

    arch = str(field("general.architecture") or "unknown")
    template = field("tokenizer.chat_template")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    mentions, convention = detect_tool_call_format(template)
    return ModelInfo(
        path=str(path),
        format="gguf",
        architecture=arch,
        name=field("general.name"),
        context_length=_int(field(f"{arch}.context_length")),
        layers=_int(field(f"{arch}.block_count")),
        hidden_size=_int(field(f"{arch}.embedding_length")),
        vocab_size=_int(field(f"{arch}.vocab_size")) or (len(tokens.data) if tokens is not None else None),
        has_chat_template=bool(template),
        template_mentions_tools=mentions,
        tool_call_format=convention,
    )


def _describe_folder(folder: Path) -> ModelInfo:
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ModelLoadError(f"{folder} has no config.json: point at a Hugging Face model folder or a .gguf file.")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON ({exc}). Re-download the model.") from exc
    text = config.get("text_config", config)  # multimodal configs nest the language model's
    template = _folder_template(folder)
    mentions, convention = detect_tool_call_format(template)
    architectures = config.get("architectures") or [config.get("model_type", "unknown")]
    return ModelInfo(
        path=str(folder),
        format="huggingface",
        architecture=str(architectures[0]),
        name=config.get("_name_or_path") or folder.name,
        context_length=_int(text.get("max_position_embeddings")),
        layers=_int(text.get("num_hidden_layers")),
        hidden_size=_int(text.get("hidden_size")),
        vocab_size=_int(text.get("vocab_size")),
        has_chat_template=bool(template),
        template_mentions_tools=mentions,
        tool_call_format=convention,
    )


def _folder_template(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.exists():
        template = json.loads(tokenizer_config.read_text()).get("chat_template")
        if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
            return "\n".join(str(t.get("template", "")) for t in template)
        return template if isinstance(template, str) else None
    return None


def tool_call_convention(template: str | None) -> str | None:
    """The tool-call convention a chat template renders (a `TOOL_CALL_FORMATS` name or "generic"), None if it knows no tools.

    Example:
        >>> tool_call_convention("{% for t in tools %}{{ t }}{% endfor %}<tool_call>")
        'hermes'
        >>> tool_call_convention("{{ messages[0]['content'] }}") is None
        True
    """
    convention = detect_tool_call_format(template)[1]
    return None if convention == "none" else convention


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
