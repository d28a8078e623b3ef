"""The one decode loop both engines run (`engine/sampling.py`), over a scripted forward pass."""

from __future__ import annotations

import threading

import numpy as np

from agentkit.engine.sampling import decode_loop, sample

VOCAB, EOS = 8, 7


def _prefer(token: int) -> np.ndarray:
    logits = np.zeros(VOCAB, dtype=np.float32)
    logits[token] = 5.0
    return logits


def test_the_loop_stops_at_the_end_token_and_counts_its_passes():
    script = iter([_prefer(3), _prefer(EOS)])
    seen: list[list[int]] = []

    def forward(ids):
        seen.append(ids)
        return next(script)

    result = decode_loop(_prefer(2), forward, max_new_tokens=10, eos_ids={EOS})
    assert result.tokens == [2, 3] and result.finish_reason == "stop"
    assert result.forward_passes == 3 and seen == [[2], [3]]  # the prefill's logits, then one pass per token


def test_the_budget_ends_a_reply_that_never_stops():
    result = decode_loop(_prefer(1), lambda ids: _prefer(1), max_new_tokens=4, eos_ids={EOS})
    assert result.tokens == [1, 1, 1, 1] and result.finish_reason == "length"


def test_a_cancelled_decode_returns_what_it_has():
    cancel = threading.Event()

    def forward(ids):
        cancel.set()  # cancelled from "another thread" while this pass ran
        return _prefer(4)

    result = decode_loop(_prefer(4), forward, max_new_tokens=10, eos_ids={EOS}, cancel=cancel)
    assert result.tokens == [4] and result.finish_reason == "length"


def test_seeded_numpy_sampling_is_reproducible_and_greedy_takes_the_top_token():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32))
    draws = [sample(logits.copy(), 1.0, 1.0, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(draws)) == 1
    assert sample(logits.copy(), 0.0, 1.0, None) == 3
