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
    from agentkit import Agent, MaxStepsExceeded, StepLimits
    from agentkit.engine import LocalEngine
    from agentkit.tools import calculator

    model = make_tiny_llama(smollm2_tokenizer, seed=5).to("cuda", torch.bfloat16)
    engine = LocalEngine.from_model(model, smollm2_tokenizer)
    assert engine.device.type == "cuda"
    for seed in range(20):
        agent = Agent(engine, tools=[calculator], limits=StepLimits(string_chars=20), max_steps=1, temperature=1.0, seed=seed)
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
