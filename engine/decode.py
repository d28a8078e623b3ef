"""The decode loop: prefill the prompt, then one token at a time under the grammar mask.

At each position the grammar's mask (computed on the CPU by llguidance) sets every token the step
format does not allow to -inf before sampling, so the output always parses. Decoding stops when the
grammar is complete, at an end-of-sequence token, or at `max_new_tokens`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from agentkit.errors import GrammarError
from agentkit.engine.grammar import TokenMask


@dataclass
class DecodeResult:
    """Generated token ids (without the end token) and where the time went."""

    tokens: list[int]
    finish_reason: str  # "stop" (grammar complete or end token) or "length"
    forward_passes: int
    prefill_seconds: float
    decode_seconds: float
    mask_seconds: float


def sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Greedy when `temperature` is 0, else temperature + nucleus (top-p) sampling."""
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
) -> DecodeResult:
    """Generate up to `max_new_tokens` after `prompt_ids`, constrained by `matcher` when given."""
    from transformers import DynamicCache

    device = model.device
    cache = DynamicCache()
    started = time.perf_counter()
    out = model(input_ids=torch.tensor([prompt_ids], device=device), past_key_values=cache, use_cache=True, logits_to_keep=1)
    logits = out.logits[0, -1].float()
    prefill_seconds = time.perf_counter() - started

    tokens: list[int] = []
    forward_passes, mask_seconds, finish = 1, 0.0, "length"
    decode_started = time.perf_counter()
    for _ in range(max_new_tokens):
        if matcher is not None and mask is not None:
            t = time.perf_counter()
            mask.fill(matcher)
            mask.apply(logits)
            mask_seconds += time.perf_counter() - t
        token = sample(logits, temperature, top_p, generator)
        if matcher is not None:
            if not matcher.consume_token(token):
                raise GrammarError(f"The grammar rejected token {token}: {matcher.get_error()}. This is a bug; please report it.")
            if matcher.is_stopped():  # the step is complete: no forward pass needed for an end token
                if token not in eos_ids:
                    tokens.append(token)
                finish = "stop"
                break
        if token in eos_ids:
            finish = "stop"
            break
        tokens.append(token)
        out = model(input_ids=torch.tensor([[token]], device=device), past_key_values=cache, use_cache=True)
        logits = out.logits[0, -1].float()
        forward_passes += 1
    return DecodeResult(
        tokens=tokens,
        finish_reason=finish,
        forward_passes=forward_passes,
        prefill_seconds=prefill_seconds,
        decode_seconds=time.perf_counter() - decode_started,
        mask_seconds=mask_seconds,
    )
