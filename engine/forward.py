"""The torch engine's one forward pass: new tokens for one or more rows in, float32 logits out.

Every model call of the torch engine goes through `forward` (via `prefill` for prompts): the batch
scheduler's decode steps (one row, or a left-padded batch), the static slot's prefill and its
compiled one-token step (`step=`), scoring (`all_logits=True`) and the reference `decode()` loop.
So the three ways a token's logits are computed cannot drift apart: same inputs, same call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from agentkit.engine.kv_cache import cache_argument
from agentkit.engine.prompt_tokens import DEFAULT_PREFILL_CHUNK

# A compiled replacement for the model call of one row at explicit positions: (input_ids, position_ids) -> raw logits.
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def forward(
    model: Any,
    cache: Any,
    rows: list[list[int]],
    *,
    lengths: list[int] | None = None,
    start: int | None = None,
    all_logits: bool = False,
    inputs: dict[str, Any] | None = None,
    step: Step | None = None,
) -> torch.Tensor:
    """Run each row's new tokens through `model`, appending them to `cache`; return float32 logits.

    One row: `rows[0]` continues the cache's sequence; positions follow from the cache (None
    `start`, which a vision model's own position scheme needs) or are explicit from `start` (the
    static slot, whose cache length is not a plain counter). Several rows (one token each): `cache`
    is a left-padded batch and `lengths` the tokens each row really holds, giving the padding mask
    and each row's own positions. Returns `[rows, vocab]`, the last position of each row, or with
    `all_logits` every position of the one row, `[tokens, vocab]`. `inputs` (an image's
    `pixel_values`) go to the model with the tokens; `step` replaces the model call (a CUDA graph).

    Example:
        >>> cache = new_cache()                                      # doctest: +SKIP
        >>> forward(model, cache, [[1, 2, 3]]).shape                 # doctest: +SKIP
        torch.Size([1, 49152])
    """
    device = model.device
    ids = torch.tensor(rows, device=device)
    width = len(rows[0])
    attention_mask = positions = None
    if len(rows) > 1:
        if lengths is None or width != 1:
            raise ValueError("A batched forward pass feeds one token per row and needs each row's length.")
        held = cache.get_seq_length()
        attention_mask = torch.zeros((len(rows), held + 1), dtype=torch.long, device=device)
        for row, n in enumerate(lengths):
            attention_mask[row, held - n :] = 1  # left padding: each row's tokens end at the same column
        positions = torch.tensor([[n] for n in lengths], device=device)
    elif start is not None:
        positions = torch.arange(start, start + width, device=device).unsqueeze(0)
    if step is not None and positions is not None:
        # A CUDA graph's output buffer is overwritten by its next replay: copy the logits out.
        return step(ids, positions)[:, -1].float().clone()
    logits = call_model(
        model, cache_argument(model, cache), ids, attention_mask=attention_mask, position_ids=positions,
        cache_position=start is not None and takes_cache_position(model.__class__), all_logits=all_logits, **(inputs or {}),
    )
    return logits[0].float() if all_logits else logits[:, -1].float()


def call_model(
    model: Any,
    cache_kwargs: dict[str, Any],
    input_ids: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    cache_position: bool = False,
    all_logits: bool = False,
    **inputs: Any,
) -> torch.Tensor:
    """The model call itself, tensors in, raw logits out: what `forward` runs and the static slot compiles.

    With `cache_position` (when the model takes one: `takes_cache_position`), one row's explicit
    positions also go as the cache index (older transformers index a static cache by it; newer ones
    keep a counter per layer). No lookups in here: the static slot compiles this call whole.

    Example:
        >>> call_model(model, cache_argument(model, cache), torch.tensor([[1, 2]])).shape   # doctest: +SKIP
        torch.Size([1, 1, 49152])
    """
    extra = dict(inputs)
    if cache_position and position_ids is not None:
        extra["cache_position"] = position_ids[0]
    if attention_mask is not None:
        extra["attention_mask"] = attention_mask
    if position_ids is not None:
        extra["position_ids"] = position_ids
    if not all_logits:
        extra["logits_to_keep"] = 1
    out = model(input_ids=input_ids, **cache_kwargs, use_cache=True, **extra)
    return out.logits  # type: ignore[no-any-return]


@functools.cache
def takes_cache_position(model_class: Any) -> bool:
    """True when `model_class.forward` accepts an explicit `cache_position` (transformers before 5.x).

    Example:
        >>> takes_cache_position(model.__class__)    # doctest: +SKIP
        False
    """
    return "cache_position" in inspect.signature(model_class.forward).parameters


def prefill(
    model: Any, ids: list[int], cache: Any, *, chunk: int = DEFAULT_PREFILL_CHUNK, inputs_end: int | None = None,
    start: int | None = None, **inputs: Any,
) -> torch.Tensor:
    """Run `ids` through the model into `cache` in chunks of `chunk` tokens; return the last logits.

    One pass over a 128K-token prompt would hold activations (and, without a fused attention
    kernel, attention scores) for every position at once; chunks bound that to `chunk` positions
    against the cache, so memory grows with the KV cache alone. `inputs` (e.g. an image's
    `pixel_values`) go with the first chunk, which then reaches at least to `inputs_end` (the position
    after the last image placeholder; unknown: the whole prompt in one pass). `start`: explicit
    positions from there (the static slot), as in `forward`.

    Example:
        >>> logits = prefill(model, prompt_ids, new_cache(), chunk=512)   # doctest: +SKIP
    """
    if not ids:
        raise ValueError("prefill needs at least one token.")
    chunk = max(1, chunk)
    first = chunk
    if inputs:  # the vision tower's features replace every placeholder in the first pass
        first = len(ids) if inputs_end is None else max(chunk, inputs_end)
    logits = None
    begin = 0
    while begin < len(ids):
        end = min(len(ids), begin + (first if begin == 0 else chunk))
        at = None if start is None else start + begin
        logits = forward(model, cache, [ids[begin:end]], start=at, inputs=inputs if begin == 0 else None)
        begin = end
    assert logits is not None
    return logits[0]
