"""Grammar masks: a `Constraint` (JSON Schema or Lark) -> token-level matcher, and applying its mask to logits.

Backed by llguidance: it compiles a schema in about a millisecond (no minutes-long compile for long
string bounds) and computes a token mask in tens of microseconds, which is noise next to a forward pass.
Compiled grammars are cached by the constraint's kind and canonical text, so a tool set is compiled once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from agentkit.constraints import Constraint, JsonSchemaConstraint
from agentkit.errors import GrammarError
from agentkit.engine.token_table import grammar_tokenizer

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions  # a type of llguidance's stubs only


class GrammarCompiler:
    """Compiles constraints into llguidance matchers for one tokenizer, with an LRU cache.

    Example:
        >>> from agentkit.constraints import JsonSchemaConstraint                              # doctest: +SKIP
        >>> compiler = GrammarCompiler(hf_tokenizer)                                           # doctest: +SKIP
        >>> matcher = compiler.matcher(JsonSchemaConstraint(json_schema={"type": "object"}))  # doctest: +SKIP
    """

    def __init__(self, hf_tokenizer: Any, *, cache_size: int = 64, token_table_cache: Path | None = None) -> None:
        import llguidance

        self._llguidance = llguidance
        self.tokenizer = grammar_tokenizer(hf_tokenizer, cache=token_table_cache)
        self.vocab_size = self.tokenizer.vocab_size
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self.compilations = 0  # how many constraints were actually compiled (tests check the cache works)
        self._lock = threading.Lock()  # engines serve concurrent requests

    def grammar(self, constraint: Constraint) -> str:
        """Return the compiled grammar for `constraint` (cached); `GrammarError` naming the fix if it cannot compile.

        A JSON Schema is compiled with the constraint's whitespace options (an `x-guidance` object in
        the schema itself wins); Lark text in llguidance's dialect may embed schemas with `%json { ... }`.
        """
        key = _cache_key(constraint)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        LLMatcher = self._llguidance.LLMatcher
        try:
            if isinstance(constraint, JsonSchemaConstraint):
                grammar = LLMatcher.grammar_from_json_schema(constraint.json_schema, defaults=cast("JsonCompileOptions", constraint.whitespace()))
            else:
                grammar = LLMatcher.grammar_from_lark(constraint.grammar)
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

    def matcher(self, constraint: Constraint) -> Any:
        """A fresh `llguidance.LLMatcher` positioned at the start of `constraint`."""
        matcher = self._llguidance.LLMatcher(self.tokenizer, self.grammar(constraint), log_level=1)
        if matcher.is_error():
            raise GrammarError(f"The grammar failed to start: {matcher.get_error()}")
        return matcher


def _cache_key(constraint: Constraint) -> str:
    """The constraint's kind and a hash of its canonical text: equal constraints share one compiled grammar."""
    if isinstance(constraint, JsonSchemaConstraint):
        text = json.dumps([constraint.json_schema, constraint.whitespace()], sort_keys=True)
    else:
        text = constraint.grammar
    return f"{constraint.kind}:{hashlib.sha256(text.encode()).hexdigest()}"


class TokenMask:
    """A reusable bitmask buffer for one sequence: fill it from a matcher, apply it to logits.

    The bits live in a numpy array, so the llama.cpp engine masks without loading torch; with
    `pin_memory` (CUDA) they share pinned host memory with a torch tensor for asynchronous copies.
    """

    def __init__(self, vocab_size: int, *, pin_memory: bool = False) -> None:
        self.vocab_size = vocab_size
        words = (vocab_size + 31) // 32
        self._pinned = None
        if pin_memory:
            # Pinned on CUDA so the copy to the GPU is truly asynchronous. The mask for the next token is
            # computed on the CPU while the GPU still runs the forward pass that was just launched
            # (kernel launches return at once); the only host sync per token is reading the sampled id.
            import torch

            self._pinned = torch.zeros((words,), dtype=torch.int32, pin_memory=True)
            self.bits = self._pinned.numpy()
        else:
            self.bits = np.zeros((words,), dtype=np.int32)

    def fill(self, matcher: Any) -> None:
        matcher.unsafe_compute_mask_ptr(self.bits.ctypes.data, self.bits.nbytes)

    def allowed(self, device: Any) -> Any:
        """Boolean torch vector over the vocabulary on `device`: True where the grammar allows the token."""
        import torch

        host = self._pinned if self._pinned is not None else torch.from_numpy(self.bits)
        bits = host.to(device, non_blocking=True)
        return ((bits.unsqueeze(-1) & _bit_values(device)) != 0).reshape(-1)[: self.vocab_size]

    def apply(self, logits: Any) -> Any:
        """Set disallowed logits to -inf in place (logits: 1-D over the model's vocabulary).

        A numpy array (the llama.cpp engine's logits) is masked with numpy: several times faster
        than torch's small-tensor ops on a CPU, and the mask must cost little next to a 10 ms step.
        """
        if isinstance(logits, np.ndarray):
            allowed = np.unpackbits(self.bits.view(np.uint8), bitorder="little")[: self.vocab_size].view(bool)
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
def _bit_values(device: Any) -> Any:
    """The 32 single-bit int32 values, made once per device (not copied to the GPU every token).

    Bit i of word w allows token 32*w + i; int32 holds bit 31 as the sign bit, and & still works.
    """
    import torch

    return torch.tensor([1 << i if i < 31 else -(1 << 31) for i in range(32)], dtype=torch.int32, device=device)
