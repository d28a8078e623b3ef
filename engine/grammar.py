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
from agentkit.engine.run_on import RunOnGuard
from agentkit.engine.token_table import grammar_tokenizer
from agentkit.errors import GrammarError

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
        self._run_on_guard: RunOnGuard | None = None

    @property
    def run_on_guard(self) -> RunOnGuard:
        """The vocabulary's `RunOnGuard` (built on first use: ~0.2 s for a 150K-token vocabulary)."""
        with self._lock:
            if self._run_on_guard is None:
                self._run_on_guard = RunOnGuard.for_tokenizer(self.tokenizer)
            return self._run_on_guard

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

    The llama.cpp engine and the reference `decode()` mask with it; the torch engine's scheduler
    masks all its rows at once with a `BatchMask`.

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
        return _unpack(host.to(device, non_blocking=True), self.vocab_size)

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
        return _mask_logits(logits, self.allowed(logits.device))


class BatchMask:
    """One bitmask for a whole batch: every row's grammar fills its row at once, one op masks all logits.

    The torch engine's scheduler keeps one of `rows` rows. `fill` computes the rows' masks in
    parallel on llguidance's thread pool (`fill_next_token_bitmask_par`, as vLLM and SGLang do) while
    the GPU still runs the forward pass; `apply` copies the bits over (asynchronously from pinned
    memory on CUDA) and sets every disallowed logit of every row to -inf in one masked fill.
    llguidance.torch's own `apply_token_bitmask_inplace` is not used: it is `torch.compile`d, which
    on a CPU needs a C compiler and compiles on the first request.

    Example:
        >>> mask = BatchMask(compiler.vocab_size, rows=32)        # doctest: +SKIP
        >>> mask.fill([matcher_a, matcher_b])                     # rows 0 and 1  # doctest: +SKIP
        >>> mask.apply(logits)                                    # logits: [2, vocab], in place  # doctest: +SKIP
    """

    def __init__(self, vocab_size: int, rows: int, *, pin_memory: bool = False) -> None:
        import torch

        self.vocab_size = vocab_size
        words = (vocab_size + 31) // 32
        self.bits = torch.full((max(1, rows), words), -1, dtype=torch.int32, pin_memory=pin_memory)
        self._executor: Any = None

    def fill(self, matchers: list[Any]) -> None:
        """Compute row i's mask from `matchers[i]` (all rows in parallel when there are several)."""
        # What llguidance.torch's fill_next_token_bitmask(_par) do; that module is not imported because
        # its import compiles a kernel (loading torch's inductor: seconds, and deprecation warnings).
        if len(matchers) > self.bits.shape[0]:
            raise ValueError(f"The batch mask has {self.bits.shape[0]} rows; {len(matchers)} were asked for.")
        row_bytes = self.bits.shape[1] * 4
        if len(matchers) == 1:  # no thread hand-off for a sequence decoding alone
            matchers[0].unsafe_compute_mask_ptr(self.bits.data_ptr(), row_bytes)
            return
        if self._executor is None:
            import llguidance

            self._executor = llguidance.LLExecutor()
        rows = [(matcher, row) for row, matcher in enumerate(matchers)]
        self._executor.unsafe_compute_mask_ptr(rows, self.bits.data_ptr(), row_bytes, self.bits.shape[0])

    def apply(self, logits: Any) -> Any:
        """Set each row's disallowed logits to -inf in place (logits: `[rows, vocab]`, row i under mask row i)."""
        bits = self.bits[: logits.shape[0]].to(logits.device, non_blocking=True)
        return _mask_logits(logits, _unpack(bits, self.vocab_size))


def _unpack(bits: Any, vocab_size: int) -> Any:
    """Boolean torch mask over the vocabulary from packed int32 words (`[..., words]` -> `[..., vocab_size]`)."""
    return ((bits.unsqueeze(-1) & _bit_values(bits.device)) != 0).flatten(-2)[..., :vocab_size]


def _mask_logits(logits: Any, allowed: Any) -> Any:
    """Set logits to -inf where `allowed` is False, and past its end (an embedding padded past the vocabulary)."""
    n = min(logits.shape[-1], allowed.shape[-1])
    logits[..., :n].masked_fill_(~allowed[..., :n], float("-inf"))
    if logits.shape[-1] > n:
        logits[..., n:] = float("-inf")
    return logits


@lru_cache(maxsize=8)
def _bit_values(device: Any) -> Any:
    """The 32 single-bit int32 values, made once per device (not copied to the GPU every token).

    Bit i of word w allows token 32*w + i; int32 holds bit 31 as the sign bit, and & still works.
    """
    import torch

    return torch.tensor([1 << i if i < 31 else -(1 << 31) for i in range(32)], dtype=torch.int32, device=device)
