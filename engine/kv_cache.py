"""Prefix reuse: keep KV caches between calls so a step only pays for its new tokens.

An agent's prompt at step k+1 is its prompt at step k, plus its reply, plus the observations. The
cache holds the KV state of earlier calls keyed by their token ids; a new call takes the entry that
shares the longest prefix with its prompt and prefills only the rest. Agents with the same system
prompt share that prefix too. Entries are evicted least-recently-used under a byte budget.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

GROWTH_MIN_TOKENS = 64  # spare positions allocated at least, when a layer's buffer is full
GROWTH_FRACTION = 4  # ...or a quarter of the length: amortised O(1) copies per token, at most 25% spare memory


def _growing_layer_class() -> Any:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):  # type: ignore[no-untyped-call]  # transformers' __init_subclass__ is unannotated
        """A `DynamicLayer` whose keys and values live in a buffer with spare room at the end.

        transformers' dynamic layer appends with `torch.cat`, copying the whole cache for every token:
        at 128K tokens that copy, not attention, dominates a decode step. Here an append writes into
        the spare room in place and `keys`/`values` are views of the filled part, so everything that
        reads them (attention, cropping, copying) sees an ordinary cache of the exact length. When
        `keys` is no longer a view of the buffer (cropped and re-set elsewhere) a fresh buffer is made.
        """

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            assert self.keys is not None and self.values is not None  # set by lazy_initialization
            length = self.keys.shape[-2] if self.keys.numel() else 0
            end = length + key_states.shape[-2]
            if not (_fills(self.keys, getattr(self, "_key_buffer", None), end) and _fills(self.values, getattr(self, "_value_buffer", None), end)):
                capacity = end + max(GROWTH_MIN_TOKENS, end // GROWTH_FRACTION)
                self._key_buffer = _regrow(self.keys, key_states, length, capacity)
                self._value_buffer = _regrow(self.values, value_states, length, capacity)
            self._key_buffer[:, :, length:end] = key_states
            self._value_buffer[:, :, length:end] = value_states
            self.keys = self._key_buffer[:, :, :end]
            self.values = self._value_buffer[:, :, :end]
            return self.keys, self.values

        @property
        def reserved_bytes(self) -> int:
            """Memory held, spare room included."""
            held = [getattr(self, "_key_buffer", None), getattr(self, "_value_buffer", None)]
            return sum(t.nbytes for t in held if t is not None)

    return GrowingLayer


def _fills(view: Any, buffer: Any, end: int) -> bool:
    """True when `view` is the filled start of `buffer` and the buffer has room up to `end`."""
    if buffer is None or view.numel() == 0:
        return False
    return bool(
        view.data_ptr() == buffer.data_ptr()
        and view.shape[:2] == buffer.shape[:2]
        and view.stride() == buffer.stride()
        and end <= buffer.shape[-2]
    )


def _regrow(old: Any, new: Any, length: int, capacity: int) -> Any:
    buffer = new.new_empty((new.shape[0], new.shape[1], capacity, new.shape[3]))
    if length:
        buffer[:, :, :length] = old
    return buffer


_GROWING_CACHE: Any = None


def new_cache() -> Any:
    """An empty KV cache whose layers grow in place (see `GrowingLayer`); a transformers `DynamicCache`.

    Example:
        >>> cache = new_cache()          # doctest: +SKIP
        >>> model(input_ids=ids, **cache_argument(model, cache), use_cache=True)   # doctest: +SKIP
    """
    global _GROWING_CACHE
    if _GROWING_CACHE is None:
        from transformers import DynamicCache

        layer_class = _growing_layer_class()

        class GrowingCache(DynamicCache):
            """A DynamicCache of `GrowingLayer`s."""

            def __init__(self) -> None:
                super().__init__()
                self.layer_class_to_replicate = layer_class

        _GROWING_CACHE = GrowingCache
    return _GROWING_CACHE()


def cache_argument(model: Any, cache: Any) -> dict[str, Any]:
    """The keyword that hands `cache` to `model.forward`: `cache` from transformers 5.24, else `past_key_values`.

    transformers 5.24 renamed the argument and warns on the old name (removal due in 5.40); older
    releases (the GPU machine has 5.17) only know `past_key_values`. Asking the signature keeps both.

    Example:
        >>> cache_argument(model, cache)    # doctest: +SKIP
        {'cache': <GrowingCache ...>}
    """
    model_class: Any = type(model)
    return {_cache_keyword(model_class): cache}


@functools.cache
def _cache_keyword(model_class: Any) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


@dataclass
class CacheEntry:
    """The KV state of `token_ids` (every position of them is in `kv`)."""

    token_ids: list[int]
    kv: Any  # transformers DynamicCache

    @property
    def nbytes(self) -> int:
        return sum(
            getattr(layer, "reserved_bytes", 0) or layer.keys.nbytes + layer.values.nbytes
            for layer in self.kv.layers
            if getattr(layer, "keys", None) is not None
        )


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists.

    Binary search over slice comparisons: C-speed list equality instead of a Python loop per token,
    which matters with long contexts and many cached entries.

    Example:
        >>> common_prefix([1, 2, 3, 4], [1, 2, 9])
        2
    """
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # invariant: a[:lo] == b[:lo] and a[:hi+1] != b[:hi+1]
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class PrefixCache:
    """LRU store of KV caches keyed by token prefixes, bounded by `max_bytes`.

    Example:
        >>> cache = PrefixCache(max_bytes=0)     # reuse disabled: every call starts from scratch
        >>> kv, reused = cache.take([1, 2, 3], new_cache=lambda: "fresh")
        >>> (kv, reused)
        ('fresh', 0)
    """

    def __init__(self, max_bytes: int, *, min_reuse: int = 16) -> None:
        self.max_bytes = max_bytes
        self.min_reuse = min_reuse  # shorter matches are not worth a copy
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._next_key = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.reused_tokens = 0

    def take(self, prompt_ids: list[int], *, new_cache: Any) -> tuple[Any, int]:
        """Return `(kv, n)`: a KV cache already holding the first `n` tokens of `prompt_ids`.

        At least the last prompt token is left out, so the caller always gets fresh logits. The entry
        is removed from the store (the caller extends it in place and `put`s it back); when it holds
        more than the shared prefix, a cropped copy is returned and the original stays for others.
        """
        with self._lock:
            best_key, best_len = None, 0
            for key, entry in self._entries.items():
                n = common_prefix(entry.token_ids, prompt_ids)
                if n > best_len:
                    best_key, best_len = key, n
            best_len = min(best_len, len(prompt_ids) - 1)
            if best_key is None or best_len < self.min_reuse:
                return new_cache(), 0
            entry = self._entries[best_key]
            if best_len == len(entry.token_ids):
                del self._entries[best_key]  # a pure prefix: hand it over and extend it in place
                kv = entry.kv
            else:
                kv = copy_positions(entry.kv, 0, best_len)  # diverges: keep the original for whoever continues it
                self._entries.move_to_end(best_key)
            self.hits += 1
            self.reused_tokens += best_len
            return kv, best_len

    def put(self, token_ids: list[int], kv: Any) -> None:
        """Store the KV state of `token_ids`, evicting least-recently-used entries over the budget."""
        if self.max_bytes <= 0 or not reusable(kv):
            return
        entry = CacheEntry(list(token_ids), kv)
        with self._lock:
            # An entry that is a prefix of the new one is redundant.
            for key in [k for k, e in self._entries.items() if common_prefix(e.token_ids, entry.token_ids) == len(e.token_ids)]:
                del self._entries[key]
            self._entries[self._next_key] = entry
            self._next_key += 1
            total = sum(e.nbytes for e in self._entries.values())
            while total > self.max_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                total -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def reusable(kv: Any) -> bool:
    """Only full-attention caches can be cut at any position; sliding-window and recurrent ones cannot."""
    return all(type(layer).__name__ in ("DynamicLayer", "GrowingLayer") for layer in getattr(kv, "layers", [None]))


def copy_positions(kv: Any, start: int, stop: int, *, row: int = 0) -> Any:
    """A new cache holding positions `start:stop` of batch row `row` of `kv` (copied; `kv` is untouched).

    Used to cut a shared prefix out of a cached conversation and one sequence out of a batch.
    """
    out = new_cache()
    for index, layer in enumerate(kv.layers):
        keys = layer.keys[row : row + 1, :, start:stop]  # update() copies them into the new layer's own buffer
        values = layer.values[row : row + 1, :, start:stop]
        out.update(keys, values, index)
    return out
