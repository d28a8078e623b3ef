"""Continuous batching: the torch engine's decode loop. Every request decodes here, alone or with others.

One scheduler thread owns the model. Each step it (1) admits waiting requests and prefills each
alone (reusing its cached prefix; into the static slot when it will decode alone on CUDA),
(2) chooses every row's next token: one `BatchMask` filled for all grammar-constrained rows at once,
then sampling and jump-forward per row (`sampling.choose_next`), (3) regroups the batch cache when
rows finish or join, and (4) runs one `forward.forward` pass for all rows. Rows are left-padded to a
common length with a padding mask and their own positions, the standard layout of batched
generation in transformers; a row that decodes alone keeps its own cache (or the static slot).

Tokens the grammar forces (jump-forward) ride along in the same pass while a sequence decodes
alone; in a batch they are fed one per step without sampling, so every row advances one token a pass.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import torch

from agentkit.engine.forward import forward, prefill
from agentkit.engine.grammar import BatchMask
from agentkit.engine.kv_cache import common_prefix, copy_positions, new_cache
from agentkit.engine.prompt_tokens import DEFAULT_PREFILL_CHUNK
from agentkit.engine.sampling import choose_next
from agentkit.engine.sequence import DecodeRequest, DecodeResult, SequenceState
from agentkit.engine.static_cache import StaticSlot


class BatchScheduler:
    """Runs every decode of one model on one thread, stepping all active sequences together.

    With `static_tokens`, a sequence that decodes alone uses a `StaticSlot` (a pre-allocated KV cache
    and, with `compile`, a CUDA-graph one-token step); it is built on the scheduler thread because
    CUDA graphs belong to the thread that recorded them. `vocab_size` is the grammar's vocabulary
    (the width of the batch bitmask).

    Example:
        >>> scheduler = BatchScheduler(model, vocab_size=49152, max_batch=8)    # doctest: +SKIP
        >>> scheduler.submit(DecodeRequest(prompt_ids=ids, max_new_tokens=16, eos_ids={2}, cache=new_cache())).tokens  # doctest: +SKIP
        [504, 3458, 314]
    """

    def __init__(
        self, model: Any, *, vocab_size: int, max_batch: int = 32, static_tokens: int = 0, compile: bool = False,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    ) -> None:
        self.model = model
        self.max_batch = max_batch
        self.prefill_chunk = prefill_chunk
        self.scale_bucket = _position_scale_bucket(model)
        self.mask = BatchMask(vocab_size, max_batch, pin_memory=model.device.type == "cuda")
        self._deferred: list[SequenceState] = []  # queued sequences that may not join the running batch yet (see _may_join)
        self.slot: StaticSlot | None = None
        self._queue: queue.Queue[SequenceState] = queue.Queue()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(static_tokens, compile), name="agentkit-batcher", daemon=True)
        self._thread.start()
        self._ready.result()  # re-raises a failure to build the static slot here, in the constructor
        self.largest_batch = 1  # for tests and benchmarks: most rows ever decoded in one pass

    def submit(self, request: DecodeRequest) -> DecodeResult:
        """Queue `request` and block until it has finished decoding (together with whatever else runs).

        Example:
            >>> scheduler.submit(request).finish_reason    # doctest: +SKIP
            'stop'
        """
        state = SequenceState(request, cache=request.cache, cached_tokens=request.cached_tokens)
        self._queue.put(state)
        return state.future.result()

    # -- scheduler thread ------------------------------------------------------------------------

    def _run(self, static_tokens: int, compile: bool) -> None:
        try:
            if static_tokens:
                self.slot = StaticSlot(self.model, static_tokens, compile=compile, prefill_chunk=self.prefill_chunk)
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        active: list[SequenceState] = []
        stacked: list[SequenceState] = []  # the rows of `batch`, in order (a lone row's batch is its own cache)
        batch: Any = None
        while True:
            self._admit(active, block=not active)
            if not active:
                continue
            try:
                with torch.inference_mode():
                    self._choose(active)
                    remaining = [seq for seq in active if not seq.finish]
                    stacked, batch = _regroup(stacked, batch, remaining)
                    for seq in active:
                        if seq.finish:
                            self._complete(seq)
                    active = list(stacked)  # a copy: _admit appends to active
                    if not active:
                        continue
                    self._forward(active, batch)
            except BaseException as exc:
                for seq in active:
                    if not seq.future.done():
                        seq.future.set_exception(exc)
                active, stacked, batch = [], [], None

    def _admit(self, active: list[SequenceState], *, block: bool) -> None:
        while len(active) < self.max_batch:
            seq = self._next(active, block=block)
            if seq is None:
                return
            block = False
            try:
                self._prefill(seq, alone=not active)
            except BaseException as exc:
                seq.future.set_exception(exc)
                continue
            active.append(seq)

    def _next(self, active: list[SequenceState], *, block: bool) -> SequenceState | None:
        """The oldest waiting sequence that may join `active`; those that may not wait (in order) for a later turn."""
        for index, seq in enumerate(self._deferred):
            if self._may_join(seq, active):
                return self._deferred.pop(index)
        while True:
            try:
                seq = self._queue.get(block=block and not self._deferred)
            except queue.Empty:
                return None
            if self._may_join(seq, active):
                return seq
            self._deferred.append(seq)
            block = False

    def _may_join(self, seq: SequenceState, active: list[SequenceState]) -> bool:
        """False when batching would give some row the wrong position-dependent attention scale.

        Llama 4's no-RoPE layers scale queries by floor((position + 1) / floor_scale), and
        transformers takes that position from the batch cache's length, not from each row's
        `position_ids`: in a left-padded batch a shorter row gets the longest row's scale. Rows may
        share a batch only while every position any of them will reach is in the same scale bucket.
        """
        if not self.scale_bucket or not active:
            return True
        spans = [(len(s.cache_ids), len(s.cache_ids) + s.budget) for s in active]
        prompt = len(seq.request.prompt_ids)
        spans.append((prompt, prompt + seq.request.max_new_tokens))
        low, high = min(s for s, _ in spans), max(e for _, e in spans)
        return (low + 1) // self.scale_bucket == (high + 1) // self.scale_bucket

    def _prefill(self, seq: SequenceState, *, alone: bool) -> None:
        request, slot = seq.request, self.slot
        seq.started = time.perf_counter()
        with torch.inference_mode():
            if alone and slot is not None and not request.multimodal and slot.fits(len(request.prompt_ids) + request.max_new_tokens):
                self._prefill_into_slot(seq, slot)
            else:
                seq.logits = prefill(
                    self.model, request.prompt_ids[seq.cached_tokens :], seq.cache, chunk=self.prefill_chunk,
                    inputs_end=request.inputs_end, **request.inputs,
                )
        seq.cache_ids = list(request.prompt_ids)
        seq.forward_passes = 1
        seq.prefill_seconds = time.perf_counter() - seq.started

    def _prefill_into_slot(self, seq: SequenceState, slot: StaticSlot) -> None:
        """Continue from what the slot already holds, or from the prefix cache's entry if that is longer."""
        prompt = seq.request.prompt_ids
        held = min(common_prefix(slot.ids, prompt), len(prompt) - 1)
        if seq.cached_tokens > held:
            slot.load(seq.cache, prompt[: seq.cached_tokens])
        else:
            slot.truncate(held)
        seq.cache, seq.cached_tokens = slot.kv, len(slot.ids)
        seq.logits = slot.forward(prompt[seq.cached_tokens :])

    def _choose(self, active: list[SequenceState]) -> None:
        """Pick every row's next input: a queued forced token, or (masked) sampling; mark finished rows.

        The grammar masks of all rows that sample are filled together first (on the CPU, while the
        GPU may still be computing their logits), then applied to their logits in one operation.
        """
        sampling = []
        for seq in active:
            if seq.request.cancelled:
                seq.finish = "cancelled"  # frees the row at once; the caller has stopped waiting
            elif seq.forced:  # already counted in seq.tokens when it was forced
                seq.feed = [seq.forced.pop(0)]
            else:
                sampling.append(seq)
        constrained = [seq for seq in sampling if seq.request.matcher is not None]
        wanted: dict[int, int] = {}  # the model's own first choice where a number could run on (run_on.py)
        for seq in constrained:
            guard, previous = seq.request.run_on_guard, seq.tokens[-1] if seq.tokens else None
            if guard is not None and guard.watches(previous):
                wanted[id(seq)] = guard.first_choice(seq.logits)
        if constrained:
            started = time.perf_counter()
            self.mask.fill([seq.request.matcher for seq in constrained])
            logits = constrained[0].logits.unsqueeze(0) if len(constrained) == 1 else torch.stack([s.logits for s in constrained])
            self.mask.apply(logits)
            for row, seq in enumerate(constrained):
                seq.logits = logits[row]
                seq.mask_seconds += time.perf_counter() - started  # the time each row waited for the batch's masks
        for seq in sampling:
            self._sample(seq, wanted.get(id(seq)))

    def _sample(self, seq: SequenceState, wanted: int | None) -> None:
        """Sample from `seq.logits` (already masked), advance the grammar, take the tokens it forces."""
        request = seq.request
        logits, seq.logits = seq.logits, None
        choice = choose_next(
            logits, matcher=request.matcher, mask=None, temperature=request.temperature, top_p=request.top_p,
            generator=request.generator, eos_ids=request.eos_ids, jump_forward=request.jump_forward, budget=seq.budget,
            run_on_guard=request.run_on_guard, previous=seq.tokens[-1] if seq.tokens else None, wanted=wanted,
        )
        seq.jump_forward_tokens += choice.forced
        if choice.ended:
            seq.finish = "stop"
            return
        seq.tokens += choice.tokens
        seq.feed, seq.forced = choice.tokens[:1], choice.tokens[1:]
        if choice.complete:
            seq.finish = "stop"  # the remaining forced tokens need no forward pass
        elif seq.budget <= 0:
            seq.finish = "length"

    def _forward(self, active: list[SequenceState], batch: Any) -> None:
        if len(active) == 1:  # alone: forced tokens ride along with the sampled one (jump-forward)
            seq = active[0]
            seq.feed, seq.forced = seq.feed + seq.forced, []
            if self.slot is not None and seq.cache is self.slot.kv:
                seq.logits = self.slot.forward(seq.feed)
            else:
                seq.logits = forward(self.model, batch, [seq.feed])[0]
            seq.cache_ids += seq.feed
            seq.forward_passes += 1
            return
        self.largest_batch = max(self.largest_batch, len(active))
        logits = forward(self.model, batch, [seq.feed[:1] for seq in active], lengths=[len(seq.cache_ids) for seq in active])
        for row, seq in enumerate(active):
            seq.logits = logits[row]
            seq.cache_ids += seq.feed[:1]
            seq.forward_passes += 1

    def _complete(self, seq: SequenceState) -> None:
        if self.slot is not None and seq.cache is self.slot.kv:
            # The slot is reused in place by the next step; the prefix cache gets a copy, so other
            # conversations that take the slot later do not cost this one its prefix.
            seq.cache = self.slot.snapshot()
        seq.future.set_result(seq.result())


