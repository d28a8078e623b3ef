"""A static KV cache slot with a compiled one-token step: the fast path for a sequence decoding alone.

A `StaticSlot` pre-allocates the KV cache for `max_tokens` positions once, so every decode step has
the same tensor shapes and addresses: on CUDA the one-token forward pass is compiled with
`torch.compile(mode="reduce-overhead")` (CUDA graphs, no Python or kernel-launch overhead per layer)
and never recompiles as the context grows. Prefill and jump-forward passes (several tokens) run the
same model eagerly into the same cache.

The slot remembers which tokens it holds (`ids`). Cropping it to a shared prefix is free: positions
past the new length are simply overwritten later, and the causal mask never lets a query see them.
So consecutive steps of one agent continue in place and prefill only their new tokens.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from agentkit.engine.kv_cache import cache_argument


class StaticSlot:
    """One pre-allocated KV cache of `max_tokens` positions (batch 1) and its one-token step.

    Example:
        >>> slot = StaticSlot(model, max_tokens=4096, compile=False)   # doctest: +SKIP
        >>> logits = slot.forward([1, 2, 3])       # prefill into positions 0..2      # doctest: +SKIP
        >>> logits = slot.forward([4])             # one decode step at position 3    # doctest: +SKIP
        >>> slot.truncate(2); slot.ids             # keep the first two positions     # doctest: +SKIP
        [1, 2]
    """

    def __init__(self, model: Any, max_tokens: int, *, compile: bool, prefill_chunk: int = 2048) -> None:
        from transformers import StaticCache

        self.model = model
        self.prefill_chunk = max(1, prefill_chunk)
        self.max_tokens = max_tokens
        self.kv = StaticCache(config=model.config, max_cache_len=max_tokens)
        _hold_every_position(self.kv, max_tokens)
        self._cache = cache_argument(model, self.kv)  # resolved once: the compiled step must not inspect signatures
        self.ids: list[int] = []  # the tokens whose KV state positions 0..len-1 hold
        # Older transformers index the static cache by an explicit `cache_position`; newer ones keep a
        # length counter in each layer (set by `truncate`). Pass positions both ways where accepted.
        self._takes_cache_position = "cache_position" in inspect.signature(model.forward).parameters
        self.compiled = compile
        self._step = self._run
        if compile:
            self._step = torch.compile(self._run, mode="reduce-overhead", fullgraph=True, dynamic=False)
        with torch.inference_mode():
            self._run(*self._inputs([0, 0]))  # eager first: allocates the cache (sized from the first keys)
            if compile:
                self._step(*self._inputs([0]))  # compiles now, not in the middle of someone's request
        self.truncate(0)

    def truncate(self, length: int) -> None:
        """Keep only the first `length` positions (free: later positions are overwritten and masked)."""
        length = min(length, len(self.ids)) if self.ids else 0
        for layer in self.kv.layers:
            counter = getattr(layer, "cumulative_length", None)
            if isinstance(counter, torch.Tensor):
                counter.fill_(length)
        self.ids = self.ids[:length]

    def load(self, kv: Any, ids: list[int]) -> None:
        """Replace the slot's contents with the KV state of `ids` held by another (dynamic) cache."""
        n = len(ids)
        for mine, theirs in zip(self.kv.layers, kv.layers):
            mine.keys[:, :, :n].copy_(theirs.keys[:1, :, :n])
            mine.values[:, :, :n].copy_(theirs.values[:1, :, :n])
        self.ids = list(ids)
        self.truncate(n)

    def fits(self, tokens: int) -> bool:
        return tokens <= self.max_tokens

    def forward(self, ids: list[int]) -> torch.Tensor:
        """Run `ids` at the next positions; return the last position's logits (float32, a fresh tensor)."""
        start = len(self.ids)
        if start + len(ids) > self.max_tokens:
            raise ValueError(f"The static KV cache holds {self.max_tokens} tokens; {start + len(ids)} were needed.")
        if len(ids) == 1:
            logits = self._step(*self._inputs(ids))
        else:  # prefill / jump-forward: eager, in chunks (bounded activation memory on long prompts)
            for start in range(0, len(ids), self.prefill_chunk):
                piece = ids[start : start + self.prefill_chunk]
                logits = self._run(*self._inputs(piece))
                self.ids += piece
            return logits[0, -1].float().clone()
        self.ids += ids
        # A CUDA graph's output buffer is overwritten by the next replay: copy it out.
        return logits[0, -1].float().clone()

    def _inputs(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        start, device = len(self.ids), self.model.device
        positions = torch.arange(start, start + len(ids), device=device).unsqueeze(0)
        return torch.tensor([ids], device=device), positions

    def _run(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        extra = {"cache_position": positions[0]} if self._takes_cache_position else {}
        out = self.model(input_ids=input_ids, position_ids=positions, **self._cache, use_cache=True, logits_to_keep=1, **extra)
        return out.logits

    def snapshot(self) -> Any:
        """A dynamic cache holding a copy of the slot's current contents (for the prefix cache)."""
        from agentkit.engine.kv_cache import copy_positions

        return copy_positions(self.kv, 0, len(self.ids))


def _hold_every_position(kv: Any, max_tokens: int) -> None:
    """Give sliding-window and chunked-attention layers a full-length buffer, like the other layers.

    transformers' StaticCache keeps only the last `window` positions of such layers (Mistral, Qwen2
    with `use_sliding_window`, Llama 4's chunked layers) in a rolling buffer. Once it has rolled, the
    slot can no longer be truncated to a shared prefix, loaded position by position (`load`) or
    copied out (`snapshot`): the next step would attend to the wrong keys. A full-length layer holds
    every position, as the engine's dynamic caches do; the window or chunk is still applied, by the
    attention mask, which transformers builds from absolute positions for a full layer. The cost is
    memory: such layers take `max_tokens` positions instead of `window`.
    """
    from transformers.cache_utils import StaticLayer

    kv.layers = [
        StaticLayer(max_cache_len=max_tokens) if getattr(layer, "is_sliding", False) else layer for layer in kv.layers
    ]
