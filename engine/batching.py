"""Continuous batching: concurrent requests on one engine decode together, one grammar state each.

One scheduler thread owns the model. A request is prefilled alone (reusing its cached prefix), then
joins the running batch; every decode step runs one forward pass for all active sequences. Rows are
left-padded to a common length with a padding mask and their own positions, the standard layout of
batched generation in transformers. When a sequence joins or leaves, the batch KV cache is rebuilt
from per-row caches (a copy per membership change, amortised over the tokens of a step).

Each row keeps its own grammar matcher, mask buffer, sampler settings and stop rule. Tokens the
grammar forces (jump-forward) ride along in the same pass while a sequence decodes alone; in a batch
they are fed one per step without sampling, so every row advances by one token per pass.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from agentkit.engine.decode import DecodeResult, prefill
from agentkit.engine.prompt_tokens import DEFAULT_PREFILL_CHUNK
from agentkit.engine.sampling import choose_next
from agentkit.engine.grammar import TokenMask
from agentkit.engine.kv_cache import cache_argument, common_prefix, copy_positions, new_cache
from agentkit.engine.static_cache import StaticSlot


@dataclass(eq=False)
class Job:
    """One request's decoding state."""

    prompt_ids: list[int]
    cache: Any  # this row's own DynamicCache (holds exactly `cache_ids`) while it is not in a batch
    cached_tokens: int
    max_new_tokens: int
    eos_ids: set[int]
    matcher: Any | None
    mask: TokenMask | None
    temperature: float
    top_p: float
    generator: torch.Generator | None
    jump_forward: bool
    cancel: threading.Event | None = None  # set by the caller (e.g. a client that disconnected): stop early
    inputs: dict[str, Any] = field(default_factory=dict)  # prefill-only model inputs (an image's pixel_values)
    inputs_end: int | None = None  # the position after the last image placeholder (the first prefill pass reaches it)
    multimodal: bool = False  # image patch tokens share ids across images: never continue in the static slot
    future: Future = field(default_factory=Future)
    tokens: list[int] = field(default_factory=list)
    cache_ids: list[int] = field(default_factory=list)
    feed: list[int] = field(default_factory=list)  # tokens to run through the model next
    forced: list[int] = field(default_factory=list)  # grammar-forced tokens not yet fed (batch mode)
    logits: torch.Tensor | None = None
    forward_passes: int = 0
    jump_forward_tokens: int = 0
    mask_seconds: float = 0.0
    prefill_seconds: float = 0.0
    started: float = 0.0
    finish: str = ""


