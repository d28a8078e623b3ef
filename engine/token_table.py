"""llguidance's token table for a Hugging Face tokenizer, with the tokenizer's own special tokens, cached on disk.

llguidance marks every added token special (a special token matches no text, only its own `<[id]>`
in a grammar). But tokenizers also add ordinary tokens: Qwen2.5's `<tool_call>` and `</tool_call>`
are added with `special: false`, are matched in text by the tokenizer, and are what the model writes.
Treated as special, the model's one-token `<tool_call>` was masked and jump-forward (which tokenises
forced text with the real tokenizer) produced `</tool_call>` as the added token, which the matcher
then refused. So the table is rebuilt here: the same bytes for every token, special only where the
tokenizer says so, and forced text tokenised the way the tokenizer tokenises a reply.

Building it means reading the whole vocabulary through llguidance's own converter: ~2.5 s for a
150K-token vocabulary, most of a model's second load. With `cache` (the llama.cpp engine passes one
per GGUF) the table's bytes are saved once as a numpy archive and later loads take ~0.6 s.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def grammar_tokenizer(hf_tokenizer: Any, *, cache: Path | None = None) -> Any:
    """An `llguidance.LLTokenizer` for `hf_tokenizer`, special tokens exactly the tokenizer's own.

    `cache`: a file to keep the table in (read when it matches the tokenizer, else rebuilt and written).

    Example:
        >>> table = grammar_tokenizer(qwen_tokenizer)   # doctest: +SKIP
        >>> table.is_special_token(151657), table.is_special_token(151645)  # <tool_call>, <|im_end|>  # doctest: +SKIP
        (False, True)
    """
    import llguidance

    eos = hf_tokenizer.eos_token_id
    table = _TokenTable.load(cache, hf_tokenizer) if cache is not None else None
    if table is None and getattr(hf_tokenizer, "needs_cached_table", False):
        raise FileNotFoundError(f"No token table cached at {cache} for this tokenizer; it is built from a Hugging Face tokenizer.")
    if table is None:
        import llguidance.hf

        base = llguidance.hf.from_tokenizer(hf_tokenizer, eos_token=eos)
        added = getattr(hf_tokenizer, "added_tokens_decoder", None) or {}
        ordinary = {i for i, token in added.items() if not getattr(token, "special", True) and i < base.vocab_size}
        if cache is None and not any(base.is_special_token(i) for i in ordinary):
            return base  # nothing to correct and nothing to save: llguidance's own table
        table = _TokenTable.from_llguidance(hf_tokenizer, base, ordinary)
        if cache is not None:
            table.save(cache)
    # the ignore: llguidance's stub names its TokenizerWrapper class; it takes any object of that interface
    return llguidance.LLTokenizer(table, eos_token=eos)  # type: ignore[arg-type]


class _TokenTable:
    """The `llguidance.TokenizerWrapper` interface: every token's bytes, the special ids, and a tokenize call."""

    is_tokenizer_wrapper = True

    def __init__(self, hf_tokenizer: Any, tokens: list[bytes], special_token_ids: list[int]) -> None:
        self.eos_token_id = hf_tokenizer.eos_token_id
        self.bos_token_id = hf_tokenizer.bos_token_id
        self.tokens = tokens
        self.special_token_ids = special_token_ids
        self._hf = hf_tokenizer

    @classmethod
    def from_llguidance(cls, hf_tokenizer: Any, base: Any, ordinary: set[int]) -> _TokenTable:
        """llguidance's table (`base`) with the `ordinary` added tokens made plain text."""
        tokens = [base.decode_bytes([i]) for i in range(base.vocab_size)]
        special = [i for i in range(base.vocab_size) if base.is_special_token(i) and i not in ordinary]
        return cls(hf_tokenizer, tokens, special)

    @classmethod
    def load(cls, path: Path, hf_tokenizer: Any) -> _TokenTable | None:
        """The table saved at `path`, or None when there is none or it was made for another tokenizer."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                lengths, blob, special = saved["lengths"], saved["blob"].tobytes(), saved["special"].tolist()
                eos, size = int(saved["eos"]), int(saved["size"])
        except (OSError, KeyError, ValueError):
            return None
        if eos != _or_minus_one(hf_tokenizer.eos_token_id) or size != len(hf_tokenizer) or lengths.sum() != len(blob):
            return None  # another tokenizer under the same key (edited in place): rebuild
        ends = np.cumsum(lengths).tolist()
        tokens = [blob[end - n:end] for n, end in zip(lengths.tolist(), ends)]
        return cls(hf_tokenizer, tokens, special)

    def save(self, path: Path) -> None:
        """Write the table to `path` atomically; a read-only cache is skipped (the table is still good)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".npz", dir=path.parent)
            with os.fdopen(fd, "wb") as file:
                np.savez(
                    file,
                    lengths=np.array([len(t) for t in self.tokens], dtype=np.int32),
                    blob=np.frombuffer(b"".join(self.tokens), dtype=np.uint8),
                    special=np.array(self.special_token_ids, dtype=np.int64),
                    eos=np.int64(_or_minus_one(self.eos_token_id)),
                    size=np.int64(len(self._hf)),
                )
            os.replace(tmp, path)
        except OSError:
            pass

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):  # llguidance asks for bytes only when they are valid UTF-8
            text = text.decode("utf-8")
        # split_special_tokens: text never becomes a special token; non-special added tokens still match.
        return list(self._hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def _or_minus_one(token_id: int | None) -> int:
    return -1 if token_id is None else int(token_id)
