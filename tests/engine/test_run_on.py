"""A number the model has finished never runs on into the next value (`engine/run_on.py`), on a real tokenizer and grammar."""

from __future__ import annotations

import numpy as np
import pytest

from agentkit.constraints import JsonSchemaConstraint
from agentkit.engine.grammar import GrammarCompiler, TokenMask
from agentkit.engine.run_on import RunOnGuard
from agentkit.engine.sampling import decode_loop

ONE_INTEGER = {
    "type": "object", "properties": {"loan_term": {"type": "integer"}}, "required": ["loan_term"], "additionalProperties": False,
}


@pytest.fixture(scope="module")
def compiler(smollm2_tokenizer):
    return GrammarCompiler(smollm2_tokenizer)


def _listing_model(tokenizer, wants: str, then: str):
    """A scripted model that writes `wants` token by token; where the grammar forbids its choice, `then` is its second choice."""
    wanted_ids = tokenizer(wants, add_special_tokens=False)["input_ids"]
    second = tokenizer(then, add_special_tokens=False)["input_ids"][0]
    closing = tokenizer("}", add_special_tokens=False)["input_ids"][0]
    written: list[int] = []

    def logits_after(ids: list[int]) -> np.ndarray:
        written.extend(ids)
        logits = np.zeros(len(tokenizer), dtype=np.float32)
        if written == wanted_ids[: len(written)] and len(written) < len(wanted_ids):
            logits[wanted_ids[len(written)]] = 10.0
        logits[second] = max(logits[second], 5.0)  # the next value's digits come next...
        logits[closing] = max(logits[closing], 2.0)  # ...then closing the object
        return logits

    return logits_after


@pytest.mark.parametrize("guarded", [True, False])
def test_a_model_listing_values_for_one_integer_gets_its_first_value_not_a_merged_one(smollm2_tokenizer, compiler, guarded):
    # "a loan term of 15, 20 and 30 years" with one integer argument: the model writes 15 and wants a comma.
    forward = _listing_model(smollm2_tokenizer, '{"loan_term": 15, 20', then="2")
    matcher = compiler.matcher(JsonSchemaConstraint(json_schema=ONE_INTEGER))
    result = decode_loop(
        forward([]), forward, max_new_tokens=20, eos_ids={smollm2_tokenizer.eos_token_id}, matcher=matcher,
        mask=TokenMask(compiler.vocab_size), run_on_guard=compiler.run_on_guard if guarded else None,
    )
    text = smollm2_tokenizer.decode(result.tokens)
    if guarded:
        assert text == '{"loan_term": 15}'
    else:  # what the grammar alone made of it: valid, and a value nobody asked for
        assert text.startswith('{"loan_term": 152')


def test_a_model_that_wants_more_digits_keeps_them(smollm2_tokenizer, compiler):
    forward = _listing_model(smollm2_tokenizer, '{"loan_term": 1520}', then="}")
    matcher = compiler.matcher(JsonSchemaConstraint(json_schema=ONE_INTEGER))
    result = decode_loop(
        forward([]), forward, max_new_tokens=20, eos_ids={smollm2_tokenizer.eos_token_id}, matcher=matcher,
        mask=TokenMask(compiler.vocab_size), run_on_guard=compiler.run_on_guard,
    )
    assert smollm2_tokenizer.decode(result.tokens) == '{"loan_term": 1520}'


def test_the_guard_only_acts_right_after_a_digit_and_when_an_ending_token_is_allowed():
    guard = RunOnGuard([b"1", b"5", b"20", b",", b"}", b"a", b'"'])
    logits = np.array([0.0, 0.0, 2.0, -np.inf, 1.0, 0.0, 0.0])  # "," masked; "20" and "}" allowed
    assert guard.correct(logits.copy(), token=2, wanted=3, previous=1) == 4  # after "5": "}" instead of "20"
    assert guard.correct(logits.copy(), token=2, wanted=3, previous=6) == 2  # after a quote: a number starts, nothing runs on
    assert guard.correct(logits.copy(), token=2, wanted=5, previous=1) == 2  # the model wanted a letter, not an ending
    no_ending = np.array([0.0, 0.0, 2.0, -np.inf, -np.inf, 0.0, 0.0])
    assert guard.correct(no_ending, token=2, wanted=3, previous=1) == 2  # nothing that ends the value is allowed


def test_the_guard_reads_torch_logits_the_same_way():
    torch = pytest.importorskip("torch")
    guard = RunOnGuard([b"1", b"5", b"20", b",", b"}", b"a", b'"'])
    logits = torch.tensor([0.0, 0.0, 2.0, 9.0, 1.0, 0.0, 0.0])
    wanted = guard.first_choice(logits)
    logits[3] = float("-inf")
    assert wanted == 3 and guard.correct(logits, token=2, wanted=wanted, previous=1) == 4
    assert guard.correct(torch.tensor([0.0, 0.0, 2.0, float("-inf"), float("-inf"), 0.0, 0.0]), token=2, wanted=3, previous=1) == 2
