"""A static KV cache slot with a compiled one-token step: the fast path for a sequence decoding alone.

A `StaticSlot` pre-allocates the KV cache for `max_tokens` positions once, so every decode step has
the same tensor shapes and addresses: on CUDA the one-token forward pass is compiled with
`torch.compile(mode="reduce-overhead")` (CUDA graphs, no Python or kernel-launch overhead per layer)
and never recompiles as the context grows. Prefill and jump-forward passes (several tokens) run the
same model eagerly into the same cache. Both run through `forward.forward`, as every other pass does.

The slot remembers which tokens it holds (`ids`). Cropping it to a shared prefix is free: positions
past the new length are simply overwritten later, and the causal mask never lets a query see them.
So consecutive steps of one agent continue in place and prefill only their new tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from agentkit.engine.forward import Step, call_model, forward, prefill, takes_cache_position
from agentkit.engine.kv_cache import cache_argument, copy_positions


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
        # Older transformers index the static cache by an explicit `cache_position`; newer ones keep a
        # length counter in each layer (set by `truncate`). Pass positions both ways where accepted.
        self._takes_cache_position = takes_cache_position(model.__class__)
        self.ids: list[int] = []  # the tokens whose KV state positions 0..len-1 hold
        self.compiled = compile
        self._step: Step | None = None
        if compile:
            self._step = torch.compile(self._run, mode="reduce-overhead", fullgraph=True, dynamic=False)
        with torch.inference_mode():
            forward(model, self.kv, [[0, 0]], start=0)  # eager first: allocates the cache (sized from the first keys)
            if compile:
                forward(model, self.kv, [[0]], start=0, step=self._step)  # compiles now, not in someone's request
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
        layers: list[Any] = list(self.kv.layers)  # every layer holds keys here (see _hold_every_position)
        for mine, theirs in zip(layers, kv.layers):
            mine.keys[:, :, :n].copy_(theirs.keys[:1, :, :n])
            mine.values[:, :, :n].copy_(theirs.values[:1, :, :n])
        self.ids = list(ids)
        self.truncate(n)

    def fits(self, tokens: int) -> bool:
        """True when a sequence of `tokens` positions fits in the slot."""
        return tokens <= self.max_tokens

    def forward(self, ids: list[int]) -> torch.Tensor:
        """Run `ids` at the next positions; return the last position's logits (float32, a fresh tensor).

        One token runs the compiled step (when compiled); several (prefill, jump-forward) run eagerly
        in chunks of `prefill_chunk` (bounded activation memory on long prompts). Both go through
        `forward.forward` with explicit positions.
        """
        start = len(self.ids)
        if start + len(ids) > self.max_tokens:
            raise ValueError(f"The static KV cache holds {self.max_tokens} tokens; {start + len(ids)} were needed.")
        if len(ids) == 1:
            logits = forward(self.model, self.kv, [ids], start=start, step=self._step)[0]
        else:
            logits = prefill(self.model, ids, self.kv, chunk=self.prefill_chunk, start=start)
        self.ids += ids
        return logits

    def _run(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The one-token step that `torch.compile` records: the model call for this slot's cache."""
        return call_model(self.model, self._cache, input_ids, position_ids=positions, cache_position=self._takes_cache_position)

    def snapshot(self) -> Any:
        """A dynamic cache holding a copy of the slot's current contents (for the prefix cache)."""
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
