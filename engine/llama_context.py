"""llama.cpp's C API, just as much as `GGUFEngine` needs: load a GGUF, decode into KV sequences, read logits.

llama-cpp-python's ctypes bindings are used directly (not its `Llama` class): the engine needs several
KV sequences in one context for prefix reuse (one per conversation prefix, sharing cells where they
share tokens), logits for every position when scoring and for one when decoding, and its own sampler
(llguidance's mask, the same code as the torch engine), none of which that class exposes.

Every function here must be called with the engine's lock held: a llama.cpp context is not
thread-safe.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentkit.engine.kv_cache import common_prefix
from agentkit.errors import ContextOverflowError, ModelLoadError

DEFAULT_CONTEXT_TOKENS = 8192  # KV cells per engine unless the caller asks for more (the model may train on 32K+)
# Cells a context starts with; it doubles up to `context_tokens` when one conversation needs more.
# llama.cpp allocates and clears every cell up front (8,192 cells of Qwen2.5-1.5B: 235 MB).
INITIAL_CELLS = 2048
DEFAULT_SEQUENCES = 8  # conversation prefixes kept for reuse (cells they share are stored once)
# Prompt tokens per llama_decode call. llama.cpp's default is 512, but its compute buffers grow with
# it and on x86 ggml has no tiled GEMM for Q4 weights, so 256 prefills as fast (benchmarks/
# bench_batch_tokens.py, 2 cores: SmolLM2 235 vs 236 tok/s, Qwen 1.5B 128 vs 127) with ~40 MB less
# memory touched for the 1.5B.
DEFAULT_BATCH_TOKENS = 256
# Reply tokens per llama_decode call when scoring: each needs its logits row, and llama.cpp keeps an
# output buffer as large as the most rows ever asked at once (512 x Qwen's 152K vocabulary = 311 MB).
SCORE_ROWS = 32

_LOG_LINES: deque[str] = deque(maxlen=40)  # llama.cpp's recent log lines, quoted in load errors
_log_callback: Any = None  # kept alive: llama.cpp calls it from C
_backend_lock = threading.Lock()
_backend_ready = False


def _init_backend() -> Any:
    """Import the binding, send llama.cpp's logging to a small buffer (not stderr), init the backend once."""
    global _backend_ready, _log_callback
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelLoadError(
            "The llama.cpp engine needs llama-cpp-python: `make llama-cpp` (or `pip install 'agentkit[llama-cpp]'`, "
            "which compiles llama.cpp: about 10 minutes on 2 cores), or load with backend='torch'."
        ) from exc
    with _backend_lock:
        if not _backend_ready:

            def _log(level: int, text: bytes, user_data: Any) -> None:
                _LOG_LINES.append(text.decode("utf-8", "replace"))

            _log_callback = llama_cpp.llama_log_callback(_log)  # a C function pointer to `_log`
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