def _position_scale_bucket(model: Any) -> int:
    """Positions per attention-scale bucket for models whose attention depends on absolute position
    beyond RoPE (Llama 4's `attn_temperature_tuning`), else 0."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    no_rope = [layer for layer in (getattr(config, "no_rope_layers", None) or []) if not layer]  # 0 marks a NoPE layer
    if getattr(config, "attn_temperature_tuning", False) and no_rope:
        return int(getattr(config, "floor_scale", 0) or 0)
    return 0


def _regroup(stacked: list[SequenceState], batch: Any, remaining: list[SequenceState]) -> tuple[list[SequenceState], Any]:
    """Update the batch for the rows that stay, leave and join; return the new row order and cache.

    One copy per membership change: leaving rows get their own cache cut out, staying rows are kept
    (left padding trimmed to the longest one), joining rows are appended.
    """
    staying_ids = {id(seq) for seq in remaining}
    kept = [seq for seq in stacked if id(seq) in staying_ids]
    joining = [seq for seq in remaining if all(seq is not other for other in stacked)]
    if len(kept) == len(stacked) and not joining:
        return stacked, batch
    if len(stacked) > 1:
        for seq in stacked:
            if id(seq) not in staying_ids:
                seq.cache = _cut_row(batch, stacked.index(seq), len(seq.cache_ids))
    rows = kept + joining
    if not rows:
        return [], None
    if len(rows) == 1:
        seq = rows[0]
        if len(stacked) > 1 and kept:
            seq.cache = _cut_row(batch, stacked.index(seq), len(seq.cache_ids))
        return rows, seq.cache
    return rows, _rebuild(stacked, batch, kept, joining)


def _cut_row(batch: Any, row: int, length: int) -> Any:
    """One row's positions (right-aligned in the left-padded batch) as its own cache."""
    width = batch.get_seq_length()
    return copy_positions(batch, width - length, width, row=row)


