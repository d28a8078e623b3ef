"""The static KV cache slot: same tokens as the dynamic path, prefix reuse in place, compiled step."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from agentkit import Agent, GenerationRequest, MaxStepsExceeded, Message, SamplingSettings, StepLimits
from agentkit.tools import calculator

TASKS = ["What is 2 + 2?", "What is 12 * 7?", "What is 2 + 2?"]


@pytest.fixture(scope="module")
def tiny_model(smollm2_tokenizer, make_tiny_llama):
    return make_tiny_llama(smollm2_tokenizer, seed=7)


def _engine(model, tokenizer, **options):
    from agentkit.engine import LocalEngine

    return LocalEngine.from_model(model, tokenizer, **options)


def _steps(engine, tasks, *, seed: int):
    agent = Agent(engine, tools=[calculator], limits=StepLimits(string_chars=30), max_steps=3, sampling=SamplingSettings(temperature=1.0, seed=seed))
    outputs = []
    for task in tasks:
        try:
            outputs.append([s.raw_output for s in agent.run(task).steps])
        except MaxStepsExceeded as exc:
            outputs.append([s.raw_output for s in exc.partial.steps])
    return outputs


def test_static_slot_writes_the_same_steps_as_the_dynamic_cache(smollm2_tokenizer, tiny_model):
    dynamic = _engine(tiny_model, smollm2_tokenizer, static_cache=False)
    static = _engine(tiny_model, smollm2_tokenizer, static_cache=True, compile=False)
    assert static._scheduler.slot is not None and dynamic._scheduler.slot is None
    for seed in range(3):
        assert _steps(static, TASKS, seed=seed) == _steps(dynamic, TASKS, seed=seed)


def test_the_next_step_continues_in_the_slot_and_prefills_only_new_tokens(smollm2_tokenizer, tiny_model):
    engine = _engine(tiny_model, smollm2_tokenizer, static_cache=True, compile=False, kv_cache_bytes=0)
    history = [Message(role="system", content="You answer. " * 40), Message(role="user", content="Hi")]
    first = engine.generate(GenerationRequest(messages=history, max_tokens=6, temperature=1.0, seed=3))
    assert first.details["reused_tokens"] == 0
    history += [Message(role="assistant", content=first.text), Message(role="tool", content="result: 42")]
    second = engine.generate(GenerationRequest(messages=history, max_tokens=6, temperature=1.0, seed=3))
    # No prefix cache at all (kv_cache_bytes=0): the reuse comes from the slot itself.
    assert second.details["reused_tokens"] >= first.prompt_tokens
    assert second.details["prefill_tokens"] == engine.count_tokens(history) - second.details["reused_tokens"]


def test_a_conversation_gets_its_prefix_back_after_another_one_used_the_slot(smollm2_tokenizer, tiny_model):
    engine = _engine(tiny_model, smollm2_tokenizer, static_cache=True, compile=False)
    first = [Message(role="system", content="Alpha. " * 40), Message(role="user", content="One")]
    other = [Message(role="system", content="Beta! " * 40), Message(role="user", content="Two")]
    reply = engine.generate(GenerationRequest(messages=first, max_tokens=4, temperature=1.0, seed=1))
    engine.generate(GenerationRequest(messages=other, max_tokens=4, temperature=1.0, seed=1))  # overwrites the slot
    first += [Message(role="assistant", content=reply.text), Message(role="user", content="Again")]
    again = engine.generate(GenerationRequest(messages=first, max_tokens=4, temperature=1.0, seed=1))
    assert again.details["reused_tokens"] >= reply.prompt_tokens  # loaded back from the prefix cache's copy


def test_a_request_joining_the_slot_sequence_gives_the_same_steps_as_alone(smollm2_tokenizer, tiny_model):
    alone = _engine(tiny_model, smollm2_tokenizer, static_cache=True, compile=False, max_batch=1)
    batched = _engine(tiny_model, smollm2_tokenizer, static_cache=True, compile=False, max_batch=4)
    questions = ["What is 1 + 1?", "What is 3 * 3?", "What is 10 - 4?"]

    def agent(engine, seed):
        return Agent(engine, tools=[calculator], limits=StepLimits(string_chars=30), max_steps=2, sampling=SamplingSettings(temperature=1.0, seed=seed))

    async def run_all(engine):
        async def one(i, q):
            try:
                return [s.raw_output for s in (await agent(engine, i).arun(q)).steps]
            except MaxStepsExceeded as exc:
                return [s.raw_output for s in exc.partial.steps]

        return await asyncio.gather(*(one(i, q) for i, q in enumerate(questions)))

    expected = asyncio.run(run_all(alone))
    assert asyncio.run(run_all(batched)) == expected
    assert batched._scheduler.largest_batch > 1, "the requests never decoded together"


def test_a_context_longer_than_the_slot_falls_back_to_the_dynamic_cache(smollm2_tokenizer, tiny_model):
    from agentkit.engine.static_cache import StaticSlot

    engine = _engine(tiny_model, smollm2_tokenizer, static_cache=True, compile=False)
    engine._scheduler.slot = StaticSlot(tiny_model, 64, compile=False)  # a tiny slot for the test
    messages = [Message(role="user", content="word " * 80)]
    reply = engine.generate(GenerationRequest(messages=messages, max_tokens=8, temperature=1.0, seed=0))
    reference = _engine(tiny_model, smollm2_tokenizer, static_cache=False).generate(
        GenerationRequest(messages=messages, max_tokens=8, temperature=1.0, seed=0)
    )
    assert reply.text == reference.text
    assert engine._scheduler.slot.ids == []  # never used


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="torch.compile on CPU needs a C compiler")
def test_the_compiled_step_decodes_the_same_tokens_and_does_not_recompile_as_the_context_grows(smollm2_tokenizer, tiny_model):
    import torch

    from agentkit.engine.static_cache import StaticSlot

    eager = StaticSlot(tiny_model, 256, compile=False)
    compiled = StaticSlot(tiny_model, 256, compile=True)
    prompt = smollm2_tokenizer("The grammar decides what comes next")["input_ids"]
    counters = torch._dynamo.utils.counters
    with torch.inference_mode():
        a, b = eager.forward(prompt), compiled.forward(prompt)
        frames_before = counters["stats"]["unique_graphs"]
        for _ in range(40):  # greedy: each slot feeds its own argmax back
            assert int(a.argmax()) == int(b.argmax())
            a, b = eager.forward([int(a.argmax())]), compiled.forward([int(b.argmax())])
        compiled.truncate(len(prompt))  # crop back and continue: still no new graph
        compiled.forward([int(b.argmax())])
    assert torch.allclose(a, b, atol=1e-4)
    assert counters["stats"]["unique_graphs"] == frames_before, "the one-token step was recompiled"


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["The capital of France is", "def fibonacci(n):", "Écris une phrase sur la mer."])
def test_static_slot_greedy_equals_hf_generate(smollm2_torch, prompt):
    import torch

    from agentkit.engine.static_cache import StaticSlot

    slot = StaticSlot(smollm2_torch.model, 128, compile=False)
    ids = smollm2_torch.tokenizer(prompt)["input_ids"]
    with torch.inference_mode():
        reference = smollm2_torch.model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False, eos_token_id=None)
        logits, ours = slot.forward(ids), []
        for _ in range(24):
            ours.append(int(logits.argmax()))
            logits = slot.forward(ours[-1:])
    assert ours == reference[0, len(ids):].tolist()
