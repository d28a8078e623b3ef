"""The engine on CUDA: same guarantee, same API. Skipped cleanly on machines without a GPU (like CI)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_random_weights_on_cuda_bf16_give_valid_steps(smollm2_tokenizer, make_tiny_llama):
    from agentkit import Agent, MaxStepsExceeded, SamplingSettings, StepLimits
    from agentkit.engine import LocalEngine
    from agentkit.tools import calculator

    model = make_tiny_llama(smollm2_tokenizer, seed=5).to("cuda", torch.bfloat16)
    engine = LocalEngine.from_model(model, smollm2_tokenizer)
    assert engine.device.type == "cuda"
    assert engine.static_cache and engine.compiled  # the CUDA defaults: static slot, CUDA-graph step
    for seed in range(20):
        agent = Agent(engine, tools=[calculator], limits=StepLimits(string_chars=20), max_steps=1, sampling=SamplingSettings(temperature=1.0, seed=seed))
        try:
            steps = agent.run("2+2?").steps
        except MaxStepsExceeded as exc:
            steps = exc.partial.steps
        for step in steps:
            json.loads(step.raw_output)
            assert step.rejected_outputs == []


def test_from_pretrained_on_cuda(tmp_path, smollm2_tokenizer, make_tiny_llama):
    from agentkit import GenerationRequest, Message
    from agentkit.engine import LocalEngine

    make_tiny_llama(smollm2_tokenizer).save_pretrained(tmp_path)
    smollm2_tokenizer.save_pretrained(tmp_path)
    engine = LocalEngine.from_pretrained(tmp_path, device="cuda", dtype="bfloat16")
    assert engine.model.dtype == torch.bfloat16
    text = engine.generate(GenerationRequest(messages=[Message(role="user", content="hi")], max_tokens=4)).text
    assert isinstance(text, str)


def test_compiled_cuda_graph_step_matches_eager_and_never_recompiles(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine.static_cache import StaticSlot

    model = make_tiny_llama(smollm2_tokenizer, seed=6).to("cuda", torch.float32)
    eager = StaticSlot(model, 512, compile=False)
    compiled = StaticSlot(model, 512, compile=True)
    counters = torch._dynamo.utils.counters
    graphs = counters["stats"]["unique_graphs"]
    prompt = smollm2_tokenizer("Tools are called with JSON")["input_ids"]
    with torch.inference_mode():
        a, b = eager.forward(prompt), compiled.forward(prompt)
        for _ in range(100):
            assert int(a.argmax()) == int(b.argmax())
            a, b = eager.forward([int(a.argmax())]), compiled.forward([int(b.argmax())])
    assert counters["stats"]["unique_graphs"] == graphs


def test_static_and_dynamic_engines_agree_on_cuda(smollm2_tokenizer, make_tiny_llama):
    from agentkit import GenerationRequest, Message
    from agentkit.engine import LocalEngine

    model = make_tiny_llama(smollm2_tokenizer, seed=8).to("cuda", torch.float32)
    static = LocalEngine.from_model(model, smollm2_tokenizer, static_cache=True, compile=True)
    dynamic = LocalEngine.from_model(model, smollm2_tokenizer, static_cache=False)
    request = GenerationRequest(messages=[Message(role="user", content="Say something")], max_tokens=32)
    assert static.generate(request).text == dynamic.generate(request).text


def test_scoring_on_cuda_beside_the_compiled_static_slot(smollm2_tokenizer, make_tiny_llama):
    """Call pruning scores replies with eager passes while the CUDA-graph step serves decoding."""
    from concurrent.futures import ThreadPoolExecutor

    from agentkit import GenerationRequest, Message
    from agentkit.engine import LocalEngine

    model = make_tiny_llama(smollm2_tokenizer, seed=9).to("cuda", torch.float32)
    engine = LocalEngine.from_model(model, smollm2_tokenizer, static_cache=True, compile=True)
    cpu = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, seed=9), smollm2_tokenizer)
    scored = GenerationRequest(messages=[Message(role="user", content="Weather in Oslo?")])
    decoded = GenerationRequest(messages=[Message(role="user", content="Count to ten.")], max_tokens=40)
    replies = ['{"calls": [{"name": "w", "arguments": {"city": "Oslo"}}]}', '{"final_answer": "sun"}']
    alone = engine.generate(decoded).text
    with ThreadPoolExecutor(2) as pool:
        text = pool.submit(engine.generate, decoded)
        scores = pool.submit(lambda: [engine.score(scored, replies) for _ in range(3)])
        assert text.result().text == alone
        for row in scores.result():
            assert row == pytest.approx(cpu.score(scored, replies), abs=2e-2)
