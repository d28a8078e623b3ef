"""`LocalEngine.score`: the model's own log-probability of whole replies, and the call pruning built on it."""

from __future__ import annotations

import pytest

from agentkit import Agent, GenerationRequest, Message, tool


def _reference_score(engine, request, reply: str) -> float:
    """One plain forward over prompt + reply + end token, no cache: what `score` must equal."""
    import torch

    from agentkit.engine.chat import render_prompt

    prompt = engine.tokenizer(render_prompt(engine.tokenizer, request.messages), add_special_tokens=False)["input_ids"]
    targets = engine.tokenizer(reply, add_special_tokens=False)["input_ids"] + [engine.tokenizer.eos_token_id]
    with torch.inference_mode():
        logits = engine.model(input_ids=torch.tensor([prompt + targets[:-1]])).logits[0, len(prompt) - 1 :].float()
    return float(torch.log_softmax(logits, -1).gather(1, torch.tensor(targets)[:, None]).sum())


def test_scores_are_the_models_log_probabilities_cold_and_from_the_prefix_cache(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, seed=5), smollm2_tokenizer)
    request = GenerationRequest(messages=[Message(role="user", content="What is 2 + 2? Answer with one number.")], max_tokens=6)
    replies = ['{"final_answer": "4"}', "Über 5 ✓ 東京", "x"]
    expected = [_reference_score(engine, request, reply) for reply in replies]
    cold = engine.score(request, replies)
    engine.generate(request)  # leaves the prompt's KV state in the prefix cache
    hits = engine.prefix_cache.hits
    warm = engine.score(request, replies)
    assert engine.prefix_cache.hits == hits + len(replies)  # each reply started from the cached prompt
    assert cold == pytest.approx(expected, abs=1e-3) and warm == pytest.approx(expected, abs=1e-3)
    assert all(score < 0 for score in cold)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "kept"),
    [("What is the weather in Oslo?", ["Oslo"]), ("What is the weather in Oslo and in Lima?", ["Oslo", "Lima"])],
)
def test_the_embedded_model_keeps_a_second_call_only_when_the_task_asks_for_it(smollm2, task, kept):
    """A step that adds an invented city loses it; the same step for a task naming both cities keeps it."""
    made: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        made.append(city)
        return "sun"

    class TwoCitiesThenAnswer:
        """The step a small model writes under greedy decoding, scored by the real model."""

        context_window = smollm2.context_window
        tool_call_convention = None

        def __init__(self) -> None:
            self.replies = [
                '{"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
                '{"name": "get_weather", "arguments": {"city": "Lima"}}]}',
                '{"final_answer": "Sunny."}',
            ]

        def generate(self, request):
            from agentkit.backend import Generation

            return Generation(text=self.replies.pop(0))

        async def agenerate(self, request):
            return self.generate(request)

        def score(self, request, replies):
            return smollm2.score(request, replies)

    Agent(TwoCitiesThenAnswer(), tools=[get_weather], max_steps=2).run(task)
    assert made == kept


def test_scoring_while_another_request_decodes_gives_the_same_numbers(smollm2_tokenizer, make_tiny_llama):
    """Concurrent agents: one step's calls are scored while another agent's step is decoding."""
    from concurrent.futures import ThreadPoolExecutor

    from agentkit.engine import LocalEngine

    model = make_tiny_llama(smollm2_tokenizer, seed=8)
    scored = GenerationRequest(messages=[Message(role="user", content="Weather in Oslo?")])
    decoded = GenerationRequest(messages=[Message(role="user", content="Count to ten.")], max_tokens=40)
    replies = ['{"calls": [{"name": "w", "arguments": {"city": "Oslo"}}]}', '{"final_answer": "sun"}']
    alone = LocalEngine.from_model(model, smollm2_tokenizer, kv_cache_bytes=0)
    alone_scores, alone_text = alone.score(scored, replies), alone.generate(decoded).text
    engine = LocalEngine.from_model(model, smollm2_tokenizer, kv_cache_bytes=0)
    with ThreadPoolExecutor(2) as pool:
        text = pool.submit(engine.generate, decoded)
        scores = pool.submit(lambda: [engine.score(scored, replies) for _ in range(3)])
        assert text.result().text == alone_text
        assert all(s == pytest.approx(alone_scores, abs=1e-4) for s in scores.result())
