"""The GGUF's own vocabulary, as llama.cpp has already loaded it, behind the tokenizer calls the llama.cpp engine makes.

The llama.cpp engine used to tokenise with the Hugging Face tokenizer built from the GGUF's metadata.
That is ~200 MB of a process that otherwise holds little besides the mapped weights (transformers'
import ~40 MB, the Rust tables of Qwen's 152K tokens and merges ~150 MB): a sixth of the 1.5B's
peak RSS. llama.cpp reads the same vocabulary with the model, so once a GGUF's two tokenisers were
checked to agree (`profile_if_same`: ids with and without special tokens parsed, decoded text, the
chat template's rendering, on a probe of scripts, digits, whitespace, code and special tokens), later
loads tokenise with llama.cpp and never import transformers. The HF tokenizer stays the reference:
it is what a first load uses, and the profile (its special tokens, chat template) comes from it.

Chat templates render the way transformers renders them (a sandboxed jinja2 environment with
`trim_blocks`/`lstrip_blocks`, loop controls, `tojson` without HTML escaping, `raise_exception`,
`strftime_now`, the special tokens as variables), so prompts are identical either way.

Example:
    >>> tokenizer = VocabTokenizer(llama, profile)                    # doctest: +SKIP
    >>> tokenizer("Hello <tool_call>", add_special_tokens=False)["input_ids"]  # doctest: +SKIP
    [9707, 220, 151657]
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkit.engine.chat import special_token_texts

if TYPE_CHECKING:
    from agentkit.engine.llama_context import LlamaContext

PROFILE_VERSION = 1
_PROBE_TEXTS = (
    "Hello, <tool_call> wörld 123!\n\t{\"a\": [1, 2]} 日本 </tool_call>",
    "   leading spaces\n\n\n  trailing   \r\n\r\n",
    "The year 2026: 12345678; x=3.14159, y=-0.5e10, 1,000,000.00 $ € £",
    "def f(x):\n    return x**2  # comment\n```json\n{}\n```",
    "Ünïcödé — “quotes” … ñ ß 東京 القاهرة 한국어 Русский 🚆👍🏽",
    "I'm don't we'll they've https://example.com/a?b=c&d=e#f ALLCAPS MiXeD",
)
_PROBE_CHAT = [
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <b> 2 + 2?"},
    {"role": "assistant", "content": "4."}, {"role": "tool", "content": "{\"ok\": true}"}, {"role": "user", "content": "Thanks"},
]
_PROBE_TOOLS = [{"type": "function", "function": {"name": "f", "description": "Does f.", "parameters": {
    "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}]


class VocabTokenizer:
    """llama.cpp's tokeniser for a loaded GGUF, with the Hugging Face tokenizer interface the engine uses.

    `profile` is what the checked HF tokenizer said about itself (`profile_if_same`): its chat
    template, special tokens and size. Valid while `llama` (a `LlamaContext`) is open.
    """

    needs_cached_table = True  # the grammar's token table is built from an HF tokenizer, then read from disk

    def __init__(self, llama: LlamaContext, profile: dict[str, Any]) -> None:
        self._llama = llama
        self.chat_template: str | None = profile["chat_template"]
        self.special_tokens_map: dict[str, str] = dict(profile["special_tokens_map"])
        self.all_special_tokens: list[str] = list(profile["special_texts"])
        self.eos_token_id: int | None = profile["eos_token_id"]
        self.bos_token_id: int | None = profile["bos_token_id"]
        self._size: int = profile["size"]

    def __len__(self) -> int:
        return self._size

    def __call__(self, text: str, *, add_special_tokens: bool = False, split_special_tokens: bool = False) -> dict[str, list[int]]:
        """`{"input_ids": ids}` of `text`; special-token texts become their tokens unless `split_special_tokens`.

        No BOS is ever added (`add_special_tokens` is accepted for the HF signature): the chat
        template writes whatever its model needs, and the engine tokenises rendered prompts.
        """
        return {"input_ids": self._llama.tokenize(text, special=not split_special_tokens)}

    def decode(self, ids: list[int], *, skip_special_tokens: bool = False) -> str:
        """The text of `ids` (special tokens written out unless `skip_special_tokens`)."""
        return self._llama.detokenize(list(ids), special=not skip_special_tokens)

    def apply_chat_template(
        self, conversation: list[dict[str, Any]], *, chat_template: str | None = None, tokenize: bool = False,
        add_generation_prompt: bool = False, tools: list[dict[str, Any]] | None = None, **variables: Any,
    ) -> str | list[int]:
        """The conversation rendered by the chat template, as transformers renders it."""
        template = chat_template or self.chat_template
        if template is None:
            raise ValueError("This GGUF has no chat template; pass chat_template=.")
        text = _compile(template).render(
            messages=conversation, tools=tools, documents=None, add_generation_prompt=add_generation_prompt,
            **{**self.special_tokens_map, **variables},
        )
        return self(text)["input_ids"] if tokenize else text


def profile_if_same(hf_tokenizer: Any, llama: LlamaContext) -> dict[str, Any] | None:
    """What `VocabTokenizer` needs from `hf_tokenizer`, or None when llama.cpp tokenises `llama`'s GGUF differently.

    Compared on a probe: ids with special texts parsed and split, decoded text, the chat template
    rendered with and without tools (by transformers and by `VocabTokenizer`), and the special ids.
    """
    profile = {
        "version": PROFILE_VERSION,
        "chat_template": getattr(hf_tokenizer, "chat_template", None),
        "special_tokens_map": {k: v for k, v in hf_tokenizer.special_tokens_map.items() if isinstance(v, str)},
        "special_texts": sorted(special_token_texts(hf_tokenizer)),
        "eos_token_id": hf_tokenizer.eos_token_id,
        "bos_token_id": hf_tokenizer.bos_token_id,
        "size": len(hf_tokenizer),
    }
    ours = VocabTokenizer(llama, profile)
    if (len(hf_tokenizer), hf_tokenizer.eos_token_id) != (llama.n_vocab, llama.end_of_sequence_id()):
        return None
    texts = [*_PROBE_TEXTS, *(f"a{s}b {s}\n" for s in profile["special_texts"])]
    for text in texts:
        for split in (False, True):
            expected = list(hf_tokenizer(text, add_special_tokens=False, split_special_tokens=split)["input_ids"])
            if ours(text, split_special_tokens=split)["input_ids"] != expected:
                return None
            if ours.decode(expected) != hf_tokenizer.decode(expected, skip_special_tokens=False):
                return None
    if profile["chat_template"] is not None:
        for tools in (None, _PROBE_TOOLS):
            if _render(hf_tokenizer, tools) != _render(ours, tools):
                return None
    return profile


def load_profile(path: Path) -> dict[str, Any] | None:
    """The profile saved at `path` by `save_profile`, None when there is none (or another version's)."""
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return profile if isinstance(profile, dict) and profile.get("version") == PROFILE_VERSION else None


def save_profile(path: Path, profile: dict[str, Any]) -> None:
    """Write `profile` to `path` atomically; a read-only cache is skipped (the next load checks again)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(profile, file, ensure_ascii=False)
        os.replace(tmp, path)
    except OSError:
        pass


def _render(tokenizer: Any, tools: list[dict[str, Any]] | None) -> str:
    try:
        return str(tokenizer.apply_chat_template(_PROBE_CHAT, tokenize=False, add_generation_prompt=True, tools=tools))
    except Exception as exc:
        return f"error: {type(exc).__name__}"


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    """transformers' chat-template environment (`chat_template_utils._compile_jinja_template`), without its
    `{% generation %}` tracker (the engine never asks for assistant masks: the tag renders its body)."""
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generation(Extension):
        tags = {"generation"}  # noqa: RUF012  # jinja2 declares it as a plain attribute

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body).set_lineno(lineno)

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    class _Namespace(jinja2.utils.Namespace):
        def __setitem__(self, name: str, value: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"Chat templates cannot store underscore-prefixed attributes, got {name!r}.")
            super().__setitem__(name, value)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["dict"] = dict
    env.globals["namespace"] = _Namespace
    return env.from_string(template)

