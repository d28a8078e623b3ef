"""Grammar masks: JSON Schema -> token-level matcher, and applying its mask to logits.

Backed by llguidance: it compiles a schema in about a millisecond (no minutes-long compile for long
string bounds) and computes a token mask in tens of microseconds, which is noise next to a forward pass.
Compiled grammars are cached by schema hash, so a tool set is compiled once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from agentkit.errors import GrammarError
from agentkit.steps import JSON_OPTIONS



class GrammarCompiler:
    """Compiles JSON Schemas into llguidance matchers for one tokenizer, with an LRU cache.

    Example:
        >>> compiler = GrammarCompiler(hf_tokenizer)                       # doctest: +SKIP
        >>> matcher = compiler.matcher({"type": "object", "properties": {}})  # doctest: +SKIP
    """

    def __init__(self, hf_tokenizer: Any, *, cache_size: int = 64) -> None:
        import llguidance

        self._llguidance = llguidance
        self.tokenizer = grammar_tokenizer(hf_tokenizer)
        self.vocab_size = self.tokenizer.vocab_size
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self.compilations = 0  # how many schemas were actually compiled (tests check the cache works)
        self._lock = threading.Lock()  # engines serve concurrent requests

    def grammar(self, schema: dict[str, Any] | str) -> str:
        """Return the compiled grammar for a JSON Schema (dict) or a Lark grammar (str), cached.

        Lark grammars use llguidance's dialect and may embed schemas with `%json { ... }`.
        """
        is_lark = isinstance(schema, str)
        source = schema if is_lark else json.dumps(schema, sort_keys=True)
        key = ("lark:" if is_lark else "json:") + hashlib.sha256(source.encode()).hexdigest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        LLMatcher = self._llguidance.LLMatcher
        try:
            grammar = LLMatcher.grammar_from_lark(schema) if is_lark else LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)
        except ValueError as exc:  # a Lark syntax error
            raise GrammarError(f"The step grammar cannot be parsed: {exc}. Check the tool argument types.") from None
        is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar, self.tokenizer)
        if is_error:
            raise GrammarError(f"The step schema cannot be compiled into a grammar: {'; '.join(messages)}. Check the tool argument types.")
        with self._lock:
            self.compilations += 1
            self._cache[key] = grammar
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return grammar

    def matcher(self, schema: dict[str, Any] | str) -> Any:
        """A fresh `llguidance.LLMatcher` positioned at the start of `schema` (a JSON Schema or Lark text)."""
        matcher = self._llguidance.LLMatcher(self.tokenizer, self.grammar(schema), log_level=1)
        if matcher.is_error():
            raise GrammarError(f"The grammar failed to start: {matcher.get_error()}")
        return matcher


def grammar_tokenizer(hf_tokenizer: Any) -> Any:
    """llguidance's token table for `hf_tokenizer`, with special tokens exactly the tokenizer's own.

    llguidance marks every added token special (a special token matches no text, only its own
    `<[id]>` in a grammar). But tokenizers also add ordinary tokens: Qwen2.5's `<tool_call>` and
    `</tool_call>` are added with `special: false`, are matched in text by the tokenizer, and are what
    the model writes. Treated as special, the model's one-token `<tool_call>` was masked and
    jump-forward (which tokenises forced text with the real tokenizer) produced `</tool_call>` as the
    added token, which the matcher then refused. So the table is rebuilt here: the same bytes for every
    token, special only where the tokenizer says so, and forced text tokenised the way the tokenizer
    tokenises a reply (non-special added tokens matched, special ones never made from text).

    Example:
        >>> table = grammar_tokenizer(qwen_tokenizer)   # doctest: +SKIP
        >>> table.is_special_token(151657), table.is_special_token(151645)  # <tool_call>, <|im_end|>  # doctest: +SKIP
        (False, True)
    """
    import llguidance
    import llguidance.hf

    eos = hf_tokenizer.eos_token_id
    base = llguidance.hf.from_tokenizer(hf_tokenizer, eos_token=eos)
    added = getattr(hf_tokenizer, "added_tokens_decoder", None) or {}
    ordinary = {i for i, token in added.items() if not getattr(token, "special", True) and i < base.vocab_size}
    if not any(base.is_special_token(i) for i in ordinary):
        return base  # nothing to correct: keep llguidance's own table
    return llguidance.LLTokenizer(_TokenTable(hf_tokenizer, base, ordinary), eos_token=eos)


class _TokenTable:
    """The `llguidance.TokenizerWrapper` interface: every token's bytes, the special ids, and a tokenize call."""

    def __init__(self, hf_tokenizer: Any, base: Any, ordinary: set[int]) -> None:
        self.eos_token_id = hf_tokenizer.eos_token_id
        self.bos_token_id = hf_tokenizer.bos_token_id
        self.tokens = [base.decode_bytes([i]) for i in range(base.vocab_size)]
        self.special_token_ids = [i for i in range(base.vocab_size) if base.is_special_token(i) and i not in ordinary]
        self.is_tokenizer_wrapper = True
        self._hf = hf_tokenizer

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):  # llguidance asks for bytes only when they are valid UTF-8
            text = text.decode("utf-8")
        # split_special_tokens: text never becomes a special token; non-special added tokens still match.
        return list(self._hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


class TokenMask:
    """A reusable bitmask buffer for one sequence: fill it from a matcher, apply it to logits."""

    def __init__(self, vocab_size: int, *, pin_memory: bool = False) -> None:
        self.vocab_size = vocab_size
        # Pinned on CUDA so the copy to the GPU is truly asynchronous. The mask for the next token is
        # computed on the CPU while the GPU still runs the forward pass that was just launched
        # (kernel launches return at once); the only host sync per token is reading the sampled id.
        self.bits = torch.zeros((1, (vocab_size + 31) // 32), dtype=torch.int32, pin_memory=pin_memory)

    def fill(self, matcher: Any) -> None:
        row = self.bits[0]
        matcher.unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * row.element_size())

    def allowed(self, device: torch.device) -> torch.Tensor:
        """Boolean vector over the vocabulary: True where the grammar allows the token."""
        bits = self.bits.to(device, non_blocking=True)
        return ((bits.unsqueeze(-1) & _bit_values(device)) != 0).reshape(-1)[: self.vocab_size]

    def apply(self, logits: Any) -> Any:
        """Set disallowed logits to -inf in place (logits: 1-D over the model's vocabulary).

        A numpy array (the llama.cpp engine's logits) is masked with numpy: several times faster
        than torch's small-tensor ops on a CPU, and the mask must cost little next to a 10 ms step.
        """
        if isinstance(logits, np.ndarray):
            allowed = np.unpackbits(self.bits.numpy().view(np.uint8), bitorder="little")[: self.vocab_size].view(bool)
            n = min(logits.shape[-1], allowed.shape[0])
            np.putmask(logits[:n], ~allowed[:n], -np.inf)
            logits[n:] = -np.inf
            return logits
        allowed = self.allowed(logits.device)
        n = min(logits.shape[-1], allowed.shape[0])
        logits[..., :n].masked_fill_(~allowed[:n], float("-inf"))
        if logits.shape[-1] > n:  # the model's embedding is padded past the tokenizer's vocabulary
            logits[..., n:] = float("-inf")
        return logits


@lru_cache(maxsize=8)
def _bit_values(device: torch.device) -> torch.Tensor:
    """The 32 single-bit int32 values, made once per device (not copied to the GPU every token).

    Bit i of word w allows token 32*w + i; int32 holds bit 31 as the sign bit, and & still works.
    """
    return torch.tensor([1 << i if i < 31 else -(1 << 31) for i in range(32)], dtype=torch.int32, device=device)