def _rebuild(stacked: list[SequenceState], batch: Any, kept: list[SequenceState], joining: list[SequenceState]) -> Any:
    """A left-padded batch cache holding `kept` (taken from `batch`) then `joining` (their own caches)."""
    rows = kept + joining
    width = max(len(seq.cache_ids) for seq in rows)
    old_width = batch.get_seq_length() if batch is not None else 0
    source = {id(seq): i for i, seq in enumerate(stacked)} if len(stacked) > 1 else {}
    layers = len(rows[0].cache.layers) if not source else len(batch.layers)
    new = new_cache()
    for index in range(layers):
        sample_keys = batch.layers[index].keys if source else rows[0].cache.layers[index].keys
        keys = sample_keys.new_zeros((len(rows), sample_keys.shape[1], width, sample_keys.shape[3]))
        values = keys.clone()
        for row, seq in enumerate(rows):
            n = len(seq.cache_ids)
            if id(seq) in source:
                i = source[id(seq)]
                keys[row, :, width - n :] = batch.layers[index].keys[i, :, old_width - n :]
                values[row, :, width - n :] = batch.layers[index].values[i, :, old_width - n :]
            else:
                keys[row, :, width - n :] = seq.cache.layers[index].keys[0, :, :n]
                values[row, :, width - n :] = seq.cache.layers[index].values[0, :, :n]
        new.update(keys, values, index)
    return new
