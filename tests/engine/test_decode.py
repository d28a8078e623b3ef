"""The decode loop: exact against HF generate, prefix reuse changes nothing but speed, jump-forward."""

from __future__ import annotations

import pytest

from agentkit import Agent, GenerationRequest, MaxStepsExceeded, Message, SamplingSettings, StepLimits
from agentkit.tools import calculator

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Écris une phrase sur la mer."]


@pytest.fixture(scope="module")
def random_engine(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    return LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, seed=99), smollm2_tokenizer)


@pytest.mark.slow
@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_unconstrained_equals_hf_generate(smollm2_torch, prompt):
    import torch

    from agentkit.engine.decode import decode

    ids = smollm2_torch.tokenizer(prompt)["input_ids"]
    with torch.inference_mode():
        reference = smollm2_torch.model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False, eos_token_id=None)
    ours = decode(smollm2_torch.model, ids, max_new_tokens=24, eos_ids=set())
    assert ours.tokens == reference[0, len(ids):].tolist()


def _run_steps(engine, tasks, **agent_options):
    agent = Agent(engine, tools=[calculator], limits=StepLimits(string_chars=30), max_steps=3, **agent_options)
    outputs = []
    for task in tasks:
        try:
            outputs.append([s.raw_output for s in agent.run(task).steps])
        except MaxStepsExceeded as exc:  # compare the partial steps
            outputs.append([s.raw_output for s in exc.partial.steps])
    return outputs


def test_prefix_reuse_gives_the_same_steps_as_a_cold_engine(smollm2_tokenizer, random_engine):
    from agentkit.engine import LocalEngine

    cold = LocalEngine.from_model(random_engine.model, smollm2_tokenizer, kv_cache_bytes=0)
    warm = LocalEngine.from_model(random_engine.model, smollm2_tokenizer)
    tasks = ["What is 2 + 2?", "What is 2 + 3?", "What is 2 + 2?"]
    for seed in range(3):
        sampling = SamplingSettings(temperature=1.0, seed=seed)
        assert _run_steps(warm, tasks, sampling=sampling) == _run_steps(cold, tasks, sampling=sampling)
    assert warm.prefix_cache.hits > 0 and cold.prefix_cache.hits == 0


def test_a_step_prefills_only_its_new_tokens(smollm2_tokenizer, random_engine):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(random_engine.model, smollm2_tokenizer)
    history = [Message(role="system", content="You answer. " * 50), Message(role="user", content="Hi")]
    first = engine.generate(GenerationRequest(messages=history, max_tokens=8, temperature=1.0, seed=1))
    assert first.details["reused_tokens"] == 0
    history += [Message(role="assistant", content=first.text), Message(role="tool", content="result: 42")]
    second = engine.generate(GenerationRequest(messages=history, max_tokens=8, temperature=1.0, seed=1))
    # Everything up to the previous prompt's end comes from the cache; only the reply (as re-tokenized
    # from text: a random model's reply may split differently) and the observation are prefilled.
    assert second.details["reused_tokens"] >= first.prompt_tokens
    assert second.details["prefill_tokens"] == engine.count_tokens(history) - second.details["reused_tokens"]
    assert second.details["prefill_tokens"] <= engine.count_tokens(history) - first.prompt_tokens


def test_agents_with_the_same_system_prompt_share_it(smollm2_tokenizer, random_engine):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(random_engine.model, smollm2_tokenizer)
    agent = Agent(engine, tools=[calculator], max_steps=1)
    request = GenerationRequest(messages=agent.first_messages("one"), max_tokens=4)
    engine.generate(request)
    other = request.model_copy(update={"messages": agent.first_messages("a different task")})
    generation = engine.generate(other)
    system_tokens = engine.count_tokens(agent.first_messages("")[:-1])
    assert generation.details["reused_tokens"] >= system_tokens - 4
    # The first conversation's cache was copied, not cut: asking it again reuses all of its prompt.
    again = engine.generate(request)
    assert again.details["reused_tokens"] == again.prompt_tokens - 1


def test_kv_budget_evicts_least_recently_used(smollm2_tokenizer, random_engine):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(random_engine.model, smollm2_tokenizer, kv_cache_bytes=200_000)
    for i in range(6):
        text = f"conversation {i}: " + "word " * 100
        engine.generate(GenerationRequest(messages=[Message(role="user", content=text)], max_tokens=2))
        assert engine.prefix_cache.nbytes <= 200_000
    assert len(engine.prefix_cache) >= 1


