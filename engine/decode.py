"""The reference decode loop: one sequence, prefill then one step at a time under the grammar mask.

This is not what the engine runs: `LocalEngine` decodes every request through the batch scheduler
(`engine/batching.py`), alone or batched. `decode()` is the plain single-sequence loop the tests
hold the engine to (greedy: the same tokens as HF `generate`) and benchmarks call directly. It runs
the engine's own pieces: `forward.prefill`/`forward.forward` for the model and
`sampling.decode_loop` (shared with the llama.cpp engine) for masking, sampling and jump-forward.

At each position the grammar's mask sets every token the step format does not allow to -inf
before sampling, so the output always parses. Decoding stops when the grammar is complete, at an
end-of-sequence token, or at `max_new_tokens`.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from agentkit.engine.forward import forward, prefill
from agentkit.engine.grammar import TokenMask
from agentkit.engine.kv_cache import new_cache
from agentkit.engine.prompt_tokens import DEFAULT_PREFILL_CHUNK
from agentkit.engine.run_on import RunOnGuard
from agentkit.engine.sampling import decode_loop
from agentkit.engine.sequence import DecodeResult


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
    run_on_guard: RunOnGuard | None = None,
) -> DecodeResult:
    """Generate up to `max_new_tokens` after `prompt_ids`, constrained by `matcher` (with `mask`) when given.

    `cache` may already hold the KV state of `prompt_ids[:cached_tokens]` (prefix reuse); only the
    rest is prefilled. With `jump_forward`, tokens the grammar forces (keys, punctuation, a tool
    name fixed by its prefix) are appended to the sampled token and run in the same forward pass.

    Example:
        >>> decode(model, tokenizer("The capital of France is")["input_ids"], max_new_tokens=8, eos_ids=set()).tokens  # doctest: +SKIP
        [7042, 30, 378, 3575, 282, 4649, 30, 378]
    """
    if cache is None:
        cache, cached_tokens = new_cache(), 0
    cache_ids = list(prompt_ids)

    def step(ids: list[int]) -> torch.Tensor:
        cache_ids.extend(ids)
        return forward(model, cache, [ids])[0]

    started = time.perf_counter()
    logits = prefill(model, prompt_ids[cached_tokens:], cache, chunk=prefill_chunk)
    prefill_seconds = time.perf_counter() - started
    decode_started = time.perf_counter()
    result = decode_loop(
        logits, step, max_new_tokens=max_new_tokens, eos_ids=eos_ids, matcher=matcher, mask=mask,
        temperature=temperature, top_p=top_p, generator=generator, jump_forward=jump_forward, run_on_guard=run_on_guard,
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
