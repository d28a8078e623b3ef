"""Continuous batching: concurrent requests decode together and get exactly what they'd get alone."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest

from agentkit import Agent, MaxStepsExceeded, SamplingSettings, StepLimits
from agentkit.constraints import JsonSchemaConstraint
from agentkit.tools import calculator

QUESTIONS = ["What is 17 * 23?", "What is 45 + 78?", "How much is 1200 / 16?", "Compute 2 to the power of 10.",
             "What is 9 * 9 - 7?", "Add 5 and 6.", "What is 100 - 37?", "Multiply 12 by 12."]


def _math_agent_builder():
    path = Path(__file__).resolve().parents[2] / "examples" / "math_assistant.py"
    spec = importlib.util.spec_from_file_location("math_assistant", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_agent


@pytest.mark.slow
def test_batched_agents_write_the_same_steps_as_sequential_ones(smollm2_torch):
    from agentkit.engine import LocalEngine

    build_agent = _math_agent_builder()
    sequential = LocalEngine.from_model(smollm2_torch.model, smollm2_torch.tokenizer, max_batch=1)
    batched = LocalEngine.from_model(smollm2_torch.model, smollm2_torch.tokenizer, max_batch=8)
    alone = [[s.raw_output for s in build_agent(sequential).run(q).steps] for q in QUESTIONS]

    async def together():
        return await asyncio.gather(*(build_agent(batched).arun(q) for q in QUESTIONS))

    results = asyncio.run(together())
    assert [[s.raw_output for s in r.steps] for r in results] == alone
    assert batched._scheduler.largest_batch > 1, "the requests never decoded together"
    assert "391" in str(results[0].output)


def test_concurrent_random_agents_only_write_valid_steps(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, seed=21), smollm2_tokenizer, max_batch=8)
    limits = StepLimits(string_chars=24, max_calls=2, array_items=3)

    async def one(seed: int):
        agent = Agent(engine, tools=[calculator], limits=limits, max_steps=2, sampling=SamplingSettings(temperature=1.0, seed=seed))
        try:
            return (await agent.arun(f"task {seed}")).steps
        except MaxStepsExceeded as exc:
            return exc.partial.steps

    async def many():
        return await asyncio.gather(*(one(seed) for seed in range(16)))

    runs = asyncio.run(many())
    steps = [step for run in runs for step in run]
    assert len(steps) >= 16
    for step in steps:
        json.loads(step.raw_output)
        assert step.rejected_outputs == []
        assert all(o.error_type not in {"unknown_tool", "invalid_arguments"} for o in step.observations)
    assert engine._scheduler.largest_batch > 1


def test_a_failing_request_does_not_take_the_others_down(smollm2_tokenizer, make_tiny_llama):
    from agentkit import GenerationRequest, Message
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, seed=3), smollm2_tokenizer, max_batch=4)
    good = GenerationRequest(messages=[Message(role="user", content="hi")], max_tokens=6)
    bad = GenerationRequest(messages=[Message(role="user", content="hi")], constraint=JsonSchemaConstraint(json_schema={"type": "nonsense-type"}), max_tokens=6)

    async def both():
        return await asyncio.gather(engine.agenerate(good), engine.agenerate(bad), engine.agenerate(good), return_exceptions=True)

    first, error, third = asyncio.run(both())
    assert isinstance(error, Exception)
    assert first.completion_tokens == 6 and third.completion_tokens == 6


def test_one_batch_mask_filled_for_all_rows_at_once_masks_each_row_under_its_own_grammar(smollm2_tokenizer):
    """The scheduler's parallel fill gives every row exactly the mask its own matcher gives alone,
    and tokens past the tokenizer's vocabulary (a padded embedding) are never allowed."""
    import torch

    from agentkit.engine.grammar import BatchMask, GrammarCompiler, TokenMask

    compiler = GrammarCompiler(smollm2_tokenizer)
    schemas = [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"type": "boolean"}, {"enum": ["yes", "no"]}]
    matchers = [compiler.matcher(JsonSchemaConstraint(json_schema=schema)) for schema in schemas]
    assert matchers[0].consume_tokens(smollm2_tokenizer('{"a": ', add_special_tokens=False)["input_ids"])  # mid-value
    batch = BatchMask(compiler.vocab_size, rows=4)
    batch.fill(matchers)
    logits = torch.zeros((3, compiler.vocab_size + 5))
    batch.apply(logits)
    for row, matcher in enumerate(matchers):
        alone = TokenMask(compiler.vocab_size)
        alone.fill(matcher)
        expected = torch.zeros(compiler.vocab_size + 5)
        alone.apply(expected)
        assert torch.equal(logits[row], expected)
        assert torch.isinf(logits[row, compiler.vocab_size :]).all()
    assert not torch.equal(logits[0], logits[1])  # three grammars, three different masks
    with pytest.raises(ValueError, match="rows"):
        batch.fill(matchers * 2)