class BatchScheduler:
    """Runs every decode of one model on one thread, stepping all active sequences together.

    With `static_tokens`, a sequence that decodes alone uses a `StaticSlot` (a pre-allocated KV cache
    and, with `compile`, a CUDA-graph one-token step); it is built on the scheduler thread because
    CUDA graphs belong to the thread that recorded them.
    """

    def __init__(
        self, model: Any, *, max_batch: int = 32, static_tokens: int = 0, compile: bool = False,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    ) -> None:
        self.model = model
        self.max_batch = max_batch
        self.prefill_chunk = prefill_chunk
        self.scale_bucket = _position_scale_bucket(model)
        self._deferred: list[Job] = []  # queued jobs that may not join the running batch yet (see _may_join)
        self.slot: StaticSlot | None = None
        self._queue: queue.Queue[Job] = queue.Queue()
        self._ready: Future = Future()
        self._thread = threading.Thread(target=self._run, args=(static_tokens, compile), name="agentkit-batcher", daemon=True)
        self._thread.start()
        self._ready.result()  # re-raises a failure to build the static slot here, in the constructor
        self.largest_batch = 1  # for tests and benchmarks: most rows ever decoded in one pass

    def submit(self, job: Job) -> DecodeResult:
        """Queue `job` and block until it has finished decoding."""
        self._queue.put(job)
        return job.future.result()

    # -- scheduler thread ------------------------------------------------------------------------

    def _run(self, static_tokens: int, compile: bool) -> None:
        try:
            if static_tokens:
                self.slot = StaticSlot(self.model, static_tokens, compile=compile, prefill_chunk=self.prefill_chunk)
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        active: list[Job] = []
        stacked: list[Job] = []  # the rows of `batch`, in order (a lone row's batch is its own cache)
        batch: Any = None
        while True:
            self._admit(active, block=not active)
            if not active:
                continue
            try:
                with torch.inference_mode():
                    for job in active:
                        self._choose(job)
                    remaining = [job for job in active if not job.finish]
                    stacked, batch = _regroup(stacked, batch, remaining)
                    for job in active:
                        if job.finish:
                            self._complete(job)
                    active = list(stacked)  # a copy: _admit appends to active
                    if not active:
                        continue
                    self._forward(active, batch)
            except BaseException as exc:  # noqa: BLE001 - fail the requests in flight, keep serving
                for job in active:
                    if not job.future.done():
                        job.future.set_exception(exc)
                active, stacked, batch = [], [], None

    def _admit(self, active: list[Job], *, block: bool) -> None:
        while len(active) < self.max_batch:
            job = self._next_job(active, block=block)
            if job is None:
                return
            block = False
            try:
                self._prefill(job, alone=not active)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller, the scheduler lives on
                job.future.set_exception(exc)
                continue
            active.append(job)

    def _next_job(self, active: list[Job], *, block: bool) -> Job | None:
        """The oldest waiting job that may join `active`; jobs that may not wait (in order) for a later turn."""
        for index, job in enumerate(self._deferred):
            if self._may_join(job, active):
                return self._deferred.pop(index)
        while True:
            try:
                job = self._queue.get(block=block and not self._deferred)
            except queue.Empty:
                return None
            if self._may_join(job, active):
                return job
            self._deferred.append(job)
            block = False

    def _may_join(self, job: Job, active: list[Job]) -> bool:
        """False when batching would give some row the wrong position-dependent attention scale.

        Llama 4's no-RoPE layers scale queries by floor((position + 1) / floor_scale), and
        transformers takes that position from the batch cache's length, not from each row's
        `position_ids`: in a left-padded batch a shorter row gets the longest row's scale. Rows may
        share a batch only while every position any of them will reach is in the same scale bucket.
        """
        if not self.scale_bucket or not active:
            return True
        spans = [(len(j.cache_ids), len(j.cache_ids) + j.max_new_tokens - len(j.tokens)) for j in active]
        spans.append((len(job.prompt_ids), len(job.prompt_ids) + job.max_new_tokens))
        low, high = min(s for s, _ in spans), max(e for _, e in spans)
        return (low + 1) // self.scale_bucket == (high + 1) // self.scale_bucket

    def _prefill(self, job: Job, *, alone: bool) -> None:
        job.started = time.perf_counter()
        slot = self.slot
        if alone and slot is not None and not job.multimodal and slot.fits(len(job.prompt_ids) + job.max_new_tokens):
            self._prefill_into_slot(job, slot)
            return
        with torch.inference_mode():
            job.logits = prefill(self.model, job.prompt_ids[job.cached_tokens :], job.cache, chunk=self.prefill_chunk, inputs_end=job.inputs_end, **job.inputs)
        job.cache_ids = list(job.prompt_ids)
        job.forward_passes = 1
        job.prefill_seconds = time.perf_counter() - job.started

    def _prefill_into_slot(self, job: Job, slot: StaticSlot) -> None:
        """Continue from what the slot already holds, or from the prefix cache's entry if that is longer."""
        with torch.inference_mode():
            held = min(common_prefix(slot.ids, job.prompt_ids), len(job.prompt_ids) - 1)
            if job.cached_tokens > held:
                slot.load(job.cache, job.prompt_ids[: job.cached_tokens])
            else:
                slot.truncate(held)
            job.cache, job.cached_tokens = slot.kv, len(slot.ids)
            job.logits = slot.forward(job.prompt_ids[job.cached_tokens :])
        job.cache_ids = list(job.prompt_ids)
        job.forward_passes = 1
        job.prefill_seconds = time.perf_counter() - job.started

    def _choose(self, job: Job) -> None:
        """Pick this row's next input: a queued forced token, or mask + sample; decide if it is done."""
        if job.cancel is not None and job.cancel.is_set():
            job.finish = "cancelled"  # frees the row at once; the caller has stopped waiting
            return
        if job.forced:  # already counted in job.tokens when it was forced
            job.feed = [job.forced.pop(0)]
            return
        logits, job.logits = job.logits, None
        choice = choose_next(
            logits, matcher=job.matcher, mask=job.mask, temperature=job.temperature, top_p=job.top_p,
            generator=job.generator, eos_ids=job.eos_ids, jump_forward=job.jump_forward,
            budget=job.max_new_tokens - len(job.tokens),
        )
        job.mask_seconds += choice.mask_seconds
        job.jump_forward_tokens += choice.forced
        if choice.ended:
            job.finish = "stop"
            return
        job.tokens += choice.tokens
        job.feed, job.forced = choice.tokens[:1], choice.tokens[1:]
        if choice.complete:
            job.finish = "stop"  # the remaining forced tokens need no forward pass
        elif len(job.tokens) >= job.max_new_tokens:
            job.finish = "length"

    def _forward(self, active: list[Job], batch: Any) -> None:
        device = self.model.device
        if len(active) == 1:  # alone: forced tokens ride along with the sampled one (jump-forward)
            job = active[0]
            job.feed, job.forced = job.feed + job.forced, []
            if self.slot is not None and job.cache is self.slot.kv:
                job.logits = self.slot.forward(job.feed)
            else:
                out = self.model(input_ids=torch.tensor([job.feed], device=device), **cache_argument(self.model, batch), use_cache=True, logits_to_keep=1)
                job.logits = out.logits[0, -1].float()
            job.cache_ids += job.feed
            job.forward_passes += 1
            return
        self.largest_batch = max(self.largest_batch, len(active))
        width = batch.get_seq_length()
        lengths = [len(job.cache_ids) for job in active]
        mask = torch.zeros((len(active), width + 1), dtype=torch.long, device=device)
        for row, n in enumerate(lengths):
            mask[row, width - n :] = 1  # left padding: each row's tokens end at the same column
        ids = torch.tensor([job.feed[:1] for job in active], device=device)
        positions = torch.tensor([[n] for n in lengths], device=device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, **cache_argument(self.model, batch), use_cache=True)
        for row, job in enumerate(active):
            job.logits = out.logits[row, -1].float()
            job.cache_ids += job.feed[:1]
            job.forward_passes += 1

    def _complete(self, job: Job) -> None:
        if self.slot is not None and job.cache is self.slot.kv:
            # The slot is reused in place by the next step; the prefix cache gets a copy, so other
            # conversations that take the slot later do not cost this one its prefix.
            job.cache = self.slot.snapshot()
        job.future.set_result(
            DecodeResult(
                tokens=job.tokens,
                finish_reason=job.finish if job.finish in ("stop", "cancelled") else "length",
                forward_passes=job.forward_passes,
                prefill_tokens=len(job.prompt_ids) - job.cached_tokens,
                jump_forward_tokens=job.jump_forward_tokens,
                prefill_seconds=job.prefill_seconds,
                decode_seconds=time.perf_counter() - job.started - job.prefill_seconds,
                mask_seconds=job.mask_seconds,
                cache=job.cache,
                cache_ids=job.cache_ids,
            )
        )


