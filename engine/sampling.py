"""Choosing the next tokens: mask the logits with the grammar, sample, then take the tokens it forces.

Both engines pick tokens here: the torch engine's decode loops (`decode.py`, `batching.py`) with
torch tensors, the llama.cpp engine (`gguf_engine.py`) with numpy arrays. This module imports no
torch: the llama.cpp engine never loads it (an import costs ~1.5 s and ~150 MB, and a torch op
would start OpenMP threads that contend with llama.cpp's for the same cores).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentkit.engine.run_on import RunOnGuard
from agentkit.errors import GrammarError


def sample(logits: Any, temperature: float, top_p: float, generator: Any) -> int:
    """Greedy when `temperature` is 0, else temperature + nucleus (top-p) sampling.

    `logits` is a torch tensor with a `torch.Generator`, or a numpy array with a
    `numpy.random.Generator` (the llama.cpp engine's). That engine never runs a torch op per token:
    torch's OpenMP threads would then contend with llama.cpp's for the same cores (measured: decode
    1.5-4x slower for the rest of the process), and numpy's argmax is 20x faster on a CPU vector.
    """
    if isinstance(logits, np.ndarray):
        return _sample_numpy(logits, temperature, top_p, generator)
    import torch  # a torch tensor: torch is already loaded

    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p  # always keeps the top token
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


def _sample_numpy(logits: np.ndarray, temperature: float, top_p: float, generator: Any) -> int:
    if temperature <= 0:
        return int(np.argmax(logits))
    candidates = np.flatnonzero(np.isfinite(logits))  # under a grammar: only the allowed tokens
    scaled = logits[candidates].astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    if top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        sorted_probs = probs[order]
        cumulative = np.cumsum(sorted_probs)
        keep = cumulative - sorted_probs < top_p * cumulative[-1]  # always keeps the top token
        candidates, probs = candidates[order[keep]], sorted_probs[keep]
    cumulative = np.cumsum(probs)
    rng = generator if generator is not None else np.random.default_rng()
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return int(candidates[min(index, len(candidates) - 1)])


@dataclass
class Choice:
    """What one sequence does next: `tokens` to append (sampled first, then any grammar-forced ones),
    or `ended` at an end token; `complete` when the grammar admits nothing more."""

    tokens: list[int]
    ended: bool = False
    complete: bool = False
    forced: int = 0
    mask_seconds: float = 0.0


def choose_next(
    logits: Any,
    *,
    matcher: Any | None,
    mask: Any | None,
    temperature: float,
    top_p: float,
    generator: Any | None,
    eos_ids: set[int],
    jump_forward: bool,
    budget: int,
    run_on_guard: RunOnGuard | None = None,
    previous: int | None = None,
    wanted: int | None = None,
) -> Choice:
    """Mask, sample, advance the grammar, and collect the tokens it then forces (at most `budget` in all).

    Shared by the single-sequence loop below and the batch scheduler, so both decode identically.
    With `mask` None the logits are taken as already masked (the scheduler masks all rows at once,
    having read the model's own first choice, `wanted`, before). `run_on_guard` keeps a finished
    number from running on into the next (`run_on.py`); `previous` is the last token decoded.
    """
    mask_seconds = 0.0
    if matcher is not None and mask is not None:
        if wanted is None and run_on_guard is not None and run_on_guard.watches(previous):
            wanted = run_on_guard.first_choice(logits)
        started = time.perf_counter()
        mask.fill(matcher)
        mask.apply(logits)
        mask_seconds = time.perf_counter() - started
    token = sample(logits, temperature, top_p, generator)
    if matcher is not None and run_on_guard is not None and wanted is not None:
        token = run_on_guard.correct(logits, token=token, wanted=wanted, previous=previous)
    if token in eos_ids and (matcher is None or matcher.is_accepting()):
        return Choice(tokens=[], ended=True, mask_seconds=mask_seconds)
    tokens = [token]
    if matcher is not None:
        if not matcher.consume_token(token):
            raise GrammarError(f"The grammar rejected token {token}: {matcher.get_error()}. This is a bug; please report it.")
        if jump_forward and not matcher.is_stopped():
            ff = matcher.compute_ff_tokens()[: budget - 1]
            if ff:
                if not matcher.consume_tokens(ff):
                    raise GrammarError(f"The grammar rejected its own forced tokens: {matcher.get_error()}.")
                tokens += ff
    complete = matcher is not None and matcher.is_stopped()
    return Choice(tokens=tokens, complete=complete, forced=len(tokens) - 1, mask_seconds=mask_seconds)


@dataclass
class Decoded:
    """What `decode_loop` produced: the tokens (without the end token) and where the work went."""

    tokens: list[int]
    finish_reason: str  # "stop" (grammar complete or end token) or "length" (budget, or cancelled)
    forward_passes: int  # logits rows used, the prefill's included: jump-forward makes this smaller than len(tokens)
    jump_forward_tokens: int
    mask_seconds: float


def decode_loop(
    logits: Any,
    forward: Callable[[list[int]], Any],
    *,
    max_new_tokens: int,
    eos_ids: set[int],
    matcher: Any | None = None,
    mask: Any | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: Any | None = None,
    jump_forward: bool = True,
    cancel: threading.Event | None = None,
    run_on_guard: RunOnGuard | None = None,
) -> Decoded:
    """One sequence's decode loop: choose the next tokens from `logits`, run them through `forward`, repeat.

    `logits` are the prefilled prompt's last logits; `forward(ids)` appends `ids` to the sequence and
    returns the logits after them (None stops the loop: cancelled). Stops when the grammar is
    complete, at an end token, after `max_new_tokens`, or when `cancel` is set; `run_on_guard` (the
    grammar's, `GrammarCompiler.run_on_guard`) keeps finished numbers from running on. The torch reference
    loop (`decode.decode`) and the llama.cpp engine run this very loop over their own forward pass.

    Example:
        >>> decode_loop(first_logits, lambda ids: model_step(ids), max_new_tokens=64, eos_ids={2})  # doctest: +SKIP
    """
    tokens: list[int] = []
    passes = forced = 0
    mask_seconds = 0.0
    finish = "length"
    while logits is not None and len(tokens) < max_new_tokens:
        if cancel is not None and cancel.is_set():
            break
        passes += 1
        choice = choose_next(
            logits, matcher=matcher, mask=mask, temperature=temperature, top_p=top_p, generator=generator,
            eos_ids=eos_ids, jump_forward=jump_forward, budget=max_new_tokens - len(tokens),
            run_on_guard=run_on_guard, previous=tokens[-1] if tokens else None,
        )
        mask_seconds += choice.mask_seconds
        forced += choice.forced
        if choice.ended:
            finish = "stop"
            break
        tokens += choice.tokens
        if choice.complete:  # the step is complete: no forward pass needed
            finish = "stop"
            break
        if len(tokens) >= max_new_tokens:
            break
        logits = forward(choice.tokens)
    return Decoded(tokens=tokens, finish_reason=finish, forward_passes=passes, jump_forward_tokens=forced, mask_seconds=mask_seconds)