def default_threads() -> int:
    """The cores this process may run on (llama.cpp's own default assumes 4)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class _Sequence:
    """One KV sequence of the context: the token ids its cells hold, and when it was last used."""

    ids: list[int] = field(default_factory=list)
    used: float = 0.0


class LlamaContext:
    """A GGUF model and one llama.cpp context with `sequences` KV sequences sharing up to `context_tokens` cells.

    The context starts with `INITIAL_CELLS` cells (or `context_tokens` if fewer) and is made again
    with twice as many when one conversation needs more (`reserve`, or a decode that runs out), so
    memory follows use: a short agent never pays for 8K cells. Growing drops the cached prefixes of
    other conversations (they are prefilled again when they come back); several conversations
    competing for the cells evict each other instead (least recently used first).

    Example:
        >>> ctx = LlamaContext(Path("model.gguf"))             # doctest: +SKIP
        >>> seq, reused = ctx.claim(prompt_ids)                # doctest: +SKIP
        >>> logits = ctx.decode(seq, prompt_ids[reused:])      # doctest: +SKIP
    """

    # Set by `_make_context`, again each time the context is made anew.
    cells: int  # the context's KV cells
    memory: Any  # its llama.cpp memory (KV cache) handle
    _chunk: int  # the most tokens one decode batch takes

    def __init__(
        self,
        path: Path,
        *,
        context_tokens: int | None = None,
        sequences: int = DEFAULT_SEQUENCES,
        threads: int | None = None,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ) -> None:
        lib = self._lib = _init_backend()
        if sequences < 1 or batch_tokens < 1:
            raise ValueError(f"sequences and batch_tokens must be at least 1, got {sequences} and {batch_tokens}.")
        _LOG_LINES.clear()
        params = lib.llama_model_default_params()
        # No repacked copy of the weights (llama.cpp's "extra buffer types"): measured on 2 cores it
        # decodes no faster (SmolLM2 Q4_1, Qwen Q4_K_M), prefills Q4_K_M slower, and holds a second
        # copy beside the mapped file (1.5B: 2.0 GB peak RSS instead of 1.4 GB).
        params.use_extra_bufts = False
        self.model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise ModelLoadError(f"llama.cpp could not load {str(path)!r}: {_last_log()}. Check the file, or load it with backend='torch'.")
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self.vocab))
        self.trained_context = int(lib.llama_model_n_ctx_train(self.model))
        self.context_tokens = context_tokens or min(self.trained_context or DEFAULT_CONTEXT_TOKENS, DEFAULT_CONTEXT_TOKENS)
        self.batch_tokens = batch_tokens
        self._path, self._threads, self._sequence_count = path, threads or default_threads(), sequences
        self.ctx = None
        try:
            self._make_context(min(self.context_tokens, INITIAL_CELLS))
        except ModelLoadError:
            lib.llama_model_free(self.model)
            self.model = None
            raise
        self._batch = lib.llama_batch_init(batch_tokens, 0, 1)
        self._sequences = [_Sequence() for _ in range(sequences)]

    def _make_context(self, cells: int) -> None:
        """(Re)make the llama.cpp context with `cells` KV cells; any earlier one and its cells are freed first."""
        lib = self._lib
        if self.ctx:
            lib.llama_free(self.ctx)
            self.ctx = None
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = cells
        cparams.n_batch = self.batch_tokens
        cparams.n_ubatch = self.batch_tokens
        cparams.n_seq_max = self._sequence_count
        cparams.kv_unified = True  # one pool of cells: sequences that share a prefix share its cells
        cparams.n_threads = cparams.n_threads_batch = self._threads
        cparams.no_perf = True
        # Flash attention off: on these CPUs it slows decode as the context grows (SmolLM2 at 1,000
        # tokens: 30 tok/s with it, 59 without; Qwen 0.5B: 16 vs 22).
        cparams.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = lib.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise ModelLoadError(
                f"llama.cpp could not make a context of {cells} tokens for {str(self._path)!r}: {_last_log()}. "
                "Try a smaller context_tokens."
            )
        self.cells = int(lib.llama_n_ctx(self.ctx))  # llama.cpp may round up (to 256 at least)
        self.memory = lib.llama_get_memory(self.ctx)
        self._chunk = int(lib.llama_n_batch(self.ctx))  # llama.cpp caps a batch at the cells

    def reserve(self, tokens: int) -> bool:
        """Make room for one conversation of `tokens` tokens (up to `context_tokens`); True if the context grew.

        Growing makes a new context, so every sequence is forgotten: call it before `claim`.
        """
        if tokens <= self.cells or self.cells >= self.context_tokens:
            return False
        cells = self.cells
        while cells < tokens and cells < self.context_tokens:
            cells *= 2
        cells = min(cells, self.context_tokens)
        for sequence in self._sequences:
            sequence.ids = []
        try:
            self._make_context(cells)
        except ModelLoadError as exc:
            self._make_context(self.cells)  # the size it had (freed a moment ago, so it fits again)
            raise ContextOverflowError(
                f"The conversation needs {tokens} KV cells and llama.cpp could not grow the context to {cells} ({exc}). "
                "Load the model with a smaller context_tokens, or shorten the prompt.",
                prompt_tokens=tokens, context_window=self.cells, reserved_tokens=0,
            ) from None
        return True

    def close(self) -> None:
        """Free the context and the model (also done when the object is collected)."""
        lib = self._lib
        if getattr(self, "ctx", None):
            lib.llama_batch_free(self._batch)
            lib.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            lib.llama_model_free(self.model)
            self.model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- the vocabulary ---------------------------------------------------------------------------

    def end_of_sequence_id(self) -> int | None:
        """The GGUF's end-of-sequence token (`tokenizer.ggml.eos_token_id`), None if it names none."""
        eos = int(self._lib.llama_vocab_eos(self.vocab))
        return eos if 0 <= eos < self.n_vocab else None

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """llama.cpp's tokenisation of `text`, no BOS added; `special`: special-token texts become their tokens.

        Non-special added tokens (Qwen's `<tool_call>`) always match, as in the HF tokenizer.
        """
        vocab = self._open_vocab()
        data = text.encode("utf-8")
        size = len(data) + 16  # never more tokens than bytes
        out = (self._lib.llama_token * size)()
        n = self._lib.llama_tokenize(vocab, data, len(data), out, size, False, special)
        return list(out[:n])

    def detokenize(self, ids: list[int], *, special: bool = True) -> str:
        """The text of `ids` (invalid UTF-8 replaced, as the HF tokenizer does); `special`: write special tokens out."""
        vocab = self._open_vocab()
        if any(not 0 <= i < self.n_vocab for i in ids):
            raise ValueError(f"Token ids must be in [0, {self.n_vocab}): got {[i for i in ids if not 0 <= i < self.n_vocab][:5]}.")
        tokens = (self._lib.llama_token * len(ids))(*ids)
        size = 64 + 16 * len(ids)
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = self._lib.llama_detokenize(vocab, tokens, len(ids), buffer, size, False, special)
            if n >= 0:
                return buffer.raw[:n].decode("utf-8", errors="replace")
            size = -n  # too small: llama.cpp says how many bytes it needs

    def _open_vocab(self) -> Any:
        if not getattr(self, "model", None):
            raise RuntimeError("This engine was closed: its vocabulary went with the model. Load the model again.")
        return self.vocab

    # -- KV sequences -----------------------------------------------------------------------------

    def claim(self, prompt_ids: list[int]) -> tuple[int, int]:
        """A sequence to decode `prompt_ids` into and how many of its first tokens it already holds.

        The sequence sharing the longest prefix is continued in place when it holds nothing beyond
        that prefix; when it does (another conversation, or a scored alternative), the shared prefix
        is copied into a free or least-recently-used sequence so the original stays for whoever
        continues it. In a unified KV cache the copy shares the cells: no data moves. At least the
        last prompt token is left to decode, so the caller always gets fresh logits.
        """
        best, shared = 0, -1
        for index, sequence in enumerate(self._sequences):
            n = common_prefix(sequence.ids, prompt_ids)
            if n > shared or (n == shared and sequence.used < self._sequences[best].used):
                best, shared = index, n
        shared = min(shared, len(prompt_ids) - 1)
        if shared > 0 and len(self._sequences[best].ids) > shared:
            target = self._spare(avoid=best)
            self._clear(target)
            self._lib.llama_memory_seq_cp(self.memory, best, target, 0, shared)
            self._sequences[target].ids = list(prompt_ids[:shared])
            best = target
        elif shared <= 0:
            best, shared = self._spare(avoid=-1), 0
            self._clear(best)
        self._sequences[best].used = time.monotonic()
        return best, shared

    def _spare(self, *, avoid: int) -> int:
        """An empty sequence, else the least recently used one (never `avoid`)."""
        candidates = [i for i in range(len(self._sequences)) if i != avoid]
        empty = [i for i in candidates if not self._sequences[i].ids]
        if empty:
            return empty[0]
        return min(candidates, key=lambda i: self._sequences[i].used) if candidates else avoid

    def _clear(self, seq: int) -> None:
        self._lib.llama_memory_seq_rm(self.memory, seq, -1, -1)
        self._sequences[seq].ids = []

    def held(self, seq: int) -> list[int]:
        """The token ids sequence `seq` holds."""
        return self._sequences[seq].ids

    def reset(self) -> None:
        """Forget every sequence (the next request prefills from scratch)."""
        for index in range(len(self._sequences)):
            self._clear(index)

    # -- decoding ---------------------------------------------------------------------------------

    def decode(self, seq: int, ids: list[int], *, cancel: threading.Event | None = None) -> np.ndarray | None:
        """Append `ids` to sequence `seq` and return the last token's logits (a view, valid until the next decode).

        Runs in chunks of `batch_tokens`. When the cells run out, sequences not in use are evicted
        (least recently used first) and the chunk is retried. Returns None if `cancel` was set
        between chunks (the sequence then holds the chunks decoded so far).
        """
        last: np.ndarray | None = None
        for start in range(0, len(ids), self._chunk):
            if cancel is not None and cancel.is_set():
                return None
            chunk = ids[start : start + self._chunk]
            self._run(seq, chunk, every_logit=False)
            last = self._logits(len(chunk) - 1)
        return last

    def target_log_probs(self, seq: int, ids: list[int], targets: list[int]) -> np.ndarray:
        """Append `ids` to `seq`; return the log-probability of `targets[i]` after `ids[: i + 1]`, for each i.

        Reduced row by row as each chunk is decoded: a long reply never becomes a tokens x vocabulary
        array (300 tokens of a 150K vocabulary would be 180 MB, twice that in float64), and chunks of
        `SCORE_ROWS` keep llama.cpp's own logits buffer small.
        """
        out = np.empty(len(ids), dtype=np.float64)
        rows = min(SCORE_ROWS, self._chunk)
        for start in range(0, len(ids), rows):
            chunk = ids[start : start + rows]
            self._run(seq, chunk, every_logit=True)
            for i in range(len(chunk)):
                out[start + i] = log_prob(self._logits(i), targets[start + i])
        return out

    def _run(self, seq: int, chunk: list[int], *, every_logit: bool) -> None:
        while True:
            self._fill(seq, chunk, every_logit=every_logit)
            held = self._decode_with_room(seq)
            if held is None:
                break
            # The context grew: this sequence's earlier tokens go into the new cells first.
            for start in range(0, len(held), self._chunk):
                self._run(seq, held[start : start + self._chunk], every_logit=False)
        self._sequences[seq].ids += chunk

    def _fill(self, seq: int, chunk: list[int], *, every_logit: bool) -> None:
        batch, position = self._batch, len(self._sequences[seq].ids)
        batch.n_tokens = len(chunk)
        for i, token in enumerate(chunk):
            batch.token[i] = token
            batch.pos[i] = position + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = every_logit or i == len(chunk) - 1

    def _decode_with_room(self, seq: int) -> list[int] | None:
        """Decode the filled batch: None when done, or the ids `seq` held when the context had to grow
        first (they are gone from the new cells; the batch must be filled again after them)."""
        while True:
            status = self._lib.llama_decode(self.ctx, self._batch)
            if status == 0:
                return None
            if status == 1:  # no room in the KV cells: evict another sequence and retry, else grow
                others = [i for i, s in enumerate(self._sequences) if i != seq and s.ids]
                if others:
                    self._clear(min(others, key=lambda i: self._sequences[i].used))
                    continue
                held = self._sequences[seq].ids
                if self.reserve(len(held) + int(self._batch.n_tokens)):
                    return held
                raise ContextOverflowError(
                    f"The conversation needs more than the engine's {self.context_tokens} KV cells. "
                    "Load the model with a larger context_tokens, or shorten the prompt.",
                    prompt_tokens=len(self._sequences[seq].ids) + int(self._batch.n_tokens),
                    context_window=self.context_tokens,
                    reserved_tokens=0,
                )
            raise RuntimeError(f"llama_decode failed with status {status}: {_last_log()}")

    def _logits(self, index: int) -> np.ndarray:
        """A view of the logits of batch position `index` (valid until the next decode)."""
        pointer = self._lib.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))


def log_prob(logits: np.ndarray, target: int) -> float:
    """log softmax(logits)[target], in float64 without a float64 copy of the row."""
    peak = float(logits.max())
    return float(logits[target]) - peak - float(np.log(np.exp(logits - peak, dtype=np.float64).sum()))


def _last_log() -> str:
    lines = [line.strip() for line in _LOG_LINES if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    return "; ".join((errors or lines)[-3:]) or "no details from llama.cpp"