def _position_scale_bucket(model: Any) -> int:
    """Positions per attention-scale bucket for models whose attention depends on absolute position
    beyond RoPE (Llama 4's `attn_temperature_tuning`), else 0."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    no_rope = [layer for layer in (getattr(config, "no_rope_layers", None) or []) if not layer]  # 0 marks a NoPE layer
    if getattr(config, "attn_temperature_tuning", False) and no_rope:
        return int(getattr(config, "floor_scale", 0) or 0)
    return 0


def _regroup(stacked: list[Job], batch: Any, remaining: list[Job]) -> tuple[list[Job], Any]:
    """Update the batch for the rows that stay, leave and join; return the new row order and cache.

    One copy per membership change: leaving rows get their own cache cut out, staying rows are kept
    (left padding trimmed to the longest one), joining rows are appended.
    """
    staying_ids = {id(job) for job in remaining}
    kept = [job for job in stacked if id(job) in staying_ids]
    joining = [job for job in remaining if all(job is not other for other in stacked)]
    if len(kept) == len(stacked) and not joining:
        return stacked, batch
    if len(stacked) > 1:
        for job in stacked:
            if id(job) not in staying_ids:
                job.cache = _cut_row(batch, stacked.index(job), len(job.cache_ids))
    rows = kept + joining
    if not rows:
        return [], None
    if len(rows) == 1:
        job = rows[0]
        if len(stacked) > 1 and kept:
            job.cache = _cut_row(batch, stacked.index(job), len(job.cache_ids))
        return rows, job.cache
    return rows, _rebuild(stacked, batch, kept, joining)


def _cut_row(batch: Any, row: int, length: int) -> Any:
    """One row's positions (right-aligned in the left-padded batch) as its own cache."""
    width = batch.get_seq_length()
    return copy_positions(batch, width - length, width, row=row)


def _rebuild(stacked: list[Job], batch: Any, kept: list[Job], joining: list[Job]) -> Any:
    """A left-padded batch cache holding `kept` (taken from `batch`) then `joining` (their own caches)."""
    rows = kept + joining
    width = max(len(job.cache_ids) for job in rows)
    old_width = batch.get_seq_length() if batch is not None else 0
    source = {id(job): i for i, job in enumerate(stacked)} if len(stacked) > 1 else {}
    layers = len(rows[0].cache.layers) if not source else len(batch.layers)
    new = new_cache()
    for index in range(layers):
        sample_keys = batch.layers[index].keys if source else rows[0].cache.layers[index].keys
        keys = sample_keys.new_zeros((len(rows), sample_keys.shape[1], width, sample_keys.shape[3]))
        values = keys.clone()
        for row, job in enumerate(rows):
            n = len(job.cache_ids)
            if id(job) in source:
                i = source[id(job)]
                keys[row, :, width - n :] = batch.layers[index].keys[i, :, old_width - n :]
                values[row, :, width - n :] = batch.layers[index].values[i, :, old_width - n :]
            else:
                keys[row, :, width - n :] = job.cache.layers[index].keys[0, :, :n]
                values[row, :, width - n :] = job.cache.layers[index].values[0, :, :n]
        new.update(keys, values, index)
    return new