@pytest.mark.slow
def test_jump_forward_cuts_forward_passes_on_tool_calls(smollm2):
    """At least 30% fewer decode passes than generated tokens on a real tool-call step."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "math_assistant.py"
    spec = importlib.util.spec_from_file_location("math_assistant", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    agent = module.build_agent(smollm2)
    messages = agent.first_messages("What is 9 * 9 - 7?")
    generation = smollm2.generate(GenerationRequest(messages=messages, constraint=agent.tool_format.constraint(), max_tokens=128))
    decode_passes = generation.details["forward_passes"] - 1  # the first pass is the prefill
    assert generation.text.startswith('{"calls": [{"name": "calculator"')
    assert decode_passes <= 0.7 * generation.completion_tokens, generation.details
    assert generation.details["jump_forward_tokens"] > 0


def test_the_models_own_tokens_are_reused_even_when_they_retokenize_differently(smollm2_tokenizer, random_engine):
    """A random model's reply re-tokenizes differently from how it was sampled; the engine splices in
    the sampled ids, so the next step reuses the whole previous prompt and reply."""
    from agentkit.engine import LocalEngine
    from agentkit.engine.chat import render_prompt

    engine = LocalEngine.from_model(random_engine.model, smollm2_tokenizer)
    history = [Message(role="system", content="You answer. " * 50), Message(role="user", content="Hi")]
    first = engine.generate(GenerationRequest(messages=history, max_tokens=12, temperature=1.0, seed=1))
    history += [Message(role="assistant", content=first.text), Message(role="tool", content="result: 42")]
    plain = smollm2_tokenizer(render_prompt(smollm2_tokenizer, history), add_special_tokens=False)["input_ids"]
    assert engine._prompt_ids(history) != plain  # seed 1's reply really re-tokenizes differently
    second = engine.generate(GenerationRequest(messages=history, max_tokens=4, temperature=1.0, seed=1))
    # All of the first prompt and reply but the last sampled token (never run through the model) is reused.
    assert second.details["reused_tokens"] == first.prompt_tokens + first.completion_tokens - 1


@pytest.mark.parametrize("static_cache", [False, True])
def test_chunked_prefill_decodes_exactly_like_one_pass(smollm2_tokenizer, random_engine, static_cache):
    """A long prompt prefilled 16 tokens at a time gives the same logits, hence the same steps."""
    import torch
    from transformers import DynamicCache

    from agentkit.engine import LocalEngine
    from agentkit.engine.forward import prefill

    ids = smollm2_tokenizer("Numbers: " + " ".join(str(i) for i in range(150)))["input_ids"]
    assert len(ids) > 200
    with torch.inference_mode():
        whole = prefill(random_engine.model, ids, DynamicCache(), chunk=len(ids))
        chunked = prefill(random_engine.model, ids, DynamicCache(), chunk=16)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-4)

    def steps(chunk):
        engine = LocalEngine.from_model(
            random_engine.model, smollm2_tokenizer, prefill_chunk=chunk, static_cache=static_cache, compile=False, kv_cache_bytes=0
        )
        agent = Agent(engine, tools=[calculator], instructions="Be brief. " * 60, max_steps=1, limits=StepLimits(string_chars=20))
        try:
            return [s.raw_output for s in agent.run("What is 2 + 2?", ).steps]
        except MaxStepsExceeded as exc:
            return [s.raw_output for s in exc.partial.steps]

    assert steps(16) == steps(4096)


def test_prefill_chunk_must_be_positive(smollm2_tokenizer, random_engine):
    from agentkit.engine import LocalEngine

    with pytest.raises(ValueError, match="prefill_chunk"):
        LocalEngine.from_model(random_engine.model, smollm2_tokenizer, prefill_chunk=0)


def test_decode_steps_write_into_the_kv_cache_in_place(random_engine, smollm2_tokenizer):
    """A token appended to a long cache must not copy the whole cache (transformers' torch.cat does)."""
    import torch
    from transformers import DynamicCache

    from agentkit.engine.forward import prefill
    from agentkit.engine.kv_cache import cache_argument, copy_positions, new_cache

    model = random_engine.model
    ids = smollm2_tokenizer("Numbers: " + " ".join(str(i) for i in range(60)))["input_ids"]
    growing, plain = new_cache(), DynamicCache()
    with torch.inference_mode():
        prefill(model, ids, growing)
        prefill(model, ids, plain)
        buffer = growing.layers[0].keys.data_ptr()
        for token in [5, 6, 7, 8, 9, 10, 11, 12]:
            step = torch.tensor([[token]])
            ours = model(input_ids=step, **cache_argument(model, growing), use_cache=True).logits[0, -1]
            theirs = model(input_ids=step, **cache_argument(model, plain), use_cache=True).logits[0, -1]
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert growing.layers[0].keys.data_ptr() == buffer  # same storage: written in place
    assert growing.get_seq_length() == plain.get_seq_length() == len(ids) + 8
    # A copy owns its storage: writing into the original afterwards leaves the copy as it was.
    snapshot = copy_positions(growing, 0, len(ids))
    before = snapshot.layers[0].keys.clone()
    growing.crop(-18)  # back into the snapshot's positions, then overwrite them in place
    with torch.inference_mode():
        model(input_ids=torch.tensor([[99] * 18]), **cache_argument(model, growing), use_cache=True)
    assert growing.layers[0].keys.data_ptr() == buffer
    assert not torch.equal(growing.layers[0].keys[:, :, len(ids) - 10 : len(ids)], before[:, :, len(ids) - 10 :])
    torch.testing.assert_close(snapshot.layers[0].keys, before)
