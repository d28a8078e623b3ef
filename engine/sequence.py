"""What the batch scheduler decodes: an immutable `DecodeRequest`, its mutable `SequenceState`, the `DecodeResult`.

The request says what to decode (prompt, limits, sampling, grammar, where its KV state starts, a
cancel flag) and never changes; the state is what one decode of it has done so far (tokens, KV
cache, pending inputs, timings), owned by the scheduler thread.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, eq=False)
class DecodeRequest:
    """One decode to run: `max_new_tokens` after `prompt_ids`, under `matcher`'s grammar when given.

    `cache` holds the KV state of `prompt_ids[:cached_tokens]` (from the prefix cache); only the rest
    is prefilled. `matcher` is a fresh llguidance matcher for this request alone (decoding advances
    it), `generator` the seeded sampler's. `inputs` (an image's `pixel_values`) go with the first
    prefill pass, which reaches at least `inputs_end`; `multimodal` keeps the request out of the
    static slot (image patch tokens share ids across images, so a shared prefix proves nothing).

    Example:
        >>> DecodeRequest(prompt_ids=[1, 2, 3], max_new_tokens=8, eos_ids={2}, cache=new_cache())  # doctest: +SKIP
    """

    prompt_ids: list[int]
    max_new_tokens: int
    eos_ids: set[int]
    cache: Any
    cached_tokens: int = 0
    matcher: Any | None = None
    run_on_guard: Any | None = None  # the grammar's `RunOnGuard` (stateless, shared by every request)
    temperature: float = 0.0
    top_p: float = 1.0
    generator: Any | None = None  # a torch.Generator
    jump_forward: bool = True
    cancel: threading.Event | None = None  # set by the caller (e.g. a client that disconnected): stop early
    inputs: dict[str, Any] = field(default_factory=dict)
    inputs_end: int | None = None
    multimodal: bool = False

    @property
    def cancelled(self) -> bool:
        """True once the caller has set `cancel`."""
        return self.cancel is not None and self.cancel.is_set()


@dataclass
class DecodeResult:
    """Generated token ids (without the end token), the KV cache, and where the time went.

    Example:
        >>> result = engine._scheduler.submit(request); result.tokens, result.finish_reason   # doctest: +SKIP
        ([90, 1, 7], 'stop')
    """

    tokens: list[int]
    finish_reason: str  # "stop" (grammar complete or end token), "length", or "cancelled"
    forward_passes: int  # prefill included; jump-forward makes this smaller than len(tokens)
    prefill_tokens: int  # prompt tokens actually run through the model (the rest came from the cache)
    jump_forward_tokens: int  # tokens the grammar forced, appended without a decode step of their own
    prefill_seconds: float
    decode_seconds: float
    mask_seconds: float
    cache: Any  # the KV cache, holding exactly `cache_ids`
    cache_ids: list[int]


@dataclass(eq=False)
class SequenceState:
    """How far one request's decode has got: what the scheduler thread updates every step.

    `cache` holds exactly `cache_ids` (the prompt, then every token fed so far) while the sequence
    is not part of a batch; in a batch its rows live in the batch cache. `feed` is what the next
    forward pass runs for it, `forced` the grammar-forced tokens still to feed (one per batched
    pass), `logits` the last pass's output for it (consumed by the next choice).

    Example:
        >>> state = SequenceState(request, cache=request.cache, cached_tokens=request.cached_tokens)  # doctest: +SKIP
    """

    request: DecodeRequest
    cache: Any
    cached_tokens: int
    future: Future[DecodeResult] = field(default_factory=Future)
    tokens: list[int] = field(default_factory=list)
    cache_ids: list[int] = field(default_factory=list)
    feed: list[int] = field(default_factory=list)
    forced: list[int] = field(default_factory=list)
    logits: Any = None
    forward_passes: int = 0
    jump_forward_tokens: int = 0
    mask_seconds: float = 0.0
    prefill_seconds: float = 0.0
    started: float = 0.0
    finish: str = ""  # "", or why it ended: "stop", "length", "cancelled"

    @property
    def budget(self) -> int:
        """Tokens it may still generate."""
        return self.request.max_new_tokens - len(self.tokens)

    def result(self) -> DecodeResult:
        """The finished decode, as the caller gets it.

        Example:
            >>> state.result().finish_reason   # doctest: +SKIP
            'length'
        """
        return DecodeResult(
            tokens=self.tokens,
            finish_reason=self.finish if self.finish in ("stop", "cancelled") else "length",
            forward_passes=self.forward_passes,
            prefill_tokens=len(self.request.prompt_ids) - self.cached_tokens,
            jump_forward_tokens=self.jump_forward_tokens,
            prefill_seconds=self.prefill_seconds,
            decode_seconds=time.perf_counter() - self.started - self.prefill_seconds,
            mask_seconds=self.mask_seconds,
            cache=self.cache,
            cache_ids=self.cache_ids,
        )
