"""The decode loop: prefill the prompt, then one token at a time under the grammar mask.

At each position the grammar's mask (computed on the CPU by llguidance) sets every token the step
format does not allow to -inf before sampling, so the output always parses. Decoding stops when the
grammar is complete, at an end-of-sequence token, or at `max_new_tokens`.

On CUDA the mask stays off the critical path: a forward pass returns as soon as its kernels are
queued, so `choose_next` fills the next mask on the CPU while the GPU computes the logits; the
packed bitmask is copied from pinned memory asynchronously and expanded on the GPU, and the only
host sync per step is reading the sampled token id. The engine runs this loop through
`engine/batching.py` (concurrent requests) and `engine/static_cache.py` (a sequence alone: static
KV cache, CUDA-graph one-token step); `decode()` here is the plain single-sequence reference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from agentkit.engine.grammar import TokenMask
from agentkit.engine.kv_cache import cache_argument
from agentkit.engine.prompt_tokens import DEFAULT_PREFILL_CHUNK
from agentkit.engine.sampling import Choice, choose_next, decode_loop, sample  # noqa: F401 - the token choice; re-exported




def prefill(
    model: Any, ids: list[int], cache: Any, *, chunk: int = DEFAULT_PREFILL_CHUNK, inputs_end: int | None = None, **inputs: Any
) -> torch.Tensor:
    """Run `ids` through the model into `cache` in chunks of `chunk` tokens; return the last logits.

    One pass over a 128K-token prompt would hold activations (and, without a fused attention
    kernel, attention scores) for every position at once; chunks bound that to `chunk` positions
    against the cache, so memory grows with the KV cache alone. `inputs` (e.g. an image's
    `pixel_values`) go with the first chunk, which then reaches at least to `inputs_end` (the position
    after the last image placeholder; unknown: the whole prompt in one pass).

    Example:
        >>> logits = prefill(model, prompt_ids, DynamicCache(), chunk=512)   # doctest: +SKIP
    """
    if not ids:
        raise ValueError("prefill needs at least one token.")
    chunk = max(1, chunk)
    device = model.device
    first = chunk
    if inputs:  # the vision tower's features replace every placeholder in the first pass
        first = len(ids) if inputs_end is None else max(chunk, inputs_end)
    logits = None
    start = 0
    while start < len(ids):
        end = min(len(ids), start + (first if start == 0 else chunk))
        extra = inputs if start == 0 else {}
        out = model(input_ids=torch.tensor([ids[start:end]], device=device), **cache_argument(model, cache), use_cache=True, logits_to_keep=1, **extra)
        logits = out.logits
        start = end
    return logits[0, -1].float()


@dataclass
class DecodeResult:
    """Generated token ids (without the end token), the KV cache, and where the time went."""

    tokens: list[int]
    finish_reason: str  # "stop" (grammar complete or end token) or "length"
    forward_passes: int  # prefill included; jump-forward makes this smaller than len(tokens)
    prefill_tokens: int  # prompt tokens actually run through the model (the rest came from the cache)
    jump_forward_tokens: int  # tokens the grammar forced, appended without a decode step of their own
    prefill_seconds: float
    decode_seconds: float
    mask_seconds: float
    cache: Any  # the KV cache, holding exactly `cache_ids`
    cache_ids: list[int]


@torch.inference_mode()
def decode(
    model: Any,
    prompt_ids: list[int],
    *,
    max_new_tokens: int,
    eos_ids: set[int],
    matcher: Any | None = None,
    mask: TokenMask | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    cache: Any | None = None,
    cached_tokens: int = 0,
    jump_forward: bool = True,
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
) -> DecodeResult:
    """Generate up to `max_new_tokens` after `prompt_ids`, constrained by `matcher` when given.

    `cache` may already hold the KV state of `prompt_ids[:cached_tokens]` (prefix reuse); only the
    rest is prefilled. With `jump_forward`, tokens the grammar forces (keys, punctuation, a tool
    name fixed by its prefix) are appended to the sampled token and run in the same forward pass.
    """
    from agentkit.engine.kv_cache import new_cache

    if cache is None:
        cache, cached_tokens = new_cache(), 0
    device = model.device

    cache_kwargs = cache_argument(model, cache)  # once, not per token
    cache_ids = list(prompt_ids)

    def forward(ids: list[int]) -> torch.Tensor:
        cache_ids.extend(ids)
        out = model(input_ids=torch.tensor([ids], device=device), **cache_kwargs, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float()

    started = time.perf_counter()
    logits = prefill(model, prompt_ids[cached_tokens:], cache, chunk=prefill_chunk)
    prefill_seconds = time.perf_counter() - started
    decode_started = time.perf_counter()
    result = decode_loop(
        logits, forward, max_new_tokens=max_new_tokens, eos_ids=eos_ids, matcher=matcher, mask=mask,
        temperature=temperature, top_p=top_p, generator=generator, jump_forward=jump_forward,
    )
    return DecodeResult(
        tokens=result.tokens,
        finish_reason=result.finish_reason,
        forward_passes=result.forward_passes,
        prefill_tokens=len(prompt_ids) - cached_tokens,
        jump_forward_tokens=result.jump_forward_tokens,
        prefill_seconds=prefill_seconds,
        decode_seconds=time.perf_counter() - decode_started,
        mask_seconds=result.mask_seconds,
        cache=cache,
        cache_ids=cache_ids,
    )
